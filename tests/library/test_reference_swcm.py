"""Sanity tests of the independent reference re-implementation (tests/reference_swcm.py)."""

from __future__ import annotations

import os
import re
import sys

import pytest
import torch


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_swcm import ReferenceSeq2Seq, layer_kinds, random_reference_state_dict, tiny_config  # noqa: E402


PAD, BOS, EOS = 1, 0, 2
ATTN_KEYS = {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}
CUSTOM_KEYS = (
    {f"self_attention.{k}" for k in ATTN_KEYS}
    | {f"cross_attention.{k}" for k in ATTN_KEYS}
    | {f"{f}.{i}.{w}" for f in ("ffn1", "ffn2") for i in (0, 2) for w in ("weight", "bias")}
    | {f"norm{i}.{w}" for i in (1, 2, 3, 4) for w in ("weight", "bias")}
)
NORMAL_KEYS = (
    {f"self_attention.{k}" for k in ATTN_KEYS}
    | {f"cross_attention.{k}" for k in ATTN_KEYS}
    | {f"ffn.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")}
    | {f"norm{i}.{w}" for i in (1, 2) for w in ("weight", "bias")}
)


@pytest.fixture(scope="module")
def model4():
    return random_reference_state_dict(tiny_config(4), normal_layer_interval=3, seed=0)


def _src():
    ids = torch.tensor([[BOS, 5, 6, 7, 8, EOS], [BOS, 9, 10, EOS, PAD, PAD]])
    return ids, ids.ne(PAD).long()


def _decoder_layer_keys(sd):
    out: dict[int, set[str]] = {}
    for k in sd:
        m = re.match(r"decoder\.layers\.(\d+)\.(.+)$", k)
        if m:
            out.setdefault(int(m.group(1)), set()).add(m.group(2))
    return out


def test_state_dict_prefixes(model4):
    model, sd = model4
    allowed = re.compile(
        r"^(encoder\.|embed_layer\.|decoder\.embed_layer\.|decoder\.layers\.\d+\.|decoder\.last_linear\.)"
    )
    assert all(allowed.match(k) for k in sd), [k for k in sd if not allowed.match(k)]
    assert {k for k in sd if k.startswith("decoder.last_linear.")} == {
        "decoder.last_linear.weight",
        "decoder.last_linear.bias",
    }
    assert sd["decoder.last_linear.weight"].shape == (99, 32) and sd["decoder.last_linear.bias"].shape == (99,)
    assert "encoder.pooler.dense.weight" in sd and "encoder.pooler.dense.bias" in sd
    assert not any(k.startswith("module.") for k in sd)
    # no final decoder LayerNorm
    assert not any(
        k.startswith("decoder.")
        and not k.startswith(("decoder.layers.", "decoder.embed_layer.", "decoder.last_linear."))
        for k in sd
    )


def test_shared_embedding_emitted_three_times(model4):
    model, sd = model4
    assert model.embed_layer is model.encoder.embeddings is model.decoder.embed_layer
    enc = {k[len("encoder.embeddings.") :] for k in sd if k.startswith("encoder.embeddings.")}
    top = {k[len("embed_layer.") :] for k in sd if k.startswith("embed_layer.")}
    dec = {k[len("decoder.embed_layer.") :] for k in sd if k.startswith("decoder.embed_layer.")}
    assert (
        enc
        == top
        == dec
        == {
            "word_embeddings.weight",
            "position_embeddings.weight",
            "token_type_embeddings.weight",
            "LayerNorm.weight",
            "LayerNorm.bias",
        }
    )
    for s in enc:
        assert torch.equal(sd["encoder.embeddings." + s], sd["embed_layer." + s])
        assert torch.equal(sd["encoder.embeddings." + s], sd["decoder.embed_layer." + s])


def test_decoder_layer_keys_and_pattern(model4):
    model, sd = model4
    layers = _decoder_layer_keys(sd)
    assert model.decoder.kinds == ["C", "C", "C", "N", "C"]
    assert sorted(layers) == list(range(5))
    for i, kind in enumerate(model.decoder.kinds):
        assert layers[i] == (CUSTOM_KEYS if kind == "C" else NORMAL_KEYS), i
    assert "ffn.0.weight" in layers[3] and "norm3.weight" not in layers[3]
    assert sd["decoder.layers.0.self_attention.in_proj_weight"].shape == (96, 32)
    assert sd["decoder.layers.0.ffn1.0.weight"].shape == (37, 32)
    assert sd["decoder.layers.0.ffn1.2.weight"].shape == (32, 37)


def test_twelve_layer_pattern():
    model = ReferenceSeq2Seq(tiny_config(12), normal_layer_interval=3)
    assert "".join(model.decoder.kinds) == "CCCNCCCNCCCNCCC"
    layers = _decoder_layer_keys(model.state_dict())
    assert len(layers) == 15
    for i in range(15):
        assert layers[i] == (NORMAL_KEYS if i in (3, 7, 11) else CUSTOM_KEYS), i
    assert "ffn.0.weight" in layers[3] and "norm3.weight" not in layers[3]
    assert len(ReferenceSeq2Seq(tiny_config(12), normal_layer_interval=0).decoder.layers) == 12


@pytest.mark.parametrize(
    "n,interval,expected",
    [(12, 3, "CCCNCCCNCCCNCCC"), (12, 0, "C" * 12), (6, 3, "CCCNCCC"), (4, 2, "CCNCC"), (3, 3, "CCC"), (2, 1, "CNC")],
)
def test_layer_kinds(n, interval, expected):
    assert "".join(layer_kinds(n, interval)) == expected


