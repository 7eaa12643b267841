"""The demo's translation memory, its comparison with the model (paired bootstrap) and the report's JSON render."""

import json

import pytest
from sacrebleu.metrics import CHRF

from xlm_swcm_experiments.demo.memory import compare_with_memory, translation_memory
from xlm_swcm_experiments.demo.report import memory_samples, memory_verdict, render_only, write_report


TRAIN = [
    {"source": "ug: Czech Koruna", "target": "چېخ كورۇنىسى", "lang": "ug"},
    {"source": "ug: China", "target": "خىتاي", "lang": "ug"},
    {"source": "zh: China", "target": "中国", "lang": "zh"},
    {"source": "ug: Chinese Yuan", "target": "خىتاي يۈەنى", "lang": "ug"},
    {"source": "zh: Chinese Yuan", "target": "人民币", "lang": "zh"},
]
TEST = [
    {"source": "ug: Chinese", "lang": "ug", "reference": "خەنزۇچە", "prediction": "خىتاي"},
    {"source": "zh: Chinese", "lang": "zh", "reference": "中文", "prediction": "中文"},
    {"source": "zh: Chinas", "lang": "zh", "reference": "中国", "prediction": "China"},
    {"source": "ug: qqq", "lang": "ug", "reference": "ئا", "prediction": ""},
    {"source": "kk: China", "lang": "kk", "reference": "Қытай", "prediction": "Қытай"},
]


def test_the_memory_answers_from_the_same_language_only():
    answers = translation_memory(TRAIN, TEST)
    assert [a["answer"] for a in answers] == ["خىتاي يۈەنى", "人民币", "中国", "", ""]
    assert answers[0]["train_source"] == "Chinese Yuan" and 0 < answers[0]["similarity"] < 1
    # no training source shares an n-gram with "qqq"; kk has no training rows at all: empty answers
    assert answers[3]["similarity"] == answers[4]["similarity"] == 0.0


def test_the_comparison_is_corpus_chrf_exact_match_and_off_target_on_the_same_sentences():
    answers = translation_memory(TRAIN, TEST)
    groups = compare_with_memory(TEST, answers)
    assert list(groups) == ["kk", "ug", "zh", "all"]
    chrf = CHRF()
    for language, group in groups.items():
        rows = [(r, a) for r, a in zip(TEST, answers) if language in ("all", r["lang"])]
        refs = [[r["reference"] for r, _ in rows]]
        assert group["chrf"]["model"] == pytest.approx(
            chrf.corpus_score([r["prediction"] for r, _ in rows], refs).score
        )
        assert group["chrf"]["memory"] == pytest.approx(chrf.corpus_score([a["answer"] for _, a in rows], refs).score)
        interval = group["chrf_difference"]
        assert interval["low"] <= interval["high"] and interval["resamples"] == 2000
    assert groups["zh"]["exact_match"] == {"model": 50.0, "memory": 50.0}
    assert groups["all"]["exact_match"] == {"model": 40.0, "memory": 20.0}
    assert groups["zh"]["off_target"] == {"model": 50.0, "memory": 0.0}  # "China" is Latin
    assert groups["ug"]["off_target"] == {"model": 50.0, "memory": 50.0}  # an empty output counts off-target
    # the off-target difference has its paired interval too, around model minus memory
    assert groups["zh"]["off_target_difference"]["mean"] == pytest.approx(50.0)
    assert groups["ug"]["off_target_difference"]["mean"] == pytest.approx(0.0)
    assert memory_verdict({"mean": 1, "low": -1, "high": 2}) == "no difference shown"
    assert memory_verdict({"mean": 1, "low": 0.5, "high": 2}) == "beats the memory"
    assert memory_verdict({"mean": -1, "low": -2, "high": -0.5}) == "worse than the memory"
    with pytest.raises(ValueError):
        compare_with_memory(TEST, answers[:2])


def test_the_report_renders_from_its_json_alone(tmp_path):
    answers = translation_memory(TRAIN, TEST)
    groups = compare_with_memory(TEST, answers)
    test = {
        "all": {
            "chrf": 40.0,
            "rougeL": 30.0,
            "rougeL_precision": 1.0,
            "rougeL_recall": 2.0,
            "bleu": 3.0,
            "off_target": 40.0,
            "count": 5,
        }
    }
    run = {"test": test, "validation_loss": 2.5, "train_steps": 3, "wall_seconds": 1.0}
    data = {
        "setup": {
            "original_vocab_size": 9,
            "pruned_vocab_size": 8,
            "languages": ["ug", "zh", "kk"],
            "max_steps": 3,
            "batch_size": 2,
            "precision": "fp32",
            "generation": {"num_beams": 4},
        },
        "corpus": {"sha256": "abc", "sources": {"babel": "1"}},
        "runs": {"XLM-SWCM (shared weights)": run},
        "run_comparison": {
            "difference": 1.0,
            "sentence_mean": 0.5,
            "low": -1.0,
            "high": 2.0,
            "sentences": 5,
            "seed_spread": "no seed spread recorded",
            "verdict": "No difference shown.",
        },
        "memory": {
            "ngram_order": 6,
            "off_target_threshold": 0.5,
            "resamples": 2000,
            "seed": 0,
            "comparisons": {"XLM-SWCM (shared weights)": groups},
        },
        "samples": memory_samples(TEST, answers, 1),
        "reloaded_agreeing": 2,
        "coverage": [],
        "extension": None,
    }
    report = write_report(tmp_path, data)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == report == render_only(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["samples"] == data["samples"]
    assert "## Against a translation memory" in report and "no difference shown" in report
    assert "It does not beat the translation memory in" in report
    assert "| zh | zh: Chinese | 中文 | 中文 | 人民币 |" in report
