"""PyTorch XLM-SWCM: an XLM-RoBERTa encoder with a decoder built from the encoder's own weights (arXiv 2502.10852).

Loadable as Hub remote code on every transformers from 4.46 on (`make compat` checks each release): it imports only
torch, transformers' stable public surface (`PreTrainedModel`, `GenerationMixin`, the cache classes, the output
dataclasses, `XLMRobertaModel` as the encoder), the standard library and the configuration file, and writes its
attention, masks and decoder embedding itself. It compiles (`torch.compile(fullgraph=True)`, static-cache `generate`)
and exports (`torch.export`): no Python branch depends on a tensor's values inside `forward`.
"""

import json
import os
import re

import torch
import transformers
from torch import nn
from transformers import MODEL_MAPPING, AutoConfig, PreTrainedModel, XLMRobertaModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationConfig, GenerationMixin
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils import PushToHubMixin, cached_file, logging

from .configuration_xlm_swcm import XLMR_FAMILY_MODEL_TYPES, XLMSWCMConfig


# ------------------------------------------------------------ compatibility: what differs between transformers releases

MINIMUM_TORCH = (2, 1)  # scaled_dot_product_attention with `scale`
if tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) < MINIMUM_TORCH:
    raise ImportError(f"XLM-SWCM needs torch>=2.1 (found {torch.__version__}): pip install -U torch")

# transformers 5.24 renamed the cache argument and output field `past_key_values` to `cache`; both names are accepted.
CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"

# transformers 4 sizes a static cache by `num_hidden_layers` (the encoder's depth); 5 by the decoder's `decoder_layers`.
# On 4.x the model declares no static cache, so `cache_implementation="static"` gets transformers' own refusal.
STATIC_CACHE_SUPPORTED = int(transformers.__version__.split(".")[0]) >= 5

try:  # transformers 5: initialisers that leave tensors loaded from a checkpoint untouched
    from transformers import initialization as init
except ImportError:  # transformers 4 initialises before loading
    from torch.nn import init


