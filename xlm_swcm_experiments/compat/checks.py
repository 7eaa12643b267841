"""Checking one version: run `compat_checker.py` in that version's environment (a child interpreter, offline, with a
timeout) and turn its answer into a row of the matrix; and the check below the floor, where loading the folder must
stop at once with its one-line refusal."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from xlm_swcm_experiments import compat_checker
from xlm_swcm_experiments.compat_checker import CHECKS, FAIL

from .environments import Builder, EnvironmentBuildError, last_lines, python_of
from .versions import MISSING_DEPENDENCIES


CHECKER_SCRIPT = Path(compat_checker.__file__).resolve()
KEY_PACKAGES = ("transformers", "torch", "huggingface_hub", "tokenizers", "accelerate", "safetensors", "numpy")


def failed_row_checks(reason: str) -> dict:
    return {name: {"status": FAIL, "detail": reason} for name in CHECKS}


def child_environment(scratch: str, extra_environment: dict | None = None) -> dict:
    """The environment a version's child process runs in: ours without PYTHON*/HF_*/TRANSFORMERS_* variables, then
    offline, quiet, and a modules cache of its own under `scratch` (the folder's code is copied there fresh)."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))
    }
    environment.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(Path(scratch) / "hf-home"),
        HF_MODULES_CACHE=str(Path(scratch) / "modules"),
        TOKENIZERS_PARALLELISM="false",
        TRANSFORMERS_VERBOSITY="error",
        OMP_NUM_THREADS="1",
    )
    environment.update(extra_environment or {})
    return environment


def run_checker(
    python: Path, folder: Path, reference_path: Path, timeout: float, expected: dict, extra_environment=None
) -> dict:
    """Run the checker in the environment of `python`: its answer ({"verdicts", "measured", ...}), with verdicts
    for every check also when it timed out (what it finished is kept) or stopped without an answer.
    `extra_environment`: variables that version needs (MISSING_DEPENDENCIES)."""
    with tempfile.TemporaryDirectory(prefix="compat-check-") as scratch:
        answer_path = Path(scratch) / "answer.json"
        environment = child_environment(scratch, extra_environment)
        # -I: no script folder or user site on sys.path, no PYTHON* variables; the .pth files still apply.
        command = [str(python), "-I", str(CHECKER_SCRIPT), str(folder), str(reference_path), str(answer_path)]
        stopped = "the checker stopped"
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                env=environment,
                cwd=scratch,
            )
            stopped = f"the checker stopped: {last_lines(result.stderr) or f'exit status {result.returncode}'}"
        except subprocess.TimeoutExpired:
            stopped = f"timed out after {timeout:.0f} s"
        answer = json.loads(answer_path.read_text(encoding="utf-8")) if answer_path.is_file() else {}
    if answer.get("finished"):
        return answer
    if not answer:
        return {"measured": {}, "verdicts": failed_row_checks(stopped), "finished": False}
    return {**answer, "verdicts": compat_checker.compare(expected, answer["measured"], missing=stopped)}


def check_version(
    builder: Builder, version: str, folder: Path, reference_path: Path, expected: dict, timeout: float
) -> dict:
    """Build (or reuse) the version's environment and check the folder there: one row of the matrix."""
    row = {"version": version}
    try:
        environment = builder.ensure(version)
    except EnvironmentBuildError as error:
        row.update(checks=failed_row_checks(f"environment not built: {error}"), environment={"error": str(error)})
        row["passed"] = False
        return row
    started = time.perf_counter()
    missing = MISSING_DEPENDENCIES.get(version)
    python = python_of(builder.environment(version))
    answer = run_checker(python, folder, reference_path, timeout, expected, missing and missing.environment)
    verdicts = row["checks"] = answer["verdicts"]
    row["check_seconds"] = round(time.perf_counter() - started, 1)
    packages = environment.get("packages", {})
    row["environment"] = {
        "cached": environment["cached"],
        "build_seconds": environment.get("build_seconds"),
        "requirements": environment["requirements"],
        "packages": {name: packages[name] for name in KEY_PACKAGES if name in packages},
    }
    if missing:
        row["environment"]["note"] = missing.note
    row["passed"] = compat_checker.all_passed(verdicts)
    return row


# The newest release below the supported range: loading the folder there must stop at once with its one-line refusal.
BELOW_FLOOR_VERSION = "4.45.2"
REFUSAL = "XLM-SWCM needs transformers>=4.46 (found {version})"
REFUSAL_SCRIPT = """
import sys
sys.modules["xlm_swcm_hf"] = None
from transformers import AutoModelForSeq2SeqLM
try:
    AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True)
except ImportError as error:
    print(str(error).splitlines()[0])
    sys.exit(0)
sys.exit("the folder loaded")
"""


def check_refusal(builder: Builder, folder: Path, timeout: float, version: str = BELOW_FLOOR_VERSION) -> dict:
    """Load the folder under `version` (below the floor): {"version", "refused", "detail"}, refused only when the
    first line of the error is the folder's own refusal, not an ImportError from inside transformers."""
    try:
        builder.ensure(version)
    except EnvironmentBuildError as error:
        return {"version": version, "refused": False, "detail": f"environment not built: {error}"}
    with tempfile.TemporaryDirectory(prefix="compat-refusal-") as scratch:
        environment = child_environment(scratch)
        command = [str(python_of(builder.environment(version))), "-I", "-c", REFUSAL_SCRIPT, str(folder)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=scratch
            )
        except subprocess.TimeoutExpired:
            return {"version": version, "refused": False, "detail": f"timed out after {timeout:.0f} s"}
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else last_lines(result.stderr)
    refused = result.returncode == 0 and line.startswith(REFUSAL.format(version=version))
    return {"version": version, "refused": refused, "detail": line}
