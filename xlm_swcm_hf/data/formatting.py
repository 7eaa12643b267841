"""Task formats: a task's columns -> `source_text` / `target_text` (+ `lang`), with row-level errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, IterableDataset

from ..checks import InputError


logger = logging.getLogger(__name__)


class DataError(InputError):
    """Data that cannot be used as it is; the message names the file or split, the row and the column."""


TASKS = ("summarization", "mrc", "translation")

# How a reading-comprehension example becomes one source string: question first, then the context, joined by
# `</s></s>`. An XLM-R tokenizer keeps `</s>` whole (it is a special token) and gives every text segment its
# own leading `▁`, so `tokenizer(MRC_TEMPLATE.format(question=q, context=c))` is exactly XLM-R's own pair
# encoding `tokenizer(q, c)` = `<s> q </s></s> c </s>` — the format XLM-R-family encoders are fine-tuned on.
# With the question first, truncation (which cuts from the end) shortens the context, never the question.
# (A tokenizer created with `split_special_tokens=True` would cut `</s>` into pieces: do not use one.)
MRC_TEMPLATE = "{question}</s></s>{context}"


# --------------------------------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class TaskColumns:
    """Which dataset columns a task reads.

    `source`: the input text (summarization: the document; translation: the source sentence; mrc: the
    *context*). `target`: the output text. `question`: mrc only. `lang`: an optional language column, carried
    over as `lang` when the dataset has it (`None` = never).
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
    """The default `TaskColumns` of a task."""
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


# --------------------------------------------------------------------------------------------------- formatting
def _field_text(value: Any) -> tuple[str, str | None]:
    """(text, problem): the stripped text of a field value, or what is wrong with it.

    Lists give their first non-empty text and `{"text": [...]}` (SQuAD-style answers) its `text`; numbers are
    written out; `None` and NaN are missing."""
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
) -> Dataset:
    if isinstance(dataset, IterableDataset) or not isinstance(dataset, Dataset):
        raise TypeError(
            f"format_examples needs a datasets.Dataset or DatasetDict (streaming datasets are not supported), "
            f"got {type(dataset).__name__}"
        )
    roles = [("question", cols.question)] if task == "mrc" else []
    roles += [("source", cols.source), ("target", cols.target)]
    for role, column in roles:
        if column not in dataset.column_names:
            raise DataError(
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
        raise DataError(
            f"{where}{problems[0]}{more}; fix the data or drop such rows (drop_invalid=True; recipes: "
            "data.drop_invalid=true; evaluate_model.py: --drop-invalid)"
        )
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
    return formatted


def format_examples(
    dataset: Dataset | DatasetDict,
    task: str,
    columns: TaskColumns | Mapping[str, str | None] | None = None,
    *,
    drop_invalid: bool = False,
    mrc_template: str = MRC_TEMPLATE,
    num_proc: int | None = None,
    where: str = "",
):
    """Map a task's columns to `source_text` and `target_text` (+ `lang` if the dataset has the language
    column); every other column is removed.

    `columns`: a `TaskColumns`, a dict overriding some of the task defaults (e.g. `{"source": "article"}`),
    or `None` for the defaults (`default_columns`). mrc sources are ``mrc_template.format(question=...,
    context=...)`` (default `MRC_TEMPLATE`). Texts are stripped of surrounding whitespace. The language
    column, when the dataset has it, must be filled too.

    A missing or empty field raises `ValueError("row 17: column 'summary' is empty ...")` (row = 0-based index in
    the split; a `DatasetDict` adds the split name). With `drop_invalid=True` such rows are dropped instead, and how
    many (with the first one's problem) is logged as a warning. Either way the formatted dataset is returned: a
    `Dataset` for a `Dataset`, a `DatasetDict` for a `DatasetDict`.
    """
    cols = _resolve_columns(task, columns)
    if task == "mrc" and not ("{question}" in mrc_template and "{context}" in mrc_template):
        raise ValueError(f"mrc_template must contain {{question}} and {{context}}, got {mrc_template!r}")
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                name: _format_one(split, task, cols, mrc_template, drop_invalid, f"{where}split {name!r}, ", num_proc)
                for name, split in dataset.items()
            }
        )
    return _format_one(dataset, task, cols, mrc_template, drop_invalid, where, num_proc)
