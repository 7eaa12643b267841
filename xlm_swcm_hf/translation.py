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
  what decides the translations: the input file's sha256, the model by content (`model_identity`: the sha256 of
  its config, generation config, tokenizer, code and weights files, never its path), the backend, the source
  column, the tag and the generation options; then one `{"index": i, "translation": ...}` line per source). A
  rerun with the same record translates only the missing indices; a record that differs is refused, naming what
  differs (`overwrite=True` / --overwrite discards it and starts over). The output is written to a temporary name
  and renamed into place; the sidecar is deleted after. Ctrl-C ends in `checks.Interrupted` and a full disk in one
  InputError, each saying what was kept and that the same command resumes.
- Target-language tags: `known_languages` reads the tags a saved model was trained with from its card (README.md's
  `language` list, which train.py writes from the data's language column); `check_language` refuses a malformed
  tag and, where the folder records its tags, one the model was not trained with.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checks import (
    InputError,
    Interrupted,
    looks_like_local_path,
    refuse_output_over_inputs,
    require_local_path,
    require_utf8,
    require_writable_output,
)
from .files import atomic_write_text, output_lock
from .recipe import GENERATION_BATCH_SIZE


TAG_TEMPLATE = "{lang}: {text}"  # the project's target-language tag (the demo's data and serve.py use it)
TRANSLATION_FIELD = "translation"
SIDECAR_SUFFIX = ".partial.jsonl"
SIDECAR_FORMAT = 2  # 2: the header names the model by content (format 1 named it by its path)
# A target-language tag: ISO 639 code, optionally with an ISO 15924 script (ug, kk_Arab); serve.py keeps a copy.
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:_[A-Z][a-z]{3})?")
LANGUAGE_FIELD = "lang"  # a JSONL row's language field (the demo data's and the evaluation's column)
CARD_FILE = "README.md"
# The files of a saved model folder that decide its outputs (`model_identity`); the card, metrics and pictures do not.
IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".py", ".txt", ".msgpack", ".h5", ".onnx")
NOT_IDENTITY_FILES = ("metrics.json", "log_history.json")


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


def local_model_folder(source: str | os.PathLike) -> Path | None:
    """A local folder as it is; a Hub name's snapshot in the local cache (None when it is not cached)."""
    if looks_like_local_path(source):
        folder = Path(source).expanduser()
        return folder if folder.is_dir() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(os.fspath(source), "config.json")
    except Exception:  # not a valid repository name, no cache: nothing known locally
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def known_languages(source: str | os.PathLike) -> list[str] | None:
    """The target-language tags the saved model at `source` was trained with: its card's (README.md) `language`
    list, which train.py writes from the data's language column. None when the folder records none (no card, or
    only "multilingual")."""
    folder = local_model_folder(source)
    card = folder / CARD_FILE if folder is not None else None
    if card is None or not card.is_file():
        return None
    import yaml

    from .hub import card_metadata

    try:
        listed = card_metadata(card.read_text(encoding="utf-8")).get("language")
    except (ValueError, yaml.YAMLError):  # a card without a (valid) metadata block records nothing
        return None
    listed = listed if isinstance(listed, list) else [listed] if listed else []
    languages = [str(code) for code in listed if code != "multilingual"]
    return list(dict.fromkeys(languages)) or None


def check_language(tag, known: list[str] | None, what: str) -> None:
    """`tag` must be a language tag like ug or kk_Arab and, where the model records its tags, one of them."""
    listed = f"; the model knows {', '.join(known)}" if known else ""
    if not isinstance(tag, str) or not LANGUAGE_TAG.fullmatch(tag):
        raise InputError(f"{what} {tag!r} is not a language tag like ug or kk_Arab{listed}.")
    if known and tag not in known:
        raise InputError(
            f"{what} {tag!r} is not a language the model was trained with; give one of {', '.join(known)}."
        )


_IDENTITIES: dict[tuple, str] = {}


