"""Generation metrics for XLM-SWCM: ROUGE-1/2/L F/P/R with a script-aware tokenizer, chrF and BLEU.

* `load_metric()` -> the bundled `evaluate` module `multilingual_rouge` (loads offline from this package).
* `compute_generation_metrics(predictions, references)` -> plain dict of floats in percent, for training and
  evaluation scripts (calls the module's `compute_scores` directly: no `evaluate` cache files, so it is safe
  in every process of a distributed run).
* `multilingual_tokenize` / `MultilingualTokenizer`: the tokenizer (see `tokenization`).
* `script_share`, `off_target_rate`, `target_script`, `OFF_TARGET_THRESHOLD`: how much of an output is in its target
  language's script, and the share of outputs that are not (see `script_detection`).

`evaluate` is imported lazily so that importing the tokenizer stays cheap.
"""

from pathlib import Path

from .script_detection import OFF_TARGET_THRESHOLD, knows_script, off_target_rate, script_share, target_script
from .tokenization import MultilingualTokenizer, multilingual_tokenize


METRIC_PATH = str(Path(__file__).resolve().parent / "multilingual_rouge")

__all__ = [
    "METRIC_PATH",
    "OFF_TARGET_THRESHOLD",
    "MultilingualTokenizer",
    "compute_generation_metrics",
    "knows_script",
    "load_metric",
    "multilingual_tokenize",
    "off_target_rate",
    "script_share",
    "target_script",
]


def load_metric(**kwargs):
    """`evaluate.load` of the bundled `multilingual_rouge` module (keyword arguments go to `evaluate.load`)."""
    import evaluate

    return evaluate.load(METRIC_PATH, **kwargs)


def compute_generation_metrics(
    predictions,
    references,
    *,
    rouge_types=("rouge1", "rouge2", "rougeL"),
    bleu_tokenize="13a",
    tokenizer=None,
    ndigits=2,
) -> dict[str, float]:
    """ROUGE F/P/R (keys `rougeL`, `rougeL_precision`, `rougeL_recall`, ...), `chrf` and `bleu`.

    All values are percentages (0-100) rounded to `ndigits`; ROUGE is the mean over examples, chrF (chrF2) and
    BLEU are sacrebleu corpus scores. `bleu_tokenize`: "13a" (default), "char"/"zh" for Chinese, or
    "multilingual" (BLEU over the ROUGE tokenizer's tokens, e.g. for Tibetan). `references` may hold one string
    or a list of strings per prediction. Raises `ValueError` on empty or mismatched inputs.
    """
    from .multilingual_rouge.multilingual_rouge import compute_scores

    scores = compute_scores(
        predictions,
        references,
        rouge_types=rouge_types,
        tokenizer=tokenizer,
        bleu_tokenize=bleu_tokenize,
    )
    # ROUGE comes as fractions, chrF/BLEU already in percent.
    return {key: round(value * 100 if key.startswith("rouge") else value, ndigits) for key, value in scores.items()}
