"""Convert the authors' original `xlm-swcm.bin` (a state dict of their `Seq2SeqModel`) into this port's layout.

Nothing is silent: the reference loaded with `strict=False`, which hid missing, renamed and mis-shaped weights. Here an
unexpected key, a missing key or a shape mismatch raises `CheckpointConversionError` naming the keys.
"""

import os
import pickle
import re

import torch
from transformers import AutoConfig, PretrainedConfig

from .checks import InputError, load_tokenizer, looks_like_local_path, require_local_path, require_model_source
from .configuration_xlm_swcm import XLMSWCMConfig
from .files import replacement_refusal
from .hub import RELEASED_MODEL_CARD, load_in_clean_process, save_hub_folder
from .modeling_xlm_swcm import XLMSWCMForConditionalGeneration


class CheckpointConversionError(InputError):
    """The original checkpoint does not fit the configuration; the message says which keys and what to do."""


WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
# Copies of the shared embedding module that the reference stores next to `encoder.embeddings.*`.
EMBEDDING_COPY_PREFIXES = ("embed_layer.", "decoder.embed_layer.")
DROPPED_PREFIXES = ("encoder.pooler.",)

ATTENTION_NAMES = {"self_attention": "self_attn", "cross_attention": "encoder_attn"}
CUSTOM_LAYER_NAMES = {
    "norm1": "self_attn_layer_norm",
    "ffn1.0": "ffn1.fc1",
    "ffn1.2": "ffn1.fc2",
    "norm2": "ffn1_layer_norm",
    "norm3": "encoder_attn_layer_norm",
    "ffn2.0": "ffn2.fc1",
    "ffn2.2": "ffn2.fc2",
    "norm4": "ffn2_layer_norm",
}
NORMAL_LAYER_NAMES = {"norm1": "attn_layer_norm", "ffn.0": "ffn.fc1", "ffn.2": "ffn.fc2", "norm2": "ffn_layer_norm"}
LAYER_KEY = re.compile(r"^decoder\.layers\.(\d+)\.(.+)\.(weight|bias|in_proj_weight|in_proj_bias)$")


def unwrap_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or one under `model_state_dict`/`state_dict`; strip a DataParallel `module.` prefix."""
    if not isinstance(checkpoint, dict):
        raise CheckpointConversionError(f"Expected a state dict (a dict of tensors), got {type(checkpoint).__name__}.")
    for key in WRAPPER_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    state_dict = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointConversionError(f"Checkpoint entry {key!r} is a {type(value).__name__}, not a tensor.")
        state_dict[key[len("module.") :] if key.startswith("module.") else key] = value
    return state_dict


def infer_decoder_layout(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Layer kinds as stored: normal layers have a single `ffn`, custom layers `ffn1` and `ffn2`."""
    kinds = {}
    for key in state_dict:
        match = LAYER_KEY.match(key)
        if match:
            index, name = int(match.group(1)), match.group(2)
            if name.startswith("ffn."):
                kinds[index] = "normal"
            elif name.startswith("ffn1."):
                kinds.setdefault(index, "custom")
    return [kinds.get(index, "unknown") for index in range(max(kinds, default=-1) + 1)]


def _rename_decoder_layer_key(kind: str, name: str, tensor_name: str) -> str | None:
    """Reference parameter name inside decoder layer -> ours (None if it does not belong to this kind of layer)."""
    names = CUSTOM_LAYER_NAMES if kind == "custom" else NORMAL_LAYER_NAMES
    if name in names:
        return f"{names[name]}.{tensor_name}"
    if name in ATTENTION_NAMES and tensor_name in ("in_proj_weight", "in_proj_bias"):
        return f"{ATTENTION_NAMES[name]}.{tensor_name}"  # split into q/k/v later
    attention, _, rest = name.partition(".")
    if attention in ATTENTION_NAMES and rest == "out_proj":
        return f"{ATTENTION_NAMES[attention]}.out_proj.{tensor_name}"
    return None


