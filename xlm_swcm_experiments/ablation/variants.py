"""The decoder initialisations the ablation compares (`VARIANTS`) and what each does to a built model or its training.

A variant is a change of the recipe's model section plus, optionally, a change made after `build`: the
cross-attention drawn afresh, the encoder's masked-LM head transform as the output layer, per-group learning rates
for the decoder tensors copied from the encoder, or those tensors frozen for part of the step budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

from xlm_swcm_hf.recipe import Recipe


REFERENCE = "random_emb_head"  # every variant is compared with this one
COPIED_LR_MULTIPLIER = 0.2  # per-group learning rates: copied decoder tensors learn at 0.2 x the variant's rate
FREEZE_FRACTION = 0.2  # freezing: the copied decoder sublayers stay fixed for the first 20% of the step budget

PRE = {"decoder_layer_norm_position": "pre"}
POST = {"decoder_layer_norm_position": "post"}


@dataclass(frozen=True)
class Variant:
    """An initialisation: the recipe's model-section changes plus what is done to the built model or its training.

    `model=None` is transformers' `EncoderDecoderModel` warm start. The other fields are applied after `build`:
    `reinit_cross_attention` draws every custom layer's cross-attention afresh; `mlm_head` replaces the LM head with
    the encoder checkpoint's masked-LM transform (dense, GELU, LayerNorm, decoder tied in value to the embeddings);
    `copied_lr_multiplier` gives the decoder tensors copied from the encoder their own learning rate;
    `freeze_copied_fraction` keeps them fixed for that share of the step budget.
    """

    description: str
    model: dict | None = None
    reinit_cross_attention: bool = False
    mlm_head: bool = False
    copied_lr_multiplier: float | None = None
    freeze_copied_fraction: float | None = None

    @property
    def is_swcm(self) -> bool:
        return self.model is not None and self.model.get("init") == "from_encoder"

    def cross_attention_copied(self) -> bool:
        return self.is_swcm and not self.reinit_cross_attention and self.model.get("init_scheme") != "scaled"


SCALED = {"init": "from_encoder", "lm_head_init": "embeddings", "init_scheme": "scaled", "config": PRE}
VARIANTS = {
    "swcm_pre_random_head": Variant(
        "SWCM as published: pre-LN, fresh LayerNorms, random LM head",
        {"init": "from_encoder", "lm_head_init": "random", "config": PRE},
    ),
    "swcm_pre_emb_head": Variant(
        "SWCM pre-LN, LM head from the word embeddings (the current from_encoder default)",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": PRE},
    ),
    "swcm_pre_scaled_emb_head": Variant(
        "SWCM pre-LN, init_scheme='scaled' (cross-attention random, copied outputs scaled by 1/sqrt(2L), normal "
        "layers start as identity), embedding head",
        SCALED,
    ),
    "swcm_post_emb_head": Variant(
        "SWCM post-LN mirror of the encoder layers (LayerNorms copied), embedding head",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": POST},
    ),
    "swcm_post_random_xattn_emb_head": Variant(
        "SWCM post-LN mirror (LayerNorms copied) with the cross-attention re-initialised at random, embedding head",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": POST},
        reinit_cross_attention=True,
    ),
    "swcm_pre_scaled_group_lr": Variant(
        f"swcm_pre_scaled_emb_head with per-group learning rates: the copied decoder tensors at "
        f"{COPIED_LR_MULTIPLIER} x the rate of the new ones (and of the encoder)",
        SCALED,
        copied_lr_multiplier=COPIED_LR_MULTIPLIER,
    ),
    "swcm_pre_scaled_freeze": Variant(
        f"swcm_pre_scaled_emb_head with the copied decoder sublayers frozen for the first {FREEZE_FRACTION:.0%} of "
        "the step budget",
        SCALED,
        freeze_copied_fraction=FREEZE_FRACTION,
    ),
    "swcm_pre_scaled_mlm_head": Variant(
        "swcm_pre_scaled_emb_head with the encoder's masked-LM head transform (dense, GELU, LayerNorm) before the "
        "embedding-initialised output layer",
        SCALED,
        mlm_head=True,
    ),
    "random_random_head": Variant(
        "random decoder (pre-LN), random LM head: the paper's 'without weight sharing'",
        {"init": "random_decoder", "lm_head_init": "random", "config": PRE},
    ),
    REFERENCE: Variant(
        "random decoder (pre-LN), LM head from the word embeddings: the reference of every comparison",
        {"init": "random_decoder", "lm_head_init": "embeddings", "config": PRE},
    ),
    "encoder_decoder_model": Variant(
        "transformers EncoderDecoderModel warm start (decoder = encoder copy + random cross-attention, tied head): "
        "the outside baseline",
        None,
    ),
}


# ------------------------------------------------------------------------------------------------ building a variant


def build_encoder_decoder_baseline(encoder_dir: str):
    from transformers import AutoConfig, EncoderDecoderModel

    ids = AutoConfig.from_pretrained(encoder_dir)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_dir, encoder_dir)
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = ids.bos_token_id
        config.pad_token_id = ids.pad_token_id
        config.eos_token_id = ids.eos_token_id
    model.config.tie_word_embeddings = True
    model.tie_weights()
    return model


def encoder_mlm_head_state(encoder_dir) -> dict | None:
    """The masked-LM head tensors of an encoder folder (`lm_head.dense/layer_norm/bias`), or None if it has none."""
    folder = Path(encoder_dir)
    state = {}
    for path in sorted(folder.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if "lm_head." in key:
                    state[key.split("lm_head.", 1)[1]] = handle.get_tensor(key)
    if not state:
        for path in sorted(folder.glob("pytorch_model*.bin")):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            state.update({k.split("lm_head.", 1)[1]: v for k, v in loaded.items() if "lm_head." in k})
    needed = ("dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias")
    if not all(name in state for name in needed) or not ("bias" in state or "decoder.bias" in state):
        return None
    return state


def skip_reason(variant: str, recipe: Recipe) -> str | None:
    """Why a variant cannot run with this recipe (None when it can)."""
    spec = VARIANTS[variant]
    if spec.mlm_head and encoder_mlm_head_state(recipe.model.encoder) is None:
        return (
            f"the encoder folder {recipe.model.encoder} has no masked-LM head (lm_head.dense / lm_head.layer_norm): "
            "an embedding model such as multilingual-e5-small ships without one, so there is nothing to copy"
        )
    return None


class MLMHeadTransform(torch.nn.Module):
    """XLM-R's masked-LM head as the decoder's output layer: decoder(LayerNorm(GELU(dense(h))))."""

    def __init__(self, hidden_size: int, vocab_size: int, eps: float):
        super().__init__()
        self.dense = torch.nn.Linear(hidden_size, hidden_size)
        self.layer_norm = torch.nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = torch.nn.Linear(hidden_size, vocab_size)

    @property
    def weight(self):  # the model reads lm_head.weight to pick its inference path
        return self.decoder.weight

    def forward(self, hidden_states):
        return self.decoder(self.layer_norm(torch.nn.functional.gelu(self.dense(hidden_states))))


@torch.no_grad()
def install_mlm_head(model, state: dict) -> None:
    """Replace the LM head with the checkpoint's MLM transform; its output layer starts as the word embeddings."""
    config = model.config
    head = MLMHeadTransform(config.hidden_size, config.vocab_size, config.layer_norm_eps)
    head.dense.weight.copy_(state["dense.weight"])
    head.dense.bias.copy_(state["dense.bias"])
    head.layer_norm.weight.copy_(state["layer_norm.weight"])
    head.layer_norm.bias.copy_(state["layer_norm.bias"])
    head.decoder.weight.copy_(model.model.get_input_embeddings().weight)
    head.decoder.bias.copy_(state.get("bias", state.get("decoder.bias")))
    model.lm_head = head.to(model.lm_head.weight.device)


