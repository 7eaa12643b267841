"""XLM-SWCM on ONNX Runtime: export a trained folder to three ONNX graphs and decode with transformers' `generate`.

    from xlm_swcm_hf.onnx_runtime import export_onnx, OnnxRuntimeXLMSWCM

    export_onnx(model, "out-onnx", quantize="int8")      # torch.onnx.export(dynamo=True); int8: onnxruntime's dynamic
    model = OnnxRuntimeXLMSWCM.from_exported("out-onnx")  # no torch weights in memory
    model.generate(**batch, num_beams=5)                  # greedy, beam search, sampling: transformers' own loops

The graphs (every dimension that varies between calls is dynamic: batch, source length, cached and new target
positions):
- `encoder.onnx`: (input_ids, attention_mask) -> encoder states;
- `cross_attention.onnx`: encoder states -> every decoder layer's cross-attention keys and values (computed once per
  source, as the PyTorch model does at its first step);
- `decoder.onnx`: (new decoder tokens, source mask, per layer: cached self-attention keys, values, cross-attention
  keys, values) -> (the new tokens' last hidden states, per layer their self-attention keys and values). The first
  step passes zero cached positions, so one graph serves the first and every later step, and a whole target at once
  (teacher forcing);
- `head.onnx`: hidden states -> logits over the whole vocabulary; for each of the model's output vocabularies
  (`output_vocabularies.json`, copied into the export) `head.<lang>.onnx` holds only that language's rows, which
  `generate(output_languages=...)` runs instead (one graph per language in a mixed batch, each on its own rows; the
  other words come out at float32's minimum, as in the PyTorch model). A head sliced at export beats gathering the
  rows inside the graph at every step: the gather copies them each step and leaves them out of int8 quantization.

`OnnxRuntimeXLMSWCM` is a weightless `PreTrainedModel` + `GenerationMixin`: the keys and values live in transformers'
`EncoderDecoderCache` (as torch tensors sharing the arrays ONNX Runtime returns), so beam search reorders them and
every logits processor works as with the PyTorch model. `"int8"` is onnxruntime's dynamic quantization of the
MatMul/Gemm weights (per output channel), the same scheme as `quantization.quantize_for_cpu`: embeddings and
LayerNorms stay float32.

Needs the `onnx` extra (onnxruntime, onnxscript). Not part of the Hub remote code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from .checks import InputError
from .configuration_xlm_swcm import XLMSWCMConfig
from .modeling_xlm_swcm import (
    CACHE_FIELD,
    OUTPUT_VOCABULARIES_FILE,
    XLMSWCMForConditionalGeneration,
    check_output_vocabularies,
    make_room_for_every_decoder_layer,
    output_languages_per_row,
    shift_tokens_right,
)


GRAPH_FILES = {
    "encoder": "encoder.onnx",
    "cross_attention": "cross_attention.onnx",
    "decoder": "decoder.onnx",
    "head": "head.onnx",
}
LANGUAGE_HEAD_FILE = "head.{lang}.onnx"  # one per output vocabulary
EXPORT_RECORD = "onnx_export.json"
EXPORT_FORMAT = 2  # bump when the graphs' inputs or outputs change: older exports are then rebuilt
QUANTIZE_CHOICES = (None, "int8")
# torch.export specialises a dimension whose example size is 0 or 1, and gives dimensions with equal example sizes one
# symbol ("duck sizing"): the examples are 2 or more and all different.
EXAMPLE_BATCH, EXAMPLE_NEW, EXAMPLE_PAST, EXAMPLE_SOURCE = 2, 3, 5, 7


class EncoderGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class CrossAttentionGraph(nn.Module):
    """Every decoder layer's cross-attention keys and values, shaped as the model's cache holds them."""

    def __init__(self, model):
        super().__init__()
        self.attentions = nn.ModuleList(layer.encoder_attn for layer in model.get_decoder().layers)

    def forward(self, encoder_hidden_states):
        batch, source = encoder_hidden_states.shape[:2]
        outputs = []
        for attention in self.attentions:
            for projection in (attention.k_proj, attention.v_proj):
                states = projection(encoder_hidden_states).view(batch, source, -1, attention.head_dim)
                outputs.append(states.transpose(1, 2))
        return tuple(outputs)


class DecoderGraph(nn.Module):
    """Decoder steps on flat tensors through the model's own forward and cache (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_layers = model.config.decoder_layers

    def forward(self, decoder_input_ids, attention_mask, *past):
        cache = EncoderDecoderCache([tuple(past[4 * i : 4 * i + 4]) for i in range(self.num_layers)])
        # The cross-attention entries are filled, so the encoder states are never read: a placeholder of their shape.
        placeholder = past[2].new_zeros(decoder_input_ids.shape[0], 1, self.model.config.hidden_size)
        outputs = self.model.model(
            encoder_outputs=(placeholder,),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            cache=cache,
            use_cache=True,
        )
        new = decoder_input_ids.shape[1]
        layers = outputs.cache.self_attention_cache.layers
        present = [t[:, :, -new:] for layer in layers[: self.num_layers] for t in (layer.keys, layer.values)]
        return (outputs.last_hidden_state, *present)


