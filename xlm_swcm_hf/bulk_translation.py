"""Translate a file of any size, in one process or many: streamed, sharded by blocks, resumable, merged in order.

    from xlm_swcm_hf.bulk_translation import ProcessGroup, scan_input, translate_blocks, merge_blocks

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

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .checks import InputError, Interrupted
from .files import atomic_output_file


PARTS_SUFFIX = ".parts"
BLOCK_FORMAT = 1
TRANSLATION_FIELD = "translation"


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
    with open(path, encoding="utf-8", newline="") as stream:
        for line in stream:
            line = line.rstrip("\r\n")
            if kind == "jsonl":
                if line.strip():
                    yield json.loads(line)
            else:
                yield line


def row_source(row: dict | str, source_column: str) -> str:
    return row if isinstance(row, str) else row[source_column]


@dataclass
class InputSummary:
    """What a scan of the input found: its rows and the sha256 of its bytes (the resume record's `input`)."""

    rows: int
    sha256: str


def scan_input(path: str | os.PathLike, source_column: str = "source") -> InputSummary:
    """Read the input once, streamed, before any model is loaded: count the rows and hash the bytes, and refuse a
    row whose source is not text (null is not an empty source, nor is 42 the text "42"), naming the row."""
    import hashlib

    path = Path(path)
    kind = file_format(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    if kind == "parquet":
        return InputSummary(_scan_parquet(path, source_column), digest.hexdigest())
    rows = 0
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            for number, line in enumerate(stream, start=1):
                if kind == "text":
                    rows += 1
                    continue
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"--input {path}: line {number} is not JSON ({error.msg}).") from None
                _check_row(row, source_column, f"--input {path}: line {number}")
                rows += 1
    except UnicodeDecodeError as error:
        raise InputError(f"--input {path} is not UTF-8 text (byte {error.start}); convert it to UTF-8.") from None
    if rows == 0:
        raise InputError(f"--input {path} holds no rows.")
    return InputSummary(rows, digest.hexdigest())


def _check_row(row, source_column: str, where: str) -> None:
    if not isinstance(row, dict):
        raise InputError(f"{where} is not a JSON object.")
    if source_column not in row:
        raise InputError(f"{where} has no field {source_column!r} (--source-column).")
    value = row[source_column]
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise InputError(
            f"{where}: field {source_column!r} is not text (got {got}); give every row a text source (an empty "
            "string for none)."
        )


def _scan_parquet(path: Path, source_column: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise InputError(f"--input {path} is not a Parquet file ({error}).") from None
    field = parquet.schema_arrow.field(source_column) if source_column in parquet.schema_arrow.names else None
    if field is None:
        raise InputError(f"--input {path} has no column {source_column!r} (--source-column).")
    if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
        raise InputError(f"--input {path}: column {source_column!r} is {field.type}, not text.")
    rows = 0
    for batch in parquet.iter_batches(columns=[source_column]):  # one row group at a time
        if batch.column(0).null_count:
            first = rows + batch.column(0).is_null().to_pylist().index(True)
            raise InputError(f"--input {path}: row {first + 1}: column {source_column!r} is null.")
        rows += batch.num_rows
    if rows == 0:
        raise InputError(f"--input {path} holds no rows.")
    return rows


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
    """The block files in `parts` that a run with another record wrote (an InputError unless `overwrite`; then
    returned, for the main process to remove before the run starts)."""
    if not parts.is_dir():
        return []
    stale = []
    for path in sorted(parts.glob("block-*.jsonl")):
        header = _block_header(path)
        if header is None or header.get("record") != record:
            stale.append(path)
    if stale and not overwrite:
        raise InputError(
            f"{parts} holds {len(stale)} finished block(s) of a run with another model, input or options, so they "
            "cannot be resumed with this one. Pass --overwrite to discard them and start over, rerun with that "
            "run's model and options to finish it, or choose another --output."
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


def prepare_blocks(
    input_path, source_column, tokenizer, todo: set[int], block_size: int, target_language, source_limit
) -> Iterator[PreparedBlock]:
    """The blocks in `todo`, in order, read from the streamed input and tokenized (tag added, truncated to the
    position table; a blank source stays untokenized)."""
    from .translation import tagged

    rows = stream_rows(input_path)
    block = 0
    while todo and block <= max(todo):
        sources = [row_source(row, source_column) for _, row in zip(range(block_size), rows)]
        if block in todo:
            wanted = [position for position, text in enumerate(sources) if text.strip()]
            texts = [tagged(sources[position].strip(), target_language) for position in wanted]
            ids = tokenizer(texts)["input_ids"] if texts else []
            too_long = [k for k, row in enumerate(ids) if source_limit is not None and len(row) > source_limit]
            for k in too_long:  # the tokenizer's own truncation keeps the end-of-sequence token
                ids[k] = tokenizer(texts[k], truncation=True, max_length=source_limit)["input_ids"]
            yield PreparedBlock(block, sources, dict(zip(wanted, ids)), len(too_long))
        block += 1


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
    **generation_kwargs,
):
    """Translate this process's unfinished blocks of `input_path` into block files beside `output` (see the module's
    docstring). Every process calls it; `merge_blocks` follows on the main process after `group.barrier()`.
    Returns the process's `TranslationStats`."""
    import torch
    from tqdm.auto import tqdm

    from .inference import check_decoding_memory
    from .recipe import TRANSLATION_BLOCK_SIZE
    from .translation import TranslationStats, make_batches, source_limit

    group = group or ProcessGroup()
    block_size = block_size or TRANSLATION_BLOCK_SIZE
    parts = parts_folder(output)
    stale = check_blocks(parts, record, overwrite)  # every process: the same refusal everywhere, before any work
    if group.is_main:
        for path in stale:
            path.unlink()
        parts.mkdir(parents=True, exist_ok=True)
    group.barrier()

    blocks = block_count(rows, block_size)
    sizes = {block: min(block_size, rows - block * block_size) for block in range(blocks)}
    owned = [block for block in range(blocks) if group.owns(block)]
    todo = {block for block in owned if finished_block(block_path(parts, block), record, sizes[block]) is None}
    stats = TranslationStats(source_limit=source_limit(model, tokenizer))
    stats.resumed = sum(sizes[block] for block in owned if block not in todo)
    special = set(tokenizer.all_special_ids)
    model.eval()
    device = getattr(model, "device", None)
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
    start = time.perf_counter()
    written = 0
    try:
        for item in prepared:
            translations = [""] * len(item.sources)
            stats.empty += len(item.sources) - len(item.encoded)
            stats.truncated += item.truncated
            lengths = {position: len(ids) for position, ids in item.encoded.items()}
            batches = make_batches(lengths, list(item.encoded), batch_size, max_tokens_per_batch)
            if batches:  # before the block's first step: beams the memory cannot hold fail here, not minutes later
                check_decoding_memory(
                    model.config,
                    getattr(model, "generation_config", None) or {},
                    num_beams=generation_kwargs.get("num_beams"),
                    sentences=max(len(batch) for batch in batches),
                    max_new_tokens=generation_kwargs.get("max_new_tokens"),
                    num_return_sequences=generation_kwargs.get("num_return_sequences"),
                )
            for batch in batches:
                ids = [item.encoded[position] for position in batch]
                padded = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
                if device is not None:
                    padded = padded.to(device)
                with torch.no_grad():
                    output_ids = model.generate(**padded, **generation_kwargs)
                for position, ids in zip(batch, output_ids.tolist()):
                    stats.tokens += sum(token not in special for token in ids)
                    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                    translations[position] = " ".join(text.splitlines())  # one line per translation
                stats.sentences += len(batch)
            write_block(block_path(parts, item.block), item.block, record, translations)
            written += 1
            bar.update(len(item.sources))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{stats.tokens / elapsed if elapsed > 0 else 0:.1f} tokens/s")
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; {written} finished block(s) of this run are kept in {parts} ({len(owned) - len(todo)} "
            "from before). Run the same command again to resume from them."
        ) from None
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - start
    return stats


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
    input_path, output, *, rows: int, record: dict, source_column: str = "source", block_size: int | None = None
) -> Path:
    """The main process, after every process's `translate_blocks`: the input's rows and the blocks' translations,
    in order, streamed into `output` (text: one translation per line; .jsonl: each row with a `translation` field;
    .parquet: the same as a table), through a temporary name; then the blocks are removed."""
    from .recipe import TRANSLATION_BLOCK_SIZE

    block_size = block_size or TRANSLATION_BLOCK_SIZE
    output, parts = Path(output), parts_folder(output)
    translations = block_translations(parts, record, rows, block_size)
    kind = file_format(output)
    if kind == "text":
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
