"""Offline demo data built from PyPI packages (xlm_swcm_experiments.demo.data, sources.py, cleaning.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from xlm_swcm_experiments.demo import data as dd
from xlm_swcm_experiments.demo.data import RawPair


FILES = ("train.jsonl", "validation.jsonl", "test.jsonl", "monolingual_ug.jsonl", "stats.json", "LICENSES.md")
FIELDS = {"source", "target", "lang", "src_lang", "origin", "license"}


def _need_demo_packages() -> None:
    for name in ("babel", "django", "pycountry", "maqal"):
        pytest.importorskip(name, reason=f"demo data needs the 'demo' extra ({name} not installed)")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, dict]:
    _need_demo_packages()
    base = tmp_path_factory.mktemp("demo")
    stats = dd.build_demo_dataset(base / "a")
    dd.build_demo_dataset(base / "b")
    return base / "a", base / "b", stats


# ----------------------------------------------------------------- pure helpers (no packages)
def test_latin_fallback_filter_on_crafted_pairs():
    pairs = [
        RawPair("ug", "Pitcairn Islands", "Pitcairn", "cldr-territories"),  # English fallback
        RawPair("ug", "Afghanistan", "Afghanistan", "cldr-territories"),  # target == source
        RawPair("ug", "Afghanistan", "ئافغانىستان", "cldr-territories"),
        RawPair("zh", "percent", "%", "cldr-units"),  # no Han at all
        RawPair("zh", "USB drive", "USB 闪存盘", "django"),  # mixed, has Han: kept
        RawPair("kk", "Kazakhstan", "Qazaqstan", "cldr-territories"),  # Latin Kazakh is not Cyrillic
        RawPair("mn", "Mongolia", "Монгол", "cldr-territories"),
        RawPair("bo", "radians", "rad", "cldr-units"),  # root fallback
        RawPair("kk_Arab", "Kazakhstan", "Қазақстан", "cldr-territories"),  # Cyrillic for Arabic-script kk
    ]
    drops = Counter()
    kept = dd.clean_pairs(pairs, drop_counts=drops)
    assert [(p.lang, p.target) for p in kept] == [("ug", "ئافغانىستان"), ("zh", "USB 闪存盘"), ("mn", "Монгол")]
    assert drops[("ug", "script-fallback")] == 1
    assert drops[("ug", "target-equals-source")] == 1
    assert drops[("zh", "script-fallback")] == drops[("kk", "script-fallback")] == 1
    assert drops[("bo", "script-fallback")] == drops[("kk_Arab", "script-fallback")] == 1
    assert dd.is_script_fallback("Pitcairn", "ug") and not dd.is_script_fallback("پىتكايرن", "ug")


def test_normalisation_placeholders_and_duplicates():
    pairs = [
        RawPair("zh", "  Add\n %(name)s ", "添加 %(name)s", "django"),
        RawPair("zh", "Add %(name)s", "添加  %(name)s", "django"),  # same after normalisation
        RawPair("zh", "an hour ago", "%(count)s小时之前", "django"),  # placeholders differ
        RawPair("zh", "50%% done for %(a)s and %(b)s", "%(b)s 和 %(a)s 完成 50%%", "django"),  # reordered: ok
        RawPair("zh", "", "空", "django"),
        RawPair("zh", "e\u0301", "\u00e9字", "django"),  # NFC
    ]
    drops = Counter()
    kept = dd.clean_pairs(pairs, drop_counts=drops)
    assert [(p.english, p.target) for p in kept] == [
        ("Add %(name)s", "添加 %(name)s"),
        ("50%% done for %(a)s and %(b)s", "%(b)s 和 %(a)s 完成 50%%"),
        ("\u00e9", "\u00e9字"),
    ]
    assert drops == Counter({("zh", "duplicate"): 1, ("zh", "placeholder-mismatch"): 1, ("zh", "empty"): 1})
    alternatives = [
        RawPair("ug", "Czech Koruna", "چېخ كورۇنىسى", "cldr-currencies"),
        RawPair("ug", "czech koruna", "چېخ كورۇنا", "pycountry-iso4217"),
    ]
    assert len(dd.clean_pairs(alternatives)) == 2
    assert [p.origin for p in dd.clean_pairs(alternatives, unique_sources=True)] == ["cldr-currencies"]
    stripped = dd.clean_pairs(pairs[:1], placeholder_policy="strip")
    assert [(p.english, p.target) for p in stripped] == [("Add", "添加")]
    assert dd.clean_pairs(pairs[:1], placeholder_policy="drop") == []


def test_split_is_a_function_of_the_english_text():
    assert dd.assign_split("Afghanistan") == dd.assign_split(" afghanistan ")
    splits = Counter(dd.assign_split(f"sentence number {i}") for i in range(4000))
    assert 0.03 < splits["test"] / 4000 < 0.07 and 0.03 < splits["validation"] / 4000 < 0.07
    assert dd.make_source("China", "ug") == dd.TAG_TEMPLATE.format(lang="ug", text="China")


# ----------------------------------------------------------------- real packages
def test_build_is_deterministic(built):
    a, b, _ = built
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not [p for p in a.parent.iterdir() if p.name.startswith(".")], "temporary directories left behind"


def test_records_are_complete_unique_and_split_consistently(built):
    a, _, _ = built
    seen: set[tuple[str, str, str]] = set()
    split_of: dict[tuple[str, str], str] = {}
    for split in dd.SPLITS:
        for rec in _read_jsonl(a / f"{split}.jsonl"):
            assert set(rec) == FIELDS
            assert rec["license"] and rec["lang"] in dd.SUPPORTED_LANGUAGES and rec["src_lang"] == "en"
            assert rec["source"] and rec["target"] and rec["origin"]
            key = (rec["lang"], rec["source"], rec["target"])
            assert key not in seen, key
            seen.add(key)
            english = rec["source"].casefold()
            assert split_of.setdefault((rec["lang"], english), split) == split, (rec, split_of[(rec["lang"], english)])
            assert dd.has_expected_script(rec["target"], rec["lang"]), rec


def test_counts_per_language_and_licences(built):
    a, _, stats = built
    for lang in ("ug", "kk", "mn", "zh"):
        for split in dd.SPLITS:
            assert stats["languages"][lang][split] > 0, (lang, split)
    assert stats["languages"]["bo"]["total"] > 0
    assert {"cldr", "django", "pycountry", "maqal"} <= set(stats["sources"])
    assert stats["sources"]["cldr"]["license"].startswith("Unicode")
    assert stats["sources"]["django"]["license"] == "BSD-3-Clause"
    assert stats["sources"]["pycountry"]["license"].startswith("LGPL-2.1")
    mono = _read_jsonl(a / "monolingual_ug.jsonl")
    assert len(mono) == stats["monolingual"]["ug"] > 1000
    assert all(r["lang"] == "ug" and r["text"] and r["license"] for r in mono)
    assert len({r["text"] for r in mono}) == len(mono)
    assert "| django |" in (a / "LICENSES.md").read_text(encoding="utf-8")


def test_existing_output_needs_force(built, tmp_path):
    out = tmp_path / "out"
    dd.build_demo_dataset(out, languages=("bo",), include_monolingual=False)
    with pytest.raises(FileExistsError):
        dd.build_demo_dataset(out, languages=("bo",))
    stats = dd.build_demo_dataset(out, languages=("bo",), force=True, tag_template="{text}")
    first = _read_jsonl(out / "train.jsonl")[0]
    assert first["lang"] == "bo" and not first["source"].startswith("bo: ")
    assert stats["languages"].keys() == {"bo"}
    with pytest.raises(ValueError):
        dd.build_demo_dataset(tmp_path / "x", languages=("xx",))


def test_corpus_checksum_is_recorded_and_reproducible(built):
    a, b, stats = built
    again = json.loads((b / "stats.json").read_text())
    assert len(stats["corpus_sha256"]) == 64 and again["corpus_sha256"] == stats["corpus_sha256"]
    files = {
        name: (a / name).read_text(encoding="utf-8")
        for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "monolingual_ug.jsonl")
    }
    assert dd.corpus_checksum(files) == stats["corpus_sha256"]


def test_data_package_versions_must_match_the_pins(tmp_path, monkeypatch):
    from xlm_swcm_experiments.demo import sources
    from xlm_swcm_hf.checks import InputError

    pins = sources.pinned_versions()
    assert {"babel", "django", "pycountry", "maqal"} <= set(pins)  # stated once, in pyproject's demo extra
    monkeypatch.setattr(sources, "pinned_versions", lambda extra="demo": {**pins, "babel": "0.0.1"})
    with pytest.raises(InputError, match=r"babel .* \(pinned 0.0.1\)"):
        dd.build_demo_dataset(tmp_path / "x", languages=("zh",))
    assert not (tmp_path / "x").exists()
    dd.build_demo_dataset(tmp_path / "y", languages=("zh",), allow_other_versions=True)
    assert (tmp_path / "y" / "stats.json").exists()


def test_demo_report_states_the_uncertainty_of_its_comparison(tmp_path):
    from xlm_swcm_experiments.demo.report import compare_runs
    from xlm_swcm_experiments.statistics import bootstrap_mean

    interval = bootstrap_mean([1.0, -1.0, 0.5, -0.5] * 10)
    assert interval["mean"] == 0 and interval["low"] < 0 < interval["high"]
    assert bootstrap_mean([2.0, 2.5, 3.0] * 20)["low"] > 0
    rows = [{"reference": "我们学习语言", "prediction": "我们学习"}, {"reference": "他们也学习", "prediction": "他们"}]
    runs = {}
    for name, shift in (("XLM-SWCM (shared weights)", 0), ("random decoder", 1)):
        path = tmp_path / f"{shift}.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {**row, "prediction": row["prediction"][: len(row["prediction"]) - shift]}, ensure_ascii=False
                )
                + "\n"
                for row in rows
            )
        )
        runs[name] = {"predictions_file": str(path), "test": {"all": {"chrf": 50.0 - shift}}}
    comparison = compare_runs(runs, ablation_json=tmp_path / "missing.json")
    assert comparison["difference"] == 1.0 and comparison["sentences"] == 2
    assert comparison["low"] <= comparison["high"] and "no seed spread recorded" in comparison["seed_spread"]
    # The interval is about the statistic printed beside it (the mean sentence chrF difference), so it contains it.
    assert comparison["low"] <= comparison["sentence_mean"] <= comparison["high"] and comparison["sentence_mean"] > 0
