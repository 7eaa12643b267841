"""The model's numbers do not move: figures recorded on transformers 5.24.0 before the model file was made portable
(tests/data/model_figures.json, written by `python tests/library/model_figures.py`) are reproduced on this
transformers."""

import json

import pytest
import torch
from conftest import ROOT
from model_figures import compute_figures


RECORDED = json.loads((ROOT / "tests" / "data" / "model_figures.json").read_text())


@pytest.fixture(scope="module")
def figures():
    return compute_figures()


def test_logits_are_unchanged(figures):
    torch.testing.assert_close(torch.tensor(figures["logits"]), torch.tensor(RECORDED["logits"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("decoding", ["greedy", "beam", "sampling"])
def test_generations_are_unchanged(figures, decoding):
    assert figures[decoding] == RECORDED[decoding]


def test_cached_decoding_still_matches_the_full_forward(figures):
    assert figures["cache_parity_max_abs_diff"] < 1e-5


def test_full_size_parameter_count_is_unchanged(figures):
    assert figures["full_size_parameters"] == RECORDED["full_size_parameters"] == 491_613_663


def test_fixed_seed_training_run_is_unchanged(figures):
    assert figures["training_losses"] == pytest.approx(RECORDED["training_losses"], abs=1e-5)
