import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import TINY_ENCODER, padded_batch, tiny_config, tiny_model

from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration, shared_weight_mapping


VARIANTS = [
    dict(decoder_layer_norm_position="pre"),
    dict(decoder_layer_norm_position="post"),
    dict(custom_self_attn_residual=False),
    dict(normal_layer_interval=0),
    dict(normal_layer_interval=2, tie_word_embeddings=True),
]


def decoder_targets():
    return torch.tensor([[0, 20, 21, 22, 23, 24], [0, 30, 31, 32, 33, 34]])


# ---------------------------------------------------------------- config


def test_layout_follows_the_paper():
    config = tiny_config(num_hidden_layers=12)
    assert "".join(kind[0].upper() for kind in config.decoder_layout) == "CCCNCCCNCCCNCCC"
    assert config.decoder_layers == 15
    assert tiny_config(num_hidden_layers=12, normal_layer_interval=0).decoder_layout == ["custom"] * 12
    assert tiny_config(num_hidden_layers=4, normal_layer_interval=2).decoder_layout == [
        "custom",
        "custom",
        "normal",
        "custom",
        "custom",
    ]
    # The cache is sized from the decoder's view of the config.
    assert config.get_text_config(decoder=True).num_hidden_layers == 15


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("decoder_layer_norm_position", "middle", "decoder_layer_norm_position"),
        ("normal_layer_interval", -1, "normal_layer_interval"),
        ("normal_layer_interval", True, "normal_layer_interval"),
        ("normal_layer_interval", 1.5, "normal_layer_interval"),
        ("num_attention_heads", 5, "num_attention_heads"),
        ("decoder_layout", ["custom", "weird"], "decoder_layout"),
        ("decoder_layout", ["custom"] * 5, "decoder_layout.*num_hidden_layers=6"),
        ("decoder_layout", ["custom"] * 7 + ["normal"], "decoder_layout.*num_hidden_layers=6"),
        ("decoder_layout", "custom", "decoder_layout"),
        ("hidden_dropout_prob", 1.5, "hidden_dropout_prob"),
        ("pad_token_id", None, "pad_token_id"),
        ("pad_token_id", 99, "pad_token_id.*vocab_size=99"),
        ("decoder_start_token_id", -1, "decoder_start_token_id"),
        ("decoder_start_token_id", None, "decoder_start_token_id"),
        ("eos_token_id", 120, "eos_token_id"),
        ("eos_token_id", [2, 99], "eos_token_id"),
        ("bos_token_id", 99, "bos_token_id"),
    ],
)
def test_bad_config_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})


def test_explicit_layout_is_any_sequence_with_one_custom_layer_per_encoder_layer():
    layout = ["normal", "custom", "custom", "normal", "normal", "custom", "custom", "custom", "custom"]
    config = tiny_config(decoder_layout=layout)
    assert config.decoder_layout == layout and config.decoder_layers == 9
    assert config.normal_layer_interval is None  # no interval derives this layout
    model = XLMSWCMForConditionalGeneration(config)
    assert [
        "normal" if "Normal" in type(layer).__name__ else "custom" for layer in model.model.decoder.layers
    ] == layout
    # A layout that an interval derives records that interval; both given and disagreeing is refused.
    assert tiny_config(decoder_layout=["custom"] * 6).normal_layer_interval == 0
    assert tiny_config(decoder_layout=tiny_config(normal_layer_interval=2).decoder_layout).normal_layer_interval == 2
    with pytest.raises(ValueError, match="does not match"):
        tiny_config(decoder_layout=["custom"] * 6, normal_layer_interval=3)


def test_configs_saved_before_the_interval_default_changed_still_load(tmp_path):
    # Older saves omitted normal_layer_interval when it equalled the then-default 3; the stored layout says it all.
    values = {**TINY_ENCODER, "model_type": "xlm-swcm", "decoder_layout": tiny_config().decoder_layout}
    (tmp_path / "config.json").write_text(json.dumps(values))
    config = XLMSWCMConfig.from_pretrained(tmp_path)
    assert config.normal_layer_interval == 3 and config.decoder_layout == tiny_config().decoder_layout


