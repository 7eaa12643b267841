"""Translate a file of any size, in one process or many: streamed, sharded by blocks, resumable, merged in order.

    from xlm_swcm_hf.bulk_translation import translate_file

    stats = translate_file(model, tokenizer, "in.txt", "out.txt", target_language="ug", num_beams=5)

(`scripts/translate.py` is its command line; under a launcher every process runs the same command.)

The rows are cut into blocks of `block_size` consecutive rows; block b belongs to process b % W (rank r of W
processes under `torchrun --nproc-per-node N`, `--nnodes M` with a c10d rendezvous, or `accelerate launch`; W = 1
alone). Each process writes each finished block to a file of its own, `<output>.parts/block-<b>.jsonl` (a header
with the run's record and the block's rows, then one translation per row in the block's order), to a temporary name
renamed into place. After a barrier (gloo on CPUs, nccl on GPUs, set up by accelerate's `PartialState` from the
launcher's environment) the main process streams the input once more beside the blocks, in order, into the output's
temporary name, renames it into place and removes the blocks.

- Nothing grows with the file: the input is streamed (text and JSONL line by line, Parquet through `datasets`
  streaming), the output written row by row, and no process holds more than two blocks (the one being translated and
  the next, read and tokenized in a background thread meanwhile).
- Within a block the sources are sorted by length and cut into batches of `batch_size` sentences or of at most
  `max_tokens_per_batch` padded tokens (`translation.make_batches`).
- Resume: a block file is finished or absent, so a killed process loses only the block it was on; a rerun skips every
  finished block, whatever the number of processes then. A block written by a run with another record (model,
  input, options) is refused unless `overwrite`, like the one-process resume file.
- The same outputs as one process: blocks are the same whatever the number of processes, and so are the batches
  made within them; so the merged output equals a one-process run's, token for token.

JSONL rows are read with `json` line by line rather than through `datasets`: its JSON loader unifies the rows'
schema (a row without a field gets it as null, types are cast), and the output rows must be the input's as written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .checks import ADVISED_ERRNOS, InputError, Interrupted, error_message
from .files import atomic_output_file, output_lock
from .translation import LANGUAGE_FIELD, TRANSLATION_FIELD


PARTS_SUFFIX = ".parts"
BLOCK_FORMAT = 1


# --------------------------------------------------------------------------------------------------- processes
class ProcessGroup:
    """The launcher's processes (torchrun / accelerate launch), or this process alone: rank, world, device, barrier."""

    def __init__(self):
        self._state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # RANK/WORLD_SIZE/MASTER_ADDR from the launcher; nccl on CUDA. Without an accelerator accelerate sets up
            # the processes only when told they are CPU ones (then gloo).
            accelerator = getattr(torch, "accelerator", None)
            has_accelerator = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
            self._state = PartialState(cpu=not has_accelerator)
        self.rank = self._state.process_index if self._state is not None else 0
        self.world = self._state.num_processes if self._state is not None else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self):
        """The launcher's device for this process (cuda:<local rank> on GPUs), None alone (the model's own)."""
        return None if self._state is None else self._state.device

    def owns(self, block: int) -> bool:
        return block % self.world == self.rank

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()


# --------------------------------------------------------------------------------------------------- input
def file_format(path: str | os.PathLike) -> str:
    """jsonl (a .jsonl name), parquet (.parquet), or text (one source per line: any other name)."""
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".parquet": "parquet"}.get(suffix, "text")


def stream_rows(path: str | os.PathLike) -> Iterator[dict | str]:
    """The input's rows in order: a text line (str, without its newline), a JSONL row (dict, as written), or a Parquet
    row (dict, streamed by `datasets`)."""
    kind = file_format(path)
    if kind == "parquet":
        from datasets import load_dataset
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
        yield from load_dataset("parquet", data_files=os.fspath(path), split="train", streaming=True)
        return
    with open(path, encoding="utf-8", newline="\n") as stream:  # lines end at "\n" only, as scan_input counts them
        for line in stream:
            line = _without_line_end(line)
            if kind == "jsonl":
                if line.strip():
                    yield json.loads(line)
            else:
                yield line


def _without_line_end(line: str) -> str:
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def row_source(row: dict | str, source_column: str) -> str:
    return row if isinstance(row, str) else row[source_column]


