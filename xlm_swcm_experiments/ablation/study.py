"""The study's schedule: which runs are missing, in an order that gives paired results early.

`Study` finds each run in the record store or runs it (here, or in `settings.jobs` processes at once), stores its
record and rewrites the generated results (`report.write_results`) after every run. The stages: the learning-rate
sweep, equal steps, equal wall-clock, and the shared pretraining followed by fine-tuning.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from xlm_swcm_hf.recipe import Recipe

from ..runs import device_name, git_commit, in_processes
from . import report
from .records import RUNS_FILE, SCHEMA, append_record, record_key, side_by_side, stored_records
from .runs import SPEED_PROBE_STEPS, measure_step_seconds, pretrain_once, pretraining_recipe, run_variant
from .settings import STUDY_CODE, TIME_HORIZON_HEADROOM, StudySettings
from .variants import REFERENCE, VARIANTS, skip_reason


class Study:
    """Runs what is missing, in an order that gives paired results early, and rewrites the results after every run."""

    def __init__(self, recipe: Recipe, settings: StudySettings, output_dir: Path, docs_dir: Path):
        self.recipe, self.settings = recipe, settings
        self.output_dir, self.docs_dir = Path(output_dir), Path(docs_dir)
        self.results_file = self.output_dir / RUNS_FILE
        self.records: dict[tuple, dict] = stored_records(self.results_file)
        self.commit = git_commit(*STUDY_CODE)  # the code this process loaded (later commits by others do not change it)
        self.skipped = {name: reason for name in settings.variants if (reason := skip_reason(name, recipe))}
        self.variants = [name for name in settings.variants if name not in self.skipped]

    # -- bookkeeping

    def find(self, **fields) -> dict | None:
        record = {"steps": self.settings.steps, "pretrain_steps": None, "budget": "steps", **fields}
        return self.records.get(record_key(record))

    def _store(self, record: dict) -> dict:
        record = {"schema": SCHEMA, "commit": self.commit, "device": device_name(self.settings.device), **record}
        append_record(self.results_file, record)
        self.records[record_key(record)] = record
        summary = {k: v for k, v in record.items() if k not in ("sentence_nll", "sentence_tokens")}
        print(json.dumps(summary), flush=True)
        self.write_docs()
        return record

    def _plan(self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, **extra):
        """(record fields, `run_variant`'s arguments, a label); (the found record, None, "") if it already ran."""
        steps = self.settings.steps
        pretrain_steps = self.settings.pretrain_steps if stage == "pretrained" else None
        fields = dict(stage=stage, budget=budget, variant=variant, seed=seed, learning_rate=learning_rate)
        found = self.find(**fields, pretrain_steps=pretrain_steps)
        if found:
            return found, None, ""
        recipe = self.recipe
        if stage == "pretrained":
            recipe = recipe.copy()
            recipe.model = dataclasses.replace(recipe.model, init="pretrained", path=self.pretrained(variant, seed))
        arguments = dict(
            recipe=recipe,
            variant=variant,
            seed=seed,
            learning_rate=learning_rate,
            steps=steps,
            output_dir=self.output_dir / stage / budget / f"{variant}-seed{seed}-lr{learning_rate:g}",
            device=self.settings.device,
            apply_init=stage != "pretrained",
            **extra,
        )
        label = f"{stage} {budget} {variant} seed {seed} lr {learning_rate:g} {extra or ''}"
        return {**fields, "steps": steps, "pretrain_steps": pretrain_steps, **extra}, arguments, label

    def _execute(self, function, planned: list[tuple[dict, dict, str]]) -> list[dict]:
        """Run `function(**arguments)` for each planned `(fields, arguments, label)`: here, one after another, or in
        `settings.jobs` processes at once; each record is stored as its run ends. Returns the stored records."""
        if self.settings.jobs <= 1 or len(planned) <= 1:
            stored = []
            for fields, arguments, label in planned:
                print(f"--- {label}", flush=True)
                stored.append(self._store({**fields, **function(**arguments), "concurrent_runs": 1}))
            return stored
        for _, _, label in planned:
            print(f"--- {label} (in a process of its own)", flush=True)
        concurrent = min(self.settings.jobs, len(planned))
        jobs_and_arguments = [(fields, arguments) for fields, arguments, _ in planned]
        return [
            self._store({**fields, **record, "concurrent_runs": concurrent})
            for fields, record in in_processes(function, jobs_and_arguments, self.settings.jobs, self.settings.device)
        ]

    def run(self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, **extra) -> dict:
        fields, arguments, label = self._plan(stage, budget, variant, seed, learning_rate, **extra)
        return fields if arguments is None else self._execute(run_variant, [(fields, arguments, label)])[0]

    def run_round(self, tasks: list[tuple]) -> None:
        """Runs `(stage, budget, variant, seed, learning_rate)` that need none of each other's results."""
        self._execute(
            run_variant, [planned for planned in (self._plan(*task) for task in tasks) if planned[1] is not None]
        )

    def _pretrain_plan(self, variant: str, seed: int):
        """(record fields, `pretrain_once`'s arguments, a label); ({"path": folder}, None, "") if it already ran."""
        steps = self.settings.pretrain_steps
        learning_rate = self.recipe.training["learning_rate"]
        folder = self.output_dir / "pretrain" / f"{variant}-seed{seed}-steps{steps}"
        fields = dict(stage="pretrain", budget="steps", variant=variant, seed=seed, learning_rate=learning_rate)
        if self.find(**fields, steps=steps) and (folder / "final" / "config.json").exists():
            return {"path": str(folder / "final")}, None, ""
        recipe = pretraining_recipe(self.recipe, self.output_dir)
        arguments = dict(
            recipe=recipe, variant=variant, seed=seed, steps=steps, output_dir=folder, device=self.settings.device
        )
        label = f"pretrain {variant} seed {seed} ({steps} steps, lr {learning_rate:g})"
        return {**fields, "steps": steps, "pretrain_steps": None}, arguments, label

    def pretrained(self, variant: str, seed: int) -> str:
        fields, arguments, label = self._pretrain_plan(variant, seed)
        if arguments is None:
            return fields["path"]
        return self._execute(pretrain_once, [(fields, arguments, label)])[0]["path"]

    def pretrain_round(self, tasks: list[tuple[str, int]]) -> None:
        planned = [self._pretrain_plan(*task) for task in tasks]
        self._execute(pretrain_once, [item for item in planned if item[1] is not None])

    # -- learning rates

    def sweep_records(self, stage: str, variant: str) -> list[dict]:
        pretrain_steps = self.settings.pretrain_steps if stage == "pretrained" else None
        found = [
            self.find(
                stage=stage,
                variant=variant,
                seed=self.settings.sweep_seed,
                learning_rate=rate,
                pretrain_steps=pretrain_steps,
            )
            for rate in self.settings.grid(stage)
        ]
        return [record for record in found if record]

    def best_learning_rate(self, stage: str, variant: str) -> float | None:
        """The swept rate with the lowest validation NLL per token; None until the whole grid ran."""
        records = self.sweep_records(stage, variant)
        if len(records) < len(self.settings.grid(stage)):
            return None
        return min(records, key=lambda record: (record["valid_nll"], record["learning_rate"]))["learning_rate"]

    def sweep(self, stage: str, variants: list[str]) -> None:
        # Rate by rate across the variants, so that a study cut short has every variant at the first rates.
        seed = self.settings.sweep_seed
        self.run_round(
            [(stage, "steps", variant, seed, rate) for rate in self.settings.grid(stage) for variant in variants]
        )

    def equal_steps(self, stage: str, variants: list[str]) -> None:
        self.sweep(stage, variants)
        self.run_round(
            [
                (stage, "steps", variant, seed, self.best_learning_rate(stage, variant))
                for seed in self.settings.seeds
                for variant in variants
            ]
        )

    def timed_alone(self, record: dict) -> bool:
        """Whether a run's clock is worth a budget here: it ran on this device with no other run beside it. Records
        made before runs counted their neighbours carry no `concurrent_runs`: their clocks are not trusted."""
        return record.get("concurrent_runs") == 1 and record.get("device") == device_name(self.settings.device)

    def step_seconds_here(self, variant: str, seed: int, learning_rate: float) -> float:
        """The variant's seconds per step on this device, alone, from a speed probe (kept with the records)."""
        fields = dict(stage="init", budget="speed", variant=variant, seed=seed, learning_rate=learning_rate)
        found = self.find(**fields, steps=SPEED_PROBE_STEPS)
        if found is None:
            arguments = dict(
                recipe=self.recipe,
                variant=variant,
                seed=seed,
                learning_rate=learning_rate,
                steps=self.settings.steps,
                output_dir=self.output_dir / "speed" / f"{variant}-seed{seed}",
                device=self.settings.device,
            )
            label = f"speed of {variant} here ({SPEED_PROBE_STEPS} steps)"
            planned = [({**fields, "steps": SPEED_PROBE_STEPS, "pretrain_steps": None}, arguments, label)]
            found = self._execute(measure_step_seconds, planned)[0]
        return found["step_seconds"]

    def equal_time(self, variants: list[str]) -> None:
        self.equal_steps("init", variants)
        reference_rate = self.best_learning_rate("init", REFERENCE)
        for seed in self.settings.seeds:
            reference = self.find(stage="init", variant=REFERENCE, seed=seed, learning_rate=reference_rate)
            timing = reference
            if not self.timed_alone(reference):
                # Its equal-steps run shared the device or ran elsewhere: time the same run again, alone, here.
                timing = self.run("init", "time", REFERENCE, seed, reference_rate)
            for variant in variants:
                if variant == REFERENCE:
                    continue  # its equal-steps run is its equal-time run
                rate = self.best_learning_rate("init", variant)
                own = self.find(stage="init", variant=variant, seed=seed, learning_rate=rate)
                if side_by_side(own, reference):
                    # Speed relative to the reference from runs made side by side, scaled to the clean timing.
                    step_seconds = timing["step_seconds"] * own["step_seconds"] / reference["step_seconds"]
                else:
                    step_seconds = self.step_seconds_here(variant, seed, rate)
                horizon = max(1, math.ceil(TIME_HORIZON_HEADROOM * timing["train_seconds"] / step_seconds))
                self.run("init", "time", variant, seed, rate, time_budget=timing["train_seconds"], horizon=horizon)

    def best_swcm(self) -> str | None:
        """The SWCM variant with the lowest mean validation NLL over the equal-steps seeds (validation, not test)."""
        candidates = {}
        for variant in self.variants:
            spec = VARIANTS[variant]
            rate = self.best_learning_rate("init", variant)
            if not spec.is_swcm or spec.mlm_head or rate is None:
                continue
            runs = [self.find(stage="init", variant=variant, seed=s, learning_rate=rate) for s in self.settings.seeds]
            if all(runs):
                candidates[variant] = sum(run["valid_nll"] for run in runs) / len(runs)
        return min(candidates, key=candidates.get) if candidates else None

    def pretrain_variants(self) -> list[str]:
        if self.settings.pretrain_variants:
            return list(dict.fromkeys([REFERENCE, *self.settings.pretrain_variants]))
        best = self.best_swcm()
        if best is None:
            raise ValueError(
                "the pretrain stage needs the best SWCM variant from the equal-steps stage: run the steps stage "
                "for the SWCM variants first, or name the variants with --pretrain-variants"
            )
        return list(dict.fromkeys([REFERENCE, "swcm_pre_emb_head", best]))

    def run_all(self) -> None:
        stages = self.settings.stages
        self.write_docs()
        if "sweep" in stages:
            self.sweep("init", self.variants)
        if "steps" in stages:
            self.equal_steps("init", self.variants)
        if "time" in stages:
            self.equal_time(self.variants)
        if "pretrain" in stages:
            variants = self.pretrain_variants()
            self.pretrain_round(
                [
                    (variant, seed)
                    for seed in dict.fromkeys([self.settings.sweep_seed, *self.settings.seeds])
                    for variant in variants
                ]
            )
            self.equal_steps("pretrained", variants)
        self.write_docs()

    # -- tables

    def budget_run(
        self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, pretrain_steps: int | None = None
    ) -> dict | None:
        """A variant's run under a budget. At equal wall-clock the reference's run is the one timed alone on the
        device that clocked the others, where it had to be timed again; else its equal-steps run, the same run."""
        fields = dict(
            stage=stage, variant=variant, seed=seed, learning_rate=learning_rate, pretrain_steps=pretrain_steps
        )
        if variant == REFERENCE and budget == "time":
            return self.find(**fields, budget="time") or self.find(**fields, budget="steps")
        return self.find(**fields, budget=budget)

    def pretrain_variants_or_none(self) -> list[str] | None:
        try:
            return self.pretrain_variants()
        except ValueError:
            return None

    def write_docs(self) -> None:
        report.write_results(self)


def run_study(
    recipe: Recipe, settings: StudySettings, output_dir: Path, docs_dir: Path, render_only: bool = False
) -> Study:
    """Run what is missing (or, with `render_only`, only rewrite the docs from the finished runs)."""
    study = Study(recipe, settings, output_dir, docs_dir)
    if render_only:
        study.write_docs()
    else:
        study.run_all()
    return study
