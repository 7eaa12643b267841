"""Offline English→X parallel demo data (and monolingual Uyghur text) built from PyPI packages.

Nothing here touches the network: every string comes from data files that ship inside
ordinary PyPI packages (install them with the project's `demo` extra):

==========================  ==============  ======================================================
source (`origin`)         package         what
==========================  ==============  ======================================================
`cldr-territories` …      `babel`       CLDR display names: territories, languages, scripts,
                                            currencies, units, month and weekday names
`django`                  `django`      gettext catalogues of Django core and contrib apps
`pycountry-iso3166` …     `pycountry`   ISO 3166-1 / 639-3 / 4217 / 15924 names via gettext
`maqal`                   `maqal`       ~2,500 Uyghur proverbs (monolingual, for denoising)
==========================  ==============  ======================================================

Target languages are keyed by `lang`: `ug` (Uyghur, Arabic script), `kk` (Kazakh,
Cyrillic), `kk_Arab` (Kazakh, Arabic script — CLDR only), `mn` (Mongolian, *Cyrillic*),
`zh` (Simplified Chinese) and `bo` (Tibetan — CLDR only).  Note that XLM-SWCM's
pre-training corpus (MC²) writes Kazakh in Arabic script and Mongolian in the traditional
Mongolian script; these packages have no traditional-script Mongolian at all, and Arabic-script
Kazakh only in CLDR.

Target-language tag
-------------------
The `source` field of a written record is the English text with a plain, readable
target-language prefix made from `TAG_TEMPLATE` (default `"{lang}: {text}"`, e.g.
`"ug: Afghanistan"`).  A `<2ug>`-style token is avoided on purpose: the model's XLM-R
SentencePiece tokenizer has no such token and would cut it into pieces anyway.  Pass another
`tag_template` (it must contain `{text}`; `"{text}"` alone means "no tag") to
`build_demo_dataset` to change it; the split and de-duplication always work on the
untagged English text.

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

import gettext
import hashlib
import importlib.metadata
import json
import os
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.files import atomic_output_dir


__all__ = [
    "TAG_TEMPLATE",
    "SRC_LANG",
    "DEFAULT_LANGUAGES",
    "SUPPORTED_LANGUAGES",
    "LANG_SCRIPT",
    "SPLITS",
    "DEFAULT_SPLIT_FRACTIONS",
    "RawPair",
    "normalize_text",
    "make_source",
    "has_expected_script",
    "is_script_fallback",
    "extract_markup",
    "clean_pairs",
    "assign_split",
    "collect_cldr_pairs",
    "collect_django_pairs",
    "collect_pycountry_pairs",
    "collect_pairs",
    "collect_monolingual_ug",
    "source_metadata",
    "build_demo_dataset",
]

# How the target language is marked on the English source.  `{lang}` is the record's
# `lang` key, `{text}` the English text.
TAG_TEMPLATE = "{lang}: {text}"
SRC_LANG = "en"
SUPPORTED_LANGUAGES = ("ug", "kk", "kk_Arab", "mn", "zh", "bo")
DEFAULT_LANGUAGES = ("ug", "kk", "kk_Arab", "mn", "zh", "bo")
SPLITS = ("train", "validation", "test")
# Fractions of the hash space for the held-out splits; the rest is `train`.
DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = {"validation": 0.05, "test": 0.05}
PLACEHOLDER_POLICIES = ("keep", "strip", "drop")

# Locale names per source.  A language missing from a map has no data in that source.
CLDR_LOCALES = {"bo": "bo", "ug": "ug", "kk": "kk", "kk_Arab": "kk_Arab", "mn": "mn", "zh": "zh_Hans"}
DJANGO_LOCALES = {"ug": "ug", "kk": "kk", "mn": "mn", "zh": "zh_Hans"}
PYCOUNTRY_LOCALES = {"ug": "ug", "kk": "kk", "mn": "mn", "zh": "zh_CN"}
# gettext domain → (origin, pycountry database attribute, fields holding English names)
PYCOUNTRY_DOMAINS = {
    "iso3166-1": ("pycountry-iso3166", "countries", ("name", "official_name", "common_name")),
    "iso639-3": ("pycountry-iso639-3", "languages", ("name",)),
    "iso4217": ("pycountry-iso4217", "currencies", ("name",)),
    "iso15924": ("pycountry-iso15924", "scripts", ("name",)),
}

# The script a target must use at least once; a target without it is a fallback.
LANG_SCRIPT = {
    "bo": "Tibetan",
    "ug": "Arabic",
    "kk": "Cyrillic",
    "kk_Arab": "Arabic",
    "mn": "Cyrillic",
    "zh": "Han",
}
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


# --------------------------------------------------------------------------- text helpers
def normalize_text(text: str) -> str:
    """NFC, strip, collapse every whitespace run (newlines, NBSP, …) to one space."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def make_source(text: str, lang: str, template: str = TAG_TEMPLATE) -> str:
    """The tagged English source, e.g. `make_source("China", "ug") == "ug: China"`."""
    return template.format(lang=lang, text=text)


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


