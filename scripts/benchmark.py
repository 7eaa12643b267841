#!/usr/bin/env python
"""Benchmark XLM-SWCM decoding (cached vs no-cache vs BART), the encoder and training steps on CPU.

Examples:
    python scripts/benchmark.py                      # full XLM-SWCM size, everything (long: ~1 h)
    python scripts/benchmark.py --size tiny --repeats 1 --lengths 4,8
    python scripts/benchmark.py --lengths 32,128 --lengths-for greedy_b1=32,128,256 beam5=64 --repeats 2

Writes benchmark.json, benchmark.md and decode_ms_per_step.png to --out-dir (default artifacts/bench).
See docs/benchmark.md.
"""

import os

from xlm_swcm_experiments.benchmark import main


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
