"""One measured training run, the same for every experiment (the decoder-initialisation ablation, LoRA vs full).

A run is: the recipe with the run's seed, learning rate, output folder and greedy decoding (`run_recipe`); the
trainer that `xlm_swcm_hf.training.build` makes from it (`prepare`); training under a clock that can stop it
(`WallClockBudget`) while the first batches' labels are digested (`DataOrderDigest`, so two runs can show that they
saw the same data); then the measurements (`train_and_measure`): teacher-forced NLL per target token on the
validation and test splits, sentence by sentence (`sentence_nll`), and greedy chrF / ROUGE-L on the test split.

Also here: where a record says it ran (`git_commit`, `device_name`, `command_line`), and `in_processes`, which
runs such functions in fresh processes at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training import build, evaluate_model


# Every measured run decodes greedily, without n-gram blocking: a recipe's beam settings are for its own reports.
GREEDY_DECODING = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": None}
MEASURE_BATCH_SIZE = 32  # sentences per batch for the NLL and the greedy decoding of the measurements
DATA_ORDER_BATCHES = 20  # batches whose labels are digested
# The code a run's record depends on: a record's commit says `-dirty` when these differ from HEAD.
RUN_CODE = ("xlm_swcm_hf", "xlm_swcm_experiments/runs.py", "xlm_swcm_experiments/statistics.py")


# ------------------------------------------------------------------------------------------------ callbacks


class WallClockBudget(TrainerCallback):
    """Measures training time from `on_train_begin` to each step's end; with `seconds`, stops training once spent.

    On CUDA it synchronises before reading the clock, so queued kernels count. `clock` is replaceable for tests.
    """

    def __init__(self, seconds: float | None = None, clock=time.perf_counter):
        self.seconds = seconds
        self.clock = clock
        self.started = None
        self.elapsed = 0.0
        self.steps = 0
        self.stopped_by_clock = False

    def _now(self, args) -> float:
        if args.device.type == "cuda":
            torch.cuda.synchronize(args.device)
        return self.clock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self._now(args)
        self.step_ends = []

    def on_step_end(self, args, state, control, **kwargs):
        self.elapsed = self._now(args) - self.started
        self.steps = state.global_step
        self.step_ends.append(self.elapsed)
        if self.seconds is not None and self.elapsed >= self.seconds and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_by_clock = True


class DataOrderDigest:
    """Wraps the training collator and keeps a short digest of each of the first batches' labels, which shows that
    two runs saw the same data order (compare the batches both trained on: `same_data_order`)."""

    def __init__(self, collator, batches: int = DATA_ORDER_BATCHES):
        self.collator = collator
        self.batches = batches
        self.digests: list[str] = []

    def __call__(self, features):
        batch = self.collator(features)
        if len(self.digests) < self.batches:
            self.digests.append(hashlib.sha256(batch["labels"].cpu().numpy().tobytes()).hexdigest()[:8])
        return batch


def same_data_order(run: dict, other: dict) -> bool:
    """The batches both runs trained on (up to the first DATA_ORDER_BATCHES) were the same."""
    common = min(len(run["data_order"]), len(other["data_order"]), run["steps_reached"], other["steps_reached"])
    return run["data_order"][:common] == other["data_order"][:common]


# ------------------------------------------------------------------------------------------------ measurement


@torch.no_grad()
def sentence_nll(model, dataset, collator, batch_size: int = MEASURE_BATCH_SIZE) -> tuple[list[float], list[int]]:
    """Teacher-forced summed NLL (nats, float32, no label smoothing) and target-token count of every row, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns = [name for name in ("input_ids", "attention_mask", "labels") if name in dataset.column_names]
    rows = dataset.select_columns(columns)
    totals, counts = [], []
    for start in range(0, len(rows), batch_size):
        batch = collator([rows[index] for index in range(start, min(start + batch_size, len(rows)))])
        labels = batch.pop("labels").to(device)
        logits = model(**{key: value.to(device) for key, value in batch.items()}).logits.float()
        mask = labels != -100
        log_probs = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        totals += (-(log_probs * mask).sum(-1)).tolist()
        counts += mask.sum(-1).tolist()
    model.train(was_training)
    return totals, counts


def per_token(totals: list[float], counts: list[int]) -> float:
    return sum(totals) / sum(counts)


# ------------------------------------------------------------------------------------------------ one run


def run_recipe(recipe: Recipe, seed: int, learning_rate: float, output_dir: Path) -> Recipe:
    """A copy of the recipe with the run's seed (also the data order's), learning rate and output folder, greedy
    decoding and no early stopping."""
    recipe = recipe.copy()
    recipe.generation = dataclasses.replace(recipe.generation, **GREEDY_DECODING)
    recipe.early_stopping_patience = None
    recipe.training.update(output_dir=str(output_dir), seed=seed, data_seed=seed, learning_rate=learning_rate)
    return recipe