def _split_key(english: str) -> str:
    return normalize_text(english).casefold()


def assign_split(english: str, fractions: Mapping[str, float] | None = None) -> str:
    """Deterministic split of an English text: `"test"`, `"validation"` or `"train"`."""
    fractions = DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions
    digest = hashlib.sha256(_split_key(english).encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for split in ("test", "validation"):
        edge += float(fractions.get(split, 0.0))
        if x < edge:
            return split
    return "train"


# --------------------------------------------------------------------------- licences
_CLASSIFIER_LICENSES = {
    "MIT License": "MIT",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.1",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.1-or-later",
}
_SPDX_LIKE = re.compile(r"^[A-Za-z0-9.+\-]+(?: (?:AND|OR|WITH) [A-Za-z0-9.+\-]+)*$")


def _dist_license(dist: str) -> str:
    """The licence a distribution declares: License-Expression, an SPDX-looking License field,
    a known classifier, or the raw License field."""
    meta = importlib.metadata.metadata(dist)
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return expr
    field = (meta.get("License") or "").strip()
    if field and _SPDX_LIKE.match(field):
        return field
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            tail = classifier.split("::")[-1].strip()
            if tail in _CLASSIFIER_LICENSES:
                return _CLASSIFIER_LICENSES[tail]
    return field.splitlines()[0] if field else "UNKNOWN"


def _cldr_license() -> str:
    """Licence of the CLDR data babel ships (not babel's own BSD-3-Clause code licence)."""
    import babel

    path = Path(babel.__file__).parent / "locale-data" / "LICENSE.unicode"
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:400].upper()
    except OSError:
        return "Unicode (CLDR; licence file not found in babel)"
    if "LICENSE V3" in head:
        return "Unicode-3.0"
    if "UNICODE, INC. LICENSE AGREEMENT" in head:
        return "Unicode-DFS-2016"
    return "Unicode (see babel/locale-data/LICENSE.unicode)"


_SOURCES = {
    # name: (distribution, licence getter, what)
    "cldr": (
        "babel",
        _cldr_license,
        "CLDR display names (territories, languages, scripts, currencies, units, months, weekdays)",
    ),
    "django": ("django", lambda: _dist_license("django"), "Django core + contrib gettext catalogues (.po)"),
    "pycountry": (
        "pycountry",
        lambda: _dist_license("pycountry"),
        "ISO 3166-1/639-3/4217/15924 names, Debian iso-codes translations (.mo)",
    ),
    "maqal": (
        "maqal",
        lambda: _dist_license("maqal"),
        "Uyghur proverbs (storage/uyghur-maqal-temsilliri.txt), monolingual",
    ),
}


def _source_of_origin(origin: str) -> str:
    return origin.split("-", 1)[0]


