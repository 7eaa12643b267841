"""Export, compile and static-cache generation of XLM-SWCM, checked directly against eager (no shared folder needed).

- `torch.export.export` of `XLMSWCMForConditionalGeneration.forward` (input_ids, attention_mask, decoder_input_ids):
  the exported program's logits equal eager's, also at shapes other than the export example's.
- `torch.compile(model, fullgraph=True)`: one graph, logits equal eager's.
- `generate(cache_implementation="static")`: greedy, beam search and seeded sampling give eager dynamic-cache
  generate's tokens; also with the compiled forward (`compile_config`) where the model declares
  `_can_compile_fullgraph`.
- ONNX export (`xlm_swcm_hf.onnx_runtime`) is tested in tests/library/test_onnx_runtime.py.

The model is a tiny one with both decoder layer kinds (2 encoder layers, `normal_layer_interval=1`: C N C).
"""

import pytest
import torch
from conftest import padded_batch, tiny_model
from torch import nn
from transformers import CompileConfig

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
