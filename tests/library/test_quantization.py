"""Quantized CPU inference: `quantize_for_cpu` on the package class and on a remote-code folder, the LM head's fast
path stepping aside for quantized weights (also under inference_mode), refusals, `evaluate_model.py --quantize`."""

import json

import pytest
import torch
from conftest import padded_batch, pairs_model_folder, run_script, tiny_model, write_jsonl
from torch import nn

from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.quantization import METHODS, available_methods, quantization_method, quantize_for_cpu


needs_torchao = pytest.mark.skipif("torchao-int8" not in available_methods(), reason="torchao not installed")
TARGETS = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])


def generate(model, beams, **extra):
    with torch.inference_mode():
        return model.generate(
            **padded_batch(), max_new_tokens=6, min_new_tokens=6, num_beams=beams, do_sample=False, **extra
        )


def test_int8_swaps_every_linear_and_generates_greedy_and_beam_under_inference_mode():
    model = tiny_model()
    with torch.no_grad():
        float_logits = model(**padded_batch(), decoder_input_ids=TARGETS).logits
        model(**padded_batch(), decoder_input_ids=TARGETS, logits_to_keep=1)  # builds the fp32 head copy
    assert "_lm_head_t_cache" in model.__dict__
    model.train()

    assert quantize_for_cpu(model) is model and quantization_method(model) == "int8"
    assert not model.training and "_lm_head_t_cache" not in model.__dict__  # no stale 415 MB copy at full size
    assert not any(type(module) is nn.Linear for module in model.modules())
    assert type(model.lm_head).__module__.startswith("torch.ao.nn.quantized.dynamic")

    for beams in (1, 3):
        out = generate(model, beams)
        assert out.shape == (2, 7) and out[:, 0].eq(0).all()
    with torch.inference_mode():
        logits = model(**padded_batch(), decoder_input_ids=TARGETS).logits
        last = model(**padded_batch(), decoder_input_ids=TARGETS, logits_to_keep=1).logits
    assert "_lm_head_t_cache" not in model.__dict__
    torch.testing.assert_close(last, logits[:, -1:])
    # int8 rounding: close to the float logits, not equal to them
    error = (logits - float_logits).abs().max() / float_logits.abs().max()
    assert 0 < error < 0.1


def test_int8_cached_generation_equals_uncached():
    model = quantize_for_cpu(tiny_model())
    for beams in (1, 3):
        assert torch.equal(generate(model, beams), generate(model, beams, use_cache=False))


def test_int8_on_a_remote_code_folder(tmp_path):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    tiny_model().save_pretrained(tmp_path / "model")
    # What AutoModelForSeq2SeqLM(trust_remote_code=True) loads where the package is absent: the folder's own code
    # (in this process the package's registration would win, so the class is taken from the folder directly).
    remote = get_class_from_dynamic_module("modeling_xlm_swcm.XLMSWCMForConditionalGeneration", tmp_path / "model")
    model = remote.from_pretrained(tmp_path / "model").eval()
    assert type(model).__module__.startswith("transformers_modules")
    reference = [generate(model, beams) for beams in (1, 3)]
    quantize_for_cpu(model)
    for beams, fp32 in zip((1, 3), reference):
        assert generate(model, beams).shape == fp32.shape

    with pytest.raises(InputError, match="cannot be saved with save_pretrained.*quantize_for_cpu after loading"):
        model.save_pretrained(tmp_path / "quantized")
    assert not (tmp_path / "quantized").exists()


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(InputError, match="Unknown quantization method 'int3'; choose one of int8"):
        quantize_for_cpu(tiny_model(), "int3")
    with pytest.raises(InputError, match="needs a PyTorch model"):
        quantize_for_cpu("model")
    model = quantize_for_cpu(tiny_model())
    with pytest.raises(InputError, match=r"already quantized \(int8\); load the float model again"):
        quantize_for_cpu(model)
    with pytest.raises(InputError, match="float32 weights.*torch.bfloat16.*model.float"):
        quantize_for_cpu(tiny_model().to(torch.bfloat16))
    with pytest.raises(InputError, match="weights on meta; call model.to\\('cpu'\\) first"):
        quantize_for_cpu(tiny_model().to("meta"))
    with pytest.raises(InputError, match="no nn.Linear"):
        quantize_for_cpu(nn.Sequential(nn.ReLU()))
    assert set(METHODS) >= {"int8"} and "int8" in available_methods()