def pinned_versions(extra: str = "demo") -> dict[str, str]:
    """The `==` pins of the project's `demo` extra (pyproject.toml states them once), by distribution name."""
    from packaging.requirements import Requirement

    pins = {}
    for line in importlib.metadata.requires("xlm-swcm-hf") or []:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[requirement.name.lower()] = exact[0]
    return pins


def check_source_versions(sources_meta: Mapping[str, dict | None]) -> None:
    """The corpus depends on the data packages' versions: refuse any that differ from the pins."""
    pins = pinned_versions()
    wrong = [
        f"{meta['package']} {meta['version']} (pinned {pins[meta['package'].lower()]})"
        for meta in sources_meta.values()
        if meta is not None and meta["package"].lower() in pins and meta["version"] != pins[meta["package"].lower()]
    ]
    if wrong:
        raise InputError(
            f"the demo corpus is pinned to exact package versions, but {', '.join(wrong)} is installed; "
            "run pip install 'xlm-swcm-hf[demo]' (or pass allow_other_versions=True / --allow-other-versions "
            "to build a corpus that differs from the published one)."
        )


def corpus_checksum(files: Mapping[str, str]) -> str:
    """sha256 over the corpus files (name and content, in name order): equal corpora, equal checksums."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


def source_metadata(name: str) -> dict | None:
    """`{"package", "version", "license", "package_license", "description"}` for a source, or
    `None` when its package is not installed."""
    dist, license_getter, what = _SOURCES[name]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return {
        "package": dist,
        "version": version,
        "license": license_getter(),
        "package_license": _dist_license(dist),
        "description": what,
    }


# --------------------------------------------------------------------------- collectors
@dataclass(frozen=True)
class RawPair:
    """One candidate pair before cleaning.  `english` is the untagged source text."""

    lang: str
    english: str
    target: str
    origin: str


def _mapping(value) -> dict:
    try:
        return dict(value.items())
    except (AttributeError, KeyError, TypeError):
        return {}


def _nested(data, *keys) -> dict:
    for key in keys:
        try:
            data = data[key]
        except (KeyError, TypeError, IndexError):
            return {}
    return _mapping(data)


def collect_cldr_pairs(lang: str) -> list[RawPair]:
    """Display-name pairs from babel's CLDR data (English locale `en` → `lang`'s locale).

    Uses babel's merged (inherited) data, so a locale may show root/parent values; those are
    removed later by the script filter.  Months and weekdays pair the wide "format" names
    (see the comment below on why not "stand-alone"); units pair the English long display
    name with the target's long name, else its short one."""
    try:
        from babel import Locale, localedata
    except ImportError:
        return []
    loc_id = CLDR_LOCALES.get(lang)
    if loc_id is None or not localedata.exists(loc_id):
        return []
    en, tgt = Locale.parse("en"), Locale.parse(loc_id)
    pairs: list[RawPair] = []

    def add(origin: str, en_map: dict, tgt_map: dict) -> None:
        for key in sorted(set(en_map) & set(tgt_map), key=str):
            e, t = en_map[key], tgt_map[key]
            if isinstance(e, str) and isinstance(t, str):
                pairs.append(RawPair(lang, e, t, origin))

    add("cldr-territories", _mapping(en.territories), _mapping(tgt.territories))
    add("cldr-languages", _mapping(en.languages), _mapping(tgt.languages))
    add("cldr-scripts", _mapping(en.scripts), _mapping(tgt.scripts))
    add("cldr-currencies", _mapping(en.currencies), _mapping(tgt.currencies))

    en_units, tgt_units = _mapping(en.unit_display_names), _mapping(tgt.unit_display_names)
    en_long, tgt_best = {}, {}
    for unit, forms in en_units.items():
        forms = _mapping(forms)
        if forms.get("long"):
            en_long[unit] = forms["long"]
    for unit, forms in tgt_units.items():
        forms = _mapping(forms)
        value = forms.get("long") or forms.get("short")
        if value:
            tgt_best[unit] = value
    add("cldr-units", en_long, tgt_best)

    # Only the "format" context: "stand-alone" is an alias in CLDR root, and babel (2.18)
    # caches a resolved alias inside the root dict that locales without their own
    # stand-alone names share, so whichever locale resolved it first leaks into the others
    # (Uyghur "January" came out as Chinese "一月" after zh had been read).
    for origin, attr in (("cldr-months", "months"), ("cldr-days", "days")):
        add(origin, _nested(getattr(en, attr), "format", "wide"), _nested(getattr(tgt, attr), "format", "wide"))
    return pairs


