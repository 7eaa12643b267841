"""Recipes (YAML) -> model, data and `Seq2SeqTrainer`; evaluation with batched beam search and per-language metrics.

A recipe has four sections (see `configs/*.yaml`):

```yaml
model:        # how the model is made
  init: from_encoder | pretrained | random_decoder
  encoder: <XLM-R folder or Hub name>      # from_encoder / random_decoder
  path: <saved XLM-SWCM folder>            # pretrained
  normal_layer_interval: 3
  lm_head_init: embeddings | random
  init_scheme: copy | scaled
  config: {decoder_layer_norm_position: pre, ...}   # any XLMSWCMConfig field
tokenizer: <folder or name>                 # default: model.encoder or model.path
data:         # see xlm_swcm_hf.data
  task: translation | summarization | mrc | denoising
  train_file / validation_file / test_file, or dataset_name (+ dataset_config)
  columns: {source: ..., target: ..., lang: ...}
  max_source_length: 128
  max_target_length: 128
  train_languages: [zh]       # optional filter (cross-lingual transfer)
  eval_languages: [ug, kk]    # optional filter of validation/test
training:     # Seq2SeqTrainingArguments keyword arguments
  output_dir: ...
generation: {num_beams: 4, max_new_tokens: 64}
early_stopping_patience: 3    # optional
```
"""

import copy
import json
import logging
import os
from collections import defaultdict
from pathlib import Path

import torch
import yaml


logger = logging.getLogger(__name__)

MODEL_INITS = ("from_encoder", "pretrained", "random_decoder")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the field to fix."""


# ---------------------------------------------------------------- recipes


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """Read a YAML recipe and apply `section.key=value` overrides (values parsed as YAML)."""
    recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} is not a YAML mapping.")
    for override in overrides or []:
        key, separator, value = override.partition("=")
        if not separator:
            raise RecipeError(f"Override {override!r} must look like section.key=value.")
        target = recipe
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = yaml.safe_load(value)
    _check_recipe(recipe)
    return recipe


def _check_recipe(recipe: dict) -> None:
    model = recipe.get("model") or {}
    init = model.get("init")
    if init not in MODEL_INITS:
        raise RecipeError(f"model.init={init!r} is invalid; allowed: {MODEL_INITS}.")
    if init == "pretrained" and not model.get("path"):
        raise RecipeError("model.init=pretrained needs model.path (a saved XLM-SWCM folder).")
    if init != "pretrained" and not model.get("encoder"):
        raise RecipeError(f"model.init={init} needs model.encoder (an XLM-R folder or Hub name).")
    training = recipe.get("training") or {}
    if not training.get("output_dir"):
        raise RecipeError("training.output_dir is required.")
    if training.get("fp16") and not torch.cuda.is_available():
        raise RecipeError(
            "training.fp16 needs a CUDA GPU and none is available. On CPU use training.bf16=true "
            "(bfloat16 autocast) or neither."
        )
    task = (recipe.get("data") or {}).get("task")
    if not task:
        raise RecipeError("data.task is required (translation, summarization, mrc or denoising).")


# ---------------------------------------------------------------- model and tokenizer


def build_model(model_section: dict, tokenizer=None):
    from . import XLMSWCMForConditionalGeneration

    init = model_section["init"]
    if init == "pretrained":
        model = XLMSWCMForConditionalGeneration.from_pretrained(model_section["path"])
    else:
        model = XLMSWCMForConditionalGeneration.from_encoder(
            model_section["encoder"],
            normal_layer_interval=model_section.get("normal_layer_interval", 3),
            lm_head_init=model_section.get("lm_head_init", "embeddings"),
            share_weights=init == "from_encoder",
            init_scheme=model_section.get("init_scheme", "copy"),
            **(model_section.get("config") or {}),
        )
    if tokenizer is not None and len(tokenizer) > model.config.vocab_size:
        raise RecipeError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary only {model.config.vocab_size}; "
            "use the encoder's own tokenizer."
        )
    return model


def build_tokenizer(recipe: dict):
    from transformers import AutoTokenizer

    model = recipe["model"]
    source = recipe.get("tokenizer") or model.get("path") or model.get("encoder")
    return AutoTokenizer.from_pretrained(source)


# ---------------------------------------------------------------- data


SPLIT_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}


def load_raw_splits(data: dict):
    """The recipe's splits as a DatasetDict: local files (`train_file`, ...) or a `datasets` name."""
    from .data import load_task_dataset

    files = {split: data[key] for split, key in SPLIT_FILES.items() if data.get(key)}
    if files:
        return load_task_dataset(files, task=None)
    if data.get("dataset_name"):
        kwargs = {"name": data["dataset_config"]} if data.get("dataset_config") else {}
        return load_task_dataset(data["dataset_name"], task=None, **kwargs)
    raise RecipeError("data needs train_file/validation_file/test_file or dataset_name.")


