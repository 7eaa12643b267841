"""Resident memory: this process's RSS and peak, and a measurement in a fresh process of its own (so one candidate's
or training mode's memory is not another's)."""

import json
import os
import subprocess
import sys
from pathlib import Path


# Freed tensors leave the resident set at once, so the figures are the measured work's, not the allocator's.
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
ROOT = Path(__file__).resolve().parents[2]


def rss_bytes(field: str) -> int:
    """A /proc/self/status field in bytes: "VmRSS" (resident now) or "VmHWM" (peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


_rss_bytes = rss_bytes  # the name xlm_swcm_experiments.serving_benchmark imports


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def run_child(options: list[str]) -> tuple[dict | None, str]:
    """`python -m xlm_swcm_experiments.benchmark OPTIONS` in a fresh process; (its RESULT line's record, "") or
    (None, the end of its stderr) when it failed."""
    command = [sys.executable, "-m", "xlm_swcm_experiments.benchmark", *options]
    done = subprocess.run(command, env=dict(os.environ, **CHILD_ENV), capture_output=True, text=True, cwd=str(ROOT))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    if done.returncode != 0 or not lines:
        return None, done.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT") :]), ""


def print_result(record: dict) -> None:
    """A child's answer to `run_child`: one RESULT line on stdout."""
    print("RESULT" + json.dumps(record), flush=True)
