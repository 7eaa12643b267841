"""The typed training recipe: the single home of every training, data and generation default.

A recipe (`configs/*.yaml`) has these sections; anything else is an error that names the closest valid key.

```yaml
model:        # how the model is made (ModelRecipe)
  init: from_encoder | pretrained | random_decoder
  encoder: <XLM-R folder or Hub name>      # from_encoder / random_decoder
  path: <saved XLM-SWCM folder>            # pretrained
  normal_layer_interval: 3                 # unset: XLMSWCMConfig's default
  lm_head_init: embeddings | random        # unset: from_encoder's default
  init_scheme: copy | scaled               # unset: from_encoder's default
  config: {decoder_layer_norm_position: pre, ...}   # any XLMSWCMConfig field
tokenizer: <folder or name>                 # default: model.path or model.encoder
data:         # DataRecipe: task, files or a `datasets` name, columns, lengths, denoising noise
training:     # Seq2SeqTrainingArguments keyword arguments (checked against its fields)
generation:   # GenerationRecipe: written into the model's generation_config, which Seq2SeqTrainer and generate read
peft:         # optional PeftRecipe: train a LoRA adapter on a saved model (model.init: pretrained)
early_stopping_patience: 3                  # optional
```

The library's lower layers read their defaults from here (e.g. `DenoisingCollator(mask_ratio=DataRecipe.mask_ratio)`),
so a default is never stated twice. Model defaults (layout interval, head init) belong to the model:
`XLMSWCMConfig` and `from_encoder` own them, and an unset recipe field means "theirs".
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from .checks import InputError
from .peft_targets import LORA_TARGET_MODULES


class RecipeError(InputError):
    """A recipe that cannot run; the message names the field to fix."""


MODEL_INITS = ("from_encoder", "pretrained", "random_decoder")
LM_HEAD_INITS = ("embeddings", "random")
INIT_SCHEMES = ("copy", "scaled")
DATA_TASKS = ("translation", "summarization", "mrc", "denoising")
PEFT_METHODS = ("lora",)


# Seq2SeqTrainingArguments fields transformers 5 replaced (a 4.x recipe's key -> what to write instead).
RENAMED_TRAINING_KEYS = {"group_by_length": ("train_sampling_strategy", "group_by_length")}


def _closest(name: str, valid) -> str:
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else f"; valid: {', '.join(sorted(valid))}"


def _matches(value: Any, annotation) -> bool:
    """A small runtime check of the annotations used in this module (YAML gives ints where floats are meant)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_matches(entry, item) for entry in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, annotation)


def _type_name(annotation) -> str:
    return str(annotation).replace("typing.", "").replace("NoneType", "None").replace("<class '", "").replace("'>", "")


def _require_finite(name: str, value) -> None:
    """YAML reads .nan and .inf as floats: no recipe number means anything as either."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{name}={value} must be a finite number.")


def _build_section(cls, values: Any, section: str):
    """`cls(**values)` with unknown keys and wrong types reported by their dotted name."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{section} must be a mapping of keys to values, got {type(values).__name__}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in hints:
            raise RecipeError(f"Unknown recipe key {section}.{key}{_closest(key, names)}.")
        if not _matches(value, hints[key]):
            raise RecipeError(f"{section}.{key}={value!r} has the wrong type: expected {_type_name(hints[key])}.")
        _require_finite(f"{section}.{key}", value)
    try:
        return cls(**values)
    except RecipeError as error:
        raise RecipeError(f"{section}: {error}") from None


