"""Translate a file with a trained XLM-SWCM: batched by length, written in the input's order, atomically, resumable.

    from xlm_swcm_hf.translation import read_sources, translate_file, translate_texts

    stats = translate_file(model, tokenizer, "in.txt", "out.txt", target_language="ug", num_beams=5)
    translations, stats = translate_texts(model, tokenizer, ["Hello", "", "World"], batch_size=8)

- Input: plain text (one source per line) or JSONL (a `.jsonl` name; the text is the `source_column` field, default
  `source`). The output is then one translation per line, or the same rows with a `translation` field added.
- `target_language="xx"` prefixes every source with the project's target-language tag, `TAG_TEMPLATE`
  (`"xx: text"`, the format the demo data and configs/translation.yaml train on). Without it the sources are used
  as they are (they may carry the tag already).
- Sources are tokenized once, sorted by length and cut into batches of `batch_size` sentences or of at most
  `max_tokens_per_batch` padded source tokens; batching and sorting do not change the result: each output is what
  `model.generate` gives for that source alone (up to floating-point rounding between padded and unpadded batches).
- A source longer than the model's position table is truncated by the tokenizer to the limit and counted
  (`TranslationStats.truncated`); an empty (or blank) source gives an empty translation without calling the model.
- Generation uses the model's generation_config; keyword arguments (`num_beams`, `max_new_tokens`, ...) override it.
- Resume (automatic): `translate_file` appends each finished batch to `<output>.partial.jsonl` (a header line with
  a fingerprint of the input file's bytes, the model, its quantization, the source column, the tag and the generation
  options, then one `{"index": i, "translation": ...}` line per source). A rerun with the same fingerprint
  translates only the missing indices; a sidecar with another fingerprint is discarded (a note on stderr). The
  output is written to a temporary name and renamed into place; the sidecar is deleted after.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checks import InputError, require_local_path, require_utf8, require_writable_output
from .files import atomic_write_text, output_lock
from .recipe import GENERATION_BATCH_SIZE


TAG_TEMPLATE = "{lang}: {text}"  # the project's target-language tag (the demo's data and serve.py use it)
TRANSLATION_FIELD = "translation"
SIDECAR_SUFFIX = ".partial.jsonl"


@dataclass
class TranslationInput:
    """A read input file: the source texts, and for JSONL the rows they came from (None for plain text)."""

    path: Path
    sources: list[str]
    rows: list[dict] | None = None


@dataclass
class TranslationStats:
    """What one run did. `tokens`: generated tokens (special tokens and padding aside) of the sentences translated
    in this run; `seconds` covers those; `resumed`: translations taken from the sidecar; `empty`: blank sources."""

    sentences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0
    resumed: int = 0
    empty: int = 0
    source_limit: int | None = None
    truncated_indices: list[int] = field(default_factory=list)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        line = (
            f"translated {self.sentences} sentences, {self.tokens} tokens in {self.seconds:.1f} s: "
            f"{self.sentences_per_second:.2f} sentences/s, {self.tokens_per_second:.1f} tokens/s; "
            f"{self.truncated} truncated"
        )
        if self.truncated and self.source_limit:
            line += f" (to {self.source_limit} tokens)"
        extras = [f"{count} {what}" for count, what in ((self.resumed, "resumed"), (self.empty, "empty")) if count]
        return line + (f"; {', '.join(extras)}" if extras else "")


# --------------------------------------------------------------------------------------------------- checks
def is_jsonl(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == ".jsonl"


def check_batching(batch_size: int | None, max_tokens_per_batch: int | None) -> None:
    if batch_size is not None and max_tokens_per_batch is not None:
        raise InputError("give --batch-size or --max-tokens-per-batch, not both.")
    for name, value in (("--batch-size", batch_size), ("--max-tokens-per-batch", max_tokens_per_batch)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be >= 1, got {value}.")


def read_sources(path: str | os.PathLike, source_column: str = "source") -> TranslationInput:
    """The sources of a text or JSONL file; a missing, empty, non-UTF-8 or malformed file is an InputError naming
    the file (and the line)."""
    path = require_local_path(path, "--input", folder=False)
    if path.stat().st_size == 0:
        raise InputError(f"--input {path} is empty; give a file with one source per line.")
    require_utf8(path, "--input")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not any(line.strip() for line in lines):
        raise InputError(f"--input {path} holds only blank lines; nothing to translate.")
    if not is_jsonl(path):
        return TranslationInput(path, lines)
    rows, sources = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError(f"--input {path}: line {number} is blank; a JSONL file holds one JSON object a line.")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"--input {path}: line {number} is not valid JSON ({error.msg}).") from None
        if not isinstance(row, dict):
            raise InputError(f"--input {path}: line {number} is not a JSON object.")
        if source_column not in row:
            raise InputError(
                f"--input {path}: line {number} has no {source_column!r} field (fields: {', '.join(sorted(row))}); "
                "name the source field with --source-column."
            )
        if TRANSLATION_FIELD in row:
            raise InputError(
                f"--input {path}: line {number} already has a {TRANSLATION_FIELD!r} field, which the output would "
                "replace; remove it first."
            )
        value = row[source_column]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InputError(
                f"--input {path}: line {number}: field {source_column!r} is not text (got {type(value).__name__})."
            )
        rows.append(row)
        sources.append(value)
    return TranslationInput(path, sources, rows)


def sidecar_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def check_output(output: str | os.PathLike, input_path: str | os.PathLike, overwrite: bool = False) -> Path:
    """The output file: creatable, not a folder, not the input, and not an existing file unless `overwrite`."""
    output = require_writable_output(output, "--output", folder=False)
    if output.exists() and output.resolve() == Path(input_path).resolve():
        raise InputError(f"--output {output} is the input file; choose another --output.")
    if output.exists() and not overwrite:
        raise InputError(f"--output {output} exists; pass --overwrite to replace it or choose another --output.")
    if sidecar_path(output).is_dir():
        raise InputError(f"{sidecar_path(output)} (the resume file of --output) is a folder; remove it.")
    return output


def source_limit(model, tokenizer=None) -> int | None:
    """Source tokens the model can embed: XLM-R positions start at pad_token_id + 1."""
    config = model.config
    size, pad = getattr(config, "max_position_embeddings", None), getattr(config, "pad_token_id", None)
    limits = []
    if isinstance(size, int) and isinstance(pad, int):
        limits.append(size - pad - 1)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 10**8:
        limits.append(model_max)
    return min(limits) if limits else None


def tagged(text: str, target_language: str | None) -> str:
    return TAG_TEMPLATE.format(lang=target_language, text=text) if target_language else text


# --------------------------------------------------------------------------------------------------- batching
def make_batches(
    lengths: Sequence[int], indices: Sequence[int], batch_size: int | None, max_tokens_per_batch: int | None
) -> list[list[int]]:
    """`indices` sorted by length (longest first, so memory problems show in the first batch) and cut into batches
    of `batch_size` sentences, or of at most `max_tokens_per_batch` padded tokens (a longer source alone)."""
    order = sorted(indices, key=lambda index: (-lengths[index], index))
    if max_tokens_per_batch is None:
        size = batch_size or GENERATION_BATCH_SIZE
        return [order[start : start + size] for start in range(0, len(order), size)]
    batches, current = [], []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and longest * (len(current) + 1) > max_tokens_per_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


# --------------------------------------------------------------------------------------------------- translating
def translate_texts(
    model,
    tokenizer,
    sources: Sequence[str],
    *,
    target_language: str | None = None,
    batch_size: int | None = None,
    max_tokens_per_batch: int | None = None,
    done: dict[int, str] | None = None,
    on_batch: Callable[[list[tuple[int, str]]], None] | None = None,
    progress: bool = True,
    **generation_kwargs,
) -> tuple[list[str], TranslationStats]:
    """Translations of `sources` in their order, and what it took. `done` (index -> translation) are kept as they
    are; `on_batch` is called with each finished batch's (index, translation) pairs (the resume sidecar)."""
    import torch
    from tqdm.auto import tqdm

    check_batching(batch_size, max_tokens_per_batch)
    done = dict(done or {})
    stats = TranslationStats(resumed=len(done), source_limit=source_limit(model, tokenizer))
    results: dict[int, str] = dict(done)
    todo = []
    for index, source in enumerate(sources):
        if index in done:
            continue
        if not source.strip():
            results[index] = ""
            stats.empty += 1
        else:
            todo.append(index)
    texts = {index: tagged(sources[index].strip(), target_language) for index in todo}
    encoded = {}
    if todo:
        full = tokenizer([texts[index] for index in todo])["input_ids"]
        for index, ids in zip(todo, full):
            if stats.source_limit is not None and len(ids) > stats.source_limit:
                ids = tokenizer(texts[index], truncation=True, max_length=stats.source_limit)["input_ids"]
                stats.truncated += 1
                stats.truncated_indices.append(index)
            encoded[index] = ids
    lengths = {index: len(ids) for index, ids in encoded.items()}
    batches = make_batches(lengths, todo, batch_size, max_tokens_per_batch)
    special = set(tokenizer.all_special_ids)
    model.eval()
    device = getattr(model, "device", None)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="translating", unit=" sentences", disable=not progress or not todo)
    try:
        for batch in batches:
            padded = tokenizer.pad({"input_ids": [encoded[index] for index in batch]}, return_tensors="pt")
            if device is not None:
                padded = padded.to(device)
            with torch.no_grad():
                output = model.generate(**padded, **generation_kwargs)
            finished = []
            for index, ids in zip(batch, output.tolist()):
                stats.tokens += sum(token not in special for token in ids)
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                finished.append((index, " ".join(text.splitlines())))  # one line per translation
            results.update(finished)
            stats.sentences += len(batch)
            if on_batch is not None:
                on_batch(finished)
            bar.update(len(batch))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{stats.tokens / elapsed if elapsed > 0 else 0:.1f} tokens/s")
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - start
    return [results[index] for index in range(len(sources))], stats


