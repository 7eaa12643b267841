"""The paper's pretraining objectives: mBART-style text infilling (DAE) and batches mixing DAE with MT pairs."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..recipe import DataRecipe
from .tokenization import (
    _check_lengths,
    _content_ids,
    _encode_source,
    _encode_target,
    _special_ids,
    make_seq2seq_collator,
)


# --------------------------------------------------------------------------------------------------- DAE noise
# Sentence-final punctuation: Latin . ! ?, Chinese 。！？, Tibetan shad ། and nyis shad ༎, Mongolian full stop ᠃
# and four dots ᠉, Arabic-script question mark ؟ and full stop ۔.
SENTENCE_TERMINATORS = ".!?。！？།༎᠃᠉؟۔"
# Terminators that end a sentence even without a following space (scripts written without spaces there; Tibetan
# separates syllables with the tsheg, so a shad is always a boundary).
_UNSPACED_TERMINATORS = set("。！？᠃᠉།༎")
# A cluster of terminators (possibly "། །" or "?!"), closing quotes/brackets after them, then any whitespace.
_TERMINATOR_CLUSTER = re.compile("(?:[" + re.escape(SENTENCE_TERMINATORS) + "][\"'”’」』）)\\]]*\\s*)+")


def split_sentences(text: str) -> list[str]:
    """Split `text` after sentence-final punctuation (`SENTENCE_TERMINATORS`).

    A terminator cluster ends a sentence when whitespace or the end of the text follows it, or when its last
    terminator is one of 。！？᠃᠉།༎ (scripts that need no space there); so `3.5` and `e.g.x` stay whole. Runs such
    as Tibetan `། །` or `?!` are one cluster. Sentences are stripped; a trailing fragment without a terminator
    is a sentence too. The Tibetan shad also ends clauses, so Tibetan "sentences" can be clauses.
    """
    sentences, start = [], 0
    for match in _TERMINATOR_CLUSTER.finditer(text):
        cluster = match.group(0)
        last_terminator = [ch for ch in cluster if ch in SENTENCE_TERMINATORS][-1]
        if cluster[-1].isspace() or match.end() == len(text) or last_terminator in _UNSPACED_TERMINATORS:
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def permute_sentences(text: str, rng: np.random.Generator) -> str:
    """The sentences of `text` (`split_sentences`) in a random order from `rng`, joined by one space if
    the text has whitespace between its sentences, else directly (e.g. Chinese)."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return text
    joiner = " " if re.search(r"\s", text.strip()) else ""
    return joiner.join(sentences[i] for i in rng.permutation(len(sentences)))


