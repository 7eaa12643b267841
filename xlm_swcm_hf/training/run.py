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

from ..checks import (
    InputError,
    Interrupted,
    refuse_output_over_inputs,
    require_writable_output,
    same_command,
    write_failure,
)
from ..checks import _os_error_message as os_error_message
from ..files import atomic_write_json, ordinary_modes, output_lock
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
# What a run leaves in its output folder besides checkpoints: another run must not silently replace it.
FINISHED_OUTPUTS = ("final", "final-merged", "metrics.json", "log_history.json", "test")


def run_finished(recipe: Recipe) -> bool:
    """Whether the output folder holds the run's last outputs: final/ (and final-merged/ when the recipe merges),
    each renamed into place only once complete."""
    last = ["final"] + (["final-merged"] if recipe.peft is not None and recipe.peft.merge_after_training else [])
    return all((recipe.output_dir / name).is_dir() for name in last)


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


def _recipe_inputs(recipe: Recipe) -> dict:
    """Every local input the recipe reads, by its recipe name: the output folder may not be, hold or lie in one."""
    inputs = {"model.path": recipe.model.path, "model.encoder": recipe.model.encoder, "tokenizer": recipe.tokenizer}
    return {**inputs, **{f"data file {path}": path for path in recipe.data.local_paths()}}


def _resume_point(recipe: Recipe, resume: bool, quiet: bool = False) -> str | None:
    """The checkpoint to resume from; refuses to silently train over an earlier run's checkpoints or results.

    Each refusal names a way on that this function accepts (so advice never loops): --resume when a checkpoint is
    complete or the run never finished (it then starts over), else training.overwrite_output_dir=true."""
    output_dir = recipe.output_dir
    refuse_output_over_inputs(output_dir, "training.output_dir", _recipe_inputs(recipe))
    require_writable_output(output_dir, "training.output_dir")
    checkpoint = last_checkpoint(output_dir)
    found = checkpoints(output_dir)
    outputs = [name for name in FINISHED_OUTPUTS if (output_dir / name).exists()]
    finished = run_finished(recipe)
    overwrite = recipe.training.get("overwrite_output_dir")
    if resume:
        if checkpoint is None and not found and not outputs:
            raise RecipeError(
                f"--resume: {output_dir} holds no run to resume (no checkpoint-* folder); start without --resume."
            )
        if checkpoint is None and finished and not overwrite:
            raise RecipeError(
                f"--resume: {output_dir} holds a finished run (final/) but no complete checkpoint to resume from; "
                "set training.overwrite_output_dir=true to train it again, or choose another training.output_dir."
            )
        if checkpoint is None and not quiet:
            logger.warning("--resume: no checkpoint in %s is complete; training starts from the beginning", output_dir)
        return checkpoint
    if (outputs or found) and not overwrite:
        listed = outputs + [path.name for path in found]
        if checkpoint is not None:
            way_on = f"pass --resume to continue it from {Path(checkpoint).name}, "
        elif not finished:
            way_on = "pass --resume to finish it (it starts over: no checkpoint is complete), "
        else:
            way_on = ""
        raise RecipeError(
            f"{output_dir} already holds an earlier run's {', '.join(listed[:4])}"
            f"{' ...' if len(listed) > 4 else ''}; {way_on}choose another "
            "training.output_dir, or set training.overwrite_output_dir=true to start over."
        )
    return None


def rerun_advice(recipe: Recipe, resume: bool) -> str:
    """How to go on after a run stopped (Ctrl-C, a full disk): the command `_resume_point` accepts, preferring
    --resume, and what it will do."""
    for with_resume in (True, False):
        try:
            checkpoint = _resume_point(recipe, with_resume, quiet=True)
        except InputError:
            continue
        if with_resume:
            command = same_command(add=("--resume",)) or "train again with resume=True (train.py --resume)"
            if checkpoint:
                return (
                    f"{Path(checkpoint).name}, the last complete checkpoint, is kept in {recipe.output_dir}; to resume "
                    f"from it (final/ is written at the end), run: {command}"
                )
            return f"no checkpoint was complete; to train from the start, run: {command}"
        command = same_command(remove=("--resume",)) or "train again"
        return f"nothing was kept; run again: {command}"
    return "choose another training.output_dir"


