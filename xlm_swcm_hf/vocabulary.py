"""Prune an XLM-R encoder folder's vocabulary to the pieces a corpus uses.

XLM-R-family vocabularies have 250K pieces; a model for a handful of languages needs a fraction of them, and the
output layer over the full vocabulary dominates the cost of every decoder step. CINO itself is XLM-R pruned to
Chinese and the minority languages. Pruning keeps every piece the tokenizer produces on the corpus, so the corpus
tokenizes to the same pieces as before (a Unigram segmentation that was optimal over all pieces is still optimal over a
subset that contains it); `prune_encoder_vocabulary` checks this on every text and fails otherwise.
"""

import json
import os
from pathlib import Path


def corpus_token_ids(tokenizer, texts: list[str], batch_size: int = 1000) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), batch_size):
        for row in tokenizer(texts[start : start + batch_size], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return ids


def _pruned_tokenizer_json(tokenizer_json: dict, old_to_new: dict[int, int]) -> dict:
    if tokenizer_json["model"]["type"] != "Unigram":
        raise ValueError(
            f"Only Unigram (sentencepiece) tokenizers can be pruned, not {tokenizer_json['model']['type']}."
        )
    pruned = json.loads(json.dumps(tokenizer_json))
    vocab = tokenizer_json["model"]["vocab"]
    pruned["model"]["vocab"] = [vocab[old] for old in sorted(old_to_new)]
    pruned["model"]["unk_id"] = old_to_new[tokenizer_json["model"]["unk_id"]]
    for token in pruned["added_tokens"]:
        token["id"] = old_to_new[token["id"]]
    post_processor = pruned.get("post_processor") or {}
    for special in (post_processor.get("special_tokens") or {}).values():
        special["ids"] = [old_to_new[old] for old in special["ids"]]
    return pruned


def prune_encoder_vocabulary(
    encoder_dir: str | os.PathLike, texts: list[str], output_dir: str | os.PathLike, overwrite: bool = False
) -> dict:
    """Write an XLM-R folder (config, safetensors, tokenizer) whose vocabulary is the corpus's pieces + specials."""
    from tokenizers import Tokenizer
    from transformers import AutoModel, AutoTokenizer, XLMRobertaTokenizer

    from .checks import InputError
    from .files import atomic_output_dir, replacement_refusal

    if reason := replacement_refusal(output_dir, inputs={"encoder folder": encoder_dir}):  # before loading
        raise InputError(reason)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    encoder = AutoModel.from_pretrained(encoder_dir, add_pooling_layer=False)
    keep = sorted(corpus_token_ids(tokenizer, texts))
    old_to_new = {old: new for new, old in enumerate(keep)}

    pruned_json = _pruned_tokenizer_json(json.loads(tokenizer.backend_tokenizer.to_str()), old_to_new)
    pruned_tokenizer = XLMRobertaTokenizer(
        tokenizer_object=Tokenizer.from_str(json.dumps(pruned_json)), model_max_length=tokenizer.model_max_length
    )
    _check_same_segmentation(tokenizer, pruned_tokenizer, texts, keep)

    config = encoder.config
    config.vocab_size = len(keep)
    config.pad_token_id = old_to_new[tokenizer.pad_token_id]
    config.bos_token_id = old_to_new[tokenizer.bos_token_id]
    config.eos_token_id = old_to_new[tokenizer.eos_token_id]
    state = encoder.state_dict()
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][keep].clone()
    pruned_encoder = type(encoder)(config, add_pooling_layer=False)
    pruned_encoder.load_state_dict(state, strict=True)

    with atomic_output_dir(output_dir, overwrite=overwrite, inputs={"encoder folder": encoder_dir}) as staging:
        pruned_encoder.save_pretrained(staging)
        pruned_tokenizer.save_pretrained(staging)
        stats = {
            "source": str(encoder_dir),
            "original_vocab_size": len(tokenizer),
            "pruned_vocab_size": len(keep),
            "texts": len(texts),
        }
        (Path(staging) / "vocabulary_pruning.json").write_text(json.dumps(stats, indent=2))
    return stats


def _check_same_segmentation(original, pruned, texts: list[str], keep: list[int]) -> None:
    original_ids = original(texts, add_special_tokens=True)["input_ids"]
    pruned_ids = pruned(texts, add_special_tokens=True)["input_ids"]
    for text, before, after in zip(texts, original_ids, pruned_ids):
        if [keep[new] for new in after] != before:
            raise RuntimeError(f"Pruning changed the segmentation of {text!r}; the vocabulary cannot be pruned safely.")


__all__ = ["corpus_token_ids", "prune_encoder_vocabulary"]