def convert_original_state_dict(state_dict: dict[str, torch.Tensor], config: XLMSWCMConfig) -> dict[str, torch.Tensor]:
    """Map the reference layout to `XLMSWCMForConditionalGeneration`'s state dict, checking everything."""
    state_dict = unwrap_state_dict(state_dict)
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []

    stored_layout = infer_decoder_layout(state_dict)
    if stored_layout != config.decoder_layout:
        raise CheckpointConversionError(
            f"The checkpoint's decoder layers are {_layout_string(stored_layout)} but the configuration expects "
            f"{_layout_string(config.decoder_layout)} (num_hidden_layers={config.num_hidden_layers}, "
            f"normal_layer_interval={config.normal_layer_interval}). Pass the normal_layer_interval the checkpoint was "
            "trained with, and the encoder config it was built on."
        )

    for key, tensor in state_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        if key.startswith(EMBEDDING_COPY_PREFIXES):
            prefix = next(p for p in EMBEDDING_COPY_PREFIXES if key.startswith(p))
            original = "encoder.embeddings." + key[len(prefix) :]
            if original not in state_dict:
                unexpected.append(key)
            elif not torch.equal(state_dict[original], tensor):
                raise CheckpointConversionError(
                    f"{key} differs from {original}: the reference shares one embedding module, so these copies must "
                    "be identical. The checkpoint is corrupted or was not saved from the reference Seq2SeqModel."
                )
            continue
        if key.startswith("encoder."):
            converted["model." + key] = tensor
            continue
        if key in ("decoder.last_linear.weight", "decoder.last_linear.bias"):
            converted["lm_head." + key.rsplit(".", 1)[1]] = tensor
            continue
        match = LAYER_KEY.match(key)
        renamed = None
        if match:
            index = int(match.group(1))
            renamed = _rename_decoder_layer_key(config.decoder_layout[index], match.group(2), match.group(3))
        if renamed is None:
            unexpected.append(key)
            continue
        prefix = f"model.decoder.layers.{match.group(1)}."
        if renamed.endswith(("in_proj_weight", "in_proj_bias")):
            attention, tensor_kind = renamed.split(".")
            suffix = "weight" if tensor_kind == "in_proj_weight" else "bias"
            if tensor.shape[0] != 3 * config.hidden_size:
                raise CheckpointConversionError(
                    f"{key} has shape {tuple(tensor.shape)}; expected first dimension 3*hidden_size="
                    f"{3 * config.hidden_size}. Check the encoder config (hidden_size)."
                )
            # nn.MultiheadAttention stacks the query, key and value projections in that order.
            for projection, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"{prefix}{attention}.{projection}.{suffix}"] = part.clone()
        else:
            converted[prefix + renamed] = tensor

    _check_against_model_layout(converted, unexpected, config)
    return converted


def _layout_string(layout: list[str]) -> str:
    # A checkpoint's layout may hold kinds the config does not know, so this cannot be hub.layout_string(config).
    return " ".join({"custom": "C", "normal": "N"}.get(kind, "?") for kind in layout) or "(none)"


