"""LoRA vs full fine-tuning of a trained XLM-SWCM model at equal steps (entry point: scripts/lora_vs_full.py).

Both modes continue from the same saved folder (by default the demo's trained model) on the same data, seeds and
data order, each at its own learning rate. Per run: trainable parameters, peak resident memory of the run's process
(training and evaluation; each run has its own process so the figure is its own), seconds per step, test NLL per
target token and greedy chrF. LoRA is compared with full fine-tuning by paired differences over seeds (t-interval)
and a paired bootstrap over test sentences, with "no difference shown" whenever an interval contains 0.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
from pathlib import Path

from xlm_swcm_hf.checks import ScriptArgumentParser
from xlm_swcm_hf.recipe import PeftRecipe, Recipe
from xlm_swcm_hf.training.reporting import markdown_table

from . import statistics as stats
from .runs import device_name, git_commit, run_once


MODES = ("full", "lora")
# Customary rates: LoRA's few new weights take a larger step than a full model that is already trained.
DEFAULT_LEARNING_RATES = {"full": 1e-4, "lora": 1e-3}
DEFAULT_STEPS = 100
RESULTS_FILE = "runs.jsonl"
RESULTS_MARKDOWN = "lora_vs_full.md"  # the generated table, in --docs (docs/results) and in the output folder
# The code a record depends on, beside the run code: its commit says `-dirty` when these differ from HEAD.
COMPARISON_CODE = ("xlm_swcm_experiments/adaptation.py", "scripts/lora_vs_full.py")


def mode_recipe(recipe: Recipe, mode: str, base: str) -> Recipe:
    """The recipe continuing from the trained folder `base`; with LoRA's default settings for mode 'lora'."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose from {MODES}")
    recipe = recipe.copy()
    recipe.model = dataclasses.replace(recipe.model, init="pretrained", path=str(base))
    recipe.peft = PeftRecipe() if mode == "lora" else None
    recipe.check()
    return recipe


def run_mode(
    recipe: Recipe,
    mode: str,
    base: str,
    seed: int,
    learning_rate: float,
    steps: int,
    output_dir: Path,
    device: str = "cpu",
) -> dict:
    """One run in this process: the experiments' measured run on the mode's recipe, plus this process's peak memory."""
    record = run_once(mode_recipe(recipe, mode, base), seed, learning_rate, steps, output_dir, device)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "mode": mode,
        "base": str(base),
        "seed": seed,
        "learning_rate": learning_rate,
        "steps": steps,
        "peak_rss_mb": round(peak_kb / 1024),
        "device": device_name(device),
        "commit": git_commit(*COMPARISON_CODE),
        **record,
    }


def run_in_child(recipe_path: Path, overrides: list[str], job: dict, results_file: Path) -> dict:
    """`run_mode` in a fresh interpreter so its peak memory is its own; the record is appended to `results_file`."""
    command = [
        sys.executable,
        "-m",
        "xlm_swcm_experiments.adaptation",
        "--recipe",
        str(recipe_path),
        "--job",
        json.dumps(job),
        "--results",
        str(results_file),
        *overrides,
    ]
    subprocess.run(command, check=True)
    return read_records(results_file)[-1]


def read_records(results_file: Path) -> list[dict]:
    if not results_file.exists():
        return []
    return [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]


def run_study(
    recipe: Recipe,
    base: Path,
    seeds: list[int],
    steps: int,
    learning_rates: dict,
    output_dir: Path,
    device: str = "cpu",
    log=print,
) -> list[dict]:
    """Every (seed, mode) not yet in `<output_dir>/runs.jsonl`, each in its own process; seed by seed, so that a
    study cut short has paired runs. Returns all records of this study's settings."""
    import yaml

    output_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = output_dir / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    results_file = output_dir / RESULTS_FILE

    def matching(record):
        return (
            record["steps"] == steps
            and record["learning_rate"] == learning_rates[record["mode"]]
            and record.get("base") == str(base)
        )

    for seed in seeds:
        for mode in MODES:
            if any(matching(r) and r["mode"] == mode and r["seed"] == seed for r in read_records(results_file)):
                continue
            log(f"--- {mode} seed {seed} lr {learning_rates[mode]:g} ({steps} steps)")
            job = dict(
                mode=mode,
                base=str(base),
                seed=seed,
                learning_rate=learning_rates[mode],
                steps=steps,
                output_dir=str(output_dir / f"{mode}-seed{seed}"),
                device=device,
            )
            run_in_child(recipe_file, [], job, results_file)
    return [r for r in read_records(results_file) if matching(r) and r["seed"] in seeds]


