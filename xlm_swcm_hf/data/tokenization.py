"""Seq2seq tokenization (labels without a leading `<s>`) with truncation counts, and the padding collator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import DataCollatorForSeq2Seq


logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- tokenization
@dataclass(frozen=True)
class TruncationStats:
    """What `tokenize_for_seq2seq` truncated. Lengths count special tokens: sources `<s> … </s>`,
    targets `… </s>`; `longest_*` are the untruncated maxima."""

    num_examples: int
    truncated_sources: int
    truncated_targets: int
    max_source_length: int
    max_target_length: int
    longest_source: int
    longest_target: int


def _special_ids(tokenizer) -> tuple[int, int]:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        raise ValueError("the tokenizer needs a bos token (<s>) and an eos token (</s>)")
    return bos, eos


def _check_lengths(max_source_length: int, max_target_length: int) -> None:
    if max_source_length < 3:
        raise ValueError(f"max_source_length must be >= 3 (<s>, one token, </s>), got {max_source_length}")
    if max_target_length < 2:
        raise ValueError(f"max_target_length must be >= 2 (one token and </s>), got {max_target_length}")


def _content_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without special tokens and without truncation."""
    return tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def _encode_source(content: list[int], max_length: int, bos: int, eos: int) -> list[int]:
    """`<s> x1 … </s>` cut to `max_length` — the same ids as ``tokenizer(text, truncation=True,
    max_length=max_length)`` for an XLM-R tokenizer."""
    return [bos, *content[: max_length - 2], eos]


def _encode_target(content: list[int], max_length: int, eos: int) -> list[int]:
    """Labels `y1 … </s>` (no leading `<s>`) cut to `max_length`."""
    return [*content[: max_length - 1], eos]


def _tokenize_one(
    dataset,
    tokenizer,
    max_source_length,
    max_target_length,
    source_column,
    target_column,
    keep_columns,
    num_proc,
    batch_size,
    where,
):
    bos, eos = _special_ids(tokenizer)
    for column in (source_column, target_column):
        if column not in dataset.column_names:
            raise ValueError(f"{where}column {column!r} not found; the dataset has {dataset.column_names}")
    missing = [c for c in keep_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}keep_columns {missing} not found; the dataset has {dataset.column_names}")

    def tokenize_batch(batch):
        sources = _content_ids(tokenizer, batch[source_column])
        targets = _content_ids(tokenizer, batch[target_column])
        input_ids = [_encode_source(ids, max_source_length, bos, eos) for ids in sources]
        return {
            "input_ids": input_ids,
            "attention_mask": [[1] * len(ids) for ids in input_ids],
            "labels": [_encode_target(ids, max_target_length, eos) for ids in targets],
            "_source_length": [len(ids) + 2 for ids in sources],
            "_target_length": [len(ids) + 1 for ids in targets],
        }

    remove = [c for c in dataset.column_names if c not in keep_columns]
    tokenized = dataset.map(
        tokenize_batch,
        batched=True,
        batch_size=batch_size,
        remove_columns=remove,
        num_proc=num_proc,
        desc="tokenize",
    )
    source_lengths = np.asarray(tokenized["_source_length"], dtype=np.int64)
    target_lengths = np.asarray(tokenized["_target_length"], dtype=np.int64)
    stats = TruncationStats(
        num_examples=len(tokenized),
        truncated_sources=int((source_lengths > max_source_length).sum()),
        truncated_targets=int((target_lengths > max_target_length).sum()),
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        longest_source=int(source_lengths.max(initial=0)),
        longest_target=int(target_lengths.max(initial=0)),
    )
    if stats.truncated_sources or stats.truncated_targets:
        logger.warning(
            "%struncated %d of %d sources to max_source_length=%d (longest %d tokens) and %d of %d targets to "
            "max_target_length=%d (longest %d tokens)",
            where,
            stats.truncated_sources,
            stats.num_examples,
            max_source_length,
            stats.longest_source,
            stats.truncated_targets,
            stats.num_examples,
            max_target_length,
            stats.longest_target,
        )
    return tokenized.remove_columns(["_source_length", "_target_length"]), stats


def tokenize_for_seq2seq(
    dataset: Dataset | DatasetDict,
    tokenizer,
    max_source_length: int,
    max_target_length: int,
    *,
    source_column: str = "source_text",
    target_column: str = "target_text",
    keep_columns: Sequence[str] = (),
    num_proc: int | None = None,
    batch_size: int = 1000,
):
    """Tokenize `source_column` → `input_ids`/`attention_mask` and `target_column` → `labels`.

    Sources are `<s> x1 … </s>` with at most `max_source_length` tokens; labels are `y1 … yn </s>` with at most
    `max_target_length` tokens and no leading `<s>` (see the module's label convention). Each text is tokenized
    once without truncation, so the untruncated lengths are known; the sequences are then cut keeping the closing
    `</s>` (for sources the same ids as the tokenizer's own `truncation=True`). Other columns are removed except
    `keep_columns` (string columns such as `lang` cannot go through the padding collator).

    Returns `(tokenized, stats)`: a `TruncationStats` (for a `DatasetDict`, a `{split: stats}` dict).
    A warning is logged with the counts when anything was truncated.
    """
    _check_lengths(max_source_length, max_target_length)
    args = (
        tokenizer,
        max_source_length,
        max_target_length,
        source_column,
        target_column,
        tuple(keep_columns),
        num_proc,
        batch_size,
    )
    if isinstance(dataset, DatasetDict):
        results = {name: _tokenize_one(split, *args, f"split {name!r}: ") for name, split in dataset.items()}
        return (DatasetDict({n: r[0] for n, r in results.items()}), {n: r[1] for n, r in results.items()})
    return _tokenize_one(dataset, *args, "")


# --------------------------------------------------------------------------------------------------- collation
def _check_model_tokenizer(tokenizer, model) -> None:
    if model is None:
        return
    config = getattr(model, "config", None)
    start = getattr(config, "decoder_start_token_id", None)
    if start is not None and tokenizer.bos_token_id is not None and start != tokenizer.bos_token_id:
        logger.warning(
            "model.config.decoder_start_token_id=%s differs from the tokenizer's <s> id %s; the label convention "
            "(labels without a leading <s>) assumes the decoder starts from <s>",
            start,
            tokenizer.bos_token_id,
        )
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and tokenizer.pad_token_id is not None and pad != tokenizer.pad_token_id:
        logger.warning("model.config.pad_token_id=%s differs from the tokenizer's %s", pad, tokenizer.pad_token_id)


def make_seq2seq_collator(
    tokenizer,
    model=None,
    *,
    pad_to_multiple_of: int | None = None,
    label_pad_token_id: int = -100,
    return_tensors: str = "pt",
) -> DataCollatorForSeq2Seq:
    """transformers' `DataCollatorForSeq2Seq` for `tokenize_for_seq2seq` output: pads `input_ids` /
    `attention_mask` with the tokenizer and `labels` with -100. With `model` (an
    `XLMSWCMForConditionalGeneration`) it adds `decoder_input_ids = model.prepare_decoder_input_ids_from_labels`
    = `<s> y1 … yn` (padding where the labels are -100)."""
    _check_model_tokenizer(tokenizer, model)
    return DataCollatorForSeq2Seq(
        tokenizer,
        model=model,
        label_pad_token_id=label_pad_token_id,
        pad_to_multiple_of=pad_to_multiple_of,
        return_tensors=return_tensors,
    )
