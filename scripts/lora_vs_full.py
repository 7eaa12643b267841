#!/usr/bin/env python
"""LoRA vs full fine-tuning of a trained XLM-SWCM folder at equal steps, over seeds; writes a table.

  python scripts/lora_vs_full.py                       # the demo's trained model (make demo first), 3 seeds
  python scripts/lora_vs_full.py --model outputs/run/final --config configs/translation.yaml --steps 300

Per mode: trainable parameters, peak resident memory of the run's own process, seconds per step, test NLL per
target token and greedy chrF, means ± SD over seeds; LoRA minus full with paired intervals and plain verdicts.
Finished runs are kept in <output>/runs.jsonl and skipped when the command runs again. Writes
<output>/lora_vs_full.{json,md} and the generated table <docs>/lora_vs_full.md (docs/results; its reading is
written by hand in docs/lora_vs_full.md).
"""

import argparse
import sys
from pathlib import Path

from xlm_swcm_experiments.adaptation import (
    DEFAULT_LEARNING_RATES,
    DEFAULT_STEPS,
    RESULTS_MARKDOWN,
    markdown,
    run_study,
    summarise,
)
from xlm_swcm_experiments.demo.pipeline import DEFAULT_RECIPE
from xlm_swcm_experiments.runs import command_line
from xlm_swcm_hf.checks import (
    InputError,
    ScriptArgumentParser,
    cli_main,
    require_local_path,
    require_trained_model,
    require_writable_output,
)
from xlm_swcm_hf.files import atomic_write_json, atomic_write_text, output_lock
from xlm_swcm_hf.recipe import Recipe


DEMO_MODEL = Path("artifacts/demo/swcm/final")
DEMO_DATA = Path("artifacts/demo-data")


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO_MODEL), help="a trained XLM-SWCM folder (default: the demo's)")
    parser.add_argument("--config", default=str(DEFAULT_RECIPE), help="recipe with the data (default: the demo's)")
    parser.add_argument("--data", default=str(DEMO_DATA), help="folder with train/validation/test.jsonl, or ''")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr-full", type=float, default=DEFAULT_LEARNING_RATES["full"])
    parser.add_argument("--lr-lora", type=float, default=DEFAULT_LEARNING_RATES["lora"])
    parser.add_argument("--output", default="artifacts/lora_vs_full")
    parser.add_argument("--docs", default="docs/results", help="where the generated lora_vs_full.md goes")
    parser.add_argument(
        "--replace-docs",
        action="store_true",
        help="rewrite an existing <docs>/lora_vs_full.md (e.g. the committed one)",
    )
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. training.warmup_steps=10")
    args = parser.parse_args(argv)

    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    except ValueError:
        raise InputError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError("--seeds needs distinct values, at least 3 for intervals worth reading (e.g. 0,1,2).")
    if args.steps < 1 or args.lr_full <= 0 or args.lr_lora <= 0:
        raise InputError("--steps must be >= 1 and the learning rates > 0.")
    model = require_local_path(args.model, "--model", hint="a trained XLM-SWCM folder; `make demo` writes the default")
    require_trained_model(model, "--model")  # a plain encoder would train a random decoder and head
    output, docs = Path(args.output), Path(args.docs)
    require_writable_output(output, "--output")
    require_writable_output(docs, "--docs")
    if (docs / RESULTS_MARKDOWN).exists() and not args.replace_docs:
        raise InputError(
            f"{docs / RESULTS_MARKDOWN} exists (the committed results); pass --replace-docs to rewrite it, or write "
            "elsewhere with --docs DIR."
        )
    overrides = list(args.overrides)
    if args.data:
        data = require_local_path(args.data, "--data", hint="`make demo` builds the default")
        overrides = [f"data.{split}_file={data / f'{split}.jsonl'}" for split in ("train", "validation", "test")]
        overrides += args.overrides
    recipe = Recipe.from_yaml(args.config, overrides)  # a bad recipe fails before any run

    rates = {"full": args.lr_full, "lora": args.lr_lora}
    with output_lock(output, "--output"):
        records = run_study(recipe, model, seeds, args.steps, rates, output)
    summary = summarise(records)
    devices = sorted({r["device"] for r in records})
    setup = (
        f"Written by `{command_line()}`. Base model `{model}`, recipe `{args.config}`; {args.steps} steps per run at "
        f"equal batch size, learning rates {rates}, LoRA with the recipe defaults (r=8, alpha 16, dropout 0.05 on "
        f"the attention projections query/value/q_proj/v_proj), device {', '.join(devices)}. Test NLL per target "
        f"token is teacher-forced (float32, label smoothing off); chrF from greedy decoding of the test split."
    )
    text = markdown(summary, records, setup)
    atomic_write_json(output / "lora_vs_full.json", {"summary": summary, "setup": setup}, indent=1)
    atomic_write_text(output / RESULTS_MARKDOWN, text)
    atomic_write_text(docs / RESULTS_MARKDOWN, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