def resume_fingerprint(model, input_path: Path, source_column, target_language, generation_kwargs) -> str:
    """What decides the translations: the input's bytes, the model, its quantization, the column, the tag and the
    generation options (batching is not part of it: it does not change the result)."""
    from .inference import inference_backend
    from .quantization import quantization_method

    digest = hashlib.sha256()
    with open(input_path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    facts = {
        "input": digest.hexdigest(),
        "model": str(getattr(model.config, "_name_or_path", "") or type(model).__name__),
        "quantization": quantization_method(model),
        "backend": inference_backend(model),
        "source_column": source_column if is_jsonl(input_path) else None,
        "target_language": target_language,
        "generation": {key: repr(value) for key, value in sorted(generation_kwargs.items())},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def read_sidecar(path: Path, fingerprint: str, count: int) -> dict[int, str]:
    """The finished translations in a sidecar with this fingerprint; {} (and the file removed) otherwise. A line cut
    short by a crash is skipped."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("fingerprint") != fingerprint or header.get("count") != count:
        print(
            f"note: {path} is from a run with other input or options; starting over (it is replaced).",
            file=sys.stderr,
        )
        path.unlink()
        return {}
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
            index, text = entry["index"], entry["translation"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(index, int) and 0 <= index < count and isinstance(text, str):
            done[index] = text
    return done


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
    overwrite: bool = False,
    progress: bool = True,
    **generation_kwargs,
) -> TranslationStats:
    """Translate `input_path` into `output` (see the module's docstring); returns the run's `TranslationStats`."""
    check_batching(batch_size, max_tokens_per_batch)
    source = read_sources(input_path, source_column)
    output = check_output(output, source.path, overwrite)
    sidecar = sidecar_path(output)
    with output_lock(output, "--output"):
        fingerprint = resume_fingerprint(model, source.path, source_column, target_language, generation_kwargs)
        done = read_sidecar(sidecar, fingerprint, len(source.sources))
        if not sidecar.exists():
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            header = {"fingerprint": fingerprint, "count": len(source.sources), "input": str(source.path)}
            with open(sidecar, "w", encoding="utf-8") as stream:
                stream.write(json.dumps(header) + "\n")
        else:  # a crash may have cut the last line short: start the next one on a line of its own
            with open(sidecar, "rb+") as stream:
                if stream.seek(0, os.SEEK_END) > 0:
                    stream.seek(-1, os.SEEK_END)
                    if stream.read(1) != b"\n":
                        stream.write(b"\n")

        with open(sidecar, "a", encoding="utf-8") as stream:

            def append(finished):
                stream.write(
                    "".join(
                        json.dumps({"index": index, "translation": text}, ensure_ascii=False) + "\n"
                        for index, text in finished
                    )
                )
                stream.flush()
                os.fsync(stream.fileno())

            translations, stats = translate_texts(
                model,
                tokenizer,
                source.sources,
                target_language=target_language,
                batch_size=batch_size,
                max_tokens_per_batch=max_tokens_per_batch,
                done=done,
                on_batch=append,
                progress=progress,
                **generation_kwargs,
            )
        if source.rows is None:
            text = "".join(translation + "\n" for translation in translations)
        else:
            text = "".join(
                json.dumps({**row, TRANSLATION_FIELD: translation}, ensure_ascii=False) + "\n"
                for row, translation in zip(source.rows, translations)
            )
        atomic_write_text(output, text)
        sidecar.unlink()
    return stats
