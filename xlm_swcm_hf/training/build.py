"""The one builder: recipe -> tokenizer, datasets, model, collator, trainer.

Training, evaluation, the demo and the experiments all go through `build`, which reads top to bottom; the functions
below it follow in the order it calls them:

1. `check_before_loading`: the recipe's rules, its training arguments (made once, here), every local path and every
   length against the position table, before a model is loaded or a step is spent;
2. the data: `load_raw_splits` + `load_formatted_splits` (+ `source_languages`, for the card) + `build_tokenizer` +
   `tokenize_splits` for a task, `load_pretraining_splits` for denoising;
3. the model: `build_model` (the recipe's, with LoRA on top if asked) or `adopt_model` (one given by the caller);
4. the collator (pretraining's mixed DAE + MT one; otherwise the trainer's default seq2seq collator);
5. `build_trainer`: `Seq2SeqTrainer` with the arguments of step 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from ..checks import (
    check_position_limit,
    load_tokenizer,
    load_trained_model,
    looks_like_local_path,
    read_json_file,
    require_model_source,
    require_trained_model,
    weight_keys,
)
from ..recipe import Recipe, RecipeError


logger = logging.getLogger(__name__)

# How many texts of the data are tokenized to check that the tokenizer covers them.
TOKENIZER_CHECK_SAMPLE = 200
# A pair's source-language column (the demo data's and back_translate.py's): the card lists those languages too.
SOURCE_LANGUAGE_COLUMN = "src_lang"


@dataclass
class TrainingParts:
    """Everything `build` makes from a recipe."""

    tokenizer: object
    model: object
    datasets: dict  # split -> tokenized (or, for denoising, raw-text) dataset
    formatted: dict = field(default_factory=dict)  # split -> `source_text`/`target_text`(/`lang`) dataset
    source_languages: list = field(default_factory=list)  # the train split's `src_lang` values (see load_raw_splits)
    collator: object = None
    trainer: object = None


def build(recipe: Recipe, model=None, with_trainer: bool = True, **argument_changes) -> TrainingParts:
    """Check, then make every part. `model`: use this model instead of the recipe's (e.g. an outside baseline);
    `argument_changes` override training arguments (e.g. an experiment's step budget)."""
    arguments = check_before_loading(recipe, argument_changes)
    if recipe.data.task == "denoising":
        tokenizer = build_tokenizer(recipe)
        splits, formatted, sources = load_pretraining_splits(recipe), {}, []
    else:
        raw = load_raw_splits(recipe)
        formatted, sources = load_formatted_splits(recipe, raw), source_languages(recipe, raw)
        tokenizer = build_tokenizer(recipe, sample_texts=_sample_texts(formatted))
        splits = tokenize_splits(recipe, formatted, tokenizer)
    model = build_model(recipe, tokenizer) if model is None else adopt_model(recipe, model, tokenizer)
    collator = build_pretraining_collator(recipe, tokenizer, model) if recipe.data.task == "denoising" else None
    parts = TrainingParts(
        tokenizer=tokenizer,
        model=model,
        datasets=splits,
        formatted=formatted,
        source_languages=sources,
        collator=collator,
    )
    if with_trainer:
        parts.trainer = build_trainer(recipe, model, tokenizer, splits, collator, arguments=arguments)
    return parts


# ------------------------------------------------------------------------------------------------ 1. checks


def check_before_loading(recipe: Recipe, argument_changes: dict):
    """The recipe's cross-section rules, its training arguments (returned: bad ones fail here), every local path it
    names and every length it asks for; peft importable when the recipe asks for LoRA."""
    recipe.check()
    arguments = recipe.training_arguments(**argument_changes)
    check_recipe_paths(recipe)
    if recipe.peft is not None:
        from .adapters import require_peft

        require_peft()  # before the model is loaded
    return arguments


def check_recipe_paths(recipe: Recipe) -> None:
    """Every local path the recipe names exists, before anything is loaded."""
    from ..data.loading import check_data_file

    hint = ""
    if recipe.model.init == "pretrained":
        hint = (
            "it is the final/ folder of an earlier run (e.g. configs/pretrain_dae_mt.yaml writes "
            "outputs/pretrain-dae-mt/final)"
        )
        require_model_source(recipe.model.path, "model.path", hint=hint)
        require_trained_model(recipe.model.path, "model.path")  # not an encoder, no tensor left to start random
    else:
        require_model_source(recipe.model.encoder, "model.encoder")
        if looks_like_local_path(recipe.model.encoder):
            weight_keys(recipe.model.encoder, "model.encoder")  # weights present and complete
            check_model_settings(recipe)
    if recipe.tokenizer:
        require_model_source(recipe.tokenizer, "tokenizer")
    for path in recipe.data.local_paths():
        check_data_file(path)
    check_recipe_limits(recipe)


def check_model_settings(recipe: Recipe) -> None:
    """The model the recipe builds from a local encoder is valid: `model.config` and `model.normal_layer_interval`
    make an `XLMSWCMConfig` with that encoder's config.json (no weights loaded), and `init_scheme: scaled` has the
    pre-LN decoder it needs."""
    from .. import XLMSWCMConfig

    model = recipe.model
    encoder_config = read_json_file(Path(model.encoder) / "config.json", "model.encoder's config")
    settings = {key: value for key, value in model.from_encoder_kwargs().items() if key not in FROM_ENCODER_ONLY}
    try:
        config = XLMSWCMConfig.from_encoder_config(encoder_config, **settings)
    except (ValueError, TypeError) as error:
        raise RecipeError(
            f"model.config / model.normal_layer_interval with the encoder {model.encoder}: {error}"
        ) from None
    if model.init_scheme == "scaled" and config.decoder_layer_norm_position != "pre":
        raise RecipeError(
            "model.init_scheme=scaled is for pre-LN decoders; set model.config.decoder_layer_norm_position=pre "
            "or model.init_scheme=copy."
        )


# `from_encoder` arguments that are not XLMSWCMConfig fields.
FROM_ENCODER_ONLY = ("share_weights", "lm_head_init", "init_scheme")


def check_recipe_limits(recipe: Recipe) -> None:
    """Every length the recipe asks for fits the model's position table (known from its config before loading)."""
    pretrained = recipe.model.init == "pretrained"
    source, what = (recipe.model.path, "model.path") if pretrained else (recipe.model.encoder, "model.encoder")
    generation, training = recipe.generation, recipe.training

    def positions(max_length):  # decoding max_length tokens embeds max_length - 1 of them (the last is not fed back)
        return None if max_length is None else max_length - 1

    check_position_limit(
        source,
        what,
        {
            "data.max_source_length": recipe.data.max_source_length,
            "data.max_target_length": recipe.data.max_target_length,
            "generation.max_new_tokens": generation.max_new_tokens,
            "generation.max_length": positions(generation.max_length),
            "training.generation_max_length": positions(training.get("generation_max_length")),
        },
    )


# ------------------------------------------------------------------------------------------------ 2. data


def load_raw_splits(recipe: Recipe) -> dict:
    """split -> the recipe's data as it is stored (its files, or the Hub dataset's splits)."""
    from ..data import load_task_dataset

    data = recipe.data
    files = data.split_files()
    if files:
        return {split: load_task_dataset(path, task=None, split="train") for split, path in files.items()}
    kwargs = {"name": data.dataset_config} if data.dataset_config else {}
    return dict(load_task_dataset(data.dataset_name, task=None, **kwargs))


def source_languages(recipe: Recipe, raw: dict) -> list[str]:
    """The languages of the sources the model is trained on: the train split's SOURCE_LANGUAGE_COLUMN values (of
    the rows of data.train_languages where it is set), sorted; [] where the data has no such column."""
    from ..data.formatting import _resolve_columns

    train = raw.get("train")
    if train is None or SOURCE_LANGUAGE_COLUMN not in train.column_names:
        return []
    lang = _resolve_columns(recipe.data.task, recipe.data.columns).lang
    wanted = set(recipe.data.train_languages or [])
    if wanted and lang in train.column_names:
        rows = zip(train[lang], train[SOURCE_LANGUAGE_COLUMN])
        return sorted({str(source) for target, source in rows if target in wanted and source})
    return sorted({str(source) for source in train[SOURCE_LANGUAGE_COLUMN] if source})


def load_formatted_splits(recipe: Recipe, raw: dict | None = None) -> dict:
    """The recipe's splits (`raw`: as `load_raw_splits` gives them, loaded here when None), formatted
    (`source_text`, `target_text`, `lang`) and filtered by language."""
    from ..data import format_examples
    from ..data.formatting import DataError

    data = recipe.data
    raw = load_raw_splits(recipe) if raw is None else raw
    files = data.split_files()
    where = {split: f"{files[split]}: " if files else f"{data.dataset_name} split {split!r}: " for split in raw}
    filters = {"train": data.train_languages, "validation": data.eval_languages, "test": data.eval_languages}
    formatted = {}
    for split, dataset in raw.items():
        dataset = format_examples(dataset, data.task, data.columns, drop_invalid=data.drop_invalid, where=where[split])
        if len(dataset) == 0:
            raise DataError(f"{where[split]}no usable rows.")
        languages = filters.get(split)
        if languages:
            if "lang" not in dataset.column_names:
                raise DataError(
                    f"{where[split]}data.{'train' if split == 'train' else 'eval'}_languages is set but "
                    "the data has no language column."
                )
            wanted = set(languages)
            dataset = dataset.filter(lambda example, wanted=wanted: example["lang"] in wanted)
            if len(dataset) == 0:
                raise DataError(f"{where[split]}no rows left for languages {languages}.")
        formatted[split] = dataset
    if data.synthetic_train_file and "train" in formatted:
        formatted["train"] = mix_synthetic(recipe, formatted["train"], filters["train"])
    return formatted


def mix_synthetic(recipe: Recipe, real, languages):
    """The train split with `data.synthetic_train_file`'s pairs interleaved at `data.synthetic_weight`; the sizes
    and how many mixed rows are synthetic are logged."""
    from datasets import interleave_datasets

    from ..data import format_examples, load_task_dataset
    from ..data.formatting import DataError

    data = recipe.data
    where = f"{data.synthetic_train_file}: "
    raw = load_task_dataset(data.synthetic_train_file, task=None, split="train")
    synthetic = format_examples(raw, data.task, data.columns, drop_invalid=data.drop_invalid, where=where)
    if languages and "lang" in synthetic.column_names:
        wanted = set(languages)
        synthetic = synthetic.filter(lambda example: example["lang"] in wanted)
    if len(synthetic) == 0:
        raise DataError(f"{where}no usable rows.")
    if sorted(synthetic.column_names) != sorted(real.column_names):
        raise DataError(
            f"{where}its columns {synthetic.column_names} differ from the train split's {real.column_names}; give "
            "both a language column or neither."
        )
    marked = [part.add_column("_synthetic", [flag] * len(part)) for part, flag in ((real, False), (synthetic, True))]
    mixed = interleave_datasets(
        marked,
        probabilities=[1 - data.synthetic_weight, data.synthetic_weight],
        seed=recipe.seed,
        stopping_strategy="all_exhausted",
    )
    used = sum(mixed["_synthetic"])
    logger.info(
        "train: %d real + %d synthetic pairs, synthetic_weight %s -> %d rows, %d of them synthetic",
        len(real), len(synthetic), data.synthetic_weight, len(mixed), used,
    )  # fmt: skip
    return mixed.remove_columns("_synthetic")


def _sample_texts(formatted: dict) -> list[str]:
    dataset = next(iter(formatted.values()))
    rows = islice(zip(dataset["source_text"], dataset["target_text"]), TOKENIZER_CHECK_SAMPLE)
    return [text for pair in rows for text in pair]


def tokenizer_source(recipe: Recipe) -> str:
    return recipe.tokenizer or recipe.model.path or recipe.model.encoder


def build_tokenizer(recipe: Recipe, sample_texts=None):
    return load_tokenizer(tokenizer_source(recipe), sample_texts=sample_texts)


def tokenize_splits(recipe: Recipe, formatted: dict, tokenizer) -> dict:
    from ..data import tokenize_for_seq2seq

    tokenized = {}
    for split, dataset in formatted.items():
        tokenized[split], stats = tokenize_for_seq2seq(
            dataset, tokenizer, recipe.data.max_source_length, recipe.data.max_target_length
        )
        logger.info("%s: %d examples; %s", split, len(dataset), stats)
    return tokenized


def load_pretraining_splits(recipe: Recipe) -> dict:
    """The paper's objectives: DAE on monolingual text of every language (temperature-sampled) mixed with MT pairs.

    `data.monolingual_files` maps language -> text files (JSONL with `text_column`, or .txt); optional
    `data.translation_files` ({train, validation} -> files with source/target columns) are mixed in with probability
    `data.mt_ratio`.
    """
    from datasets import interleave_datasets

    from ..data import format_examples, interleave_languages, load_task_dataset
    from ..data.formatting import DataError

    data, seed = recipe.data, recipe.seed
    monolingual = {}
    for language, files in data.monolingual_files.items():
        dataset = load_task_dataset(files, task=None, split="train")
        if data.text_column not in dataset.column_names:
            raise DataError(
                f"{files}: no column {data.text_column!r} (set data.text_column); it has {dataset.column_names}."
            )
        dataset = dataset.select_columns([data.text_column])
        monolingual[language] = (
            dataset if data.text_column == "text" else dataset.rename_column(data.text_column, "text")
        )
    train = interleave_languages(monolingual, temperature=data.sampling_temperature, seed=seed)
    splits = {"train": train}
    if data.translation_files:
        parallel = {
            split: format_examples(
                load_task_dataset(files, task=None, split="train"), "translation", data.columns, where=f"{files}: "
            )
            for split, files in data.translation_files.items()
        }
        if "train" in parallel:
            splits["train"] = interleave_datasets(
                [train, parallel["train"]],
                probabilities=[1 - data.mt_ratio, data.mt_ratio],
                seed=seed,
                stopping_strategy="all_exhausted",
            )
        if "validation" in parallel:
            splits["validation"] = parallel["validation"]
    return splits


# ------------------------------------------------------------------------------------------------ 3. model


def build_model(recipe: Recipe, tokenizer=None):
    """The recipe's model (from the encoder, or a trained folder), its generation settings, and LoRA on top when the
    recipe has a peft section."""
    from .. import XLMSWCMForConditionalGeneration

    if recipe.model.init == "pretrained":
        model = load_trained_model(recipe.model.path, "model.path", XLMSWCMForConditionalGeneration)
    else:
        model = XLMSWCMForConditionalGeneration.from_encoder(recipe.model.encoder, **recipe.model.from_encoder_kwargs())
    if tokenizer is not None and len(tokenizer) > model.config.vocab_size:
        raise RecipeError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary only {model.config.vocab_size}; "
            "use the encoder's own tokenizer."
        )
    recipe.generation.apply_to(model)
    if tokenizer is not None:
        suppress_special_tokens(model, tokenizer)
    if recipe.peft is not None:
        from .adapters import apply_lora

        model = apply_lora(model, recipe.peft)
    return model


