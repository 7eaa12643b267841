"""The reference: a tiny XLM-SWCM folder saved by this package, and what every transformers version must reproduce
from it, measured here with the package's own classes (the checker's `measure` and `compare`)."""

from __future__ import annotations

import contextlib
import io
import platform
from pathlib import Path

from xlm_swcm_experiments import compat_checker


# The reference folder: tests/conftest.py's tiny encoder without dropout (the trainer step must be reproducible) and
# with larger initial weights (0.1, not 0.02): at 0.02 every source decodes to the same ids and beam equals greedy.
TINY_MODEL = dict(
    initializer_range=0.1,
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=6,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
SOURCES = ("We learn languages.", "ང་ཚོ་སློབ།", "Біз тіл үйренеміз. Сендер де үйренесің бе?")
GENERATION = {
    "common": {"max_new_tokens": 8},
    "greedy": {"do_sample": False, "num_beams": 1},
    "beam": {"do_sample": False, "num_beams": 3},
    "sampling": {"do_sample": True, "num_beams": 1, "top_k": 20, "top_p": 0.9, "temperature": 0.8},
    "sampling_seed": 0,
}
TRAINING = {"learning_rate": 1e-3, "seed": 0}
SEED = 0


@contextlib.contextmanager
def quiet_and_single_threaded():
    """One torch thread, as the checker runs (the same reduction order), and none of transformers' load reports,
    progress bars or trainer logs between the progress lines."""
    import torch
    import transformers

    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()


def build_reference(folder: Path) -> dict:
    """Save the tiny model and tokenizer into `folder` and measure, with this package, what every version must
    reproduce. Returns {"request": ..., "expected": ..., "built_with": ...}."""
    with quiet_and_single_threaded():
        tokenizer = save_tiny_folder(folder)
        request = build_request(tokenizer)
        expected = measure_expected(folder, request)
        return {"request": request, "expected": expected, "built_with": built_with()}


def save_tiny_folder(folder: Path):
    """Seed, build the tiny model, save it and the tiny tokenizer into `folder`; returns the tokenizer."""
    import torch

    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    torch.manual_seed(SEED)
    model = XLMSWCMForConditionalGeneration(XLMSWCMConfig(**TINY_MODEL)).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases, as in the tests, so a misplaced norm shows
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    tokenizer = build_tiny_xlmr_tokenizer()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_request(tokenizer) -> dict:
    """What the checker measures: the sources, padded inputs for generation and logits, the generation settings and
    one training batch."""
    encoded = tokenizer(list(SOURCES), padding=True)
    # Right-padded labels (-100 where there is no token): one batch of all three pairs, each target a source reversed.
    targets = tokenizer(list(reversed(SOURCES)), padding=True)
    labels = [
        [token if keep else -100 for token, keep in zip(ids, mask)]
        for ids, mask in zip(targets["input_ids"], targets["attention_mask"])
    ]
    return {
        "sources": list(SOURCES),
        "generation_inputs": {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]},
        "logits_inputs": {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "decoder_input_ids": [[0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16]],
        },
        "generation": GENERATION,
        "training": {
            **TRAINING,
            "batch": {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": labels,
            },
        },
    }


def package_loaders(folder: Path) -> dict:
    """The checker's loaders with this package's classes (the tokenizer through AutoTokenizer)."""
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration, XLMSWCMModel

    return {
        "config": lambda: XLMSWCMConfig.from_pretrained(folder),
        "model": lambda: XLMSWCMForConditionalGeneration.from_pretrained(folder),
        "base_model": lambda: XLMSWCMModel.from_pretrained(folder),
        "tokenizer": lambda: AutoTokenizer.from_pretrained(folder),
    }


def measure_expected(folder: Path, request: dict) -> dict:
    """Measure `request` on the saved folder with this package: the values every version must reproduce. Raises
    RuntimeError when a measurement fails or the reference does not pass its own comparison."""
    loaders = package_loaders(folder)
    measured = compat_checker.measure(loaders, request)
    reloaded, reloaded_tokenizer = loaders["model"]().eval(), loaders["tokenizer"]()
    pipeline_texts = compat_checker.greedy_texts_one_by_one(reloaded, reloaded_tokenizer, request)
    problems = {name: entry["error"] for name, entry in measured.items() if "error" in entry}
    if problems:
        raise RuntimeError(f"the reference cannot be measured with this package: {problems}")
    expected = {name: measured[name]["value"] for name in ("tokenizer_ids", "logits", "greedy", "beam", "sampling")}
    expected["trainer_step"] = measured["trainer_step"]["value"]
    expected["pipeline"] = pipeline_texts
    # The reference must pass its own comparison (the pipeline too, where this transformers has the task).
    verdicts = compat_checker.compare(expected, measured)
    if not compat_checker.all_passed(verdicts):
        raise RuntimeError(f"the reference does not reproduce itself: {verdicts}")
    return expected


def built_with() -> dict:
    """The versions the reference was measured with."""
    import torch
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__, "python": platform.python_version()}
