"""Independent, minimal re-implementation of the reference XLM-SWCM `Seq2SeqModel` forward pass.

Written only from `/work/shared/REFERENCE.md` (the description of the authors' model and its
defects), *not* from the authors' code and *not* from this package's implementation.  Parity tests
use it as an oracle: its `state_dict()` has exactly the layout of the original `xlm-swcm.bin`
checkpoint, so a converted checkpoint loaded into our Transformers model must give the same logits.

Layout (reference parameter names):

    encoder.*                 XLMRobertaModel(config, add_pooling_layer=True)   (incl. encoder.pooler.*)
    embed_layer.*             == encoder.embeddings  (the same module object)
    decoder.embed_layer.*     == encoder.embeddings  (the same module object again)
    decoder.layers.{i}.*      custom (C) / normal (N) layers, pattern C C C N C C C N ... C C C
    decoder.last_linear.*     Linear(hidden, vocab) with bias, untied, no final LayerNorm

Deviations from the published reference code (REFERENCE.md "Defects"), all deliberate:

1. The decoder embeds its input once, at the decoder input, with the shared embedding module
   (word + XLM-R padding-offset positions + token type 0 + LayerNorm), i.e. exactly
   `encoder.embeddings(input_ids=decoder_input_ids)`.
2. Selectable with `self_attn_residual`: `True` adds the self-attention residual in the custom
   layers (the fix); `False` reproduces the literal behaviour, in which the self-attention output
   *replaces* the hidden states: `h = SelfAttn(norm1(h))`.
3. Irrelevant for a forward pass (weights come from a state dict).
4. Decoder self-attention is causal (boolean upper-triangular `attn_mask`).  No decoder key
   padding mask is applied: right-padded decoder positions only influence later positions.
5./6. The encoder runs with `attention_mask` and cross-attention uses
   `key_padding_mask = attention_mask == 0` (True = ignore).
7. No KV cache: `greedy_generate` recomputes the whole decoder over the prefix at every step.

Dropout placement (irrelevant in eval mode, documented for completeness):
* custom layer: dropout (hidden_dropout_prob) after the FFN1, cross-attention and FFN2 sublayers,
  none after the self-attention (REFERENCE.md: "after each sublayer except the self-attention");
* normal layer: `dropout1` after both attentions, `dropout2` after the FFN (REFERENCE.md names
  only two dropouts for three sublayers; the choice is ours).
Attention modules have no attention dropout (`dropout=0`).

Decoder LayerNorm epsilon: REFERENCE.md does not state it.  The decoder layers are plain
`nn.LayerNorm(hidden)` modules of the authors' own code (not Transformers modules), so the default
here is PyTorch's default `1e-5` (the encoder and the shared embedding keep `config.layer_norm_eps`,
1e-12 for XLM-R).  Override with `decoder_layer_norm_eps`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import XLMRobertaConfig, XLMRobertaModel


__all__ = ["ReferenceSeq2Seq", "random_reference_state_dict", "layer_kinds", "tiny_config"]


# Repeats the layout rule of configuration_xlm_swcm.build_decoder_layout on purpose: this file is an independent
# re-implementation of the reference, so it must not import the code it checks.
def layer_kinds(num_custom_layers: int, normal_layer_interval: int) -> list[str]:
    """`"C"`/`"N"` pattern: an N after every `interval` C layers, except after the last C."""
    kinds: list[str] = []
    for i in range(num_custom_layers):
        kinds.append("C")
        is_last = i == num_custom_layers - 1
        if normal_layer_interval > 0 and (i + 1) % normal_layer_interval == 0 and not is_last:
            kinds.append("N")
    return kinds


def _ffn(hidden: int, inner: int) -> nn.Sequential:
    # indices: 0 = Linear(h, ffn), 1 = GELU, 2 = Linear(ffn, h)  ->  keys ffn*.0.* and ffn*.2.*
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))


def _mha(hidden: int, heads: int) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(hidden, heads, dropout=0.0, batch_first=True)


class CustomLayer(nn.Module):
    """Four pre-LayerNorm sublayers: self-attn, FFN1, cross-attn, FFN2."""

    def __init__(self, config: XLMRobertaConfig, self_attn_residual: bool, eps: float):
        super().__init__()
        h = config.hidden_size
        self.self_attn_residual = self_attn_residual
        self.self_attention = _mha(h, config.num_attention_heads)
        self.norm1 = nn.LayerNorm(h, eps=eps)
        self.ffn1 = _ffn(h, config.intermediate_size)
        self.norm2 = nn.LayerNorm(h, eps=eps)
        self.cross_attention = _mha(h, config.num_attention_heads)
        self.norm3 = nn.LayerNorm(h, eps=eps)
        self.ffn2 = _ffn(h, config.intermediate_size)
        self.norm4 = nn.LayerNorm(h, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h, enc, causal_mask, enc_pad_mask):
        x = self.norm1(h)
        sa = self.self_attention(x, x, x, attn_mask=causal_mask, need_weights=False)[0]
        h = h + sa if self.self_attn_residual else sa  # defect 2: literal behaviour drops the residual
        x = self.norm2(h)
        h = h + self.dropout(self.ffn1(x))
        x = self.norm3(h)
        ca = self.cross_attention(x, enc, enc, key_padding_mask=enc_pad_mask, need_weights=False)[0]
        h = h + self.dropout(ca)
        x = self.norm4(h)
        h = h + self.dropout(self.ffn2(x))
        return h


class NormalLayer(nn.Module):
    """Randomly initialised layer; residual added to the *normalised* states; norm1 shared by both attentions."""

    def __init__(self, config: XLMRobertaConfig, eps: float):
        super().__init__()
        h = config.hidden_size
        self.self_attention = _mha(h, config.num_attention_heads)
        self.cross_attention = _mha(h, config.num_attention_heads)
        self.ffn = _ffn(h, config.intermediate_size)
        self.norm1 = nn.LayerNorm(h, eps=eps)
        self.norm2 = nn.LayerNorm(h, eps=eps)
        self.dropout1 = nn.Dropout(config.hidden_dropout_prob)
        self.dropout2 = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h, enc, causal_mask, enc_pad_mask):
        x = self.norm1(h)
        h = x + self.dropout1(self.self_attention(x, x, x, attn_mask=causal_mask, need_weights=False)[0])
        x = self.norm1(h)
        h = x + self.dropout1(self.cross_attention(x, enc, enc, key_padding_mask=enc_pad_mask, need_weights=False)[0])
        x = self.norm2(h)
        h = x + self.dropout2(self.ffn(x))
        return h


class ReferenceDecoder(nn.Module):
    def __init__(
        self,
        config: XLMRobertaConfig,
        embed_layer: nn.Module,
        normal_layer_interval: int,
        self_attn_residual: bool,
        eps: float,
    ):
        super().__init__()
        self.embed_layer = embed_layer  # the shared encoder embedding module (same object)
        self.kinds = layer_kinds(config.num_hidden_layers, normal_layer_interval)
        self.layers = nn.ModuleList(
            CustomLayer(config, self_attn_residual, eps) if k == "C" else NormalLayer(config, eps) for k in self.kinds
        )
        self.last_linear = nn.Linear(config.hidden_size, config.vocab_size, bias=True)

    def forward(self, decoder_input_ids, enc, attention_mask):
        t = decoder_input_ids.shape[1]
        # True = not allowed to attend (future positions)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=decoder_input_ids.device), diagonal=1)
        enc_pad = attention_mask == 0  # True = ignore (padding)
        h = self.embed_layer(input_ids=decoder_input_ids)  # defect 1 fixed: embed once
        for layer in self.layers:
            h = layer(h, enc, causal, enc_pad)
        return self.last_linear(h)  # no final LayerNorm


class ReferenceSeq2Seq(nn.Module):
    def __init__(
        self,
        encoder_config: XLMRobertaConfig,
        normal_layer_interval: int = 3,
        self_attn_residual: bool = True,
        decoder_layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        config = copy.deepcopy(encoder_config)
        config._attn_implementation = "eager"  # most transparent attention path for an oracle
        self.config = config
        self.normal_layer_interval = normal_layer_interval
        self.self_attn_residual = self_attn_residual
        self.encoder = XLMRobertaModel(config, add_pooling_layer=True)
        self.embed_layer = self.encoder.embeddings
        self.decoder = ReferenceDecoder(
            config, self.embed_layer, normal_layer_interval, self_attn_residual, decoder_layer_norm_eps
        )

    def encode(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id).long()
        enc = self.encode(input_ids, attention_mask)
        return self.decoder(decoder_input_ids, enc, attention_mask)

    @torch.no_grad()
    def greedy_generate(
        self, input_ids, attention_mask, max_new_tokens, start_token_id=0, eos_token_id=2, pad_token_id=1
    ):
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id).long()
        enc = self.encode(input_ids, attention_mask)  # encoder output is step-independent
        b = input_ids.shape[0]
        seq = torch.full((b, 1), start_token_id, dtype=torch.long, device=input_ids.device)
        finished = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits = self.decoder(seq, enc, attention_mask)  # full recompute over the prefix
            nxt = logits[:, -1].argmax(-1)
            nxt = torch.where(finished, torch.full_like(nxt, pad_token_id), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            finished = finished | (nxt == eos_token_id)
            if bool(finished.all()):
                break
        return seq


@torch.no_grad()
def _randomise_(model: nn.Module, seed: int) -> None:
    """Non-trivial random values for every parameter (LayerNorm weights != 1, all biases != 0)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():  # shared parameters are visited once
        if p.dim() == 1:
            leaf = name.rsplit(".", 1)[-1]
            is_norm_weight = leaf == "weight" and ("norm" in name.lower())
            if is_norm_weight:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        else:
            fan_in = p.shape[-1]
            p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)


