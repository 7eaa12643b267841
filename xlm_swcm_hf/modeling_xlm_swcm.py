"""PyTorch XLM-SWCM: an XLM-RoBERTa encoder with a decoder built from the encoder's own weights (arXiv 2502.10852).

Loadable as Hub remote code: imports only torch, transformers, the standard library and the configuration file.
"""

import os
from collections.abc import Callable

import torch
from torch import nn

from transformers import AutoConfig, AutoModel, XLMRobertaModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions, Seq2SeqLMOutput
from transformers.modeling_outputs import Seq2SeqModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaEmbeddings
from transformers.utils import logging

from .configuration_xlm_swcm import XLMR_FAMILY_MODEL_TYPES, XLMSWCMConfig


logger = logging.get_logger(__name__)

# The reference decodes at most 256 target tokens.
DEFAULT_MAX_TARGET_LENGTH = 256


def max_decoder_length(config: XLMSWCMConfig) -> int:
    """Longest sequence the XLM-R position table can embed: positions start at pad_token_id + 1."""
    return config.max_position_embeddings - config.pad_token_id - 1


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: prepend the start token, drop the last label, turn -100 into padding."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class XLMSWCMAttention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections, so encoder attention weights copy in directly.

    The reference uses `nn.MultiheadAttention` without attention dropout; so does this module.
    """

    def __init__(self, config: XLMSWCMConfig, layer_idx: int, is_cross_attention: bool):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.is_causal = not is_cross_attention
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
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        query_states = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)

        layer_cache = None
        if cache is not None:
            layer_cache = cache.cross_attention_cache if self.is_cross_attention else cache.self_attention_cache

        if self.is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx):
            # Encoder keys/values were projected at the first step and do not change afterwards.
            key_states = layer_cache.layers[self.layer_idx].keys
            value_states = layer_cache.layers[self.layer_idx].values
        else:
            source_states = key_value_states if self.is_cross_attention else hidden_states
            kv_shape = (*source_states.shape[:-1], -1, self.head_dim)
            key_states = self.k_proj(source_states).view(kv_shape).transpose(1, 2)
            value_states = self.v_proj(source_states).view(kv_shape).transpose(1, 2)
            if layer_cache is not None:
                key_states, value_states = layer_cache.update(key_states, value_states, self.layer_idx)
                if self.is_cross_attention:
                    cache.is_updated[self.layer_idx] = True

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = self.out_proj(attn_output.reshape(*input_shape, -1).contiguous())
        return attn_output, attn_weights


class XLMSWCMFeedForward(nn.Module):
    """Linear -> activation -> Linear, shaped like an XLM-R layer's intermediate/output denses."""

    def __init__(self, config: XLMSWCMConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class XLMSWCMCustomDecoderLayer(GradientCheckpointingLayer):
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
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        hidden_states = self._sublayer(
            hidden_states,
            self.self_attn_layer_norm,
            lambda states: self.self_attn(states, attention_mask=attention_mask, cache=cache, **kwargs)[0],
            apply_dropout=False,
            add_residual=self.self_attn_residual,
        )
        hidden_states = self._sublayer(hidden_states, self.ffn1_layer_norm, self.ffn1)
        hidden_states = self._sublayer(
            hidden_states,
            self.encoder_attn_layer_norm,
            lambda states: self.encoder_attn(
                states, key_value_states=encoder_hidden_states, attention_mask=encoder_attention_mask, cache=cache
            )[0],
        )
        hidden_states = self._sublayer(hidden_states, self.ffn2_layer_norm, self.ffn2)
        return hidden_states


class XLMSWCMNormalDecoderLayer(GradientCheckpointingLayer):
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
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        hidden_states = self._sublayer(
            hidden_states,
            self.attn_layer_norm,
            lambda states: self.self_attn(states, attention_mask=attention_mask, cache=cache, **kwargs)[0],
        )
        hidden_states = self._sublayer(
            hidden_states,
            self.attn_layer_norm,
            lambda states: self.encoder_attn(
                states, key_value_states=encoder_hidden_states, attention_mask=encoder_attention_mask, cache=cache
            )[0],
        )
        hidden_states = self._sublayer(hidden_states, self.ffn_layer_norm, self.ffn)
        return hidden_states


DECODER_LAYER_CLASSES = {"custom": XLMSWCMCustomDecoderLayer, "normal": XLMSWCMNormalDecoderLayer}


class XLMSWCMPreTrainedModel(PreTrainedModel):
    config: XLMSWCMConfig
    config_class = XLMSWCMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["XLMRobertaLayer", "XLMSWCMCustomDecoderLayer", "XLMSWCMNormalDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _can_compile_fullgraph = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, XLMRobertaEmbeddings):
            # Non-persistent buffers are not in checkpoints; rebuild them as XLM-R does.
            with torch.no_grad():
                module.position_ids.copy_(torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
                module.token_type_ids.zero_()


class XLMSWCMDecoder(nn.Module):
    """The stack of custom and normal layers. Takes already embedded inputs: the embedding is the encoder's."""

    def __init__(self, config: XLMSWCMConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(
            [DECODER_LAYER_CLASSES[kind](config, layer_idx) for layer_idx, kind in enumerate(config.decoder_layout)]
        )

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        batch_size, seq_length = inputs_embeds.shape[:2]
        self_attn_cache = cache.self_attention_cache if cache is not None else None
        if attention_mask is None:
            cache_length = cache.get_seq_length() if cache is not None else 0
            attention_mask = torch.ones(batch_size, cache_length + seq_length, device=inputs_embeds.device)
        causal_mask = create_causal_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=self_attn_cache
        )
        encoder_attention_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )

        hidden_states = inputs_embeds
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(
                hidden_states,
                causal_mask,
                encoder_hidden_states,  # positional, for gradient checkpointing
                encoder_attention_mask=encoder_attention_mask,
                cache=cache,
                **kwargs,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, cache=cache, hidden_states=all_hidden_states
        )


class XLMSWCMModel(XLMSWCMPreTrainedModel):
    """XLM-R encoder + XLM-SWCM decoder. The decoder embeds its input with the encoder's embedding module."""

    def __init__(self, config: XLMSWCMConfig):
        super().__init__(config)
        self.encoder = XLMRobertaModel(config, add_pooling_layer=False)
        self.decoder = XLMSWCMDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.encoder.embeddings.word_embeddings = value

    def embed_decoder_inputs(
        self,
        decoder_input_ids: torch.LongTensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
        cache_length: int,
    ) -> torch.Tensor:
        """Word + XLM-R positions + LayerNorm with the shared module; positions continue after the cache."""
        embeddings = self.encoder.embeddings
        decoder_inputs = decoder_input_ids if decoder_input_ids is not None else decoder_inputs_embeds
        target_length = cache_length + decoder_inputs.shape[1]
        if target_length > max_decoder_length(self.config):
            raise ValueError(
                f"The decoder input is {target_length} tokens long but the shared position table allows at most "
                f"{max_decoder_length(self.config)} (max_position_embeddings={self.config.max_position_embeddings}); "
                "lower max_new_tokens / the target max_length."
            )
        if decoder_input_ids is not None:
            return embeddings(input_ids=decoder_input_ids, cache_length=cache_length)
        # Embeddings given directly carry no padding information: positions are sequential after the cache.
        batch_size, seq_length = decoder_inputs_embeds.shape[:2]
        first_position = embeddings.padding_idx + 1 + cache_length
        position_ids = torch.arange(first_position, first_position + seq_length, device=decoder_inputs_embeds.device)
        return embeddings(inputs_embeds=decoder_inputs_embeds, position_ids=position_ids.expand(batch_size, -1))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        if "past_key_values" in kwargs:  # the pre-5.x name of `cache`
            cache = kwargs.pop("past_key_values")
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError("Pass `decoder_input_ids` (or `labels` to the conditional-generation model).")
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        output_hidden_states = bool(output_hidden_states if output_hidden_states is not None else False)

        if encoder_outputs is None:
            if input_ids is None and inputs_embeds is None:
                raise ValueError("Pass `input_ids` (or `inputs_embeds` or precomputed `encoder_outputs`).")
            source_length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            if source_length == 0 or source_length > max_decoder_length(self.config):
                raise ValueError(
                    f"The source is {source_length} tokens long; the encoder accepts 1 to "
                    f"{max_decoder_length(self.config)} tokens (max_position_embeddings="
                    f"{self.config.max_position_embeddings}). Truncate the input (tokenizer truncation/max_length)."
                )
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
            )

        if use_cache and cache is None:
            decoder_config = self.config.get_text_config(decoder=True)
            cache = EncoderDecoderCache(DynamicCache(config=decoder_config), DynamicCache(config=decoder_config))
        if not use_cache:
            cache = None
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"`cache` must be an EncoderDecoderCache, got {type(cache).__name__}.")
        cache_length = cache.get_seq_length() if cache is not None else 0

        decoder_embeds = self.embed_decoder_inputs(decoder_input_ids, decoder_inputs_embeds, cache_length)
        decoder_outputs = self.decoder(
            inputs_embeds=decoder_embeds,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            attention_mask=decoder_attention_mask,
            encoder_attention_mask=attention_mask,
            cache=cache,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


def shared_weight_mapping(config: XLMSWCMConfig) -> dict[str, str]:
    """Decoder parameter name -> encoder parameter name for the shared-weights initialisation.

    Custom layer k takes both its self- and its cross-attention from encoder layer k's self-attention (query, key,
    value, output dense) and both FFNs from encoder layer k's intermediate/output dense. With post-LN it also takes
    the attention-output LayerNorm after each attention and the output LayerNorm after each FFN. Names are relative
    to `XLMSWCMModel` (`decoder.layers.*` <- `encoder.encoder.layer.*`).
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


class XLMSWCMForConditionalGeneration(XLMSWCMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.encoder.embeddings.word_embeddings.weight"}
    _keys_to_ignore_on_load_unexpected = [r"model\.encoder\.pooler\."]

    def __init__(self, config: XLMSWCMConfig):
        super().__init__(config)
        self.model = XLMSWCMModel(config)
        # Untied by default, with a bias, as the released model's output layer.
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()
        if self.generation_config is not None and self.generation_config.max_new_tokens is None:
            self.generation_config.max_new_tokens = min(DEFAULT_MAX_TARGET_LENGTH, max_decoder_length(config))

    # Inference fast path (see docs/benchmark.md): for fp32 on CPU without autograd, the LM head multiplies by a
    # pre-transposed, contiguous runtime copy of its weight (torch.addmm). MKL's matrix-vector product is ~1.6x faster
    # in that layout for the (vocab, hidden) head at batch 1. Costs one extra copy of the head weight in memory; the
    # parameter and the state dict are unchanged. Logits agree with `lm_head(...)` to float rounding (~1e-6 relative).
    lm_head_transposed_inference = True

    def get_output_embeddings(self):
        return self.lm_head

    def _use_transposed_lm_head(self, hidden_states: torch.Tensor) -> bool:
        weight = self.lm_head.weight
        return (
            self.lm_head_transposed_inference
            and not torch.is_grad_enabled()
            and isinstance(self.lm_head, nn.Linear)
            and weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and hidden_states.dtype == torch.float32
            and hidden_states.numel() // hidden_states.shape[-1] <= 64
        )

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The LM head; takes the transposed-weight fast path during CPU fp32 inference on a few positions."""
        if not self._use_transposed_lm_head(hidden_states):
            if torch.is_grad_enabled():  # training: drop the inference copy
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

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target token ids; -100 is ignored by the loss. When `decoder_input_ids` are not given they are the labels
            shifted right behind `config.decoder_start_token_id`.
        logits_to_keep (`int` or `torch.Tensor`, defaults to 0):
            Compute logits only for the last `logits_to_keep` positions (0 = all); `generate` uses 1.
        """
        if labels is not None:
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
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.compute_logits(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), labels.to(logits.device).view(-1), ignore_index=-100
            )

        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
        )

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor):
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @classmethod
    def from_encoder(
        cls,
        encoder: "str | os.PathLike | PreTrainedModel",
        normal_layer_interval: int = 3,
        lm_head_init: str = "embeddings",
        share_weights: bool = True,
        init_scheme: str = "copy",
        encoder_kwargs: dict | None = None,
        **config_overrides,
    ) -> "XLMSWCMForConditionalGeneration":
        """Build XLM-SWCM around an XLM-R-family encoder with the shared-weights initialisation.

        Args:
            encoder: a Hub name, a local folder, or a loaded XLM-R-family model (`XLMRobertaModel`, or a model
                with a `.roberta` base such as `XLMRobertaForMaskedLM`). The encoder weights are loaded unchanged.
            normal_layer_interval: one randomly initialised normal layer after every this many custom layers.
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
            config_overrides: any `XLMSWCMConfig` field (e.g. `decoder_layer_norm_position="post"`).
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
                for projection in (layer.encoder_attn.q_proj, layer.encoder_attn.k_proj, layer.encoder_attn.v_proj,
                                   layer.encoder_attn.out_proj):
                    projection.weight.normal_(0.0, self.config.initializer_range)
                    projection.bias.zero_()
                for output in (layer.self_attn.out_proj, layer.ffn1.fc2, layer.encoder_attn.out_proj, layer.ffn2.fc2):
                    output.weight.mul_(scale)
                    output.bias.mul_(scale)
            else:
                for output in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.ffn.fc2):
                    output.weight.zero_()
                    output.bias.zero_()


def _load_xlmr_encoder(encoder, **kwargs) -> PreTrainedModel:
    if isinstance(encoder, (str, os.PathLike)):
        encoder_config = AutoConfig.from_pretrained(encoder, **kwargs)
        if encoder_config.model_type not in XLMR_FAMILY_MODEL_TYPES:
            raise ValueError(
                f"{encoder} is a {encoder_config.model_type!r} model; XLM-SWCM needs an XLM-R-family encoder "
                f"(model_type one of {XLMR_FAMILY_MODEL_TYPES})."
            )
        return AutoModel.from_pretrained(encoder, add_pooling_layer=False, **kwargs)
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


__all__ = [
    "XLMSWCMPreTrainedModel",
    "XLMSWCMModel",
    "XLMSWCMForConditionalGeneration",
    "shared_weight_mapping",
]
