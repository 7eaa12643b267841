"""Offline English→X parallel demo data (and monolingual Uyghur text) built from PyPI packages.

Nothing here touches the network: every string comes from data files that ship inside ordinary PyPI packages
(`sources.py` names them, their versions and licences); `cleaning.py` cleans and splits the pairs; this module builds
the data folder (`build_demo_dataset`).

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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xlm_swcm_hf.files import atomic_output_dir
from xlm_swcm_hf.translation import TAG_TEMPLATE  # how the target language is marked on the English source

from .cleaning import (
    DEFAULT_SPLIT_FRACTIONS,
    LANG_SCRIPT,
    PLACEHOLDER_POLICIES,
    RawPair,
    assign_split,
    clean_pairs,
    extract_markup,
    has_expected_script,
    is_script_fallback,
    normalize_text,
    split_key,
)
from .sources import (
    COLLECTORS,
    LICENCE_NOTES,
    SOURCES,
    check_source_versions,
    collect_cldr_pairs,
    collect_django_pairs,
    collect_monolingual_ug,
    collect_pycountry_pairs,
    licenses_markdown,
    source_metadata,
    source_of_origin,
)


__all__ = [
    "TAG_TEMPLATE",
    "SRC_LANG",
    "DEFAULT_LANGUAGES",
    "SUPPORTED_LANGUAGES",
    "LANG_SCRIPT",
    "SPLITS",
    "DEFAULT_SPLIT_FRACTIONS",
    "PLACEHOLDER_POLICIES",
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

SRC_LANG = "en"
SUPPORTED_LANGUAGES = ("ug", "kk", "kk_Arab", "mn", "zh", "bo")
DEFAULT_LANGUAGES = ("ug", "kk", "kk_Arab", "mn", "zh", "bo")
SPLITS = ("train", "validation", "test")
# Fractions of the hash space for the held-out splits; the rest is `train`.


def make_source(text: str, lang: str, template: str = TAG_TEMPLATE) -> str:
    """The tagged English source, e.g. `make_source("China", "ug") == "ug: China"`."""
    return template.format(lang=lang, text=text)


def collect_pairs(
    languages: Sequence[str] = DEFAULT_LANGUAGES, sources: Sequence[str] = ("cldr", "django", "pycountry")
) -> list[RawPair]:
    """Every raw (uncleaned) pair for `languages` from `sources`."""
    _check_languages(languages)
    pairs: list[RawPair] = []
    for lang in languages:
        for source in sources:
            pairs.extend(COLLECTORS[source](lang))
    return pairs


def _check_languages(languages: Sequence[str]) -> None:
    unknown = [lang for lang in languages if lang not in SUPPORTED_LANGUAGES]
    if unknown:
        raise ValueError(f"unsupported language(s) {unknown}; supported: {SUPPORTED_LANGUAGES}")


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def corpus_checksum(files: Mapping[str, str]) -> str:
    """sha256 over the corpus files (name and content, in name order): equal corpora, equal checksums."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


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
    fractions = _checked_arguments(languages, tag_template, split_fractions)
    sources_meta = {name: source_metadata(name) for name in SOURCES}
    if not allow_other_versions:
        check_source_versions(sources_meta)
    drops: Counter = Counter()
    cleaned = _cleaned_pairs(languages, sources_meta, placeholder_policy, drops, unique_sources)

    split = _SplitRecords(languages)
    for pair in cleaned:
        split.add(pair, assign_split(pair.english, fractions), sources_meta, tag_template)
    mono_records = _monolingual_records(sources_meta) if include_monolingual else []
    split.source_counts["maqal"] += len(mono_records)
    used = {name: {**meta, "count": split.source_counts.get(name, 0)} for name, meta in sources_meta.items() if meta}
    stats = {
        "src_lang": SRC_LANG,
        "tag_template": tag_template,
        "placeholder_policy": placeholder_policy,
        "unique_sources": unique_sources,
        "split_fractions": {
            **{k: fractions[k] for k in sorted(fractions)},
            "train": round(1.0 - sum(fractions.values()), 10),
        },
        **split.statistics(len(mono_records), drops),
    }
    stats["sources"] = used
    stats["skipped_sources"] = sorted(name for name, meta in sources_meta.items() if meta is None)

    files = {f"{s}.jsonl": _jsonl(split.by_split[s]) for s in SPLITS}
    files["monolingual_ug.jsonl"] = _jsonl(mono_records)
    stats["corpus_sha256"] = corpus_checksum(files)
    files["stats.json"] = json.dumps(stats, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    files["LICENSES.md"] = licenses_markdown(used, LICENCE_NOTES)
    _write_atomically(Path(output_dir), files, force)
    return stats


def _checked_arguments(languages: Sequence[str], tag_template: str, split_fractions) -> dict[str, float]:
    """Refuse unknown languages, a tag template without `{text}` and split fractions that leave no train split;
    the held-out fractions."""
    _check_languages(languages)
    if "{text}" not in tag_template:
        raise ValueError("tag_template must contain '{text}'")
    fractions = dict(DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions)
    if any(v < 0 for v in fractions.values()) or sum(fractions.values()) >= 1.0:
        raise ValueError(f"bad split fractions {fractions}")
    return fractions


def _cleaned_pairs(languages, sources_meta, placeholder_policy: str, drops: Counter, unique_sources: bool) -> list:
    """Every installed source's pairs for `languages`, cleaned (`drops` counts what was dropped), in a fixed order."""
    available = [s for s in ("cldr", "django", "pycountry") if sources_meta[s] is not None]
    cleaned = clean_pairs(collect_pairs(languages, available), placeholder_policy, drops, unique_sources)
    lang_rank = {lang: i for i, lang in enumerate(languages)}
    cleaned.sort(key=lambda p: (lang_rank[p.lang], p.origin, split_key(p.english), p.english, p.target))
    return cleaned


def _monolingual_records(sources_meta: Mapping[str, dict | None]) -> list[dict]:
    """maqal's Uyghur proverbs as `monolingual_ug.jsonl` records (none when maqal is not installed)."""
    if sources_meta["maqal"] is None:
        return []
    license_ = sources_meta["maqal"]["license"]
    return [{"text": t, "lang": "ug", "origin": "maqal", "license": license_} for t in collect_monolingual_ug()]


class _SplitRecords:
    """The written records of each split, and the counts `stats.json` reports, as the cleaned pairs come in."""

    def __init__(self, languages: Sequence[str]):
        self.languages = languages
        self.by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self.per_lang = {lang: {**{s: 0 for s in SPLITS}, "total": 0, "by_origin": Counter()} for lang in languages}
        self.per_origin: dict[str, Counter] = {}
        self.source_counts: Counter = Counter()

    def add(self, pair: RawPair, split: str, sources_meta: Mapping[str, dict | None], tag_template: str) -> None:
        self.by_split[split].append(
            {
                "source": make_source(pair.english, pair.lang, tag_template),
                "target": pair.target,
                "lang": pair.lang,
                "src_lang": SRC_LANG,
                "origin": pair.origin,
                "license": sources_meta[source_of_origin(pair.origin)]["license"],
            }
        )
        self.per_lang[pair.lang][split] += 1
        self.per_lang[pair.lang]["total"] += 1
        self.per_lang[pair.lang]["by_origin"][pair.origin] += 1
        self.per_origin.setdefault(pair.origin, Counter())[split] += 1
        self.source_counts[source_of_origin(pair.origin)] += 1

    def statistics(self, monolingual: int, drops: Counter) -> dict:
        """Counts per language, origin and split, the monolingual lines, and the dropped pairs by reason."""
        return {
            "languages": {
                lang: {
                    **{s: v[s] for s in SPLITS},
                    "total": v["total"],
                    "by_origin": dict(sorted(v["by_origin"].items())),
                }
                for lang, v in self.per_lang.items()
            },
            "origins": {
                o: {s: c.get(s, 0) for s in SPLITS} | {"total": sum(c.values())}
                for o, c in sorted(self.per_origin.items())
            },
            "splits": {s: len(self.by_split[s]) for s in SPLITS},
            "monolingual": {"ug": monolingual},
            "dropped": {
                lang: dict(sorted((reason, n) for (language, reason), n in drops.items() if language == lang))
                for lang in self.languages
            },
        }
