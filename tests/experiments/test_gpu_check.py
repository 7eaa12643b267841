"""scripts/gpu_check.py on a CPU: the no-CUDA skip and exit status, the table, the check registry and skip logic,
failures turning into rows and exit status 1, and the checks themselves run on the CPU at tiny size."""

import json

import pytest
import torch
from conftest import run_script

from xlm_swcm_experiments import gpu_check
from xlm_swcm_experiments.gpu_check import (
    CHECKS,
    EXIT_FAILED,
    EXIT_NO_CUDA,
    EXIT_PASSED,
    Check,
    CheckFailed,
    Context,
    Row,
    exit_status,
    format_table,
    run_checks,
    skip_reason,
)


CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # a device object only: nothing runs on it here


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_without_cuda_every_check_is_skipped_and_the_status_is_distinct(no_cuda, tmp_path, capsys):
    code = run_script("gpu_check", ["--json", tmp_path / "report.json"])
    assert code == EXIT_NO_CUDA == 3
    out = capsys.readouterr().out
    for check in CHECKS:
        assert f"| {check.section} | {check.name} | skipped: no CUDA |" in out
    assert "no CUDA: nothing checked" in out and "exit status 3" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exit_status"] == 3 and len(report["rows"]) == len(CHECKS)


def test_the_registry_covers_the_issue():
    names = [check.name for check in CHECKS]
    assert names == ["train_fp16", "train_bf16", "generate_matches_cpu", "sdpa", "lora", "decode_bf16"]
    assert len(set(names)) == len(names)
    assert next(c for c in CHECKS if c.name == "train_fp16").needs_cuda  # fp16 training needs a GPU
    assert next(c for c in CHECKS if c.name == "lora").needs_packages == ("peft",)


def test_skip_reasons():
    lora = next(c for c in CHECKS if c.name == "lora")
    fp16 = next(c for c in CHECKS if c.name == "train_fp16")
    assert skip_reason(lora, None) == "skipped: no CUDA"
    assert skip_reason(lora, CUDA, package_available=lambda name: False) == "skipped: peft not installed"
    assert skip_reason(lora, CUDA, package_available=lambda name: True) is None
    assert skip_reason(fp16, CPU) == "skipped: needs CUDA (running on cpu)"
    assert skip_reason(fp16, CUDA) is None


def test_failures_become_rows_and_exit_status_1():
    def boom(ctx):
        raise RuntimeError("kernel | exploded\nbadly")

    def wrong(ctx):
        raise CheckFailed("expected 1, got 2")

    checks = [
        Check("ok", "a", "passes", lambda ctx: {"value": 1}, needs_cuda=False),
        Check("wrong", "a", "a wrong result", wrong, needs_cuda=False),
        Check("boom", "b", "raises", boom, needs_cuda=False),
        Check("gpu_only", "b", "needs CUDA", lambda ctx: {}),
        Check("needs_pkg", "b", "needs a package", lambda ctx: {}, needs_cuda=False, needs_packages=("nope_pkg",)),
    ]
    rows = run_checks(checks, Context(CPU, "tiny"), log=lambda message: None)
    status = {row.name: row.status for row in rows}
    assert status == {
        "ok": "pass",
        "wrong": "FAIL: expected 1, got 2",
        "boom": "FAIL: RuntimeError: kernel | exploded\nbadly",
        "gpu_only": "skipped: needs CUDA (running on cpu)",
        "needs_pkg": "skipped: nope_pkg not installed",
    }
    assert exit_status(rows, CPU) == EXIT_FAILED
    assert exit_status([rows[0], rows[3]], CPU) == EXIT_PASSED
    assert exit_status([rows[3]], None) == EXIT_NO_CUDA
    assert exit_status(rows, None) == EXIT_FAILED

    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| section | check | status | s | details |" and len(lines) == 2 + len(checks)
    assert "| a | ok | pass |" in table and "value=1" in table
    assert "kernel / exploded badly" in table  # no pipe or newline breaks the table
    assert all(line.count("|") == 6 for line in lines)
    assert format_table([Row("x", "y", "skipped: no CUDA")]).splitlines()[-1] == "| x | y | skipped: no CUDA |  |  |"


def test_bad_arguments_are_one_error_line(no_cuda, capsys):
    assert run_script("gpu_check", ["--checks", "train_fp17"]) == 2
    assert "error: Unknown or no checks ['train_fp17']; choose from" in capsys.readouterr().err
    assert run_script("gpu_check", ["--device", "cuda"]) == 2
    assert "error: --device cuda was asked for, but torch sees no CUDA device." in capsys.readouterr().err


def test_checks_run_on_the_cpu_at_tiny_size(capsys):
    """The checks' own code, on the CPU: fp16 training is skipped there, everything else must pass."""
    checks = "train_fp16,generate_matches_cpu,sdpa,decode_bf16"
    code = run_script("gpu_check", ["--device", "cpu", "--size", "tiny", "--checks", checks])
    out = capsys.readouterr().out
    assert code == EXIT_PASSED, out
    assert "| training | train_fp16 | skipped: needs CUDA (running on cpu) |" in out
    assert "| generation | generate_matches_cpu | pass |" in out and "beams4=equal" in out
    assert "| speed | decode_bf16 | pass |" in out and "b8_vs_bart=" in out


def test_bf16_training_and_lora_checks_on_the_cpu():
    ctx = Context(CPU, "tiny")
    details = gpu_check.check_train_bf16(ctx)
    assert details["loss_last"] < details["loss_first"] and "grad_scale" not in details
    pytest.importorskip("peft")
    details = gpu_check.check_lora(ctx)
    assert details["trainable_parameters"] > 0 and details["loss_last"] < details["loss_first"]
