"""The demo model's output vocabularies: built from the train targets into the folder, the test split decoded within
them as the model's own restricted generate does, and compared with the whole vocabulary on the same sentences."""

import json

from conftest import translating_model_folder, write_jsonl

from xlm_swcm_experiments.demo import output_vocabulary
from xlm_swcm_experiments.demo.report import _output_vocabulary_lines
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS


ZH, BO, UG, KK = TINY_MULTILINGUAL_TEXTS[:4]
TRAIN = [
    {"source": "zh: We learn", "target": ZH, "lang": "zh"},
    {"source": "ug: We learn", "target": UG, "lang": "ug"},
    {"source": "kk: We learn", "target": KK, "lang": "kk"},
]
VALIDATION = [
    {"source": "zh: We learn", "target": ZH[:6], "lang": "zh"},
    {"source": "ug: x", "target": BO, "lang": "ug"},
]
SOURCES = [("zh: We learn languages.", "zh"), ("ug: Do you learn?", "ug"), ("kk: We learn.", "kk")]


def test_the_folder_gets_vocabularies_and_the_test_split_decodes_within_them(tmp_path):
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    folder = translating_model_folder(tmp_path / "swcm" / "final")
    built = output_vocabulary.build_for_folder(folder, TRAIN, VALIDATION)
    saved = json.loads((folder / "output_vocabularies.json").read_text())
    assert sorted(saved) == ["kk", "ug", "zh"] and {tag: len(ids) for tag, ids in saved.items()} == built["sizes"]
    assert built["validation_coverage"]["zh"] == 100.0 and built["validation_coverage"]["ug"] < 100.0

    model = XLMSWCMForConditionalGeneration.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    whole = []
    for source, lang in SOURCES:
        ids = model.generate(**tokenizer(source, return_tensors="pt"), max_new_tokens=5, num_beams=1)
        whole.append(
            {
                "source": source,
                "reference": ZH,
                "prediction": tokenizer.decode(ids[0], skip_special_tokens=True).strip(),
                "lang": lang,
            }
        )
    (tmp_path / "swcm" / "test").mkdir()
    predictions = write_jsonl(tmp_path / "swcm" / "test" / "predictions.jsonl", whole)
    model.generation_config.max_new_tokens, model.generation_config.num_beams = 5, 1
    model.generation_config.save_pretrained(folder)
    run = {"predictions_file": str(predictions)}

    figures, restricted = output_vocabulary.measure(folder, run, TRAIN, VALIDATION, max_source_length=32)
    rows = [json.loads(line) for line in open(restricted["predictions_file"], encoding="utf-8")]
    for row, (source, lang) in zip(rows, SOURCES, strict=True):
        ids = model.generate(**tokenizer(source, return_tensors="pt"), output_languages=lang)
        assert row["prediction"] == tokenizer.decode(ids[0], skip_special_tokens=True).strip()
        allowed = set(saved[lang])
        assert (
            set(tokenizer(row["prediction"], add_special_tokens=False)["input_ids"]) <= allowed or not row["prediction"]
        )
    comparison = figures["comparison"]
    assert comparison["sentences"] == 3 and list(comparison["groups"]) == ["kk", "ug", "zh", "all"]
    assert comparison["identical_outputs"] == sum(a["prediction"] == b["prediction"] for a, b in zip(whole, rows))
    lines = "\n".join(_output_vocabulary_lines(figures))
    assert "## Output vocabularies" in lines and "restricted minus whole" in lines and "| all | 3 |" in lines
    assert _output_vocabulary_lines(None) == []  # a report from before the vocabularies renders as it did
