"""The demo's learning curve: scores per language, the callback's points at the chosen steps, the rendered files."""

import json
from types import SimpleNamespace

import pytest
from conftest import load_folder, run_script, translating_model_folder

from xlm_swcm_experiments.demo.learning_curve import (
    CURVE_JSON,
    LearningCurveCallback,
    render_markdown,
    score_by_language,
    write_outputs,
)
from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.training.evaluation import generate_predictions


ROWS = [
    {"source": "ug: Argentine Peso", "target": "ئارگېنتىنا پېسوسى", "lang": "ug"},
    {"source": "zh: Argentine Peso", "target": "阿根廷比索", "lang": "zh"},
    {"source": "ug: Maltese Lira", "target": "مالتا لىراسى", "lang": "ug"},
]


def test_scores_are_sacrebleu_corpus_chrf_overall_and_per_language():
    from sacrebleu.metrics import CHRF

    predictions = ["ئارگېنتىنا", "阿根廷", "مالتا لىراسى"]
    scores = score_by_language(ROWS, predictions)
    assert set(scores) == {"all", "ug", "zh"}
    assert scores["all"] == round(CHRF().corpus_score(predictions, [[row["target"] for row in ROWS]]).score, 2)
    ug = [0, 2]
    expected_ug = CHRF().corpus_score([predictions[i] for i in ug], [[ROWS[i]["target"] for i in ug]]).score
    assert scores["ug"] == round(expected_ug, 2) and scores["zh"] < scores["ug"]
    with pytest.raises(ValueError):
        score_by_language(ROWS, predictions[:2])  # one prediction per row, or none is scored


def test_the_callback_scores_at_its_steps_only_and_keeps_each_point(tmp_path):
    model, tokenizer = load_folder(translating_model_folder(tmp_path / "model"))
    model.train()
    kept = []
    callback = LearningCurveCallback(
        ROWS, [4, 2], generation={"max_new_tokens": 4}, on_point=lambda p: kept.append(list(p))
    )
    args = SimpleNamespace(per_device_train_batch_size=8, world_size=1)
    callback.on_train_begin(args, SimpleNamespace(global_step=0), None)
    for step in range(1, 6):
        callback.on_step_end(args, SimpleNamespace(global_step=step), None, model=model, processing_class=tokenizer)
    assert [point["step"] for point in callback.points] == [2, 4]
    assert [len(points) for points in kept] == [1, 2]  # written after every point, not only at the end
    assert model.training  # back to training after scoring
    expected = generate_predictions(model, tokenizer, [row["source"] for row in ROWS], max_new_tokens=4)
    point = callback.points[-1]
    assert point["chrf"] == score_by_language(ROWS, expected)
    assert point["examples"] == 32 and point["training_seconds"] >= 0
    assert [sample["prediction"] for sample in point["samples"]] == expected


def curve_data():
    return {
        "training": {"per_device_train_batch_size": 32, "learning_rate": 5e-4, "warmup_steps": 100, "bf16": True},
        "validation_sentences": 3,
        "memory": {"all": 40.0, "ug": 45.5, "zh": 30.3},
        "points": [
            {"step": 250, "examples": 8000, "training_seconds": 200.4, "chrf": {"all": 10.0, "ug": 12.0, "zh": 8.0}},
            {"step": 500, "examples": 16000, "training_seconds": 401.0, "chrf": {"all": 20.0, "ug": 25.0, "zh": 9.5}},
        ],
    }


def test_the_markdown_renders_from_the_json_to_the_same_text(tmp_path):
    (tmp_path / CURVE_JSON).write_text(json.dumps(curve_data()))
    first = write_outputs(tmp_path).read_text()
    assert write_outputs(tmp_path).read_text() == first == render_markdown(curve_data())
    assert "| 500 | 16000 | 401 | 20.0 | 25.0 | 9.5 |" in first
    assert "| memory |  |  | 40.0 | 45.5 | 30.3 |" in first
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="does not exist"):
        write_outputs(tmp_path / "none")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--steps", "a,b"], "give whole numbers"),
        (["--steps", "0,10"], "each >= 1"),
        (["--render-only", "--output", "{tmp}/none"], "learning_curve.json does not exist"),
        (["--output", "{tmp}/out", "training.max_steps=5"], "sets training.max_steps"),
        (["--output", "{tmp}/out", "training.bogus=1"], "training.bogus"),
    ],
)
def test_bad_input_is_one_error_line_before_any_work(tmp_path, capsys, argv, fragment):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in argv]
    assert run_script("demo_learning_curve", ["--artifacts", tmp_path / "artifacts", *argv]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], errors
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "out" / "run").exists()


def test_the_speed_table_renders_beside_the_curve_from_its_own_json(tmp_path):
    from xlm_swcm_experiments.demo.learning_curve import SPEED_JSON, StepTimer

    timer = StepTimer()
    for _ in range(3):
        timer.on_step_begin(None, None, None)
        timer.on_step_end(None, None, None)
    assert len(timer.seconds) == 3 and all(seconds >= 0 for seconds in timer.seconds)
    (tmp_path / CURVE_JSON).write_text(json.dumps(curve_data()))
    assert "## Training speed" not in write_outputs(tmp_path).read_text()
    speed = {
        "threads": 2,
        "steps": 12,
        "cpu": "a CPU",
        "rows": [
            {"bf16": False, "train_sampling_strategy": "random", "batch_size": 32, "median_step_s": 2.0,
             "examples_per_s": 16.0},
            {"bf16": True, "train_sampling_strategy": "group_by_length", "batch_size": 32, "median_step_s": 0.5,
             "examples_per_s": 64.0},
        ],
    }  # fmt: skip
    (tmp_path / SPEED_JSON).write_text(json.dumps(speed))
    text = write_outputs(tmp_path).read_text()
    assert "## Training speed" in text and "| bf16 | group_by_length | 0.500 | 64.0 | 4.00 |" in text
