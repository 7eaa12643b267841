#!/usr/bin/env python
"""Check XLM-SWCM on one CUDA GPU in under 5 minutes: fp16 and bf16 Seq2SeqTrainer steps, generation on CUDA equal
to CPU, sdpa attention, LoRA via peft, and the full-size bf16 decode step next to BART. Prints a table.

Exit status: 0 all checks that ran passed; 1 a check failed; 3 no CUDA device (every row "skipped: no CUDA");
2 bad arguments. `--device cpu` runs on the CPU what can run there (fp16 training cannot).

Examples:
    python scripts/gpu_check.py
    python scripts/gpu_check.py --checks train_fp16,decode_bf16 --json gpu_check.json
    python scripts/gpu_check.py --device cpu --size tiny      # the logic, on a CPU
See docs/benchmark.md ("GPU check").
"""

import os
import sys

from xlm_swcm_experiments.gpu_check import main as run_gpu_check
from xlm_swcm_hf.checks import cli_main


@cli_main
def main(argv=None) -> int:
    return run_gpu_check(argv)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