def cached_keys_and_values(layer_cache: Cache, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A cache layer's keys and values: `layers[i].keys` from transformers 4.54 on, `key_cache[i]` before."""
    if hasattr(layer_cache, "layers"):
        return layer_cache.layers[layer_idx].keys, layer_cache.layers[layer_idx].values
    return layer_cache.key_cache[layer_idx], layer_cache.value_cache[layer_idx]


def make_room_for_every_decoder_layer(layer_cache: Cache, num_layers: int) -> None:
    """transformers 4.56's `generate` builds its dynamic cache with `num_hidden_layers` layers (the encoder's depth, not
    the decoder's) and no way to grow: add the missing layers, of the cache's own layer type. A no-op elsewhere."""
    layers = getattr(layer_cache, "layers", None)
    if layers and len(layers) < num_layers and getattr(layer_cache, "layer_class_to_replicate", True) is None:
        layers.extend(type(layers[-1])() for _ in range(num_layers - len(layers)))


def is_tracing() -> bool:
    """Under torch.compile, torch.export or torch.jit tracing: value checks are skipped (they would break the graph)."""
    compiler = getattr(torch, "compiler", None)
    is_compiling = getattr(compiler, "is_compiling", None) or torch._dynamo.is_compiling  # torch.compiler: 2.3 on
    is_exporting = getattr(compiler, "is_exporting", lambda: False)
    return is_compiling() or is_exporting() or torch.jit.is_tracing()


# ---------------------------------------------------------------------------------------------------------- helpers

logger = logging.get_logger(__name__)

# The reference decodes at most 256 target tokens (new tokens after the decoder start token).
DEFAULT_MAX_TARGET_LENGTH = 256

# Per-language output vocabularies ({"ug": [ids...], ...}), beside config.json: a list of ~10^5 ids per language
# would swell the config that every log, checkpoint and `print(model.config)` shows.
OUTPUT_VOCABULARIES_FILE = "output_vocabularies.json"
# A vocabulary's key (a language tag: ug, kk_Arab) also names files (the ONNX export's head.<tag>.onnx): no path
# separators, dots or spaces.
OUTPUT_VOCABULARY_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Head slices kept for language sets (each is rows x hidden floats: 61 MB for 20,000 rows at full size).
OUTPUT_HEAD_SLICES_KEPT = 4


def max_decoder_length(config: XLMSWCMConfig) -> int:
    """Longest sequence the XLM-R position table can embed: positions start at pad_token_id + 1."""
    return config.max_position_embeddings - config.pad_token_id - 1


def check_source_length(config: XLMSWCMConfig, source_length: int) -> None:
    """The encoder embeds 1 to `max_decoder_length` tokens; anything else gets a clear error, not an index error."""
    if source_length == 0 or source_length > max_decoder_length(config):
        raise ValueError(
            f"The source is {source_length} tokens long; the encoder accepts 1 to {max_decoder_length(config)} tokens "
            f"(max_position_embeddings={config.max_position_embeddings}). Truncate the input (tokenizer "
            "truncation/max_length)."
        )


def check_token_ids(token_ids: torch.Tensor | None, vocab_size: int, name: str, ignore_index: int | None = None):
    """A clear error for ids outside [0, vocab_size), instead of an index error (CPU) or a device assert (GPU).

    Reads the tensor's values: call it once per `forward`/`generate` call, never while tracing or per decoding step.
    """
    if token_ids is None or token_ids.numel() == 0:
        return
    if ignore_index is not None:
        token_ids = token_ids.masked_fill(token_ids == ignore_index, 0)
    low, high = torch.aminmax(token_ids)
    if bool((low < 0) | (high >= vocab_size)):
        offending = int(low) if low < 0 else int(high)
        raise ValueError(
            f"{name} contains token id {offending}, outside the vocabulary (vocab_size={vocab_size}: ids 0 to "
            f"{vocab_size - 1}). Check that the tokenizer matches the model."
        )


def check_sources_are_not_empty(config: XLMSWCMConfig, input_ids: torch.Tensor | None, attention_mask) -> None:
    """Refuse a source with no attended token other than <s>, </s> and <pad> (e.g. a tokenized ""): the model would
    attend to nothing (NaN with SDPA) or to markers only. Reads values: once per call, never while tracing."""
    if input_ids is None and attention_mask is None:
        return
    attended = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    if input_ids is not None:
        for special in {config.bos_token_id, config.eos_token_id, config.pad_token_id} - {None}:
            attended = attended & (input_ids != special)
    empty = (~attended.any(dim=-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"Source(s) {empty} of the batch are empty: no attended token besides <s>, </s> and <pad> (an all-zero "
            "attention_mask or an empty text). Remove empty sources before calling the model."
        )


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: prepend the start token, drop the last label, turn -100 into padding."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


def shared_weight_mapping(config: XLMSWCMConfig) -> dict[str, str]:
    """Decoder parameter name -> encoder parameter name for the shared-weights initialisation.

    The k-th custom layer of `config.decoder_layout` (wherever it sits) copies encoder layer k: both its self- and its
    cross-attention start as that layer's self-attention (query, key, value, output dense), both FFNs as its
    intermediate/output dense. With post-LN it also takes the attention-output LayerNorm after each attention and the
    output LayerNorm after each FFN. Names are relative to `XLMSWCMModel` (`decoder.layers.*` <-
    `encoder.encoder.layer.*`).
    """
    linear_sources = {
        "q_proj": "attention.self.query",
        "k_proj": "attention.self.key",
        "v_proj": "attention.self.value",
        "out_proj": "attention.output.dense",
    }
    mapping = {}
    custom_indices = [index for index, kind in enumerate(config.decoder_layout) if kind == "custom"]
    for encoder_index, decoder_index in enumerate(custom_indices):
        source = f"encoder.encoder.layer.{encoder_index}"
        target = f"decoder.layers.{decoder_index}"
        for attention in ("self_attn", "encoder_attn"):
            for projection, encoder_linear in linear_sources.items():
                for tensor in ("weight", "bias"):
                    mapping[f"{target}.{attention}.{projection}.{tensor}"] = f"{source}.{encoder_linear}.{tensor}"
        for ffn in ("ffn1", "ffn2"):
            for tensor in ("weight", "bias"):
                mapping[f"{target}.{ffn}.fc1.{tensor}"] = f"{source}.intermediate.dense.{tensor}"
                mapping[f"{target}.{ffn}.fc2.{tensor}"] = f"{source}.output.dense.{tensor}"
        if config.decoder_layer_norm_position == "post":
            norms = {
                "self_attn_layer_norm": "attention.output.LayerNorm",
                "encoder_attn_layer_norm": "attention.output.LayerNorm",
                "ffn1_layer_norm": "output.LayerNorm",
                "ffn2_layer_norm": "output.LayerNorm",
            }
            for norm, encoder_norm in norms.items():
                for tensor in ("weight", "bias"):
                    mapping[f"{target}.{norm}.{tensor}"] = f"{source}.{encoder_norm}.{tensor}"
    return mapping


# Parts of an encoder checkpoint that XLM-SWCM deliberately leaves out: the pooler and a masked-LM head.
UNUSED_ENCODER_CHECKPOINT_KEYS = [r"(^|\.)pooler\.", r"(^|\.)lm_head\."]


def _load_xlmr_encoder(encoder, **kwargs) -> PreTrainedModel:
    """An XLM-R-family base model (without pooler) from a name, a folder or a loaded model."""
    if isinstance(encoder, (str, os.PathLike)):
        encoder_config = AutoConfig.from_pretrained(encoder, **kwargs)
        if encoder_config.model_type not in XLMR_FAMILY_MODEL_TYPES:
            raise ValueError(
                f"{encoder} is a {encoder_config.model_type!r} model; XLM-SWCM needs an XLM-R-family encoder "
                f"(model_type one of {XLMR_FAMILY_MODEL_TYPES})."
            )
        # The class AutoModel would load, declaring the unused checkpoint keys as expected, so that loading does not
        # log them as UNEXPECTED. Genuinely missing or mismatched encoder weights are still reported.
        base_class = MODEL_MAPPING[type(encoder_config)]
        encoder_class = type(
            base_class.__name__,
            (base_class,),
            {"_keys_to_ignore_on_load_unexpected": UNUSED_ENCODER_CHECKPOINT_KEYS, "__module__": __name__},
        )
        return encoder_class.from_pretrained(encoder, config=encoder_config, add_pooling_layer=False, **kwargs)
    if isinstance(encoder, PreTrainedModel):
        base = getattr(encoder, "roberta", encoder)
        model_type = getattr(base.config, "model_type", None)
        if model_type not in XLMR_FAMILY_MODEL_TYPES or not hasattr(base, "embeddings"):
            raise ValueError(
                f"{type(encoder).__name__} (model_type {model_type!r}) is not an XLM-R-family encoder "
                f"(model_type one of {XLMR_FAMILY_MODEL_TYPES})."
            )
        return base
    raise TypeError(f"`encoder` must be a name, a folder or an XLM-R-family model, got {type(encoder).__name__}.")


# ------------------------------------------------------------------------------------------------------------ masks


def allowed_to_additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean "may attend" mask as the additive mask eager attention adds to its scores."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def never_empty(allowed: torch.Tensor) -> torch.Tensor:
    """Let a query that may attend to nothing (a padding position) attend everywhere: SDPA would return NaN for it, and
    eager attention gives it the same uniform weights. Its output is never used."""
    return allowed | ~allowed.any(dim=-1, keepdim=True)


class DecoderSelfAttentionMask:
    """The decoder self-attention mask for one forward call, built for the key length each cache returns (the cached
    plus new positions of a dynamic cache, the whole buffer of a static one) and kept per length.

    `attention_mask` is the caller's decoder mask: `None`, 2D padding (1 = token) over the cached and new positions, or
    a ready 4D mask (boolean "may attend", or additive as transformers' generation builds for static caches).
    """

    def __init__(self, attention_mask: torch.Tensor | None, cache_position: torch.Tensor, uses_cache: bool):
        self.attention_mask = attention_mask
        self.cache_position = cache_position
        # No cache and no padding: keys are the queries, and SDPA's built-in causal mask (the fastest kernel) applies.
        # Decided from Python facts only, so that it stays a plain bool under torch.export's symbolic shapes.
        self.is_causal = attention_mask is None and not uses_cache
        self.allowed_by_length = {}

    def allowed(self, key_length: int) -> torch.Tensor:
        """(batch or 1, 1, query, key) boolean: which keys each query may attend to."""
        if isinstance(key_length, int) and key_length in self.allowed_by_length:  # symbolic lengths are not kept
            return self.allowed_by_length[key_length]
        mask = self.attention_mask
        if mask is not None and mask.dim() == 4:
            allowed = mask if mask.dtype == torch.bool else mask == 0
        else:
            key_positions = torch.arange(key_length, device=self.cache_position.device)
            allowed = (key_positions[None, :] <= self.cache_position[:, None])[None, None]
            if mask is not None:
                padding = mask[:, :key_length].bool()
                if padding.shape[-1] < key_length:  # a static cache's buffer beyond the positions written so far
                    padding = nn.functional.pad(padding, (0, key_length - padding.shape[-1]), value=False)
                allowed = allowed & padding[:, None, None, :]
        allowed = never_empty(allowed)
        if isinstance(key_length, int):
            self.allowed_by_length[key_length] = allowed
        return allowed


def cross_attention_allowed(encoder_attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, 1, 1, source) boolean from the source padding mask (1 = token), or None when nothing is padded."""
    if encoder_attention_mask is None:
        return None
    if encoder_attention_mask.dim() == 4:
        mask = encoder_attention_mask
        return never_empty(mask if mask.dtype == torch.bool else mask == 0)
    return never_empty(encoder_attention_mask.bool()[:, None, None, :])


# ------------------------------------------------------------------------------------------- output vocabularies


def check_output_vocabularies(vocabularies, vocab_size: int) -> dict[str, list[int]]:
    """{language: sorted distinct ids} from a mapping of language tags to token ids in [0, vocab_size)."""
    if not isinstance(vocabularies, dict):
        raise ValueError(f"Output vocabularies must be a mapping of language tags to token ids, got {vocabularies!r}.")
    checked = {}
    for language, ids in vocabularies.items():
        if not isinstance(language, str) or not OUTPUT_VOCABULARY_KEY.fullmatch(language):
            raise ValueError(
                f"Output vocabulary key {language!r} is not a language tag like ug or kk_Arab (letters, digits, _ and "
                "- only: it also names files, e.g. the ONNX export's head.<tag>.onnx)."
            )
        if isinstance(ids, (str, bytes)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"The output vocabulary of {language!r} must be a list of token ids.")
        ids = sorted(set(ids))
        if not ids or ids[0] < 0 or ids[-1] >= vocab_size:
            raise ValueError(
                f"The output vocabulary of {language!r} must hold token ids in [0, vocab_size={vocab_size}), got "
                f"{'none' if not ids else f'{ids[0]}..{ids[-1]}'}."
            )
        checked[language] = ids
    return checked


def output_languages_per_row(output_languages, known: dict, batch_size: int) -> list[str]:
    """`generate`'s `output_languages` (one tag, or one per source row) as one known tag per row."""
    if not known:
        raise ValueError(
            "output_languages needs the model's output vocabularies, and this model has none: build them with "
            "scripts/build_output_vocabulary.py (or model.set_output_vocabularies)."
        )
    languages = [output_languages] if isinstance(output_languages, str) else list(output_languages)
    if not isinstance(output_languages, str) and len(languages) != batch_size:
        raise ValueError(
            f"output_languages has {len(languages)} tags for a batch of {batch_size} sources: give one tag, or "
            "one per source."
        )
    unknown = sorted({str(tag) for tag in languages if tag not in known})
    if unknown:
        raise ValueError(
            f"output_languages: no output vocabulary for {', '.join(unknown)}; the model has one for "
            f"{', '.join(sorted(known))}."
        )
    return languages if len(languages) == batch_size else languages * batch_size


class OutputRows:
    """The LM-head rows one `generate` call computes: the union of its languages' vocabularies (`ids`, K), the
    head's weight and bias for those rows (taken once, see `XLMSWCMForConditionalGeneration.output_rows`), and, for a
    batch that mixes languages, which of the K rows each source row's language allows (`allowed`, batch x K).

    `logits` returns full-vocabulary logits with every row outside the row's language at the dtype's minimum, so
    transformers' greedy, beam and sampling loops (and their logits processors) run unchanged and pick exactly what
    they would pick among the full vocabulary with the other words masked."""

    def __init__(self, ids, vocab_size, weight=None, bias=None, transposed=False, allowed=None):
        self.ids, self.vocab_size = ids, vocab_size
        self.weight, self.bias, self.transposed, self.allowed = weight, bias, transposed, allowed

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits -> the K rows (the path for a head without a plain weight, e.g. quantized)."""
        return logits.index_select(-1, self.ids)

    def logits(self, hidden_states: torch.Tensor, restricted: torch.Tensor | None = None) -> torch.Tensor:
        if restricted is None:
            if self.transposed:
                flat = hidden_states.reshape(-1, hidden_states.shape[-1])
                product = torch.addmm(self.bias, flat, self.weight) if self.bias is not None else flat @ self.weight
                restricted = product.view(*hidden_states.shape[:-1], -1)
            else:
                restricted = nn.functional.linear(hidden_states, self.weight, self.bias)
        lowest = torch.finfo(restricted.dtype).min
        if self.allowed is not None:
            allowed = self.allowed
            if allowed.shape[0] != restricted.shape[0]:  # beams / returned sequences: transformers repeats each row
                allowed = allowed.repeat_interleave(restricted.shape[0] // allowed.shape[0], dim=0)
            restricted = restricted.masked_fill(
                ~allowed.view(allowed.shape[0], *(1,) * (restricted.dim() - 2), -1), lowest
            )
        full = restricted.new_full((*restricted.shape[:-1], self.vocab_size), lowest)
        return full.scatter(-1, self.ids.expand(restricted.shape), restricted)  # 20x faster than index_copy on CPU


# ---------------------------------------------------------------------------------------------------------- modules


# `torch.nn.Module` spelled out: transformers 5 lets `set_attn_implementation` switch a model whose source has no
# `class ...Attention(nn.Module)` outside its attention interface. This module reads `config._attn_implementation` at
# every call, so switching between "eager" and "sdpa" at any time is safe.
class XLMSWCMAttention(torch.nn.Module):
    """Multi-head attention with separate q/k/v/out projections, so encoder attention weights copy in directly.

    The reference uses `nn.MultiheadAttention` without attention dropout; so does this module. It computes with
    `torch.nn.functional.scaled_dot_product_attention`, or eagerly (`attn_implementation="eager"`, or when attention
    weights are asked for).
    """

    def __init__(self, config: XLMSWCMConfig, layer_idx: int, is_cross_attention: bool):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: "DecoderSelfAttentionMask | torch.Tensor | None" = None,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        query_states = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)

        layer_cache = None
        if cache is not None:
            layer_cache = cache.cross_attention_cache if self.is_cross_attention else cache.self_attention_cache
        if self.is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx):
            # Encoder keys/values were projected at the first step and do not change afterwards.
            key_states, value_states = cached_keys_and_values(layer_cache, self.layer_idx)
        else:
            source_states = key_value_states if self.is_cross_attention else hidden_states
            kv_shape = (*source_states.shape[:-1], -1, self.head_dim)
            key_states = self.k_proj(source_states).view(kv_shape).transpose(1, 2)
            value_states = self.v_proj(source_states).view(kv_shape).transpose(1, 2)
            if layer_cache is not None:
                # transformers 4.x static caches write at `cache_position`; later releases track positions themselves.
                positions = None if self.is_cross_attention else cache_position
                key_states, value_states = layer_cache.update(
                    key_states, value_states, self.layer_idx, {"cache_position": positions}
                )
                if self.is_cross_attention:
                    cache.is_updated[self.layer_idx] = True

        key_length = key_states.shape[-2]
        is_causal, allowed = False, None
        if isinstance(attention_mask, DecoderSelfAttentionMask):
            is_causal = attention_mask.is_causal
            if not is_causal:
                allowed = attention_mask.allowed(key_length)
        else:
            allowed = attention_mask

        if output_attentions or self.config._attn_implementation == "eager":
            scores = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling
            if is_causal:
                positions = torch.arange(key_length, device=scores.device)
                allowed = (positions[None, :] <= positions[:, None])[None, None]
            if allowed is not None:
                scores = scores + allowed_to_additive(allowed, scores.dtype)
            attn_weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query_states.dtype)
            attn_output = torch.matmul(attn_weights, value_states)
        else:
            attn_weights = None
            attn_output = nn.functional.scaled_dot_product_attention(
                query_states, key_states, value_states, attn_mask=allowed, is_causal=is_causal, scale=self.scaling
            )
        attn_output = attn_output.transpose(1, 2).reshape(*input_shape, -1).contiguous()
        return self.out_proj(attn_output), attn_weights


class XLMSWCMFeedForward(nn.Module):
    """Linear -> activation -> Linear, shaped like an XLM-R layer's intermediate/output denses."""

    def __init__(self, config: XLMSWCMConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class XLMSWCMDecoderLayer(nn.Module):
    """What both decoder layer kinds share: a self-attention `self_attn` and a cross-attention `encoder_attn`."""

    def _attention_sublayers(
        self, attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_position, output_attentions
    ):
        """The two attentions as functions of their (normalised) input, for `_sublayer`; each call leaves its
        attention weights in the returned dict, under "self" and "cross"."""
        weights = {"self": None, "cross": None}
        attention_kwargs = dict(cache=cache, cache_position=cache_position, output_attentions=output_attentions)

        def self_attention(states):
            output, weights["self"] = self.self_attn(states, attention_mask=attention_mask, **attention_kwargs)
            return output

        def cross_attention(states):
            output, weights["cross"] = self.encoder_attn(
                states,
                key_value_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
                **attention_kwargs,
            )
            return output

        return self_attention, cross_attention, weights


class XLMSWCMCustomDecoderLayer(XLMSWCMDecoderLayer):
    """Self-attention, FFN, cross-attention, FFN: the layer whose weights start as a copy of an encoder layer.

    `pre`: h = h + sublayer(LN(h)), as the reference. `post`: h = LN(h + sublayer(h)), as XLM-R's own layers.
    Dropout follows every sublayer except the self-attention, as in the reference.
    """

    def __init__(self, config: XLMSWCMConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.decoder_layer_norm_position == "pre"
        self.self_attn_residual = config.custom_self_attn_residual
        self.dropout = config.hidden_dropout_prob
        self.self_attn = XLMSWCMAttention(config, layer_idx, is_cross_attention=False)
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)
        self.ffn1 = XLMSWCMFeedForward(config)
        self.ffn1_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)
        self.encoder_attn = XLMSWCMAttention(config, layer_idx, is_cross_attention=True)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)
        self.ffn2 = XLMSWCMFeedForward(config)
        self.ffn2_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)

    def _sublayer(self, hidden_states, layer_norm, sublayer, apply_dropout=True, add_residual=True):
        output = sublayer(layer_norm(hidden_states) if self.pre_norm else hidden_states)
        if apply_dropout:
            output = nn.functional.dropout(output, p=self.dropout, training=self.training)
        if add_residual:
            output = hidden_states + output
        return output if self.pre_norm else layer_norm(output)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: DecoderSelfAttentionMask,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        self_attention, cross_attention, weights = self._attention_sublayers(
            attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_position, output_attentions
        )
        hidden_states = self._sublayer(
            hidden_states,
            self.self_attn_layer_norm,
            self_attention,
            apply_dropout=False,
            add_residual=self.self_attn_residual,
        )
        hidden_states = self._sublayer(hidden_states, self.ffn1_layer_norm, self.ffn1)
        hidden_states = self._sublayer(hidden_states, self.encoder_attn_layer_norm, cross_attention)
        hidden_states = self._sublayer(hidden_states, self.ffn2_layer_norm, self.ffn2)
        return hidden_states, weights["self"], weights["cross"]


