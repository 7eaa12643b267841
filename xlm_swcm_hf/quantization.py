"""Quantized CPU inference: `quantize_for_cpu(model)` turns a loaded float32 model into an int8 one, in place.

Batch-1 decoding on a CPU is bound by reading the weights (about 1.14 GB per cached step at full size in float32);
int8 weights read a quarter of that. The default method, `"int8"`, is PyTorch's dynamic quantization
(`torch.ao.quantization.quantize_dynamic` with per-output-channel int8 weights): every `nn.Linear` (encoder, decoder
and LM head) becomes `torch.ao.nn.quantized.dynamic.Linear`, whose fbgemm/oneDNN kernels quantize each activation
on the fly and multiply in int8. It was the fastest of the measured candidates (docs/benchmark.md, "Quantized CPU
inference") and needs no package beyond torch. The other methods are torchao's CPU configurations, kept for
comparison (the benchmark measures them) and as the migration path PyTorch names for `torch.ao.quantization`.

    from transformers import AutoModelForSeq2SeqLM
    from xlm_swcm_hf.quantization import quantize_for_cpu

    model = AutoModelForSeq2SeqLM.from_pretrained("out", trust_remote_code=True)
    quantize_for_cpu(model)                      # method="int8"
    model.generate(**batch, num_beams=5)         # greedy, beam search and sampling as before

Works with the package's class and with a folder's remote code (it only swaps `nn.Linear` modules), and with any
other PyTorch model. A quantized model cannot be saved with `save_pretrained` (transformers cannot serialise the
packed int8 weights): save the float model and quantize after loading, which takes a few seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

import torch
from torch import nn

from .checks import InputError


METHODS = {
    "int8": "PyTorch dynamic quantization: int8 weights per output channel, int8 activations per call (fbgemm)",
    "torchao-int8": "torchao Int8DynamicActivationInt8WeightConfig: int8 weights, per-token int8 activations",
    "torchao-int8-weight-only": "torchao Int8WeightOnlyConfig: int8 weights, float activations",
    "torchao-int4-weight-only": (
        "torchao PrototypeInt4WeightOnlyConfig(group_size=128): int4 weights, bfloat16 activations; the model becomes "
        "bfloat16 and layers whose width the kernel cannot pack (the LM head) stay bfloat16"
    ),
}
DEFAULT_METHOD = "int8"
# Set on a quantized model (a plain attribute: not in the state dict or the config).
QUANTIZED_ATTRIBUTE = "quantized_for_cpu"

# PyTorch marks torch.ao.quantization as deprecated (in favour of torchao) but ships it and its kernels; its warnings
# would otherwise print on every quantization. They are documented in docs/benchmark.md instead.
_DEPRECATION_MESSAGES = (r"(?s).*torch\.ao\.quantization is deprecated", r"(?s).*quantized tensor creation functions")


def quantization_method(model: nn.Module) -> str | None:
    """The method `quantize_for_cpu` applied to `model`, or None for a model it has not quantized."""
    return getattr(model, QUANTIZED_ATTRIBUTE, None)


def torchao_available() -> bool:
    return importlib.util.find_spec("torchao") is not None


def available_methods() -> list[str]:
    """The methods this environment can run: `"int8"` wherever torch has `torch.ao.quantization`, the torchao ones
    where torchao is installed."""
    methods = []
    if _torch_dynamic_quantization() is not None:
        methods.append("int8")
    if torchao_available():
        methods += [name for name in METHODS if name.startswith("torchao")]
    return methods


def quantize_for_cpu(model: nn.Module, method: str = DEFAULT_METHOD) -> nn.Module:
    """Quantize every `nn.Linear` of `model` for CPU inference, in place, and return it (in eval mode).

    Args:
        model: a float32 model on the CPU, e.g. from `from_pretrained(folder, trust_remote_code=True)`.
        method: `"int8"` (the default and the fastest measured: PyTorch dynamic quantization with per-channel int8
            weights), or one of torchao's configurations (`"torchao-int8"`, `"torchao-int8-weight-only"`,
            `"torchao-int4-weight-only"`; need `pip install torchao`). See `METHODS`.

    The model afterwards generates as before (greedy, beam search, sampling; also under `torch.inference_mode()`),
    with logits within int8 rounding of the float model's. It is for inference only: `save_pretrained` raises an
    `InputError` (save the float model and quantize after loading); training is not supported. A peft model (LoRA
    adapters on top) is merged first (`merge_and_unload`) and the merged base model is quantized and returned: use
    the return value.
    """
    if method not in METHODS:
        raise InputError(f"Unknown quantization method {method!r}; choose one of {', '.join(METHODS)}.")
    if not isinstance(model, nn.Module):
        raise InputError(f"quantize_for_cpu needs a PyTorch model (nn.Module), got {type(model).__name__}.")
    if type(model).__module__.startswith("peft.") and hasattr(model, "merge_and_unload"):
        # peft's LoRA layers read their own weights' dtype in forward, which quantized layers no longer have: fold
        # the adapters into the base weights and quantize that (the returned model is the merged base model).
        model = model.merge_and_unload()
    elif any(type(module).__module__.startswith("peft.") for module in model.modules()):
        raise InputError(
            "This model holds peft adapter layers; merge them first (model = model.merge_and_unload()), then "
            "quantize the merged model."
        )
    done = quantization_method(model)
    if done is not None:
        raise InputError(
            f"This model is already quantized ({done}); load the float model again to quantize it another way."
        )
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise InputError(
            f"quantize_for_cpu works on CPU models, but this one has weights on {', '.join(sorted(devices))}; "
            "call model.to('cpu') first."
        )
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise InputError("The model has no nn.Linear layers to quantize.")
    dtypes = {module.weight.dtype for module in linears}
    if method != "torchao-int4-weight-only" and dtypes != {torch.float32}:
        raise InputError(
            f"Method {method!r} quantizes float32 weights, but this model's linear layers are "
            f"{', '.join(sorted(map(str, dtypes)))}; load it in float32 (the default) or call model.float() first."
        )

    model.eval()
    _drop_inference_caches(model)
    if method == "int8":
        _quantize_torch_dynamic(model)
    else:
        _quantize_torchao(model, method)
    _drop_inference_caches(model)
    object.__setattr__(model, QUANTIZED_ATTRIBUTE, method)
    # transformers cannot serialise the packed int8 weights (it fails deep inside safetensors); say so up front.
    # An instance attribute, so it also covers a folder's remote-code class and push_to_hub (which calls it).
    object.__setattr__(model, "save_pretrained", functools.partial(_refuse_save, method))
    return model


def _refuse_save(method: str, *args, **kwargs):
    raise InputError(
        f"A model quantized with quantize_for_cpu (method {method!r}) cannot be saved with save_pretrained: "
        "transformers cannot serialise its packed int8 weights. Save the float model and call quantize_for_cpu "
        "after loading it (a few seconds)."
    )


def _drop_inference_caches(model: nn.Module) -> None:
    """Runtime copies the float model keeps for its fast paths (XLM-SWCM's transposed LM head: 415 MB at full
    size) would stay resident and unused after quantization."""
    for module in model.modules():
        module.__dict__.pop("_lm_head_t_cache", None)


def _torch_dynamic_quantization():
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:
        return None
    return quantize_dynamic, per_channel_dynamic_qconfig


def _quantize_torch_dynamic(model: nn.Module) -> None:
    functions = _torch_dynamic_quantization()
    if functions is None:
        raise InputError(
            f"This torch ({torch.__version__}) has no torch.ao.quantization.quantize_dynamic; use "
            "method='torchao-int8' (pip install torchao) instead."
        )
    quantize_dynamic, per_channel_dynamic_qconfig = functions
    if "fbgemm" not in torch.backends.quantized.supported_engines and "x86" not in (
        torch.backends.quantized.supported_engines
    ):
        raise InputError(
            "This torch build has no x86 quantized engine (fbgemm) for method 'int8'; on ARM CPUs use "
            "method='torchao-int8' (pip install torchao)."
        )
    with warnings.catch_warnings():
        for message in _DEPRECATION_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def _quantize_torchao(model: nn.Module, method: str) -> None:
    if not torchao_available():
        raise InputError(f"Method {method!r} needs torchao; pip install torchao (or use method='int8').")
    import logging

    logging.getLogger("torchao").setLevel(logging.ERROR)  # torchao logs its optional CUDA kernels' absence
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    if method == "torchao-int8":
        quantize_(model, Int8DynamicActivationInt8WeightConfig())
    elif method == "torchao-int8-weight-only":
        quantize_(model, Int8WeightOnlyConfig())
    else:
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig

        model.to(torch.bfloat16)
        # The CPU int4 kernel packs output widths that are multiples of 16 (the 135135-word head is not).
        packable = lambda module, name: isinstance(module, nn.Linear) and module.out_features % 16 == 0
        quantize_(model, PrototypeInt4WeightOnlyConfig(group_size=128, set_inductor_config=False), filter_fn=packable)
