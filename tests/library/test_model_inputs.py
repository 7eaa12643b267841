"""What the model accepts and returns: output recording, generation lengths, input checks, argument names."""

import warnings

import pytest
import torch
from conftest import TINY_ENCODER, padded_batch, tiny_model

from xlm_swcm_hf import XLMSWCMForConditionalGeneration


LIMIT = TINY_ENCODER["max_position_embeddings"] - TINY_ENCODER["pad_token_id"] - 1  # decoder positions: 62
EOS, PAD = TINY_ENCODER["eos_token_id"], TINY_ENCODER["pad_token_id"]


def decoder_targets():
    return torch.tensor([[0, 20, 21, 22, 23, 24], [0, 30, 31, 32, 33, 34]])


def count_calls(module):
    calls = []
    module.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


# ---------------------------------------------------------------- output_attentions / output_hidden_states / tuples


def test_attentions_and_hidden_states_are_returned_per_layer():
    model = tiny_model()
    model.set_attn_implementation("eager")
    batch, targets = padded_batch(), decoder_targets()
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=targets, output_attentions=True, output_hidden_states=True)
    encoder_layers, decoder_layers = TINY_ENCODER["num_hidden_layers"], len(model.config.decoder_layout)
    assert decoder_layers == 7  # normal layers included
    heads, source_length, target_length = TINY_ENCODER["num_attention_heads"], 7, 6
    assert len(out.encoder_attentions) == encoder_layers
    assert len(out.decoder_attentions) == len(out.cross_attentions) == decoder_layers
    assert len(out.encoder_hidden_states) == encoder_layers + 1
    assert len(out.decoder_hidden_states) == decoder_layers + 1
    assert all(a.shape == (2, heads, source_length, source_length) for a in out.encoder_attentions)
    assert all(a.shape == (2, heads, target_length, target_length) for a in out.decoder_attentions)
    assert all(a.shape == (2, heads, target_length, source_length) for a in out.cross_attentions)
    assert torch.equal(out.encoder_hidden_states[-1], out.encoder_last_hidden_state)
    for weights in (*out.encoder_attentions, *out.decoder_attentions, *out.cross_attentions):
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
    causal_future = torch.triu(torch.ones(target_length, target_length, dtype=torch.bool), diagonal=1)
    for weights in out.decoder_attentions:
        assert not weights[..., causal_future].any()
    padded = batch["attention_mask"] == 0  # row 1 has padding at source positions 4..6
    for weights in (*out.cross_attentions, *out.encoder_attentions):
        assert not weights[1][..., padded[1]].any()

    # Nothing is recorded unless asked.
    with torch.no_grad():
        plain = model(**batch, decoder_input_ids=targets)
    assert plain.decoder_attentions is plain.cross_attentions is plain.encoder_attentions is None
    assert plain.decoder_hidden_states is plain.encoder_hidden_states is None


def split_heads(states, head_dim):
    return states.view(*states.shape[:2], -1, head_dim).transpose(1, 2)


def test_recorded_attention_weights_are_the_eager_softmax():
    model = tiny_model()
    model.set_attn_implementation("eager")
    batch, targets = padded_batch(), decoder_targets()
    inputs = {}

    def keep_inputs(module, args, kwargs):
        inputs[module] = (args[0], kwargs.get("key_value_states"))

    attentions = [layer.self_attn for layer in model.model.decoder.layers]
    attentions += [layer.encoder_attn for layer in model.model.decoder.layers]
    for attention in attentions:
        attention.register_forward_pre_hook(keep_inputs, with_kwargs=True)
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=targets, output_attentions=True)
        recorded = dict(zip(attentions, out.decoder_attentions + out.cross_attentions))
        source_pad = (batch["attention_mask"] == 0)[:, None, None, :]
        causal = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
        for attention, weights in recorded.items():
            hidden, key_value = inputs[attention]
            cross = key_value is not None
            query = split_heads(attention.q_proj(hidden), attention.head_dim)
            key = split_heads(attention.k_proj(key_value if cross else hidden), attention.head_dim)
            scores = query @ key.transpose(-1, -2) * attention.scaling
            scores = scores.masked_fill(source_pad if cross else causal, float("-inf"))
            assert torch.allclose(weights, scores.softmax(-1), atol=1e-6)


