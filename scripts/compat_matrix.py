#!/usr/bin/env python
"""Load a saved XLM-SWCM folder under every transformers release from 4.46 on, each in a clean environment with
torch 2.13.0 and no xlm_swcm_hf, and compare logits, generation, a trainer step and the pipeline with the outputs
measured where the folder was saved. Prints a line per version and a table; writes compat.json and compat.md.

Exit status: 0 every requested version passes; 1 one or more fail; 2 bad input (before any work).

Examples:
    python scripts/compat_matrix.py                                  # the full matrix -> docs/results/compat.{md,json}
    python scripts/compat_matrix.py --ci                       # oldest, middle, newest -> artifacts/compat/report/
    python scripts/compat_matrix.py --versions 4.46.3,5.0,5.25.0 --output /tmp/compat
    python scripts/compat_matrix.py --versions 5.25.0 --update-docs  # refresh those rows of docs/results/compat.*
    python scripts/compat_matrix.py --list                           # the versions of the matrix
Environments are cached in artifacts/compat/ (--work-dir); see xlm_swcm_experiments/compat/.
"""

import os
import sys

from xlm_swcm_experiments.compat import main as run_compat_matrix
from xlm_swcm_hf.checks import cli_main


@cli_main
def main(argv=None) -> int:
    return run_compat_matrix(argv)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
