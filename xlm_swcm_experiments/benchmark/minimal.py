"""The training-step yardstick: a minimal plain-PyTorch model of the same architecture, written as tersely as a
from-scratch implementation would be, so the library's step time can be compared with what the maths costs."""

import torch
from torch import nn


class MinimalSWCM(nn.Module):
    """A minimal plain-PyTorch model of the same architecture (XLM-R post-LN encoder; pre-LN custom/normal decoder
    layers; untied head with bias), used as the training-step yardstick. Same parameter count as ours."""

    class Attn(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x, kv=None, causal=False, mask=None):
            kv = x if kv is None else kv
            b, t, d = x.shape
            split = lambda y: y.view(b, -1, self.h, d // self.h).transpose(1, 2)
            out = nn.functional.scaled_dot_product_attention(
                split(self.q(x)), split(self.k(kv)), split(self.v(kv)), attn_mask=mask, is_causal=causal
            )
            return self.o(out.transpose(1, 2).reshape(b, t, d))

    class FFN(nn.Sequential):
        def __init__(self, d, f):
            super().__init__(nn.Linear(d, f), nn.GELU(), nn.Linear(f, d))

    def __init__(self, config):
        super().__init__()
        d, h, f, p = (
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            config.hidden_dropout_prob,
        )
        self.word = nn.Embedding(config.vocab_size, d)
        self.pos = nn.Embedding(config.max_position_embeddings, d)
        self.emb_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.enc = nn.ModuleList(
            nn.ModuleDict(dict(attn=self.Attn(d, h), n1=nn.LayerNorm(d), ffn=self.FFN(d, f), n2=nn.LayerNorm(d)))
            for _ in range(config.num_hidden_layers)
        )
        self.dec = nn.ModuleList()
        for kind in config.decoder_layout:
            parts = dict(sa=self.Attn(d, h), ca=self.Attn(d, h), n1=nn.LayerNorm(d), n2=nn.LayerNorm(d))
            if kind == "custom":
                parts.update(f1=self.FFN(d, f), f2=self.FFN(d, f), n3=nn.LayerNorm(d), n4=nn.LayerNorm(d))
            else:
                parts.update(f1=self.FFN(d, f))
            self.dec.append(nn.ModuleDict(parts))
        self.layout = list(config.decoder_layout)
        self.head = nn.Linear(d, config.vocab_size)

    def embed(self, ids):
        pos = torch.arange(2, 2 + ids.shape[1], device=ids.device)
        return self.drop(self.emb_norm(self.word(ids) + self.pos(pos)))

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels):
        mask = attention_mask[:, None, None, :].bool()
        x = self.embed(input_ids)
        for layer in self.enc:
            x = layer.n1(x + self.drop(layer.attn(x, mask=mask)))
            x = layer.n2(x + self.drop(layer.ffn(x)))
        y = self.embed(decoder_input_ids)
        for kind, layer in zip(self.layout, self.dec):
            if kind == "custom":
                y = y + layer.sa(layer.n1(y), causal=True)
                y = y + self.drop(layer.f1(layer.n2(y)))
                y = y + self.drop(layer.ca(layer.n3(y), kv=x, mask=mask))
                y = y + self.drop(layer.f2(layer.n4(y)))
            else:
                y = layer.n1(y)
                y = y + self.drop(layer.sa(y, causal=True))
                y = layer.n1(y)
                y = y + self.drop(layer.ca(y, kv=x, mask=mask))
                y = layer.n2(y)
                y = y + self.drop(layer.f1(y))
        logits = self.head(y)
        return nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))
