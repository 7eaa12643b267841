"""The command line (scripts/benchmark.py and `python -m xlm_swcm_experiments.benchmark`): its options, the run in
order (models, bandwidth, encoder, decode, fast paths, quantization, quality, training, targets), and the files it
writes; also the two child roles (`--train-child`, `--quant-child`) and `--render-only`."""

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, require_writable_output
from xlm_swcm_hf.files import atomic_write_json, atomic_write_text

from .decode import run_ablations, run_decode, try_compile
from .memory import print_result
from .models import build_bart, build_swcm, count, make_source, weights_read_per_token
from .quality import run_quality
from .quantization import quant_memory_child, run_quantization
from .report import markdown, plot
from .settings import DECODE_CONFIGS, DEMO_MODEL, DEMO_TEST, IMPLS, QUANT_CANDIDATES, SIZES, TRAIN_MODES
from .targets import evaluate_targets
from .timing import count_calls, encoder_time, measure_bandwidth
from .training import run_training, train_child


DESCRIPTION = (
    "Decode-latency, encoder and training-step benchmark for XLM-SWCM (CPU). Entry point: scripts/benchmark.py."
)


def build_parser() -> ScriptArgumentParser:
    parser = ScriptArgumentParser(description=DESCRIPTION)
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--lengths", default="32,64,128,256", help="new tokens, comma separated")
    parser.add_argument(
        "--lengths-for",
        nargs="*",
        default=[],
        metavar="CONFIG=L1,L2",
        help="per-config lengths, e.g. greedy_b8=32,128 beam5=64",
    )
    parser.add_argument("--configs", default=",".join(DECODE_CONFIGS))
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nocache-repeats", type=int, default=None, help="repeats for the slow no-cache runs")
    parser.add_argument("--ablation-length", type=int, default=64)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also evaluate torch.compile (slow to compile)")
    parser.add_argument("--train-modes", default=",".join(TRAIN_MODES), help="'' to skip training")
    parser.add_argument("--train-repeats", type=int, default=2)
    parser.add_argument(
        "--train-in-process",
        action="store_true",
        help="no subprocess per training mode (faster; memory figures less clean)",
    )
    parser.add_argument(
        "--quant-methods",
        default=",".join(QUANT_CANDIDATES),
        help="candidates beside fp32 for the quantized-inference table ('' skips it)",
    )
    parser.add_argument("--quant-length", type=int, default=32, help="new tokens for the quantized-inference table")
    parser.add_argument("--no-quant-memory", action="store_true", help="no resident-memory child process per candidate")
    parser.add_argument("--quality-model", default=str(DEMO_MODEL), help="trained model folder for the quality check")
    parser.add_argument("--quality-data", default=str(DEMO_TEST), help="its test split (JSONL with source, target)")
    parser.add_argument("--quality-methods", default="int8", help="methods whose quality is checked")
    parser.add_argument("--quality-limit", type=int, default=0, help="first N test sentences only (0: all)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out-dir", default="artifacts/bench")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark.json in --out-dir")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--render-only",
        metavar="JSON",
        help="measure nothing: write benchmark.md (and the plot) into --out-dir from a stored benchmark.json",
    )
    parser.add_argument("--train-child", metavar="MODE", help=argparse.SUPPRESS)  # one training mode, in a child
    parser.add_argument("--quant-child", metavar="CANDIDATE", help=argparse.SUPPRESS)  # one candidate's memory
    return parser


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    _check_numbers(args)
    args.configs = [c for c in args.configs.split(",") if c]
    args.impls = [i for i in args.impls.split(",") if i]
    args.train_modes = [m for m in args.train_modes.split(",") if m]
    args.quant_methods = [m for m in args.quant_methods.split(",") if m]
    args.quality_methods = [m for m in args.quality_methods.split(",") if m]
    args.quant_memory = not args.no_quant_memory
    args.nocache_repeats = args.repeats if args.nocache_repeats is None else min(args.nocache_repeats, args.repeats)
    _check_names(args)
    if args.render_only:
        require_writable_output(args.out_dir, "--out-dir")
        if not Path(args.render_only).is_file():
            raise InputError(f"--render-only {args.render_only} is not a file; pass a benchmark.json a run wrote.")
    elif not (args.train_child or args.quant_child):
        require_writable_output(args.out_dir, "--out-dir")
        if (Path(args.out_dir) / "benchmark.json").exists() and not args.overwrite:
            raise InputError(
                f"--out-dir {args.out_dir} holds an earlier benchmark.json; pass --overwrite to replace it or choose "
                "another --out-dir."
            )
    return args


def _numbers(option: str, value: str) -> list[int]:
    try:
        values = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} {value!r} must be comma-separated whole numbers, e.g. 32,64") from None
    if not values or min(values) < 1:
        raise InputError(f"{option} {value!r} needs at least one length, each >= 1, e.g. 32,64")
    return values


def _check_numbers(args) -> None:
    """Lengths into lists of whole numbers; counts at least 1."""
    args.lengths = _numbers("--lengths", args.lengths)
    lengths_for = {}
    for item in args.lengths_for:
        name, separator, value = item.partition("=")
        if not separator or name not in DECODE_CONFIGS:
            raise InputError(f"--lengths-for {item!r} must be CONFIG=L1,L2 with CONFIG one of {list(DECODE_CONFIGS)}")
        lengths_for[name] = _numbers(f"--lengths-for {name}", value)
    args.lengths_for = lengths_for
    for option in ("repeats", "train_repeats", "ablation_length", "quant_length"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}.")
    for option in ("nocache_repeats", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}.")
    if args.quality_limit < 0:
        raise InputError(f"--quality-limit must be >= 0 (0: all), got {args.quality_limit}.")


