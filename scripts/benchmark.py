#!/usr/bin/env python
"""Benchmark XLM-SWCM decoding (cached vs no-cache vs BART), quantized CPU inference, the encoder and training steps.

Examples:
    python scripts/benchmark.py                      # full XLM-SWCM size, everything (long: ~1 h)
    python scripts/benchmark.py --size tiny --repeats 1 --lengths 4,8
    python scripts/benchmark.py --lengths 32,128 --lengths-for greedy_b1=32,128,256 beam5=64 --repeats 2
    # only the quantized-inference table (fp32, bf16, int8 and torchao candidates) and its quality check
    python scripts/benchmark.py --threads 1 --configs greedy_b1 --impls cached --lengths 32 --repeats 2 \\
        --no-ablations --train-modes ''
    # measure nothing: benchmark.md (and the plot) again from a stored benchmark.json, as its run rendered them
    python scripts/benchmark.py --render-only artifacts/bench/benchmark.json --out-dir artifacts/bench

Writes benchmark.json, benchmark.md and decode_ms_per_step.png to --out-dir (default artifacts/bench).
See docs/benchmark.md.
"""

import os
import sys

from xlm_swcm_experiments.benchmark import main as run_benchmark
from xlm_swcm_hf.checks import cli_main


@cli_main
def main(argv=None) -> int:
    run_benchmark(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