def test_a_peft_model_is_merged_before_quantization():
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(task_type=peft.TaskType.SEQ_2_SEQ_LM, r=4, target_modules=["q_proj", "v_proj"])
    model = peft.get_peft_model(tiny_model(), config)
    with torch.no_grad():  # a non-zero adapter, so merging matters
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    quantized = quantize_for_cpu(model)
    assert quantized is not model and quantization_method(quantized) == "int8"
    assert not any(type(m).__module__.startswith("peft.") for m in quantized.modules())
    assert generate(quantized, 2).shape == (2, 7)

    with pytest.raises(InputError, match="holds peft adapter layers; merge them first"):
        quantize_for_cpu(peft.get_peft_model(tiny_model(), config).base_model.model)


def test_transposed_head_steps_aside_for_a_quantized_weight_subclass():
    """The fast path reads the head weight's storage; a tensor subclass (torchao keeps nn.Linear and swaps its
    weight) must take the module's own forward, or inference_mode fails with 'Cannot set version_counter'."""
    model = tiny_model()

    class Wrapped(torch.Tensor):  # any subclass: the check is on the exact type
        pass

    with torch.no_grad():
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().as_subclass(Wrapped), requires_grad=False)
    with torch.inference_mode():
        model(**padded_batch(), decoder_input_ids=TARGETS, logits_to_keep=1)
    assert "_lm_head_t_cache" not in model.__dict__


@needs_torchao
@pytest.mark.parametrize("method", ["torchao-int8", "torchao-int8-weight-only"])
def test_torchao_methods_generate_under_inference_mode(method):
    model = tiny_model()
    with torch.no_grad():
        model(**padded_batch(), decoder_input_ids=TARGETS, logits_to_keep=1)
    quantize_for_cpu(model, method)
    assert quantization_method(model) == method and "_lm_head_t_cache" not in model.__dict__
    assert type(model.lm_head.weight) not in (torch.Tensor, nn.Parameter)  # torchao's subclass
    for beams in (1, 3):  # used to fail inside compute_logits' transposed-head fast path
        assert generate(model, beams).shape == (2, 7)
    assert "_lm_head_t_cache" not in model.__dict__


@needs_torchao
def test_torchao_int4_quantizes_what_its_kernel_can_pack():
    from conftest import TINY_ENCODER

    model = tiny_model(hidden_size=128, intermediate_size=256, num_attention_heads=4)
    assert TINY_ENCODER["vocab_size"] % 16 != 0  # the head (99 words) stays bfloat16, as the 135135-word one does
    quantize_for_cpu(model, "torchao-int4-weight-only")
    assert model.lm_head.weight.dtype == torch.bfloat16 and type(model.lm_head.weight) is nn.Parameter
    assert type(model.model.decoder.layers[0].self_attn.q_proj.weight) is not nn.Parameter
    assert generate(model, 2).shape == (2, 7)


def test_evaluate_script_quantizes_a_remote_code_folder(tmp_path):
    rows = [{"source": f"hello world {i}", "target": f"salam dunya {i}", "lang": "ug"} for i in range(6)]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    folder = pairs_model_folder(tmp_path / "model", rows)
    for beams in ("1", "2"):
        out = tmp_path / f"eval{beams}"
        argv = ["--model", folder, "--data", data, "--output", out, "--quantize", "int8", "--trust-remote-code"]
        assert run_script("evaluate_model", [*argv, "--num-beams", beams, "--max-new-tokens", "4"]) == 0
        assert len((out / "predictions.jsonl").read_text().splitlines()) == 6
        assert json.loads((out / "metrics.json").read_text())["all"]["count"] == 6