def _django_po_files(lang: str) -> list[Path]:
    import django

    loc = DJANGO_LOCALES.get(lang)
    if loc is None:
        return []
    base = Path(django.__file__).resolve().parent
    files = [base / "conf" / "locale" / loc / "LC_MESSAGES" / "django.po"]
    files += base.glob(f"contrib/*/locale/{loc}/LC_MESSAGES/*.po")
    return sorted({p for p in files if p.is_file()}, key=lambda p: p.relative_to(base).as_posix())


def collect_django_pairs(lang: str) -> list[RawPair]:
    """Message pairs from Django's `.po` catalogues, read with `babel.messages.pofile`.

    Fuzzy, untranslated and obsolete entries are skipped; a plural entry yields
    (singular → first form) and (plural → second form, or the only form)."""
    try:
        import django  # noqa: F401
        from babel.messages.pofile import read_po
    except ImportError:
        return []
    pairs: list[RawPair] = []
    for path in _django_po_files(lang):
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            catalog = read_po(fh)
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            if isinstance(message.id, (tuple, list)):
                forms = tuple(message.string or ())
                if not any(forms):
                    continue
                singular, plural = message.id[0], message.id[1] if len(message.id) > 1 else None
                if forms[0]:
                    pairs.append(RawPair(lang, singular, forms[0], "django"))
                other = forms[min(1, len(forms) - 1)]
                if plural and other:
                    pairs.append(RawPair(lang, plural, other, "django"))
            elif message.string:
                pairs.append(RawPair(lang, message.id, message.string, "django"))
    return pairs


def collect_pycountry_pairs(lang: str) -> list[RawPair]:
    """ISO names from pycountry's databases, translated with its gettext `.mo` files
    (read with `gettext.GNUTranslations`); untranslated names are skipped."""
    try:
        import pycountry
    except ImportError:
        return []
    loc = PYCOUNTRY_LOCALES.get(lang)
    if loc is None:
        return []
    locales_dir = Path(getattr(pycountry, "LOCALES_DIR", Path(pycountry.__file__).parent / "locales"))
    pairs: list[RawPair] = []
    for domain, (origin, attr, fields) in PYCOUNTRY_DOMAINS.items():
        mo = locales_dir / loc / "LC_MESSAGES" / f"{domain}.mo"
        if not mo.is_file():
            continue
        with open(mo, "rb") as fh:
            translations = gettext.GNUTranslations(fh)
        seen: set[str] = set()
        for obj in getattr(pycountry, attr):
            for field in fields:
                english = getattr(obj, field, None)
                if not english or english in seen:
                    continue
                seen.add(english)
                target = translations.gettext(english)
                if target and target != english:
                    pairs.append(RawPair(lang, english, target, origin))
    return pairs


_COLLECTORS: dict[str, Callable[[str], list[RawPair]]] = {
    "cldr": collect_cldr_pairs,
    "django": collect_django_pairs,
    "pycountry": collect_pycountry_pairs,
}


def collect_pairs(
    languages: Sequence[str] = DEFAULT_LANGUAGES, sources: Sequence[str] = ("cldr", "django", "pycountry")
) -> list[RawPair]:
    """Every raw (uncleaned) pair for `languages` from `sources`."""
    _check_languages(languages)
    pairs: list[RawPair] = []
    for lang in languages:
        for source in sources:
            pairs.extend(_COLLECTORS[source](lang))
    return pairs


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
            source_key = (pair.lang, _split_key(english))
            if source_key in seen_sources:
                drops[(pair.lang, "alternative-target")] += 1
                continue
            seen_sources.add(source_key)
        seen.add(key)
        kept.append(RawPair(pair.lang, english, target, pair.origin))
    return kept


