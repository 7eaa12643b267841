"""The study's generated results: `<docs>/ablation.md` (what ran, the sweeps, one table per budget with its verdicts)
and `<docs>/ablation.json` (the same figures and every finished run's record). Nothing here is written by hand: the
reading of these results lives in docs/ablation.md, which links to them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xlm_swcm_hf.files import atomic_write_json, atomic_write_text
from xlm_swcm_hf.training import markdown_table

from .. import statistics as stats
from ..runs import device_name, git_commit
from .comparison import comparison
from .records import RESULTS_JSON
from .runs import SPEED_PROBE_STEPS
from .settings import STUDY_CODE, TIME_HORIZON_HEADROOM
from .variants import REFERENCE, VARIANTS


RESULTS_MARKDOWN = "ablation.md"
# (stage, budget, title): the study's tables, in the order the results show them.
TABLES = (
    ("init", "steps", "Equal steps"),
    ("init", "time", "Equal wall-clock"),
    ("pretrained", "steps", "After shared pretraining, equal fine-tuning steps"),
)
TABLE_HEADERS = [
    "variant",
    "lr",
    "test NLL",
    "ΔNLL, t 95%",
    "ΔNLL, bootstrap 95%",
    "chrF",
    "ΔchrF, t 95%",
    "ROUGE-L F",
    "steps",
    "s/step",
    "seeds",
]


def write_results(study) -> None:
    markdown, data = render(study)
    study.docs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(study.docs_dir / RESULTS_JSON, data)
    atomic_write_text(study.docs_dir / RESULTS_MARKDOWN, markdown)


def render(study) -> tuple[str, dict]:
    """The results' Markdown and JSON payload, from the study's records."""
    settings = study.settings
    commit = git_commit(*STUDY_CODE)
    tables = {}
    for stage, budget, title in TABLES:
        variants = study.variants if stage == "init" else study.pretrain_variants_or_none() or []
        tables[(stage, budget)] = (title, comparison(study, stage, budget, variants))
    runs = sorted(study.records.values(), key=lambda r: (r["stage"], r.get("budget") or "", r["variant"], r["seed"]))
    relevant = [r for r in runs if r["steps"] in (settings.steps, settings.pretrain_steps)]
    lines = _header_lines(study, commit, relevant)
    lines += _status_lines(study)
    lines += _sweep_lines(study, "init")
    for (stage, budget), (title, rows) in tables.items():
        lines += _table_lines(study, stage, budget, title, rows)
    if "pretrain" in settings.stages or tables[("pretrained", "steps")][1]:
        lines += _sweep_lines(study, "pretrained")
    if study.skipped:
        lines += ["## Skipped variants", ""]
        lines += [f"- `{name}`: {reason}." for name, reason in study.skipped.items()]
        lines.append("")
    payload = {
        "commit": commit,
        "settings": dataclasses.asdict(settings),
        # `rows`: the equal-steps table (the demo report reads `variant` and `chrf_spread` from here)
        "rows": tables[("init", "steps")][1],
        "tables": {f"{stage}_{budget}": rows for (stage, budget), (_, rows) in tables.items()},
        "learning_rates": {
            stage: {variant: study.best_learning_rate(stage, variant) for variant in study.variants}
            for stage in ("init", "pretrained")
        },
        "skipped": study.skipped,
        "runs": [{k: v for k, v in run.items() if k not in ("sentence_nll", "sentence_tokens")} for run in relevant],
    }
    return "\n".join(lines).rstrip("\n") + "\n", payload


def _header_lines(study, commit: str, relevant: list[dict]) -> list[str]:
    """Title, where and how the runs were made, and how to read the figures."""
    settings, recipe = study.settings, study.recipe
    devices = sorted({r["device"] for r in relevant}) or [device_name(settings.device)]
    lines = [
        "# Decoder initialisation ablation",
        "",
        f"Written by `{settings.command or 'scripts/ablation.py'}` at commit `{commit}` (each table names the "
        "commits of its runs). Device: " + ", ".join(devices) + ".",
        "",
        f"Setup: encoder `{recipe.model.encoder}` (`make demo`'s multilingual-e5-small with its vocabulary "
        f"pruned to the corpus), pairs from `{Path(recipe.data.train_file).parent}` (languages "
        f"{', '.join(recipe.data.train_languages or ['all'])}); batch "
        f"{recipe.training['per_device_train_batch_size']}, {settings.steps} steps per run, "
        f"{'bf16 autocast' if recipe.training.get('bf16') else 'fp32'}, warmup "
        f"{recipe.training.get('warmup_steps', 0)} steps, {recipe.training.get('lr_scheduler_type', 'linear')} "
        f"decay. Seeds {settings.seeds}; learning-rate grid {settings.learning_rates} swept with seed "
        f"{settings.sweep_seed} on the validation split"
        + (
            f" (after pretraining: {settings.finetune_learning_rates})"
            if settings.finetune_learning_rates != settings.learning_rates
            else ""
        )
        + f". Stages asked for: {', '.join(settings.stages)}.",
        "",
        "Primary figure: test NLL per target token (teacher-forced, float32, label smoothing off), lower is "
        "better. Secondary: greedy chrF and ROUGE-L F. Means ± sample SD over seeds. Against "
        f"`{REFERENCE}` (same seeds, same data order): ΔNLL with a seed-level 95% t-interval and a paired "
        f"bootstrap over test sentences ({settings.bootstrap_resamples} resamples of sentences, seed "
        f"{stats.BOOTSTRAP_SEED}, ratio of summed NLL to summed tokens, per-sentence NLL averaged over the "
        "paired seeds: it covers test-set sampling, not seed variance). A difference counts as shown only when "
        "both intervals exclude 0.",
        "",
    ]
    if len(settings.seeds) < 3:
        lines += [f"**Fewer than 3 seeds ({settings.seeds}): every figure here is preliminary.**", ""]
    return lines


def _status_lines(study) -> list[str]:
    """What ran and what did not, stage by stage."""
    settings = study.settings
    lines = ["## What ran", ""]
    swept = sum(len(study.sweep_records("init", v)) for v in study.variants)
    lines.append(
        f"- learning-rate sweep: {swept} of {len(study.variants) * len(settings.learning_rates)} runs "
        f"({settings.steps} steps, seed {settings.sweep_seed})."
    )
    for budget, label in (("steps", "equal steps"), ("time", "equal wall-clock")):
        done, missing = 0, []
        for variant in study.variants:
            rate = study.best_learning_rate("init", variant)
            for seed in settings.seeds:
                found = rate is not None and study.budget_run("init", budget, variant, seed, rate)
                if found:
                    done += 1
                else:
                    missing.append(f"{variant}/seed {seed}")
        lines.append(
            f"- {label}: {done} of {len(study.variants) * len(settings.seeds)} runs"
            + (f"; not run: {', '.join(missing)}." if missing else ".")
        )
    lines.append(_pretraining_status(study))
    left_out = [name for name in VARIANTS if name not in settings.variants]
    if left_out:
        lines.append(f"- variants not in this study: {', '.join(left_out)}.")
    lines.append("")
    return lines


def _pretraining_status(study) -> str:
    settings = study.settings
    variants = study.pretrain_variants_or_none()
    if "pretrain" not in settings.stages and not any(r["stage"] == "pretrain" for r in study.records.values()):
        return "- pretraining stage: not run (not among the stages asked for)."
    if variants is None:
        return (
            "- pretraining stage: not run (it needs the equal-steps results of the SWCM variants to pick the "
            "best one, or --pretrain-variants)."
        )
    pretrained = [r for r in study.records.values() if r["stage"] == "pretrain" and r["variant"] in variants]
    pretrained = [r for r in pretrained if r["steps"] == settings.pretrain_steps]
    finetuned = [
        r
        for r in study.records.values()
        if r["stage"] == "pretrained"
        and r["pretrain_steps"] == settings.pretrain_steps
        and r["steps"] == settings.steps
        and r["variant"] in variants
    ]
    return (
        f"- pretraining stage ({', '.join(variants)}; {settings.pretrain_steps} pretraining steps at lr "
        f"{study.recipe.training['learning_rate']:g} for every decoder, then fine-tuning): "
        f"{len(pretrained)} pretraining runs and {len(finetuned)} fine-tuning runs finished (of "
        f"{len(variants) * len(set([settings.sweep_seed, *settings.seeds]))} and "
        f"{len(variants) * (len(settings.grid('pretrained')) + len(settings.seeds) - 1)})."
    )


def _sweep_lines(study, stage: str) -> list[str]:
    settings = study.settings
    variants = study.variants if stage == "init" else (study.pretrain_variants_or_none() or [])
    rows = []
    for variant in variants:
        records = {r["learning_rate"]: r for r in study.sweep_records(stage, variant)}
        if not records:
            continue
        best = study.best_learning_rate(stage, variant)
        cells = [f"{records[rate]['valid_nll']:.4f}" if rate in records else "not run" for rate in settings.grid(stage)]
        rows.append([variant, *cells, f"{best:g}" if best is not None else "sweep incomplete"])
    if not rows:
        return []
    title = "Learning-rate sweep" + (" (fine-tuning after pretraining)" if stage == "pretrained" else "")
    headers = ["variant", *[f"lr {rate:g}" for rate in settings.grid(stage)], "chosen"]
    return [
        f"## {title}: validation NLL per token (seed {settings.sweep_seed})",
        "",
        markdown_table(headers, rows, numeric=[False] + [True] * (len(headers) - 1)).rstrip("\n"),
        "",
    ]


def _table_lines(study, stage: str, budget: str, title: str, rows: list[dict]) -> list[str]:
    """One budget's section: what the budget means, the table, the runs' commits and the verdicts."""
    if not rows:
        return []
    table = [_table_row(row) for row in sorted(rows, key=lambda r: r["test_nll"])]
    commits = sorted({commit for row in rows for commit in row["commits"]})
    lines = [f"## {title}", "", *_budget_lines(study, stage, budget)]
    lines += [
        markdown_table(TABLE_HEADERS, table, numeric=[False] + [True] * 9 + [False]).rstrip("\n"),
        "",
        f"Runs from commit(s) {', '.join(f'`{c}`' for c in commits)}. Δ = variant minus `{REFERENCE}`; "
        "negative ΔNLL is better, positive ΔchrF is better.",
        "",
        "**Verdicts (test NLL):**",
        "",
    ]
    for row in rows:
        if row["variant"] == REFERENCE:
            continue
        verdict = row.get("verdict") or f"{row['variant']}: no paired seeds with the reference yet."
        if row.get("data_order_matches") is False:
            verdict += " (warning: the data order differed from the reference's)"
        lines.append(f"- {verdict}")
    lines.append("")
    return lines


def _table_row(row: dict) -> list[str]:
    def spread(key, digits):
        return stats.format_mean_sd(row[key], row[f"{key}_sd"], digits)

    return [
        row["variant"],
        f"{row['learning_rate']:g}",
        spread("test_nll", 3),
        stats.format_interval(row.get("nll_t")),
        stats.format_interval(row.get("nll_bootstrap")),
        spread("chrf", 2),
        stats.format_interval(row.get("chrf_t"), 2),
        spread("rougeL", 2),
        ",".join(map(str, row["steps_reached"])),
        f"{row['step_seconds']:.2f}",
        ",".join(map(str, row["seeds"])),
    ]


def _budget_lines(study, stage: str, budget: str) -> list[str]:
    """What an equal wall-clock budget, or the pretraining before fine-tuning, means for the table below."""
    lines = []
    if budget == "time":
        lines += [
            f"Each variant trains until `{REFERENCE}`'s measured training time for {study.settings.steps} steps "
            "(same seed, timed alone on this device) is spent; its learning rate decays over "
            f"{TIME_HORIZON_HEADROOM:g} x the steps it was expected to reach, so the clock ends the run. The "
            "expected speed comes from its equal-steps run where that ran beside the reference's (same device, "
            f"same number of runs at once), otherwise from {SPEED_PROBE_STEPS} steps timed here. `steps` are "
            "the steps reached per seed; the reference's row is its run timed alone here where it had to be timed "
            "again. Times on a shared machine are noisy: identical architectures reach different step counts.",
            "",
        ]
    if stage == "pretrained":
        lines += [
            f"Every decoder got the identical pretraining budget ({study.settings.pretrain_steps} steps of DAE + "
            f"MT at lr {study.recipe.training['learning_rate']:g}, same seeds); fine-tuning starts from its "
            "`final/` folder (`model.init: pretrained`), with its own learning-rate sweep.",
            "",
        ]
    return lines
