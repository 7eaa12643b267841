"""Multilingual ROUGE (F/P/R) + chrF + BLEU as an `evaluate` metric module, usable offline.

Load it from its folder: `evaluate.load("<...>/xlm_swcm_hf/metrics/multilingual_rouge")` or
`xlm_swcm_hf.metrics.load_metric()`; it never touches the Hugging Face Hub, so `HF_HUB_OFFLINE=1` is fine.

Design:

* ROUGE is computed by `rouge_score.rouge_scorer.RougeScorer` with the script-aware tokenizer of
  `script_tokenizer.py` (Tibetan syllables, one token per CJK character, words elsewhere) instead of the
  stock `[a-z0-9]`-only tokenizer, which turns Tibetan/Uyghur/Kazakh/Mongolian/Chinese text into no tokens.
* The folder is self-contained: the tokenizer is a same-folder relative import, which `evaluate` copies into
  its module cache together with this file (and includes in the cache hash). It deliberately does not
  import `xlm_swcm_hf`, whose `__init__` imports transformers/torch.
* One module for all generation metrics (ROUGE, chrF, BLEU) so that one `compute` call gives every number
  the paper reports; chrF/BLEU are thin wrappers around sacrebleu.
* Scales follow the libraries: ROUGE values are fractions in [0, 1] (as `evaluate`'s "rouge"), chrF and BLEU
  are sacrebleu's 0-100 scores. `xlm_swcm_hf.metrics.compute_generation_metrics` reports all in percent.
"""

import re
from statistics import fmean

import datasets
import evaluate
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from .script_tokenizer import MultilingualTokenizer


DEFAULT_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
DEFAULT_BLEU_TOKENIZE = "13a"

