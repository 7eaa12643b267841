#!/usr/bin/env python
"""Serving benchmark: the CPU paths (PyTorch fp32/int8, compiled, ONNX Runtime fp32/int8) by speed, memory and quality,
compiled static-cache decoding next to eager and BART, translate.py's throughput. Code and options:
xlm_swcm_experiments/serving_benchmark.py; reading the results: docs/benchmark.md ("Serving")."""

import os
import sys

from xlm_swcm_experiments.serving_benchmark import main as run_benchmark
from xlm_swcm_hf.checks import cli_main


@cli_main
def main(argv=None) -> int:
    run_benchmark(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