@pytest.mark.parametrize("edit", [dict(normal_layer_interval=2), dict(num_hidden_layers=4)])
def test_config_edited_after_construction_cannot_change_the_model_silently(tmp_path, edit):
    model = tiny_model()
    for field, value in edit.items():
        setattr(model.config, field, value)
    with pytest.raises(ValueError, match="decoder_layout"):
        model.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="decoder_layout"):
        XLMSWCMForConditionalGeneration(model.config)
    # Re-deriving the layout on purpose is possible, and then builds (and saves) the new model consistently.
    model.config.decoder_layout = model.config.decoder_layers = None
    if "num_hidden_layers" in edit:
        return  # the encoder weights no longer fit; nothing else to check
    rebuilt = XLMSWCMForConditionalGeneration(model.config)
    rebuilt.save_pretrained(tmp_path / "rebuilt")
    reloaded = XLMSWCMForConditionalGeneration.from_pretrained(tmp_path / "rebuilt")
    assert reloaded.config.decoder_layout == tiny_config(**edit).decoder_layout
    assert len(reloaded.model.decoder.layers) == len(tiny_config(**edit).decoder_layout)


def test_from_encoder_config_rejects_non_xlmr(tmp_path):
    from transformers import BertConfig

    with pytest.raises(ValueError, match="XLM-R-family"):
        XLMSWCMConfig.from_encoder_config(BertConfig())
    BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="XLM-R-family"):
        XLMSWCMForConditionalGeneration.from_encoder(tmp_path)


def test_full_size_model_has_reference_parameter_count():
    config = XLMSWCMConfig(vocab_size=135135)  # CINO-base-v2 dimensions are the defaults
    with torch.device("meta"):
        model = XLMSWCMForConditionalGeneration(config)
    count = sum(p.numel() for p in model.parameters())
    pooler = 768 * 768 + 768  # in the reference checkpoint, unused, not in this port
    assert abs(count + pooler - 492_204_255) == 0, count
    assert round((count + pooler) / 1e6) == 492
    kinds = [type(layer).__name__ for layer in model.model.decoder.layers]
    assert "".join("N" if "Normal" in k else "C" for k in kinds) == "CCCNCCCNCCCNCCC"
    assert model.lm_head.bias is not None and not model.config.tie_word_embeddings


