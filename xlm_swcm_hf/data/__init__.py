"""Data pipeline for XLM-SWCM: loading, task formats, seq2seq tokenization, collation, pretraining noise.

Fine-tuning
-----------
1. `load_task_dataset` loads local JSONL / JSON / CSV / TSV / Parquet / text files (the `datasets` builder is
   inferred from the extension; a `{split: path}` dict is allowed) or any `datasets` name, and (given a task)
   formats it with `format_examples`.
2. `format_examples` turns a task's columns into `source_text` / `target_text` (plus `lang` when the
   dataset has a language column):

   =================  ===========================================  =======================
   task               source                                       target
   =================  ===========================================  =======================
   `summarization`  `text`                                     `summary`
   `mrc`            `question` + `context` (MRC_TEMPLATE)    `answer`
   `translation`    `source`                                   `target`
   =================  ===========================================  =======================

   Column names are configurable with `TaskColumns` or a dict of its fields. Values are stripped of
   surrounding whitespace; a missing (`None`) or empty value is an error naming the row and column, or with
   `drop_invalid=True` the row is dropped and the count logged; the result is always the formatted dataset.
3. `tokenize_for_seq2seq` tokenizes with truncation and counts what was truncated.
4. `make_seq2seq_collator` is transformers' `DataCollatorForSeq2Seq` (labels padded with -100; with the
   model given it also builds `decoder_input_ids`).

Label convention
----------------
Sources are the usual XLM-R single sequence `<s> x1 … xm </s>`. Targets (`labels`) are `y1 … yn </s>`,
*without* the tokenizer's leading `<s>`: the model's decoder starts from `decoder_start_token_id` (`<s>` = 0)
and shifts the labels right itself, so its inputs are `<s> y1 … yn` — never `<s> <s> y1 …`.

Pretraining (the paper's DAE + MT objectives)
---------------------------------------------
* `DenoisingCollator`: mBART-style text infilling on raw text (see `noise_spans` for the span
  sampling), optional sentence permutation (`split_sentences`), target = the original text.
* `MixedObjectiveCollator`: one batch may mix monolingual rows (DAE) and parallel rows (MT), e.g. from
  `datasets.interleave_datasets` over a monolingual and a parallel dataset (missing columns become `None`).
* `temperature_sampling_probabilities` and `interleave_languages`: temperature-based language sampling.
"""

from .denoising import (
    SENTENCE_TERMINATORS,
    DenoisingCollator,
    MixedObjectiveCollator,
    apply_infilling,
    noise_spans,
    permute_sentences,
    split_sentences,
)
from .formatting import MRC_TEMPLATE, TASKS, TaskColumns, default_columns, format_examples
from .loading import infer_builder, load_task_dataset
from .sampling import interleave_languages, temperature_sampling_probabilities
from .tokenization import TruncationStats, make_seq2seq_collator, tokenize_for_seq2seq


__all__ = [
    "TASKS",
    "MRC_TEMPLATE",
    "SENTENCE_TERMINATORS",
    "TaskColumns",
    "TruncationStats",
    "default_columns",
    "infer_builder",
    "load_task_dataset",
    "format_examples",
    "tokenize_for_seq2seq",
    "make_seq2seq_collator",
    "split_sentences",
    "permute_sentences",
    "noise_spans",
    "apply_infilling",
    "DenoisingCollator",
    "MixedObjectiveCollator",
    "temperature_sampling_probabilities",
    "interleave_languages",
]
