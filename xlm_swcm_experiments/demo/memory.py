"""The translation-memory baseline of `make demo`'s report, and the model measured against it.

* `translation_memory(train_rows, test_rows)`: for each test row, the target of the most similar training source of
  the same target language. Similarity: the cosine of TF-IDF weighted counts of chrF's character n-grams (orders 1
  to `MEMORY_NGRAM_ORDER`, spaces left out, as sacrebleu extracts them for chrF), on the English text without its
  target-language tag; idf = ln((1 + N) / (1 + df)) + 1 over that language's N training sources. Ties go to the
  earlier training row; a source sharing no n-gram with any training source gets an empty answer.
* `compare_with_memory(rows, answers)`: per language and overall, corpus chrF and exact match of the model and of the
  memory on the same sentences, each difference with a paired bootstrap interval (`statistics.paired_bootstrap`),
  and the off-target share of both (`xlm_swcm_hf.metrics.off_target_rate`) with the same kind of interval.

It is what a translator without a model would use: a model that cannot beat it has learnt nothing from the pairs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from xlm_swcm_hf.metrics import off_target_rate
from xlm_swcm_hf.metrics.script_detection import is_off_target
from xlm_swcm_hf.translation import TAG_TEMPLATE

from .. import statistics as stats


#: chrF's character n-gram orders (sacrebleu's CHRF default char_order): the memory matches on what chrF scores.
MEMORY_NGRAM_ORDER = 6


def untagged(source: str, language: str) -> str:
    """The English text without its target-language tag (`ug: China` -> `China`)."""
    prefix = TAG_TEMPLATE.format(lang=language, text="")
    return source[len(prefix) :] if source.startswith(prefix) else source


def _ngrams(text: str) -> Counter:
    from sacrebleu.metrics.helpers import extract_all_char_ngrams

    grams = Counter()
    for counter in extract_all_char_ngrams(text, MEMORY_NGRAM_ORDER, include_whitespace=False):
        grams.update(counter)  # orders do not collide: an n-gram's length is its order
    return grams


def _weights(counter: Counter, idf: dict[str, float]) -> dict[str, float]:
    """An L2-normalised TF-IDF vector; n-grams no training source has are left out (they match nothing)."""
    weights = {gram: count * idf[gram] for gram, count in counter.items() if gram in idf}
    norm = math.sqrt(sum(weight * weight for weight in weights.values())) or 1.0
    return {gram: weight / norm for gram, weight in weights.items()}


def _best_matches(train_sources: list[str], test_sources: list[str]) -> list[tuple[int, float]]:
    """(training index, cosine) of the most similar training source for each test source, from an inverted index:
    each test n-gram adds its weight times each training source's weight for it."""
    import numpy as np

    train_grams = [_ngrams(text) for text in train_sources]
    frequency = Counter(gram for grams in train_grams for gram in grams)
    idf = {gram: math.log((1 + len(train_sources)) / (1 + df)) + 1 for gram, df in frequency.items()}
    postings = defaultdict(lambda: ([], []))
    for row, grams in enumerate(train_grams):
        for gram, weight in _weights(grams, idf).items():
            postings[gram][0].append(row)
            postings[gram][1].append(weight)
    postings = {gram: (np.asarray(rows), np.asarray(weights)) for gram, (rows, weights) in postings.items()}
    matches = []
    for text in test_sources:
        scores = np.zeros(len(train_sources))
        for gram, weight in _weights(_ngrams(text), idf).items():
            rows, weights = postings[gram]
            scores[rows] += weight * weights  # a training source appears once per n-gram's postings
        best = int(np.argmax(scores))  # the first maximum: among equal similarities, the earlier training row
        matches.append((best, float(scores[best])))
    return matches


