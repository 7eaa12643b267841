"""XLM-SWCM for Hugging Face Transformers.

Importing the package registers the classes with AutoConfig, AutoModel and AutoModelForSeq2SeqLM, and marks them for
`register_for_auto_class`, so `save_pretrained` writes `auto_map` and copies the modeling files: a saved folder then
loads with `trust_remote_code=True` where this package is not installed. Where peft is installed it also gives
peft default LoRA target modules for the model type (`peft_targets`), so `LoraConfig()` without them works as for
BART.
"""

from .checks import report_interrupts_while_starting


report_interrupts_while_starting()  # before the imports below, which take seconds: Ctrl-C there is one error line

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM  # noqa: E402

from .configuration_xlm_swcm import XLMSWCMConfig  # noqa: E402
from .modeling_xlm_swcm import (  # noqa: E402
    XLMSWCMForConditionalGeneration,
    XLMSWCMModel,
    XLMSWCMPreTrainedModel,
    shared_weight_mapping,
)
from .peft_targets import register_peft_target_modules  # noqa: E402


AutoConfig.register(XLMSWCMConfig.model_type, XLMSWCMConfig, exist_ok=True)
AutoModel.register(XLMSWCMConfig, XLMSWCMModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(XLMSWCMConfig, XLMSWCMForConditionalGeneration, exist_ok=True)
XLMSWCMConfig.register_for_auto_class()
XLMSWCMModel.register_for_auto_class("AutoModel")
XLMSWCMForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
register_peft_target_modules()

__version__ = "0.1.0"

__all__ = [
    "XLMSWCMConfig",
    "XLMSWCMPreTrainedModel",
    "XLMSWCMModel",
    "XLMSWCMForConditionalGeneration",
    "shared_weight_mapping",
]