# BibTeX entries repeat one shape on purpose (duplicates lists them): they are data, not logic.
_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
    pages = "74--81",
}
@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    pages = "392--395",
}
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
"""

_DESCRIPTION = """\
ROUGE-N/L precision, recall and F-measure with a script-aware tokenizer (Tibetan syllables split at tsheg and
shad, one token per CJK character, runs of letters/digits/combining marks for Latin, Cyrillic, Arabic-script and
traditional Mongolian text, all casefolded), computed by the rouge_score package; plus corpus chrF (chrF2) and
corpus BLEU computed by sacrebleu. Works offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str, or list of list of str): one reference, or several references, per prediction.
        With several references ROUGE takes, per ROUGE type, the reference with the best F-measure; chrF and
        BLEU need the same number of references for every prediction.
    rouge_types (sequence of str): any of "rouge1" ... "rouge9", "rougeL", "rougeLsum" (rougeLsum splits on
        newlines). Default ("rouge1", "rouge2", "rougeL").
    use_aggregator (bool): True (default) returns the mean over examples; False returns one value per example
        for the ROUGE keys (chrF and BLEU stay corpus-level scalars).
    tokenizer: None for the built-in script-aware tokenizer, an object with a `tokenize(text)` method, or a
        callable `text -> list[str]`.
    translation_metrics (bool): also compute "chrf" and "bleu" (default True).
    bleu_tokenize (str): sacrebleu tokenizer for BLEU. Default "13a" (sacrebleu's default). Use "char" or "zh"
        for Chinese / CJK-heavy text, or "multilingual" to pre-tokenize with the ROUGE tokenizer (Tibetan
        syllables, CJK characters, words; this also lowercases). "flores200"/"flores101" are not the default
        because sacrebleu downloads their SentencePiece model on first use.
Returns:
    For each ROUGE type `t`: `t` (F-measure), `t + "_precision"` and `t + "_recall"`, fractions in [0, 1];
    if translation_metrics: "chrf" and "bleu", sacrebleu corpus scores in [0, 100].
Examples:
    >>> metric = evaluate.load("xlm_swcm_hf/metrics/multilingual_rouge")
    >>> metric.compute(predictions=["བོད་ཀྱི་སྐད་ཡིག།"], references=["བོད་ཀྱི་སྐད་ཡིག།"])["rougeL"]
    1.0
"""

_ROUGE_TYPE = re.compile(r"rouge(?:[1-9]|L|Lsum)")


class _CallableTokenizer:
    """Adapts a `text -> list[str]` callable to rouge_score's `tokenize` protocol."""

    def __init__(self, function):
        self.function = function

    def tokenize(self, text):
        return self.function(text)


def _resolve_tokenizer(tokenizer):
    if tokenizer is None:
        return MultilingualTokenizer()
    if callable(getattr(tokenizer, "tokenize", None)):
        return tokenizer
    if callable(tokenizer):
        return _CallableTokenizer(tokenizer)
    raise TypeError(f"tokenizer must be None, have a tokenize(text) method, or be callable; got {tokenizer!r}")


def _validate(predictions, references):
    """Return the references as one list of reference strings per prediction, or raise ValueError."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("predictions and references must be lists of strings, not a single string")
    predictions, references = list(predictions), list(references)
    if not predictions or not references:
        raise ValueError(
            f"predictions and references must not be empty (got {len(predictions)} predictions and "
            f"{len(references)} references)"
        )
    if len(predictions) != len(references):
        raise ValueError(
            f"Mismatch in the number of predictions ({len(predictions)}) and references ({len(references)})"
        )
    nested = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    for i, (prediction, refs) in enumerate(zip(predictions, nested)):
        if not isinstance(prediction, str):
            raise ValueError(f"prediction {i} is not a string: {prediction!r}")
        if not refs or not all(isinstance(ref, str) for ref in refs):
            raise ValueError(f"references {i} must be a string or a non-empty list of strings: {references[i]!r}")
    return predictions, nested


def compute_scores(
    predictions,
    references,
    rouge_types=DEFAULT_ROUGE_TYPES,
    use_aggregator=True,
    tokenizer=None,
    translation_metrics=True,
    bleu_tokenize=DEFAULT_BLEU_TOKENIZE,
):
    """Plain-Python implementation behind the metric (arguments and return value: see `_KWARGS_DESCRIPTION`)."""
    predictions, references = _validate(predictions, references)
    rouge_types = [rouge_types] if isinstance(rouge_types, str) else list(rouge_types)
    bad_types = [t for t in rouge_types if not _ROUGE_TYPE.fullmatch(t)]
    if not rouge_types or bad_types:
        raise ValueError(f"Invalid rouge_types {bad_types or rouge_types}; use rouge1..rouge9, rougeL, rougeLsum")
    tokenizer = _resolve_tokenizer(tokenizer)

    scorer = rouge_scorer.RougeScorer(rouge_types, tokenizer=tokenizer)
    scores = [scorer.score_multi(refs, prediction) for prediction, refs in zip(predictions, references)]
    result = {}
    for rouge_type in rouge_types:
        for suffix, field in (("", "fmeasure"), ("_precision", "precision"), ("_recall", "recall")):
            values = [float(getattr(score[rouge_type], field)) for score in scores]
            result[rouge_type + suffix] = fmean(values) if use_aggregator else values

    if translation_metrics:
        n_refs = {len(refs) for refs in references}
        if len(n_refs) != 1:
            raise ValueError("chrF and BLEU need the same number of references for every prediction")
        reference_streams = [list(stream) for stream in zip(*references)]
        result["chrf"] = float(CHRF().corpus_score(predictions, reference_streams).score)
        if bleu_tokenize == "multilingual":  # BLEU over the ROUGE tokens, joined by spaces
            bleu = BLEU(tokenize="none")
            hypotheses = [" ".join(tokenizer.tokenize(text)) for text in predictions]
            reference_streams = [[" ".join(tokenizer.tokenize(text)) for text in s] for s in reference_streams]
        else:
            bleu = BLEU(tokenize=bleu_tokenize)
            hypotheses = predictions
        result["bleu"] = float(bleu.corpus_score(hypotheses, reference_streams).score)
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultilingualRouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            codebase_urls=[
                "https://github.com/google-research/google-research/tree/master/rouge",
                "https://github.com/mjpost/sacrebleu",
            ],
            reference_urls=["https://aclanthology.org/W04-1013/", "https://aclanthology.org/W15-3049/"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references; an empty batch raises ValueError."""
        # evaluate itself fails with a bare IndexError on an empty first batch; `compute` goes through here too.
        # (The docstring is required: evaluate appends the inputs description to it.)
        if predictions is not None and references is not None and (len(predictions) == 0 or len(references) == 0):
            _validate(predictions, references)  # raises a ValueError naming the problem
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        rouge_types=DEFAULT_ROUGE_TYPES,
        use_aggregator=True,
        tokenizer=None,
        translation_metrics=True,
        bleu_tokenize=DEFAULT_BLEU_TOKENIZE,
    ):
        return compute_scores(
            predictions,
            references,
            rouge_types=rouge_types,
            use_aggregator=use_aggregator,
            tokenizer=tokenizer,
            translation_metrics=translation_metrics,
            bleu_tokenize=bleu_tokenize,
        )
