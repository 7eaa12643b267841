"""The study's record store: one JSON line per finished run in `<output>/ablation_runs.jsonl`, found by `record_key`,
and the check that rewriting the generated results loses none of the runs they report (`check_docs`)."""

from __future__ import annotations

import json
from pathlib import Path

from xlm_swcm_hf.checks import InputError, read_json_file


SCHEMA = 2  # records of the earlier single-lr ablation (no "schema" field) are ignored
RUNS_FILE = "ablation_runs.jsonl"
RESULTS_JSON = "ablation.json"  # beside the generated ablation.md in --docs


def side_by_side(record: dict, other: dict) -> bool:
    """Whether two runs' speeds compare: same device, and a known, equal number of runs sharing it."""
    return (
        record.get("device") == other.get("device")
        and record.get("concurrent_runs") is not None
        and record.get("concurrent_runs") == other.get("concurrent_runs")
    )


def record_key(record: dict) -> tuple:
    return (
        record["stage"],
        record.get("budget"),
        record["variant"],
        record["seed"],
        record.get("learning_rate"),
        record["steps"],
        record.get("pretrain_steps"),
    )


def stored_records(results_file: Path) -> dict[tuple, dict]:
    """The finished runs kept in `results_file` (of this schema), by `record_key`."""
    records = {}
    if Path(results_file).exists():
        for line in Path(results_file).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted write: that run is simply run again
            if record.get("schema") == SCHEMA:
                records[record_key(record)] = record
    return records


def check_docs(output_dir: Path, docs_dir: Path, render_only: bool, replace_docs: bool) -> None:
    """Before any work: `--render-only` needs finished runs, and the docs are rewritten only from a runs file that
    holds every run they already report (or with `--replace-docs`), so committed results are never lost."""
    results_file = Path(output_dir) / RUNS_FILE
    stored = stored_records(results_file)
    if render_only and not stored:
        raise InputError(
            f"--render-only: {results_file} holds no finished runs, so there is nothing to render; run the study "
            "first (without --render-only), or point --output at the folder that holds its runs."
        )
    docs_json = Path(docs_dir) / RESULTS_JSON
    if replace_docs or not docs_json.exists():
        return
    reported = read_json_file(docs_json, "the ablation docs")
    runs = reported.get("runs") if isinstance(reported, dict) else None
    try:
        keys = {record_key(run) for run in runs or []}
    except (KeyError, TypeError):
        raise InputError(f"{docs_json} is not an ablation report; pass --replace-docs or another --docs.") from None
    missing = keys - set(stored)
    if missing:
        raise InputError(
            f"{docs_json} reports {len(missing)} finished runs that {results_file} does not hold ({len(stored)} "
            "runs); rewriting the docs would lose them. Restore that runs file, write the docs elsewhere with "
            "--docs DIR, or pass --replace-docs."
        )


def append_record(results_file: Path, record: dict) -> None:
    """Append one record as a JSON line; a line cut short by an interrupted run does not swallow it."""
    results_file.parent.mkdir(parents=True, exist_ok=True)
    with results_file.open("a+b") as handle:
        handle.seek(0, 2)
        if handle.tell():
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write((json.dumps(record) + "\n").encode())
