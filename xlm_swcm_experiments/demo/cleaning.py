"""Cleaning and splitting the demo pairs: text helpers, `clean_pairs` and `assign_split`.

Cleaning
--------
* every string is NFC-normalised, stripped, and internal whitespace runs collapse to one space;
* a pair is dropped when either side is empty, when the target equals the source
  (case-insensitively), or when the target contains no character of the language's own
  script (`LANG_SCRIPT`) — this catches CLDR/gettext falling back to English
  (`"Pitcairn"` for Uyghur) or to a parent/root value;
* format placeholders (`%(name)s`, `%s`, `{0}`, `{name}`) and HTML tag names must form
  the same multiset on both sides; what happens then is `placeholder_policy`:
  `"keep"` (default: keep the text verbatim), `"strip"` (remove them from both sides),
  `"drop"` (drop every pair that has any);
* gettext entries that are fuzzy, untranslated, or plural entries whose forms are all empty
  are skipped; a plural entry gives (singular → first form) and (plural → second form);
* records are de-duplicated on `(lang, source, target)`.

Splits
------
The split of a pair is a pure function of its English text (SHA-256 of the case-folded,
normalised text → a number in [0, 1); default 5 % test, 5 % validation, 90 % train).  So the
same English string never lands in two splits for one language — nor across languages, which
keeps a multilingual model from seeing a test source during training via another language.
No RNG is involved: building twice gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xlm_swcm_hf.metrics.script_detection import target_script


# Fractions of the hash space for the held-out splits; the rest is `train`.
DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = {"validation": 0.05, "test": 0.05}
PLACEHOLDER_POLICIES = ("keep", "strip", "drop")

# The script a target must use at least once; a target without it is a fallback. The language -> script map is the
# metrics' (one place); the ranges stay these, so the corpus and its checksum are what they were.
LANG_SCRIPT = {language: target_script(language) for language in ("bo", "ug", "kk", "kk_Arab", "mn", "zh")}
_SCRIPT_RANGES = {
    "Tibetan": ((0x0F00, 0x0FFF),),
    "Arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "Cyrillic": ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
    "Han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F)),
}

_WS = re.compile(r"\s+")
# printf-style (%(name)s, %s, %5.2f — not %%) and str.format-style ({0}, {name}, {}) fields.
_PLACEHOLDER = re.compile(
    r"%\([^)]*\)[#0\-+]*\d*(?:\.\d+)?[sdifrxXeEgGcaou]"
    r"|%[#0\-+]*\d*(?:\.\d+)?[sdifrxXeEgGcaou]"
    r"|\{[A-Za-z0-9_.\[\]]*(?:![rsa])?(?::[^{}]*)?\}"
)
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)\b[^<>]*>")


@dataclass(frozen=True)
class RawPair:
    """One candidate pair before cleaning.  `english` is the untagged source text."""

    lang: str
    english: str
    target: str
    origin: str


# --------------------------------------------------------------------------- text helpers
def normalize_text(text: str) -> str:
    """NFC, strip, collapse every whitespace run (newlines, NBSP, …) to one space."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _in_script(ch: str, script: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _SCRIPT_RANGES[script])


def has_expected_script(text: str, lang: str) -> bool:
    """Whether `text` has at least one character of `lang`'s script."""
    script = LANG_SCRIPT[lang]
    return any(_in_script(ch, script) for ch in text)


def is_script_fallback(target: str, lang: str) -> bool:
    """True for a target that is not really in `lang`: e.g. an all-Latin CLDR fallback
    (`"Pitcairn"` for Uyghur) or a value in another script inherited from a parent locale."""
    return not has_expected_script(target, lang)


def extract_markup(text: str) -> Counter:
    """Multiset of format placeholders and HTML tag names in `text`."""
    found: Counter = Counter(m.group(0) for m in _PLACEHOLDER.finditer(text.replace("%%", "")))
    found.update(f"<{m.group(1).lower()}>" for m in _TAG.finditer(text))
    return found


def _strip_markup(text: str) -> str:
    text = _TAG.sub(" ", _PLACEHOLDER.sub(" ", text.replace("%%", "%")))
    return normalize_text(text)


def split_key(english: str) -> str:
    return normalize_text(english).casefold()


def assign_split(english: str, fractions: Mapping[str, float] | None = None) -> str:
    """Deterministic split of an English text: `"test"`, `"validation"` or `"train"`."""
    fractions = DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions
    digest = hashlib.sha256(split_key(english).encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for split in ("test", "validation"):
        edge += float(fractions.get(split, 0.0))
        if x < edge:
            return split
    return "train"


# --------------------------------------------------------------------------- cleaning
def clean_pairs(
    pairs: Iterable[RawPair],
    placeholder_policy: str = "keep",
    drop_counts: Counter | None = None,
    unique_sources: bool = False,
) -> list[RawPair]:
    """Normalise, filter and de-duplicate `pairs` (order of first occurrence is kept).

    With `unique_sources` only the first target of an English text (case-insensitive) is
    kept per language — otherwise different sources' translations of one English string are
    all kept as alternative references.  `drop_counts` (optional) is updated with
    `(lang, reason)` → count."""
    if placeholder_policy not in PLACEHOLDER_POLICIES:
        raise ValueError(f"placeholder_policy must be one of {PLACEHOLDER_POLICIES}, got {placeholder_policy!r}")
    drops = Counter() if drop_counts is None else drop_counts
    seen: set[tuple[str, str, str]] = set()
    seen_sources: set[tuple[str, str]] = set()
    kept: list[RawPair] = []
    for pair in pairs:
        english, target = normalize_text(pair.english), normalize_text(pair.target)
        if not english or not target:
            drops[(pair.lang, "empty")] += 1
            continue
        src_markup, tgt_markup = extract_markup(english), extract_markup(target)
        if src_markup != tgt_markup:
            drops[(pair.lang, "placeholder-mismatch")] += 1
            continue
        if src_markup:
            if placeholder_policy == "drop":
                drops[(pair.lang, "placeholder-policy-drop")] += 1
                continue
            if placeholder_policy == "strip":
                english, target = _strip_markup(english), _strip_markup(target)
                if not english or not target:
                    drops[(pair.lang, "empty")] += 1
                    continue
        if target.casefold() == english.casefold():
            drops[(pair.lang, "target-equals-source")] += 1
            continue
        if is_script_fallback(target, pair.lang):
            drops[(pair.lang, "script-fallback")] += 1
            continue
        key = (pair.lang, english, target)
        if key in seen:
            drops[(pair.lang, "duplicate")] += 1
            continue
        if unique_sources:
            source_key = (pair.lang, split_key(english))
            if source_key in seen_sources:
                drops[(pair.lang, "alternative-target")] += 1
                continue
            seen_sources.add(source_key)
        seen.add(key)
        kept.append(RawPair(pair.lang, english, target, pair.origin))
    return kept
