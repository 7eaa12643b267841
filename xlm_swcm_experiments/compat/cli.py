"""The command (scripts/compat_matrix.py): its options and bad input, then the run: the reference, the base
environment, each version built and checked (--jobs at a time), the refusal below the floor, the report."""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from xlm_swcm_experiments import compat_checker
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, read_json_file, require_writable_output

from .checks import check_refusal, check_version
from .environments import Builder
from .reference import build_reference
from .report import merge_rows, progress_line, render_table, write_report
from .versions import DEFAULT_VERSIONS, TORCH_VERSION, ci_versions, parse_versions, version_key


ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = ROOT / "docs" / "results"  # generated results (the full matrix, --update-docs); never edited by hand
DEFAULT_WORK_DIR = ROOT / "artifacts" / "compat"
# The first line of the package docstring (the help output names it).
DESCRIPTION = (
    "A transformers version matrix for the saved XLM-SWCM folder "
    "(entry point: scripts/compat_matrix.py; `make compat`)."
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = ScriptArgumentParser(description=DESCRIPTION)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--versions", help="comma-separated transformers versions (5.0 = its latest patch)")
    which.add_argument("--ci", action="store_true", help="the CI subset: oldest, middle and newest version")
    parser.add_argument("--list", action="store_true", help="print the versions that would run and exit")
    parser.add_argument(
        "--output",
        help="folder for compat.json and compat.md "
        "(default: docs/results/ for the full matrix, <work-dir>/report/ for a partial run)",
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="merge a partial run's rows into docs/results/compat.*"
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="environments and scratch (cached)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one version's checks")
    parser.add_argument("--install-timeout", type=float, default=1200, help="seconds for one environment's pip")
    parser.add_argument("--jobs", type=int, default=1, help="versions built and checked at a time")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached environments")
    args = parser.parse_args(argv)
    args.versions = ci_versions() if args.ci else parse_versions(args.versions) if args.versions else DEFAULT_VERSIONS
    args.full_matrix = set(args.versions) == set(DEFAULT_VERSIONS)
    for option in ("timeout", "install_timeout", "jobs"):
        if getattr(args, option) <= 0:
            raise InputError(f"--{option.replace('_', '-')} must be positive, got {getattr(args, option)}.")
    if args.update_docs and args.output:
        raise InputError("--update-docs writes docs/results/compat.*; do not combine it with --output.")
    if args.output:
        args.output = Path(args.output)
    elif args.full_matrix or args.update_docs:
        args.output = DOCS_DIR
    else:
        args.output = Path(args.work_dir) / "report"
    args.work_dir = Path(args.work_dir)
    require_writable_output(args.work_dir, "--work-dir")
    require_writable_output(args.output, "--output")
    args.merge_into = None
    if args.update_docs and not args.full_matrix and (DOCS_DIR / "compat.json").is_file():
        args.merge_into = read_json_file(DOCS_DIR / "compat.json", "docs/results/compat.json")
        if not isinstance(args.merge_into, dict) or not isinstance(args.merge_into.get("rows"), list):
            raise InputError(
                "docs/results/compat.json has no rows to merge into; run the full matrix (make compat) instead."
            )
    return args


def main(argv=None) -> int:
    from xlm_swcm_hf.files import output_lock

    args = parse_args(argv)
    if args.list:
        print("\n".join(args.versions))
        return 0
    with output_lock(args.work_dir, "--work-dir"):
        return run_matrix(args)


def run_matrix(args) -> int:
    started = time.perf_counter()
    builder = Builder(args.work_dir, install_timeout=args.install_timeout, rebuild=args.rebuild)
    print(f"transformers compatibility: {len(args.versions)} version(s), environments in {args.work_dir}", flush=True)
    folder = args.work_dir / "folder"
    shutil.rmtree(folder, ignore_errors=True)
    reference = build_reference(folder)
    reference_path = args.work_dir / "reference.json"
    reference_path.write_text(json.dumps(reference), encoding="utf-8")
    base = builder.ensure_base()
    print(
        f"base environment (torch {TORCH_VERSION}): "
        + ("cached" if base["cached"] else f"built in {base['build_seconds']:.0f} s"),
        flush=True,
    )

    rows = []
    check = lambda version: check_version(builder, version, folder, reference_path, reference["expected"], args.timeout)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(check, version) for version in args.versions]
        for index, future in enumerate(as_completed(futures), start=1):
            rows.append(future.result())
            print(progress_line(rows[-1], index, len(args.versions)), flush=True)
    rows.sort(key=lambda row: version_key(row["version"]))
    below_floor = check_refusal(builder, folder, args.timeout)
    print(
        f"transformers {below_floor['version']} (below the floor): "
        + ("refused as it should: " if below_floor["refused"] else "NOT refused as expected: ")
        + below_floor["detail"],
        flush=True,
    )
    if args.merge_into is not None:
        rows = merge_rows(args.merge_into["rows"], rows)
    report = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "full_matrix": {row["version"] for row in rows} >= set(DEFAULT_VERSIONS),
        "reference": reference["built_with"],
        "torch": TORCH_VERSION,
        "tolerances": {"logits": compat_checker.LOGITS_TOLERANCE, "loss": compat_checker.LOSS_TOLERANCE},
        "rows": rows,
        "below_floor": below_floor,
    }
    print()
    print(render_table(rows))
    json_path, markdown_path = write_report(report, args.output)
    failed = [row["version"] for row in rows if not row["passed"] and row["version"] in args.versions]
    if not below_floor["refused"]:
        failed.append(f"{below_floor['version']} (not refused)")
    summary = (
        f"all {len(args.versions)} pass"
        if not failed
        else f"{len(failed)} of {len(args.versions)} fail: {', '.join(failed)}"
    )
    print(f"\n{summary} ({time.perf_counter() - started:.0f} s); wrote {markdown_path} and {json_path}")
    return 0 if not failed else 1
