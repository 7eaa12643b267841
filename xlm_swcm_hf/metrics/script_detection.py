"""Which script a text is written in, against the script its target language is written in: the off-target rate.

* `target_script(tag)`: the Unicode script of a language tag: a tag's ISO 15924 part where it has one (`kk_Arab` ->
  Arabic, `mn_Mong` -> Mongolian), else the language's usual script (`LANGUAGE_SCRIPTS`: bo Tibetan, ug Arabic,
  kk Cyrillic, mn Cyrillic, zh Han, en Latin).
* `script_share(text, tag)`: the share of the text's letters (Unicode category L; digits, punctuation, spaces and
  combining marks are not counted) whose Script_Extensions include the target's script, from the `regex` package's
  Unicode data. A text without letters (empty, or only punctuation and digits) has share 0.0: none of it is in the
  target's script.
* `off_target_rate(texts, tags)`: the percentage of texts whose share is below `OFF_TARGET_THRESHOLD`; empty
  outputs and outputs without letters therefore count as off-target.

    >>> script_share("ئۇيغۇر تىلى", "ug"), script_share("Uyghur", "ug")
    (1.0, 0.0)
    >>> off_target_rate(["我们学习", "We learn", ""], ["zh", "zh", "zh"])
    66.67
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import regex


#: An output is off-target when less than this share of its letters is in the target language's script.
OFF_TARGET_THRESHOLD = 0.5
#: A language's usual script, for tags without an ISO 15924 part (the demo's and the project's languages).
LANGUAGE_SCRIPTS = {
    "bo": "Tibetan",
    "ug": "Arabic",
    "kk": "Cyrillic",
    "mn": "Cyrillic",
    "zh": "Han",
    "en": "Latin",
}
#: ISO 15924 codes a tag may carry (`kk_Arab`) -> the Unicode script name `regex` knows.
ISO_15924_SCRIPTS = {
    "Arab": "Arabic",
    "Cyrl": "Cyrillic",
    "Hani": "Han",
    "Hans": "Han",
    "Hant": "Han",
    "Latn": "Latin",
    "Mong": "Mongolian",
    "Tibt": "Tibetan",
}
_LETTER = regex.compile(r"\p{L}")


def target_script(tag: str) -> str:
    """The Unicode script name of a language tag (`ug`, `kk_Arab`, `mn_Mong`); ValueError for one it cannot tell."""
    language, _, script = tag.partition("_")
    if script:
        if script not in ISO_15924_SCRIPTS:
            raise ValueError(f"{tag!r}: unknown script {script!r}; known: {', '.join(sorted(ISO_15924_SCRIPTS))}")
        return ISO_15924_SCRIPTS[script]
    if language not in LANGUAGE_SCRIPTS:
        raise ValueError(f"{tag!r}: no script known for this language; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}")
    return LANGUAGE_SCRIPTS[language]


def knows_script(tag: str | None) -> bool:
    """Whether `target_script` can tell the tag's script (a row without a known tag gets no off-target figure)."""
    try:
        return isinstance(tag, str) and bool(target_script(tag))
    except ValueError:
        return False


@functools.cache
def _letters_in(script: str):
    # Script_Extensions, not Script: the Arabic tatweel and shared marks are "Common" by Script alone
    return regex.compile(rf"[\p{{L}}&&\p{{Script_Extensions={script}}}]", regex.V1)


def script_share(text: str, tag: str) -> float:
    """The share (0 to 1) of `text`'s letters in `tag`'s script; 0.0 for a text without letters."""
    letters = len(_LETTER.findall(text))
    if letters == 0:
        return 0.0
    return len(_letters_in(target_script(tag)).findall(text)) / letters


def is_off_target(text: str, tag: str, threshold: float = OFF_TARGET_THRESHOLD) -> bool:
    return script_share(text, tag) < threshold


def off_target_rate(
    texts: Sequence[str], tags: Sequence[str], threshold: float = OFF_TARGET_THRESHOLD, ndigits: int = 2
) -> float:
    """Percentage (0-100) of `texts` off their tag's script (empty ones included); ValueError on empty inputs."""
    if len(texts) != len(tags) or not texts:
        raise ValueError(f"off_target_rate needs as many tags as texts, and some: got {len(texts)} and {len(tags)}")
    off = sum(is_off_target(text, tag, threshold) for text, tag in zip(texts, tags))
    return round(100 * off / len(texts), ndigits)