def collect_monolingual_ug() -> list[str]:
    """Uyghur proverbs from `maqal` (NFC, whitespace-collapsed, de-duplicated, Arabic-script
    lines only, file order).  Empty if the package or its text file is missing."""
    path = _maqal_text_path()
    if path is None:
        return []
    lines: list[str] = []
    seen: set[str] = set()
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        text = normalize_text(raw)
        if text and text not in seen and has_expected_script(text, "ug"):
            seen.add(text)
            lines.append(text)
    return lines


def _maqal_text_path() -> Path | None:
    try:
        import maqal
    except ImportError:
        return None
    path = Path(maqal.__file__).resolve().parent / "storage" / "uyghur-maqal-temsilliri.txt"
    return path if path.is_file() else None


# --------------------------------------------------------------------------- building
def _check_languages(languages: Sequence[str]) -> None:
    unknown = [lang for lang in languages if lang not in SUPPORTED_LANGUAGES]
    if unknown:
        raise ValueError(f"unsupported language(s) {unknown}; supported: {SUPPORTED_LANGUAGES}")


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _licenses_md(sources: dict, notes: Sequence[str]) -> str:
    lines = [
        "# Licences of the demo data",
        "",
        "Every record carries the licence of the data it came from in its `license` field.",
        "",
        "| source | package | version | data licence | package licence | records | what |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for name in sorted(sources):
        s = sources[name]
        lines.append(
            f"| {name} | {s['package']} | {s['version']} | {s['license']} | {s['package_license']} | {s['count']} "
            f"| {s['description']} |"
        )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _write_atomically(output_dir: Path, files: Mapping[str, str], force: bool) -> None:
    try:
        with atomic_output_dir(output_dir, overwrite=force) as staging:
            for name, text in files.items():
                (staging / name).write_text(text, encoding="utf-8", newline="\n")
    except FileExistsError as error:
        raise FileExistsError(f"{error} (force=True / --force replaces it)") from None


def build_demo_dataset(
    output_dir: str | os.PathLike,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    *,
    force: bool = False,
    tag_template: str = TAG_TEMPLATE,
    split_fractions: Mapping[str, float] | None = None,
    placeholder_policy: str = "keep",
    include_monolingual: bool = True,
    unique_sources: bool = False,
    allow_other_versions: bool = False,
) -> dict:
    """Collect, clean and split the demo data and write it to `output_dir` atomically.

    Writes `train.jsonl`, `validation.jsonl`, `test.jsonl` (fields `source`,
    `target`, `lang`, `src_lang`, `origin`, `license`), `monolingual_ug.jsonl`
    (fields `text`, `lang`, `origin`, `license`), `stats.json` and `LICENSES.md`
    into a temporary directory beside `output_dir` and renames it into place.  An existing
    `output_dir` is replaced only with `force=True`.  `unique_sources=True` keeps one
    target per English text and language (sources in the order CLDR, Django, pycountry).
    The packages' versions must equal the `demo` extra's pins unless `allow_other_versions`; `stats.json` records
    `corpus_sha256`, a checksum of the written corpus files.
    Returns the statistics written to `stats.json`."""
    languages = tuple(dict.fromkeys(languages))
    _check_languages(languages)
    if "{text}" not in tag_template:
        raise ValueError("tag_template must contain '{text}'")
    fractions = dict(DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions)
    if any(v < 0 for v in fractions.values()) or sum(fractions.values()) >= 1.0:
        raise ValueError(f"bad split fractions {fractions}")

    sources_meta = {name: source_metadata(name) for name in _SOURCES}
    if not allow_other_versions:
        check_source_versions(sources_meta)
    skipped = sorted(name for name, meta in sources_meta.items() if meta is None)
    available = [s for s in ("cldr", "django", "pycountry") if sources_meta[s] is not None]

    drops: Counter = Counter()
    cleaned = clean_pairs(collect_pairs(languages, available), placeholder_policy, drops, unique_sources)

    lang_rank = {lang: i for i, lang in enumerate(languages)}
    cleaned.sort(key=lambda p: (lang_rank[p.lang], p.origin, _split_key(p.english), p.english, p.target))

    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    per_lang = {lang: {**{s: 0 for s in SPLITS}, "total": 0, "by_origin": Counter()} for lang in languages}
    per_origin: dict[str, Counter] = {}
    source_counts: Counter = Counter()
    for pair in cleaned:
        split = assign_split(pair.english, fractions)
        license_ = sources_meta[_source_of_origin(pair.origin)]["license"]
        by_split[split].append(
            {
                "source": make_source(pair.english, pair.lang, tag_template),
                "target": pair.target,
                "lang": pair.lang,
                "src_lang": SRC_LANG,
                "origin": pair.origin,
                "license": license_,
            }
        )
        per_lang[pair.lang][split] += 1
        per_lang[pair.lang]["total"] += 1
        per_lang[pair.lang]["by_origin"][pair.origin] += 1
        per_origin.setdefault(pair.origin, Counter())[split] += 1
        source_counts[_source_of_origin(pair.origin)] += 1

    mono_records: list[dict] = []
    if include_monolingual and sources_meta["maqal"] is not None:
        mono_license = sources_meta["maqal"]["license"]
        mono_records = [
            {"text": t, "lang": "ug", "origin": "maqal", "license": mono_license} for t in collect_monolingual_ug()
        ]
        source_counts["maqal"] += len(mono_records)

    notes = [
        "CLDR data is read through babel; babel's own code is BSD-3-Clause, the CLDR data it ships is under the "
        "Unicode licence (babel/locale-data/LICENSE.unicode).",
        "pycountry's translations come from Debian's iso-codes project and are distributed under pycountry's "
        "LGPL-2.1 licence.",
        "Django's translations are part of Django (BSD-3-Clause).",
        "maqal's licence is taken from its package metadata (classifier 'MIT License', LICENSE file in the wheel).",
        "kk and mn targets are Cyrillic (CLDR/Django/pycountry); kk_Arab is Arabic-script Kazakh from CLDR only. "
        "No source has traditional-script Mongolian.",
    ]
    used = {
        name: {**meta, "count": source_counts.get(name, 0)} for name, meta in sources_meta.items() if meta is not None
    }

    stats = {
        "src_lang": SRC_LANG,
        "tag_template": tag_template,
        "placeholder_policy": placeholder_policy,
        "unique_sources": unique_sources,
        "split_fractions": {
            **{k: fractions[k] for k in sorted(fractions)},
            "train": round(1.0 - sum(fractions.values()), 10),
        },
        "languages": {
            lang: {**{s: v[s] for s in SPLITS}, "total": v["total"], "by_origin": dict(sorted(v["by_origin"].items()))}
            for lang, v in per_lang.items()
        },
        "origins": {
            o: {s: c.get(s, 0) for s in SPLITS} | {"total": sum(c.values())} for o, c in sorted(per_origin.items())
        },
        "splits": {s: len(by_split[s]) for s in SPLITS},
        "monolingual": {"ug": len(mono_records)},
        "dropped": {
            lang: dict(sorted((reason, n) for (language, reason), n in drops.items() if language == lang))
            for lang in languages
        },
        "sources": used,
        "skipped_sources": skipped,
    }

    files = {f"{s}.jsonl": _jsonl(by_split[s]) for s in SPLITS}
    files["monolingual_ug.jsonl"] = _jsonl(mono_records)
    stats["corpus_sha256"] = corpus_checksum(files)
    files["stats.json"] = json.dumps(stats, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    files["LICENSES.md"] = _licenses_md(used, notes)
    _write_atomically(Path(output_dir), files, force)
    return stats