class XLMSWCMNormalDecoderLayer(XLMSWCMDecoderLayer):
    """Randomly initialised self-attention, cross-attention, FFN layer with two LayerNorms.

    `pre` (the reference): x = LN(h); h = x + sublayer(x), with one LayerNorm shared by both attentions, so the
    residual carries the normalised states. `post`: h = LN(h + sublayer(h)) with the same LayerNorms.
    """

    def __init__(self, config: XLMSWCMConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.decoder_layer_norm_position == "pre"
        self.dropout = config.hidden_dropout_prob
        self.self_attn = XLMSWCMAttention(config, layer_idx, is_cross_attention=False)
        self.encoder_attn = XLMSWCMAttention(config, layer_idx, is_cross_attention=True)
        self.attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)
        self.ffn = XLMSWCMFeedForward(config)
        self.ffn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.decoder_layer_norm_eps)

    def _sublayer(self, hidden_states, layer_norm, sublayer):
        if self.pre_norm:
            hidden_states = layer_norm(hidden_states)
        output = nn.functional.dropout(sublayer(hidden_states), p=self.dropout, training=self.training)
        output = hidden_states + output
        return output if self.pre_norm else layer_norm(output)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: DecoderSelfAttentionMask,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        self_attention, cross_attention, weights = self._attention_sublayers(
            attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_position, output_attentions
        )
        hidden_states = self._sublayer(hidden_states, self.attn_layer_norm, self_attention)
        hidden_states = self._sublayer(hidden_states, self.attn_layer_norm, cross_attention)
        hidden_states = self._sublayer(hidden_states, self.ffn_layer_norm, self.ffn)
        return hidden_states, weights["self"], weights["cross"]


