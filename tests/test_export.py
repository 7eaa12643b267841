"""Export, compile and static-cache generation of XLM-SWCM, checked directly against eager (no shared folder needed).

- `torch.export.export` of `XLMSWCMForConditionalGeneration.forward` (input_ids, attention_mask, decoder_input_ids):
  the exported program's logits equal eager's, also at shapes other than the export example's.
- `torch.compile(model, fullgraph=True)`: one graph, logits equal eager's.
- `generate(cache_implementation="static")`: greedy, beam search and seeded sampling give eager dynamic-cache
  generate's tokens; also with the compiled forward (`compile_config`) where the model declares
  `_can_compile_fullgraph`.
- `torch.onnx.export(..., dynamo=True)` of the encoder and of one cached decoder step, run with onnxruntime: outputs
  equal eager's, and two chained ONNX decoder steps (the second fed the first's cache) equal eager decoding.

The model is a tiny one with both decoder layer kinds (2 encoder layers, `normal_layer_interval=1`: C N C).
"""

import pytest
import torch
from conftest import padded_batch, tiny_model
from torch import nn
from transformers import CompileConfig
from transformers.cache_utils import EncoderDecoderCache

from xlm_swcm_hf import XLMSWCMForConditionalGeneration


LAYOUT = dict(num_hidden_layers=2, normal_layer_interval=1)  # decoder: custom, normal, custom
ATOL = 1e-4


def small_model(seed=0) -> XLMSWCMForConditionalGeneration:
    model = tiny_model(seed, **LAYOUT)
    assert model.config.decoder_layout == ["custom", "normal", "custom"]
    return model


def forward_inputs(batch_size=2):
    """The padded two-source batch (7 tokens) with decoder inputs; batch_size=3 gives other shapes (9/5 tokens)."""
    if batch_size == 2:
        batch = padded_batch()
        decoder_input_ids = torch.tensor([[0, 12, 13, 14], [0, 15, 16, 2]])
    else:
        input_ids = torch.tensor(
            [[0, 5, 6, 7, 8, 9, 10, 11, 2], [0, 12, 13, 2, 1, 1, 1, 1, 1], [0, 14, 15, 16, 17, 2, 1, 1, 1]]
        )
        batch = {"input_ids": input_ids, "attention_mask": (input_ids != 1).long()}
        decoder_input_ids = torch.tensor([[0, 20, 21, 22, 23], [0, 24, 25, 2, 1], [0, 26, 27, 28, 2]])
    return {**batch, "decoder_input_ids": decoder_input_ids}


