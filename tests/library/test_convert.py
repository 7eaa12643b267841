"""Original-checkpoint conversion: parity with an independent re-implementation of the reference, and loud failures."""

import json
import os

import pytest
import torch
from conftest import run_script
from reference_swcm import random_reference_state_dict, tiny_config

from xlm_swcm_hf import XLMSWCMConfig
from xlm_swcm_hf.convert import (
    CheckpointConversionError,
    convert_original_state_dict,
    load_original_checkpoint,
)


def run_convert(argv):
    return run_script("convert_original_checkpoint", argv)


def source_batch():
    input_ids = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 13, 2, 1, 1, 1]])
    decoder_input_ids = torch.tensor([[0, 20, 21, 22, 23], [0, 30, 31, 32, 1]])
    return input_ids, (input_ids != 1).long(), decoder_input_ids


def save_checkpoint(state_dict, path, module_prefix=False, wrapper=None):
    if module_prefix:
        state_dict = {f"module.{k}": v for k, v in state_dict.items()}
    if wrapper:
        state_dict = {wrapper: state_dict, "epoch": 3} if wrapper != "bare" else state_dict
    torch.save(state_dict, path)
    return path


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("module_prefix", [False, True])
def test_converted_logits_equal_the_reference(tmp_path, residual, module_prefix):
    encoder_config = tiny_config(num_hidden_layers=4)
    reference, state_dict = random_reference_state_dict(encoder_config, 3, seed=7, self_attn_residual=residual)
    path = save_checkpoint(state_dict, tmp_path / "xlm-swcm.bin", module_prefix=module_prefix)
    model = load_original_checkpoint(path, encoder_config, custom_self_attn_residual=residual)
    assert model.config.decoder_layout == ["custom", "custom", "custom", "normal", "custom"]

    input_ids, attention_mask, decoder_input_ids = source_batch()
    with torch.no_grad():
        expected = reference(input_ids, attention_mask, decoder_input_ids)
        actual = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(actual, expected, atol=1e-5), (actual - expected).abs().max()

    # The wrong residual setting is detectably wrong: the flag matters for converted checkpoints.
    other = load_original_checkpoint(path, encoder_config, custom_self_attn_residual=not residual)
    with torch.no_grad():
        wrong = other(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert not torch.allclose(wrong, expected, atol=1e-3)


def test_greedy_decoding_equals_step_by_step_reference(tmp_path):
    encoder_config = tiny_config(num_hidden_layers=6)
    reference, state_dict = random_reference_state_dict(encoder_config, 3, seed=11)
    model = load_original_checkpoint(save_checkpoint(state_dict, tmp_path / "ckpt.bin"), encoder_config)
    input_ids, attention_mask, _ = source_batch()
    expected = reference.greedy_generate(input_ids, attention_mask, max_new_tokens=12)
    actual = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12, do_sample=False)
    assert actual.tolist() == expected.tolist()


@pytest.mark.parametrize("wrapper", ["model_state_dict", "state_dict"])
def test_wrapped_checkpoints_and_interval_inference(tmp_path, wrapper):
    encoder_config = tiny_config(num_hidden_layers=4)
    reference, state_dict = random_reference_state_dict(encoder_config, 2, seed=3)
    path = save_checkpoint(state_dict, tmp_path / "ckpt.bin", wrapper=wrapper)
    model = load_original_checkpoint(path, encoder_config)
    assert model.config.normal_layer_interval == 2
    input_ids, attention_mask, decoder_input_ids = source_batch()
    with torch.no_grad():
        expected = reference(input_ids, attention_mask, decoder_input_ids)
        actual = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(actual, expected, atol=1e-5)


def test_conversion_drops_pooler_and_embedding_copies_and_splits_qkv():
    encoder_config = tiny_config(num_hidden_layers=4)
    _, state_dict = random_reference_state_dict(encoder_config, 3)
    config = XLMSWCMConfig.from_encoder_config(encoder_config)
    converted = convert_original_state_dict(state_dict, config)
    assert not any("pooler" in key or "embed_layer" in key for key in converted)
    in_proj = state_dict["decoder.layers.0.cross_attention.in_proj_weight"]
    hidden = encoder_config.hidden_size
    assert torch.equal(converted["model.decoder.layers.0.encoder_attn.k_proj.weight"], in_proj[hidden : 2 * hidden])
    assert torch.equal(converted["lm_head.bias"], state_dict["decoder.last_linear.bias"])