DECODER_LAYER_CLASSES = {"custom": XLMSWCMCustomDecoderLayer, "normal": XLMSWCMNormalDecoderLayer}


# ----------------------------------------------------------------------------------------------------------- models


class XLMSWCMPreTrainedModel(PreTrainedModel):
    config_class = XLMSWCMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["XLMRobertaLayer", "XLMSWCMCustomDecoderLayer", "XLMSWCMNormalDecoderLayer"]
    _supports_sdpa = True
    # Compiled generation needs a static cache (see STATIC_CACHE_SUPPORTED); `torch.compile` of forward works anywhere.
    _can_compile_fullgraph = STATIC_CACHE_SUPPORTED
    _supports_static_cache = STATIC_CACHE_SUPPORTED  # transformers < 4.54's flag
    _supports_cache_class = True  # transformers 4.x: the model takes `Cache` objects
    # Set while `generate` runs: it has checked the inputs once, so the decoding steps do not read them again.
    _inputs_checked = False

    @property
    def dummy_inputs(self) -> dict[str, torch.Tensor]:
        """A tiny padded batch with decoder inputs (the decoder never derives them from `input_ids`)."""
        pad, start = self.config.pad_token_id, self.config.decoder_start_token_id
        input_ids = torch.tensor([[0, 6, 10, 4, 2], [0, 8, 12, 2, pad]], device=self.device) % self.config.vocab_size
        return {
            "input_ids": input_ids,
            "attention_mask": input_ids.ne(pad).long(),
            "decoder_input_ids": torch.full((2, 1), start, device=self.device),
        }

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if hasattr(module, "position_ids") and hasattr(module, "token_type_ids"):
            # XLM-R embeddings' non-persistent buffers are not in checkpoints; rebuild them as XLM-R does.
            with torch.no_grad():
                module.position_ids.copy_(torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
                module.token_type_ids.zero_()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As transformers', but the saved `auto_map` also names the base model for `AutoModel`.

        transformers records only the saved class's own auto class; listing `XLMSWCMModel` too lets
        `AutoModel.from_pretrained(folder, trust_remote_code=True)` load any saved XLM-SWCM folder.
        """
        self.config._check_decoder_fields()  # refuse, before writing anything, a config edited into inconsistency
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            self.config.auto_map = {**auto_map, "AutoModel": f"{module}.XLMSWCMModel"}
        return super().save_pretrained(save_directory, *args, **kwargs)


class XLMSWCMDecoder(XLMSWCMPreTrainedModel):
    """The stack of custom and normal layers, behind the encoder's embedding module.

    Args:
        config: the model configuration; `config.decoder_layout` gives the kind of every layer.
        embed_tokens: the encoder's `XLMRobertaEmbeddings` (word + XLM-R positions + LayerNorm), shared with the
            encoder as in the reference. It is held, not registered as a submodule: the encoder owns it, so a
            checkpoint stores it once, under `encoder.embeddings.`. The decoder computes the embedding from its
            parts (`embed`), since the module's own `forward` signature differs between transformers releases.
    """

    def __init__(self, config: XLMSWCMConfig, embed_tokens: nn.Module):
        super().__init__(config)
        self.__dict__["embed_tokens"] = embed_tokens  # bypasses nn.Module registration on purpose (see above)
        self.layers = nn.ModuleList(
            [DECODER_LAYER_CLASSES[kind](config, layer_idx) for layer_idx, kind in enumerate(config.decoder_layout)]
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens.word_embeddings

    def set_input_embeddings(self, value):
        self.embed_tokens.word_embeddings = value

    def embed(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor | None, past_length: "int | torch.Tensor"
    ) -> torch.Tensor:
        """Word + token type 0 + XLM-R positions, LayerNorm, dropout; positions continue after the cache.

        As XLM-R: a token's position is pad_token_id + its rank among the non-pad tokens (+ the cached length), pad
        tokens sit at pad_token_id. Embeddings given directly carry no padding information: positions are sequential.
        """
        embeddings = self.embed_tokens
        padding_idx = self.config.pad_token_id
        if input_ids is not None:
            is_token = input_ids.ne(padding_idx).int()
            position_ids = ((torch.cumsum(is_token, dim=1).type_as(is_token) + past_length) * is_token).long()
            position_ids = position_ids + padding_idx
            inputs_embeds = embeddings.word_embeddings(input_ids)
        else:
            first = padding_idx + 1 + past_length
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + first)[None, :]
        # token type 0 through the module, not its weight: an offloading hook (accelerate's device_map) onloads it
        token_type = embeddings.token_type_embeddings(position_ids.new_zeros(()))
        hidden_states = inputs_embeds + token_type
        hidden_states = hidden_states + embeddings.position_embeddings(position_ids)
        return embeddings.dropout(embeddings.LayerNorm(hidden_states))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        r"""
        `past_key_values` (also accepted as `cache`, transformers 5.24's name): an `EncoderDecoderCache`, dynamic or
        static. `cache_position` (keyword, optional): positions of the new tokens; derived from the cache when absent.
        """
        cache = past_key_values if past_key_values is not None else kwargs.pop("cache", None)
        cache_position = kwargs.pop("cache_position", None)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `decoder_input_ids` and `decoder_inputs_embeds`.")
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            cache = None
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"`past_key_values` must be an EncoderDecoderCache, got {type(cache).__name__}.")
        if cache is not None:
            for layer_cache in (cache.self_attention_cache, cache.cross_attention_cache):
                make_room_for_every_decoder_layer(layer_cache, len(self.layers))

        decoder_inputs = input_ids if input_ids is not None else inputs_embeds
        seq_length = decoder_inputs.shape[1]
        if cache_position is not None:
            past_length = cache_position[0]
        else:
            # An int for a dynamic cache; a tensor for a static one (its fill level lives on the device).
            past_length = cache.self_attention_cache.get_seq_length() if cache is not None else 0
            cache_position = torch.arange(seq_length, device=decoder_inputs.device) + past_length
        if isinstance(past_length, int) and past_length + seq_length > max_decoder_length(self.config):
            raise ValueError(
                f"The decoder input is {past_length + seq_length} tokens long but the shared position table allows at "
                f"most {max_decoder_length(self.config)} (max_position_embeddings="
                f"{self.config.max_position_embeddings}); lower max_new_tokens / the target max_length."
            )
        if input_ids is not None and not (self._inputs_checked or is_tracing()):
            check_token_ids(input_ids, self.embed_tokens.word_embeddings.num_embeddings, "decoder_input_ids")

        hidden_states = self.embed(input_ids, inputs_embeds, past_length)
        self_attention_mask = DecoderSelfAttentionMask(attention_mask, cache_position, uses_cache=cache is not None)
        cross_attention_mask = cross_attention_allowed(encoder_attention_mask)

        all_hidden_states = () if output_hidden_states else None
        all_self_attentions = () if output_attentions else None
        all_cross_attentions = () if output_attentions else None
        for decoder_layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            layer_inputs = (
                hidden_states,
                self_attention_mask,
                encoder_hidden_states,
                cross_attention_mask,
                cache,
                cache_position,
                output_attentions,
            )
            if self.gradient_checkpointing and self.training:
                hidden_states, self_weights, cross_weights = self._gradient_checkpointing_func(
                    decoder_layer.__call__, *layer_inputs
                )
            else:
                hidden_states, self_weights, cross_weights = decoder_layer(*layer_inputs)
            if output_attentions:
                all_self_attentions += (self_weights,)
                all_cross_attentions += (cross_weights,)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_self_attentions,
            cross_attentions=all_cross_attentions,
            **{CACHE_FIELD: cache},
        )
        return output if return_dict else output.to_tuple()


class XLMSWCMModel(XLMSWCMPreTrainedModel):
    """XLM-R encoder + XLM-SWCM decoder. The decoder embeds its input with the encoder's embedding module."""

    def __init__(self, config: XLMSWCMConfig):
        super().__init__(config)
        config._check_decoder_fields()  # a config edited after construction must not build a different model
        self.encoder = XLMRobertaModel(config, add_pooling_layer=False)
        self.decoder = XLMSWCMDecoder(config, self.encoder.embeddings)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.encoder.embeddings.word_embeddings = value

    def get_encoder(self, *args, **kwargs):
        return self.encoder

    def get_decoder(self, *args, **kwargs):
        return self.decoder

    def check_inputs(self, input_ids, attention_mask, inputs_embeds) -> None:
        """The source checks of `forward` and `generate`: its length (shape only, always), its ids and that no source
        is empty (values: once per call, skipped while tracing and during generation's decoding steps)."""
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None:
            return
        check_source_length(self.config, source.shape[1])
        if self._inputs_checked or is_tracing():
            return
        check_token_ids(input_ids, self.get_input_embeddings().num_embeddings, "input_ids")
        check_sources_are_not_empty(self.config, input_ids, attention_mask)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | Seq2SeqModelOutput:
        r"""
        `output_attentions` / `output_hidden_states` return the encoder's and the decoder's attention weights (eager
        attention) / hidden states; `return_dict=False` returns a tuple. `past_key_values` is also accepted as `cache`.
        """
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError("Pass `decoder_input_ids` (or `labels` to the conditional-generation model).")
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        if encoder_outputs is None:
            if input_ids is None and inputs_embeds is None:
                raise ValueError("Pass `input_ids` (or `inputs_embeds` or precomputed `encoder_outputs`).")
            self.check_inputs(input_ids, attention_mask, inputs_embeds)
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
                attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
            )

        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            past_key_values=past_key_values if past_key_values is not None else kwargs.pop("cache", None),
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            cache_position=kwargs.pop("cache_position", None),
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            **{CACHE_FIELD: getattr(decoder_outputs, CACHE_FIELD)},
        )
        return output if return_dict else output.to_tuple()