def test_return_dict_false_gives_tuples():
    model = tiny_model()
    batch, targets = padded_batch(), decoder_targets()
    labels = torch.tensor([[20, 21, 22, 2], [30, 31, 2, -100]])
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=targets)
        as_tuple = model(**batch, decoder_input_ids=targets, return_dict=False)
        with_loss = model(**batch, labels=labels)
        loss_tuple = model(**batch, labels=labels, return_dict=False)
        base_tuple = model.model(**batch, decoder_input_ids=targets, return_dict=False, output_hidden_states=True)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.logits)
    assert isinstance(loss_tuple, tuple) and torch.equal(loss_tuple[0], with_loss.loss)
    assert isinstance(base_tuple, tuple)
    assert torch.equal(base_tuple[0], model.model(**batch, decoder_input_ids=targets).last_hidden_state)


def test_generate_can_return_attentions():
    model = tiny_model()
    model.set_attn_implementation("eager")
    out = model.generate(**padded_batch(), max_new_tokens=3, output_attentions=True, return_dict_in_generate=True)
    assert len(out.decoder_attentions) == 3 and len(out.decoder_attentions[0]) == len(model.config.decoder_layout)
    assert len(out.encoder_attentions) == TINY_ENCODER["num_hidden_layers"]


# ---------------------------------------------------------------- generation length


def test_a_max_length_from_the_caller_takes_effect():
    model = tiny_model()
    batch = padded_batch()
    never_stop = dict(suppress_tokens=[EOS, PAD])
    assert model.generate(**batch, max_length=5, **never_stop).shape == (2, 5)
    assert model.generate(**batch, max_new_tokens=3, **never_stop).shape == (2, 1 + 3)
    # The default still stops at the default length: the start token plus min(256, position limit) new tokens.
    assert model.generate(**batch, **never_stop).shape == (2, LIMIT + 1)
    # Also when the model's generation config holds a max_new_tokens (folders saved by earlier versions), as
    # Seq2SeqTrainer passes generation_max_length.
    model.generation_config.max_new_tokens, model.generation_config.max_length = 40, None
    assert model.generate(**batch, max_length=5, **never_stop).shape == (2, 5)
    from transformers import GenerationConfig

    given = GenerationConfig(max_length=4, suppress_tokens=[EOS, PAD])
    assert model.generate(**batch, generation_config=given).shape == (2, 4)
    assert model.generate(**batch, **never_stop).shape == (2, 41)