def run_arguments(max_steps: int, device: str) -> dict:
    """Training-argument changes of a measured run: `max_steps`, nothing saved or evaluated during training."""
    return dict(
        max_steps=max_steps,
        save_strategy="no",
        eval_strategy="no",
        predict_with_generate=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        logging_steps=max(1, min(25, max_steps // 4)),
    )


@dataclass
class PreparedRun:
    """A built run: its recipe, `build`'s parts, callbacks to train with and notes for its record."""

    recipe: Recipe
    parts: object
    callbacks: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def train(self, seconds: float | None = None) -> WallClockBudget:
        """Train with the run's callbacks and a clock (which stops training once `seconds` are spent); the clock."""
        clock = WallClockBudget(seconds)
        for callback in (*self.callbacks, clock):
            self.parts.trainer.add_callback(callback)
        self.parts.trainer.train()
        return clock


def prepare(recipe: Recipe, seed: int, max_steps: int, device: str, make_model=None) -> PreparedRun:
    """Seed, then build the trainer for `max_steps` on `device`; `make_model()` (called after seeding) gives a model
    to use instead of the recipe's."""
    from transformers import set_seed

    set_seed(seed)
    model = make_model() if make_model is not None else None
    return PreparedRun(recipe, build(recipe, model=model, **run_arguments(max_steps, device)))


def train_and_measure(prepared: PreparedRun, output_dir: Path, time_budget: float | None = None) -> dict:
    """Train (stopped by the clock after `time_budget` seconds, if given); validation and test NLL per sentence,
    greedy test chrF/ROUGE-L, training time and steps, the data order's digests."""
    trainer = prepared.parts.trainer
    order = DataOrderDigest(trainer.data_collator)
    trainer.data_collator = order
    clock = prepared.train(time_budget)
    trainer.data_collator = order.collator
    model, datasets = trainer.model, prepared.parts.datasets
    record = {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "step_seconds": round(clock.elapsed / max(1, clock.steps), 4),
        "stopped_by": "clock" if clock.stopped_by_clock else "steps",
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "data_order": order.digests,
        **prepared.notes,
    }
    if "validation" in datasets:
        totals, counts = sentence_nll(model, datasets["validation"], order.collator)
        record["valid_nll"] = round(per_token(totals, counts), 5)
    totals, counts = sentence_nll(model, datasets["test"], order.collator)
    metrics = evaluate_model(
        model,
        prepared.parts.tokenizer,
        prepared.parts.formatted["test"],
        output_dir / "test",
        batch_size=MEASURE_BATCH_SIZE,
        max_source_length=prepared.recipe.data.max_source_length,
    )
    record.update(
        test_nll=round(per_token(totals, counts), 5),
        test_tokens=sum(counts),
        chrf=metrics["all"]["chrf"],
        rougeL=metrics["all"]["rougeL"],
        per_language_chrf={key: value["chrf"] for key, value in metrics.items() if key != "all"},
        sentence_nll=[round(value, 4) for value in totals],
        sentence_tokens=counts,
    )
    return record


def run_once(
    recipe: Recipe,
    seed: int,
    learning_rate: float,
    steps: int,
    output_dir: Path,
    device: str,
    time_budget: float | None = None,
) -> dict:
    """One measured run of the recipe as it is (`train_and_measure`'s record)."""
    recipe = run_recipe(recipe, seed, learning_rate, output_dir)
    return train_and_measure(prepare(recipe, seed, steps, device), output_dir, time_budget)


# ------------------------------------------------------------------------------------------------ where it ran


def git_commit(*paths: str) -> str:
    """HEAD's short hash, with `-dirty` when the run code (`RUN_CODE`, and `paths`) differs from HEAD."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=root
        ).stdout.strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *RUN_CODE, *paths], cwd=root).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changed else "")


def device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(part) for part in sys.argv)


# ------------------------------------------------------------------------------------------------ processes


def _call_with_threads(function, threads: int, device: str, arguments: dict) -> dict:
    torch.set_num_threads(threads)
    # The device as this process ran it: on the CPU its share of the cores, not the parent's count.
    return {"device": device_name(device), **function(**arguments)}


def in_processes(function, jobs_and_arguments: list[tuple[dict, dict]], jobs: int, device: str):
    """Yield `(fields, function(**arguments))` for each pair as it finishes, computed in up to `jobs` fresh processes
    at once (spawned: CUDA cannot be forked); on the CPU the cores are shared out between them. A failed run does not
    stop the others: the first failure is raised once every run has ended (the finished ones have been yielded)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs) if device == "cpu" else 1
    failures = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            pool.submit(_call_with_threads, function, threads, device, arguments): fields
            for fields, arguments in jobs_and_arguments
        }
        for future in as_completed(futures):
            if future.exception() is not None:
                failures.append(future.exception())
                continue
            yield futures[future], future.result()
    if failures:
        raise failures[0]
