#!/usr/bin/env python
"""Decoder initialisations compared over seeds on the demo material; writes docs/results/ablation.{md,json}.

Stages (--stages, in this order; a stage runs what it needs from the earlier ones):
  sweep     each variant's learning rate from --lrs, one seed (--sweep-seed), chosen by validation NLL
  steps     every variant at its own rate for --steps steps, every seed
  time      equal wall-clock: each variant trains for random_emb_head's measured time (same seed)
  pretrain  shared DAE + MT pretraining (--pretrain-steps, same for every decoder), then fine-tuning with its own
            sweep; for random_emb_head, swcm_pre_emb_head and the best SWCM variant (or --pretrain-variants)

  python scripts/ablation.py --steps 300 --seeds 0,1,2                                 # the whole study
  python scripts/ablation.py --stages sweep --variants random_emb_head,swcm_pre_emb_head --steps 150
  python scripts/ablation.py --device cuda --jobs 8 --steps 300 --seeds 0,1,2,3,4     # runs 8 at a time
  python scripts/ablation.py --render-only --steps 300 --seeds 0,1,2      # results from the finished runs only
Finished runs are kept in <output>/ablation_runs.jsonl and skipped when a command runs again; random_emb_head (the
reference of every comparison) is always included. The generated results go to --docs (docs/results); their reading
is written by hand in docs/ablation.md.
"""

import argparse
import logging
import sys
from pathlib import Path

from xlm_swcm_experiments.ablation import (
    DEFAULT_LEARNING_RATES,
    LANGUAGE_OVERRIDES,
    REFERENCE,
    STAGES,
    VARIANTS,
    StudySettings,
    check_docs,
    run_study,
)
from xlm_swcm_experiments.ablation.report import RESULTS_MARKDOWN
from xlm_swcm_experiments.demo.pipeline import DEFAULT_RECIPE, demo_recipe, prepare_material
from xlm_swcm_experiments.runs import command_line
from xlm_swcm_experiments.statistics import BOOTSTRAP_RESAMPLES
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.files import output_lock
from xlm_swcm_hf.recipe import Recipe


def _names(option: str, value: str, valid, what: str) -> list[str]:
    names = [name for name in value.split(",") if name]
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise InputError(f"unknown {what} {unknown}; choose from {list(valid)}")
    if not names:
        raise InputError(f"{option} needs at least one {what[:-1]}.")
    return names


def _numbers(option: str, value: str, kind, example: str) -> list:
    try:
        numbers = [kind(item) for item in value.split(",") if item]
    except ValueError:
        raise InputError(f"{option} {value!r} must be comma-separated {kind.__name__}s, e.g. {example}") from None
    if not numbers:
        raise InputError(f"{option} needs at least one value, e.g. {example}")
    return numbers


def _device(value: str) -> str:
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here; use --device cpu.")
    return value


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1,2", help="at least 3 for intervals worth reading")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (the equal-steps budget)")
    parser.add_argument("--lrs", default=",".join(f"{rate:g}" for rate in DEFAULT_LEARNING_RATES))
    parser.add_argument("--finetune-lrs", default=None, help="the fine-tuning sweep after pretraining (default: --lrs)")
    parser.add_argument("--sweep-seed", type=int, default=None, help="default: the first of --seeds")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {list(STAGES)}")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="default: --steps")
    parser.add_argument("--pretrain-variants", default=None, help="default: reference, default, best SWCM")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each in its own process (for a GPU; equal wall-clock runs stay one at a time)",
    )
    parser.add_argument("--bootstrap-resamples", type=int, default=BOOTSTRAP_RESAMPLES)
    parser.add_argument("--render-only", action="store_true", help="rewrite the docs from finished runs, train nothing")
    parser.add_argument(
        "--replace-docs",
        action="store_true",
        help="rewrite the results in --docs even where they report runs that --output does not hold (then lost)",
    )
    parser.add_argument("--config", default=str(DEFAULT_RECIPE))
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--output", default="artifacts/ablation")
    parser.add_argument("--docs", default="docs/results", help="where the generated ablation.md and .json go")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. training.warmup_steps=10")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    variants = _names("--variants", args.variants, VARIANTS, "variants")
    stages = _names("--stages", args.stages, STAGES, "stages")
    seeds = _numbers("--seeds", args.seeds, int, "0,1,2")
    rates = _numbers("--lrs", args.lrs, float, "2.5e-4,5e-4,1e-3")
    finetune_rates = rates
    if args.finetune_lrs is not None:
        finetune_rates = _numbers("--finetune-lrs", args.finetune_lrs, float, "1.25e-4,2.5e-4,5e-4")
    pretrain_variants = None
    if args.pretrain_variants:
        pretrain_variants = _names("--pretrain-variants", args.pretrain_variants, VARIANTS, "variants")
        unusable = [name for name in pretrain_variants if VARIANTS[name].model is None or VARIANTS[name].mlm_head]
        if unusable:
            raise InputError(f"--pretrain-variants: {unusable} cannot be saved as XLM-SWCM for fine-tuning.")
    if len(set(seeds)) != len(seeds) or any(len(set(values)) != len(values) for values in (rates, finetune_rates)):
        raise InputError("--seeds, --lrs and --finetune-lrs must not repeat a value.")
    if args.steps < 1 or (args.pretrain_steps is not None and args.pretrain_steps < 1):
        raise InputError("--steps and --pretrain-steps must be >= 1.")
    if args.jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {args.jobs}.")
    if any(rate <= 0 for rate in [*rates, *finetune_rates]) or args.bootstrap_resamples < 100:
        raise InputError("--lrs and --finetune-lrs must be > 0, and --bootstrap-resamples >= 100.")
    device = _device(args.device)

    overrides = [*LANGUAGE_OVERRIDES, *args.overrides]
    languages = Recipe.from_yaml(args.config, overrides).data.train_languages  # a bad recipe fails first
    output, docs = Path(args.output), Path(args.docs)
    for path, what in ((output, "--output"), (docs, "--docs"), (Path(args.artifacts), "--artifacts")):
        require_writable_output(path, what)
    with output_lock(output, "the ablation folder"):  # one study per folder: both would append to its runs file
        check_docs(output, docs, args.render_only, args.replace_docs)  # before any material is built
        material = prepare_material(Path(args.artifacts), languages)
        recipe = demo_recipe(Path(args.config), material, output, "from_encoder", overrides)
        settings = StudySettings(
            variants=variants,
            seeds=seeds,
            steps=args.steps,
            learning_rates=rates,
            finetune_learning_rates=finetune_rates,
            stages=stages,
            sweep_seed=args.sweep_seed,
            pretrain_steps=args.pretrain_steps,
            pretrain_variants=pretrain_variants,
            device=device,
            bootstrap_resamples=args.bootstrap_resamples,
            command=command_line(),
            jobs=args.jobs,
        )
        try:
            study = run_study(recipe, settings, output, docs, render_only=args.render_only)
        except ValueError as error:
            if "pretrain stage needs" in str(error):
                raise InputError(str(error)) from None
            raise
    print((docs / RESULTS_MARKDOWN).read_text())
    return 0 if study.records or REFERENCE in study.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
