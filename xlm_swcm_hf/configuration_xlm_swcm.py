"""XLM-SWCM configuration.

Loadable as Hub remote code on every transformers from 4.46 on: imports only the standard library and transformers,
and uses the classic `__init__` configuration style that every release supports.
"""

import re

import transformers
from transformers import PretrainedConfig  # an alias of `PreTrainedConfig` in transformers 5


# The oldest releases the Hub-shipped files run on (transformers' own common tests and `make compat` check the range).
MINIMUM_TRANSFORMERS = (4, 46)


def _release(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


if _release(transformers.__version__) < MINIMUM_TRANSFORMERS:
    raise ImportError(
        f"XLM-SWCM needs transformers>={'.'.join(map(str, MINIMUM_TRANSFORMERS))} (found {transformers.__version__}): "
        "pip install -U transformers"
    )


LAYER_NORM_POSITIONS = ("pre", "post")
DECODER_LAYER_KINDS = ("custom", "normal")
# The paper's X: one normal layer after every 3 custom layers.
DEFAULT_NORMAL_LAYER_INTERVAL = 3
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


class XLMSWCMConfig(PretrainedConfig):
    r"""
    Configuration of an XLM-SWCM model: an XLM-RoBERTa encoder plus a decoder whose "custom" layers start as copies of
    the encoder's layers, with a randomly initialised "normal" layer after every `normal_layer_interval` custom layers
    (arXiv 2502.10852).

    The encoder fields mirror [`XLMRobertaConfig`]. Decoder fields:

    normal_layer_interval (`int`, *optional*, defaults to 3):
        The paper's X: one normal layer after every X custom layers (none after the last). 0 = no normal layers. Used
        to derive `decoder_layout` when that is not given. With an explicit `decoder_layout` leave it unset: it then
        records the interval that derives the layout, or stays `None` for a layout no interval derives.
    decoder_layout (`list[str]`, *optional*):
        Explicit kind of every decoder layer (`"custom"` or `"normal"`), in order: any sequence with exactly
        `num_hidden_layers` custom layers (custom layer i starts from encoder layer i). Derived from
        `num_hidden_layers` and `normal_layer_interval` when not given. The model is built from this field, so a saved
        config always stores it; a config edited after construction so that the fields disagree is refused when it is
        validated (at model construction and at saving) instead of silently building another model.
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
    keys_to_ignore_at_inference = ["past_key_values", "cache"]

    def __init__(
        self,
        vocab_size: int = 250002,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 514,
        type_vocab_size: int = 1,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-5,
        pad_token_id: int | None = 1,
        bos_token_id: int | None = 0,
        eos_token_id: int | list[int] | None = 2,
        decoder_start_token_id: int | None = 0,
        use_cache: bool = True,
        tie_word_embeddings: bool = False,
        normal_layer_interval: int | None = None,
        decoder_layout: list[str] | None = None,
        decoder_layers: int | None = None,
        decoder_layer_norm_position: str = "pre",
        decoder_layer_norm_eps: float = 1e-5,
        custom_self_attn_residual: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.use_cache = use_cache
        self.normal_layer_interval = normal_layer_interval
        self.decoder_layout = decoder_layout
        self.decoder_layers = decoder_layers
        self.decoder_layer_norm_position = decoder_layer_norm_position
        self.decoder_layer_norm_eps = decoder_layer_norm_eps
        self.custom_self_attn_residual = custom_self_attn_residual
        # Read by transformers' XLMRobertaModel, which runs the encoder with this very config (transformers 4 reads
        # `position_embedding_type`; the shared position table is XLM-R's absolute one).
        self.position_embedding_type = kwargs.pop("position_embedding_type", "absolute")
        kwargs.setdefault("is_decoder", False)
        kwargs.setdefault("add_cross_attention", False)
        kwargs["is_encoder_decoder"] = True
        # The special tokens go through the parent, which owns them in transformers 4 (and validates them in 5).
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self._check_decoder_fields()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def validate(self):
        """transformers' checks (run when saving) plus ours: a config edited after construction fails here."""
        parent_validate = getattr(super(), "validate", None)
        if parent_validate is not None:
            parent_validate()
        self._check_decoder_fields()

    def _check_decoder_fields(self):
        """Validate the fields the model is built from and derive `decoder_layout`; idempotent."""

        def bad(field, value, allowed):
            raise ValueError(f"XLMSWCMConfig.{field}={value!r} is invalid; allowed: {allowed}.")

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool)

        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            value = getattr(self, field)
            if not is_int(value) or value <= 0:
                bad(field, value, "a positive integer")
        if self.hidden_size % self.num_attention_heads != 0:
            bad("num_attention_heads", self.num_attention_heads, f"a divisor of hidden_size={self.hidden_size}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, field)
            if not 0.0 <= float(value) < 1.0:
                bad(field, value, "a probability in [0, 1)")
        if self.position_embedding_type != "absolute":
            bad("position_embedding_type", self.position_embedding_type, "'absolute' (XLM-R's learned position table)")
        if self.decoder_layer_norm_position not in LAYER_NORM_POSITIONS:
            bad("decoder_layer_norm_position", self.decoder_layer_norm_position, LAYER_NORM_POSITIONS)

        # Special tokens: the decoder embeds pad and start tokens, generation emits eos; all must be in the vocabulary.
        token_id = f"an integer token id in [0, vocab_size={self.vocab_size})"
        for field, allowed in (
            ("pad_token_id", token_id),
            ("decoder_start_token_id", token_id),
            ("bos_token_id", f"None or {token_id}"),
            ("eos_token_id", f"None, {token_id}, or a list of them"),
        ):
            value = getattr(self, field)
            if value is None and field in ("bos_token_id", "eos_token_id"):
                continue
            ids = value if field == "eos_token_id" and isinstance(value, (list, tuple)) else [value]
            if not ids or not all(is_int(i) and 0 <= i < self.vocab_size for i in ids):
                bad(field, value, allowed)
        if not is_int(self.max_position_embeddings) or self.max_position_embeddings <= self.pad_token_id + 1:
            # XLM-R positions start at pad_token_id + 1: the table needs at least one more row.
            bad(
                "max_position_embeddings",
                self.max_position_embeddings,
                f"an integer > pad_token_id + 1 = {self.pad_token_id + 1}",
            )

        interval = self.normal_layer_interval
        if interval is not None and (not is_int(interval) or interval < 0):
            bad("normal_layer_interval", interval, "an integer >= 0 (0 = no normal layers)")
        if self.decoder_layout is None:
            if interval is None:
                interval = self.normal_layer_interval = DEFAULT_NORMAL_LAYER_INTERVAL
            self.decoder_layout = build_decoder_layout(self.num_hidden_layers, interval)
        else:
            layout = self.decoder_layout
            if isinstance(layout, str) or not all(isinstance(kind, str) for kind in layout):
                bad("decoder_layout", layout, f"a list of {DECODER_LAYER_KINDS}")
            self.decoder_layout = layout = list(layout)
            unknown = sorted(set(layout) - set(DECODER_LAYER_KINDS))
            if unknown:
                bad("decoder_layout", unknown, f"a list of {DECODER_LAYER_KINDS}")
            if layout.count("custom") != self.num_hidden_layers:
                bad(
                    "decoder_layout",
                    layout,
                    f"a list with exactly num_hidden_layers={self.num_hidden_layers} "
                    "'custom' entries (custom layer i starts from encoder layer i) and any number of 'normal' ones",
                )
            if interval is None:
                # Record the interval that derives this layout, if one does (configs saved before `None` was the
                # default store only the layout).
                self.normal_layer_interval = next(
                    (
                        k
                        for k in range(self.num_hidden_layers + 1)
                        if build_decoder_layout(self.num_hidden_layers, k) == layout
                    ),
                    None,
                )
            elif build_decoder_layout(self.num_hidden_layers, interval) != layout:
                raise ValueError(
                    f"XLMSWCMConfig.decoder_layout={layout} does not match num_hidden_layers="
                    f"{self.num_hidden_layers} and normal_layer_interval={interval} (which give "
                    f"{build_decoder_layout(self.num_hidden_layers, interval)}). To use this layout as given set "
                    "normal_layer_interval=None; to derive the layout from the interval set decoder_layout=None. (A "
                    "config edited after the model was built cannot change the model: rebuild it from a new config.)"
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
                f"model_type={model_type!r}. Convert it to an XLM-R folder first (see "
                "scripts/prepare_offline_encoder.py)."
            )
        kwargs = {field: values[field] for field in ENCODER_FIELDS if field in values}
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["XLMSWCMConfig"]