def translation_memory(train_rows: list[dict], test_rows: list[dict]) -> list[dict]:
    """For each test row (`source`, `lang`): `answer` (the best training target, "" without a match),
    `train_source` and `similarity` (the cosine, 0 to 1)."""
    by_language = defaultdict(list)
    for row in train_rows:
        by_language[row["lang"]].append(row)
    answers = [{"answer": "", "train_source": "", "similarity": 0.0} for _ in test_rows]
    wanted = defaultdict(list)
    for position, row in enumerate(test_rows):
        wanted[row["lang"]].append(position)
    for language, positions in wanted.items():
        candidates = by_language.get(language, [])
        if not candidates:
            continue
        matches = _best_matches(
            [untagged(row["source"], language) for row in candidates],
            [untagged(test_rows[position]["source"], language) for position in positions],
        )
        for position, (best, similarity) in zip(positions, matches):
            if similarity > 0:
                answers[position] = {
                    "answer": candidates[best]["target"],
                    "train_source": untagged(candidates[best]["source"], language),
                    "similarity": round(similarity, 6),
                }
    return answers


def exact_match(prediction: str, reference: str) -> bool:
    """The output equals the reference once surrounding spaces are stripped."""
    return prediction.strip() == reference.strip()


def _chrf_statistics(hypotheses: list[str], references: list[str]):
    """sacrebleu's per-sentence chrF statistics (its own hook for statistical tests: summed over any subset of
    sentences they give that subset's corpus chrF) and the scorer."""
    import numpy as np
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    return np.asarray(chrf._extract_corpus_statistics(hypotheses, [references]), dtype=np.float64), chrf


def _group(rows: list[dict], answers: list[dict]) -> dict:
    import numpy as np

    predictions = [row["prediction"] for row in rows]
    memory = [answer["answer"] for answer in answers]
    references = [row["reference"] for row in rows]
    tags = [row["lang"] for row in rows]
    model_stats, chrf = _chrf_statistics(predictions, references)
    memory_stats, _ = _chrf_statistics(memory, references)

    def chrf_score(summed):
        return chrf._compute_score_from_stats(list(summed)).score

    def exact_score(summed):
        return 100 * summed[0] / len(rows)  # summed over a resample of len(rows) sentences

    model_exact = np.asarray([[exact_match(p, r)] for p, r in zip(predictions, references)], dtype=np.float64)
    memory_exact = np.asarray([[exact_match(m, r)] for m, r in zip(memory, references)], dtype=np.float64)
    model_off = np.asarray([[is_off_target(p, tag)] for p, tag in zip(predictions, tags)], dtype=np.float64)
    memory_off = np.asarray([[is_off_target(m, tag)] for m, tag in zip(memory, tags)], dtype=np.float64)
    chrf_interval = stats.paired_bootstrap(model_stats, memory_stats, chrf_score)
    exact_interval = stats.paired_bootstrap(model_exact, memory_exact, exact_score)
    off_target_interval = stats.paired_bootstrap(model_off, memory_off, exact_score)  # a share, as exact match
    return {
        "count": len(rows),
        "chrf": {"model": chrf_score(model_stats.sum(axis=0)), "memory": chrf_score(memory_stats.sum(axis=0))},
        "chrf_difference": chrf_interval,
        "exact_match": {"model": exact_score(model_exact.sum(axis=0)), "memory": exact_score(memory_exact.sum(axis=0))},
        "exact_match_difference": exact_interval,
        "off_target": {"model": off_target_rate(predictions, tags), "memory": off_target_rate(memory, tags)},
        "off_target_difference": off_target_interval,
    }


def compare_with_memory(rows: list[dict], answers: list[dict]) -> dict:
    """Model (`prediction`) against memory (`answer`) on the same test rows (`reference`, `lang`): per language in
    sorted order, then `all`."""
    if len(rows) != len(answers) or not rows:
        raise ValueError(f"compare_with_memory needs one answer per row, and rows: got {len(rows)} and {len(answers)}")
    groups = {}
    for language in sorted({row["lang"] for row in rows}):
        chosen = [i for i, row in enumerate(rows) if row["lang"] == language]
        groups[language] = _group([rows[i] for i in chosen], [answers[i] for i in chosen])
    groups["all"] = _group(rows, answers)
    return groups