# ---------------------------------------------------------------- forward, cache, padding


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_cached_decoding_reproduces_full_forward(variant):
    model = tiny_model(**variant)
    batch = padded_batch()
    targets = decoder_targets()
    with torch.no_grad():
        full = model(**batch, decoder_input_ids=targets, use_cache=False).logits
        step = model(**batch, decoder_input_ids=targets[:, :1], use_cache=True)
        logits, cache = [step.logits], step.cache
        encoder_outputs = (step.encoder_last_hidden_state,)
        for position in range(1, targets.shape[1]):
            step = model(
                encoder_outputs=encoder_outputs,
                attention_mask=batch["attention_mask"],
                decoder_input_ids=targets[:, position : position + 1],
                cache=cache,
                use_cache=True,
            )
            logits.append(step.logits)
            cache = step.cache
    assert torch.allclose(torch.cat(logits, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_generate_with_and_without_cache_agree(variant):
    model = tiny_model(**variant)
    batch = padded_batch()
    for kwargs in (
        dict(do_sample=False),
        dict(num_beams=3, num_return_sequences=2, length_penalty=0.7, no_repeat_ngram_size=2, early_stopping=True),
    ):
        cached = model.generate(**batch, max_new_tokens=10, use_cache=True, **kwargs)
        uncached = model.generate(**batch, max_new_tokens=10, use_cache=False, **kwargs)
        assert torch.equal(cached, uncached), kwargs
    assert (cached[:, 0] == model.config.decoder_start_token_id).all()


def test_sampling_is_seeded_and_varies():
    model = tiny_model()
    batch = padded_batch()
    torch.manual_seed(3)
    first = model.generate(**batch, do_sample=True, top_k=20, max_new_tokens=12)
    torch.manual_seed(3)
    again = model.generate(**batch, do_sample=True, top_k=20, max_new_tokens=12)
    torch.manual_seed(4)
    other = model.generate(**batch, do_sample=True, top_k=20, max_new_tokens=12)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_padded_batch_equals_one_by_one():
    model = tiny_model()
    batch = padded_batch()
    targets = decoder_targets()
    with torch.no_grad():
        batched = model(**batch, decoder_input_ids=targets).logits
    generated = model.generate(**batch, max_new_tokens=8, num_beams=2)
    for row in range(2):
        length = int(batch["attention_mask"][row].sum())
        single = {key: value[row : row + 1, :length] for key, value in batch.items()}
        with torch.no_grad():
            alone = model(**single, decoder_input_ids=targets[row : row + 1]).logits
        assert torch.allclose(alone, batched[row : row + 1], atol=1e-5)
        alone_generated = model.generate(**single, max_new_tokens=8, num_beams=2)
        width = alone_generated.shape[1]
        assert torch.equal(alone_generated[0], generated[row, :width])
        assert (generated[row, width:] == model.config.pad_token_id).all()


def test_decoder_is_causal_and_source_padding_is_ignored():
    model = tiny_model()
    batch = padded_batch()
    targets = decoder_targets()
    changed = targets.clone()
    changed[:, 4] = 50
    garbage = {k: v.clone() for k, v in batch.items()}
    garbage["input_ids"][1, 4:] = 77  # under attention_mask 0
    with torch.no_grad():
        reference = model(**batch, decoder_input_ids=targets).logits
        future_changed = model(**batch, decoder_input_ids=changed).logits
        masked_garbage = model(**garbage, decoder_input_ids=targets).logits
    assert torch.allclose(reference[:, :4], future_changed[:, :4], atol=1e-6)
    assert not torch.allclose(reference[:, 4:], future_changed[:, 4:])
    assert torch.allclose(reference[1], masked_garbage[1], atol=1e-6)


def test_eager_and_sdpa_agree():
    model = tiny_model()
    batch = padded_batch()
    targets = decoder_targets()
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(**batch, decoder_input_ids=targets).logits
        model.set_attn_implementation("sdpa")
        sdpa = model(**batch, decoder_input_ids=targets).logits
    assert torch.allclose(eager, sdpa, atol=1e-5)


def test_self_attention_residual_switch_changes_the_computation():
    with torch.no_grad():
        on = tiny_model(custom_self_attn_residual=True)(**padded_batch(), decoder_input_ids=decoder_targets()).logits
        off = tiny_model(custom_self_attn_residual=False)(**padded_batch(), decoder_input_ids=decoder_targets()).logits
    assert not torch.allclose(on, off, atol=1e-3)


def test_over_long_and_empty_inputs_get_clear_errors():
    model = tiny_model()
    limit = TINY_ENCODER["max_position_embeddings"] - TINY_ENCODER["pad_token_id"] - 1
    # The default length (start token + new tokens) stays within the position table; callers can override it.
    assert model.generation_config.max_length == limit + 1 and model.generation_config.max_new_tokens is None
    long_source = torch.full((1, limit + 1), 5)
    with pytest.raises(ValueError, match="Truncate the input"):
        model(input_ids=long_source, decoder_input_ids=decoder_targets()[:1])
    with pytest.raises(ValueError, match="max_new_tokens"):
        model(**padded_batch(), decoder_input_ids=torch.full((2, limit + 1), 5))
    with pytest.raises(ValueError, match="1 to"):
        model(input_ids=torch.zeros((1, 0), dtype=torch.long), decoder_input_ids=decoder_targets()[:1])


# ---------------------------------------------------------------- loss, training


def test_labels_give_cross_entropy_on_shifted_inputs():
    model = tiny_model()
    batch = padded_batch()
    labels = torch.tensor([[20, 21, 22, 2], [30, 31, 2, -100]])
    out = model(**batch, labels=labels)
    decoder_input_ids = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 2]])
    explicit = model(**batch, decoder_input_ids=decoder_input_ids).logits
    expected = torch.nn.functional.cross_entropy(explicit.view(-1, 99), labels.view(-1), ignore_index=-100)
    assert torch.allclose(out.logits, explicit)
    assert torch.allclose(out.loss, expected)
    # The decoder never starts "<s> <s>": labels carry no leading <s>, the start token is prepended once.
    assert torch.equal(model.prepare_decoder_input_ids_from_labels(labels), decoder_input_ids)


