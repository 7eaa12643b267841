"""The study's numbers: per variant, its runs on the study's seeds, means and SDs, and paired intervals and a verdict
against the reference (`comparison`); `report` prints them."""

from __future__ import annotations

from .. import statistics as stats
from ..runs import same_data_order
from .variants import REFERENCE, VARIANTS


def comparison(study, stage: str, budget: str, variants: list[str]) -> list[dict]:
    """Per variant: its runs on the study's seeds, means and SDs, and paired intervals against the reference."""
    settings = study.settings
    pretrain_steps = settings.pretrain_steps if stage == "pretrained" else None

    def runs_of(variant):
        rate = study.best_learning_rate(stage, variant)
        if rate is None:
            return {}
        found = {seed: study.budget_run(stage, budget, variant, seed, rate, pretrain_steps) for seed in settings.seeds}
        return {seed: record for seed, record in found.items() if record}

    reference = runs_of(REFERENCE)
    rows = []
    for variant in variants:
        runs = runs_of(variant)
        if not runs:
            continue
        row = {
            "variant": variant,
            "description": VARIANTS[variant].description,
            "learning_rate": next(iter(runs.values()))["learning_rate"],
            "seeds": sorted(runs),
            "steps_reached": [runs[seed]["steps_reached"] for seed in sorted(runs)],
            "commits": sorted({run["commit"] for run in runs.values()}),
        }
        for key in ("test_nll", "valid_nll", "chrf", "rougeL", "step_seconds", "train_seconds"):
            values = [runs[seed][key] for seed in sorted(runs)]
            row[key], row[f"{key}_sd"] = stats.mean_sd(values)
            row[f"{key}_spread"] = max(values) - min(values)
            row[f"{key}_values"] = values
        paired = [seed for seed in sorted(runs) if seed in reference]
        row["paired_seeds"] = paired
        if variant != REFERENCE and paired:
            row.update(paired_differences(variant, runs, reference, paired, settings.bootstrap_resamples))
        rows.append(row)
    return rows


def paired_differences(variant: str, runs: dict, reference: dict, paired: list[int], resamples: int) -> dict:
    """A variant minus the reference on the paired seeds: t-intervals of test NLL and chrF, the sentence bootstrap
    of NLL per token, whether the data orders matched, and the verdict."""
    differences = {
        "nll_t": stats.paired_t_interval([runs[s]["test_nll"] - reference[s]["test_nll"] for s in paired]),
        "chrf_t": stats.paired_t_interval([runs[s]["chrf"] - reference[s]["chrf"] for s in paired]),
    }
    tokens = runs[paired[0]]["sentence_tokens"]
    if any(r["sentence_tokens"] != tokens for r in [*map(runs.get, paired), *map(reference.get, paired)]):
        raise ValueError(f"{variant}: test token counts differ from the reference's; cannot pair")
    differences["nll_bootstrap"] = stats.paired_bootstrap_ratio(
        _mean_over_seeds([runs[s] for s in paired]),
        _mean_over_seeds([reference[s] for s in paired]),
        tokens,
        resamples=resamples,
    )
    differences["data_order_matches"] = all(same_data_order(runs[s], reference[s]) for s in paired)
    intervals = [differences["nll_t"], differences["nll_bootstrap"]]
    differences["verdict"] = stats.verdict(variant, REFERENCE, intervals, unit=" nats/token")
    return differences


def _mean_over_seeds(records: list[dict]) -> list[float]:
    """Each test sentence's summed NLL, averaged over the runs (seeds) given."""
    return [sum(values) / len(values) for values in zip(*(record["sentence_nll"] for record in records))]
