"""Command line: parse, run the chosen parts, merge an earlier run, write serving.json and serving.md."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..benchmark import DECODE_CONFIGS, DEMO_MODEL, DEMO_TEST, SIZES, build_swcm
from .bulk import BULK_SCALES, run_bulk
from .decoding import run_compiled, run_throughput
from .measure import memory_child, run_candidates, run_quality
from .report import choose_path, evaluate_targets, markdown
from .settings import CANDIDATES, COMPILED_IMPLS, DEFAULT_PARTS, DTYPES, PARTS, REFERENCE, fresh_compiles


# --------------------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    from xlm_swcm_hf.checks import ScriptArgumentParser
    from xlm_swcm_hf.recipe import GENERATION_BATCH_SIZE

    parser = ScriptArgumentParser(description="Serving benchmark: CPU paths, compiled decoding, throughput.")
    parser.add_argument(
        "--parts", default=",".join(DEFAULT_PARTS), help=f"comma separated, from {', '.join(PARTS)} (default: "
        f"{','.join(DEFAULT_PARTS)}; bulk: translate.py over files in child processes)",
    )  # fmt: skip
    parser.add_argument(
        "--bulk-scale", choices=list(BULK_SCALES), default="full", help="bulk's input sizes: full (100K lines for the "
        "process comparison, 10K against 1M for memory; about 20 minutes on 2 idle cores) or smoke (seconds)",
    )  # fmt: skip
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"from {', '.join(CANDIDATES)}")
    parser.add_argument("--length", type=int, default=32, help="new tokens per timed generate call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default=",".join(DECODE_CONFIGS), help="the compiled part's configurations")
    parser.add_argument("--impls", default=",".join(COMPILED_IMPLS), help="the compiled part's implementations")
    parser.add_argument("--device", default="cpu", help="the compiled part's device (cpu, cuda)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="the compiled part's dtype")
    parser.add_argument("--no-memory", action="store_true", help="no resident-memory process per candidate")
    parser.add_argument("--quality-model", default=str(DEMO_MODEL), help="trained model folder (quality, throughput)")
    parser.add_argument("--quality-data", default=str(DEMO_TEST), help="its test split (JSONL: source, target)")
    parser.add_argument("--quality-limit", type=int, default=0, help="first N test sentences only (0: all)")
    parser.add_argument("--batch-size", type=int, default=GENERATION_BATCH_SIZE, help="quality and throughput batch")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out-dir", default="artifacts/bench-serving")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier serving.json in --out-dir")
    parser.add_argument(
        "--merge",
        action="append",
        default=[],
        help="an earlier serving.json (repeatable): the parts not run now are taken from it, the first file holding a "
        "part wins (e.g. speed on an idle machine, quality after `make demo`), so targets and the chosen path see all; "
        "with --parts none nothing is measured",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    return check_arguments(parser.parse_args(argv))


def check_arguments(args):
    """Every option checked (and the comma lists split) before any model is built; one InputError otherwise."""
    from xlm_swcm_hf.checks import InputError, require_writable_output

    lists = {"parts": PARTS, "candidates": CANDIDATES, "configs": tuple(DECODE_CONFIGS), "impls": COMPILED_IMPLS}
    if args.parts == "none" and args.merge:
        args.parts = ""
        lists.pop("parts")
    for option, allowed in lists.items():
        values = [value for value in getattr(args, option).split(",") if value]
        unknown = [value for value in values if value not in allowed]
        if unknown or not values:
            raise InputError(f"--{option} {getattr(args, option)!r}: choose from {', '.join(allowed)}.")
        setattr(args, option, values)
    if (
        "compiled" in args.impls
        and "eager" not in args.impls
        or "bart_compiled" in args.impls
        and "bart" not in args.impls
    ):
        raise InputError("--impls: a compiled implementation is compared with its eager one; include eager / bart.")
    if REFERENCE not in args.candidates:
        raise InputError(f"--candidates must include {REFERENCE} (the fp32 eager reference).")
    for option in ("length", "repeats", "batch_size"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device here.")
    if any(name.startswith("onnxruntime") for name in args.candidates) and {"candidates", "quality"} & set(args.parts):
        from xlm_swcm_hf.onnx_runtime import require_onnx_libraries

        require_onnx_libraries()
    args.memory = not args.no_memory
    if args.parts == "":
        args.parts = []
    args.merge_reports = []
    for path in args.merge:
        from xlm_swcm_hf.checks import read_json_file

        earlier = read_json_file(Path(path), "--merge")
        if not isinstance(earlier, dict) or "meta" not in earlier:
            raise InputError(f"--merge {path} is not a serving.json this benchmark wrote.")
        args.merge_reports.append((path, earlier))
    if not args.memory_child:
        require_writable_output(args.out_dir, "--out-dir")
        if (Path(args.out_dir) / "serving.json").exists() and not args.overwrite:
            raise InputError(f"--out-dir {args.out_dir} holds an earlier serving.json; pass --overwrite or another.")
    return args


def cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    except OSError:
        return None


# The CPU flags that decide how fast bf16 runs: AMX tiles, AVX-512 bf16 dot products.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_with_bf16_flags() -> str | None:
    """The CPU's name (`cpu_name`) and which of BF16_FLAGS /proc/cpuinfo lists; None where there is no
    /proc/cpuinfo."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    flags = next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), [])
    have = [flag for flag in BF16_FLAGS if flag in flags]
    return f"{cpu_name() or 'a CPU'} ({', '.join(have) if have else 'no bf16 instructions'})"