def noise_spans(
    length: int,
    rng: np.random.Generator,
    mask_ratio: float = DataRecipe.mask_ratio,
    poisson_lambda: float = DataRecipe.poisson_lambda,
) -> list[tuple[int, int]]:
    """Text-infilling spans over a sequence of `length` tokens: a sorted list of `(start, span_length)`.

    * Tokens to mask: `length * mask_ratio` rounded stochastically (floor + Bernoulli of the fraction), so the
      expected masked fraction is exactly `mask_ratio` for every length.
    * Span lengths are Poisson(`poisson_lambda`) draws, taken until they cover that number; the last one is cut
      to fit (so the mean span length is a little below `poisson_lambda` on short sequences: about 3.3 for
      λ = 3.5 over 20–200 tokens). Zero-length draws are kept: they *insert* a mask token (as BART's text
      infilling does).
    * Placement: the spans go into distinct gaps between the unmasked tokens (chosen uniformly without
      replacement), so spans never overlap or touch and each becomes exactly one `<mask>`. If there are more
      spans than gaps (very short sequences), the last spans are merged.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda must be > 0, got {poisson_lambda}")
    if length == 0 or mask_ratio == 0.0:
        return []
    num_to_mask = min(length, int(math.floor(length * mask_ratio + rng.random())))
    if num_to_mask == 0:
        return []
    span_lengths: list[int] = []
    covered = 0
    while covered < num_to_mask:
        draws = rng.poisson(poisson_lambda, size=max(4, int(2 * (num_to_mask - covered) / poisson_lambda) + 1))
        for draw in draws:
            span = min(int(draw), num_to_mask - covered)
            span_lengths.append(span)
            covered += span
            if covered == num_to_mask:
                break
    num_gaps = length - num_to_mask + 1
    while len(span_lengths) > num_gaps:
        last = span_lengths.pop()
        span_lengths[-1] += last
    span_lengths = [span_lengths[i] for i in rng.permutation(len(span_lengths))]  # the cut span goes anywhere
    gaps = np.sort(rng.choice(num_gaps, size=len(span_lengths), replace=False))
    spans, masked_before = [], 0
    for gap, span in zip(gaps.tolist(), span_lengths):
        spans.append((gap + masked_before, span))
        masked_before += span
    return spans


def apply_infilling(token_ids: Sequence[int], spans: Sequence[tuple[int, int]], mask_token_id: int) -> list[int]:
    """Replace each `(start, length)` span of `token_ids` by one `mask_token_id` (length 0: insert one)."""
    out, position = [], 0
    for start, span in spans:
        out.extend(token_ids[position:start])
        out.append(mask_token_id)
        position = start + span
    out.extend(token_ids[position:])
    return out


class _SeededCollator:
    """A seeded numpy Generator per process: the main process uses `seed`; a DataLoader worker uses
    `(seed, worker seed)` — the worker seed differs per worker and per epoch and follows torch's seed — so workers
    do not repeat each other's noise and a run is reproducible."""

    def __init__(self, seed: int):
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream from `seed`."""
        self.seed = int(seed)
        self._rngs: dict[int | None, np.random.Generator] = {}

    @property
    def rng(self) -> np.random.Generator:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        key = None if info is None else int(info.seed)
        if key not in self._rngs:
            self._rngs[key] = np.random.default_rng(self.seed if key is None else [self.seed, key])
        return self._rngs[key]


class DenoisingCollator(_SeededCollator):
    """mBART-style denoising auto-encoding (DAE) batches from raw text.

    For each feature's `text_column`: optionally permute its sentences (`permute_sentences`), tokenize,
    replace spans (`noise_spans`: `mask_ratio` of the tokens, Poisson(`poisson_lambda`) span lengths) by one
    `tokenizer.mask_token_id` each. `input_ids` = `<s> noised </s>`; `labels` = the original, unpermuted
    text as `y1 … </s>` (no leading `<s>`). `<s>`/`</s>` are added after noising, so they are never masked.
    Both sides are cut to `max_length` tokens before noising (keep it within the decoder's limit, 512 for
    XLM-R). Padding and (with `model`) `decoder_input_ids` come from `DataCollatorForSeq2Seq`.

    Not done (unlike BART): random-token replacement of masked tokens, document rotation. The input text should be
    plain text (a literal `</s>` in it would be tokenized as the special token).

    Deterministic: the same `seed` gives the same sequence of batches. With `Trainer`, set
    `remove_unused_columns=False` so the text column reaches the collator.
    """

    def __init__(
        self,
        tokenizer,
        model=None,
        *,
        mask_ratio: float = DataRecipe.mask_ratio,
        poisson_lambda: float = DataRecipe.poisson_lambda,
        permute_sentences: bool = DataRecipe.permute_sentences,
        max_length: int = DataRecipe.max_source_length,
        seed: int = 0,
        text_column: str = DataRecipe.text_column,
        pad_to_multiple_of: int | None = None,
        label_pad_token_id: int = -100,
        return_tensors: str = "pt",
    ):
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; text infilling needs <mask>")
        _special_ids(tokenizer)
        _check_lengths(max_length, max_length)
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        if poisson_lambda <= 0:
            raise ValueError(f"poisson_lambda must be > 0, got {poisson_lambda}")
        super().__init__(seed)
        self.tokenizer = tokenizer
        self.model = model
        self.mask_ratio = mask_ratio
        self.poisson_lambda = poisson_lambda
        self.permute_sentences = permute_sentences
        self.max_length = max_length
        self.text_column = text_column
        self.pad_collator = make_seq2seq_collator(
            tokenizer,
            model,
            pad_to_multiple_of=pad_to_multiple_of,
            label_pad_token_id=label_pad_token_id,
            return_tensors=return_tensors,
        )

    def noise(self, token_ids: Sequence[int], rng: np.random.Generator | None = None):
        """`(noised_ids, spans)` for content ids (no `<s>`/`</s>`), with the collator's RNG by default."""
        rng = self.rng if rng is None else rng
        spans = noise_spans(len(token_ids), rng, self.mask_ratio, self.poisson_lambda)
        return apply_infilling(list(token_ids), spans, self.tokenizer.mask_token_id), spans

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """Unpadded `{"input_ids", "attention_mask", "labels"}` per text (advances the RNG)."""
        bos, eos = _special_ids(self.tokenizer)
        rng = self.rng
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"feature {i}: {self.text_column!r} must be a string, got {type(text).__name__}")
        noisy_texts = [permute_sentences(t, rng) for t in texts] if self.permute_sentences else list(texts)
        originals = _content_ids(self.tokenizer, texts)
        noisy = originals if not self.permute_sentences else _content_ids(self.tokenizer, noisy_texts)
        encoded = []
        for source, target in zip(noisy, originals):
            noised, _ = self.noise(source[: self.max_length - 2], rng)
            input_ids = _encode_source(noised, self.max_length, bos, eos)  # zero-length spans may lengthen it
            encoded.append(
                {
                    "input_ids": input_ids,
                    "attention_mask": [1] * len(input_ids),
                    "labels": _encode_target(target, self.max_length, eos),
                }
            )
        return encoded

    def __call__(self, features: Sequence[Mapping[str, Any]]):
        return self.pad_collator(self.encode_texts([f[self.text_column] for f in features]))