def prepare_datasets(recipe: dict, tokenizer) -> tuple[dict, dict]:
    """Load, format, filter by language and tokenize every split the recipe names. Returns (tokenized, formatted)."""
    from .data import format_examples, tokenize_for_seq2seq

    data = recipe["data"]
    raw = load_raw_splits(data)
    filters = {"train": data.get("train_languages"), "validation": data.get("eval_languages"),
               "test": data.get("eval_languages")}
    tokenized, formatted = {}, {}
    for split, dataset in raw.items():
        if data.get("drop_invalid"):
            dataset, dropped = format_examples(dataset, data["task"], data.get("columns"), drop_invalid=True)
        else:
            dataset = format_examples(dataset, data["task"], data.get("columns"))
        languages = filters.get(split)
        if languages:
            if "lang" not in dataset.column_names:
                raise RecipeError(f"A language filter is set for {split} but the data has no language column.")
            wanted = set(languages)
            dataset = dataset.filter(lambda example: example["lang"] in wanted)
            if len(dataset) == 0:
                raise RecipeError(f"No {split} examples left for languages {languages}.")
        formatted[split] = dataset
        tokenized[split], stats = tokenize_for_seq2seq(
            dataset,
            tokenizer,
            max_source_length=data.get("max_source_length", 128),
            max_target_length=data.get("max_target_length", 128),
        )
        logger.info("%s: %d examples; %s", split, len(dataset), stats)
    return tokenized, formatted


def prepare_pretraining_datasets(recipe: dict, tokenizer, model) -> tuple[dict, object]:
    """The paper's objectives: DAE on monolingual text of every language (temperature-sampled) mixed with MT pairs.

    `data.monolingual_files` maps language -> text files (JSONL with `text_column`, or .txt); optional
    `data.translation_files` ({train, validation} -> files with source/target columns) are mixed in with probability
    `data.mt_ratio`. Returns (datasets, collator); the collator noises DAE rows on the fly, deterministically per seed.
    """
    from datasets import interleave_datasets

    from .data import DenoisingCollator, MixedObjectiveCollator, format_examples, interleave_languages, load_task_dataset

    data = recipe["data"]
    seed = recipe["training"].get("seed", 42)
    text_column = data.get("text_column", "text")
    monolingual_files = data.get("monolingual_files") or {}
    if not monolingual_files:
        raise RecipeError("data.task=denoising needs data.monolingual_files: {language: file, ...}.")
    monolingual = {}
    for language, files in monolingual_files.items():
        dataset = load_task_dataset(files, task=None, split="train")
        if text_column not in dataset.column_names:
            raise RecipeError(f"{files}: no column {text_column!r} (set data.text_column).")
        dataset = dataset.select_columns([text_column])
        monolingual[language] = dataset if text_column == "text" else dataset.rename_column(text_column, "text")
    train = interleave_languages(monolingual, temperature=data.get("sampling_temperature", 5.0), seed=seed)
    datasets = {"train": train}
    translation_files = data.get("translation_files") or {}
    if translation_files:
        parallel = load_task_dataset(translation_files, task=None)
        parallel = format_examples(parallel, "translation", data.get("columns"))
        mt_ratio = float(data.get("mt_ratio", 0.5))
        if "train" in parallel:
            datasets["train"] = interleave_datasets(
                [train, parallel["train"]], probabilities=[1 - mt_ratio, mt_ratio], seed=seed,
                stopping_strategy="all_exhausted",
            )
        if "validation" in parallel:
            datasets["validation"] = parallel["validation"]
    denoising = DenoisingCollator(
        tokenizer,
        model,
        mask_ratio=data.get("mask_ratio", 0.35),
        poisson_lambda=data.get("poisson_lambda", 3.5),
        permute_sentences=data.get("permute_sentences", False),
        max_length=data.get("max_source_length", 256),
        seed=seed,
    )
    collator = MixedObjectiveCollator(
        denoising, max_source_length=data.get("max_source_length"), max_target_length=data.get("max_target_length")
    )
    return datasets, collator


