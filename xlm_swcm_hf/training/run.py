"""Run a recipe: train (resumable), evaluate, and write the Hub-ready folder with its card, metrics and curves."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import yaml

from ..checks import require_writable_output
from ..files import atomic_write_json, output_lock
from ..recipe import Recipe, RecipeError
from .build import build, tokenizer_source
from .evaluation import evaluate_model
from .reporting import metrics_markdown, plot_loss_curves


logger = logging.getLogger(__name__)


# A checkpoint can be resumed from only when its weights, optimizer and trainer state are all there. Trainer writes
# them in that order (weights, optimizer and scheduler, RNG state, trainer_state.json last) into the final folder
# name, so a run stopped mid-save leaves a checkpoint-N folder that lacks some of them.
CHECKPOINT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
CHECKPOINT_OPTIMIZER = ("optimizer.pt", "optimizer.bin")
# What a finished run leaves in its output folder besides checkpoints: another run must not silently replace it.
FINISHED_OUTPUTS = ("final", "final-merged", "metrics.json", "log_history.json", "test")


def _checkpoint_step(folder: Path) -> int | None:
    prefix, _, step = folder.name.partition("-")
    return int(step) if prefix == "checkpoint" and step.isdigit() and folder.is_dir() else None


def checkpoint_problems(folder: str | os.PathLike) -> list[str]:
    """What a checkpoint folder lacks to be resumed from (empty when it is complete)."""
    folder = Path(folder)
    problems = []
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        problems.append("no complete trainer_state.json")
    # DeepSpeed and FSDP keep weights and optimizer in folders of their own
    sharded = any(folder.glob("global_step*")) or any(folder.glob("pytorch_model_fsdp*"))
    if not sharded and not any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        problems.append("no weights")
    if not sharded and not any((folder / name).is_file() for name in CHECKPOINT_OPTIMIZER):
        if not any(folder.glob("optimizer_*")):
            problems.append("no optimizer state")
    return problems


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint-N folders in `output_dir`, by step."""
    if not os.path.isdir(output_dir):
        return []
    found = [(step, path) for path in Path(output_dir).iterdir() if (step := _checkpoint_step(path)) is not None]
    return [path for _, path in sorted(found)]


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The last complete checkpoint in `output_dir` (weights, optimizer and trainer state all there), or None.
    Trainer's own `get_last_checkpoint` takes the highest step even when its save was cut short."""
    complete = [path for path in checkpoints(output_dir) if not checkpoint_problems(path)]
    return str(complete[-1]) if complete else None


def remove_incomplete_checkpoints(output_dir: str | os.PathLike, after: str | None) -> list[Path]:
    """Remove the checkpoints a cut-short save left after the resume point: Trainer would save into the same
    folder names and count them when it rotates checkpoints."""
    resume_step = _checkpoint_step(Path(after)) if after else -1
    removed = []
    for path in checkpoints(output_dir):
        if _checkpoint_step(path) > resume_step and checkpoint_problems(path):
            logger.warning("Removing %s, an incomplete checkpoint (%s)", path, "; ".join(checkpoint_problems(path)))
            shutil.rmtree(path)
            removed.append(path)
    return removed


def parameter_checksum(model) -> str:
    """A digest of every parameter: equal on all replicas of a data-parallel run that stayed in sync."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _resume_point(recipe: Recipe, resume: bool) -> str | None:
    """The checkpoint to resume from; refuses to silently train over an earlier run's checkpoints or results."""
    output_dir = recipe.output_dir
    require_writable_output(output_dir, "training.output_dir")
    checkpoint = last_checkpoint(output_dir)
    found = checkpoints(output_dir)
    if resume:
        if checkpoint is None and not found:
            raise RecipeError(f"--resume: no checkpoint-* folder in {output_dir}; start without --resume.")
        if checkpoint is None:
            logger.warning("--resume: no checkpoint in %s is complete; training starts from the beginning", output_dir)
        return checkpoint
    finished = [name for name in FINISHED_OUTPUTS if (output_dir / name).exists()] + [path.name for path in found]
    if finished and not recipe.training.get("overwrite_output_dir"):
        raise RecipeError(
            f"{output_dir} already holds an earlier run's {', '.join(finished[:4])}"
            f"{' ...' if len(finished) > 4 else ''}; pass --resume to continue it, choose another "
            "training.output_dir, or set training.overwrite_output_dir=true to start over."
        )
    return None


def _generation_owner(model):
    """The model whose generation_config generate() reads (a peft model's base model)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _is_main_launch_process() -> bool:
    """The process that takes the output folder's lock: rank 0 of a torchrun/accelerate launch, or the only one."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


