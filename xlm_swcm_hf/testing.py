"""Offline helpers for tests and demos: a tiny XLM-R-style tokenizer trained on the spot.

`build_tiny_xlmr_tokenizer` trains a `tokenizers` Unigram model (the model type of XLM-R's sentencepiece) on
a handful of texts and wraps it in transformers' `XLMRobertaTokenizer` (in transformers 5 the same class as
`XLMRobertaTokenizerFast`), which adds XLM-R's pre-tokenizer (whitespace split + `▁` metaspace) and
post-processor (`<s> A </s>`, pairs `<s> A </s></s> B </s>`). The ids follow XLM-R: `<s>` = 0, `<pad>` = 1,
`</s>` = 2, `<unk>` = 3, the trained pieces, and `<mask>` last. `len(tokenizer) <= vocab_size`; the default
99 fits the tiny test model (`tests/conftest.py`: `TINY_ENCODER["vocab_size"] == 99`). A model whose vocabulary
is larger than the tokenizer's is fine (the extra rows are never produced); a smaller one is not.

There is no normaliser (real XLM-R applies NFKC via a precompiled charsmap): feed it NFC text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers.models import Unigram
from transformers import XLMRobertaTokenizer


__all__ = ["TINY_MULTILINGUAL_TEXTS", "TINY_SPECIAL_TOKENS", "build_tiny_xlmr_tokenizer"]

# XLM-R's special tokens in id order; `<mask>` comes after the trained pieces.
TINY_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")

# A few short sentences per language (written for this project), the default training text.
TINY_MULTILINGUAL_TEXTS = (
    "我们学习语言。你们学习吗？他们也学习！",  # zh
    "ང་ཚོ་སློབ། ཁྱེད་ཚོ་ཡང་སློབ།",  # bo (Tibetan)
    "بىز تىل ئۆگىنىمىز. سىلەر ئۆگىنەمسىلەر؟",  # ug (Uyghur, Arabic script)
    "Біз тіл үйренеміз. Сендер де үйренесің бе?",  # kk (Kazakh, Cyrillic)
    "ᠪᠢᠳᠡ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃",  # mn (traditional Mongolian script)
    "We learn languages. Do you learn languages too?",  # en
)


_TIE_TOLERANCE = 2e-4


def _train_unigram(texts: list[str], num_pieces: int) -> list[tuple[str, float]]:
    """Trained (piece, log-probability) pairs, best first, without special tokens."""
    tokenizer = Tokenizer(Unigram())
    # The same pre-tokenization XLMRobertaTokenizer applies, so the pieces carry the same "▁" prefixes.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    # The trainer refuses a vocabulary smaller than the alphabet; train big enough, then cut below.
    alphabet = {ch for text in texts for ch in text if not ch.isspace()} | {"▁"}
    trainer = trainers.UnigramTrainer(
        vocab_size=max(num_pieces, len(alphabet) + 1) + 1,
        unk_token="<unk>",
        special_tokens=["<unk>"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    pieces = json.loads(tokenizer.to_str())["model"]["vocab"]
    pieces = [(str(piece), float(score)) for piece, score in pieces if piece not in TINY_SPECIAL_TOKENS + ("<mask>",)]
    # Determinism: the trainer scores the characters it must keep min_score - 0.0001 * i in hash-map order, which
    # varies between runs. Give each such chain of near-equal scores one score (its best) and order by piece.
    pieces.sort(key=lambda item: -item[1])
    canonical, group_score, previous = [], None, None
    for piece, score in pieces:
        if previous is None or previous - score > _TIE_TOLERANCE:
            group_score = round(score, 6)
        canonical.append((piece, group_score))
        previous = score
    canonical.sort(key=lambda item: (-item[1], item[0]))
    # With more characters than room, keep the most probable pieces; characters left out become <unk>.
    return canonical[:num_pieces]


def build_tiny_xlmr_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = 99, **tokenizer_kwargs
) -> XLMRobertaTokenizer:
    """A tiny XLM-R-style tokenizer trained offline on `texts` (default `TINY_MULTILINGUAL_TEXTS`).

    `vocab_size` bounds `len(tokenizer)` including the 5 special tokens (the trainer may produce fewer pieces on
    little text). `tokenizer_kwargs` go to `XLMRobertaTokenizer` (e.g. `model_max_length`). Deterministic:
    the same texts give the same vocabulary.
    """
    texts = list(TINY_MULTILINGUAL_TEXTS if texts is None else texts)
    if not texts:
        raise ValueError("texts is empty")
    if vocab_size < 6:
        raise ValueError(f"vocab_size must leave room for the 5 special tokens and a piece, got {vocab_size}")
    pieces = _train_unigram(texts, vocab_size - len(TINY_SPECIAL_TOKENS) - 1)
    vocab = [(token, 0.0) for token in TINY_SPECIAL_TOKENS] + pieces + [("<mask>", 0.0)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab, **tokenizer_kwargs)
    expected = {
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
        "unk_token_id": 3,
        "mask_token_id": len(vocab) - 1,
    }
    actual = {name: getattr(tokenizer, name) for name in expected}
    if actual != expected or len(tokenizer) != len(vocab):
        raise RuntimeError(f"unexpected special token ids {actual} (expected {expected}), size {len(tokenizer)}")
    return tokenizer