class MixedObjectiveCollator:
    """Batches that mix the paper's pretraining objectives: each feature is routed by what it has

    * `input_ids` and `labels` (already tokenized, e.g. by `tokenize_for_seq2seq`): used as they are;
    * `source_column` and `target_column` not `None`: machine translation, tokenized like
      `tokenize_for_seq2seq` (a target-language tag, if any, is part of the source text);
    * otherwise the denoising collator's `text_column`: DAE through `denoising`.

    A mixed dataset is e.g. `datasets.interleave_datasets([monolingual, parallel], probabilities=..., seed=...)`;
    the columns one side lacks are `None` in the other side's rows. Tokenizer, model, padding and the RNG are the
    `denoising` collator's. `last_objectives` lists the objective ("pretokenized"/"mt"/"dae") of each row of
    the last batch.
    """

    def __init__(
        self,
        denoising: DenoisingCollator,
        *,
        max_source_length: int | None = None,
        max_target_length: int | None = None,
        source_column: str = "source_text",
        target_column: str = "target_text",
    ):
        self.denoising = denoising
        self.max_source_length = max_source_length or denoising.max_length
        self.max_target_length = max_target_length or denoising.max_length
        _check_lengths(self.max_source_length, self.max_target_length)
        self.source_column = source_column
        self.target_column = target_column
        self.last_objectives: list[str] = []

    def _objective(self, index: int, feature: Mapping[str, Any]) -> str:
        if feature.get("input_ids") is not None and feature.get("labels") is not None:
            return "pretokenized"
        if feature.get(self.source_column) is not None and feature.get(self.target_column) is not None:
            return "mt"
        if feature.get(self.denoising.text_column) is not None:
            return "dae"
        raise ValueError(
            f"feature {index} has neither input_ids+labels, nor {self.source_column!r}+{self.target_column!r}, nor "
            f"{self.denoising.text_column!r}"
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]):
        tokenizer = self.denoising.tokenizer
        bos, eos = _special_ids(tokenizer)
        objectives = [self._objective(i, f) for i, f in enumerate(features)]
        encoded: list[dict | None] = [None] * len(features)
        for i, (feature, objective) in enumerate(zip(features, objectives)):
            if objective == "pretokenized":
                ids = list(feature["input_ids"])
                encoded[i] = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(feature["labels"])}
        mt = [i for i, o in enumerate(objectives) if o == "mt"]
        if mt:
            sources = _content_ids(tokenizer, [features[i][self.source_column] for i in mt])
            targets = _content_ids(tokenizer, [features[i][self.target_column] for i in mt])
            for i, source, target in zip(mt, sources, targets):
                ids = _encode_source(source, self.max_source_length, bos, eos)
                encoded[i] = {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "labels": _encode_target(target, self.max_target_length, eos),
                }
        dae = [i for i, o in enumerate(objectives) if o == "dae"]
        if dae:
            texts = [features[i][self.denoising.text_column] for i in dae]
            for i, item in zip(dae, self.denoising.encode_texts(texts)):
                encoded[i] = item
        self.last_objectives = objectives
        return self.denoising.pad_collator(encoded)