def meta(args) -> dict:
    import platform

    import transformers

    try:
        import onnxruntime

        onnx_version = onnxruntime.__version__
    except ImportError:
        onnx_version = None
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name() or platform.machine()
    return {
        "size": args.size,
        "threads": torch.get_num_threads(),
        "device": f"{args.device} ({device})",
        "dtype": args.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnx_version,
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit.stdout.strip() or "unknown",
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "bulk_scale": args.bulk_scale if "bulk" in args.parts else None,
        "parts": list(args.parts),
        "argv": sys.argv[1:],
    }


# What a merged part keeps of the run that measured it (its header line says under what conditions).
CONDITION_KEYS = ("date", "commit", "size", "threads", "device", "loadavg_before", "loadavg_after", "repeats")


MERGED_KEYS = {
    "candidates": ("candidates", "bandwidth", "weights_read_per_token", "bandwidth_bound_ms_per_token"),
    "quality": ("quality",),
    "compiled": ("compiled",),
    "throughput": ("throughput",),
    "bulk": ("bulk",),
}


def merge_parts(report: dict, earlier: dict, parts_run: list[str], path: str) -> None:
    """The parts of `earlier` that neither this run nor an earlier merge gave, with where and when they were
    measured."""
    have = set(parts_run) | {part for entry in report["meta"].get("merged", []) for part in entry["parts"]}
    sources: dict[int, tuple[dict, list[str]]] = {}  # one entry per run the taken parts were measured by
    for part, keys in MERGED_KEYS.items():
        if part not in have and part in earlier:
            for key in keys:
                if key in earlier:
                    report[key] = earlier[key]
            # a part `earlier` merged itself keeps the conditions of the run that measured it
            origin = next((entry for entry in earlier["meta"].get("merged", []) if part in entry["parts"]), None)
            if origin is None:
                origin = {"from": path, **{key: earlier["meta"].get(key) for key in CONDITION_KEYS}}
            else:
                origin = {**origin, "from": f"{origin['from']} (by way of {path})"}
            sources.setdefault(origin["from"], (origin, []))[1].append(part)
    for origin, taken in sources.values():
        entry = {"from": origin["from"], "parts": taken, **{key: origin.get(key) for key in CONDITION_KEYS}}
        report["meta"].setdefault("merged", []).append(entry)


def main(argv=None) -> dict:
    import tempfile

    from xlm_swcm_hf.files import atomic_write_json, atomic_write_text

    from ..benchmark import measure_bandwidth, weights_read_per_token

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print("RESULT" + json.dumps(memory_child(args.memory_child, args.size, args.work)), flush=True)
        return {}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, flush=True)  # noqa: E731
    report = {"meta": meta(args)}
    fresh_compiles()
    with tempfile.TemporaryDirectory(prefix="serving-") as work:
        args.work = Path(work)
        if "candidates" in args.parts:
            weights = weights_read_per_token(build_swcm(args.size))
            bandwidth = measure_bandwidth(32 if args.size == "tiny" else 512)
            report["bandwidth"], report["weights_read_per_token"] = bandwidth, weights
            report["bandwidth_bound_ms_per_token"] = weights["bytes"] / (bandwidth["GBps"] * 1e9) * 1e3
            log("candidates:")
            report["candidates"] = run_candidates(args, log, bandwidth["GBps"])
        if "quality" in args.parts:
            log("quality:")
            report["quality"] = run_quality(args, log)
        if "bulk" in args.parts:
            log("bulk (translate.py past one process):")
            report["bulk"] = run_bulk(args, log)
    if "compiled" in args.parts:
        log("compiled decoding:")
        report["compiled"] = run_compiled(args, log)
    if "throughput" in args.parts:
        log("throughput:")
        report["throughput"] = run_throughput(args, log)
    report["meta"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    for path, earlier in args.merge_reports:
        merge_parts(report, earlier, args.parts, path)
    report["chosen"] = choose_path(report)
    report["targets"] = evaluate_targets(report)
    atomic_write_json(out_dir / "serving.json", report, indent=1, ensure_ascii=True)
    table = markdown(report)
    atomic_write_text(out_dir / "serving.md", table)
    log(table)
    log(f"wrote {out_dir / 'serving.json'} and {out_dir / 'serving.md'}")
    return report


if __name__ == "__main__":
    main()
