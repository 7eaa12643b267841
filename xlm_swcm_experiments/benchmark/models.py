"""The models compared, at random weights: XLM-SWCM, BART at matched width/depth, the weights one cached decode step
reads, and the random source batches they decode from."""

import torch

from .settings import SIZES, WORKLOAD_KEYS


def swcm_config(size: str):
    from xlm_swcm_hf import XLMSWCMConfig

    dims = {k: v for k, v in SIZES[size].items() if k not in WORKLOAD_KEYS}
    return XLMSWCMConfig(**dims, max_position_embeddings=514)


def build_swcm(size: str, seed: int = 0, attn_implementation: str = "sdpa", dtype=torch.float32):
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    torch.manual_seed(seed)
    config = swcm_config(size)
    config._attn_implementation = attn_implementation
    model = XLMSWCMForConditionalGeneration(config).eval()
    return model.to(dtype) if dtype != torch.float32 else model


def build_bart(size: str, seed: int = 0):
    """BART at matched width/depth: same d_model/FFN/heads/vocab, encoder layers = ours, decoder layers = ours."""
    from transformers import BartConfig, BartForConditionalGeneration

    swcm = swcm_config(size)
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=swcm.vocab_size,
        d_model=swcm.hidden_size,
        encoder_layers=swcm.num_hidden_layers,
        decoder_layers=len(swcm.decoder_layout),
        encoder_attention_heads=swcm.num_attention_heads,
        decoder_attention_heads=swcm.num_attention_heads,
        encoder_ffn_dim=swcm.intermediate_size,
        decoder_ffn_dim=swcm.intermediate_size,
        max_position_embeddings=1024,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return BartForConditionalGeneration(config).eval()


def count(params) -> int:
    return sum(p.numel() for p in params)


def weights_read_per_token(model) -> dict:
    """Parameters one cached decode step reads: decoder layers minus cross-attention k/v (computed once per source),
    plus the LM head (weight and bias). The one embedding row looked up per token is negligible."""
    from transformers import BartForConditionalGeneration

    if isinstance(model, BartForConditionalGeneration):
        layers = model.model.decoder.layers
        head = [model.lm_head.weight, model.final_logits_bias]
        extra = list(model.model.decoder.layernorm_embedding.parameters())
    else:
        layers = model.model.decoder.layers
        head = list(model.lm_head.parameters())
        extra = []
    total = 0
    for layer in layers:
        for name, param in layer.named_parameters():
            if "encoder_attn.k_proj" in name or "encoder_attn.v_proj" in name:
                continue
            total += param.numel()
    total += count(head) + count(extra)
    bytes_per = next(model.parameters()).element_size()
    return {"parameters": total, "bytes": total * bytes_per}


def make_source(size: str, batch: int, seed: int = 1):
    length = SIZES[size]["source_length"]
    generator = torch.Generator().manual_seed(seed)
    vocab = SIZES[size]["vocab_size"]
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