def test_gradient_checkpointing_gives_the_same_gradients():
    batch = padded_batch()
    labels = torch.tensor([[20, 21, 22, 2], [30, 31, 2, -100]])

    def gradients(checkpointing):
        model = tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            decoder = model.model.decoder
            assert decoder.gradient_checkpointing
            checkpoint, calls = decoder._gradient_checkpointing_func, []
            decoder._gradient_checkpointing_func = lambda *args, **kw: calls.append(1) or checkpoint(*args, **kw)
        model(**batch, labels=labels).loss.backward()
        if checkpointing:
            assert len(calls) == len(model.model.decoder.layers)  # every decoder layer ran under checkpointing
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 100
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name


def test_resize_token_embeddings_keeps_head_and_bias_in_step():
    model = tiny_model()
    old_bias = model.lm_head.bias.detach().clone()
    model.resize_token_embeddings(105)
    assert model.config.vocab_size == 105
    assert model.get_input_embeddings().weight.shape[0] == 105
    assert model.lm_head.weight.shape[0] == 105 and model.lm_head.bias.shape[0] == 105
    assert torch.equal(model.lm_head.bias[:99], old_bias)
    logits = model(**padded_batch(), decoder_input_ids=decoder_targets()).logits
    assert logits.shape[-1] == 105


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("tied", [False, True])
def test_save_load_round_trip_is_bit_identical(tmp_path, tied):
    model = tiny_model(tie_word_embeddings=tied)
    if tied:
        assert model.lm_head.weight is model.model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_xlm_swcm.XLMSWCMForConditionalGeneration"
    assert (tmp_path / "modeling_xlm_swcm.py").exists() and (tmp_path / "configuration_xlm_swcm.py").exists()
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert (generation["decoder_start_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (0, 2, 1)

    loaded = XLMSWCMForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        before = model(**padded_batch(), decoder_input_ids=decoder_targets()).logits
        after = loaded(**padded_batch(), decoder_input_ids=decoder_targets()).logits
    assert torch.equal(before, after)
    assert (loaded.lm_head.weight is loaded.model.get_input_embeddings().weight) == tied


def test_auto_class_with_remote_code_where_package_is_absent(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    model.model.save_pretrained(tmp_path / "base")
    for folder, own_class in (("model", "AutoModelForSeq2SeqLM"), ("base", "AutoModel")):
        auto_map = json.loads((tmp_path / folder / "config.json").read_text())["auto_map"]
        assert auto_map["AutoModel"] == "modeling_xlm_swcm.XLMSWCMModel", auto_map
        assert own_class in auto_map and "AutoConfig" in auto_map
    expected = model.generate(**padded_batch(), max_new_tokens=6, num_beams=2).tolist()
    targets = decoder_targets()
    with torch.no_grad():
        expected_hidden = model.model(**padded_batch(), decoder_input_ids=targets).last_hidden_state
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["xlm_swcm_hf"] = None  # make the installed package unimportable
        import torch
        from transformers import AutoModel, AutoModelForSeq2SeqLM
        try:
            import xlm_swcm_hf
            raise SystemExit("package still importable")
        except ImportError:
            pass
        input_ids = torch.tensor({padded_batch()["input_ids"].tolist()})
        attention_mask = (input_ids != 1).long()
        targets = torch.tensor({targets.tolist()})
        hidden = {{}}
        for folder in ("model", "base"):
            base = AutoModel.from_pretrained({str(tmp_path)!r} + "/" + folder, trust_remote_code=True).eval()
            assert type(base).__name__ == "XLMSWCMModel", type(base)
            assert type(base).__module__.startswith("transformers_modules"), type(base).__module__
            with torch.no_grad():
                out = base(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=targets)
            hidden[folder] = out.last_hidden_state.tolist()
        model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=6, num_beams=2)
        # A folder saved from the remote-code classes lists the base model as well.
        model.save_pretrained({str(tmp_path / "resaved")!r})
        print(json.dumps({{"generated": out.tolist(), "hidden": hidden}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["generated"] == expected
    for folder in ("model", "base"):
        assert torch.allclose(torch.tensor(child["hidden"][folder]), expected_hidden, atol=1e-6), folder
    resaved = json.loads((tmp_path / "resaved" / "config.json").read_text())["auto_map"]
    assert resaved["AutoModel"] == "modeling_xlm_swcm.XLMSWCMModel"


# ---------------------------------------------------------------- shared-weights initialisation


@pytest.mark.parametrize("position", ["pre", "post"])
def test_from_encoder_copies_exactly_the_mapped_tensors(tiny_encoder_dir, position):
    from transformers import XLMRobertaModel

    encoder = XLMRobertaModel.from_pretrained(tiny_encoder_dir)
    model = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, decoder_layer_norm_position=position)
    encoder_state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("pooler.")}
    model_state = model.model.state_dict()

    for name, tensor in encoder_state.items():
        assert torch.equal(model_state[f"encoder.{name}"], tensor), name

    mapping = shared_weight_mapping(model.config)
    custom_layers = model.config.decoder_layout.count("custom")
    per_layer = 2 * 4 * 2 + 2 * 2 * 2 + (8 if position == "post" else 0)
    assert len(mapping) == custom_layers * per_layer
    attention_sources = {source for source in mapping.values() if ".attention.self." in source}
    # Every query/key/value of every encoder layer is used (the reference copied none: defect 3).
    assert len(attention_sources) == TINY_ENCODER["num_hidden_layers"] * 6

    encoder_tensors = list(encoder_state.values())
    for name, tensor in model_state.items():
        if not name.startswith("decoder."):
            continue
        if name in mapping:
            assert torch.equal(tensor, model_state[mapping[name]]), name
            assert tensor.data_ptr() != model_state[mapping[name]].data_ptr(), "copied, not shared"
        else:
            # Nothing else came from the encoder: fresh LayerNorms are exactly ones/zeros, the rest random.
            same = [t for t in encoder_tensors if t.shape == tensor.shape and torch.equal(t, tensor)]
            if "layer_norm" in name:
                assert torch.equal(
                    tensor, torch.ones_like(tensor) if name.endswith("weight") else torch.zeros_like(tensor)
                )
            else:
                assert not same, name
    # Layer 3 is a normal layer: nothing copied into it.
    assert not any(name.startswith("decoder.layers.3.") for name in mapping)


def test_from_encoder_maps_custom_layer_i_to_encoder_layer_i_in_any_layout(tiny_encoder_dir):
    from transformers import XLMRobertaModel

    layout = ["normal", "custom", "custom", "normal", "normal", "custom", "custom", "custom", "custom"]
    encoder = XLMRobertaModel.from_pretrained(tiny_encoder_dir)
    model = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, decoder_layout=layout).eval()
    assert model.config.decoder_layout == layout
    custom_positions = [index for index, kind in enumerate(layout) if kind == "custom"]
    for encoder_index, decoder_index in enumerate(custom_positions):
        layer, source = model.model.decoder.layers[decoder_index], encoder.encoder.layer[encoder_index]
        assert type(layer).__name__ == "XLMSWCMCustomDecoderLayer"
        assert torch.equal(layer.self_attn.q_proj.weight, source.attention.self.query.weight)
        assert torch.equal(layer.encoder_attn.v_proj.bias, source.attention.self.value.bias)
        assert torch.equal(layer.ffn2.fc2.weight, source.output.dense.weight)
    mapped_layers = {int(name.split(".")[2]) for name in shared_weight_mapping(model.config)}
    assert mapped_layers == set(custom_positions)
    batch = padded_batch()
    cached = model.generate(**batch, max_new_tokens=5, num_beams=2)
    assert torch.equal(cached, model.generate(**batch, max_new_tokens=5, num_beams=2, use_cache=False))


class _RecordTransformersWarnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("transformers").addHandler(self)
        return self

    def __exit__(self, *exc_info):
        logging.getLogger("transformers").removeHandler(self)


def test_from_encoder_logs_no_load_report_for_deliberately_unused_weights(tiny_encoder_dir, tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

    XLMRobertaForMaskedLM(XLMRobertaConfig(**TINY_ENCODER)).save_pretrained(tmp_path / "masked-lm")
    for encoder in (tiny_encoder_dir, tmp_path / "masked-lm"):  # with a pooler; with a masked-LM head
        with _RecordTransformersWarnings() as log:
            model = XLMSWCMForConditionalGeneration.from_encoder(encoder)
        assert not [message for message in log.messages if "LOAD REPORT" in message], log.messages
        assert torch.equal(
            model.model.encoder.encoder.layer[5].output.dense.weight,
            XLMRobertaModel.from_pretrained(encoder).encoder.layer[5].output.dense.weight,
        )
    # Genuinely missing encoder weights are still reported.
    config = json.loads((tiny_encoder_dir / "config.json").read_text())
    (tiny_encoder_dir / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 7}))
    with _RecordTransformersWarnings() as log:
        XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir)
    assert any("LOAD REPORT" in message and "encoder.layer.6." in message for message in log.messages), log.messages


