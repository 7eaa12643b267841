"""Recipes that mix back-translated pairs into the real train split with a weight."""

import logging

import pytest
from conftest import tagged_pairs, write_jsonl

from xlm_swcm_hf.recipe import DataRecipe, Recipe, RecipeError
from xlm_swcm_hf.training.build import load_formatted_splits


def recipe(tmp_path, **data):
    real = write_jsonl(tmp_path / "real.jsonl", tagged_pairs())
    return Recipe.from_dict(
        {
            "model": {"encoder": "unused"},
            "data": {"train_file": str(real), **data},
            "training": {"output_dir": str(tmp_path / "run")},
        }
    )


def test_synthetic_pairs_are_interleaved_at_their_weight(tmp_path, caplog):
    row = {"source": "xx: synthetic", "target": "real 0", "lang": "xx", "origin": "back-translation"}
    path = write_jsonl(tmp_path / "bt.jsonl", [row] + [dict(row, target=f"t{k}") for k in range(30)])
    with caplog.at_level(logging.INFO, logger="xlm_swcm_hf.training.build"):
        train = load_formatted_splits(recipe(tmp_path, synthetic_train_file=str(path), synthetic_weight=0.75))["train"]
    real = len(tagged_pairs())
    synthetic_targets = {"real 0", *(f"t{k}" for k in range(30))}
    used = sum(target in synthetic_targets for target in train["target_text"])
    assert set(train["target_text"]) >= synthetic_targets  # every synthetic pair seen
    assert len(train) - used >= real and used > len(train) - used  # weight 0.75: most rows synthetic
    assert (
        f"{real} real + 31 synthetic pairs, synthetic_weight 0.75 -> {len(train)} rows, {used} of them" in caplog.text
    )


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_a_weight_that_leaves_a_side_out_is_refused(tmp_path, weight):
    with pytest.raises(RecipeError, match="synthetic_weight"):
        recipe(tmp_path, synthetic_train_file="bt.jsonl", synthetic_weight=weight)


def test_synthetic_file_is_checked_before_loading(tmp_path):
    assert (
        str(tmp_path / "bt.jsonl")
        in recipe(tmp_path, synthetic_train_file=str(tmp_path / "bt.jsonl")).data.local_paths()
    )
    assert DataRecipe.synthetic_weight == 0.5
