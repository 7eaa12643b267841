"""One-GPU check of XLM-SWCM (entry point: scripts/gpu_check.py): training in fp16 and bf16, generation on CUDA equal
to CPU, sdpa attention, LoRA through peft, and the full-size decode step in bf16 next to BART. Under 5 minutes on one
CUDA GPU; prints a table and exits non-zero on any failure.

Exit status: 0 every check that ran passed (a check may be skipped, e.g. "skipped: peft not installed"); 1 a check
failed; 3 no CUDA device: nothing was checked, every row says "skipped: no CUDA" (distinct from 0, so a CPU machine
never passes for a GPU one); 2 bad arguments.

The checks are plain functions (in `gpu_check_suite.py`) registered in `CHECKS`; each takes a `Context` (device,
sizes) and returns its measurements or raises `CheckFailed`. `--device cpu --size tiny` runs them on the CPU where
they can (the tests do), fp16 training excepted.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Callable

import torch

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, require_writable_output
from xlm_swcm_hf.files import atomic_write_json
from xlm_swcm_hf.training.reporting import markdown_table

from .gpu_check_suite import (
    SIZES,
    CheckFailed,
    Context,
    check_decode_bf16,
    check_generate_matches_cpu,
    check_lora,
    check_sdpa,
    check_train_bf16,
    check_train_fp16,
)


EXIT_PASSED, EXIT_FAILED, EXIT_NO_CUDA = 0, 1, 3


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    section: str
    description: str
    run: Callable[[Context], dict]
    needs_cuda: bool = True  # False: also meaningful on the CPU (with --device cpu)
    needs_packages: tuple[str, ...] = ()


@dataclasses.dataclass
class Row:
    section: str
    name: str
    status: str  # "pass", "FAIL: ...", "skipped: ..."
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAIL")

    @property
    def skipped(self) -> bool:
        return self.status.startswith("skipped")


CHECKS = [
    Check(
        "train_fp16",
        "training",
        "Seq2SeqTrainer, fp16, demo-sized model: loss finite and falling, grad scaler on",
        check_train_fp16,
    ),
    Check(
        "train_bf16",
        "training",
        "Seq2SeqTrainer, bf16, demo-sized model: loss finite and falling, no scaler",
        check_train_bf16,
        needs_cuda=False,
    ),
    Check(
        "generate_matches_cpu",
        "generation",
        "cached greedy and beam search on CUDA = CPU fp32 tokens (tiny)",
        check_generate_matches_cpu,
        needs_cuda=False,
    ),
    Check(
        "sdpa",
        "attention",
        "sdpa logits = eager logits (fp32); sdpa runs in bf16 with padding",
        check_sdpa,
        needs_cuda=False,
    ),
    Check(
        "lora",
        "adapters",
        "LoRA via peft: only adapters train, loss falls, merged model generates",
        check_lora,
        needs_cuda=False,
        needs_packages=("peft",),
    ),
    Check(
        "decode_bf16",
        "speed",
        "full-size greedy decode step in bf16, batch 1 and 8, vs BART of the same size",
        check_decode_bf16,
        needs_cuda=False,
    ),
]


# ------------------------------------------------------------------------------------------------ running


def skip_reason(check: Check, device: torch.device | None, package_available=None) -> str | None:
    """Why `check` cannot run here ("skipped: no CUDA", "skipped: peft not installed"), or None."""
    package_available = package_available or (lambda name: importlib.util.find_spec(name) is not None)
    if device is None:
        return "skipped: no CUDA"
    if check.needs_cuda and device.type != "cuda":
        return f"skipped: needs CUDA (running on {device.type})"
    for package in check.needs_packages:
        if not package_available(package):
            return f"skipped: {package} not installed"
    return None


def run_checks(checks, ctx: Context | None, log=print, package_available=None) -> list[Row]:
    """Run each check (or skip it), catching its failure: one row per check. `ctx` None means no CUDA."""
    rows = []
    for check in checks:
        reason = skip_reason(check, ctx.device if ctx else None, package_available)
        if reason:
            rows.append(Row(check.section, check.name, reason))
            continue
        log(f"running {check.name}: {check.description}")
        start = time.perf_counter()
        try:
            details = check.run(ctx) or {}
            status = "pass"
        except CheckFailed as error:
            details, status = {}, f"FAIL: {error}"
        except Exception as error:  # an exception is a failure of that check, not of the whole run
            details, status = {}, f"FAIL: {type(error).__name__}: {str(error)[:300]}"
        rows.append(Row(check.section, check.name, status, time.perf_counter() - start, details))
        log(f"  {status} ({rows[-1].seconds:.1f} s)")
    return rows


def exit_status(rows: list[Row], device: torch.device | None) -> int:
    """1 on any failure; 3 when there was no device to check on (no CUDA and no --device); else 0."""
    if any(row.failed for row in rows):
        return EXIT_FAILED
    return EXIT_NO_CUDA if device is None else EXIT_PASSED


def format_table(rows: list[Row]) -> str:
    """A markdown table: section, check, status, seconds, details (key=value pairs)."""
    clean = lambda text: str(text).replace("|", "/").replace("\n", " ")  # no pipe or newline breaks the table
    cells = [
        [
            row.section,
            row.name,
            clean(row.status),
            f"{row.seconds:.1f}" if not row.skipped else "",
            clean(", ".join(f"{key}={value}" for key, value in row.details.items())),
        ]
        for row in rows
    ]
    headers = ["section", "check", "status", "s", "details"]
    return markdown_table(headers, cells, numeric=[False, False, False, True, False]).rstrip("\n")


def parse_args(argv=None):
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", default=",".join(check.name for check in CHECKS), help="comma-separated subset")
    parser.add_argument("--device", default=None, help="default: cuda if available; 'cpu' runs what can run there")
    parser.add_argument("--size", choices=list(SIZES), default=None, help="default: gpu on CUDA, tiny on the CPU")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    names = [name for name in args.checks.split(",") if name]
    known = {check.name for check in CHECKS}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InputError(f"Unknown or no checks {unknown}; choose from {', '.join(sorted(known))}.")
    args.checks = [check for check in CHECKS if check.name in names]
    if args.json:  # before any check runs: a report that cannot be written would be lost after minutes of work
        require_writable_output(args.json, "--json", folder=False)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device is not None:
        try:
            device = torch.device(args.device)
        except RuntimeError as error:
            raise InputError(f"--device {args.device!r} is not a torch device ({error}).") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but torch sees no CUDA device.")
    else:
        device = torch.device("cuda") if torch.cuda.is_available() else None
    cuda = device is not None and device.type == "cuda"
    ctx = None
    if device is not None:
        ctx = Context(device=device, size=args.size or ("gpu" if cuda else "tiny"))
        if cuda:
            name = torch.cuda.get_device_name(device)
            print(f"gpu_check on {name}, torch {torch.__version__}, size {ctx.size}", flush=True)
    started = time.perf_counter()
    rows = run_checks(args.checks, ctx, log=lambda message: print(message, flush=True))
    print(format_table(rows))
    status = exit_status(rows, device)
    summary = {EXIT_PASSED: "all checks passed", EXIT_FAILED: "FAILED", EXIT_NO_CUDA: "no CUDA: nothing checked"}
    print(f"{summary[status]} ({time.perf_counter() - started:.0f} s); exit status {status}")
    if args.json:
        report = {"device": str(device), "exit_status": status, "rows": [dataclasses.asdict(row) for row in rows]}
        atomic_write_json(args.json, report, indent=1, ensure_ascii=True)
    return status
