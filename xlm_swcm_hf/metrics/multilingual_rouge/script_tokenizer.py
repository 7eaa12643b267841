"""Script-aware word tokenizer for ROUGE on Tibetan, Uyghur, Kazakh, Mongolian, Chinese (and Latin) text.

This file is the single implementation of the tokenizer. It lives next to `multilingual_rouge.py` so that the
`evaluate` module folder is self-contained (`evaluate` copies same-folder `from .x import` files into its
module cache); the package re-exports it as `xlm_swcm_hf.metrics.tokenization`. Standard library only.

Why: `rouge_score`'s default tokenizer keeps only `[a-z0-9]`, so text in any other script becomes an empty
token list and scores 0.0 even against itself.

Rules, applied to `unicodedata.normalize("NFKC", text).casefold()`:

* CJK ideographs, kana, bopomofo and hangul: one token per character (a following combining mark, e.g. a
  variation selector, stays with its character).
* Every other script (Latin, Cyrillic, Arabic-script Uyghur/Kazakh, traditional Mongolian, Tibetan, ...): a token
  is a maximal run of letters, digits and combining marks (Unicode categories `L*`, `N*`, `M*`).
  Mongolian free variation selectors U+180B-U+180D and U+180F are `Mn`, so they stay inside the word; the
  Mongolian vowel separator U+180E, ZWNJ and ZWJ are kept when they sit *between* word characters.
* Everything else splits: whitespace (including U+202F, the narrow no-break space before Mongolian suffixes),
  punctuation, symbols, U+200B. Invisible format characters (`Cf`: LRM/RLM, soft hyphen, BOM, word joiner)
  are dropped without splitting.
* Tibetan needs no special case: tsheg U+0F0B/U+0F0C, shad U+0F0D-U+0F12, U+0F14 and the other Tibetan
  punctuation and symbols are `Po`/`So` and split, while vowel signs and subjoined consonants are `Mn` and
  stay inside the syllable, so a token is one syllable: "བོད་ཀྱི་སྐད་ཡིག།" -> ["བོད", "ཀྱི", "སྐད", "ཡིག"].
"""

import re
import unicodedata


__all__ = ["MultilingualTokenizer", "multilingual_tokenize"]

# Scripts tokenized one character per token: Hangul jamo, CJK iteration/number marks, kana, bopomofo,
# Hangul compatibility jamo, CJK Ext. A, CJK Unified, Hangul jamo ext. A, Hangul syllables + jamo ext. B,
# CJK compatibility ideographs, CJK Ext. B and later (planes 2 and 3).
_PER_CHARACTER = re.compile(
    r"[\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3038-\u303c\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    r"\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    r"\U00020000-\U0003ffff]"
)
# Kept only between word characters: Mongolian vowel separator, ZWNJ, ZWJ.
_JOINERS = frozenset("\u180e\u200c\u200d")
_ZERO_WIDTH_SPACE = "\u200b"

# Each character is coded as one of: "C" per-character token, "W" letter/digit, "M" combining mark,
# "J" joiner, " " separator; ignorable format characters get "" (removed). Tokens are then found on the code
# string: a "C" with its marks, or a run of letters/marks that may contain (but not start or end with) joiners.
_TOKEN_CODES = re.compile(r"CM*|[WM](?:J*[WM])*")


def _code(char: str) -> str:
    if char in _JOINERS:
        return "J"
    category = unicodedata.category(char)
    if category[0] in "LN":
        return "C" if _PER_CHARACTER.match(char) else "W"
    if category[0] == "M":
        return "M"
    if category == "Cf" and char != _ZERO_WIDTH_SPACE:
        return ""
    return " "


def multilingual_tokenize(text: str) -> list[str]:
    """Split `text` into casefolded word / syllable / CJK-character tokens (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = [(char, code) for char in text if (code := _code(char))]
    chars = "".join(char for char, _ in kept)
    codes = "".join(code for _, code in kept)
    return [chars[m.start() : m.end()] for m in _TOKEN_CODES.finditer(codes)]


class MultilingualTokenizer:
    """Tokenizer object for `rouge_score.rouge_scorer.RougeScorer(rouge_types, tokenizer=MultilingualTokenizer())`."""

    def tokenize(self, text: str) -> list[str]:
        return multilingual_tokenize(text)

    def __call__(self, text: str) -> list[str]:
        return multilingual_tokenize(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