@torch.no_grad()
def reinitialise_cross_attention(model, seed: int) -> None:
    """Draw every custom layer's cross-attention projections afresh (N(0, initializer_range), bias 0).

    A generator of its own keeps the global random stream (dropout, data order) the same as in other variants.
    """
    from xlm_swcm_hf.modeling_xlm_swcm import XLMSWCMCustomDecoderLayer

    generator = torch.Generator().manual_seed(seed)
    std = model.config.initializer_range
    for layer in model.model.decoder.layers:
        if isinstance(layer, XLMSWCMCustomDecoderLayer):
            attention = layer.encoder_attn
            for projection in (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj):
                weight = torch.randn(projection.weight.shape, generator=generator) * std
                projection.weight.copy_(weight.to(projection.weight.device))
                projection.bias.zero_()


def copied_parameter_names(model, spec: Variant) -> list[str]:
    """Names (in `model.named_parameters()`) of the decoder tensors that start as copies of encoder tensors."""
    from xlm_swcm_hf.modeling_xlm_swcm import shared_weight_mapping

    names = [f"model.{name}" for name in shared_weight_mapping(model.config)]
    if not spec.cross_attention_copied():
        names = [name for name in names if ".encoder_attn." not in name]
    return names


def grouped_optimizer(trainer, model, copied: set[str], multiplier: float):
    """The trainer's own optimizer class and settings, with copied tensors at `multiplier` x the learning rate."""
    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    kwargs = dict(kwargs)
    learning_rate = kwargs.pop("lr", trainer.args.learning_rate)
    decay = set(trainer.get_decay_parameter_names(model))
    groups = []
    for is_copied in (True, False):
        for has_decay in (True, False):
            parameters = [
                parameter
                for name, parameter in model.named_parameters()
                if parameter.requires_grad and (name in copied) == is_copied and (name in decay) == has_decay
            ]
            if parameters:
                groups.append(
                    {
                        "params": parameters,
                        "weight_decay": trainer.args.weight_decay if has_decay else 0.0,
                        "lr": learning_rate * (multiplier if is_copied else 1.0),
                        "name": f"{'copied' if is_copied else 'new'}{'' if has_decay else ' (no decay)'}",
                    }
                )
    return optimizer_cls(groups, lr=learning_rate, **kwargs)


class FreezeParameters(TrainerCallback):
    """Keeps `parameters` fixed (requires_grad off, so the optimizer skips them) until `until_step` steps are done.

    The optimizer is created before `on_train_begin`, so it holds the parameters and updates them once unfrozen.
    """

    def __init__(self, parameters: list, until_step: int):
        self.parameters = list(parameters)
        self.until_step = until_step
        self.frozen = False
        self.unfrozen_at = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.until_step > state.global_step:
            for parameter in self.parameters:
                parameter.requires_grad_(False)
            self.frozen = True

    def on_step_begin(self, args, state, control, **kwargs):
        if self.frozen and state.global_step >= self.until_step:
            for parameter in self.parameters:
                parameter.requires_grad_(True)
            self.frozen = False
            self.unfrozen_at = state.global_step
