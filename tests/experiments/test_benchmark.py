"""The benchmark's output structure (tiny size, no wall-clock assertions); the fast paths it measures are checked in
tests/library/test_fast_paths.py."""

import json

import pytest
import torch
from conftest import pairs_model_folder, tiny_model, write_jsonl

from xlm_swcm_hf.checks import InputError


# ---------------------------------------------------------------- benchmark structure


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    from xlm_swcm_experiments.benchmark import main

    out = tmp_path_factory.mktemp("bench")
    report = main(
        [
            "--size",
            "tiny",
            "--repeats",
            "1",
            "--lengths",
            "2,3",
            "--lengths-for",
            "beam5=2",
            "--ablation-length",
            "2",
            "--train-modes",
            "fp32,grad_checkpointing",
            "--train-repeats",
            "1",
            "--train-in-process",
            "--quant-methods",
            "bf16,int8",
            "--quant-length",
            "3",
            "--quality-model",
            str(out / "no-demo-model"),
            "--out-dir",
            str(out),
        ]
    )
    return out, report


def test_benchmark_writes_json_markdown_and_plot(tiny_report):
    out, report = tiny_report
    data = json.loads((out / "benchmark.json").read_text())
    assert set(data) >= {
        "meta",
        "bandwidth",
        "weights_read_per_token",
        "bandwidth_bound_ms_per_token",
        "encoder",
        "call_counts",
        "decode",
        "ablations",
        "training",
        "quantization",
        "quality",
        "targets",
    }
    assert data["meta"]["size"] == "tiny" and data["bandwidth"]["GBps"] > 0
    assert data["weights_read_per_token"]["ratio_swcm_over_bart"] > 1  # two FFNs per custom layer + head bias

    keys = {(r["config"], r["impl"], r["new_tokens"]) for r in data["decode"]}
    for impl in ("cached", "no_cache", "bart"):
        assert {("greedy_b1", impl, 2), ("greedy_b1", impl, 3), ("greedy_b8", impl, 3), ("beam5", impl, 2)} <= keys
    for row in data["decode"]:
        assert set(row["ms_per_step"]) == {"min_ms", "median_ms", "runs_ms"}
        assert len(row["ms_per_step"]["runs_ms"]) == 1
        assert row["ms_per_step"]["min_ms"] <= row["ms_per_step"]["median_ms"]
    assert set(data["encoder"]) == {"batch1", "batch8"}

    # The cache keeps the encoder and the cross-attention k/v to one computation per generate call.
    for check in data["call_counts"]:
        assert check["encoder_calls"] == 1
        assert check["cross_kv_computed_once"] == check["use_cache"]

    variants = {(r["config"], r["variant"]) for r in data["ablations"]}
    assert {("greedy_b1", v) for v in ("default", "eager_attention", "no_transposed_head", "bf16_weights")} <= variants
    for row in data["ablations"]:
        if row["variant"] != "bf16_weights":
            assert row["tokens_identical_to_default"] is True

    modes = {r["mode"]: r for r in data["training"]}
    assert set(modes) == {"fp32", "grad_checkpointing"}
    for row in modes.values():
        assert "error" not in row, row.get("error")
        assert row["step"]["median_ms"] > 0 and row["peak_rss_bytes"] > 0

    # Every candidate beside fp32, timed at batch 1 and 8 in the same run, with its memory and token agreement.
    quant = {row["candidate"]: row for row in data["quantization"]["rows"]}
    assert list(quant) == ["fp32", "bf16", "int8"] and data["quantization"]["new_tokens"] == 3
    for row in quant.values():
        assert row["greedy_b1"]["median_ms"] > 0 and row["greedy_b8"]["median_ms"] > 0
        assert 0 <= row["identical_token_share"] <= 1 and row["greedy_b8_agreement"]["positions"] == 8 * 3
        assert row["rss_bytes"] > 0 and row["peak_rss_bytes"] >= row["rss_bytes"]
    assert quant["fp32"]["identical_token_share"] == 1.0
    assert quant["int8"]["weight_bytes"] < quant["bf16"]["weight_bytes"] < quant["fp32"]["weight_bytes"]
    assert data["quality"]["skipped"].startswith("skipped:") and "make demo" in data["quality"]["skipped"]

    names = [t["target"] for t in data["targets"]]
    assert len(names) == 13 and all(set(t) == {"target", "value", "goal", "met", "note"} for t in data["targets"])
    assert {"int8 / fp32 ms per step, greedy b1 3 tokens", "int8 chrF - fp32 chrF (demo model, greedy)"} <= set(names)

    table = (out / "benchmark.md").read_text()
    for heading in ("## Decode", "## Fast paths", "## Training step", "## Quantized CPU inference", "## Targets"):
        assert heading in table
    assert "| int8 |" in table and "| bf16 |" in table and "make demo" in table
    assert "| greedy_b8 | 3 |" in table
    assert (out / "decode_ms_per_step.png").stat().st_size > 0


