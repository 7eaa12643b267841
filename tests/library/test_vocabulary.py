import json

import torch
from conftest import tiny_xlmr
from transformers import AutoModel, AutoTokenizer

from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer
from xlm_swcm_hf.vocabulary import prune_encoder_vocabulary


def test_pruned_encoder_keeps_segmentation_and_embeddings(tmp_path):
    tokenizer = build_tiny_xlmr_tokenizer(vocab_size=99)
    encoder = tiny_xlmr(seed=0, vocab_size=len(tokenizer), num_hidden_layers=2).eval()
    source = tmp_path / "encoder"
    encoder.save_pretrained(source)
    tokenizer.save_pretrained(source)

    corpus = ["салам دۇنيا", "你好世界", "hello world"]
    stats = prune_encoder_vocabulary(source, corpus, tmp_path / "pruned")
    assert stats["pruned_vocab_size"] < stats["original_vocab_size"]

    pruned_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    pruned_encoder = AutoModel.from_pretrained(tmp_path / "pruned", add_pooling_layer=False).eval()
    assert len(pruned_tokenizer) == stats["pruned_vocab_size"] == pruned_encoder.config.vocab_size
    assert pruned_tokenizer.convert_ids_to_tokens(pruned_tokenizer.all_special_ids)[:1] == ["<s>"]
    for text in corpus:
        before = tokenizer(text)["input_ids"]
        after = pruned_tokenizer(text)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(before) == pruned_tokenizer.convert_ids_to_tokens(after)
        with torch.no_grad():
            expected = encoder(input_ids=torch.tensor([before])).last_hidden_state
            actual = pruned_encoder(input_ids=torch.tensor([after])).last_hidden_state
        assert torch.allclose(expected, actual, atol=1e-6)
    # A pruned folder is an ordinary XLM-R folder: XLM-SWCM builds on it.
    model = XLMSWCMForConditionalGeneration.from_encoder(tmp_path / "pruned")
    assert model.lm_head.out_features == len(pruned_tokenizer)
    assert json.loads((tmp_path / "pruned" / "vocabulary_pruning.json").read_text())["texts"] == 3
