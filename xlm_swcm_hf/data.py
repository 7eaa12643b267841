"""Data pipeline for XLM-SWCM: loading, task formats, seq2seq tokenization, collation, pretraining noise.

Fine-tuning
-----------
1. :func:`load_task_dataset` loads local JSONL / JSON / CSV / TSV / Parquet / text files (the `datasets` builder is
   inferred from the extension; a ``{split: path}`` dict is allowed) or any `datasets` name, and (given a task)
   formats it with :func:`format_examples`.
2. :func:`format_examples` turns a task's columns into ``source_text`` / ``target_text`` (plus ``lang`` when the
   dataset has a language column):

   =================  ===========================================  =======================
   task               source                                       target
   =================  ===========================================  =======================
   ``summarization``  ``text``                                     ``summary``
   ``mrc``            ``question`` + ``context`` (MRC_TEMPLATE)    ``answer``
   ``translation``    ``source``                                   ``target``
   =================  ===========================================  =======================

   Column names are configurable with :class:`TaskColumns` or a dict of its fields. Values are stripped of
   surrounding whitespace; a missing (``None``) or empty value is an error naming the row and column, or with
   ``drop_invalid=True`` the row is dropped and the count logged and returned.
3. :func:`tokenize_for_seq2seq` tokenizes with truncation and counts what was truncated.
4. :func:`make_seq2seq_collator` is transformers' ``DataCollatorForSeq2Seq`` (labels padded with -100; with the
   model given it also builds ``decoder_input_ids``).

Label convention
----------------
Sources are the usual XLM-R single sequence ``<s> x1 … xm </s>``. Targets (``labels``) are ``y1 … yn </s>``,
*without* the tokenizer's leading ``<s>``: the model's decoder starts from ``decoder_start_token_id`` (``<s>`` = 0)
and shifts the labels right itself, so its inputs are ``<s> y1 … yn`` — never ``<s> <s> y1 …``.

Pretraining (the paper's DAE + MT objectives)
---------------------------------------------
* :class:`DenoisingCollator`: mBART-style text infilling on raw text (see :func:`noise_spans` for the span
  sampling), optional sentence permutation (:func:`split_sentences`), target = the original text.
* :class:`MixedObjectiveCollator`: one batch may mix monolingual rows (DAE) and parallel rows (MT), e.g. from
  ``datasets.interleave_datasets`` over a monolingual and a parallel dataset (missing columns become ``None``).
* :func:`temperature_sampling_probabilities` and :func:`interleave_languages`: temperature-based language sampling.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import datasets
from datasets import Dataset, DatasetDict, IterableDataset
from transformers import DataCollatorForSeq2Seq


logger = logging.getLogger(__name__)

__all__ = [
    "TASKS",
    "MRC_TEMPLATE",
    "DEFAULT_MASK_RATIO",
    "DEFAULT_POISSON_LAMBDA",
    "DEFAULT_SAMPLING_TEMPERATURE",
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

TASKS = ("summarization", "mrc", "translation")

#: How a reading-comprehension example becomes one source string: question first, then the context, joined by
#: ``</s></s>``. An XLM-R tokenizer keeps ``</s>`` whole (it is a special token) and gives every text segment its
#: own leading ``▁``, so ``tokenizer(MRC_TEMPLATE.format(question=q, context=c))`` is exactly XLM-R's own pair
#: encoding ``tokenizer(q, c)`` = ``<s> q </s></s> c </s>`` — the format XLM-R-family encoders are fine-tuned on.
#: With the question first, truncation (which cuts from the end) shortens the context, never the question.
#: (A tokenizer created with ``split_special_tokens=True`` would cut ``</s>`` into pieces: do not use one.)
MRC_TEMPLATE = "{question}</s></s>{context}"

#: mBART's text-infilling defaults: 35 % of the tokens, in spans with Poisson(3.5) lengths.
DEFAULT_MASK_RATIO = 0.35
DEFAULT_POISSON_LAMBDA = 3.5
#: XLM-R's language sampling exponent alpha = 0.3, i.e. temperature T = 1 / alpha.
DEFAULT_SAMPLING_TEMPERATURE = 1 / 0.3


# --------------------------------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class TaskColumns:
    """Which dataset columns a task reads.

    ``source``: the input text (summarization: the document; translation: the source sentence; mrc: the
    *context*). ``target``: the output text. ``question``: mrc only. ``lang``: an optional language column, carried
    over as ``lang`` when the dataset has it (``None`` = never).
    """

    source: str
    target: str
    question: str | None = None
    lang: str | None = "lang"


_DEFAULT_COLUMNS = {
    "summarization": TaskColumns(source="text", target="summary"),
    "mrc": TaskColumns(source="context", target="answer", question="question"),
    "translation": TaskColumns(source="source", target="target"),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def default_columns(task: str) -> TaskColumns:
    """The default :class:`TaskColumns` of a task."""
    _check_task(task)
    return _DEFAULT_COLUMNS[task]


def _resolve_columns(task: str, columns: TaskColumns | Mapping[str, str | None] | None) -> TaskColumns:
    default = default_columns(task)
    if columns is None:
        cols = default
    elif isinstance(columns, TaskColumns):
        cols = columns
    elif isinstance(columns, Mapping):
        known = {f.name for f in fields(TaskColumns)}
        unknown = sorted(set(columns) - known)
        if unknown:
            raise ValueError(f"unknown column role(s) {unknown}; expected some of {sorted(known)}")
        cols = replace(default, **columns)
    else:
        raise TypeError(f"columns must be a TaskColumns, a dict or None, not {type(columns).__name__}")
    if task == "mrc" and not cols.question:
        raise ValueError("task 'mrc' needs a question column")
    if task != "mrc" and cols.question:
        raise ValueError(f"task {task!r} has no question column (got question={cols.question!r})")
    return cols


# --------------------------------------------------------------------------------------------------- loading
_EXTENSION_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".arrow": "arrow",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def _extension(path: str | os.PathLike) -> str:
    name = os.fspath(path).lower()
    for comp in _COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    return os.path.splitext(name)[1]


def infer_builder(paths: str | os.PathLike | Sequence | Mapping) -> str:
    """The `datasets` builder (``json``, ``csv``, ``parquet``, ``text``, ``arrow``) for local files, from their
    extension (a compression suffix such as ``.gz`` is skipped). All files must share one builder."""
    builders = {}
    for path in _flatten_paths(paths):
        ext = _extension(path)
        if ext not in _EXTENSION_BUILDERS:
            raise ValueError(
                f"cannot infer a dataset builder for {os.fspath(path)!r}: extension {ext or '(none)'!r} is not one "
                f"of {sorted(_EXTENSION_BUILDERS)}"
            )
        builders.setdefault(_EXTENSION_BUILDERS[ext], os.fspath(path))
    if len(builders) != 1:
        raise ValueError(f"data files need one builder, found {sorted(builders)} (e.g. {sorted(builders.values())})")
    return next(iter(builders))


def _flatten_paths(paths) -> list:
    if isinstance(paths, Mapping):
        return [p for value in paths.values() for p in _flatten_paths(value)]
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    if isinstance(paths, Sequence):
        return [p for value in paths for p in _flatten_paths(value)]
    raise TypeError(
        f"data file paths must be str, PathLike, a list or a {{split: path}} dict, not {type(paths).__name__}"
    )


def _stringify_paths(paths):
    if isinstance(paths, Mapping):
        return {str(split): _stringify_paths(value) for split, value in paths.items()}
    if isinstance(paths, (str, os.PathLike)):
        return os.fspath(paths)
    return [os.fspath(p) for p in paths]


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _names_local_files(data_files_or_name) -> bool:
    """Lists and split dicts are data files; so is a string naming a file, a glob or a path with a data file
    extension (a missing file is then reported as such). Folders and other names go to ``load_dataset`` as they are."""
    if isinstance(data_files_or_name, (Mapping, list, tuple)):
        return True
    path = Path(data_files_or_name)
    if path.is_dir():
        return False
    return path.is_file() or _extension(path) in _EXTENSION_BUILDERS


def load_task_dataset(
    data_files_or_name: str | os.PathLike | Sequence | Mapping,
    task: str | None,
    columns: TaskColumns | Mapping[str, str | None] | None = None,
    split: str | None = None,
    *,
    drop_invalid: bool = False,
    mrc_template: str = MRC_TEMPLATE,
    **load_kwargs,
):
    """Load a dataset and (with a ``task``) format it with :func:`format_examples`.

    ``data_files_or_name``: a local file (``.jsonl``/``.json``, ``.csv``/``.tsv``, ``.parquet``, ``.txt``,
    ``.arrow``, optionally compressed), a list of them, a ``{split: path_or_paths}`` dict, or anything else
    ``datasets.load_dataset`` accepts (a Hub name, a builder name, a local folder). A single file or list becomes the
    ``train`` split. ``split=None`` returns a ``DatasetDict``, otherwise a ``Dataset``. ``load_kwargs`` go to
    ``datasets.load_dataset`` (e.g. ``cache_dir``, ``name``; ``.tsv`` files get ``delimiter="\\t"`` unless given).

    ``task=None`` returns the raw dataset. With a task the result is the formatted dataset, or with
    ``drop_invalid=True`` the pair ``(formatted, dropped)`` as :func:`format_examples` returns it.
    """
    if task is not None:
        _resolve_columns(task, columns)  # fail before loading anything
    if _names_local_files(data_files_or_name):
        for path in _flatten_paths(data_files_or_name):
            if not _is_glob(os.fspath(path)) and not Path(path).is_file():
                raise FileNotFoundError(f"data file not found: {os.fspath(path)!r}")
        builder = infer_builder(data_files_or_name)
        if any(_extension(p) == ".tsv" for p in _flatten_paths(data_files_or_name)):
            load_kwargs.setdefault("delimiter", "\t")
        raw = datasets.load_dataset(builder, data_files=_stringify_paths(data_files_or_name), split=split, **load_kwargs)
    else:
        raw = datasets.load_dataset(os.fspath(data_files_or_name), split=split, **load_kwargs)
    if task is None:
        return raw
    return format_examples(raw, task, columns, drop_invalid=drop_invalid, mrc_template=mrc_template)


# --------------------------------------------------------------------------------------------------- formatting
def _field_text(value: Any) -> tuple[str, str | None]:
    """(text, problem): the stripped text of a field value, or what is wrong with it.

    Lists give their first non-empty text and ``{"text": [...]}`` (SQuAD-style answers) its ``text``; numbers are
    written out; ``None`` and NaN are missing."""
    if value is None:
        return "", "is missing"
    if isinstance(value, str):
        text = value.strip()
        return text, (None if text else "is empty")
    if isinstance(value, Mapping):
        if "text" in value:
            return _field_text(value["text"])
        return "", f"is a dict without a 'text' key (keys: {sorted(value)})"
    if isinstance(value, (list, tuple)):
        for item in value:
            text, problem = _field_text(item)
            if problem is None:
                return text, None
        return "", "is empty"
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            return "", "is missing"
        return str(value), None
    return "", f"is not text (got {type(value).__name__})"


def _format_one(
    dataset: Dataset, task: str, cols: TaskColumns, mrc_template: str, drop_invalid: bool, where: str, num_proc
) -> tuple[Dataset, int]:
    if isinstance(dataset, IterableDataset) or not isinstance(dataset, Dataset):
        raise TypeError(
            f"format_examples needs a datasets.Dataset or DatasetDict (streaming datasets are not supported), "
            f"got {type(dataset).__name__}"
        )
    roles = [("question", cols.question)] if task == "mrc" else []
    roles += [("source", cols.source), ("target", cols.target)]
    for role, column in roles:
        if column not in dataset.column_names:
            raise ValueError(
                f"{where}column {column!r} (the {task} {'context' if task == 'mrc' and role == 'source' else role}) "
                f"not found; the dataset has {dataset.column_names}. Pass columns=... to name it."
            )
    with_lang = bool(cols.lang) and cols.lang in dataset.column_names
    if with_lang:
        roles.append(("lang", cols.lang))

    def format_batch(batch, indices):
        out = {"source_text": [], "target_text": [], "_problem": []}
        if with_lang:
            out["_lang"] = []
        for i, index in enumerate(indices):
            values, problem = {}, ""
            for role, column in roles:
                text, issue = _field_text(batch[column][i])
                if issue is not None:
                    problem = f"row {index}: column {column!r} {issue}"
                    break
                values[role] = text
            if problem:
                source = target = lang = ""
            else:
                if task == "mrc":
                    source = mrc_template.format(question=values["question"], context=values["source"])
                else:
                    source = values["source"]
                target, lang = values["target"], values.get("lang", "")
            out["source_text"].append(source)
            out["target_text"].append(target)
            out["_problem"].append(problem)
            if with_lang:
                out["_lang"].append(lang)
        return out

    formatted = dataset.map(
        format_batch,
        with_indices=True,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=f"format {task}",
    )
    problems = [p for p in formatted["_problem"] if p]
    if problems and not drop_invalid:
        more = f" (and {len(problems) - 1} more invalid rows)" if len(problems) > 1 else ""
        raise ValueError(f"{where}{problems[0]}{more}; pass drop_invalid=True to drop invalid rows")
    if problems:
        formatted = formatted.filter(lambda p: not p, input_columns="_problem", num_proc=num_proc, desc="drop invalid")
        logger.warning(
            "%sdropped %d of %d rows with a missing or empty field (first: %s)",
            where,
            len(problems),
            len(dataset),
            problems[0],
        )
    formatted = formatted.remove_columns("_problem")
    if with_lang:  # mapped under another name: an output named like an input column would keep the input's place
        formatted = formatted.rename_column("_lang", "lang")
    return formatted, len(problems)


def format_examples(
    dataset: Dataset | DatasetDict,
    task: str,
    columns: TaskColumns | Mapping[str, str | None] | None = None,
    *,
    drop_invalid: bool = False,
    mrc_template: str = MRC_TEMPLATE,
    num_proc: int | None = None,
):
    """Map a task's columns to ``source_text`` and ``target_text`` (+ ``lang`` if the dataset has the language
    column); every other column is removed.

    ``columns``: a :class:`TaskColumns`, a dict overriding some of the task defaults (e.g. ``{"source": "article"}``),
    or ``None`` for the defaults (:func:`default_columns`). mrc sources are ``mrc_template.format(question=...,
    context=...)`` (default :data:`MRC_TEMPLATE`). Texts are stripped of surrounding whitespace. The language
    column, when the dataset has it, must be filled too.

    A missing or empty field raises ``ValueError("row 17: column 'summary' is empty ...")`` (row = 0-based index in
    the split; a ``DatasetDict`` adds the split name). With ``drop_invalid=True`` such rows are dropped, the count is
    logged as a warning, and the function returns ``(formatted, dropped)`` — ``dropped`` an int for a ``Dataset``,
    a ``{split: int}`` dict for a ``DatasetDict``. Without it, only the formatted dataset is returned.
    """
    cols = _resolve_columns(task, columns)
    if task == "mrc" and not ("{question}" in mrc_template and "{context}" in mrc_template):
        raise ValueError(f"mrc_template must contain {{question}} and {{context}}, got {mrc_template!r}")
    if isinstance(dataset, DatasetDict):
        results = {
            name: _format_one(split, task, cols, mrc_template, drop_invalid, f"split {name!r}, ", num_proc)
            for name, split in dataset.items()
        }
        formatted = DatasetDict({name: result[0] for name, result in results.items()})
        dropped = {name: result[1] for name, result in results.items()}
    else:
        formatted, dropped = _format_one(dataset, task, cols, mrc_template, drop_invalid, "", num_proc)
    return (formatted, dropped) if drop_invalid else formatted


# --------------------------------------------------------------------------------------------------- tokenization
@dataclass(frozen=True)
class TruncationStats:
    """What :func:`tokenize_for_seq2seq` truncated. Lengths count special tokens: sources ``<s> … </s>``,
    targets ``… </s>``; ``longest_*`` are the untruncated maxima."""

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
    """``<s> x1 … </s>`` cut to ``max_length`` — the same ids as ``tokenizer(text, truncation=True,
    max_length=max_length)`` for an XLM-R tokenizer."""
    return [bos, *content[: max_length - 2], eos]


def _encode_target(content: list[int], max_length: int, eos: int) -> list[int]:
    """Labels ``y1 … </s>`` (no leading ``<s>``) cut to ``max_length``."""
    return [*content[: max_length - 1], eos]


def _tokenize_one(dataset, tokenizer, max_source_length, max_target_length, source_column, target_column,
                  keep_columns, num_proc, batch_size, where):
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
        tokenize_batch, batched=True, batch_size=batch_size, remove_columns=remove, num_proc=num_proc,
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
            where, stats.truncated_sources, stats.num_examples, max_source_length, stats.longest_source,
            stats.truncated_targets, stats.num_examples, max_target_length, stats.longest_target,
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
    """Tokenize ``source_column`` → ``input_ids``/``attention_mask`` and ``target_column`` → ``labels``.

    Sources are ``<s> x1 … </s>`` with at most ``max_source_length`` tokens; labels are ``y1 … yn </s>`` with at most
    ``max_target_length`` tokens and no leading ``<s>`` (see the module's label convention). Each text is tokenized
    once without truncation, so the untruncated lengths are known; the sequences are then cut keeping the closing
    ``</s>`` (for sources the same ids as the tokenizer's own ``truncation=True``). Other columns are removed except
    ``keep_columns`` (string columns such as ``lang`` cannot go through the padding collator).

    Returns ``(tokenized, stats)``: a :class:`TruncationStats` (for a ``DatasetDict``, a ``{split: stats}`` dict).
    A warning is logged with the counts when anything was truncated.
    """
    _check_lengths(max_source_length, max_target_length)
    args = (tokenizer, max_source_length, max_target_length, source_column, target_column, tuple(keep_columns),
            num_proc, batch_size)
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
            "(labels without a leading <s>) assumes the decoder starts from <s>", start, tokenizer.bos_token_id,
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
    """transformers' ``DataCollatorForSeq2Seq`` for :func:`tokenize_for_seq2seq` output: pads ``input_ids`` /
    ``attention_mask`` with the tokenizer and ``labels`` with -100. With ``model`` (an
    ``XLMSWCMForConditionalGeneration``) it adds ``decoder_input_ids = model.prepare_decoder_input_ids_from_labels``
    = ``<s> y1 … yn`` (padding where the labels are -100)."""
    _check_model_tokenizer(tokenizer, model)
    return DataCollatorForSeq2Seq(
        tokenizer,
        model=model,
        label_pad_token_id=label_pad_token_id,
        pad_to_multiple_of=pad_to_multiple_of,
        return_tensors=return_tensors,
    )


# --------------------------------------------------------------------------------------------------- DAE noise
#: Sentence-final punctuation: Latin . ! ?, Chinese 。！？, Tibetan shad ། and nyis shad ༎, Mongolian full stop ᠃
#: and four dots ᠉, Arabic-script question mark ؟ and full stop ۔.
SENTENCE_TERMINATORS = ".!?。！？།༎᠃᠉؟۔"
#: Terminators that end a sentence even without a following space (scripts written without spaces there; Tibetan
#: separates syllables with the tsheg, so a shad is always a boundary).
_UNSPACED_TERMINATORS = set("。！？᠃᠉།༎")
# A cluster of terminators (possibly "། །" or "?!"), closing quotes/brackets after them, then any whitespace.
_TERMINATOR_CLUSTER = re.compile(
    "(?:[" + re.escape(SENTENCE_TERMINATORS) + "][\"'”’」』）)\\]]*\\s*)+"
)


def split_sentences(text: str) -> list[str]:
    """Split ``text`` after sentence-final punctuation (:data:`SENTENCE_TERMINATORS`).

    A terminator cluster ends a sentence when whitespace or the end of the text follows it, or when its last
    terminator is one of 。！？᠃᠉།༎ (scripts that need no space there); so ``3.5`` and ``e.g.x`` stay whole. Runs such
    as Tibetan ``། །`` or ``?!`` are one cluster. Sentences are stripped; a trailing fragment without a terminator
    is a sentence too. The Tibetan shad also ends clauses, so Tibetan "sentences" can be clauses.
    """
    sentences, start = [], 0
    for match in _TERMINATOR_CLUSTER.finditer(text):
        cluster = match.group(0)
        last_terminator = [ch for ch in cluster if ch in SENTENCE_TERMINATORS][-1]
        if cluster[-1].isspace() or match.end() == len(text) or last_terminator in _UNSPACED_TERMINATORS:
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def permute_sentences(text: str, rng: np.random.Generator) -> str:
    """The sentences of ``text`` (:func:`split_sentences`) in a random order from ``rng``, joined by one space if
    the text has whitespace between its sentences, else directly (e.g. Chinese)."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return text
    joiner = " " if re.search(r"\s", text.strip()) else ""
    return joiner.join(sentences[i] for i in rng.permutation(len(sentences)))


def noise_spans(
    length: int,
    rng: np.random.Generator,
    mask_ratio: float = DEFAULT_MASK_RATIO,
    poisson_lambda: float = DEFAULT_POISSON_LAMBDA,
) -> list[tuple[int, int]]:
    """Text-infilling spans over a sequence of ``length`` tokens: a sorted list of ``(start, span_length)``.

    * Tokens to mask: ``length * mask_ratio`` rounded stochastically (floor + Bernoulli of the fraction), so the
      expected masked fraction is exactly ``mask_ratio`` for every length.
    * Span lengths are Poisson(``poisson_lambda``) draws, taken until they cover that number; the last one is cut
      to fit (so the mean span length is a little below ``poisson_lambda`` on short sequences: about 3.3 for
      λ = 3.5 over 20–200 tokens). Zero-length draws are kept: they *insert* a mask token (as BART's text
      infilling does).
    * Placement: the spans go into distinct gaps between the unmasked tokens (chosen uniformly without
      replacement), so spans never overlap or touch and each becomes exactly one ``<mask>``. If there are more
      spans than gaps (very short sequences), the last spans are merged.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda must be > 0, got {poisson_lambda}")
    if length == 0 or mask_ratio == 0.0:
        return []
    num_to_mask = min(length, int(math.floor(length * mask_ratio + rng.random())))
    if num_to_mask == 0:
        return []
    span_lengths: list[int] = []
    covered = 0
    while covered < num_to_mask:
        draws = rng.poisson(poisson_lambda, size=max(4, int(2 * (num_to_mask - covered) / poisson_lambda) + 1))
        for draw in draws:
            span = min(int(draw), num_to_mask - covered)
            span_lengths.append(span)
            covered += span
            if covered == num_to_mask:
                break
    num_gaps = length - num_to_mask + 1
    while len(span_lengths) > num_gaps:
        last = span_lengths.pop()
        span_lengths[-1] += last
    span_lengths = [span_lengths[i] for i in rng.permutation(len(span_lengths))]  # the cut span goes anywhere
    gaps = np.sort(rng.choice(num_gaps, size=len(span_lengths), replace=False))
    spans, masked_before = [], 0
    for gap, span in zip(gaps.tolist(), span_lengths):
        spans.append((gap + masked_before, span))
        masked_before += span
    return spans


def apply_infilling(token_ids: Sequence[int], spans: Sequence[tuple[int, int]], mask_token_id: int) -> list[int]:
    """Replace each ``(start, length)`` span of ``token_ids`` by one ``mask_token_id`` (length 0: insert one)."""
    out, position = [], 0
    for start, span in spans:
        out.extend(token_ids[position:start])
        out.append(mask_token_id)
        position = start + span
    out.extend(token_ids[position:])
    return out


class _SeededCollator:
    """A seeded numpy Generator per process: the main process uses ``seed``; a DataLoader worker uses
    ``(seed, worker seed)`` — the worker seed differs per worker and per epoch and follows torch's seed — so workers
    do not repeat each other's noise and a run is reproducible."""

    def __init__(self, seed: int):
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed``."""
        self.seed = int(seed)
        self._rngs: dict[int | None, np.random.Generator] = {}

    @property
    def rng(self) -> np.random.Generator:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        key = None if info is None else int(info.seed)
        if key not in self._rngs:
            self._rngs[key] = np.random.default_rng(self.seed if key is None else [self.seed, key])
        return self._rngs[key]


class DenoisingCollator(_SeededCollator):
    """mBART-style denoising auto-encoding (DAE) batches from raw text.

    For each feature's ``text_column``: optionally permute its sentences (:func:`permute_sentences`), tokenize,
    replace spans (:func:`noise_spans`: ``mask_ratio`` of the tokens, Poisson(``poisson_lambda``) span lengths) by one
    ``tokenizer.mask_token_id`` each. ``input_ids`` = ``<s> noised </s>``; ``labels`` = the original, unpermuted
    text as ``y1 … </s>`` (no leading ``<s>``). ``<s>``/``</s>`` are added after noising, so they are never masked.
    Both sides are cut to ``max_length`` tokens before noising (keep it within the decoder's limit, 512 for
    XLM-R). Padding and (with ``model``) ``decoder_input_ids`` come from ``DataCollatorForSeq2Seq``.

    Not done (unlike BART): random-token replacement of masked tokens, document rotation. The input text should be
    plain text (a literal ``</s>`` in it would be tokenized as the special token).

    Deterministic: the same ``seed`` gives the same sequence of batches. With ``Trainer``, set
    ``remove_unused_columns=False`` so the text column reaches the collator.
    """

    def __init__(
        self,
        tokenizer,
        model=None,
        *,
        mask_ratio: float = DEFAULT_MASK_RATIO,
        poisson_lambda: float = DEFAULT_POISSON_LAMBDA,
        permute_sentences: bool = False,
        max_length: int = 512,
        seed: int = 0,
        text_column: str = "text",
        pad_to_multiple_of: int | None = None,
        label_pad_token_id: int = -100,
        return_tensors: str = "pt",
    ):
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; text infilling needs <mask>")
        _special_ids(tokenizer)
        _check_lengths(max_length, max_length)
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        if poisson_lambda <= 0:
            raise ValueError(f"poisson_lambda must be > 0, got {poisson_lambda}")
        super().__init__(seed)
        self.tokenizer = tokenizer
        self.model = model
        self.mask_ratio = mask_ratio
        self.poisson_lambda = poisson_lambda
        self.permute_sentences = permute_sentences
        self.max_length = max_length
        self.text_column = text_column
        self.pad_collator = make_seq2seq_collator(
            tokenizer, model, pad_to_multiple_of=pad_to_multiple_of, label_pad_token_id=label_pad_token_id,
            return_tensors=return_tensors,
        )

    def noise(self, token_ids: Sequence[int], rng: np.random.Generator | None = None):
        """``(noised_ids, spans)`` for content ids (no ``<s>``/``</s>``), with the collator's RNG by default."""
        rng = self.rng if rng is None else rng
        spans = noise_spans(len(token_ids), rng, self.mask_ratio, self.poisson_lambda)
        return apply_infilling(list(token_ids), spans, self.tokenizer.mask_token_id), spans

    def encode_texts(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """Unpadded ``{"input_ids", "attention_mask", "labels"}`` per text (advances the RNG)."""
        bos, eos = _special_ids(self.tokenizer)
        rng = self.rng
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"feature {i}: {self.text_column!r} must be a string, got {type(text).__name__}")
        noisy_texts = [permute_sentences(t, rng) for t in texts] if self.permute_sentences else list(texts)
        originals = _content_ids(self.tokenizer, texts)
        noisy = originals if not self.permute_sentences else _content_ids(self.tokenizer, noisy_texts)
        encoded = []
        for source, target in zip(noisy, originals):
            noised, _ = self.noise(source[: self.max_length - 2], rng)
            input_ids = _encode_source(noised, self.max_length, bos, eos)  # zero-length spans may lengthen it
            encoded.append(
                {
                    "input_ids": input_ids,
                    "attention_mask": [1] * len(input_ids),
                    "labels": _encode_target(target, self.max_length, eos),
                }
            )
        return encoded

    def __call__(self, features: Sequence[Mapping[str, Any]]):
        return self.pad_collator(self.encode_texts([f[self.text_column] for f in features]))


class MixedObjectiveCollator:
    """Batches that mix the paper's pretraining objectives: each feature is routed by what it has

    * ``input_ids`` and ``labels`` (already tokenized, e.g. by :func:`tokenize_for_seq2seq`): used as they are;
    * ``source_column`` and ``target_column`` not ``None``: machine translation, tokenized like
      :func:`tokenize_for_seq2seq` (a target-language tag, if any, is part of the source text);
    * otherwise the denoising collator's ``text_column``: DAE through ``denoising``.

    A mixed dataset is e.g. ``datasets.interleave_datasets([monolingual, parallel], probabilities=..., seed=...)``;
    the columns one side lacks are ``None`` in the other side's rows. Tokenizer, model, padding and the RNG are the
    ``denoising`` collator's. ``last_objectives`` lists the objective ("pretokenized"/"mt"/"dae") of each row of
    the last batch.
    """

    def __init__(
        self,
        denoising: DenoisingCollator,
        *,
        max_source_length: int | None = None,
        max_target_length: int | None = None,
        source_column: str = "source_text",
        target_column: str = "target_text",
    ):
        self.denoising = denoising
        self.max_source_length = max_source_length or denoising.max_length
        self.max_target_length = max_target_length or denoising.max_length
        _check_lengths(self.max_source_length, self.max_target_length)
        self.source_column = source_column
        self.target_column = target_column
        self.last_objectives: list[str] = []

    def _objective(self, index: int, feature: Mapping[str, Any]) -> str:
        if feature.get("input_ids") is not None and feature.get("labels") is not None:
            return "pretokenized"
        if feature.get(self.source_column) is not None and feature.get(self.target_column) is not None:
            return "mt"
        if feature.get(self.denoising.text_column) is not None:
            return "dae"
        raise ValueError(
            f"feature {index} has neither input_ids+labels, nor {self.source_column!r}+{self.target_column!r}, nor "
            f"{self.denoising.text_column!r}"
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]):
        tokenizer = self.denoising.tokenizer
        bos, eos = _special_ids(tokenizer)
        objectives = [self._objective(i, f) for i, f in enumerate(features)]
        encoded: list[dict | None] = [None] * len(features)
        for i, (feature, objective) in enumerate(zip(features, objectives)):
            if objective == "pretokenized":
                ids = list(feature["input_ids"])
                encoded[i] = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(feature["labels"])}
        mt = [i for i, o in enumerate(objectives) if o == "mt"]
        if mt:
            sources = _content_ids(tokenizer, [features[i][self.source_column] for i in mt])
            targets = _content_ids(tokenizer, [features[i][self.target_column] for i in mt])
            for i, source, target in zip(mt, sources, targets):
                ids = _encode_source(source, self.max_source_length, bos, eos)
                encoded[i] = {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "labels": _encode_target(target, self.max_target_length, eos),
                }
        dae = [i for i, o in enumerate(objectives) if o == "dae"]
        if dae:
            texts = [features[i][self.denoising.text_column] for i in dae]
            for i, item in zip(dae, self.denoising.encode_texts(texts)):
                encoded[i] = item
        self.last_objectives = objectives
        return self.denoising.pad_collator(encoded)