def test_benchmark_render_only_writes_the_same_markdown_from_the_stored_json(tiny_report, tmp_path):
    from xlm_swcm_experiments.benchmark import main

    out, _ = tiny_report
    main(["--render-only", str(out / "benchmark.json"), "--out-dir", str(tmp_path), "--no-plot"])
    assert (tmp_path / "benchmark.md").read_bytes() == (out / "benchmark.md").read_bytes()
    assert not (tmp_path / "benchmark.json").exists() and not (tmp_path / "decode_ms_per_step.png").exists()
    with pytest.raises(InputError, match="--render-only .* is not a file"):
        main(["--render-only", str(tmp_path / "missing.json"), "--out-dir", str(tmp_path)])


def test_benchmark_weights_read_counts_what_a_cached_step_reads():
    from xlm_swcm_experiments.benchmark import build_swcm, weights_read_per_token

    model = build_swcm("tiny")
    counted = weights_read_per_token(model)["parameters"]
    decoder = sum(p.numel() for p in model.model.decoder.parameters())
    cross_kv = sum(
        p.numel()
        for layer in model.model.decoder.layers
        for p in (*layer.encoder_attn.k_proj.parameters(), *layer.encoder_attn.v_proj.parameters())
    )
    assert counted == decoder - cross_kv + sum(p.numel() for p in model.lm_head.parameters())


def test_benchmark_quality_check_on_a_trained_folder(tmp_path):
    """The real-model quality check, run on a tiny folder: chrF for fp32 and int8, identical-output share."""
    from xlm_swcm_experiments.benchmark import parse_args, run_quality

    rows = [{"source": f"hello world {i}", "target": f"salam dunya {i}"} for i in range(5)]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    pairs_model_folder(tmp_path / "final", rows, max_new_tokens=4)

    args = parse_args(["--quality-model", str(tmp_path / "final"), "--quality-data", str(data)])
    result = run_quality(args, log=lambda message: None)
    assert result["sentences"] == 5 and result["generation"]["num_beams"] == 1
    assert result["fp32"]["chrf"] >= 0 and set(result["int8"]) >= {"chrf", "chrf_delta", "identical_outputs"}
    assert 0 <= result["int8"]["identical_outputs"] <= 1

    data.write_text(json.dumps({"text": "no source"}) + "\n")
    with pytest.raises(InputError, match="test.jsonl:1: every line needs string 'source' and 'target'"):
        run_quality(args, log=lambda message: None)


def test_benchmark_weight_bytes_counts_stored_bytes():
    from xlm_swcm_experiments.benchmark import make_candidate, weight_bytes

    model = tiny_model(hidden_size=64, intermediate_size=256)
    fp32 = weight_bytes(model)
    assert fp32 == sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    int8 = weight_bytes(make_candidate(model, "int8"))
    # 4 -> 1 byte per linear weight; each output channel gains a float64 scale and an int64 zero point
    assert fp32 - int8 == sum(3 * m.weight.numel() - 16 * m.out_features for m in linears)
    integers = sum(t.numel() * t.element_size() for t in model.buffers() if not t.is_floating_point())
    assert 2 * (weight_bytes(make_candidate(model, "bf16")) - integers) == fp32 - integers