# ---------------------------------------------------------------- training


def build_training_arguments(recipe: dict):
    from transformers import Seq2SeqTrainingArguments

    arguments = dict(recipe["training"])
    arguments.pop("overwrite_output_dir", None)  # ours, handled by run_training
    for key, value in arguments.items():
        if key.endswith("_strategy") and value is False:  # YAML reads a bare `no` as false
            arguments[key] = "no"
    generation = recipe.get("generation") or {}
    arguments.setdefault("predict_with_generate", True)
    arguments.setdefault("generation_num_beams", generation.get("num_beams", 4))
    arguments.setdefault("generation_max_length", generation.get("max_length", recipe["data"].get("max_target_length", 128)))
    arguments.setdefault("report_to", "none")
    arguments.setdefault("save_total_limit", 2)
    if not torch.cuda.is_available():
        arguments.setdefault("use_cpu", True)
    if recipe.get("early_stopping_patience"):
        arguments.setdefault("load_best_model_at_end", True)
        arguments.setdefault("metric_for_best_model", "eval_loss")
        arguments.setdefault("greater_is_better", False)
    return Seq2SeqTrainingArguments(**arguments)


def make_compute_metrics(tokenizer):
    """Seq2SeqTrainer hook: decode generated ids and labels, score with the multilingual metrics."""
    from .metrics import compute_generation_metrics

    def compute_metrics(eval_prediction):
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = torch.as_tensor(predictions)
        labels = torch.as_tensor(labels)
        predictions = predictions.masked_fill(predictions < 0, tokenizer.pad_token_id)
        labels = labels.masked_fill(labels < 0, tokenizer.pad_token_id)
        decoded_predictions = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        decoded_labels = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        return compute_generation_metrics(decoded_predictions, decoded_labels)

    return compute_metrics