class HeadGraph(nn.Module):
    """The LM head, over the whole vocabulary or over the rows `ids` only (sliced here, once)."""

    def __init__(self, model, ids=None):
        super().__init__()
        head = model.lm_head
        if ids is None:
            self.head = head
        else:
            index = torch.tensor(ids)
            self.head = nn.Linear(head.in_features, len(ids), bias=head.bias is not None)
            with torch.no_grad():
                self.head.weight.copy_(head.weight.index_select(0, index))
                if head.bias is not None:
                    self.head.bias.copy_(head.bias.index_select(0, index))

    def forward(self, hidden_states):
        return self.head(hidden_states)


def require_onnx_libraries() -> None:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise InputError(
            f"the ONNX Runtime backend needs onnxruntime and onnxscript ({error.name} is missing): "
            "pip install 'xlm-swcm-hf[onnx]'"
        ) from None


def _export(module: nn.Module, args: tuple, dynamic_shapes, path: Path) -> None:
    with torch.no_grad():
        # The wrappers are new modules (training mode by default); the model inside is already in eval mode.
        program = torch.onnx.export(module.eval(), args, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
    program.save(str(path))


def export_onnx(model, directory, quantize: str | None = None, log=None) -> dict:
    """Export `model` (an `XLMSWCMForConditionalGeneration`, float32) to `directory` (created; must not exist) with
    its config and generation config; `quantize="int8"` stores dynamically quantized graphs instead. Returns the
    export record (also written as onnx_export.json), including the seconds it took."""
    require_onnx_libraries()
    if quantize not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}.")
    directory = Path(directory)
    if directory.exists():
        raise InputError(f"{directory} exists already; export into a new directory.")
    log = log or (lambda message: None)
    started = time.perf_counter()
    directory.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    config = model.config
    layers = config.decoder_layers
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(5, config.vocab_size, (EXAMPLE_BATCH, EXAMPLE_SOURCE), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        batch, source = torch.export.Dim("batch", min=1), torch.export.Dim("source", min=1)
        past, new = torch.export.Dim("past", min=0), torch.export.Dim("new", min=1)
        encoder, cross, decoder = EncoderGraph(model), CrossAttentionGraph(model), DecoderGraph(model)
        # checked again (the tags name files here): the attribute may have been set without set_output_vocabularies
        vocabularies = check_output_vocabularies(getattr(model, "output_vocabularies", None) or {}, config.vocab_size)
        with torch.no_grad():
            states = encoder(input_ids, attention_mask)
            cross_kv = cross(states)
            # any values of the right shape, one tensor per input: torch.export merges inputs that are one tensor
            self_kv = [t[:, :, :EXAMPLE_PAST].clone() for _ in range(layers) for t in cross_kv[:2]]
        flat_past = [t for i in range(layers) for t in (*self_kv[2 * i : 2 * i + 2], *cross_kv[2 * i : 2 * i + 2])]
        decoder_ids = torch.randint(5, config.vocab_size, (EXAMPLE_BATCH, EXAMPLE_NEW), generator=generator)
        hidden = torch.randn(EXAMPLE_BATCH, EXAMPLE_NEW, config.hidden_size, generator=generator)
        heads = [("head", GRAPH_FILES["head"], HeadGraph(model))] + [
            (f"head {lang}", LANGUAGE_HEAD_FILE.format(lang=lang), HeadGraph(model, ids))
            for lang, ids in sorted(vocabularies.items())
        ]
        plans = (
            ("encoder", encoder, (input_ids, attention_mask), ({0: batch, 1: source}, {0: batch, 1: source})),
            ("cross_attention", cross, (states,), ({0: batch, 1: source},)),
            (
                "decoder",
                decoder,
                (decoder_ids, attention_mask, *flat_past),
                (
                    {0: batch, 1: new},
                    {0: batch, 1: source},
                    tuple({0: batch, 2: past} if j % 4 < 2 else {0: batch, 2: source} for j in range(4 * layers)),
                ),
            ),
        )
        plans = [(name, GRAPH_FILES[name], *plan) for name, *plan in plans]
        plans += [(name, file, head, (hidden,), ({0: batch, 1: new},)) for name, file, head in heads]
        for name, file, module, args, dynamic_shapes in plans:
            log(f"exporting {name} ...")
            float_path = work / ("float32-" + file) if quantize else work / file
            _export(module, args, dynamic_shapes, float_path)
            if quantize:
                log(f"quantizing {name} ({quantize}) ...")
                _quantize_int8(float_path, work / file)
                for leftover in work.glob("float32-*"):
                    leftover.unlink()
        if vocabularies:
            (work / OUTPUT_VOCABULARIES_FILE).write_text(json.dumps(vocabularies, separators=(",", ":")) + "\n")
        config.save_pretrained(work)
        model.generation_config.save_pretrained(work)
        import onnxruntime

        record = {
            "format": EXPORT_FORMAT,
            "quantize": quantize,
            "seconds": round(time.perf_counter() - started, 1),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        }
        (work / EXPORT_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.replace(work, directory)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return record


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Linear layers only (as quantize_for_cpu): quantizing the embedding Gather as well would change the inputs.
    # 7-bit weights (reduce_range): on x86 CPUs without VNNI the integer products saturate their 16-bit sums with 8-bit
    # weights (onnxruntime's documented caveat); on a 2-core AMD EPYC with AVX2 only, logits then erred by a third of
    # their range, with reduce_range by under a tenth. The export may be served on another CPU than it was made on.
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        use_external_data_format=source.stat().st_size > 1_800_000_000,
    )


class _EncoderOnOnnxRuntime(nn.Module):
    """What `generate` calls as the encoder: runs encoder.onnx."""

    main_input_name = "input_ids"

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        (states,) = self.session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        return BaseModelOutput(last_hidden_state=torch.from_numpy(states))


class OnnxRuntimeXLMSWCM(PreTrainedModel, GenerationMixin):
    """XLM-SWCM decoding on ONNX Runtime sessions through transformers' generation loops (see the module docstring).

    Inference only, CPU tensors in and out. `forward` accepts what `generate` passes; `labels` give the
    cross-entropy loss as the PyTorch model computes it.
    """

    config_class = XLMSWCMConfig
    main_input_name = "input_ids"
    base_model_prefix = "model"
    _supports_cache_class = True

    def __init__(self, config: XLMSWCMConfig, sessions: dict | None = None, output_vocabularies: dict | None = None):
        super().__init__(config)
        self.sessions = sessions or {}
        # {language: token ids}; each has a `head.<lang>` session
        self.output_vocabularies = check_output_vocabularies(output_vocabularies or {}, config.vocab_size)
        self._output_ids = {lang: torch.tensor(ids) for lang, ids in self.output_vocabularies.items()}
        self.encoder = _EncoderOnOnnxRuntime(self.sessions.get("encoder"))
        self._input_names = {
            name: [node.name for node in session.get_inputs()] for name, session in self.sessions.items()
        }

    @classmethod
    def from_exported(cls, directory, threads: int | None = None) -> OnnxRuntimeXLMSWCM:
        """Sessions on the graphs `export_onnx` wrote to `directory`; `threads`: ONNX Runtime's intra-op threads
        (default: torch's thread count, so both backends compare on equal terms)."""
        require_onnx_libraries()
        import onnxruntime

        directory = Path(directory)
        missing = [name for name in (*GRAPH_FILES.values(), "config.json") if not (directory / name).is_file()]
        if missing:
            raise InputError(f"{directory} is not an ONNX export of XLM-SWCM (missing {', '.join(missing)}).")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        vocabularies_path = directory / OUTPUT_VOCABULARIES_FILE
        vocabularies = json.loads(vocabularies_path.read_text()) if vocabularies_path.is_file() else {}
        files = {
            **GRAPH_FILES,
            **{f"head.{lang}": LANGUAGE_HEAD_FILE.format(lang=lang) for lang in vocabularies},
        }
        missing = [file for file in files.values() if not (directory / file).is_file()]
        if missing:
            raise InputError(f"{directory} is an incomplete ONNX export of XLM-SWCM (missing {', '.join(missing)}).")
        sessions = {
            name: onnxruntime.InferenceSession(str(directory / file), options, providers=["CPUExecutionProvider"])
            for name, file in files.items()
        }
        model = cls(XLMSWCMConfig.from_pretrained(directory), sessions, vocabularies)
        if (directory / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(directory)
        return model.eval()

    @property
    def device(self) -> torch.device:  # no parameters to ask: ONNX Runtime's CPU provider reads and writes CPU tensors
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def get_encoder(self, *args, **kwargs):
        return self.encoder

    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, output_languages=None, **kwargs):
        """`GenerationMixin.generate` with the PyTorch model's length rules: a length the caller gives beats the one
        stored as the model's default, and a length the position table cannot embed is refused before decoding
        (the graphs would fail at that step instead). `output_languages` as the PyTorch model's: each row decodes
        with its language's `head.<lang>` graph only."""
        pytorch_model = XLMSWCMForConditionalGeneration
        kwargs = pytorch_model._caller_lengths_first(self, generation_config, kwargs)
        decoder_input_ids = kwargs.get("decoder_input_ids")
        prompt_length = 1 if decoder_input_ids is None else decoder_input_ids.shape[1]
        pytorch_model._check_target_length(self, generation_config, kwargs, prompt_length)
        if output_languages is None:
            return super().generate(inputs, generation_config, **kwargs)
        source = inputs if inputs is not None else kwargs.get("input_ids")
        batch_size = source.shape[0] if source is not None else kwargs["encoder_outputs"][0].shape[0]
        languages = output_languages_per_row(output_languages, self.output_vocabularies, batch_size)
        self.__dict__["_output_languages_in_use"] = languages
        try:
            return super().generate(inputs, generation_config, **kwargs)
        finally:
            self.__dict__.pop("_output_languages_in_use", None)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        languages = self.__dict__.get("_output_languages_in_use")
        if languages is None:
            return self._run("head", [hidden])[0]
        rows = hidden.shape[0]
        if len(languages) != rows:  # beams / returned sequences: transformers repeats each row
            languages = [languages[row // (rows // len(languages))] for row in range(rows)]
        logits = torch.full((*hidden.shape[:-1], self.config.vocab_size), torch.finfo(hidden.dtype).min)
        for lang in sorted(set(languages)):
            selected = torch.tensor([row for row, other in enumerate(languages) if other == lang])
            restricted = self._run(f"head.{lang}", [hidden.index_select(0, selected)])[0]
            part = logits.index_select(0, selected)
            logits.index_copy_(0, selected, part.index_copy_(-1, self._output_ids[lang], restricted))
        return logits

    def _run(self, name: str, tensors) -> list[torch.Tensor]:
        feed = {key: tensor.contiguous().numpy() for key, tensor in zip(self._input_names[name], tensors)}
        return [torch.from_numpy(array) for array in self.sessions[name].run(None, feed)]

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        encoder_outputs=None,
        past_key_values=None,
        labels=None,
        use_cache=None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        cache = past_key_values if past_key_values is not None else kwargs.get("cache")
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = encoder_outputs[0] if isinstance(encoder_outputs, (tuple, list)) else encoder_outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], dtype=torch.long)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("Pass decoder_input_ids or labels.")
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        if cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        layers = self.config.decoder_layers
        for layer_cache in (cache.self_attention_cache, cache.cross_attention_cache):
            make_room_for_every_decoder_layer(layer_cache, layers)
        if cache.get_seq_length() == 0:
            cross = self._run("cross_attention", [states])
            for i in range(layers):
                cache.cross_attention_cache.update(cross[2 * i], cross[2 * i + 1], i)
                cache.is_updated[i] = True
            empty = cross[0][:, :, :0]
            past = [t for i in range(layers) for t in (empty, empty, cross[2 * i], cross[2 * i + 1])]
        else:
            self_layers, cross_layers = cache.self_attention_cache.layers, cache.cross_attention_cache.layers
            past = [
                t
                for i in range(layers)
                for t in (self_layers[i].keys, self_layers[i].values, cross_layers[i].keys, cross_layers[i].values)
            ]
        hidden, *present = self._run("decoder", [decoder_input_ids, attention_mask, *past])
        if logits_to_keep and labels is None:
            hidden = hidden[:, -logits_to_keep:]
        logits = self._logits(hidden)
        for i in range(layers):
            cache.self_attention_cache.update(present[2 * i], present[2 * i + 1], i)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return Seq2SeqLMOutput(loss=loss, logits=logits, encoder_last_hidden_state=states, **{CACHE_FIELD: cache})
