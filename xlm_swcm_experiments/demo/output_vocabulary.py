"""The demo model's per-language output vocabularies (issue 32): built from the train split's targets, saved in the
Hub-ready folder (so `make serve`, translate.py and the Hub copy decode within them), and measured on the test
split against the whole vocabulary: the off-target share, chrF and exact match with paired intervals, restricted
minus whole, on the same sentences and the same decoding settings.
"""

from __future__ import annotations

from pathlib import Path

from .memory import compare_with_memory
from .report import prediction_rows


def build_for_folder(folder: Path, train_rows: list[dict], validation_rows: list[dict]) -> dict:
    """Write `folder`'s output_vocabularies.json from the train targets; the sizes and the validation coverage."""
    from transformers import AutoConfig, AutoTokenizer

    from xlm_swcm_hf.output_vocabulary import (
        build_output_vocabularies,
        coverage,
        special_ids,
        write_output_vocabularies,
    )

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    vocabularies = build_output_vocabularies(
        tokenizer, [(row["lang"], row["target"]) for row in train_rows], always=special_ids(tokenizer, config)
    )
    write_output_vocabularies(folder, vocabularies, config.vocab_size, overwrite=True)
    held_out = coverage(vocabularies, tokenizer, [(row["lang"], row["target"]) for row in validation_rows])
    return {
        "vocab_size": config.vocab_size,
        "sizes": {tag: len(ids) for tag, ids in vocabularies.items()},
        "validation_coverage": {
            tag: round(100 * value.covered / max(value.tokens, 1), 2) for tag, value in held_out.items()
        },
    }


def decode_restricted(folder: Path, run: dict, output_dir: Path, max_source_length: int) -> dict:
    """The run's scored test sources decoded again by the saved folder within their languages' vocabularies (the
    folder's generation_config, as the scored run); writes predictions and metrics under `output_dir`."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration
    from xlm_swcm_hf.training.evaluation import evaluate_model

    rows = prediction_rows(run)
    dataset = Dataset.from_dict(
        {
            "source_text": [row["source"] for row in rows],
            "target_text": [row["reference"] for row in rows],
            "lang": [row["lang"] for row in rows],
        }
    )
    model = XLMSWCMForConditionalGeneration.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    metrics = evaluate_model(model, tokenizer, dataset, output_dir, max_source_length=max_source_length)
    return {"test": metrics, "predictions_file": str(output_dir / "predictions.jsonl")}


def compare_restricted(full_run: dict, restricted_run: dict) -> dict:
    """Restricted minus whole vocabulary on the same test sentences, per language and overall (intervals as the
    memory comparison's: `compare_with_memory` with the whole-vocabulary outputs in the memory's place)."""
    full, restricted = prediction_rows(full_run), prediction_rows(restricted_run)
    if [(row["source"], row["lang"]) for row in full] != [(row["source"], row["lang"]) for row in restricted]:
        raise RuntimeError("the restricted decode is not of the scored run's test sentences")
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(full, restricted))
    groups = compare_with_memory(restricted, [{"answer": row["prediction"]} for row in full])
    return {"groups": groups, "identical_outputs": same, "sentences": len(full)}


def measure(folder: Path, run: dict, train_rows: list[dict], validation_rows: list[dict], max_source_length: int):
    """Build the folder's vocabularies, decode the test split within them, compare with the whole vocabulary:
    (the report's figures, the restricted decode as a run for the memory comparison)."""
    built = build_for_folder(folder, train_rows, validation_rows)
    restricted = decode_restricted(folder, run, folder.parent / "test-output-vocabulary", max_source_length)
    return {**built, "comparison": compare_restricted(run, restricted), "test": restricted["test"]}, restricted
