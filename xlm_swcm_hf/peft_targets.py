"""peft's default LoRA targets for the `xlm-swcm` model type, registered when the package is imported.

peft picks `target_modules` for a `LoraConfig` without them from `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`
(keyed on `config.model_type`; BART's entry is `["q_proj", "v_proj"]`); it has none for `xlm-swcm`. The entry added
here is the recipe's default (`peft.target_modules`): the attention queries and values of the encoder (XLM-R names)
and of the decoder. Without this package (the Hub's remote code cannot import peft) pass `target_modules` yourself,
e.g. `target_modules="all-linear"` or this list (docs/fine-tuning.md).
"""

import importlib.util


MODEL_TYPE = "xlm-swcm"  # XLMSWCMConfig.model_type (not imported here: this module stays light)
LORA_TARGET_MODULES = ("query", "value", "q_proj", "v_proj")


def register_peft_target_modules() -> bool:
    """Add the `xlm-swcm` entry to peft's LoRA target-module mapping when peft is installed (an entry already
    there, e.g. a newer peft's own, is kept). Returns whether the mapping has an entry now."""
    if importlib.util.find_spec("peft") is None:
        return False
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as mapping

    mapping.setdefault(MODEL_TYPE, list(LORA_TARGET_MODULES))
    return True