def _expected_shapes(config: XLMSWCMConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = XLMSWCMForConditionalGeneration(config)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def _check_against_model_layout(converted: dict, unexpected: list[str], config: XLMSWCMConfig) -> None:
    expected = _expected_shapes(config)
    unexpected = sorted(unexpected + [key for key in converted if key not in expected])
    missing = sorted(key for key in expected if key not in converted)
    mismatched = [
        f"{key}: checkpoint {tuple(converted[key].shape)} vs model {tuple(shape)}"
        for key, shape in expected.items()
        if key in converted and converted[key].shape != shape
    ]
    problems = []
    if unexpected:
        problems.append(f"unexpected keys (not part of the reference layout): {_abridge(unexpected)}")
    if missing:
        problems.append(f"missing keys: {_abridge(missing)}")
    if mismatched:
        problems.append(f"shape mismatches: {_abridge(mismatched)}")
    if problems:
        hint = (
            " A vocabulary-size mismatch means the encoder config is not the one the checkpoint was trained with "
            "(XLM-SWCM uses CINO-base-v2's vocabulary)."
            if any("word_embeddings" in m or "lm_head" in m for m in mismatched)
            else ""
        )
        raise CheckpointConversionError(
            "The checkpoint does not match the XLM-SWCM reference layout for this configuration: "
            + "; ".join(problems)
            + "."
            + hint
            + " Fix the checkpoint or the encoder config; nothing was converted."
        )


def _abridge(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def read_original_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load `xlm-swcm.bin` safely (tensors only) and turn unreadable files into a clear error."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for truncated or foreign files
        import zipfile

        # torch's own text advises weights_only=False (running the file's code): not advice for a corrupt file
        if isinstance(error, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            problem = "it holds objects other than tensors, which this converter does not unpickle (no code runs)"
        else:
            problem = "it is truncated, corrupted or not a torch checkpoint"
        raise CheckpointConversionError(
            f"Could not read {path} as a PyTorch state dict: {problem}; download it again ({type(error).__name__})."
        ) from error
    return unwrap_state_dict(checkpoint)


def load_original_checkpoint(
    path: str | os.PathLike,
    encoder_config_or_path: "PretrainedConfig | str | os.PathLike",
    **config_overrides,
) -> XLMSWCMForConditionalGeneration:
    """Build `XLMSWCMForConditionalGeneration` from the original checkpoint and the encoder's config.

    Converted checkpoints use the reference's pre-LN decoder; pass `custom_self_attn_residual=False` to reproduce the
    reference code's custom-layer self-attention literally (its residual is never added).
    """
    if isinstance(encoder_config_or_path, (str, os.PathLike)):
        encoder_config = AutoConfig.from_pretrained(encoder_config_or_path)
    else:
        encoder_config = encoder_config_or_path
    config_overrides.setdefault("decoder_layer_norm_position", "pre")
    if config_overrides["decoder_layer_norm_position"] != "pre":
        raise CheckpointConversionError("Original checkpoints have pre-LN decoders: decoder_layer_norm_position='pre'.")
    state_dict = read_original_checkpoint(path)
    if "normal_layer_interval" not in config_overrides:
        config_overrides["normal_layer_interval"] = _infer_normal_layer_interval(state_dict)
    config = XLMSWCMConfig.from_encoder_config(encoder_config, **config_overrides)
    converted = convert_original_state_dict(state_dict, config)
    model = XLMSWCMForConditionalGeneration(config)
    model.load_state_dict(converted, strict=True)
    return model.eval()


def _infer_normal_layer_interval(state_dict: dict[str, torch.Tensor]) -> int:
    layout = infer_decoder_layout(state_dict)
    if "normal" not in layout:
        return 0
    return layout.index("normal")  # C..C N: the first normal layer follows `interval` custom layers


def verify_converted_folder(folder: str | os.PathLike, model: XLMSWCMForConditionalGeneration) -> None:
    """Reload the folder as a user without this package would (its own remote code, a fresh interpreter) and check
    that it computes what `model` computes."""
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, vocab, (2, 9), generator=generator)
    input_ids[1, 6:] = model.config.pad_token_id
    attention_mask = (input_ids != model.config.pad_token_id).long()
    decoder_input_ids = torch.randint(4, vocab, (2, 5), generator=generator)
    decoder_input_ids[:, 0] = model.config.decoder_start_token_id
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}
    with torch.no_grad():
        expected = model(**inputs).logits
    answer = load_in_clean_process(folder, {"logits_inputs": {key: value.tolist() for key, value in inputs.items()}})
    actual = torch.tensor(answer["logits"], dtype=expected.dtype)
    if not torch.allclose(expected, actual, rtol=1e-5, atol=1e-5):
        raise RuntimeError(
            f"The saved folder does not reproduce the converted model (max |diff| "
            f"{(expected - actual).abs().max().item():.3g}); nothing was written."
        )


def convert_checkpoint_to_folder(
    checkpoint: str | os.PathLike,
    encoder: str | os.PathLike,
    output_dir: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    overwrite: bool = False,
    **config_overrides,
):
    """Original checkpoint -> Hub-ready folder (safetensors, configs, tokenizer, remote code, model card), verified.

    The folder appears only after it has been reloaded with `trust_remote_code=True` and checked.
    """
    output_dir = os.fspath(output_dir)
    inputs = {"checkpoint": checkpoint, "encoder": encoder, "tokenizer": tokenizer}
    if reason := replacement_refusal(output_dir, inputs=inputs):  # never an input, a run or a folder of models
        raise InputError(reason)
    if os.path.exists(output_dir) and not overwrite:
        raise InputError(f"{output_dir} exists; choose another output folder or pass --overwrite.")
    require_local_path(checkpoint, "checkpoint", folder=False)
    require_model_source(encoder, "encoder folder")
    what = "tokenizer (--tokenizer, default the encoder's)"
    tokenizer_object = load_tokenizer(tokenizer or encoder, what=what)  # cheap: before the checkpoint is read
    model = load_original_checkpoint(checkpoint, encoder, **config_overrides)
    if len(tokenizer_object) > model.config.vocab_size:
        raise CheckpointConversionError(
            f"The {what} has {len(tokenizer_object)} tokens but the model only {model.config.vocab_size} rows; "
            "pass the tokenizer the checkpoint was trained with (--tokenizer)."
        )
    card = {
        **RELEASED_MODEL_CARD,
        "description": RELEASED_MODEL_CARD["description"] + f" Source file: "
        f"`{os.path.basename(os.fspath(checkpoint))}`.",
    }
    if not looks_like_local_path(encoder):
        card["base_model"] = os.fspath(encoder)
    save_hub_folder(
        output_dir,
        model,
        tokenizer_object,
        card_fields=card,
        overwrite=overwrite,
        check=lambda folder: verify_converted_folder(folder, model),
        inputs=inputs,
    )
    return model