class Logits(nn.Module):
    """forward(input_ids, attention_mask, decoder_input_ids) -> logits, without a cache (a plain tensor output)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, use_cache=False
        ).logits


def eager_logits(model, inputs):
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits


# ------------------------------------------------------------------------------------------------- torch.export


def test_torch_export_forward_matches_eager():
    model = small_model()
    inputs = forward_inputs()
    batch, source, target = torch.export.Dim.AUTO, torch.export.Dim.AUTO, torch.export.Dim.AUTO
    with torch.no_grad():
        exported = torch.export.export(
            Logits(model),
            args=(),
            kwargs=inputs,
            dynamic_shapes={
                "input_ids": {0: batch, 1: source},
                "attention_mask": {0: batch, 1: source},
                "decoder_input_ids": {0: batch, 1: target},
            },
            strict=False,
        )
    program = exported.module()
    for other in (inputs, forward_inputs(batch_size=3)):
        with torch.no_grad():
            torch.testing.assert_close(program(**other), eager_logits(model, other), atol=ATOL, rtol=ATOL)


# ------------------------------------------------------------------------------------------------ torch.compile


@pytest.mark.parametrize(
    "backend",
    [
        "eager",  # dynamo's capture alone: one graph (fullgraph) and its replay; a few seconds
        pytest.param("inductor", marks=pytest.mark.slow),  # plus inductor's code generation: over a minute on 2 CPUs
    ],
)
def test_torch_compile_fullgraph_forward_matches_eager(backend):
    model = small_model()
    inputs = forward_inputs()
    torch.compiler.reset()
    compiled = torch.compile(Logits(model), fullgraph=True, backend=backend)
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs), eager_logits(model, inputs), atol=ATOL, rtol=ATOL)


# -------------------------------------------------------------------------------------- static-cache generation


GENERATION_MODES = {
    "greedy": dict(do_sample=False, num_beams=1),
    "beam_search": dict(do_sample=False, num_beams=3, num_return_sequences=2, early_stopping=False),
    "sampling": dict(do_sample=True, num_beams=1, top_k=20, temperature=1.5),
}


def generate(model, mode, seed=0, **kwargs):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(**padded_batch(), max_new_tokens=8, min_new_tokens=8, **GENERATION_MODES[mode], **kwargs)


@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_static_cache_generate_matches_dynamic_cache(mode):
    model = small_model()
    dynamic = generate(model, mode)
    static = generate(model, mode, cache_implementation="static")
    assert dynamic.shape == (2 * GENERATION_MODES[mode].get("num_return_sequences", 1), 9)
    torch.testing.assert_close(static, dynamic, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["greedy", "sampling"])
def test_static_cache_generate_with_compiled_forward_matches_eager(mode):
    """The generation loop's automatic `torch.compile` of the forward (static cache + `compile_config`; forced on
    CPU as transformers' own compile tests do); needs the model to declare `_can_compile_fullgraph`. Greedy and
    sampling only: transformers' beam search (5.24) calls the forward uncompiled whatever the config."""
    model = small_model()
    if not model._can_compile_fullgraph:
        pytest.skip("the model does not declare _can_compile_fullgraph (transformers then never compiles its forward)")
    dynamic = generate(model, mode)
    torch.compiler.reset()
    compile_config = CompileConfig(fullgraph=True, dynamic=False)
    compile_config._compile_all_devices = True  # compile on CPU too (as transformers' tests do)
    compiled = generate(model, mode, cache_implementation="static", compile_config=compile_config)
    assert hasattr(model, "_compiled_call"), "generate did not compile the forward"
    torch.testing.assert_close(compiled, dynamic, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------------- ONNX


class Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class DecoderStep(nn.Module):
    """One cached decoding step on flat tensors: (new decoder tokens, the decoder mask so far, encoder states and
    mask, then per decoder layer: self-attention keys, values, cross-attention keys, values) -> (logits, then per
    layer the self-attention keys and values including the new tokens). The cross-attention entries are the encoder
    states' projections, computed once (by the first step) and reused as given."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_layers = model.config.decoder_layers

    def forward(self, decoder_input_ids, decoder_attention_mask, encoder_hidden_states, attention_mask, *past):
        cache = EncoderDecoderCache([tuple(past[4 * i : 4 * i + 4]) for i in range(self.num_layers)])
        outputs = self.model(
            encoder_outputs=(encoder_hidden_states,),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            cache=cache,
            use_cache=True,
        )
        self_attention = outputs.cache.self_attention_cache
        present = [
            t for i in range(self.num_layers) for t in (self_attention.layers[i].keys, self_attention.layers[i].values)
        ]
        return (outputs.logits, *present)


def flat_cache(cache: EncoderDecoderCache, num_layers: int):
    self_attention, cross_attention = cache.self_attention_cache, cache.cross_attention_cache
    return [
        tensor
        for i in range(num_layers)
        for tensor in (
            self_attention.layers[i].keys,
            self_attention.layers[i].values,
            cross_attention.layers[i].keys,
            cross_attention.layers[i].values,
        )
    ]


def onnx_session(module, args, path, dynamic_shapes=None):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) runs the exported graphs")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (dev extra)")
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    assert len(names) == len(args), names  # every input is a graph input (none folded into a constant)
    # A dimension declared dynamic must stay symbolic in the graph: when torch.export specialises one, the ONNX
    # exporter falls back to a strategy with static shapes instead of failing.
    flat_dynamic = [d for spec in dynamic_shapes or () for d in (spec if isinstance(spec, tuple) else (spec,))]
    fixed = [
        f"{node.name}[{dim}]={node.shape[dim]}"
        for node, spec in zip(session.get_inputs(), flat_dynamic)
        for dim in (spec or {})
        if not isinstance(node.shape[dim], str)
    ]
    assert not fixed, f"dynamic dimensions exported as constants (specialised by torch.export): {fixed}"

    def run(*tensors):
        return [torch.from_numpy(out) for out in session.run(None, {n: t.numpy() for n, t in zip(names, tensors)})]

    return run


def test_onnx_encoder_matches_eager(tmp_path):
    model = small_model()
    encoder = Encoder(model).eval()
    batch = padded_batch()
    args = (batch["input_ids"], batch["attention_mask"])
    source = torch.export.Dim("source", min=2, max=60)
    run = onnx_session(encoder, args, tmp_path / "encoder.onnx", dynamic_shapes=({1: source}, {1: source}))
    with torch.no_grad():
        torch.testing.assert_close(run(*args)[0], encoder(*args), atol=ATOL, rtol=ATOL)
        shorter = (args[0][:, :5], args[1][:, :5])  # another source length through the same graph
        torch.testing.assert_close(run(*shorter)[0], encoder(*shorter), atol=ATOL, rtol=ATOL)


def test_onnx_decoder_step_with_cache_matches_eager(tmp_path):
    model = small_model()
    num_layers = model.config.decoder_layers
    batch = padded_batch()
    prefix = torch.tensor([[0, 12, 13], [0, 15, 16]])
    steps = [torch.tensor([[14], [17]]), torch.tensor([[18], [2]])]
    with torch.no_grad():
        encoder_hidden_states = model.get_encoder()(**batch).last_hidden_state
        prefill = model(
            encoder_outputs=(encoder_hidden_states,), attention_mask=batch["attention_mask"], decoder_input_ids=prefix
        )
    step_module = DecoderStep(model).eval()

    def step_args(tokens, past_length, past):
        mask = torch.ones(tokens.shape[0], past_length + tokens.shape[1], dtype=torch.long)
        return (tokens, mask, encoder_hidden_states, batch["attention_mask"], *past)

    past = flat_cache(prefill.cache, num_layers)
    args = step_args(steps[0], prefix.shape[1], past)
    past_length, total = torch.export.Dim("past", min=1, max=60), torch.export.Dim("total", min=2, max=61)
    # the self-attention entries grow by one position per step; the cross-attention ones keep the source length
    dynamic_shapes = (
        None,
        {1: total},
        None,
        None,
        tuple({2: past_length} if j % 4 < 2 else None for j in range(4 * num_layers)),
    )
    run = onnx_session(step_module, args, tmp_path / "decoder_step.onnx", dynamic_shapes=dynamic_shapes)

    # Eager reference: the full forward over the growing target (no cache), last position's logits.
    tokens = prefix
    onnx_past = [t.clone() for t in past]
    for step in steps:
        past_length = tokens.shape[1]
        onnx_outputs = run(*step_args(step, past_length, onnx_past))
        with torch.no_grad():
            eager_outputs = step_module(*step_args(step, past_length, [t.clone() for t in onnx_past]))
        for got, expected in zip(onnx_outputs, eager_outputs):
            torch.testing.assert_close(got, expected, atol=ATOL, rtol=ATOL)
        tokens = torch.cat([tokens, step], dim=1)
        full = eager_logits(model, {**batch, "decoder_input_ids": tokens})[:, -1:]
        torch.testing.assert_close(onnx_outputs[0], full, atol=ATOL, rtol=ATOL)
        # the next step reads the self-attention cache the ONNX step returned, and the same cross-attention entries
        onnx_past = [
            onnx_outputs[1 + 2 * (j // 4) + j % 4] if j % 4 < 2 else onnx_past[j] for j in range(4 * num_layers)
        ]
