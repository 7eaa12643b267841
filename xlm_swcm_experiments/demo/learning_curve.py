"""The demo's budget chosen by measurement: one longer run of the demo recipe, scored on the validation split at
chosen steps (greedy chrF per language, beside the translation memory's), against steps and training seconds.

The run keeps the recipe's schedule except that, so that a point at step N stands for "N steps of training", the
rate stays constant after warmup (`constant_with_warmup`); a run that decays to N steps ends at least as well in
practice, so each point is a conservative estimate of what a budget of N steps gives. Training seconds exclude the
time spent scoring. Writes `learning_curve.json`, `learning_curve.md` and `learning_curve.png` (`write_outputs`
renders the last two from the first).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.files import atomic_write_json, atomic_write_text
from xlm_swcm_hf.training.reporting import markdown_table


ROOT = Path(__file__).resolve().parents[2]
CURVE_JSON = "learning_curve.json"
#: What the curve sets itself: the last step, the constant rate, no Trainer evaluation, one save at the end.
CURVE_FIXED = ("training.max_steps", "training.lr_scheduler_type", "training.eval_strategy", "training.save_steps")
DEFAULT_STEPS = (250, 500, 1000, 1500, 2000)
#: Greedy decoding keeps each point's scoring cheap; the demo's report decodes the test split with its beams.
CURVE_GENERATION = {"num_beams": 1, "max_new_tokens": 48, "no_repeat_ngram_size": 3}


def _chrf(predictions: list[str], references: list[str]) -> float:
    from sacrebleu.metrics import CHRF

    return round(CHRF().corpus_score(predictions, [references]).score, 2)


def score_by_language(rows: list[dict], predictions: list[str]) -> dict:
    """Corpus chrF overall and per language (`lang`) of predictions against the rows' targets."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for row, prediction in zip(rows, predictions, strict=True):
        group = groups.setdefault(row["lang"], ([], []))
        group[0].append(prediction)
        group[1].append(row["target"])
    scores = {"all": _chrf(predictions, [row["target"] for row in rows])}
    scores.update({language: _chrf(*groups[language]) for language in sorted(groups)})
    return scores