def test_from_encoder_head_options_and_ablation(tiny_encoder_dir):
    from transformers import XLMRobertaForMaskedLM

    embedded = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, lm_head_init="embeddings")
    assert torch.equal(embedded.lm_head.weight, embedded.model.get_input_embeddings().weight)
    assert embedded.lm_head.weight.data_ptr() != embedded.model.get_input_embeddings().weight.data_ptr()
    assert torch.equal(embedded.lm_head.bias, torch.zeros_like(embedded.lm_head.bias))

    tied = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, tie_word_embeddings=True)
    assert tied.lm_head.weight is tied.model.get_input_embeddings().weight

    random_decoder = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, share_weights=False)
    mapping = shared_weight_mapping(random_decoder.config)
    state = random_decoder.model.state_dict()
    assert not any(torch.equal(state[target], state[source]) for target, source in mapping.items())

    # A loaded model works as well as a folder, including a masked-LM wrapper around the encoder.
    masked_lm = XLMRobertaForMaskedLM.from_pretrained(tiny_encoder_dir)
    from_object = XLMSWCMForConditionalGeneration.from_encoder(masked_lm)
    assert torch.equal(
        from_object.model.decoder.layers[0].self_attn.q_proj.weight,
        masked_lm.roberta.encoder.layer[0].attention.self.query.weight,
    )
    with pytest.raises(ValueError, match="lm_head_init"):
        XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, lm_head_init="tied")
    with pytest.raises(ValueError, match="init_scheme"):
        XLMSWCMForConditionalGeneration.from_encoder(
            tiny_encoder_dir, init_scheme="scaled", decoder_layer_norm_position="post"
        )