def row_language(row: dict | str) -> str | None:
    """A JSONL or Parquet row's `lang` field (its target language), if it has one."""
    language = row.get(LANGUAGE_FIELD) if isinstance(row, dict) else None
    return language if isinstance(language, str) else None


def sample_sources(path: str | os.PathLike, source_column: str = "source", count: int = 200) -> list[str]:
    """The first `count` non-blank sources (to check that the tokenizer spells them), streamed."""
    import itertools

    texts = (row_source(row, source_column) for row in stream_rows(path))
    return list(itertools.islice((text for text in texts if text.strip()), count))


def check_jsonl_row(
    row, source_column: str, where: str, column_option: str = "--source-column", row_language: str | None = None
) -> str:
    """A JSONL row's source (an InputError naming `where` otherwise): an object with a text `source_column` (null is
    not an empty source, nor is 42 the text "42"), no `translation` field the output would replace, a text `lang`
    (and, given `row_language`, that one or none). `column_option`: the flag that named the column, for the fix."""
    if not isinstance(row, dict):
        raise InputError(f"{where} is not a JSON object.")
    if source_column not in row:
        raise InputError(
            f"{where} has no {source_column!r} field (fields: {', '.join(sorted(row))}); name the source field with "
            f"{column_option}."
        )
    if TRANSLATION_FIELD in row:
        raise InputError(
            f"{where} already has a {TRANSLATION_FIELD!r} field, which the output would replace; remove it first."
        )
    value = row[source_column]
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise InputError(
            f"{where}: field {source_column!r} is not text (got {got}); give every row a text source (an empty "
            "string for none)."
        )
    language = row.get(LANGUAGE_FIELD)
    if language is not None and not isinstance(language, str):
        raise InputError(f"{where}: field {LANGUAGE_FIELD!r} is not text (got {type(language).__name__}).")
    if row_language is not None and language is not None and language != row_language:
        raise InputError(wrong_language_message(where, language, row_language))
    return value


def wrong_language_message(where: str, language: str, row_language: str) -> str:
    return (
        f"{where}: field {LANGUAGE_FIELD!r} is {language!r}, not --language {row_language}; give back_translate.py "
        f"one language's rows at a time (split the file by its {LANGUAGE_FIELD!r} field) or correct the row."
    )


@dataclass
class InputSummary:
    """What a scan of the input found: its path, rows and the sha256 of its bytes (the resume record's `input`)."""

    path: Path
    rows: int
    sha256: str