def completes_training(checkpoint: str | os.PathLike, arguments) -> bool:
    """Whether `checkpoint` is the run's last step under these training arguments (a run stopped while writing its
    results after training, e.g. by a full disk)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    if arguments.max_steps > 0:
        return state["global_step"] >= arguments.max_steps
    same_epochs = state.get("num_train_epochs") == arguments.num_train_epochs
    return same_epochs and state.get("max_steps", 0) > 0 and state["global_step"] >= state["max_steps"]


def _take_finished_checkpoint(trainer, checkpoint: str, output_dir: Path) -> dict:
    """Load a checkpoint of the last step instead of resuming from it: Trainer (transformers 5.24) resumed at its
    last step trains one step more. Returns the train metrics the stopped run recorded, if it got that far."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    try:
        return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save_with_ordinary_modes(trainer) -> None:
    """Trainer's checkpoints get the modes of every other output (safetensors writes owner-only files)."""
    from transformers import TrainerCallback

    class OrdinaryModes(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                ordinary_modes(folder)

    trainer.add_callback(OrdinaryModes())


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


def run_training(
    recipe: Recipe, resume: bool = False, callbacks: list | None = None, full_vocabulary: bool = False
) -> dict:
    """Train as the recipe says; write the Hub-ready folder, metrics JSON and loss-curve PNG. Returns the metrics.
    The test split's generation metrics decode each row within the model's output vocabulary of its language where
    it has one (`output_vocabularies.json` of a pretrained model.path), unless `full_vocabulary`.

    Refused before any work: an output folder another run is writing to (a lock), or one that holds an earlier
    run's checkpoints or results (unless `resume`, or `training.overwrite_output_dir`). `resume` continues from the
    last complete checkpoint."""
    with contextlib.ExitStack() as stack:
        if _is_main_launch_process():  # one run per output folder; released when this process ends in any way
            stack.enter_context(output_lock(recipe.output_dir, "training.output_dir"))
        try:
            return _run_training(recipe, resume, callbacks, full_vocabulary)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted (Ctrl-C); {rerun_advice(recipe, resume)}") from None
        except Exception as error:
            failure = write_failure(error)
            if failure is None:
                raise
            where = "" if failure.filename else f"writing into {recipe.output_dir}: "
            raise InputError(f"{where}{os_error_message(failure)} Then: {rerun_advice(recipe, resume)}") from error


def _run_training(recipe: Recipe, resume: bool, callbacks: list | None, full_vocabulary: bool = False) -> dict:
    from transformers import set_seed

    from ..checks import looks_like_local_path
    from ..hub import model_index, public_name, public_recipe, save_hub_folder

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
    _save_with_ordinary_modes(trainer)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)

    if checkpoint and completes_training(checkpoint, trainer.args):
        logger.info("%s is the last step: training is done, its results are written again", checkpoint)
        metrics = {"train": _take_finished_checkpoint(trainer, checkpoint, output_dir)}
    else:
        metrics = {"train": trainer.train(resume_from_checkpoint=checkpoint).metrics}
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
            full_vocabulary=full_vocabulary,
        )
    atomic_write_json(output_dir / "metrics.json", metrics)
    languages = sorted(key for key in metrics.get("test", {}) if key != "all") or recipe.data.eval_languages
    # The card is uploaded: local paths appear by their base names only (public_name), Hub ids as they are.
    card_fields = {
        "description": f"XLM-SWCM fine-tuned for {recipe.data.task} with xlm-swcm-hf "
        f"(model from {recipe.model.init}: {public_name(recipe.model.encoder or recipe.model.path)}; "
        f"tokenizer from {public_name(tokenizer_source(recipe))})"
        + (f"; a LoRA adapter on {public_name(recipe.model.path)}." if recipe.peft else "."),
        "training": "```yaml\n"
        + yaml.safe_dump(public_recipe(recipe.to_dict()), sort_keys=False, allow_unicode=True)
        + "```",
        "results": metrics_markdown(metrics.get("test") or metrics.get("validation") or {}),
        "base_model": base_model_name(recipe),
        "languages": languages,
        "source_languages": parts.source_languages,
        "datasets": [name for name in [recipe.data.dataset_name] if name and not looks_like_local_path(name)],
        "model_index": model_index(
            public_name(output_dir) or "xlm-swcm",
            recipe.data.task,
            public_name(recipe.data.dataset_name or recipe.data.test_file, "file") or "test",
            metrics.get("test"),
        ),
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
