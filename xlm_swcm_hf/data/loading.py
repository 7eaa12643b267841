"""Loading local data files (the `datasets` builder inferred from the extension) or any `datasets` name."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets

from .formatting import MRC_TEMPLATE, DataError, TaskColumns, _resolve_columns, format_examples


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
    """The `datasets` builder (`json`, `csv`, `parquet`, `text`, `arrow`) for local files, from their
    extension (a compression suffix such as `.gz` is skipped). All files must share one builder."""
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
    extension (a missing file is then reported as such). Folders and other names go to `load_dataset` as they are."""
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
    """Load a dataset and (with a `task`) format it with `format_examples`.

    `data_files_or_name`: a local file (`.jsonl`/`.json`, `.csv`/`.tsv`, `.parquet`, `.txt`,
    `.arrow`, optionally compressed), a list of them, a `{split: path_or_paths}` dict, or anything else
    `datasets.load_dataset` accepts (a Hub name, a builder name, a local folder). A single file or list becomes the
    `train` split. `split=None` returns a `DatasetDict`, otherwise a `Dataset`. `load_kwargs` go to
    `datasets.load_dataset` (e.g. `cache_dir`, `name`; `.tsv` files get `delimiter="\\t"` unless given).

    `task=None` returns the raw dataset, with a task the formatted one (`format_examples`; with `drop_invalid=True`
    rows with a missing or empty field are dropped and counted in a warning).
    """
    if task is not None:
        _resolve_columns(task, columns)  # fail before loading anything
    if _names_local_files(data_files_or_name):
        for path in _flatten_paths(data_files_or_name):
            check_data_file(path)
        builder = infer_builder(data_files_or_name)
        if any(_extension(p) == ".tsv" for p in _flatten_paths(data_files_or_name)):
            load_kwargs.setdefault("delimiter", "\t")
        if isinstance(data_files_or_name, Mapping):
            # One split at a time: loaded together, `datasets` casts every split to the first one's columns and
            # a column missing from one file becomes an opaque CastError instead of a message naming that file.
            raw = datasets.DatasetDict(
                {str(name): _load_files(builder, files, load_kwargs) for name, files in data_files_or_name.items()}
            )
            raw = raw[split] if split is not None else raw
        else:
            raw = _load_files(builder, data_files_or_name, load_kwargs)
            raw = raw if split is not None else datasets.DatasetDict({"train": raw})
    else:
        raw = datasets.load_dataset(os.fspath(data_files_or_name), split=split, **load_kwargs)
    if task is None:
        return raw
    return format_examples(raw, task, columns, drop_invalid=drop_invalid, mrc_template=mrc_template)


def check_data_file(path: str | os.PathLike) -> None:
    """A local data file must exist, hold something and, if it is text, be UTF-8 (globs are left to `datasets`)."""
    name = os.fspath(path)
    if _is_glob(name):
        return
    if not Path(name).exists():
        raise DataError(f"data file {name} does not exist.")
    if Path(name).is_dir():
        raise DataError(f"data file {name} is a folder; name the file(s) in it.")
    text_like = _EXTENSION_BUILDERS.get(_extension(name)) in ("json", "csv", "text") and not name.endswith(
        _COMPRESSIONS
    )
    if Path(name).stat().st_size == 0 or (text_like and not Path(name).read_bytes()[:65536].strip()):
        raise DataError(f"data file {name} is empty.")
    if text_like:
        from ..checks import require_utf8

        require_utf8(name, "data file")


def _load_files(builder: str, files, load_kwargs: dict):
    try:
        return datasets.load_dataset(builder, data_files=_stringify_paths(files), split="train", **load_kwargs)
    except (datasets.exceptions.DatasetGenerationError, ValueError, TypeError, StopIteration) as error:
        cause = error.__cause__ or error
        raise DataError(
            f"data file {_stringify_paths(files)} cannot be read as {builder}: "
            f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
        ) from error