def scan_input(
    path: str | os.PathLike,
    source_column: str = "source",
    known_languages: list[str] | None = None,
    *,
    column_option: str = "--source-column",
    row_language: str | None = None,
) -> InputSummary:
    """Read the input once, streamed, before any model is loaded: count the rows, hash the bytes, and refuse a file
    that is missing, empty, not UTF-8 or holds only blank lines, and a row that `check_jsonl_row` refuses or whose
    `lang` is not a tag the model knows, naming the line. `column_option`: the flag that named `source_column` (the
    messages name it); `row_language`: the language every row's `lang` must be where it has one (back-translation's
    --language: a row of another language would become a pair labelled with the wrong one)."""
    import hashlib

    from .checks import require_local_path
    from .translation import check_language

    path = require_local_path(path, "--input", folder=False)
    if path.stat().st_size == 0:
        raise InputError(f"--input {path} is empty; give a file with one source per line.")
    digest = hashlib.sha256()
    if file_format(path) == "parquet":
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        rows = _scan_parquet(path, source_column, column_option, row_language)
        return InputSummary(path, rows, digest.hexdigest())
    rows, blank = 0, 0
    jsonl = file_format(path) == "jsonl"
    with open(path, "rb") as handle:  # one pass: the bytes hashed and the rows checked together
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            rows += 1
            try:  # UTF-8 never puts a b"\n" inside a character, so a line decodes on its own
                line = _without_line_end(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise InputError(
                    f"--input {path} is not UTF-8 text (line {number}, byte {error.start} of it); convert it to UTF-8."
                ) from None
            where = f"--input {path}: line {number}"
            if not jsonl:
                blank += not line.strip()
                continue
            if not line.strip():
                raise InputError(f"{where} is blank; a JSONL file holds one JSON object a line.")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{where} is not valid JSON ({error.msg}).") from None
            check_jsonl_row(row, source_column, where, column_option, row_language)
            if row.get(LANGUAGE_FIELD) is not None:
                check_language(row[LANGUAGE_FIELD], known_languages, f"{where}: field {LANGUAGE_FIELD!r}")
    if blank == rows:
        raise InputError(f"--input {path} holds only blank lines; nothing to translate.")
    return InputSummary(path, rows, digest.hexdigest())


def _scan_parquet(path: Path, source_column: str, column_option: str, row_language: str | None) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise InputError(f"--input {path} is not a Parquet file ({error}).") from None
    names = parquet.schema_arrow.names
    if source_column not in names:
        raise InputError(
            f"--input {path} has no column {source_column!r} (columns: {', '.join(names)}); name the source column "
            f"with {column_option}."
        )
    if TRANSLATION_FIELD in names:
        raise InputError(f"--input {path} already has a {TRANSLATION_FIELD!r} column, which the output would replace.")
    kind = parquet.schema_arrow.field(source_column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputError(f"--input {path}: column {source_column!r} is {kind}, not text.")
    with_language = row_language is not None and LANGUAGE_FIELD in names
    rows = 0
    for batch in parquet.iter_batches(columns=[source_column, *([LANGUAGE_FIELD] if with_language else [])]):
        sources = batch.column(0)  # one row group at a time
        if sources.null_count:
            first = rows + sources.is_null().to_pylist().index(True)
            raise InputError(f"--input {path}: row {first + 1}: column {source_column!r} is null.")
        for offset, language in enumerate(batch.column(1).to_pylist() if with_language else []):
            if language is not None and language != row_language:
                where = f"--input {path}: row {rows + offset + 1}"
                raise InputError(wrong_language_message(where, str(language), row_language))
        rows += batch.num_rows
    if rows == 0:
        raise InputError(f"--input {path} holds no rows.")
    return rows


# --------------------------------------------------------------------------------------------------- the record
# What each fact of the resume record is, for the message that names the ones that differ.
RECORD_FACTS = {
    "input": "input file (its content)",
    "count": "number of input rows",
    "model": "model (its files' content)",
    "backend": "backend",
    "source_column": "source column (translate.py's --source-column, back_translate.py's --text-column)",
    "target_language": "--target-language",
    "generation": "generation options (--num-beams, --max-new-tokens)",
    "full_vocabulary": "--full-vocabulary",
}


def run_record(
    model_id: str,
    backend: str,
    summary: InputSummary,
    source_column,
    target_language,
    generation_kwargs,
    full_vocabulary: bool = False,
) -> dict:
    """What decides the translations: the input's content, the model's (`translation.model_identity`, which covers
    its output vocabularies), the backend, the column, the tag, the generation options and whether the output
    vocabularies are turned off. Batching and the number of processes are not part of it: they do not change the
    result."""
    return {
        "input": summary.sha256,
        "count": summary.rows,
        "model": model_id,
        "backend": backend,
        "source_column": source_column if file_format(summary.path) != "text" else None,
        "target_language": target_language,
        "generation": {key: repr(value) for key, value in sorted(generation_kwargs.items())},
        "full_vocabulary": full_vocabulary,
    }


def check_output(output: str | os.PathLike, input_path, overwrite: bool = False, model=None) -> Path:
    """The output file: creatable, not a folder, not the input nor inside the model folder (`overwrite` or not),
    and not an existing file unless `overwrite`; its blocks' folder not a file."""
    from .checks import refuse_output_over_inputs, require_writable_output

    output = require_writable_output(output, "--output", folder=False)
    refuse_output_over_inputs(output, "--output", {"--input": input_path, "--model": model})
    refuse_output_over_inputs(parts_folder(output), "--output's blocks folder", {"--input": input_path})
    if output.exists() and not overwrite:
        raise InputError(f"--output {output} exists; pass --overwrite to replace it or choose another --output.")
    if parts_folder(output).exists() and not parts_folder(output).is_dir():
        raise InputError(f"{parts_folder(output)} (where --output's finished blocks go) is a file; remove it.")
    return output


# --------------------------------------------------------------------------------------------------- blocks
def parts_folder(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + PARTS_SUFFIX)


def block_path(parts: Path, block: int) -> Path:
    return parts / f"block-{block:08d}.jsonl"


def block_count(rows: int, block_size: int) -> int:
    return -(-rows // block_size)


def _block_header(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as stream:
            header = json.loads(stream.readline())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) and header.get("format") == BLOCK_FORMAT else None


def check_blocks(parts: Path, record: dict, overwrite: bool) -> list[Path]:
    """The block files in `parts` that a run with another record wrote: an InputError naming what differs, unless
    `overwrite` (then they are returned, for the main process to remove before the run starts)."""
    if not parts.is_dir():
        return []
    stale, recorded = [], None
    for path in sorted(parts.glob("block-*.jsonl")):
        header = _block_header(path)
        if header is None or header.get("record") != record:
            stale.append(path)
            recorded = recorded or (header or {}).get("record")
    if stale and not overwrite:
        if isinstance(recorded, dict):
            differs = [what for key, what in RECORD_FACTS.items() if recorded.get(key) != record.get(key)]
        else:
            differs = ["record (an older or damaged block file)"]
        raise InputError(
            f"{parts} holds {len(stale)} finished block(s) of a run with another {', '.join(differs)}, so they cannot "
            "be resumed with this one. Pass --overwrite to discard them and start over, rerun with that run's model "
            "and options to finish it, or choose another --output."
        )
    return stale


def finished_block(path: Path, record: dict, rows: int) -> list[str] | None:
    """The translations of a finished block file with this record and row count; None if there is none."""
    header = _block_header(path) if path.is_file() else None
    if header is None or header.get("record") != record or header.get("rows") != rows:
        return None
    with open(path, encoding="utf-8") as stream:
        stream.readline()
        translations = [json.loads(line)[TRANSLATION_FIELD] for line in stream]
    return translations if len(translations) == rows else None


def write_block(path: Path, block: int, record: dict, translations: list[str]) -> None:
    with atomic_output_file(path) as stream:
        header = {"format": BLOCK_FORMAT, "block": block, "rows": len(translations), "record": record}
        stream.write(json.dumps(header, ensure_ascii=False) + "\n")
        for text in translations:
            stream.write(json.dumps({TRANSLATION_FIELD: text}, ensure_ascii=False) + "\n")


@dataclass
class PreparedBlock:
    """A block read and tokenized ahead of the model: its sources and, for the non-blank ones, their token ids."""

    block: int
    sources: list[str]
    encoded: dict[int, list[int]]  # position in the block -> ids
    truncated: int
    languages: dict[int, str | None]  # position in the block -> its target tag (`translation.target_tag`)


def prepare_blocks(
    input_path, source_column, tokenizer, todo: set[int], block_size: int, target_language, source_limit
) -> Iterator[PreparedBlock]:
    """The blocks in `todo`, in order, read from the streamed input and tokenized (tagged, truncated to the position
    table; a blank source stays untokenized), with each row's target tag."""
    from .translation import encode_sources, tagged, target_tag

    rows = stream_rows(input_path)
    last = max(todo, default=-1)
    for block in range(last + 1):
        block_rows = [row for _, row in zip(range(block_size), rows)]
        sources = [row_source(row, source_column) for row in block_rows]
        if block in todo:
            wanted = [position for position, text in enumerate(sources) if text.strip()]
            texts = [tagged(sources[position].strip(), target_language) for position in wanted]
            ids, truncated = encode_sources(tokenizer, texts, source_limit)
            languages = {
                position: target_tag(sources[position], target_language, row_language(block_rows[position]))
                for position in wanted
            }
            yield PreparedBlock(block, sources, dict(zip(wanted, ids)), len(truncated), languages)


def ahead(iterator: Iterator, depth: int = 1) -> Iterator:
    """`iterator`'s items, produced `depth` ahead in a background thread (tokenizing while the model generates: the
    tokenizers release the GIL); an exception there is raised here."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in iterator:
                items.put(item)
        except BaseException as error:  # handed to the consumer, raised there
            items.put(error)
        items.put(done)

    threading.Thread(target=produce, daemon=True, name="prefetch").start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


# --------------------------------------------------------------------------------------------------- translating
def translate_blocks(
    model,
    tokenizer,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    rows: int,
    record: dict,
    group: ProcessGroup | None = None,
    source_column: str = "source",
    target_language: str | None = None,
    block_size: int | None = None,
    batch_size: int | None = None,
    max_tokens_per_batch: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    full_vocabulary: bool = False,
    **generation_kwargs,
):
    """Translate this process's unfinished blocks of `input_path` into block files beside `output` (see the module's
    docstring). Every process calls it; `merge_blocks` follows on the main process after `group.barrier()`.
    Each row decodes within the model's output vocabulary of its target language where there is one, unless
    `full_vocabulary`. Returns the process's `TranslationStats`."""
    from tqdm.auto import tqdm

    from .recipe import TRANSLATION_BLOCK_SIZE
    from .translation import TranslationStats, check_batches_fit, generate_batch, make_batches, source_limit

    group = group or ProcessGroup()
    block_size = block_size or TRANSLATION_BLOCK_SIZE
    parts = parts_folder(output)
    stale = check_blocks(parts, record, overwrite)  # every process: the same refusal everywhere, before any work
    if group.is_main:
        for path in stale:
            path.unlink()
        parts.mkdir(parents=True, exist_ok=True)
    group.barrier()

    sizes = {block: min(block_size, rows - block * block_size) for block in range(block_count(rows, block_size))}
    owned = [block for block in sizes if group.owns(block)]
    todo = {block for block in owned if finished_block(block_path(parts, block), record, sizes[block]) is None}
    stats = TranslationStats(source_limit=source_limit(model, tokenizer))
    stats.resumed = sum(sizes[block] for block in owned if block not in todo)
    model.eval()
    prepared = ahead(
        prepare_blocks(input_path, source_column, tokenizer, todo, block_size, target_language, stats.source_limit)
    )
    bar = tqdm(
        total=sum(sizes[block] for block in todo),
        desc="translating" if group.world == 1 else f"translating (process {group.rank} of {group.world})",
        unit=" sentences",
        position=group.rank,
        disable=not progress or not todo,
    )
    start, written = time.perf_counter(), 0
    try:
        for item in prepared:
            translations = [""] * len(item.sources)
            stats.empty += len(item.sources) - len(item.encoded)
            stats.truncated += item.truncated
            lengths = {position: len(ids) for position, ids in item.encoded.items()}
            batches = make_batches(lengths, list(item.encoded), batch_size, max_tokens_per_batch)
            check_batches_fit(model, batches, generation_kwargs)
            for batch in batches:
                languages = None if full_vocabulary else [item.languages[position] for position in batch]
                texts, tokens = generate_batch(
                    model, tokenizer, [item.encoded[position] for position in batch], generation_kwargs, languages
                )
                for position, text in zip(batch, texts):
                    translations[position] = text
                stats.tokens += tokens
                stats.sentences += len(batch)
            write_block(block_path(parts, item.block), item.block, record, translations)
            written += 1
            bar.update(len(item.sources))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{stats.tokens / elapsed if elapsed > 0 else 0:.1f} tokens/s")
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; --output was not written, and {kept_note(written, owned, todo, parts)} Run the same "
            "command again to resume from there."
        ) from None
    except OSError as error:
        refuse_write_failure(error, "the translations", kept_note(written, owned, todo, parts), "to resume from there")
        raise
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - start
    return stats


WRITE_ERRNOS = (*ADVISED_ERRNOS, errno.EIO)  # a full disk, a refused write, a failing disk


def refuse_write_failure(error: OSError, what: str, kept: str, then: str) -> None:
    """An OSError from WRITE_ERRNOS while writing `what` as one InputError saying what is `kept` and that the same
    command goes on from it (`then`); any other OSError is left to the caller to re-raise."""
    if error.errno in WRITE_ERRNOS:
        raise InputError(
            f"writing {what} failed: {error_message(error)} {kept} Run the same command again once that is fixed "
            f"{then}."
        ) from None


def kept_note(written: int, owned: list[int], todo: set[int], parts: Path) -> str:
    earlier = len(owned) - len(todo)
    return f"{written + earlier} of this process's {len(owned)} blocks are finished and kept in {parts}."


# --------------------------------------------------------------------------------------------------- merging
def output_rows(input_path, source_column: str, translations: Iterator[str]) -> Iterator[dict]:
    for row, translation in zip(stream_rows(input_path), translations):
        yield (
            {source_column: row, TRANSLATION_FIELD: translation}
            if isinstance(row, str)
            else {
                **row,
                TRANSLATION_FIELD: translation,
            }
        )


def block_translations(parts: Path, record: dict, rows: int, block_size: int) -> Iterator[str]:
    for block in range(block_count(rows, block_size)):
        size = min(block_size, rows - block * block_size)
        translations = finished_block(block_path(parts, block), record, size)
        if translations is None:
            raise InputError(
                f"block {block} is missing from {parts}: a process ended before finishing it. Run the same command "
                "again to translate what is missing."
            )
        yield from translations


def merge_blocks(
    input_path,
    output,
    *,
    rows: int,
    record: dict,
    source_column: str = "source",
    block_size: int | None = None,
    make_rows=None,
) -> Path:
    """The main process, after every process's `translate_blocks`: the input's rows and the blocks' translations,
    in order, streamed into `output` (text: one translation per line; .jsonl: each row with a `translation` field;
    .parquet: the same as a table), through a temporary name; then the blocks are removed. `make_rows`: a function
    of the (input row, translation) pairs giving the output's rows instead (e.g. back-translation's training pairs;
    a .jsonl or .parquet output)."""
    from .recipe import TRANSLATION_BLOCK_SIZE

    block_size = block_size or TRANSLATION_BLOCK_SIZE
    output, parts = Path(output), parts_folder(output)
    translations = block_translations(parts, record, rows, block_size)
    kind = file_format(output)
    if make_rows is not None:
        made = make_rows(zip(stream_rows(input_path), translations))
        if kind == "jsonl":
            with atomic_output_file(output) as stream:
                for row in made:
                    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            _write_parquet(output, made)
    elif kind == "text":
        with atomic_output_file(output) as stream:
            for translation in translations:
                stream.write(translation + "\n")
    elif kind == "jsonl":
        with atomic_output_file(output) as stream:
            for row in output_rows(input_path, source_column, translations):
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        _write_parquet(output, output_rows(input_path, source_column, translations))
    shutil.rmtree(parts, ignore_errors=True)
    return output


def _write_parquet(output: Path, rows: Iterator[dict], rows_per_group: int = 10_000) -> None:
    import itertools

    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_output_file(output, mode="wb") as stream:
        writer = None
        while chunk := list(itertools.islice(rows, rows_per_group)):
            table = pa.Table.from_pylist(chunk, schema=writer.schema if writer is not None else None)
            writer = writer or pq.ParquetWriter(stream, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------------------------------- the whole file
def translate_file(
    model,
    tokenizer,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    source_column: str = "source",
    target_language: str | None = None,
    batch_size: int | None = None,
    max_tokens_per_batch: int | None = None,
    block_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model_source: str | os.PathLike | None = None,
    known_languages: list[str] | None = None,
    group: ProcessGroup | None = None,
    summary: InputSummary | None = None,
    make_rows=None,
    full_vocabulary: bool = False,
    **generation_kwargs,
):
    """Translate `input_path` into `output` (see the module's docstring) in every process of the launch (or this
    one alone); returns this process's `TranslationStats`. `model_source`: the folder or Hub name the model was
    loaded from (default: its config's `_name_or_path`), by whose content the resume record names the model.
    `summary`: the caller's `scan_input` of `input_path` with the same column and languages (not read again).
    `make_rows`: the output's rows from the (input row, translation) pairs (see `merge_blocks`). `full_vocabulary`:
    never decode within the model's output vocabularies (see `translate_blocks`)."""
    from .inference import inference_backend
    from .recipe import TRANSLATION_BLOCK_SIZE
    from .translation import check_batching, model_identity

    check_batching(batch_size, max_tokens_per_batch)
    group = group or ProcessGroup()
    summary = summary or scan_input(input_path, source_column, known_languages)
    model_source = model_source or getattr(model.config, "_name_or_path", None) or None
    output = check_output(output, summary.path, overwrite, model_source)
    record = run_record(
        model_identity(model_source, model), inference_backend(model), summary, source_column, target_language,
        generation_kwargs, full_vocabulary,
    )  # fmt: skip
    common = {"rows": summary.rows, "record": record, "block_size": block_size}
    # One run per output at a time: the launch's main process holds the lock (the others work under it).
    with output_lock(output, "--output") if group.is_main else contextlib.nullcontext():
        stats = translate_blocks(
            model, tokenizer, summary.path, output, **common, group=group, source_column=source_column,
            target_language=target_language, batch_size=batch_size, max_tokens_per_batch=max_tokens_per_batch,
            overwrite=overwrite, progress=progress, full_vocabulary=full_vocabulary, **generation_kwargs,
        )  # fmt: skip
        group.barrier()
        if group.is_main:
            try:
                merge_blocks(summary.path, output, source_column=source_column, make_rows=make_rows, **common)
            except OSError as error:
                blocks = block_count(summary.rows, block_size or TRANSLATION_BLOCK_SIZE)
                kept = f"--output was not written; all {blocks} blocks are finished and kept in {parts_folder(output)}."
                refuse_write_failure(error, "--output", kept, "to write it from them")
                raise
    return stats


# --------------------------------------------------------------- the command lines of translate.py, back_translate.py
def add_decoding_arguments(parser) -> None:
    """The options a file-translating script takes after its own: decoding, batching, blocks, backend, loading."""
    from .inference import add_backend_arguments
    from .output_vocabulary import add_full_vocabulary_argument
    from .recipe import GENERATION_BATCH_SIZE, TRANSLATION_BLOCK_SIZE

    parser.add_argument("--num-beams", type=int, help="default: the folder's generation_config")
    parser.add_argument("--max-new-tokens", type=int, help="default: the folder's generation_config")
    add_full_vocabulary_argument(parser)
    batching = parser.add_argument_group("batching (one of)")
    batching.add_argument("--batch-size", type=int, help=f"sentences per batch (default: {GENERATION_BATCH_SIZE})")
    batching.add_argument("--max-tokens-per-batch", type=int, help="padded source tokens per batch")
    parser.add_argument(
        "--block-size", type=int, help=f"rows per block: sorted by length, resumed, dealt to processes (default: "
        f"{TRANSLATION_BLOCK_SIZE})"
    )  # fmt: skip
    add_backend_arguments(parser)
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_decoding_arguments(args) -> str:
    """The options `add_decoding_arguments` added, checked; returns the backend they choose."""
    from .inference import backend_from_arguments
    from .translation import check_batching

    for name in ("num_beams", "max_new_tokens", "block_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    check_batching(args.batch_size, args.max_tokens_per_batch)
    return backend_from_arguments(args)


@dataclass
class CommandRun:
    """What a file-translating script goes on with once `start_command_run` has checked everything and loaded."""

    generation: dict
    tokenizer: object
    model: object
    group: ProcessGroup


def start_command_run(
    args, backend: str, source, column: str, language: str | None, language_option: str, languages
) -> CommandRun:
    """For translate.py and back_translate.py, after their own checks of the input (`source`, from `scan_input`): the
    output, the model folder, lengths, memory and the resume record are checked before anything is loaded or
    written; then the tokenizer and the model (on this process's GPU, where there is one)."""
    import sys

    from .checks import check_position_limit, load_tokenizer, require_trained_model
    from .inference import check_decoding_memory, load_for_inference, read_generation_settings
    from .recipe import GENERATION_BATCH_SIZE
    from .translation import model_identity, tagged

    output = check_output(args.output, source.path, args.overwrite, args.model)
    require_trained_model(args.model, "--model")
    if language is not None and languages is None:
        print(
            f"note: {args.model} records no target languages (its README.md has no language list), so "
            f"{language_option} {language} is not checked against them.",
            file=sys.stderr,
        )
    check_position_limit(args.model, "the model", {"--max-new-tokens": args.max_new_tokens})
    generation = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }
    config, saved_generation = read_generation_settings(args.model)
    if config is not None:  # a token budget's batches are known once tokenized: translate_file checks them again
        sentences = args.batch_size or (1 if args.max_tokens_per_batch else GENERATION_BATCH_SIZE)
        check_decoding_memory(config, saved_generation, sentences=sentences, **generation)
        record = run_record(
            model_identity(args.model), backend, source, column, language, generation, args.full_vocabulary
        )
        check_blocks(parts_folder(output), record, args.overwrite)
    sample = [tagged(text, language) for text in sample_sources(source.path, column)]
    tokenizer = load_tokenizer(args.model, sample_texts=sample)

    group = ProcessGroup()  # the launch's processes (torchrun / accelerate launch), or this one alone
    model = load_for_inference(
        args.model, backend, trust_remote_code=args.trust_remote_code, onnx_cache=args.onnx_cache
    )
    if backend == "torch" and group.device is not None and group.device.type != "cpu":
        model = model.to(group.device)  # each process its own GPU
    return CommandRun(generation, tokenizer, model, group)
