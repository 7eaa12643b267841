"""The ablation's runs: a variant's measured run, its speed probe, and the shared pretraining run.

Each builds on the generic measured run of `xlm_swcm_experiments.runs`: the variant's recipe (`variant_recipe`), its
model built after seeding (`prepare_run`), then its changes to the model and its training (`apply_variant`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from xlm_swcm_hf.recipe import Recipe

from ..runs import PreparedRun, prepare, run_recipe, train_and_measure
from .variants import (
    VARIANTS,
    FreezeParameters,
    MLMHeadTransform,
    build_encoder_decoder_baseline,
    copied_parameter_names,
    encoder_mlm_head_state,
    grouped_optimizer,
    install_mlm_head,
    reinitialise_cross_attention,
    skip_reason,
)


# Where no run of a variant was timed beside the reference's run, its speed comes from a short run of these many steps
# here; the first steps (allocation, warm caches) are not counted.
SPEED_PROBE_STEPS, SPEED_PROBE_UNCOUNTED = 25, 5


def variant_recipe(recipe: Recipe, variant: str, seed: int, learning_rate: float, output_dir: Path) -> Recipe:
    """The recipe with the variant's model section (unless it starts from a pretrained folder), the seed, the
    learning rate, its own output folder and greedy decoding."""
    recipe = run_recipe(recipe, seed, learning_rate, output_dir)
    spec = VARIANTS[variant]
    if spec.model is not None and recipe.model.init != "pretrained":
        recipe.model = dataclasses.replace(recipe.model, **copy.deepcopy(spec.model))
    return recipe


def prepare_run(
    recipe: Recipe, variant: str, seed: int, max_steps: int, step_budget: int, device: str, apply_init: bool = True
) -> PreparedRun:
    """Build the trainer for one run; apply the variant's model changes and training treatment (`apply_init`)."""
    make_model = None
    if VARIANTS[variant].model is None and recipe.model.init != "pretrained":
        make_model = lambda: build_encoder_decoder_baseline(recipe.model.encoder)  # noqa: E731
    prepared = prepare(recipe, seed, max_steps, device, make_model)
    if apply_init:
        apply_variant(prepared, variant, seed, step_budget)
    return prepared


def apply_variant(prepared: PreparedRun, variant: str, seed: int, step_budget: int) -> None:
    """The variant's changes after `build`: cross-attention drawn afresh, the MLM head, per-group learning rates or
    frozen copied tensors (for that share of `step_budget`); what was done goes into the run's notes."""
    spec, recipe = VARIANTS[variant], prepared.recipe
    trainer = prepared.parts.trainer
    model = trainer.model
    if spec.reinit_cross_attention:
        reinitialise_cross_attention(model, seed)
    if spec.mlm_head:
        state = encoder_mlm_head_state(recipe.model.encoder)
        if state is None:
            raise ValueError(skip_reason(variant, recipe))
        install_mlm_head(model, state)
    if spec.copied_lr_multiplier is not None or spec.freeze_copied_fraction is not None:
        copied = set(copied_parameter_names(model, spec))
        prepared.notes["copied_tensors"] = len(copied)
        if spec.copied_lr_multiplier is not None:
            trainer.optimizer = grouped_optimizer(trainer, model, copied, spec.copied_lr_multiplier)
        if spec.freeze_copied_fraction is not None:
            until = max(1, round(spec.freeze_copied_fraction * step_budget))
            parameters = [parameter for name, parameter in model.named_parameters() if name in copied]
            prepared.callbacks.append(FreezeParameters(parameters, until))
            prepared.notes["frozen_until_step"] = until


def run_variant(
    recipe: Recipe,
    variant: str,
    seed: int,
    learning_rate: float,
    steps: int,
    output_dir: Path,
    device: str,
    time_budget: float | None = None,
    horizon: int | None = None,
    apply_init: bool = True,
) -> dict:
    """Train one variant; validation and test NLL per sentence, greedy test chrF/ROUGE-L, training time and steps.
    `horizon`: the steps its learning rate is scheduled over (default `steps`), for runs the clock ends."""
    recipe = variant_recipe(recipe, variant, seed, learning_rate, output_dir)
    prepared = prepare_run(recipe, variant, seed, horizon or steps, steps, device, apply_init)
    return train_and_measure(prepared, output_dir, time_budget)


def measure_step_seconds(
    recipe: Recipe, variant: str, seed: int, learning_rate: float, steps: int, output_dir: Path, device: str
) -> dict:
    """Seconds per training step of one variant on this device: `SPEED_PROBE_STEPS` steps (the variant's treatment
    as in a run of `steps`), the first `SPEED_PROBE_UNCOUNTED` not counted; nothing is evaluated."""
    recipe = variant_recipe(recipe, variant, seed, learning_rate, output_dir)
    clock = prepare_run(recipe, variant, seed, SPEED_PROBE_STEPS, steps, device).train()
    counted = clock.step_ends[SPEED_PROBE_UNCOUNTED - 1 :]
    return {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "step_seconds": round((counted[-1] - counted[0]) / (len(counted) - 1), 4),
    }


# ------------------------------------------------------------------------------------------------ pretraining


def pretraining_recipe(recipe: Recipe, output_dir: Path) -> Recipe:
    """The paper's objectives on the demo material: DAE (text infilling) on monolingual text of every language (the
    data folder's `monolingual_<lang>.jsonl` where there is one, plus the target sides of the train split) mixed with
    the MT pairs of the train split; the MT validation pairs for the validation loss."""
    data = recipe.data
    languages = data.train_languages or []
    data_dir = Path(data.train_file).parent
    folder = output_dir / "pretraining-data"
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        split: [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for split, path in (("train", data.train_file), ("validation", data.validation_file))
        if path
    }
    if languages:
        rows = {split: [row for row in values if row.get("lang") in languages] for split, values in rows.items()}
    languages = languages or sorted({row["lang"] for row in rows["train"]})
    target_column = (data.columns or {}).get("target", "target")
    monolingual = {}
    for language in languages:
        path = folder / f"targets_{language}.jsonl"
        texts = [row[target_column] for row in rows["train"] if row.get("lang") == language]
        path.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts))
        extra = data_dir / f"monolingual_{language}.jsonl"
        monolingual[language] = [str(extra), str(path)] if extra.exists() else [str(path)]
    translation = {}
    for split, values in rows.items():
        path = folder / f"mt_{split}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in values))
        translation[split] = [str(path)]
    recipe = recipe.copy()
    recipe.data = dataclasses.replace(
        recipe.data,
        task="denoising",
        train_file=None,
        validation_file=None,
        test_file=None,
        monolingual_files=monolingual,
        translation_files=translation,
    )
    return recipe


def pretrain_once(recipe: Recipe, variant: str, seed: int, steps: int, output_dir: Path, device: str) -> dict:
    """Pretrain one initialisation (the variant's model and treatment) for `steps`; save `<output_dir>/final`."""
    recipe = variant_recipe(recipe, variant, seed, recipe.training["learning_rate"], output_dir)
    prepared = prepare_run(recipe, variant, seed, steps, steps, device)
    trainer = prepared.parts.trainer
    clock = prepared.train()
    validation_loss = trainer.evaluate()["eval_loss"] if "validation" in prepared.parts.datasets else None
    if isinstance(trainer.model.lm_head, MLMHeadTransform):
        raise ValueError(f"{variant}: a model with an MLM head transform cannot be saved as XLM-SWCM")
    trainer.save_model(str(output_dir / "final"))
    return {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "valid_loss": round(validation_loss, 5) if validation_loss is not None else None,
        "path": str(output_dir / "final"),
        **prepared.notes,
    }