def test_random_init_is_nontrivial(model4):
    _, sd = model4
    for k, v in sd.items():
        if k.endswith("norm1.weight") or k.endswith("LayerNorm.weight"):
            assert not torch.allclose(v, torch.ones_like(v)), k
        if k.endswith("bias"):
            assert v.abs().min() > 0 or v.abs().max() > 1e-3, k
    assert sd["decoder.layers.0.self_attention.in_proj_bias"].abs().max() > 1e-3


def test_state_dict_roundtrip(model4):
    model, sd = model4
    fresh = ReferenceSeq2Seq(tiny_config(4), normal_layer_interval=3).eval()
    fresh.load_state_dict(sd, strict=True)
    ids, mask = _src()
    dec = torch.tensor([[BOS, 11, 12, 13], [BOS, 14, 15, 16]])
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, mask, dec), model(ids, mask, dec), rtol=0, atol=0)


def test_decoder_embedding_positions_start_at_pad_plus_one(model4):
    """The decoder input embedding follows XLM-R's padding-offset positions (first id 2), token type 0."""
    model, sd = model4
    dec = torch.tensor([[BOS, 11, 12, PAD], [BOS, 14, 15, 16]])
    pos = torch.cumsum(dec.ne(PAD).long(), 1) * dec.ne(PAD).long() + PAD
    assert pos[0].tolist() == [2, 3, 4, 1]
    p = "encoder.embeddings."
    x = (
        sd[p + "word_embeddings.weight"][dec]
        + sd[p + "position_embeddings.weight"][pos]
        + sd[p + "token_type_embeddings.weight"][0]
    )
    x = torch.nn.functional.layer_norm(x, (32,), sd[p + "LayerNorm.weight"], sd[p + "LayerNorm.bias"], eps=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(model.decoder.embed_layer(input_ids=dec), x)


def test_causal(model4):
    model, _ = model4
    ids, mask = _src()
    dec = torch.tensor([[BOS, 11, 12, 13, 14], [BOS, 15, 16, 17, 18]])
    dec2 = dec.clone()
    dec2[:, 3] = torch.tensor([40, 41])
    with torch.no_grad():
        a, b = model(ids, mask, dec), model(ids, mask, dec2)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_source_padding_invariance(model4):
    model, _ = model4
    ids, mask = _src()
    ids_p = torch.cat([ids, torch.full((2, 4), PAD)], 1)
    mask_p = torch.cat([mask, torch.zeros(2, 4, dtype=torch.long)], 1)
    dec = torch.tensor([[BOS, 11, 12], [BOS, 13, 14]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids_p, mask_p, dec), model(ids, mask, dec))
        # row 1 (short) alone, unpadded, gives the same logits as inside the padded batch
        torch.testing.assert_close(model(ids[1:, :4], mask[1:, :4], dec[1:]), model(ids, mask, dec)[1:])


def test_cross_attention_ignores_padding_not_tokens(model4):
    """Masked source positions (mask 0) must not influence the output even with non-pad ids there."""
    model, _ = model4
    ids, mask = _src()
    ids2 = ids.clone()
    ids2[1, 4:] = torch.tensor([50, 51])  # garbage under mask 0
    dec = torch.tensor([[BOS, 11, 12], [BOS, 13, 14]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids2, mask, dec), model(ids, mask, dec))
        ids3 = ids.clone()
        ids3[1, 1] = 60  # a real source token
        assert not torch.allclose(model(ids3, mask, dec)[1], model(ids, mask, dec)[1])


def test_self_attn_residual_flag_changes_logits():
    cfg = tiny_config(4)
    m_fix, sd_fix = random_reference_state_dict(cfg, 3, seed=0, self_attn_residual=True)
    m_lit, sd_lit = random_reference_state_dict(cfg, 3, seed=0, self_attn_residual=False)
    assert sd_fix.keys() == sd_lit.keys()
    assert all(torch.equal(sd_fix[k], sd_lit[k]) for k in sd_fix)
    ids, mask = _src()
    dec = torch.tensor([[BOS, 11, 12], [BOS, 13, 14]])
    with torch.no_grad():
        a, b = m_fix(ids, mask, dec), m_lit(ids, mask, dec)
    assert (a - b).abs().max() > 1e-2


def test_greedy_generate(model4):
    model, _ = model4
    ids, mask = _src()
    out = model.greedy_generate(ids, mask, max_new_tokens=8)
    assert out.dtype == torch.long and out.shape[0] == 2 and 2 <= out.shape[1] <= 9
    assert (out[:, 0] == BOS).all()
    with torch.no_grad():
        logits = model(ids, mask, out)
    for b in range(2):
        row = out[b].tolist()
        done = False
        for t in range(1, len(row)):
            if done:
                assert row[t] == PAD
            else:
                assert row[t] == int(logits[b, t - 1].argmax())
                done = row[t] == EOS


def test_greedy_generate_stops_at_eos():
    """Force eos: a last_linear bias that makes eos win always -> every sequence is [bos, eos]."""
    model, _ = random_reference_state_dict(tiny_config(2), 3, seed=1)
    with torch.no_grad():
        model.decoder.last_linear.bias[EOS] = 1e4
    ids, mask = _src()
    out = model.greedy_generate(ids, mask, max_new_tokens=5)
    assert out.tolist() == [[BOS, EOS], [BOS, EOS]]


def test_layer_norm_eps(model4):
    model, _ = model4
    assert model.encoder.embeddings.LayerNorm.eps == 1e-12
    assert {m.eps for layer in model.decoder.layers for n, m in layer.named_modules() if n.startswith("norm")} == {1e-5}
    m2, _ = random_reference_state_dict(tiny_config(2), 3, decoder_layer_norm_eps=1e-12)
    assert m2.decoder.layers[0].norm4.eps == 1e-12
