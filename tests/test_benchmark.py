"""The benchmark's output structure (tiny size, no wall-clock assertions) and the inference fast paths' outputs."""

import json

import pytest
import torch
from conftest import padded_batch, tiny_model


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

    names = [t["target"] for t in data["targets"]]
    assert len(names) == 10 and all(set(t) == {"target", "value", "goal", "met", "note"} for t in data["targets"])

    table = (out / "benchmark.md").read_text()
    for heading in ("## Decode", "## Fast paths", "## Training step", "## Targets"):
        assert heading in table
    assert "| greedy_b8 | 3 |" in table
    assert (out / "decode_ms_per_step.png").stat().st_size > 0


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


# ---------------------------------------------------------------- fast paths give the same outputs


def test_transposed_lm_head_matches_the_linear_head():
    model = tiny_model()
    batch = padded_batch()
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])
    with torch.no_grad():
        fast = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
        hidden = model.model(**batch, decoder_input_ids=targets).last_hidden_state
    assert "_lm_head_t_cache" in model.__dict__
    assert list(model.state_dict()) == list(tiny_model().state_dict())
    torch.testing.assert_close(fast, model.lm_head(hidden[:, -1:]), rtol=1e-5, atol=1e-5)

    model.lm_head_transposed_inference = False
    generated_plain = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    model.lm_head_transposed_inference = True
    generated_fast = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    assert torch.equal(generated_plain, generated_fast)

    # A changed head weight is picked up; training uses the parameter itself.
    with torch.no_grad():
        model.lm_head.weight.mul_(0.5)
        again = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
    torch.testing.assert_close(again, model.lm_head(hidden[:, -1:]), rtol=1e-5, atol=1e-5)
    model.train()
    model(**batch, labels=targets).loss.backward()
    assert model.lm_head.weight.grad is not None and "_lm_head_t_cache" not in model.__dict__


def test_last_position_head_equals_the_full_head():
    model = tiny_model()
    batch = padded_batch()
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])
    with torch.no_grad():
        full = model(**batch, decoder_input_ids=targets).logits
        last = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
    assert last.shape[1] == 1
    torch.testing.assert_close(last, full[:, -1:], rtol=1e-5, atol=1e-5)


def test_fast_paths_keep_generation_identical_to_no_cache():
    model = tiny_model()
    batch = padded_batch()
    for beams in (1, 3):
        cached = model.generate(**batch, max_new_tokens=8, min_new_tokens=8, num_beams=beams, do_sample=False)
        uncached = model.generate(
            **batch, max_new_tokens=8, min_new_tokens=8, num_beams=beams, do_sample=False, use_cache=False
        )
        assert torch.equal(cached, uncached)


def test_bf16_weights_generate_on_cpu():
    model = tiny_model().to(torch.bfloat16)
    out = model.generate(**padded_batch(), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (2, 6)