class LearningCurveCallback(TrainerCallback):
    """At each step of `steps`, decode `rows`' sources greedily and record chrF with the training seconds so far."""

    def __init__(self, rows: list[dict], steps, generation: dict | None = None, batch_size: int = 64, on_point=None):
        self.rows, self.steps, self.on_point = rows, sorted(set(steps)), on_point
        self.generation = dict(CURVE_GENERATION if generation is None else generation)
        self.batch_size = batch_size
        self.points: list[dict] = []
        self._started = self._scoring = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._scoring = time.perf_counter(), 0.0

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step not in self.steps:
            return
        from xlm_swcm_hf.training.evaluation import generate_predictions

        scoring_started = time.perf_counter()
        training_seconds = scoring_started - self._started - self._scoring
        tokenizer = processing_class if processing_class is not None else kwargs.get("tokenizer")
        was_training = model.training
        predictions = generate_predictions(
            model, tokenizer, [row["source"] for row in self.rows], batch_size=self.batch_size, **self.generation
        )
        model.train(was_training)
        point = {
            "step": state.global_step,
            "examples": state.global_step * args.per_device_train_batch_size * max(args.world_size, 1),
            "training_seconds": round(training_seconds, 1),
            "chrf": score_by_language(self.rows, predictions),
            "samples": [
                {"source": row["source"], "reference": row["target"], "prediction": prediction}
                for row, prediction in list(zip(self.rows, predictions))[:: max(len(self.rows) // 8, 1)]
            ],
        }
        self.points.append(point)
        self._scoring += time.perf_counter() - scoring_started
        if self.on_point is not None:  # each point is kept as soon as it is measured: a stopped run keeps its curve
            self.on_point(self.points)
        print(f"learning curve: step {point['step']}, {training_seconds:.0f} s, chrF {point['chrf']}", flush=True)


def memory_scores(train_rows: list[dict], rows: list[dict]) -> dict:
    """The translation memory's chrF on `rows` (its answer: the target of the most similar training source)."""
    from .memory import translation_memory

    return score_by_language(rows, [answer["answer"] for answer in translation_memory(train_rows, rows)])


def run_learning_curve(
    output_dir,
    artifacts="artifacts",
    recipe_path=None,
    overrides: list[str] | None = None,
    steps=DEFAULT_STEPS,
    udhr=None,
) -> Path:
    """Train the demo recipe's shared-weights run to max(steps), scoring the validation split at each of `steps`."""
    from xlm_swcm_hf.recipe import Recipe
    from xlm_swcm_hf.training import run_training

    from .pipeline import (
        DEFAULT_RECIPE,
        DEFAULT_UDHR,
        NEEDS_EXTENSION,
        _split_rows,
        demo_recipe,
        prepare_material,
        require_udhr,
    )

    output_dir, artifacts = Path(output_dir), Path(artifacts)
    recipe_path = Path(recipe_path or DEFAULT_RECIPE)
    steps = sorted(set(steps))
    fixed = [item for item in overrides or [] if item.partition("=")[0].strip() in CURVE_FIXED]
    if fixed:
        raise InputError(f"{', '.join(fixed)}: the learning curve sets {', '.join(CURVE_FIXED)} itself (--steps).")
    curve_overrides = [
        *(overrides or []),
        *(f"{key}={value}" for key, value in zip(CURVE_FIXED, (steps[-1], "constant_with_warmup", "no", steps[-1]))),
    ]
    languages = Recipe.from_yaml(recipe_path, curve_overrides).data.train_languages  # a bad recipe fails first
    udhr = Path(udhr or DEFAULT_UDHR)
    if set(languages or []) & set(NEEDS_EXTENSION):
        require_udhr(udhr, languages)
    material = prepare_material(artifacts, languages, udhr)
    recipe = demo_recipe(recipe_path, material, output_dir / "run", "from_encoder", curve_overrides)
    validation = _split_rows(material["data_dir"], "validation")
    validation = [row for row in validation if row["lang"] in languages]
    memory = memory_scores(_split_rows(material["data_dir"], "train"), validation)
    print(f"translation memory on the validation split: chrF {memory}", flush=True)
    data = {
        "recipe": recipe_path.resolve().relative_to(ROOT).as_posix()
        if recipe_path.resolve().is_relative_to(ROOT)
        else recipe_path.name,  # never a local path: the JSON is published with the docs
        "overrides": curve_overrides,
        "training": {key: recipe.training.get(key) for key in sorted(recipe.training) if key != "output_dir"},
        "validation_sentences": len(validation),
        "generation": dict(CURVE_GENERATION),
        "memory": memory,
        "points": [],
        "corpus_sha256": material["corpus_sha256"],
    }

    def keep(points):
        atomic_write_json(output_dir / CURVE_JSON, {**data, "points": points})
        write_outputs(output_dir)

    run_training(recipe, callbacks=[LearningCurveCallback(validation, steps, on_point=keep)])
    return write_outputs(output_dir)


def render_markdown(data: dict) -> str:
    languages = [key for key in data["memory"] if key != "all"]
    header = ["step", "examples", "training s", "chrF all", *languages]
    rows = [
        [
            point["step"],
            point["examples"],
            f"{point['training_seconds']:.0f}",
            *(f"{point['chrf'][key]:.1f}" for key in ["all", *languages]),
        ]
        for point in data["points"]
    ]
    rows.append(["memory", "", "", *(f"{data['memory'][key]:.1f}" for key in ["all", *languages])])
    training = data["training"]
    lines = [
        "# The demo's learning curve",
        "",
        f"One run of the demo recipe (shared-weights init), batch {training.get('per_device_train_batch_size')}, "
        f"rate {training.get('learning_rate')} held constant after {training.get('warmup_steps')} warmup steps, "
        f"bf16 {training.get('bf16')}, sampling {training.get('train_sampling_strategy', 'random')}; the "
        f"{data['validation_sentences']} validation sentences decoded greedily at each step below and scored with "
        "corpus chrF. 'memory' is the translation memory's answer for the same sentences (the training target of "
        "the most similar training source). Training seconds exclude scoring. One seed: the curve says where the "
        "gains flatten, not what separates two recipes.",
        "",
        markdown_table(header, rows),
        "",
        "![chrF against training seconds](learning_curve.png)",
        "",
        *(render_speed(data["speed"]) if data.get("speed") else []),
    ]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    seconds = [point["training_seconds"] / 60 for point in data["points"]]
    for key in data["memory"]:
        line = axes.plot(seconds, [point["chrf"][key] for point in data["points"]], marker="o", label=key)[0]
        axes.axhline(data["memory"][key], color=line.get_color(), linestyle=":", linewidth=1)
    axes.set_xlabel("training minutes (2 CPU cores)")
    axes.set_ylabel("validation chrF (greedy)")
    axes.set_title("XLM-SWCM demo: validation chrF; dotted: translation memory")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_outputs(output_dir) -> Path:
    """learning_curve.md and .png rendered from learning_curve.json (the same text for the same JSON)."""
    output_dir = Path(output_dir)
    if not (output_dir / CURVE_JSON).is_file():
        raise InputError(f"{output_dir / CURVE_JSON} does not exist; run the learning curve first.")
    data = json.loads((output_dir / CURVE_JSON).read_text(encoding="utf-8"))
    if (output_dir / SPEED_JSON).is_file():
        data["speed"] = json.loads((output_dir / SPEED_JSON).read_text(encoding="utf-8"))
    plot(data, output_dir / "learning_curve.png")
    atomic_write_text(output_dir / "learning_curve.md", render_markdown(data))
    return output_dir / "learning_curve.md"


# ---------------------------------------------------------------------------------------------- training speed

SPEED_JSON = "training_speed.json"
#: The settings the demo's budget chose between: precision and how batches are drawn, at the recipe's batch size.
SPEED_SETTINGS = (
    {"bf16": False, "train_sampling_strategy": "random"},
    {"bf16": True, "train_sampling_strategy": "random"},
    {"bf16": False, "train_sampling_strategy": "group_by_length"},
    {"bf16": True, "train_sampling_strategy": "group_by_length"},
)


class StepTimer(TrainerCallback):
    """Seconds of each optimizer step (forward, backward, update), as the Trainer runs them."""

    def __init__(self):
        self.seconds: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._started)


def measure_training_speed(
    output_dir, artifacts="artifacts", recipe_path=None, overrides=None, steps: int = 12, udhr=None
) -> Path:
    """Examples per second of the demo recipe's Trainer under each of SPEED_SETTINGS, one after another in one
    process (median step after 2 warmup steps): which precision and batching the budget uses is measured here."""
    import torch

    from xlm_swcm_hf.recipe import Recipe
    from xlm_swcm_hf.training.build import build

    from .pipeline import DEFAULT_RECIPE, DEFAULT_UDHR, demo_recipe, prepare_material

    output_dir, artifacts = Path(output_dir), Path(artifacts)
    recipe_path = Path(recipe_path or DEFAULT_RECIPE)
    languages = Recipe.from_yaml(recipe_path, overrides).data.train_languages
    material = prepare_material(artifacts, languages, Path(udhr or DEFAULT_UDHR))
    rows = []
    for setting in SPEED_SETTINGS:
        recipe = demo_recipe(recipe_path, material, output_dir / "speed-run", "from_encoder", overrides or [])
        timer = StepTimer()
        parts = build(recipe, max_steps=steps, save_strategy="no", eval_strategy="no", logging_strategy="no", **setting)
        parts.trainer.add_callback(timer)
        parts.trainer.train()
        measured = sorted(timer.seconds[2:])
        median = measured[len(measured) // 2]
        batch = recipe.training["per_device_train_batch_size"]
        rows.append(
            {
                **setting,
                "batch_size": batch,
                "median_step_s": round(median, 3),
                "examples_per_s": round(batch / median, 1),
            }
        )
        print(f"training speed {setting}: {median:.3f} s/step, {batch / median:.1f} examples/s", flush=True)
    data = {"threads": torch.get_num_threads(), "steps": steps, "rows": rows, "cpu": _cpu_name()}
    atomic_write_json(output_dir / SPEED_JSON, data)
    return write_outputs(output_dir) if (output_dir / CURVE_JSON).is_file() else output_dir / SPEED_JSON


def _cpu_name() -> str:
    """The CPU's model name and which bf16 instructions it has (the serving benchmark's `cpu_with_bf16_flags`); the
    platform's name where there is no /proc/cpuinfo."""
    import platform

    from ..serving_benchmark.cli import cpu_with_bf16_flags

    return cpu_with_bf16_flags() or platform.processor() or platform.machine()


def render_speed(data: dict) -> list[str]:
    base = data["rows"][0]["examples_per_s"]
    rows = [
        [
            "bf16" if row["bf16"] else "fp32",
            row["train_sampling_strategy"],
            f"{row['median_step_s']:.3f}",
            f"{row['examples_per_s']:.1f}",
            f"{row['examples_per_s'] / base:.2f}",
        ]
        for row in data["rows"]
    ]
    return [
        "## Training speed",
        "",
        f"The demo recipe's Trainer, batch {data['rows'][0]['batch_size']}, {data['threads']} thread(s) on "
        f"{data['cpu']}; median of steps 3 to {data['steps']}, one setting after another in one process.",
        "",
        markdown_table(
            ["precision", "batches", "s/step", "examples/s", "vs first"], rows, numeric=[False, False, True, True, True]
        ),
        "",
    ]
