"""LoRA adapters with `peft` (the optional `peft` extra): apply one for training, load a saved adapter folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..checks import InputError, load_trained_model, read_json_file
from ..hub import ADAPTER_CONFIG
from ..peft_targets import register_peft_target_modules


# peft before 0.21.2 calls a generation helper that transformers 5.24 removed: beam search and greedy decoding of
# a LoRA model fail with an AttributeError (seen with peft 0.21.0; 0.21.2 works).
MIN_PEFT_VERSION = "0.21.2"


def require_peft():
    try:
        import peft
    except ImportError:
        raise InputError("LoRA adapters need peft, which is not installed; pip install 'xlm-swcm-hf[peft]'.") from None
    from packaging.version import Version

    if Version(peft.__version__) < Version(MIN_PEFT_VERSION):
        raise InputError(
            f"peft {peft.__version__} is too old for this transformers (generation of a LoRA model fails); "
            f"pip install 'peft>={MIN_PEFT_VERSION}'."
        )
    register_peft_target_modules()
    return peft


def apply_lora(model, settings):
    """`peft.get_peft_model` with the recipe's LoRA settings; checks that the target modules exist."""
    peft = require_peft()
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in settings.target_modules if target not in names]
    if missing:
        raise InputError(
            f"peft.target_modules {missing} name no module of the model; its linear layers are e.g. "
            "query, key, value (encoder), q_proj, k_proj, v_proj, out_proj (decoder attention), fc1, fc2."
        )
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_2_SEQ_LM,
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=settings.modules_to_save,
    )
    return peft.get_peft_model(model, config)


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | os.PathLike) -> str:
    config = read_json_file(Path(folder) / ADAPTER_CONFIG, "the adapter's config")
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
        raise InputError(f"{folder}/{ADAPTER_CONFIG} names no base_model_name_or_path.")
    return base


def load_adapter_model(folder: str | os.PathLike, trust_remote_code: bool = False):
    """The base model the adapter names, with the adapter on top and the folder's generation config."""
    from transformers import AutoModelForSeq2SeqLM, GenerationConfig

    peft = require_peft()
    base = load_trained_model(
        adapter_base(folder), "the adapter's base model", AutoModelForSeq2SeqLM, trust_remote_code=trust_remote_code
    )
    model = peft.PeftModel.from_pretrained(base, folder)
    if (Path(folder) / "generation_config.json").is_file():
        model.base_model.model.generation_config = GenerationConfig.from_pretrained(folder)
    return model