def _check_names(args) -> None:
    """Every config, implementation, candidate and quality method named is one the benchmark knows."""
    for name in args.configs:
        if name not in DECODE_CONFIGS:
            raise InputError(f"unknown config {name}; choose from {list(DECODE_CONFIGS)}")
    for name in args.impls:
        if name not in IMPLS:
            raise InputError(f"unknown impl {name}; choose from {IMPLS}")
    for name in args.quant_methods:
        if name not in QUANT_CANDIDATES:
            raise InputError(f"unknown quantization candidate {name}; choose from {QUANT_CANDIDATES}")
    for name in args.quality_methods:
        if name not in QUANT_CANDIDATES[1:]:
            raise InputError(f"unknown quality method {name}; choose from {QUANT_CANDIDATES[1:]}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_child:
        print_result(train_child(args.size, args.train_child, args.train_repeats))
        return {}
    if args.quant_child:
        print_result(quant_memory_child(args.size, args.quant_child))
        return {}
    log = lambda message: print(message, flush=True)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        report = render_only(Path(args.render_only), out_dir, not args.no_plot)
        log(f"wrote {out_dir / 'benchmark.md'} from {args.render_only}")
        return report
    started = time.time()
    report = measure(args, log)
    report["meta"]["wall_seconds"] = time.time() - started
    report["targets"] = evaluate_targets(report)
    atomic_write_json(out_dir / "benchmark.json", report, indent=1, ensure_ascii=True)
    table = markdown(report)
    atomic_write_text(out_dir / "benchmark.md", table)
    if not args.no_plot:
        path = out_dir / "decode_ms_per_step.png"
        report["plot"] = str(path) if plot(report, path) else None
    log(table)
    log(f"wrote {out_dir / 'benchmark.json'} and {out_dir / 'benchmark.md'} in {report['meta']['wall_seconds']:.0f} s")
    return report


def render_only(path: Path, out_dir: Path, with_plot: bool) -> dict:
    """benchmark.md (and the plot) from a stored record, as the run that wrote it rendered them."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"--render-only {path} is not a benchmark.json: {error}") from None
    atomic_write_text(out_dir / "benchmark.md", markdown(report))
    if with_plot:
        plot(report, out_dir / "decode_ms_per_step.png")
    return report


def measure(args, log) -> dict:
    """Everything measured, in this order, into one record (its targets are evaluated from it afterwards)."""
    meta = run_meta(args)
    log(f"benchmark {args.size}: building models")
    models = {"cached": build_swcm(args.size)}
    models["no_cache"] = models["cached"]
    models["bart"] = build_bart(args.size)
    meta["parameters_swcm"] = count(models["cached"].parameters())
    meta["parameters_bart"] = count(models["bart"].parameters())
    report = {"meta": meta, **weights_and_bandwidth(args.size, models, log)}
    report["encoder"] = {
        f"batch{b}": encoder_time(models["cached"], make_source(args.size, b), args.repeats)
        for b in sorted({DECODE_CONFIGS[c]["batch"] for c in args.configs})
    }
    report["call_counts"] = [
        count_calls(models["cached"], make_source(args.size, 1), 4, beams, use_cache)
        for beams, use_cache in ((1, True), (5, True), (1, False))
    ]
    report["decode"] = run_decode(args, models, log)
    if not args.no_ablations:
        if not args.no_bf16:
            models["bf16"] = build_swcm(args.size, dtype=torch.bfloat16)
        report["ablations"] = run_ablations(args, models, log)
    if args.compile:
        report["torch_compile"] = try_compile(args, log)
    if args.quant_methods:
        for name in ("bf16", "bart"):  # done with; the candidates need the memory
            models.pop(name, None)
        gc.collect()
        report["quantization"] = run_quantization(args, models["cached"], log)
    models.clear()
    gc.collect()
    report["quality"] = {"skipped": "skipped: --no-quality"} if args.no_quality else run_quality(args, log)
    report["training"] = run_training(args, log) if args.train_modes else []
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def run_meta(args) -> dict:
    """What ran where: size, threads, versions, processor, load, repeats, the command line and the commit."""
    import transformers

    from xlm_swcm_experiments.runs import git_commit

    return {
        "size": args.size,
        "dims": SIZES[args.size],
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "nocache_repeats": args.nocache_repeats,
        "argv": sys.argv[1:],
        "commit": git_commit("xlm_swcm_experiments/benchmark"),
    }


def weights_and_bandwidth(size: str, models: dict, log) -> dict:
    """The weights one cached step reads (ours and BART's), the machine's bandwidth and the bound they give."""
    bandwidth = measure_bandwidth(32 if size == "tiny" else 512)
    swcm_w, bart_w = weights_read_per_token(models["cached"]), weights_read_per_token(models["bart"])
    ratio = swcm_w["bytes"] / bart_w["bytes"]
    bound = swcm_w["bytes"] / (bandwidth["GBps"] * 1e9) * 1e3
    log(f"  bandwidth {bandwidth['GBps']:.1f} GB/s; bound {bound:.1f} ms/token; weights ratio {ratio:.3f}")
    return {
        "bandwidth": bandwidth,
        "weights_read_per_token": {"swcm": swcm_w, "bart": bart_w, "ratio_swcm_over_bart": ratio},
        "bandwidth_bound_ms_per_token": bound,
    }