def test_scaled_init_scheme(tiny_encoder_dir):
    copied = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir)
    scaled = XLMSWCMForConditionalGeneration.from_encoder(tiny_encoder_dir, init_scheme="scaled")
    factor = (2 * scaled.config.decoder_layers) ** -0.5
    for index, kind in enumerate(scaled.config.decoder_layout):
        layer, reference = scaled.model.decoder.layers[index], copied.model.decoder.layers[index]
        if kind == "custom":
            assert torch.equal(layer.self_attn.q_proj.weight, reference.self_attn.q_proj.weight)
            assert torch.equal(layer.ffn1.fc1.weight, reference.ffn1.fc1.weight)
            for name in ("self_attn.out_proj", "ffn1.fc2", "ffn2.fc2"):
                assert torch.allclose(layer.get_submodule(name).weight, reference.get_submodule(name).weight * factor)
            # Cross-attention starts random, not from the encoder's self-attention.
            assert not torch.equal(layer.encoder_attn.k_proj.weight, reference.encoder_attn.k_proj.weight)
            assert torch.equal(layer.encoder_attn.k_proj.bias, torch.zeros_like(layer.encoder_attn.k_proj.bias))
        else:
            for name in ("self_attn.out_proj", "encoder_attn.out_proj", "ffn.fc2"):
                assert not layer.get_submodule(name).weight.any() and not layer.get_submodule(name).bias.any()
    # The point of the scheme: the pre-LN residual stream stays small at initialisation.
    batch = padded_batch()
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])

    with torch.no_grad():
        scaled_out = scaled.eval()(**batch, decoder_input_ids=targets, output_hidden_states=True).decoder_hidden_states
        copied_out = copied.eval()(**batch, decoder_input_ids=targets, output_hidden_states=True).decoder_hidden_states
    assert scaled_out[-1].pow(2).mean() < copied_out[-1].pow(2).mean()