def _stat_stamp(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def model_identity(source: str | os.PathLike | None, model=None) -> str:
    """The model by content, not by path: the sha256 over the files of its folder that decide its outputs
    (config.json, generation_config.json, tokenizer and code files, the weights read in full, about a second per
    GB), for a Hub name its cached snapshot; without a folder, the loaded model's parameters (or its class name)."""
    folder = local_model_folder(source) if source is not None else None
    digest = hashlib.sha256()
    if folder is not None and (folder / "config.json").is_file():
        files = sorted(
            path
            for path in folder.iterdir()
            if path.is_file() and path.suffix in IDENTITY_SUFFIXES and path.name not in NOT_IDENTITY_FILES
        )
        # files unchanged since this process hashed them are not read again (the script checks before loading)
        stamp = tuple((str(path.resolve()), *_stat_stamp(path)) for path in files)
        if stamp in _IDENTITIES:
            return _IDENTITIES[stamp]
        for path in files:
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as handle:
                while block := handle.read(1 << 24):
                    digest.update(block)
        _IDENTITIES[stamp] = "files:" + digest.hexdigest()
        return _IDENTITIES[stamp]
    state = getattr(model, "state_dict", None)
    if callable(state):
        import torch

        for name, tensor in sorted(state().items()):
            if isinstance(tensor, torch.Tensor) and not tensor.is_quantized:
                digest.update(f"{name}\0{tuple(tensor.shape)}\0{tensor.dtype}\0".encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return "parameters:" + digest.hexdigest()
    return "name:" + os.fspath(source or type(model).__name__)


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
        if not isinstance(value, str):  # null is not an empty source, nor is 42 the text "42"
            got = "null" if value is None else type(value).__name__
            raise InputError(
                f"--input {path}: line {number}: field {source_column!r} is not text (got {got}); give every row "
                "a text source (an empty string for none)."
            )
        language = row.get(LANGUAGE_FIELD)
        if language is not None and not isinstance(language, str):
            raise InputError(
                f"--input {path}: line {number}: field {LANGUAGE_FIELD!r} is not text (got {type(language).__name__})."
            )
        rows.append(row)
        sources.append(value)
    return TranslationInput(path, sources, rows)


def check_row_languages(source: TranslationInput, known: list[str] | None) -> None:
    """A JSONL input's per-row language field (`lang`), where a row has one, must be a tag the model knows."""
    for number, row in enumerate(source.rows or [], start=1):
        if row.get(LANGUAGE_FIELD) is not None:
            check_language(
                row[LANGUAGE_FIELD], known, f"--input {source.path}: line {number}: field {LANGUAGE_FIELD!r}"
            )


def sidecar_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def check_output(output: str | os.PathLike, input_path: str | os.PathLike, overwrite: bool = False, model=None) -> Path:
    """The output file: creatable, not a folder, not the input nor inside the model folder (`overwrite` or not),
    and not an existing file unless `overwrite`."""
    output = require_writable_output(output, "--output", folder=False)
    refuse_output_over_inputs(output, "--output", {"--input": input_path, "--model": model})
    refuse_output_over_inputs(sidecar_path(output), "--output's resume file", {"--input": input_path})
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
    if batches:  # before the first step: a beam count the memory cannot hold fails here, not 40 s later
        from .inference import check_decoding_memory

        check_decoding_memory(
            model.config,
            getattr(model, "generation_config", None) or {},
            num_beams=generation_kwargs.get("num_beams"),
            sentences=max(len(batch) for batch in batches),
            max_new_tokens=generation_kwargs.get("max_new_tokens"),
            num_return_sequences=generation_kwargs.get("num_return_sequences"),
        )
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


# What each fact of the resume record is, for the message that names the ones that differ.
RESUME_FACTS = {
    "input": "input file (its content)",
    "count": "number of input lines",
    "model": "model (its files' content)",
    "backend": "backend",
    "source_column": "--source-column",
    "target_language": "--target-language",
    "generation": "generation options (--num-beams, --max-new-tokens)",
}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resume_facts(
    model_id: str, backend: str, input_path: Path, count: int, source_column, target_language, generation_kwargs
) -> dict:
    """What decides the translations: the input's content, the model's (`model_identity`), the backend, the column,
    the tag and the generation options (batching is not part of it: it does not change the result)."""
    return {
        "input": file_sha256(input_path),
        "count": count,
        "model": model_id,
        "backend": backend,
        "source_column": source_column if is_jsonl(input_path) else None,
        "target_language": target_language,
        "generation": {key: repr(value) for key, value in sorted(generation_kwargs.items())},
    }


def check_sidecar(path: Path, facts: dict, overwrite: bool = False) -> bool:
    """Whether the sidecar at `path` may be resumed from: absent (False), or written by a run with the same facts
    (True). One from another run is an InputError naming what differs, unless `overwrite` (then it is discarded
    when the run starts: False)."""
    if not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            header = json.loads(stream.readline())
    except json.JSONDecodeError:
        header = None
    recorded = header.get("facts") if isinstance(header, dict) and header.get("format") == SIDECAR_FORMAT else None
    if recorded == facts:
        return True
    if overwrite:
        return False
    if isinstance(recorded, dict):
        differs = [what for key, what in RESUME_FACTS.items() if recorded.get(key) != facts.get(key)]
    else:
        differs = ["record (an older or damaged resume file)"]
    raise InputError(
        f"{path} holds the finished part of a run with another {', '.join(differs)}, so it cannot be resumed with "
        "this one. Pass --overwrite to discard it and start over, rerun with that run's model and options to "
        "finish it, or choose another --output."
    )


def read_sidecar(path: Path, count: int) -> dict[int, str]:
    """The finished translations in a sidecar (`check_sidecar` said it may be resumed); a line cut short by a
    crash is skipped."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
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
    model_source: str | os.PathLike | None = None,
    **generation_kwargs,
) -> TranslationStats:
    """Translate `input_path` into `output` (see the module's docstring); returns the run's `TranslationStats`.
    `model_source`: the folder or Hub name the model was loaded from (default: its config's `_name_or_path`), by
    whose content the resume record names the model."""
    from .inference import inference_backend

    check_batching(batch_size, max_tokens_per_batch)
    source = read_sources(input_path, source_column)
    model_source = model_source or getattr(model.config, "_name_or_path", None) or None
    output = check_output(output, source.path, overwrite, model_source)
    sidecar = sidecar_path(output)
    with output_lock(output, "--output"):
        facts = resume_facts(
            model_identity(model_source, model),
            inference_backend(model),
            source.path,
            len(source.sources),
            source_column,
            target_language,
            generation_kwargs,
        )
        resumable = check_sidecar(sidecar, facts, overwrite)
        done = read_sidecar(sidecar, len(source.sources)) if resumable else {}
        kept = len(done)
        try:
            if not resumable:
                sidecar.parent.mkdir(parents=True, exist_ok=True)
                header = {"format": SIDECAR_FORMAT, "facts": facts}
                atomic_write_text(sidecar, json.dumps(header) + "\n")  # replaces a discarded one whole
            else:  # a crash may have cut the last line short: start the next one on a line of its own
                with open(sidecar, "rb+") as stream:
                    if stream.seek(0, os.SEEK_END) > 0:
                        stream.seek(-1, os.SEEK_END)
                        if stream.read(1) != b"\n":
                            stream.write(b"\n")

            with open(sidecar, "a", encoding="utf-8") as stream:

                def append(finished):
                    nonlocal kept
                    stream.write(
                        "".join(
                            json.dumps({"index": index, "translation": text}, ensure_ascii=False) + "\n"
                            for index, text in finished
                        )
                    )
                    stream.flush()
                    os.fsync(stream.fileno())
                    kept += len(finished)

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
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; {kept_note(kept, len(source.sources), sidecar)} Run the same command again to "
                "resume from there."
            ) from None
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO):
                raise
            from .checks import error_message

            raise InputError(
                f"writing the translations failed: {error_message(error)} "
                f"{kept_note(kept, len(source.sources), sidecar)} Run the same command again once that is fixed "
                "to resume from there."
            ) from None
        sidecar.unlink()
    return stats


def kept_note(kept: int, count: int, sidecar: Path) -> str:
    if not sidecar.is_file():
        return f"--output was not written and nothing of this run was kept ({sidecar} could not be created)."
    return f"--output was not written; {kept} of {count} translations are kept in {sidecar}."
