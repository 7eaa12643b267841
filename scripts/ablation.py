#!/usr/bin/env python
"""Equal-budget comparison of decoder initialisations over seeds; writes docs/ablation.md and docs/ablation.json.

  python scripts/ablation.py --steps 600 --seeds 0,1                      # every variant
  python scripts/ablation.py --variants swcm_pre_emb_head,random_emb_head --steps 300 --seeds 0
Finished runs are kept in <output>/ablation_runs.jsonl and skipped when the command is run again.
"""

import argparse
import logging
import sys
from pathlib import Path

from xlm_swcm_experiments.ablation import VARIANTS, run_ablation
from xlm_swcm_experiments.demo.pipeline import DEFAULT_RECIPE, demo_recipe, prepare_material
from xlm_swcm_hf.checks import InputError, cli_main
from xlm_swcm_hf.recipe import Recipe


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--config", default=str(DEFAULT_RECIPE))
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--output", default="artifacts/ablation")
    parser.add_argument("--docs", default="docs")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. training.learning_rate=3e-4")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise InputError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise InputError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not seeds or args.steps < 1:
        raise InputError("--seeds needs at least one seed and --steps must be >= 1.")
    languages = Recipe.from_yaml(args.config, args.overrides).data.train_languages
    material = prepare_material(Path(args.artifacts), languages)
    recipe = demo_recipe(Path(args.config), material, Path(args.output), "from_encoder", args.overrides)
    recipe.data.validation_file = None  # not used: the runs evaluate only on the test split
    rows = run_ablation(recipe, variants, seeds, args.steps, Path(args.output), Path(args.docs))
    print((Path(args.docs) / "ablation.md").read_text())
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