def _check_choice(name: str, value, choices) -> None:
    if value is not None and value not in choices:
        raise RecipeError(f"{name}={value!r} is invalid; choose one of {', '.join(choices)}.")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names a key twice: plain YAML keeps the last value silently."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (`training:` twice kept only the second)."""

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by design
                continue
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if seen:
                raise DuplicateKeyError(
                    f"line {line}: key {key!r} is given twice (first on line {first_line[key]}); YAML would keep "
                    "only the last one silently, so remove or merge one of them."
                )
            first_line[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """`yaml.safe_load`, refusing a key given twice in one mapping (DuplicateKeyError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> dict:
    if path.is_dir():
        raise RecipeError(f"Recipe file {path} is a folder; name a recipe in it, e.g. {path / 'translation.yaml'}.")
    if not path.is_file():
        raise RecipeError(f"Recipe file {path} does not exist.")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise RecipeError(f"Recipe file {path} is not UTF-8 text (byte {error.start}).") from None
    except DuplicateKeyError as error:
        raise RecipeError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path} is not a YAML mapping of sections.")
    return raw


def _merge(base: dict, update: dict) -> None:
    """Merge `update` into `base`: mappings key by key, other values replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


@dataclass
class ModelRecipe:
    """How the model is made. Unset model fields fall back to `XLMSWCMConfig` / `from_encoder`."""

    init: str = "from_encoder"
    encoder: str | None = None
    path: str | None = None
    normal_layer_interval: int | None = None
    lm_head_init: str | None = None
    init_scheme: str | None = None
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_choice("init", self.init, MODEL_INITS)
        _check_choice("lm_head_init", self.lm_head_init, LM_HEAD_INITS)
        _check_choice("init_scheme", self.init_scheme, INIT_SCHEMES)
        if self.init == "pretrained" and not self.path:
            raise RecipeError("init=pretrained needs path (a saved XLM-SWCM folder).")
        if self.init != "pretrained" and not self.encoder:
            raise RecipeError(f"init={self.init} needs encoder (an XLM-R folder or Hub name).")
        if self.normal_layer_interval is not None and self.normal_layer_interval < 0:
            raise RecipeError(
                f"normal_layer_interval={self.normal_layer_interval} must be >= 0 (a normal layer after every that "
                "many custom layers; 0: none)."
            )

    def from_encoder_kwargs(self) -> dict:
        """Keyword arguments for `from_encoder`: only what the recipe sets, so the model's own defaults apply."""
        kwargs = {"share_weights": self.init == "from_encoder", **self.config}
        for name in ("normal_layer_interval", "lm_head_init", "init_scheme"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs


@dataclass
class DataRecipe:
    """Which data, how it is formatted and tokenized, and (for `task: denoising`) how it is noised and mixed."""

    task: str = "translation"
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    dataset_name: str | None = None
    dataset_config: str | None = None
    columns: dict | None = None
    train_languages: list[str] | None = None
    eval_languages: list[str] | None = None
    drop_invalid: bool = False
    # Synthetic pairs (scripts/back_translate.py) mixed into the train split: each training example is drawn from
    # them with probability synthetic_weight (datasets.interleave_datasets, until both are seen in full).
    synthetic_train_file: str | list[str] | None = None
    synthetic_weight: float = 0.5
    max_source_length: int = 128
    max_target_length: int = 128
    # Pretraining (task: denoising): mBART's text infilling, XLM-R's language sampling (alpha 0.3 = T 1/0.3).
    monolingual_files: dict | None = None
    text_column: str = "text"
    translation_files: dict | None = None
    mt_ratio: float = 0.5
    mask_ratio: float = 0.35
    poisson_lambda: float = 3.5
    permute_sentences: bool = False
    sampling_temperature: float = 1 / 0.3

    def __post_init__(self):
        _check_choice("task", self.task, DATA_TASKS)
        if self.max_source_length < 3:
            raise RecipeError(f"max_source_length={self.max_source_length} must be >= 3 (<s>, a token, </s>).")
        if self.max_target_length < 2:
            raise RecipeError(f"max_target_length={self.max_target_length} must be >= 2 (a token and </s>).")
        if self.synthetic_train_file and not 0 < self.synthetic_weight < 1:
            raise RecipeError(
                f"synthetic_weight={self.synthetic_weight} must be in (0, 1); to train on synthetic pairs alone "
                "name them in train_file, to leave them out unset synthetic_train_file."
            )
        if self.synthetic_train_file and self.task == "denoising":
            raise RecipeError("synthetic_train_file mixes pairs into a fine-tuning train split, not task=denoising.")
        if not 0 <= self.mt_ratio <= 1:
            raise RecipeError(f"mt_ratio={self.mt_ratio} must be in [0, 1].")
        if not 0 <= self.mask_ratio <= 1:
            raise RecipeError(f"mask_ratio={self.mask_ratio} must be in [0, 1].")
        if self.poisson_lambda <= 0 or self.sampling_temperature <= 0:
            raise RecipeError("poisson_lambda and sampling_temperature must be > 0.")
        if self.task == "denoising":
            if not self.monolingual_files:
                raise RecipeError("task=denoising needs monolingual_files: {language: file, ...}.")
        elif not (self.split_files() or self.dataset_name):
            raise RecipeError("needs train_file / validation_file / test_file or dataset_name.")

    def split_files(self) -> dict[str, str]:
        files = {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}
        return {split: path for split, path in files.items() if path}

    def local_paths(self) -> list[str]:
        """Every local file the recipe names, to check before anything is loaded."""
        paths = list(self.split_files().values())
        synthetic = self.synthetic_train_file or []
        paths += synthetic if isinstance(synthetic, list) else [synthetic]
        for mapping in (self.monolingual_files or {}, self.translation_files or {}):
            for value in mapping.values():
                paths += value if isinstance(value, list) else [value]
        return [str(path) for path in paths]


@dataclass
class GenerationRecipe:
    """Generation settings; written once into the model's `generation_config` (unset fields keep the model's)."""

    num_beams: int = 4
    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int | None = None
    no_repeat_ngram_size: int | None = None
    length_penalty: float | None = None
    repetition_penalty: float | None = None
    early_stopping: bool | str | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        if self.num_beams < 1:
            raise RecipeError(f"num_beams={self.num_beams} must be >= 1.")
        for name in ("max_new_tokens", "max_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise RecipeError(f"{name}={getattr(self, name)} must be >= 1.")
        for name in ("min_new_tokens", "no_repeat_ngram_size", "top_k"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise RecipeError(f"{name}={getattr(self, name)} must be >= 0.")
        for name in ("repetition_penalty", "temperature"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise RecipeError(f"{name}={getattr(self, name)} must be > 0.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise RecipeError(f"top_p={self.top_p} must be in (0, 1].")

    def settings(self) -> dict:
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    def apply_to(self, model) -> None:
        settings = self.settings()
        # One length limit at a time: the other would make transformers warn on every generate() call.
        if "max_new_tokens" in settings and "max_length" not in settings:
            settings["max_length"] = None
        if "max_length" in settings and "max_new_tokens" not in settings:
            settings["max_new_tokens"] = None
        for key, value in settings.items():
            setattr(model.generation_config, key, value)


@dataclass
class PeftRecipe:
    """Parameter-efficient fine-tuning with `peft` (LoRA): only the adapter trains; the saved final folder is the
    adapter, its generation config and tokenizer, and names the base model it adapts (`model.path`)."""

    method: str = "lora"
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # Every attention projection: the encoder's (query/value) and both decoder attentions' (q_proj/v_proj).
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGET_MODULES))
    modules_to_save: list[str] | None = None
    merge_after_training: bool = False  # also write final-merged/: a full model folder with the adapter merged in

    def __post_init__(self):
        _check_choice("method", self.method, PEFT_METHODS)
        if self.r < 1 or self.lora_alpha < 1:
            raise RecipeError(f"r={self.r} and lora_alpha={self.lora_alpha} must be >= 1.")
        if not 0 <= self.lora_dropout < 1:
            raise RecipeError(f"lora_dropout={self.lora_dropout} must be in [0, 1).")
        if not self.target_modules:
            raise RecipeError("target_modules must name at least one module (e.g. q_proj, v_proj).")


# Our defaults for Seq2SeqTrainingArguments (theirs apply to everything else). Evaluation runs generate() with the
# model's generation_config, so generation_max_length / generation_num_beams are left unset on purpose.
TRAINING_DEFAULTS = {"predict_with_generate": True, "report_to": "none", "save_total_limit": 2}
# training.bf16's third value: bf16 autocast where it measures faster than fp32 here (xlm_swcm_hf/training/precision.py)
BF16_AUTO: Final[str] = "auto"
# Recipe-only training keys, handled by the runner rather than Seq2SeqTrainingArguments.
TRAINING_EXTRAS = ("overwrite_output_dir",)
# Sentences decoded at once where a caller names no batch size: evaluation after training, evaluate_model.py,
# translation. The one statement of it; everything else reads it from here.
GENERATION_BATCH_SIZE: Final[int] = 16
# Rows per block of a bulk translation (xlm_swcm_hf.bulk_translation): the unit sorted by length, resumed, and dealt
# to the processes; 256 gives 16 full batches of GENERATION_BATCH_SIZE to sort among, and a small demo split still
# makes a block for each of a few processes.
TRANSLATION_BLOCK_SIZE: Final[int] = 256


def _training_argument_types() -> dict:
    from transformers import Seq2SeqTrainingArguments

    try:
        hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    except Exception:  # an annotation this Python cannot resolve: check the names only
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}


def _check_training_value(key: str, value, annotation):
    """YAML 1.1 reads `3e-5` (no dot) as a string and a bare `no` as false: read them as meant; refuse other
    wrong types."""
    if key.endswith("_strategy") and value is False:
        return "no"
    try:
        if _matches(value, annotation):
            return value
    except TypeError:  # an annotation the small checker does not know (Literal, enums, ...): leave it to transformers
        return value
    if isinstance(value, str) and _matches(1.0, annotation) and not _matches("x", annotation):
        try:
            return float(value)
        except ValueError:
            pass
    raise RecipeError(f"training.{key}={value!r} has the wrong type: expected {_type_name(annotation)}.")


# Training numbers that must be positive (when set) or at least 0; max_steps is -1 (train by epochs) or >= 1.
POSITIVE_TRAINING_NUMBERS = (
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "logging_steps",
    "save_steps",
    "eval_steps",
    "save_total_limit",
    "generation_max_length",
    "generation_num_beams",
)
NON_NEGATIVE_TRAINING_NUMBERS = ("learning_rate", "weight_decay", "warmup_steps", "max_grad_norm", "seed")
# Training numbers that are fractions in [0, 1).
TRAINING_FRACTIONS = ("label_smoothing_factor", "adam_beta1", "adam_beta2")


def _check_training_numbers(training: dict) -> None:
    """Numbers Seq2SeqTrainer would misread rather than refuse: `max_steps=-5` trains by epochs, a 0 or negative
    batch size, epoch count or step interval fails late or silently does something else."""
    for name, value in training.items():  # .nan passes every comparison below; .inf trains on nonsense
        _require_finite(f"training.{name}", value)
    steps = training.get("max_steps")
    if steps is not None and _matches(steps, int) and steps != -1 and steps < 1:
        raise RecipeError(f"training.max_steps={steps} must be >= 1 (or -1: train for num_train_epochs).")
    for name in POSITIVE_TRAINING_NUMBERS:
        value = training.get(name)
        if _matches(value, float) and value <= 0:
            raise RecipeError(f"training.{name}={value} must be > 0.")
    for name in NON_NEGATIVE_TRAINING_NUMBERS:
        value = training.get(name)
        if _matches(value, float) and value < 0:
            raise RecipeError(f"training.{name}={value} must be >= 0.")
    for name in TRAINING_FRACTIONS:
        value = training.get(name)
        if _matches(value, float) and not 0 <= value < 1:
            raise RecipeError(f"training.{name}={value} must be in [0, 1).")
    epsilon = training.get("adam_epsilon")
    if _matches(epsilon, float) and epsilon <= 0:
        raise RecipeError(f"training.adam_epsilon={epsilon} must be > 0.")


@dataclass
class Recipe:
    model: ModelRecipe
    data: DataRecipe
    training: dict
    generation: GenerationRecipe = field(default_factory=GenerationRecipe)
    tokenizer: str | None = None
    early_stopping_patience: int | None = None
    peft: PeftRecipe | None = None

    SECTIONS = ("model", "data", "training", "generation", "peft", "tokenizer", "early_stopping_patience")

    @classmethod
    def from_dict(cls, raw: dict) -> Recipe:
        if not isinstance(raw, dict):
            raise RecipeError(f"A recipe is a mapping of sections, got {type(raw).__name__}.")
        for key in raw:
            if key not in cls.SECTIONS:
                raise RecipeError(f"Unknown recipe section {key!r}{_closest(str(key), cls.SECTIONS)}.")
        for name in ("model", "data", "training"):
            if name not in raw:
                raise RecipeError(f"The recipe has no {name}: section.")
        training = dict(raw.get("training") or {})
        if not isinstance(training, dict):
            raise RecipeError("training must be a mapping of Seq2SeqTrainingArguments fields.")
        types = {**_training_argument_types(), **{key: bool for key in TRAINING_EXTRAS}}
        for key in list(training):
            if key not in types:
                new_key, value = RENAMED_TRAINING_KEYS.get(key, (None, None))
                if new_key in types:
                    raise RecipeError(
                        f"training.{key} is no training argument in transformers 5: use training.{new_key}={value}."
                    )
                raise RecipeError(f"Unknown recipe key training.{key}{_closest(key, types)}.")
            if key == "bf16" and training[key] == BF16_AUTO:
                continue  # measured when the arguments are built (xlm_swcm_hf/training/precision.py)
            if key == "bf16" and not isinstance(training[key], bool):
                raise RecipeError(f"training.bf16={training[key]!r} has the wrong type: expected true, false or auto.")
            training[key] = _check_training_value(key, training[key], types[key])
        if not training.get("output_dir"):
            raise RecipeError("training.output_dir is required.")
        patience = raw.get("early_stopping_patience")
        if patience is not None and (not _matches(patience, int) or patience < 1):
            raise RecipeError(f"early_stopping_patience={patience!r} must be a positive integer.")
        tokenizer = raw.get("tokenizer")
        if tokenizer is not None and not isinstance(tokenizer, str):
            raise RecipeError(f"tokenizer={tokenizer!r} must be a folder or Hub name.")
        recipe = cls(
            model=_build_section(ModelRecipe, raw.get("model"), "model"),
            data=_build_section(DataRecipe, raw.get("data"), "data"),
            training=dict(training),
            generation=_build_section(GenerationRecipe, raw.get("generation"), "generation"),
            tokenizer=tokenizer,
            early_stopping_patience=patience,
            peft=_build_section(PeftRecipe, raw["peft"], "peft") if raw.get("peft") is not None else None,
        )
        recipe.check()
        return recipe

    @classmethod
    def from_yaml(cls, paths, overrides: list[str] | None = None) -> Recipe:
        """Read a YAML recipe (or several: later files are merged into earlier ones section by section, like
        `configs/overrides/*.yaml`) and apply `section.key=value` overrides (values parsed as YAML)."""
        paths = [Path(path) for path in (paths if isinstance(paths, (list, tuple)) else [paths])]
        raw: dict = {}
        for path in paths:
            _merge(raw, _read_yaml(path))
        for override in overrides or []:
            key, separator, value = override.partition("=")
            if not separator or not key:
                raise RecipeError(f"Override {override!r} must look like section.key=value.")
            target = raw
            *parents, leaf = key.split(".")
            for parent in parents:
                if not isinstance(target.get(parent, {}), dict):
                    raise RecipeError(f"Override {override!r}: {parent} is not a section.")
                target = target.setdefault(parent, {})
            try:
                target[leaf] = load_yaml(value)
            except yaml.YAMLError as error:
                raise RecipeError(f"Override {override!r}: the value is not valid YAML ({error}).") from None
        try:
            return cls.from_dict(raw)
        except RecipeError as error:
            raise RecipeError(f"{', '.join(map(str, paths))}: {error}") from None

    def check(self) -> None:
        """Cross-section rules (run again after a caller edits the recipe)."""
        if self.peft is not None and self.model.init != "pretrained":
            raise RecipeError(
                "peft needs model.init=pretrained with model.path a trained XLM-SWCM folder or Hub id: an adapter "
                "is saved without its base, which must be loadable again (a fresh from_encoder model has random "
                "normal layers that LoRA would leave frozen)."
            )
        _check_training_numbers(self.training)
        if self.training.get("fp16") and self.training.get("bf16"):
            raise RecipeError("training.fp16 and training.bf16 are both set; choose one.")
        if self.training.get("fp16"):
            import torch

            if not torch.cuda.is_available():
                raise RecipeError(
                    "training.fp16 needs a CUDA GPU and none is available. On CPU use training.bf16=true "
                    "(bfloat16 autocast) or neither."
                )

    def copy(self) -> Recipe:
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        """The recipe as YAML-ready data (tokens and other secrets left out), e.g. for the model card."""
        public = {
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": {k: v for k, v in self.training.items() if "token" not in k},
            "generation": self.generation.settings(),
        }
        if self.tokenizer:
            public["tokenizer"] = self.tokenizer
        if self.early_stopping_patience:
            public["early_stopping_patience"] = self.early_stopping_patience
        if self.peft is not None:
            public["peft"] = dataclasses.asdict(self.peft)
        return public

    def training_arguments(self, **changes):
        """`Seq2SeqTrainingArguments` from the training section, our defaults, and `changes` on top."""
        import torch
        from transformers import Seq2SeqTrainingArguments

        arguments = {**TRAINING_DEFAULTS, **self.training, **changes}
        if arguments.get("bf16") == BF16_AUTO:
            arguments["bf16"] = self.bf16_choice(arguments.get("use_cpu", False)).use_bf16
        for key in TRAINING_EXTRAS:
            arguments.pop(key, None)
        if self.data.task == "denoising":
            arguments.setdefault("remove_unused_columns", False)  # the collator needs the raw text
            arguments["predict_with_generate"] = self.training.get("predict_with_generate", False)
        if not torch.cuda.is_available():
            arguments.setdefault("use_cpu", True)
        if self.early_stopping_patience:
            arguments.setdefault("load_best_model_at_end", True)
            arguments.setdefault("metric_for_best_model", "eval_loss")
            arguments.setdefault("greater_is_better", False)
        try:
            return Seq2SeqTrainingArguments(**arguments)
        except (ValueError, TypeError) as error:
            raise RecipeError(f"training: {error}") from None

    def bf16_choice(self, use_cpu: bool = False):
        """`training.bf16: auto` resolved on the device the Trainer will use, by measurement (once a process)."""
        import torch

        from .training.precision import choose_bf16

        return choose_bf16("cuda" if torch.cuda.is_available() and not use_cpu else "cpu")

    @property
    def uses_bf16(self) -> bool:
        """Whether training runs under bf16 autocast: the recipe's value, or what `auto` measures here."""
        value = self.training.get("bf16", False)
        return self.bf16_choice(self.training.get("use_cpu", False)).use_bf16 if value == BF16_AUTO else bool(value)

    @property
    def output_dir(self) -> Path:
        return Path(self.training["output_dir"])

    @property
    def seed(self) -> int:
        from transformers import TrainingArguments

        return self.training.get("seed", TrainingArguments.seed)