def build_trainer(recipe: dict, model, tokenizer, tokenized: dict, collator=None):
    from transformers import EarlyStoppingCallback, Seq2SeqTrainer

    from .data import make_seq2seq_collator

    arguments = build_training_arguments(recipe)
    generation = recipe.get("generation") or {}
    for key, value in generation.items():
        setattr(model.generation_config, key, value)
    callbacks = []
    if recipe.get("early_stopping_patience"):
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe["early_stopping_patience"]))
    collator = collator or make_seq2seq_collator(tokenizer, model)
    return Seq2SeqTrainer(
        model=model,
        args=arguments,
        train_dataset=tokenized.get("train"),
        eval_dataset=tokenized.get("validation"),
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(tokenizer) if arguments.predict_with_generate else None,
        callbacks=callbacks,
    )


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def parameter_checksum(model) -> str:
    """A digest of every parameter: equal on all replicas of a data-parallel run that stayed in sync."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def run_training(recipe: dict, resume: bool = False, callbacks: list | None = None) -> dict:
    """Train as the recipe says; write the Hub-ready folder, metrics JSON and loss-curve PNG. Returns the metrics."""
    from transformers import set_seed

    from .hub import save_hub_folder

    output_dir = Path(recipe["training"]["output_dir"])
    checkpoint = None
    if resume:
        checkpoint = last_checkpoint(output_dir)
        if checkpoint is None:
            raise RecipeError(f"--resume: no checkpoint-* folder in {output_dir}; start without --resume.")
        logger.info("Resuming from %s", checkpoint)
    elif last_checkpoint(output_dir) is not None:
        if not recipe["training"].get("overwrite_output_dir"):
            raise RecipeError(
                f"{output_dir} already holds checkpoints; pass --resume to continue, choose another output_dir, or "
                "set training.overwrite_output_dir=true to start over."
            )
        import shutil

        for stale in output_dir.glob("checkpoint-*"):
            shutil.rmtree(stale)
    set_seed(recipe["training"].get("seed", 42))
    tokenizer = build_tokenizer(recipe)
    model = build_model(recipe["model"], tokenizer)
    if recipe["data"]["task"] == "denoising":
        recipe["training"].setdefault("remove_unused_columns", False)  # the collator needs the raw text
        recipe["training"].setdefault("predict_with_generate", False)
        tokenized, collator = prepare_pretraining_datasets(recipe, tokenizer, model)
        formatted = {}
    else:
        tokenized, formatted = prepare_datasets(recipe, tokenizer)
        collator = None
    trainer = build_trainer(recipe, model, tokenizer, tokenized, collator)
    for callback in callbacks or []:
        trainer.add_callback(callback)

    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {"train": train_result.metrics}
    if trainer.args.world_size > 1:
        # Each replica records its parameters' digest: a data-parallel run that stayed in sync has one value.
        checksums = output_dir / "replica_checksums"
        checksums.mkdir(parents=True, exist_ok=True)
        (checksums / f"rank{trainer.args.process_index}.txt").write_text(parameter_checksum(trainer.model))
    if "validation" in tokenized:
        metrics["validation"] = trainer.evaluate()
    if "test" in tokenized and not trainer.args.predict_with_generate:
        # Teacher-forced test loss (the NLL when label smoothing is off); generation metrics follow below.
        metrics["test_loss"] = trainer.evaluate(tokenized["test"], metric_key_prefix="test")["test_loss"]
    if not trainer.is_world_process_zero():
        return metrics

    output_dir.mkdir(parents=True, exist_ok=True)
    history = trainer.state.log_history
    (output_dir / "log_history.json").write_text(json.dumps(history, indent=2))
    plot_loss_curves({"": history}, output_dir / "loss_curve.png")
    if "test" in formatted:
        metrics["test"] = evaluate_model(
            trainer.model, tokenizer, formatted["test"], output_dir / "test",
            generation=recipe.get("generation"), max_source_length=recipe["data"].get("max_source_length", 128),
        )
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    save_hub_folder(
        output_dir / "final",
        trainer.model,
        tokenizer,
        card_fields={
            "description": f"XLM-SWCM fine-tuned for {recipe['data']['task']} with xlm-swcm-hf.",
            "training": "```yaml\n" + yaml.safe_dump(_public_recipe(recipe), sort_keys=False) + "```",
            "results": metrics_markdown(metrics.get("test") or metrics.get("validation") or {}),
            "base_model": recipe["model"].get("encoder") or recipe["model"].get("path"),
        },
        metrics=metrics,
        overwrite=True,
        extra_files={"loss_curve.png": output_dir / "loss_curve.png"},
    )
    return metrics


def _public_recipe(recipe: dict) -> dict:
    public = copy.deepcopy(recipe)
    public.get("training", {}).pop("hub_token", None)
    return public


def plot_loss_curves(histories: dict[str, list[dict]], path: str | os.PathLike, title: str | None = None) -> None:
    """Train (solid) and validation (dashed, dots) loss against step for one or more runs' Trainer log histories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, history in histories.items():
        prefix = f"{name}: " if name else ""
        train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry and "step" in entry]
        evaluation = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
        line = axes.plot(*zip(*train), label=f"{prefix}train")[0] if train else None
        if evaluation:
            axes.plot(*zip(*evaluation), marker="o", linestyle="--", color=line.get_color() if line else None,
                      label=f"{prefix}validation")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def generate_predictions(model, tokenizer, sources: list[str], batch_size: int = 16, max_source_length: int = 128,
                         **generation_kwargs) -> list[str]:
    """Batched generation (beam search by default through the model's generation config), with a progress bar."""
    from tqdm.auto import tqdm

    model.eval()
    predictions = []
    order = sorted(range(len(sources)), key=lambda index: len(sources[index]))  # less padding per batch
    for start in tqdm(range(0, len(order), batch_size), desc="generating", unit="batch"):
        indices = order[start : start + batch_size]
        batch = tokenizer([sources[i] for i in indices], return_tensors="pt", padding=True, truncation=True,
                          max_length=max_source_length).to(model.device)
        output = model.generate(**batch, **generation_kwargs)
        texts = tokenizer.batch_decode(output, skip_special_tokens=True)
        predictions.extend(zip(indices, (text.strip() for text in texts)))
    return [text for _, text in sorted(predictions)]