# --------------------------------------------------------------------------------------------------- language sampling
def temperature_sampling_probabilities(
    sizes: Mapping[str, int], temperature: float = DEFAULT_SAMPLING_TEMPERATURE
) -> dict[str, float]:
    """Language sampling probabilities ``p_i ∝ (n_i / N) ** (1 / T)``.

    ``T = 1`` samples in proportion to size; ``T > 1`` flattens the distribution, up-sampling low-resource
    languages (``T = inf``: uniform over the non-empty languages); ``T < 1`` sharpens it. The default is XLM-R's
    ``alpha = 1 / T = 0.3``. Empty languages get probability 0.
    """
    if not sizes:
        raise ValueError("sizes is empty")
    if not (temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature}")
    names = list(sizes)
    counts = np.asarray([sizes[name] for name in names], dtype=np.float64)
    if (counts < 0).any():
        raise ValueError(f"sizes must be >= 0, got {dict(sizes)}")
    total = counts.sum()
    if total == 0:
        raise ValueError("all sizes are 0")
    present = counts > 0
    if math.isinf(temperature):
        weights = present.astype(np.float64)
    else:
        weights = np.zeros_like(counts)
        weights[present] = (counts[present] / total) ** (1.0 / temperature)
    probabilities = weights / weights.sum()
    return {name: float(p) for name, p in zip(names, probabilities)}