def test_saved_generation_config_keeps_an_overridable_default_length(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = XLMSWCMForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.generation_config.max_length == LIMIT + 1 and loaded.generation_config.max_new_tokens is None
    assert loaded.generate(**padded_batch(), max_length=3, suppress_tokens=[EOS, PAD]).shape == (2, 3)


@pytest.mark.parametrize(
    "length", [dict(max_new_tokens=LIMIT + 1), dict(max_length=LIMIT + 2), dict(max_new_tokens=1000, num_beams=2)]
)
def test_impossible_lengths_are_refused_before_decoding(length):
    model = tiny_model()
    decoder_calls = count_calls(model.model.decoder)
    with pytest.raises(ValueError, match=f"max_length={LIMIT + 1}, i.e. max_new_tokens={LIMIT}"):
        model.generate(**padded_batch(), **length)
    assert not decoder_calls


def test_the_longest_possible_generation_runs():
    model = tiny_model()
    out = model.generate(**padded_batch(), max_new_tokens=LIMIT, suppress_tokens=[EOS, PAD])
    assert out.shape == (2, LIMIT + 1)


# ---------------------------------------------------------------- input checks


def test_generate_checks_the_source_like_forward_before_any_work():
    model = tiny_model()
    encoder_calls = count_calls(model.model.encoder)
    for source in (torch.full((1, LIMIT + 1), 5), torch.zeros((1, 0), dtype=torch.long)):
        with pytest.raises(ValueError) as in_forward:
            model(input_ids=source, decoder_input_ids=decoder_targets()[:1])
        with pytest.raises(ValueError) as in_generate:
            model.generate(input_ids=source, max_new_tokens=3)
        with pytest.raises(ValueError) as positional:
            model.generate(source, max_new_tokens=3)
        assert str(in_forward.value) == str(in_generate.value) == str(positional.value)
        assert "Truncate the input" in str(in_generate.value)
    assert not encoder_calls
    # The longest allowed source is fine.
    assert model.generate(input_ids=torch.full((1, LIMIT), 5), max_new_tokens=2).shape[1] <= 3


@pytest.mark.parametrize("bad_id", [99, 1000, -1])
def test_token_ids_outside_the_vocabulary_get_a_clear_error(bad_id):
    model = tiny_model()
    batch, targets = padded_batch(), decoder_targets()
    message = f"token id {bad_id}, outside the vocabulary \\(vocab_size=99"
    source = batch["input_ids"].clone()
    source[0, 3] = bad_id
    encoder_calls = count_calls(model.model.encoder)
    with pytest.raises(ValueError, match="input_ids contains " + message):
        model(input_ids=source, attention_mask=batch["attention_mask"], decoder_input_ids=targets)
    with pytest.raises(ValueError, match="input_ids contains " + message):
        model.generate(input_ids=source, attention_mask=batch["attention_mask"], max_new_tokens=3)
    assert not encoder_calls
    bad_targets = targets.clone()
    bad_targets[1, 2] = bad_id
    with pytest.raises(ValueError, match="decoder_input_ids contains " + message):
        model(**batch, decoder_input_ids=bad_targets)
    with pytest.raises(ValueError, match="decoder_input_ids contains " + message):
        model.generate(**batch, decoder_input_ids=bad_targets, max_new_tokens=2)
    labels = torch.tensor([[20, 21, 22, 2], [30, bad_id, 2, -100]])
    with pytest.raises(ValueError, match="labels contains " + message):
        model(**batch, labels=labels)


@pytest.mark.parametrize(
    "source, mask",
    [
        ([[0, 5, 6, 2], [0, 7, 2, 1]], [[1, 1, 1, 1], [0, 0, 0, 0]]),  # an all-zero attention mask
        ([[0, 5, 6, 2], [0, 2, 1, 1]], [[1, 1, 1, 1], [1, 1, 0, 0]]),  # a tokenized "": <s></s>
    ],
)
def test_empty_sources_are_refused_before_any_work(source, mask):
    model = tiny_model()
    batch = {"input_ids": torch.tensor(source), "attention_mask": torch.tensor(mask)}
    encoder_calls = count_calls(model.model.encoder)
    with pytest.raises(ValueError, match=r"Source\(s\) \[1\] of the batch are empty"):
        model(**batch, decoder_input_ids=decoder_targets())
    with pytest.raises(ValueError, match=r"Source\(s\) \[1\] of the batch are empty"):
        model.generate(**batch, max_new_tokens=3)
    assert not encoder_calls


def test_generate_reads_the_inputs_once_not_at_every_step(monkeypatch):
    # A value check is a device sync on a GPU: generate checks its inputs once, the decoding steps never again.
    from xlm_swcm_hf import modeling_xlm_swcm

    checks = []
    for name in ("check_token_ids", "check_sources_are_not_empty"):
        original = getattr(modeling_xlm_swcm, name)
        monkeypatch.setattr(
            modeling_xlm_swcm,
            name,
            lambda *args, _name=name, _original=original, **kwargs: checks.append(_name) or _original(*args, **kwargs),
        )
    model = tiny_model()
    model.generate(**padded_batch(), max_new_tokens=6, min_new_tokens=6)
    assert sorted(checks) == ["check_sources_are_not_empty", "check_token_ids", "check_token_ids"]  # source, prompt
    assert not model._inputs_checked and not model.model._inputs_checked  # the flag is gone after generate
    checks.clear()
    model(**padded_batch(), decoder_input_ids=decoder_targets())
    assert sorted(checks) == ["check_sources_are_not_empty", "check_token_ids", "check_token_ids"]


def test_an_older_transformers_is_refused_at_import_with_one_line(monkeypatch):
    import importlib.util

    import transformers

    from xlm_swcm_hf import configuration_xlm_swcm

    monkeypatch.setattr(transformers, "__version__", "4.40.2")
    spec = importlib.util.spec_from_file_location("old_transformers_config", configuration_xlm_swcm.__file__)
    with pytest.raises(ImportError, match=r"^XLM-SWCM needs transformers>=4\.46 \(found 4\.40\.2\)"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


# ---------------------------------------------------------------- argument names, generated tokens


def test_the_cache_goes_by_either_name_without_warnings():
    # `past_key_values` on every transformers release; `cache` is transformers 5.24's name, which its generate passes.
    from xlm_swcm_hf.modeling_xlm_swcm import CACHE_FIELD

    model = tiny_model()
    batch, targets = padded_batch(), decoder_targets()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        full = model(**batch, decoder_input_ids=targets, use_cache=False).logits
        first = model(**batch, decoder_input_ids=targets[:, :3], use_cache=True)
        rest = model(
            **batch, decoder_input_ids=targets[:, 3:], past_key_values=getattr(first, CACHE_FIELD), use_cache=True
        )
        first_again = model(**batch, decoder_input_ids=targets[:, :3], use_cache=True)
        rest_again = model(**batch, decoder_input_ids=targets[:, 3:], cache=getattr(first_again, CACHE_FIELD))
    assert torch.allclose(torch.cat([first.logits, rest.logits], 1), full, atol=1e-5)
    assert torch.equal(rest.logits, rest_again.logits)


def test_pad_is_never_generated():
    # A generated <pad> would be embedded as padding by a full forward (XLM-R positions skip it) but not by cached
    # decoding, so the two would disagree from there on. It is never a target, so generation suppresses it.
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.bias[PAD] += 5.0  # make <pad> the likeliest token
    assert model.generation_config.suppress_tokens == [PAD]
    for kwargs in (dict(), dict(num_beams=3), dict(do_sample=True, top_k=5)):
        out = model.generate(**padded_batch(), max_new_tokens=8, **kwargs)
        for row in out[:, 1:].tolist():
            before_eos = row[: row.index(EOS)] if EOS in row else row
            assert PAD not in before_eos, (kwargs, row)


def test_gradient_accumulation_does_not_scale_the_loss(tmp_path):
    # Trainer skips its 1/accumulation-steps scaling for models that take `num_items_in_batch`; this loss does not.
    from torch.utils.data import Dataset
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    class Pairs(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, index):
            batch = padded_batch()
            row = {key: value[index % 2] for key, value in batch.items()}
            return {**row, "labels": torch.tensor([20, 21, 22, EOS])}

    model = tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    labels = torch.tensor([[20, 21, 22, EOS]] * 2)
    with torch.no_grad():
        expected = model(**padded_batch(), labels=labels).loss.item()  # every micro-batch is this batch
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        max_steps=1,
        learning_rate=0.0,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=Pairs())
    assert trainer.train().training_loss == pytest.approx(expected, rel=1e-5)


def test_a_cache_built_with_the_encoders_depth_gets_room_for_every_decoder_layer():
    # transformers 4.56 builds DynamicCache(config) with num_hidden_layers (the encoder's) layers and no way to grow.
    from transformers import XLMRobertaConfig
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    model = tiny_model()
    encoder_deep = XLMRobertaConfig(**TINY_ENCODER)
    cache = EncoderDecoderCache(DynamicCache(config=encoder_deep), DynamicCache(config=encoder_deep))
    if len(cache.self_attention_cache.layers) != TINY_ENCODER["num_hidden_layers"]:
        pytest.skip("this transformers does not pre-build cache layers from a config")
    batch, targets = padded_batch(), decoder_targets()
    with torch.no_grad():
        full = model(**batch, decoder_input_ids=targets, use_cache=False).logits
        cached = model(**batch, decoder_input_ids=targets, past_key_values=cache, use_cache=True).logits
    assert len(cache.self_attention_cache.layers) == len(model.config.decoder_layout)
    assert torch.allclose(cached, full, atol=1e-5)


def test_the_source_mask_reaches_forward_where_transformers_drops_it(monkeypatch):
    # transformers 4.49's prepare_inputs_for_generation passes only the decoder's mask on.
    from transformers.generation import GenerationMixin

    original = GenerationMixin.prepare_inputs_for_generation

    def dropping(self, *args, **kwargs):
        inputs = original(self, *args, **kwargs)
        inputs.pop("attention_mask", None)
        return inputs

    model = tiny_model()
    batch = padded_batch()
    settings = dict(max_new_tokens=5, output_scores=True, return_dict_in_generate=True)
    expected = model.generate(**batch, **settings)
    monkeypatch.setattr(GenerationMixin, "prepare_inputs_for_generation", dropping)
    got = model.generate(**batch, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    for step, expected_scores in zip(got.scores, expected.scores):
        assert torch.allclose(step, expected_scores, atol=1e-5)  # attending to the source padding would move them
