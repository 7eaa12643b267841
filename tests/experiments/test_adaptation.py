"""LoRA vs full fine-tuning (scripts/lora_vs_full.py): paired runs in their own processes, a table, bad input."""

import json

import pytest
from conftest import run_script, tiny_recipe

from xlm_swcm_experiments.adaptation import summarise
from xlm_swcm_hf.training import run_training


pytest.importorskip("peft")


@pytest.fixture(scope="module")
def trained_folder(real_pairs, tiny_encoder, tmp_path_factory):  # noqa: F811
    output = tmp_path_factory.mktemp("trained") / "run"
    run_training(tiny_recipe(real_pairs, tiny_encoder, output, "training.max_steps=8", "training.eval_strategy=no"))
    return output / "final"


def test_lora_and_full_runs_are_paired_measured_and_tabled(
    real_pairs,
    tiny_encoder,
    trained_folder,
    tmp_path,
    capsys,  # noqa: F811
):
    argv = [
        "--model",
        trained_folder,
        "--config",
        "configs/tiny.yaml",
        "--data",
        real_pairs,
        "--seeds",
        "0,1",
        "--steps",
        "3",
        "--output",
        tmp_path / "out",
        "--docs",
        tmp_path / "docs",
        f"model.encoder={tiny_encoder}",
    ]
    assert run_script("lora_vs_full", argv) == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], r["seed"]) for r in records) == [("full", 0), ("full", 1), ("lora", 0), ("lora", 1)]
    by_mode = {r["mode"]: r for r in records if r["seed"] == 0}
    assert 0 < by_mode["lora"]["trainable_parameters"] < by_mode["full"]["trainable_parameters"] / 10
    assert all(r["peak_rss_mb"] > 100 and r["steps_reached"] == 3 and r["test_nll"] > 0 for r in records)
    assert by_mode["lora"]["data_order"] == by_mode["full"]["data_order"]  # same seed, same batches
    text = (tmp_path / "docs" / "lora_vs_full.md").read_text()
    assert "| lora |" in text and "| full |" in text and "LoRA minus full fine-tuning, paired over seeds [0, 1]" in text
    assert "Verdicts:" in text
    # a second call finds every run done and trains nothing; the docs it wrote are rewritten only when asked
    assert run_script("lora_vs_full", argv) == 2
    assert "lora_vs_full.md exists" in capsys.readouterr().err
    assert run_script("lora_vs_full", [*argv, "--replace-docs"]) == 0
    assert len((tmp_path / "out" / "runs.jsonl").read_text().splitlines()) == 4


def test_summary_says_no_difference_when_the_interval_contains_zero():
    def record(mode, seed, nll):
        return dict(
            mode=mode,
            seed=seed,
            learning_rate=1e-3,
            trainable_parameters=10 if mode == "lora" else 100,
            peak_rss_mb=500,
            step_seconds=1.0,
            test_nll=nll,
            chrf=5.0,
            sentence_nll=[nll * 2] * 4,
            sentence_tokens=[2] * 4,
        )

    records = [
        record("full", 0, 4.0),
        record("full", 1, 4.2),
        record("full", 2, 4.1),
        record("lora", 0, 4.1),
        record("lora", 1, 4.0),
        record("lora", 2, 4.2),
    ]
    summary = summarise(records, resamples=200)
    assert "no difference shown" in summary["verdict_nll"]
    worse = [*records[:3], record("lora", 0, 5.0), record("lora", 1, 5.3), record("lora", 2, 5.1)]
    assert "LoRA is worse than full fine-tuning" in summarise(worse, resamples=200)["verdict_nll"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no/such/folder"], "--model no/such/folder does not exist"),
        (["--seeds", "0,0"], "--seeds needs distinct values"),
        (["--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_bad_input_is_refused_before_any_run(argv, message, tmp_path, capsys):
    assert run_script("lora_vs_full", [*argv, "--output", tmp_path / "out"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