def interleave_languages(
    datasets_by_lang: Mapping[str, Dataset | IterableDataset],
    temperature: float = DEFAULT_SAMPLING_TEMPERATURE,
    seed: int = 0,
    *,
    sizes: Mapping[str, int] | None = None,
    stopping_strategy: str = "all_exhausted",
    lang_column: str | None = "lang",
):
    """One dataset drawing from the per-language datasets with :func:`temperature_sampling_probabilities`
    (``datasets.interleave_datasets(probabilities=..., seed=seed, stopping_strategy=...)``).

    With ``"all_exhausted"`` it stops once every language has been seen completely, so small languages are
    repeated. ``sizes`` defaults to the datasets' lengths (give it for streaming datasets). Empty languages are left
    out. With ``lang_column``, a dataset without that column gets it, filled with its language key.
    """
    if not datasets_by_lang:
        raise ValueError("datasets_by_lang is empty")
    if sizes is None:
        try:
            sizes = {lang: len(ds) for lang, ds in datasets_by_lang.items()}
        except TypeError as error:
            raise ValueError("pass sizes=... for datasets without a length (streaming)") from error
    probabilities = temperature_sampling_probabilities({lang: sizes[lang] for lang in datasets_by_lang}, temperature)
    langs = [lang for lang in datasets_by_lang if probabilities[lang] > 0]
    if len(langs) < len(datasets_by_lang):
        logger.warning("interleave_languages: leaving out empty languages %s",
                       sorted(set(datasets_by_lang) - set(langs)))
    parts = []
    for lang in langs:
        ds = datasets_by_lang[lang]
        if lang_column and lang_column not in (ds.column_names or []):
            if isinstance(ds, Dataset):
                ds = ds.add_column(lang_column, [lang] * len(ds))
            else:
                ds = ds.map(lambda _example, value=lang: {lang_column: value})
        parts.append(ds)
    logger.info(
        "interleave_languages: T=%s, probabilities %s",
        temperature, {lang: round(probabilities[lang], 4) for lang in langs},
    )
    return datasets.interleave_datasets(
        parts,
        probabilities=[probabilities[lang] for lang in langs],
        seed=seed,
        stopping_strategy=stopping_strategy,
    )