def random_reference_state_dict(
    encoder_config: XLMRobertaConfig,
    normal_layer_interval: int = 3,
    seed: int = 0,
    self_attn_residual: bool = True,
    decoder_layer_norm_eps: float = 1e-5,
):
    model = ReferenceSeq2Seq(encoder_config, normal_layer_interval, self_attn_residual, decoder_layer_norm_eps)
    _randomise_(model, seed)
    model.eval()
    return model, model.state_dict()


def tiny_config(num_hidden_layers: int = 4) -> XLMRobertaConfig:
    return XLMRobertaConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


if __name__ == "__main__":
    cfg = tiny_config(4)
    model, sd = random_reference_state_dict(cfg, normal_layer_interval=3)
    print("layer kinds:", model.decoder.kinds)
    for k, v in sd.items():
        print(f"{k:70s} {tuple(v.shape)}")
    assert model.embed_layer is model.encoder.embeddings is model.decoder.embed_layer
    for suffix in ("word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight"):
        a = sd["encoder.embeddings." + suffix]
        assert torch.equal(a, sd["embed_layer." + suffix]) and torch.equal(a, sd["decoder.embed_layer." + suffix])
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    mask = ids.ne(1).long()
    dec = torch.tensor([[0, 10, 11], [0, 12, 13]])
    with torch.no_grad():
        logits = model(ids, mask, dec)
    assert logits.shape == (2, 3, 99), logits.shape
    print("logits", tuple(logits.shape), "greedy:", model.greedy_generate(ids, mask, 6).tolist())
    print("ok")