def summarise(records: list[dict], resamples: int = stats.BOOTSTRAP_RESAMPLES) -> dict:
    """Per mode: means and SDs over seeds; LoRA minus full: paired t-intervals (NLL, chrF) and a sentence bootstrap."""
    by_mode = {mode: {r["seed"]: r for r in records if r["mode"] == mode} for mode in MODES}
    summary = {"modes": {}, "paired_seeds": sorted(set(by_mode["full"]) & set(by_mode["lora"]))}
    for mode, runs in by_mode.items():
        if not runs:
            continue
        row = {"seeds": sorted(runs), "learning_rate": sorted({r["learning_rate"] for r in runs.values()})}
        for key in ("trainable_parameters", "peak_rss_mb", "step_seconds", "test_nll", "chrf"):
            mean, sd = stats.mean_sd([r[key] for r in runs.values()])
            row[key] = {"mean": mean, "sd": sd}
        summary["modes"][mode] = row
    seeds = summary["paired_seeds"]
    if seeds:
        full, lora = by_mode["full"], by_mode["lora"]
        for key in ("test_nll", "chrf", "step_seconds", "peak_rss_mb"):
            summary[f"delta_{key}"] = stats.paired_t_interval([lora[s][key] - full[s][key] for s in seeds])
        count = len(full[seeds[0]]["sentence_nll"])
        average = lambda runs, i: sum(runs[s]["sentence_nll"][i] for s in seeds) / len(seeds)  # noqa: E731
        summary["delta_test_nll_bootstrap"] = stats.paired_bootstrap_ratio(
            [average(lora, i) for i in range(count)],
            [average(full, i) for i in range(count)],
            full[seeds[0]]["sentence_tokens"],
            resamples=resamples,
        )
        intervals = [summary["delta_test_nll"], summary["delta_test_nll_bootstrap"]]
        summary["verdict_nll"] = stats.verdict("LoRA", "full fine-tuning", intervals, unit=" nats/token")
        summary["verdict_chrf"] = stats.verdict(
            "LoRA", "full fine-tuning", [summary["delta_chrf"]], lower_is_better=False, unit=" chrF"
        )
    return summary


def _interval(interval: dict, digits: int = 3) -> str:
    return stats.format_interval(interval, digits, missing="one seed: no interval")


def _mean_sd(value: dict, digits: int) -> str:
    return stats.format_mean_sd(value["mean"], value["sd"], digits)


def markdown(summary: dict, records: list[dict], setup: str) -> str:
    lines = ["# LoRA vs full fine-tuning", "", setup, ""]
    headers = ["mode", "lr", "trainable parameters", "peak memory (MB)", "s/step", "test NLL", "chrF", "seeds"]
    rows = []
    for mode, row in summary["modes"].items():
        rows.append(
            [
                mode,
                ", ".join(f"{rate:g}" for rate in row["learning_rate"]),
                f"{row['trainable_parameters']['mean']:,.0f}",
                _mean_sd(row["peak_rss_mb"], 0),
                _mean_sd(row["step_seconds"], 3),
                _mean_sd(row["test_nll"], 3),
                _mean_sd(row["chrf"], 2),
                ",".join(map(str, row["seeds"])),
            ]
        )
    lines += [
        markdown_table(headers, rows, numeric=[False] + [True] * 6 + [False]),
        "Means ± sample SD over seeds. Peak memory: the run's own process (its maximum resident set).",
        "",
    ]
    if summary["paired_seeds"]:
        lines += [
            f"LoRA minus full fine-tuning, paired over seeds {summary['paired_seeds']} (95% t-intervals):",
            "",
            f"- test NLL per token: {_interval(summary['delta_test_nll'])}; paired bootstrap over test "
            f"sentences: {_interval(summary['delta_test_nll_bootstrap'])}",
            f"- chrF: {_interval(summary['delta_chrf'], 2)}",
            f"- seconds per step: {_interval(summary['delta_step_seconds'], 3)}",
            f"- peak memory (MB): {_interval(summary['delta_peak_rss_mb'], 0)}",
            "",
            f"**Verdicts:** {summary['verdict_nll']} {summary['verdict_chrf']}",
            "",
        ]
    lines += ["Runs:", ""]
    run_rows = [
        [
            r["mode"],
            r["seed"],
            f"{r['learning_rate']:g}",
            r["steps_reached"],
            r["trainable_parameters"],
            r["peak_rss_mb"],
            r["step_seconds"],
            r["test_nll"],
            r["chrf"],
            r["device"],
            r["commit"],
        ]
        for r in sorted(records, key=lambda r: (r["mode"], r["seed"]))
    ]
    headers = ["mode", "seed", "lr", "steps", "trainable", "peak MB", "s/step", "test NLL", "chrF", "device", "commit"]
    lines.append(
        markdown_table(
            headers, run_rows, numeric=[False, True, True, True, True, True, True, True, True, False, False], digits=3
        )
    )
    return "\n".join(lines)


def _child_main(argv=None) -> int:

    parser = ScriptArgumentParser(description="one run of the LoRA vs full comparison (used by the study)")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--job", required=True, help="JSON: mode, base, seed, learning_rate, steps, output_dir, device")
    parser.add_argument("--results", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    job = json.loads(args.job)
    recipe = Recipe.from_yaml(args.recipe, args.overrides)
    record = run_mode(
        recipe,
        job["mode"],
        job["base"],
        job["seed"],
        job["learning_rate"],
        job["steps"],
        Path(job["output_dir"]),
        job.get("device", "cpu"),
    )
    with Path(args.results).open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