def adopt_model(recipe: Recipe, model, tokenizer):
    """A model the caller built (e.g. an outside baseline) with the recipe's generation settings."""
    recipe.generation.apply_to(model)
    suppress_special_tokens(model, tokenizer)
    return model


def suppress_special_tokens(model, tokenizer) -> None:
    """Never generate <mask> (a pretraining input, never an output); the model already suppresses <pad>."""
    mask = tokenizer.mask_token_id
    suppressed = list(model.generation_config.suppress_tokens or [])
    if mask is not None and mask not in suppressed:
        model.generation_config.suppress_tokens = [*suppressed, mask]


# ---------------------------------------------------------------------------------------------- 4. collator, 5. trainer


def build_pretraining_collator(recipe: Recipe, tokenizer, model):
    """Noises DAE rows on the fly, deterministically per seed; MT rows are tokenized as pairs."""
    from ..data import DenoisingCollator, MixedObjectiveCollator

    data = recipe.data
    denoising = DenoisingCollator(
        tokenizer,
        model,
        mask_ratio=data.mask_ratio,
        poisson_lambda=data.poisson_lambda,
        permute_sentences=data.permute_sentences,
        max_length=data.max_source_length,
        seed=recipe.seed,
        text_column="text",
    )
    return MixedObjectiveCollator(
        denoising, max_source_length=data.max_source_length, max_target_length=data.max_target_length
    )


def build_trainer(recipe: Recipe, model, tokenizer, datasets: dict, collator=None, arguments=None, **argument_changes):
    """`Seq2SeqTrainer` for the recipe with `arguments` (`build` made them when it checked the recipe), or, called on
    its own, the recipe's training arguments with `argument_changes` on top."""
    from transformers import EarlyStoppingCallback, Seq2SeqTrainer

    from ..data import make_seq2seq_collator
    from .evaluation import make_compute_metrics

    if arguments is None:
        arguments = recipe.training_arguments(**argument_changes)
    callbacks = []
    if recipe.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    return Seq2SeqTrainer(
        model=model,
        args=arguments,
        train_dataset=datasets.get("train"),
        eval_dataset=datasets.get("validation"),
        data_collator=collator or make_seq2seq_collator(tokenizer, model),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(tokenizer) if arguments.predict_with_generate else None,
        callbacks=callbacks,
    )
