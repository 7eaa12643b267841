"""XLM-SWCM configuration.

Loadable as Hub remote code: imports only the standard library and transformers.
"""

from transformers.configuration_utils import PreTrainedConfig


LAYER_NORM_POSITIONS = ("pre", "post")
DECODER_LAYER_KINDS = ("custom", "normal")
# XLM-R-family encoders that transformers' `XLMRobertaModel` loads unchanged.
XLMR_FAMILY_MODEL_TYPES = ("xlm-roberta", "roberta", "camembert")

# Encoder hyper-parameters copied from an XLM-R config by `from_encoder_config`.
ENCODER_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "initializer_range",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


def build_decoder_layout(num_custom_layers: int, normal_layer_interval: int) -> list[str]:
    """C C C N C C C N ... C: a normal layer after every `interval` custom layers, never after the last one."""
    layout = []
    for index in range(num_custom_layers):
        layout.append("custom")
        is_last = index == num_custom_layers - 1
        if normal_layer_interval > 0 and (index + 1) % normal_layer_interval == 0 and not is_last:
            layout.append("normal")
    return layout


class XLMSWCMConfig(PreTrainedConfig):
    r"""
    Configuration of an XLM-SWCM model: an XLM-RoBERTa encoder plus a decoder whose "custom" layers start as copies of
    the encoder's layers, with a randomly initialised "normal" layer after every `normal_layer_interval` custom layers
    (arXiv 2502.10852).

    The encoder fields mirror [`XLMRobertaConfig`]. Decoder fields:

    normal_layer_interval (`int`, defaults to 3):
        The paper's X: one normal layer after every X custom layers (none after the last). 0 = no normal layers.
    decoder_layout (`list[str]`, *optional*):
        Explicit kind of every decoder layer (`"custom"` or `"normal"`). Derived from `num_hidden_layers` and
        `normal_layer_interval` when not given; when given it must agree with them.
    decoder_layers (`int`, *optional*):
        Number of decoder layers; always `len(decoder_layout)` (stored so that generic code, e.g. cache creation,
        sees the decoder depth).
    decoder_layer_norm_position (`str`, defaults to `"pre"`):
        `"pre"`: pre-LayerNorm sublayers with fresh LayerNorms, as the reference model (required for converted
        checkpoints). `"post"`: post-LayerNorm sublayers mirroring XLM-R's own layers, so that copied encoder weights
        compute what they were trained to compute.
    decoder_layer_norm_eps (`float`, defaults to 1e-5):
        Epsilon of the decoder's LayerNorms (the reference uses `nn.LayerNorm`'s default, 1e-5).
    custom_self_attn_residual (`bool`, defaults to `True`):
        Whether custom layers add their self-attention output to the residual stream. The published reference code
        computes the sum and drops it (the attention output replaces the stream); `False` reproduces that literally
        for checkpoints trained with it.
    """

    model_type = "xlm-swcm"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 250002
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 0
    use_cache: bool = True
    is_encoder_decoder: bool = True
    # Read by transformers' XLMRobertaModel, which runs the encoder with this very config.
    is_decoder: bool = False
    add_cross_attention: bool = False
    tie_word_embeddings: bool = False

    normal_layer_interval: int = 3
    decoder_layout: list[str] | None = None
    decoder_layers: int | None = None
    decoder_layer_norm_position: str = "pre"
    decoder_layer_norm_eps: float = 1e-5
    custom_self_attn_residual: bool = True

    def __post_init__(self, **kwargs):
        self._check_decoder_fields()
        super().__post_init__(**kwargs)

    def _check_decoder_fields(self):
        def bad(field, value, allowed):
            raise ValueError(f"XLMSWCMConfig.{field}={value!r} is invalid; allowed: {allowed}.")

        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                bad(field, value, "a positive integer")
        if self.hidden_size % self.num_attention_heads != 0:
            bad("num_attention_heads", self.num_attention_heads, f"a divisor of hidden_size={self.hidden_size}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, field)
            if not 0.0 <= float(value) < 1.0:
                bad(field, value, "a probability in [0, 1)")
        if self.decoder_layer_norm_position not in LAYER_NORM_POSITIONS:
            bad("decoder_layer_norm_position", self.decoder_layer_norm_position, LAYER_NORM_POSITIONS)
        if not isinstance(self.normal_layer_interval, int) or self.normal_layer_interval < 0:
            bad("normal_layer_interval", self.normal_layer_interval, "an integer >= 0 (0 = no normal layers)")

        expected_layout = build_decoder_layout(self.num_hidden_layers, self.normal_layer_interval)
        if self.decoder_layout is None:
            self.decoder_layout = expected_layout
        else:
            self.decoder_layout = list(self.decoder_layout)
            unknown = sorted(set(self.decoder_layout) - set(DECODER_LAYER_KINDS))
            if unknown:
                bad("decoder_layout", unknown, f"a list of {DECODER_LAYER_KINDS}")
            if self.decoder_layout != expected_layout:
                raise ValueError(
                    f"XLMSWCMConfig.decoder_layout={self.decoder_layout} does not match num_hidden_layers="
                    f"{self.num_hidden_layers} and normal_layer_interval={self.normal_layer_interval} (expected "
                    f"{expected_layout}); drop decoder_layout to derive it, or fix normal_layer_interval."
                )
        if self.decoder_layers is not None and self.decoder_layers != len(self.decoder_layout):
            bad("decoder_layers", self.decoder_layers, f"{len(self.decoder_layout)} (= len(decoder_layout))")
        self.decoder_layers = len(self.decoder_layout)

    @classmethod
    def from_encoder_config(cls, encoder_config, **overrides) -> "XLMSWCMConfig":
        """Build an XLM-SWCM config around an XLM-R-family encoder config (an object or a dict)."""
        values = encoder_config if isinstance(encoder_config, dict) else encoder_config.to_dict()
        model_type = values.get("model_type")
        if model_type not in XLMR_FAMILY_MODEL_TYPES:
            raise ValueError(
                f"The encoder must be XLM-R-family (model_type one of {XLMR_FAMILY_MODEL_TYPES}), got "
                f"model_type={model_type!r}. Convert it to an XLM-R folder first (see scripts/prepare_offline_encoder.py)."
            )
        kwargs = {field: values[field] for field in ENCODER_FIELDS if field in values}
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["XLMSWCMConfig"]