def evaluate_model(model, tokenizer, dataset, output_dir: str | os.PathLike, generation: dict | None = None,
                   batch_size: int = 16, max_source_length: int = 128) -> dict:
    """Generate for a formatted dataset (`source_text`, `target_text`, optional `lang`); write predictions + metrics.

    Metrics are overall and, when the data has a `lang` column, per language (the cross-lingual transfer table).
    """
    from .metrics import compute_generation_metrics

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    generation = dict(generation or {})
    generation.setdefault("num_beams", 4)
    sources, references = list(dataset["source_text"]), list(dataset["target_text"])
    languages = list(dataset["lang"]) if "lang" in dataset.column_names else [None] * len(sources)
    predictions = generate_predictions(model, tokenizer, sources, batch_size=batch_size,
                                       max_source_length=max_source_length, **generation)
    with open(output_dir / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for source, reference, prediction, language in zip(sources, references, predictions, languages):
            record = {"source": source, "reference": reference, "prediction": prediction}
            if language is not None:
                record["lang"] = language
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    metrics = {"all": {**compute_generation_metrics(predictions, references), "count": len(predictions)}}
    if any(language is not None for language in languages):
        grouped = defaultdict(lambda: ([], []))
        for prediction, reference, language in zip(predictions, references, languages):
            grouped[language][0].append(prediction)
            grouped[language][1].append(reference)
        for language in sorted(grouped):
            group_predictions, group_references = grouped[language]
            metrics[language] = {**compute_generation_metrics(group_predictions, group_references),
                                 "count": len(group_predictions)}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    (output_dir / "metrics.md").write_text(metrics_markdown(metrics))
    return metrics


def metrics_markdown(metrics: dict) -> str:
    """A table with one row per group (language), columns ROUGE-L F/P/R, chrF, BLEU, count."""
    if not metrics:
        return "No evaluation results were recorded."
    groups = metrics if all(isinstance(value, dict) for value in metrics.values()) else {"all": metrics}
    columns = [("rougeL", "ROUGE-L F"), ("rougeL_precision", "P"), ("rougeL_recall", "R"), ("chrf", "chrF"),
               ("bleu", "BLEU"), ("count", "n")]
    lines = ["| group | " + " | ".join(title for _, title in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for group, values in groups.items():
        cells = []
        for key, _ in columns:
            value = values.get(key, values.get(f"eval_{key}"))
            cells.append("" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value)))
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