class XLMSWCMForConditionalGeneration(XLMSWCMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.encoder.embeddings.word_embeddings.weight"}
    _keys_to_ignore_on_load_unexpected = [r"model\.encoder\.pooler\."]

    lm_head_transposed_inference = True
    # The loss is a mean over the micro-batch's label tokens; it does not use Trainer's `num_items_in_batch`. Without
    # this flag Trainer sees `**kwargs` in `forward`, assumes it does, and skips its gradient-accumulation scaling.
    accepts_loss_kwargs = False

    def __init__(self, config: XLMSWCMConfig):
        super().__init__(config)
        self.model = XLMSWCMModel(config)
        # Untied by default, with a bias, as the released model's output layer.
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()
        generation_config = self.generation_config
        if generation_config is not None:
            unset_length = (None, GenerationConfig().max_length)  # transformers 4 fills in its global default, 20
            if generation_config.max_length in unset_length and generation_config.max_new_tokens is None:
                # A default length that an explicit `max_length` / `max_new_tokens` from the caller overrides (as
                # BART checkpoints do): the decoder start token plus at most DEFAULT_MAX_TARGET_LENGTH new tokens,
                # within the position table.
                generation_config.max_length = min(DEFAULT_MAX_TARGET_LENGTH, max_decoder_length(config)) + 1
            if generation_config.suppress_tokens is None:
                # <pad> is never a target (labels hold -100 there), and one generated mid-sequence would be embedded
                # as padding (XLM-R positions skip it) by a full forward but not by cached decoding.
                generation_config.suppress_tokens = [config.pad_token_id]
        # {language tag: token ids} that `generate(output_languages=...)` restricts the head to; saved beside the
        # config (OUTPUT_VOCABULARIES_FILE) and read back by `from_pretrained`.
        self.output_vocabularies: dict[str, list[int]] = {}

    # ------------------------------------------------------------------------------------- output vocabularies

    def set_output_vocabularies(self, vocabularies: dict | None) -> None:
        """Store per-language output vocabularies ({"ug": [ids...], ...}; None or {} removes them). Each should hold
        the special tokens generation may emit (at least </s>): `xlm_swcm_hf.output_vocabulary` builds them so."""
        self.output_vocabularies = check_output_vocabularies(vocabularies or {}, self.config.vocab_size)
        self.__dict__.pop("_output_head_slices", None)

    def output_rows(self, output_languages, batch_size: int) -> OutputRows:
        """The head rows for `output_languages` (one tag, or one per source row): the union of their vocabularies,
        with the head's weight and bias for those rows kept once per language set (taken again after the weights
        change: keyed on their storage and version) and, for a batch mixing languages, the per-row allowed rows."""
        known = self.output_vocabularies
        languages = output_languages_per_row(output_languages, known, batch_size)
        distinct = tuple(sorted(set(languages)))
        head = self.lm_head
        # a float head of any dtype; a quantized one (another module, or a quantized tensor) is not sliced
        plain = isinstance(head, nn.Linear) and type(head.weight) in (torch.Tensor, nn.Parameter)
        # nor one offloaded to disk (accelerate keeps it on the meta device, onloading it only inside the module call)
        plain = plain and not head.weight.is_quantized and head.weight.device.type != "meta"
        weight = head.weight if plain else None
        key = None
        if weight is not None:
            bias = head.bias
            key = (
                (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype, weight.device),
                None if bias is None else (bias.data_ptr(), bias._version),
            )
        slices = self.__dict__.setdefault("_output_head_slices", {})
        cached = slices.get(distinct)
        if cached is None or cached[0] != key:
            device = weight.device if weight is not None else self.device
            if device.type == "meta":  # offloaded: the device accelerate's hook runs the head on
                device = getattr(getattr(head, "_hf_hook", None), "execution_device", None)
                device = torch.device("cpu" if device is None else device)
            ids = torch.tensor(sorted(set().union(*(known[tag] for tag in distinct))), device=device)
            rows = OutputRows(ids, self.config.vocab_size)
            if weight is not None:
                with torch.no_grad():
                    # CPU float32: the transposed layout, as the full head's fast path (see compute_logits)
                    rows.transposed = weight.device.type == "cpu" and weight.dtype == torch.float32
                    sliced = weight.detach().index_select(0, ids)
                    rows.weight = sliced.t().contiguous() if rows.transposed else sliced
                    rows.bias = None if head.bias is None else head.bias.detach().index_select(0, ids)
            slices.pop(distinct, None)
            while len(slices) >= OUTPUT_HEAD_SLICES_KEPT:
                slices.pop(next(iter(slices)))
            cached = slices[distinct] = (key, rows)
        shared = cached[1]
        allowed = None
        if len(distinct) > 1:
            position = {int(token): index for index, token in enumerate(shared.ids.tolist())}
            allowed = torch.zeros(len(languages), len(shared.ids), dtype=torch.bool)
            for tag in distinct:
                columns = torch.tensor([position[token] for token in known[tag]])
                rows_of_tag = torch.tensor([row for row, other in enumerate(languages) if other == tag])
                allowed[rows_of_tag[:, None], columns[None, :]] = True
            allowed = allowed.to(shared.ids.device)
        return OutputRows(shared.ids, shared.vocab_size, shared.weight, shared.bias, shared.transposed, allowed)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As the base class's, plus OUTPUT_VOCABULARIES_FILE when the model has output vocabularies.

        transformers' `push_to_hub=True` uploads the files whose mtimes changed during its own save, and this file is
        written after it; so with output vocabularies the folder is saved first (the file included), then pushed by
        `self.push_to_hub` (transformers' own: it creates the repository, saves the same model with the file into a
        temporary folder and uploads that with the Hub's model card), taking save_pretrained's push options:
        `repo_id` (default: the folder's name, as transformers), `commit_message`, `commit_description`, `private`,
        `token`, `create_pr`, `revision`, `tags` and the saving options push_to_hub shares (`max_shard_size`,
        transformers 4's `safe_serialization`). The main process alone pushes (`is_main_process`)."""
        if not (self.output_vocabularies and kwargs.get("push_to_hub")):
            result = super().save_pretrained(save_directory, *args, **kwargs)
            self._save_output_vocabularies(save_directory, kwargs.get("is_main_process", True))
            return result
        unpushable = sorted(name for name in ("state_dict", "variant", "save_function") if kwargs.get(name) is not None)
        if args or unpushable:
            raise ValueError(
                "save_pretrained(push_to_hub=True) uploads push_to_hub's own save of the model, so it takes the "
                f"options by keyword only and none of {', '.join(unpushable) or 'state_dict, variant'}: save with "
                "them, then upload the folder (scripts/push_to_hub.py)."
            )
        kwargs.pop("push_to_hub")
        code = PushToHubMixin.push_to_hub.__code__  # its parameters differ between transformers releases
        accepted = set(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
        push = {
            name: kwargs.pop(name)
            for name in ("commit_message", "commit_description", "private", "token", "create_pr", "revision", "tags")
            if name in kwargs
        }
        push.update({name: kwargs[name] for name in ("max_shard_size", "safe_serialization") if name in kwargs})
        if "use_temp_dir" in accepted:  # transformers 4: else a folder named like the repository in the working
            push["use_temp_dir"] = True  # directory would be saved into and uploaded
        repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(os.fspath(save_directory))))
        result = super().save_pretrained(save_directory, **kwargs)
        is_main_process = kwargs.get("is_main_process", True)
        self._save_output_vocabularies(save_directory, is_main_process)
        if is_main_process:
            self.push_to_hub(repo_id, **{name: value for name, value in push.items() if name in accepted})
        return result

    def _save_output_vocabularies(self, save_directory, is_main_process: bool) -> None:
        path = os.path.join(save_directory, OUTPUT_VOCABULARIES_FILE)
        if is_main_process:
            if self.output_vocabularies:
                with open(path, "w", encoding="utf-8") as handle:
                    json.dump(self.output_vocabularies, handle, separators=(",", ":"))
                    handle.write("\n")
            elif os.path.isfile(path):
                os.remove(path)  # a stale file from a model saved here before would describe another model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As the base class's, plus the output vocabularies saved beside the config (a local folder or a Hub
        repository, through transformers' own file resolution), when there are any."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if pretrained_model_name_or_path is not None:
            options = {
                name: kwargs[name]
                for name in (
                    "cache_dir",
                    "force_download",
                    "proxies",
                    "token",
                    "revision",
                    "local_files_only",
                    "subfolder",
                )
                if kwargs.get(name) is not None
            }
            path = cached_file(
                pretrained_model_name_or_path,
                OUTPUT_VOCABULARIES_FILE,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **options,
            )
            if path is not None:
                try:
                    with open(path, encoding="utf-8") as handle:
                        model.set_output_vocabularies(json.load(handle))
                except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    # one line naming the file, not a traceback from deep inside the parser
                    raise ValueError(
                        f"{OUTPUT_VOCABULARIES_FILE} of {pretrained_model_name_or_path} cannot be used: {error}; "
                        "rebuild it with scripts/build_output_vocabulary.py --overwrite, or remove it."
                    ) from None
        return loaded

    # ------------------------------------------------------------------------------------------------ LM head

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def _plain_float32_lm_head(self) -> bool:
        """An `nn.Linear` head holding a plain float32 tensor: not a quantized module (`torch.ao` dynamic
        quantization swaps the module) nor a quantized tensor subclass (torchao keeps the module and replaces its
        weight), whose data the transposed copy must not read."""
        head = self.lm_head
        if not isinstance(head, nn.Linear):
            return False
        weight = head.weight
        return (
            type(weight) in (torch.Tensor, nn.Parameter) and weight.dtype == torch.float32 and not weight.is_quantized
        )

    def _use_transposed_lm_head(self, hidden_states: torch.Tensor) -> bool:
        return (
            self.lm_head_transposed_inference
            and not is_tracing()  # the copy is keyed on the weight's address: eager only
            and not torch.is_grad_enabled()
            and self._plain_float32_lm_head()
            and self.lm_head.weight.device.type == "cpu"
            and hidden_states.dtype == torch.float32
            and hidden_states.numel() // hidden_states.shape[-1] <= 64
        )

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The LM head. Inside `generate(output_languages=...)` only the rows of those languages are computed (the
        others come out at the dtype's minimum); otherwise every row (`full_vocabulary_logits`)."""
        rows = getattr(self, "_output_rows_in_use", None)  # an attribute read: dynamo guards on it
        if rows is None:
            return self.full_vocabulary_logits(hidden_states)
        if rows.weight is None:  # a head without a plain weight to slice (quantized): every row, then the mask
            return rows.logits(hidden_states, rows.restrict(self.full_vocabulary_logits(hidden_states)))
        return rows.logits(hidden_states)

    def full_vocabulary_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The LM head over the whole vocabulary; takes the transposed-weight fast path during CPU fp32 inference on
        a few positions and steps aside (plain `lm_head(...)`) for quantized or non-float32 heads."""
        if not self._use_transposed_lm_head(hidden_states):
            if torch.is_grad_enabled() or not self._plain_float32_lm_head():
                # training, or a head quantized or cast since the copy was made: drop the inference copy
                self.__dict__.pop("_lm_head_t_cache", None)
            return self.lm_head(hidden_states)
        weight, bias = self.lm_head.weight, self.lm_head.bias
        key = (weight.data_ptr(), weight._version, tuple(weight.shape))
        cached = self.__dict__.get("_lm_head_t_cache")
        if cached is None or cached[0] != key:
            cached = (key, weight.detach().t().contiguous())
            self.__dict__["_lm_head_t_cache"] = cached  # a plain attribute: never a parameter or buffer
        flat = hidden_states.reshape(-1, hidden_states.shape[-1])
        logits = torch.addmm(bias, flat, cached[1]) if bias is not None else torch.mm(flat, cached[1])
        return logits.view(*hidden_states.shape[:-1], -1)

    # ------------------------------------------------------------------------------------------------ forward

    def get_encoder(self, *args, **kwargs):
        return self.model.encoder

    def get_decoder(self, *args, **kwargs):
        return self.model.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> tuple | Seq2SeqLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target token ids; -100 is ignored by the loss. When `decoder_input_ids` are not given they are the labels
            shifted right behind `config.decoder_start_token_id`.
        logits_to_keep (`int` or `torch.Tensor`, defaults to 0):
            Compute logits only for the last `logits_to_keep` positions (0 = all), or for the given positions.
        past_key_values: also accepted as `cache` (transformers 5.24's name); other keyword arguments from
            `generate` (e.g. `cache_position`) are used when known and ignored otherwise.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            if not (self._inputs_checked or is_tracing()):
                check_token_ids(labels, self.config.vocab_size, "labels", ignore_index=-100)
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )

        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            past_key_values=past_key_values if past_key_values is not None else kwargs.pop("cache", None),
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            cache_position=kwargs.pop("cache_position", None),
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:, :] if logits_to_keep else hidden_states
        else:
            hidden_states = hidden_states[:, logits_to_keep, :]
        logits = self.compute_logits(hidden_states)

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), labels.to(logits.device).view(-1), ignore_index=-100
            )

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
        )
        return output if return_dict else output.to_tuple()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor):
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    # --------------------------------------------------------------------------------------------- generation

    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, output_languages=None, **kwargs):
        """`GenerationMixin.generate`, after checking once, before any work, what `forward` would otherwise check at
        every step: the source (length, ids, not empty), the decoder prompt's ids, and a target length that the
        shared position table can embed. A length the caller gives beats a length stored as the model's default.

        output_languages (`str` or `list[str]`, *optional*):
            Decode only words of these target languages: one tag (e.g. `"ug"`) for the whole batch or one per source
            row, each a key of `model.output_vocabularies` (an unknown tag is refused, naming the known ones). The
            head then multiplies by the union of those languages' rows only, and each row picks among its own
            language's words: exactly what full-vocabulary generation picks with every other word masked, for
            greedy, beam search and sampling alike. Omitted: the whole vocabulary, as before."""
        if kwargs.get("encoder_outputs") is None:
            source = inputs if inputs is not None else kwargs.get("input_ids", kwargs.get("inputs_embeds"))
            if source is not None and not source.is_floating_point():
                self.model.check_inputs(source, kwargs.get("attention_mask"), None)
            elif source is not None:
                self.model.check_inputs(None, kwargs.get("attention_mask"), source)
        decoder_input_ids = kwargs.get("decoder_input_ids")
        check_token_ids(decoder_input_ids, self.get_input_embeddings().num_embeddings, "decoder_input_ids")
        kwargs = self._caller_lengths_first(generation_config, kwargs)
        prompt_length = 1 if decoder_input_ids is None else decoder_input_ids.shape[1]
        self._check_target_length(generation_config, kwargs, prompt_length)

        rows = None
        if output_languages is not None:
            if kwargs.get("encoder_outputs") is not None:
                batch_size = kwargs["encoder_outputs"][0].shape[0]
            else:
                source = inputs if inputs is not None else kwargs.get("input_ids", kwargs.get("inputs_embeds"))
                batch_size = source.shape[0] if source is not None else 1
            rows = self.output_rows(output_languages, batch_size)

        checked = (self, self.model, self.model.decoder)
        for module in checked:
            module._inputs_checked = True
        if rows is not None:
            self.__dict__["_output_rows_in_use"] = rows
        try:
            return super().generate(inputs, generation_config, **kwargs)
        finally:
            self.__dict__.pop("_output_rows_in_use", None)
            for module in checked:
                module.__dict__.pop("_inputs_checked", None)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        """transformers' preparation, plus the source padding mask where a release drops it (4.49 passes only the
        decoder's mask on, so cross-attention would attend to the source's padding)."""
        model_inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        if model_inputs.get("attention_mask") is None and kwargs.get("attention_mask") is not None:
            model_inputs["attention_mask"] = kwargs["attention_mask"]
        return model_inputs

    def _caller_lengths_first(self, generation_config, kwargs: dict) -> dict:
        """transformers lets `max_new_tokens` win over `max_length` wherever each comes from, so a `max_new_tokens`
        stored in the model's generation config (older saved folders) would override `generate(max_length=...)` and
        `Seq2SeqTrainingArguments.generation_max_length`. A caller's `max_length` (argument or passed config) without a
        `max_new_tokens` drops the model's default `max_new_tokens`, and the other way round."""
        given = {
            name: kwargs.get(name) if kwargs.get(name) is not None else getattr(generation_config, name, None)
            for name in ("max_length", "max_new_tokens")
        }
        if given["max_length"] is not None and given["max_new_tokens"] is None:
            return {**kwargs, "max_new_tokens": None}
        if given["max_new_tokens"] is not None and given["max_length"] is None:
            return {**kwargs, "max_length": None}  # the model's default length: no "both are set" warning
        return kwargs

    def _check_target_length(self, generation_config, kwargs: dict, prompt_length: int) -> None:
        """Refuse, before decoding starts, a length the position table cannot embed."""

        def setting(name):
            if name in kwargs:
                return kwargs[name]
            if generation_config is not None and getattr(generation_config, name, None) is not None:
                return getattr(generation_config, name)
            return getattr(self.generation_config, name, None)

        max_new_tokens, max_length = setting("max_new_tokens"), setting("max_length")
        if max_new_tokens is not None:
            length, requested = (
                prompt_length + max_new_tokens,
                (f"max_new_tokens={max_new_tokens} after {prompt_length} decoder input token(s)"),
            )
        elif max_length is not None:
            length, requested = max_length, f"max_length={max_length}"
        else:
            return
        limit = max_decoder_length(self.config)
        # The last generated token is never fed back, so decoding embeds at most length - 1 target positions.
        if length - 1 > limit:
            raise ValueError(
                f"Generation asks for up to {length} target tokens ({requested}), but the shared position table "
                f"(max_position_embeddings={self.config.max_position_embeddings}) embeds at most {limit} decoder "
                f"positions: the maximum is max_length={limit + 1}, i.e. max_new_tokens={limit + 1 - prompt_length} "
                "here."
            )

    # --------------------------------------------------------------------------------- shared-weights initialisation

    @classmethod
    def from_encoder(
        cls,
        encoder: "str | os.PathLike | PreTrainedModel",
        normal_layer_interval: int | None = None,
        lm_head_init: str = "embeddings",
        share_weights: bool = True,
        init_scheme: str = "copy",
        encoder_kwargs: dict | None = None,
        **config_overrides,
    ) -> "XLMSWCMForConditionalGeneration":
        """Build XLM-SWCM around an XLM-R-family encoder with the shared-weights initialisation.

        Args:
            encoder: a Hub name, a local folder, or a loaded XLM-R-family model (`XLMRobertaModel`, or a model
                with a `.roberta` base such as `XLMRobertaForMaskedLM`). The encoder weights are loaded unchanged; a
                pooler or masked-LM head in the checkpoint is deliberately left out.
            normal_layer_interval: one randomly initialised normal layer after every this many custom layers (3 when
                neither it nor `decoder_layout` is given).
            lm_head_init: `"embeddings"` (a copy of the word embeddings, bias zero; the default, because it trains
                clearly better than a random head in our ablation, docs/ablation.md) or `"random"` (the reference).
                For a head tied to the embeddings pass `tie_word_embeddings=True`.
            share_weights: False keeps the whole decoder random (the paper's "without weight sharing" ablation).
            init_scheme: `"copy"` (the paper: both attentions of custom layer i from encoder layer i's
                self-attention, both FFNs from its FFN) or `"scaled"` (pre-LN only; an option from our ablation):
                copy self-attention and FFNs, start the cross-attention random, scale every copied residual-branch
                output projection by 1/sqrt(2 * decoder layers) and zero the normal layers' output projections, so
                that the copied post-LN sublayers do not blow up the pre-LN residual stream at initialisation.
            encoder_kwargs: extra keyword arguments for `from_pretrained` when `encoder` is a name or folder.
            config_overrides: any `XLMSWCMConfig` field (e.g. `decoder_layer_norm_position="post"`, or an explicit
                `decoder_layout`: custom layer i, wherever it sits, starts from encoder layer i).
        """
        if lm_head_init not in ("random", "embeddings"):
            raise ValueError(f"lm_head_init={lm_head_init!r} is invalid; allowed: 'random', 'embeddings'.")
        if init_scheme not in ("copy", "scaled"):
            raise ValueError(f"init_scheme={init_scheme!r} is invalid; allowed: 'copy', 'scaled'.")
        if init_scheme == "scaled" and config_overrides.get("decoder_layer_norm_position", "pre") != "pre":
            raise ValueError("init_scheme='scaled' is for pre-LN decoders (decoder_layer_norm_position='pre').")
        encoder_model = _load_xlmr_encoder(encoder, **(encoder_kwargs or {}))
        config = XLMSWCMConfig.from_encoder_config(
            encoder_model.config, normal_layer_interval=normal_layer_interval, **config_overrides
        )
        model = cls(config)
        encoder_state = {k: v for k, v in encoder_model.state_dict().items() if not k.startswith("pooler.")}
        model.model.encoder.load_state_dict(encoder_state, strict=True)

        if share_weights:
            copied = model.copy_encoder_weights_into_decoder()
            if init_scheme == "scaled":
                model.rescale_copied_decoder()
            logger.info(
                f"Shared-weights init: copied {len(copied)} decoder tensors from the encoder into "
                f"{config.decoder_layout.count('custom')} custom layers; "
                f"{config.decoder_layout.count('normal')} normal layers start random."
            )
        if lm_head_init == "embeddings" and not config.tie_word_embeddings:
            with torch.no_grad():
                model.lm_head.weight.copy_(model.model.get_input_embeddings().weight)
                model.lm_head.bias.zero_()
        return model

    @torch.no_grad()
    def copy_encoder_weights_into_decoder(self) -> dict[str, str]:
        """Apply `shared_weight_mapping`: copy (not share) every mapped encoder tensor. Returns the mapping used."""
        mapping = shared_weight_mapping(self.config)
        parameters = dict(self.model.named_parameters())
        for target, source in mapping.items():
            parameters[target].copy_(parameters[source])
        return mapping

    @torch.no_grad()
    def rescale_copied_decoder(self) -> None:
        """The `"scaled"` shared-weights scheme, applied after the copy (see `from_encoder`)."""
        scale = (2 * self.config.decoder_layers) ** -0.5
        for layer in self.model.decoder.layers:
            if isinstance(layer, XLMSWCMCustomDecoderLayer):
                for projection in (
                    layer.encoder_attn.q_proj,
                    layer.encoder_attn.k_proj,
                    layer.encoder_attn.v_proj,
                    layer.encoder_attn.out_proj,
                ):
                    projection.weight.normal_(0.0, self.config.initializer_range)
                    projection.bias.zero_()
                for output in (layer.self_attn.out_proj, layer.ffn1.fc2, layer.encoder_attn.out_proj, layer.ffn2.fc2):
                    output.weight.mul_(scale)
                    output.bias.mul_(scale)
            else:
                for output in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.ffn.fc2):
                    output.weight.zero_()
                    output.bias.zero_()


__all__ = [
    "XLMSWCMPreTrainedModel",
    "XLMSWCMModel",
    "XLMSWCMForConditionalGeneration",
    "shared_weight_mapping",
]
