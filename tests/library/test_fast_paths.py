"""The inference fast paths the benchmark measures give the same outputs: the transposed LM head, the last-position
head, cached decoding against no cache, bf16 weights on the CPU."""

import torch
from conftest import padded_batch, tiny_model


def test_transposed_lm_head_matches_the_linear_head():
    model = tiny_model()
    batch = padded_batch()
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])
    with torch.no_grad():
        fast = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
        hidden = model.model(**batch, decoder_input_ids=targets).last_hidden_state
    assert "_lm_head_t_cache" in model.__dict__
    assert list(model.state_dict()) == list(tiny_model().state_dict())
    torch.testing.assert_close(fast, model.lm_head(hidden[:, -1:]), rtol=1e-5, atol=1e-5)

    model.lm_head_transposed_inference = False
    generated_plain = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    model.lm_head_transposed_inference = True
    generated_fast = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    assert torch.equal(generated_plain, generated_fast)

    # A changed head weight is picked up; training uses the parameter itself.
    with torch.no_grad():
        model.lm_head.weight.mul_(0.5)
        again = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
    torch.testing.assert_close(again, model.lm_head(hidden[:, -1:]), rtol=1e-5, atol=1e-5)
    model.train()
    model(**batch, labels=targets).loss.backward()
    assert model.lm_head.weight.grad is not None and "_lm_head_t_cache" not in model.__dict__


def test_last_position_head_equals_the_full_head():
    model = tiny_model()
    batch = padded_batch()
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]])
    with torch.no_grad():
        full = model(**batch, decoder_input_ids=targets).logits
        last = model(**batch, decoder_input_ids=targets, logits_to_keep=1).logits
    assert last.shape[1] == 1
    torch.testing.assert_close(last, full[:, -1:], rtol=1e-5, atol=1e-5)


def test_fast_paths_keep_generation_identical_to_no_cache():
    model = tiny_model()
    batch = padded_batch()
    for beams in (1, 3):
        cached = model.generate(**batch, max_new_tokens=8, min_new_tokens=8, num_beams=beams, do_sample=False)
        uncached = model.generate(
            **batch, max_new_tokens=8, min_new_tokens=8, num_beams=beams, do_sample=False, use_cache=False
        )
        assert torch.equal(cached, uncached)


def test_bf16_weights_generate_on_cpu():
    model = tiny_model().to(torch.bfloat16)
    out = model.generate(**padded_batch(), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (2, 6)
