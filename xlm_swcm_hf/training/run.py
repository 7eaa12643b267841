"""Run a recipe: train (resumable), evaluate, and write the Hub-ready folder with its card, metrics and curves."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import yaml

from ..recipe import Recipe, RecipeError
from .build import build, tokenizer_source
from .evaluation import evaluate_model
from .reporting import metrics_markdown, plot_loss_curves


logger = logging.getLogger(__name__)


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def parameter_checksum(model) -> str:
    """A digest of every parameter: equal on all replicas of a data-parallel run that stayed in sync."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _resume_point(recipe: Recipe, resume: bool) -> str | None:
    """The checkpoint to resume from; refuses to silently train over an earlier run's checkpoints."""
    output_dir = recipe.output_dir
    checkpoint = last_checkpoint(output_dir)
    if resume:
        if checkpoint is None:
            raise RecipeError(f"--resume: no checkpoint-* folder in {output_dir}; start without --resume.")
        return checkpoint
    if checkpoint is not None and not recipe.training.get("overwrite_output_dir"):
        raise RecipeError(
            f"{output_dir} already holds checkpoints; pass --resume to continue, choose another output_dir, or "
            "set training.overwrite_output_dir=true to start over."
        )
    return None


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
    """Train as the recipe says; write the Hub-ready folder, metrics JSON and loss-curve PNG. Returns the metrics."""
    from transformers import set_seed

    from ..hub import save_hub_folder

    output_dir = recipe.output_dir
    checkpoint = _resume_point(recipe, resume)
    set_seed(recipe.seed)
    parts = build(recipe)
    trainer = parts.trainer
    if checkpoint is None and recipe.training.get("overwrite_output_dir"):
        for stale in output_dir.glob("checkpoint-*"):
            shutil.rmtree(stale)
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

    output_dir.mkdir(parents=True, exist_ok=True)
    history = trainer.state.log_history
    (output_dir / "log_history.json").write_text(json.dumps(history, indent=2))
    plotted = plot_loss_curves({"": history}, output_dir / "loss_curve.png")
    if "test" in parts.formatted:
        metrics["test"] = evaluate_model(
            trainer.model,
            parts.tokenizer,
            parts.formatted["test"],
            output_dir / "test",
            max_source_length=recipe.data.max_source_length,
        )
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
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