def base_model_name(recipe: Recipe) -> str | None:
    """The card's `base_model`: a Hub id, or the one the local folder itself names; never a local path."""
    from ..checks import looks_like_local_path

    source = recipe.model.encoder if recipe.model.init != "pretrained" else recipe.model.path
    if not looks_like_local_path(source):
        return source
    if recipe.peft is not None:
        return None  # an adapter's base model is the folder it adapts, which has no Hub id
    card = Path(source) / "README.md"
    if card.is_file():
        from ..hub import card_metadata

        try:
            base = card_metadata(card.read_text(encoding="utf-8")).get("base_model")
        except ValueError:
            return None
        return base if isinstance(base, str) and not looks_like_local_path(base) else None
    return None


def run_training(recipe: Recipe, resume: bool = False, callbacks: list | None = None) -> dict:
    """Train as the recipe says; write the Hub-ready folder, metrics JSON and loss-curve PNG. Returns the metrics.

    Refused before any work: an output folder another run is writing to (a lock), or one that holds an earlier
    run's checkpoints or results (unless `resume`, or `training.overwrite_output_dir`). `resume` continues from the
    last complete checkpoint."""
    with contextlib.ExitStack() as stack:
        if _is_main_launch_process():  # one run per output folder; released when this process ends in any way
            stack.enter_context(output_lock(recipe.output_dir, "training.output_dir"))
        return _run_training(recipe, resume, callbacks)


def _run_training(recipe: Recipe, resume: bool, callbacks: list | None) -> dict:
    from transformers import set_seed

    from ..hub import save_hub_folder

    output_dir = recipe.output_dir
    checkpoint = _resume_point(recipe, resume)
    set_seed(recipe.seed)
    parts = build(recipe)
    trainer = parts.trainer
    if trainer.is_world_process_zero():
        if checkpoint is None and recipe.training.get("overwrite_output_dir"):
            for stale in checkpoints(output_dir):
                shutil.rmtree(stale)
        elif resume:
            remove_incomplete_checkpoints(output_dir, checkpoint)
    # Seq2SeqTrainer's evaluation fills the model's generation_config with transformers' defaults (max_length 20
    # beside the recipe's max_new_tokens, so every later generate() warns "Both ... set"): kept here, put back below.
    recipe_generation = copy.deepcopy(_generation_owner(trainer.model).generation_config)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)

    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {"train": train_result.metrics}
    if trainer.args.world_size > 1:
        # Each replica records its parameters' digest: a data-parallel run that stayed in sync has one value.
        checksums = output_dir / "replica_checksums"
        checksums.mkdir(parents=True, exist_ok=True)
        (checksums / f"rank{trainer.args.process_index}.txt").write_text(parameter_checksum(trainer.model))
    if "validation" in parts.datasets:
        metrics["validation"] = trainer.evaluate()
    if "test" in parts.datasets and not trainer.args.predict_with_generate:
        # Teacher-forced test loss (the NLL when label smoothing is off); generation metrics follow below.
        metrics["test_loss"] = trainer.evaluate(parts.datasets["test"], metric_key_prefix="test")["test_loss"]
    if not trainer.is_world_process_zero():
        return metrics

    _generation_owner(trainer.model).generation_config = recipe_generation
    output_dir.mkdir(parents=True, exist_ok=True)
    history = trainer.state.log_history
    atomic_write_json(output_dir / "log_history.json", history)
    plotted = plot_loss_curves({"": history}, output_dir / "loss_curve.png")
    if "test" in parts.formatted:
        metrics["test"] = evaluate_model(
            trainer.model,
            parts.tokenizer,
            parts.formatted["test"],
            output_dir / "test",
            max_source_length=recipe.data.max_source_length,
        )
    atomic_write_json(output_dir / "metrics.json", metrics)
    languages = sorted(key for key in metrics.get("test", {}) if key != "all") or recipe.data.eval_languages
    card_fields = {
        "description": f"XLM-SWCM fine-tuned for {recipe.data.task} with xlm-swcm-hf "
        f"(model from {recipe.model.init}: {recipe.model.encoder or recipe.model.path}; "
        f"tokenizer from {tokenizer_source(recipe)})"
        + (f"; a LoRA adapter on {recipe.model.path}." if recipe.peft else "."),
        "training": "```yaml\n" + yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True) + "```",
        "results": metrics_markdown(metrics.get("test") or metrics.get("validation") or {}),
        "base_model": base_model_name(recipe),
        "languages": languages,
        "datasets": [recipe.data.dataset_name] if recipe.data.dataset_name else [],
    }
    extra_files = {"loss_curve.png": output_dir / "loss_curve.png"} if plotted else None
    save_hub_folder(
        output_dir / "final",
        trainer.model,
        parts.tokenizer,
        card_fields=card_fields,
        metrics=metrics,
        overwrite=True,
        extra_files=extra_files,
    )
    if recipe.peft is not None and recipe.peft.merge_after_training:
        merged = trainer.model.merge_and_unload()
        save_hub_folder(
            output_dir / "final-merged",
            merged,
            parts.tokenizer,
            card_fields={**card_fields, "description": card_fields["description"] + " Adapter merged."},
            metrics=metrics,
            overwrite=True,
            extra_files=extra_files,
        )
    return metrics