def test_errors_name_the_keys():
    encoder_config = tiny_config(num_hidden_layers=4)
    _, state_dict = random_reference_state_dict(encoder_config, 3)
    config = XLMSWCMConfig.from_encoder_config(encoder_config)

    renamed = dict(state_dict)
    renamed["decoder.layers.1.norm_2.weight"] = renamed.pop("decoder.layers.1.norm2.weight")
    with pytest.raises(CheckpointConversionError) as error:
        convert_original_state_dict(renamed, config)
    assert "decoder.layers.1.norm_2.weight" in str(error.value)
    assert "model.decoder.layers.1.ffn1_layer_norm.weight" in str(error.value)

    diverged = dict(state_dict)
    diverged["decoder.embed_layer.LayerNorm.bias"] = diverged["decoder.embed_layer.LayerNorm.bias"] + 1
    with pytest.raises(CheckpointConversionError, match="decoder.embed_layer.LayerNorm.bias differs"):
        convert_original_state_dict(diverged, config)

    wrong_interval = XLMSWCMConfig.from_encoder_config(encoder_config, normal_layer_interval=2)
    with pytest.raises(CheckpointConversionError, match="normal_layer_interval"):
        convert_original_state_dict(state_dict, wrong_interval)

    bigger_vocab = XLMSWCMConfig.from_encoder_config(encoder_config, vocab_size=120)
    with pytest.raises(CheckpointConversionError, match="vocabulary-size mismatch") as error:
        convert_original_state_dict(state_dict, bigger_vocab)
    assert "word_embeddings" in str(error.value) and "lm_head.weight" in str(error.value)


# ---------------------------------------------------------------- the command line


@pytest.fixture
def encoder_folder(tmp_path):
    """The encoder's config + tokenizer, as the user's CINO folder would hold them."""
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    encoder_config = tiny_config(num_hidden_layers=4)
    tokenizer = build_tiny_xlmr_tokenizer(vocab_size=encoder_config.vocab_size)
    assert len(tokenizer) <= encoder_config.vocab_size
    folder = tmp_path / "cino"
    encoder_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, encoder_config


def test_script_writes_a_verified_hub_folder(tmp_path, encoder_folder, capsys):
    folder, encoder_config = encoder_folder
    reference, state_dict = random_reference_state_dict(encoder_config, 3, seed=5, self_attn_residual=False)
    checkpoint = save_checkpoint(state_dict, tmp_path / "xlm-swcm.bin", module_prefix=True)
    output = tmp_path / "converted"
    assert (
        run_convert(["--checkpoint", checkpoint, "--encoder", folder, "--output", output, "--no-self-attn-residual"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "parameters:" in printed and "verified" in printed

    names = set(os.listdir(output))
    assert {"model.safetensors", "config.json", "generation_config.json", "README.md"} <= names
    assert {"configuration_xlm_swcm.py", "modeling_xlm_swcm.py", "tokenizer_config.json"} <= names
    config = json.loads((output / "config.json").read_text())
    assert config["custom_self_attn_residual"] is False and "auto_map" in config

    from transformers import AutoModelForSeq2SeqLM

    loaded = AutoModelForSeq2SeqLM.from_pretrained(output, trust_remote_code=True).eval()
    input_ids, attention_mask, decoder_input_ids = source_batch()
    with torch.no_grad():
        expected = reference(input_ids, attention_mask, decoder_input_ids)
        actual = loaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(actual, expected, atol=1e-5)

    # A second run refuses to overwrite silently.
    assert run_convert(["--checkpoint", checkpoint, "--encoder", folder, "--output", output]) == 2


def _corrupt_truncated(state_dict, path):
    torch.save(state_dict, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_renamed(state_dict, path):
    state_dict = dict(state_dict)
    state_dict["decoder.layers.2.ffn2.0.weights"] = state_dict.pop("decoder.layers.2.ffn2.0.weight")
    torch.save(state_dict, path)


def _corrupt_vocab(state_dict, path):
    state_dict = dict(state_dict)
    for key in list(state_dict):
        if key.endswith("word_embeddings.weight") or key.startswith("decoder.last_linear"):
            tensor = state_dict[key]
            state_dict[key] = torch.cat([tensor, tensor[:5]])
    torch.save(state_dict, path)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (_corrupt_truncated, "truncated"),
        (_corrupt_renamed, "decoder.layers.2.ffn2.0.weights"),
        (_corrupt_vocab, "vocabulary-size mismatch"),
    ],
)
def test_corrupted_inputs_fail_clearly_and_leave_no_folder(tmp_path, encoder_folder, capsys, corrupt, message):
    folder, encoder_config = encoder_folder
    _, state_dict = random_reference_state_dict(encoder_config, 3)
    checkpoint = tmp_path / "bad.bin"
    corrupt(state_dict, checkpoint)
    output = tmp_path / "out"
    assert run_convert(["--checkpoint", checkpoint, "--encoder", folder, "--output", output]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "staging folder left behind"
