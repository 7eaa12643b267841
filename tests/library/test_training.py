"""Seq2SeqTrainer recipes on a tiny model and real sentence pairs (CLDR/Django/pycountry via PyPI packages)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_script, tiny_recipe, write_jsonl
from transformers import AutoTokenizer, TrainerCallback

from xlm_swcm_hf.training import RecipeError, build, run_training


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def final_parameters(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "final" / "model.safetensors"))


def test_the_source_languages_are_the_train_split_s_src_lang_of_the_trained_targets(tmp_path):
    from xlm_swcm_hf.recipe import Recipe
    from xlm_swcm_hf.training.build import load_raw_splits, source_languages

    rows = [
        {"source": "en: a", "target": "b", "lang": "ug", "src_lang": "en"},
        {"source": "zh: a", "target": "b", "lang": "kk", "src_lang": "zh"},
        {"source": "ru: a", "target": "b", "lang": "ug", "src_lang": "ru"},
    ]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    without = write_jsonl(tmp_path / "plain.jsonl", [{k: v for k, v in row.items() if k != "src_lang"} for row in rows])

    def recipe(path, **data):
        return Recipe.from_dict(
            {"model": {"encoder": "x"}, "data": {"train_file": str(path), **data}, "training": {"output_dir": "x"}}
        )

    everything = recipe(train)
    assert source_languages(everything, load_raw_splits(everything)) == ["en", "ru", "zh"]
    ug_only = recipe(train, train_languages=["ug"])
    assert source_languages(ug_only, load_raw_splits(ug_only)) == ["en", "ru"]
    assert source_languages(recipe(without), load_raw_splits(recipe(without))) == []


def test_bf16_training_lowers_loss_writes_everything_and_resumes_exactly(real_pairs, tiny_encoder, tmp_path):
    straight = tmp_path / "straight"
    metrics = run_training(tiny_recipe(real_pairs, tiny_encoder, straight, "training.max_steps=30"))
    history = json.loads((straight / "log_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0] * 0.8, losses
    untrained = build(tiny_recipe(real_pairs, tiny_encoder, tmp_path / "untrained")).trainer.evaluate()["eval_loss"]
    assert metrics["validation"]["eval_loss"] < untrained - 0.5, (metrics["validation"]["eval_loss"], untrained)
    for name in ("metrics.json", "loss_curve.png", "test/predictions.jsonl", "test/metrics.json", "test/metrics.md"):
        assert (straight / name).exists(), name
    final = straight / "final"
    for name in (
        "model.safetensors",
        "config.json",
        "modeling_xlm_swcm.py",
        "tokenizer.json",
        "README.md",
        "metrics.json",
        "loss_curve.png",
    ):
        assert (final / name).exists(), name
    test_metrics = json.loads((straight / "test" / "metrics.json").read_text())
    assert set(test_metrics) == {"all", "kk", "mn", "ug", "zh"}
    assert {"rougeL", "rougeL_precision", "rougeL_recall", "chrf", "bleu"} <= set(test_metrics["all"])

    # Interrupted at step 20 (checkpoints every 10), then resumed: same step count, same weights as straight through.
    interrupted = tmp_path / "interrupted"
    run_training(tiny_recipe(real_pairs, tiny_encoder, interrupted, "training.max_steps=30"), callbacks=[StopAt(20)])
    assert (interrupted / "checkpoint-20").exists() and not (interrupted / "checkpoint-30").exists()
    with pytest.raises(RecipeError, match="--resume"):
        run_training(tiny_recipe(real_pairs, tiny_encoder, interrupted, "training.max_steps=30"))
    run_training(tiny_recipe(real_pairs, tiny_encoder, interrupted, "training.max_steps=30"), resume=True)
    state = json.loads((interrupted / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30
    resumed_losses = [e["loss"] for e in json.loads((interrupted / "log_history.json").read_text()) if "loss" in e]
    assert resumed_losses == pytest.approx(losses, rel=1e-4)
    expected, actual = final_parameters(straight), final_parameters(interrupted)
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-5), name


def test_recipe_errors_are_clear(real_pairs, tiny_encoder, tmp_path):
    with pytest.raises(RecipeError, match="init='magic' is invalid"):
        tiny_recipe(real_pairs, tiny_encoder, tmp_path, "model.init=magic")
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="fp16 needs a CUDA GPU"):
            tiny_recipe(real_pairs, tiny_encoder, tmp_path, "training.fp16=true", "training.bf16=false")
    with pytest.raises(RecipeError, match="resume"):
        run_training(tiny_recipe(real_pairs, tiny_encoder, tmp_path / "empty"), resume=True)


def test_cross_lingual_recipe_trains_on_one_language_and_reports_each(real_pairs, tiny_encoder, tmp_path):
    output = tmp_path / "zh-only"
    run_training(
        tiny_recipe(
            real_pairs,
            tiny_encoder,
            output,
            "training.max_steps=4",
            "training.eval_strategy=no",
            "data.train_languages=[zh]",
            "data.eval_languages=[ug, kk, zh]",
            "model.init=random_decoder",
        )
    )
    table = (output / "test" / "metrics.md").read_text()
    assert all(f"| {language} |" in table for language in ("ug", "kk", "zh")) and "| mn |" not in table


def test_evaluate_script_writes_predictions_and_metrics(real_pairs, tiny_encoder, tmp_path):
    output = tmp_path / "run"
    run_training(tiny_recipe(real_pairs, tiny_encoder, output, "training.max_steps=3", "training.eval_strategy=no"))
    assert (
        run_script(
            "evaluate_model",
            [
                "--model",
                output / "final",
                "--data",
                real_pairs / "test.jsonl",
                "--output",
                tmp_path / "eval",
                "--num-beams",
                "2",
                "--max-new-tokens",
                "8",
                "--trust-remote-code",
            ],
        )
        == 0
    )
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and {"source", "reference", "prediction", "lang"} <= set(predictions[0])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["all"]["count"] == 24 and sum(metrics[k]["count"] for k in ("ug", "kk", "mn", "zh")) == 24
    # the off-target share per language and overall, from the written predictions and their tags
    from xlm_swcm_hf.metrics import off_target_rate

    for group in ("all", "ug", "kk", "mn", "zh"):
        rows = [row for row in predictions if group in ("all", row["lang"])]
        expected = off_target_rate([row["prediction"] for row in rows], [row["lang"] for row in rows])
        assert metrics[group]["off_target"] == expected, group
    assert "off-target %" in (tmp_path / "eval" / "metrics.md").read_text()


def test_pretraining_recipe_mixes_denoising_and_translation(real_pairs, tiny_encoder, tmp_path):
    monolingual = tmp_path / "mono"
    monolingual.mkdir()
    for language in ("ug", "zh"):
        rows = [json.loads(line) for line in (real_pairs / "train.jsonl").read_text().splitlines()]
        texts = [row["target"] for row in rows if row["lang"] == language]
        write_jsonl(monolingual / f"{language}.jsonl", [{"text": t} for t in texts])
    output = tmp_path / "pretrain"
    recipe = tiny_recipe(
        real_pairs,
        tiny_encoder,
        output,
        "data.task=denoising",
        "training.max_steps=6",
        "training.eval_strategy=no",
        f"data.monolingual_files={{ug: {monolingual / 'ug.jsonl'}, zh: {monolingual / 'zh.jsonl'}}}",
        f"data.translation_files={{train: {real_pairs / 'train.jsonl'}}}",
        "data.mt_ratio=0.5",
    )
    metrics = run_training(recipe)
    assert metrics["train"]["train_loss"] > 0
    assert (output / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_two_process_training_keeps_replicas_identical(real_pairs, tiny_encoder, tmp_path):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun is not installed")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    output = tmp_path / "ddp"
    command = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(ROOT / "scripts" / "train.py"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"model.encoder={tiny_encoder}",
        f"data.train_file={real_pairs / 'train.jsonl'}",
        f"data.validation_file={real_pairs / 'validation.jsonl'}",
        f"data.test_file={real_pairs / 'test.jsonl'}",
        f"training.output_dir={output}",
        "training.max_steps=6",
        "training.eval_strategy=no",
        "training.ddp_backend=gloo",
        "training.per_device_train_batch_size=8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    checksums = {path.name: path.read_text() for path in (output / "replica_checksums").iterdir()}
    assert sorted(checksums) == ["rank0.txt", "rank1.txt"]
    assert len(set(checksums.values())) == 1
    state = json.loads((output / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6


def test_training_without_matplotlib_skips_the_plot_with_a_note(
    real_pairs, tiny_encoder, tmp_path, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the core install has no matplotlib
    output = tmp_path / "core"
    run_training(tiny_recipe(real_pairs, tiny_encoder, output, "training.max_steps=2", "training.eval_strategy=no"))
    assert (output / "final" / "model.safetensors").exists() and (output / "metrics.json").exists()
    assert not (output / "loss_curve.png").exists() and not (output / "final" / "loss_curve.png").exists()
    assert "matplotlib is not installed" in caplog.text


def test_evaluate_writes_beside_the_model_folder_by_default(real_pairs, tiny_encoder, tmp_path):
    output = tmp_path / "run"
    run_training(
        tiny_recipe(
            real_pairs,
            tiny_encoder,
            output,
            "training.max_steps=2",
            "training.eval_strategy=no",
            "generation.max_new_tokens=4",
            "generation.num_beams=1",
        )
    )
    before = sorted(path.name for path in (output / "final").iterdir())
    assert run_script("evaluate_model", ["--model", output / "final", "--data", real_pairs / "test.jsonl"]) == 0
    assert sorted(path.name for path in (output / "final").iterdir()) == before  # nothing written into the model
    assert (output / "final-eval-test" / "metrics.json").exists()
    # The folder's generation_config carries the recipe's settings: the evaluation used them without options.
    predictions = [json.loads(line) for line in (output / "final-eval-test" / "predictions.jsonl").open()]
    tokenizer = AutoTokenizer.from_pretrained(output / "final")
    assert max(len(tokenizer(p["prediction"], add_special_tokens=False)["input_ids"]) for p in predictions) <= 4
