"""Translate texts with a trained XLM-SWCM: batched by length, in their order; the tags and languages a model knows.

    from xlm_swcm_hf.translation import translate_texts

    translations, stats = translate_texts(model, tokenizer, ["Hello", "", "World"], batch_size=8, num_beams=5)

Files (text, JSONL, Parquet, of any size, in one process or many, resumable) are translated by
`xlm_swcm_hf.bulk_translation.translate_file`, which uses the pieces here.

- `target_language="xx"` prefixes every source with the project's target-language tag, `TAG_TEMPLATE`
  (`"xx: text"`, the format the demo data and configs/translation.yaml train on). Without it the sources are used
  as they are (they may carry the tag already).
- Sources are tokenized once, sorted by length and cut into batches of `batch_size` sentences or of at most
  `max_tokens_per_batch` padded source tokens; batching and sorting do not change the result: each output is what
  `model.generate` gives for that source alone (up to floating-point rounding between padded and unpadded batches).
- A source longer than the model's position table is truncated by the tokenizer to the limit and counted
  (`TranslationStats.truncated`); an empty (or blank) source gives an empty translation without calling the model.
- Generation uses the model's generation_config; keyword arguments (`num_beams`, `max_new_tokens`, ...) override it.
- Target-language tags: `known_languages` reads the tags a saved model was trained with from its card (README.md's
  `target_languages`, which train.py writes from the data's language column; `language` on an older card, while a
  newer one lists the source languages there too); `check_language` refuses a malformed
  tag and, where the folder records its tags, one the model was not trained with.
- `model_identity` names a model by its files' content (the resume record of a file's translation).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checks import (
    InputError,
    looks_like_local_path,
)
from .recipe import GENERATION_BATCH_SIZE


TAG_TEMPLATE = "{lang}: {text}"  # the project's target-language tag (the demo's data and serve.py use it)
TRANSLATION_FIELD = "translation"
# A target-language tag: ISO 639 code, optionally with an ISO 15924 script (ug, kk_Arab); serve.py keeps a copy.
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:_[A-Z][a-z]{3})?")
LANGUAGE_FIELD = "lang"  # a JSONL row's language field (the demo data's and the evaluation's column)
SOURCE_TAG = re.compile(rf"({LANGUAGE_TAG.pattern}):\s")  # a source's own leading tag (TAG_TEMPLATE's "xx: ")
CARD_FILE = "README.md"
# The files of a saved model folder that decide its outputs (`model_identity`); the card, metrics and pictures do not.
IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".py", ".txt", ".msgpack", ".h5", ".onnx")
NOT_IDENTITY_FILES = ("metrics.json", "log_history.json")


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
    """The target-language tags the saved model at `source` was trained with: its card's (README.md)
    `target_languages` (hub.card_target_languages; an older card's `language` list), which train.py writes from the
    data's language column. None when the folder records none (no card, or only "multilingual")."""
    folder = local_model_folder(source)
    card = folder / CARD_FILE if folder is not None else None
    if card is None or not card.is_file():
        return None
    import yaml

    from .hub import card_metadata, card_target_languages

    try:
        metadata = card_metadata(card.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError):  # a card without a (valid) metadata block records nothing
        return None
    return card_target_languages(metadata) or None


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


def target_tag(source: str, target_language: str | None = None, row_language=None) -> str | None:
    """A row's target language, for its output vocabulary: `target_language` (the tag put in front of every
    source), else the row's own `lang` field, else the source's leading tag ("ug: ..."); None when none says."""
    if target_language:
        return target_language
    if isinstance(row_language, str) and row_language:
        return row_language
    typed = SOURCE_TAG.match(source.lstrip())
    return typed.group(1) if typed else None


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
def encode_sources(tokenizer, texts: Sequence[str], limit: int | None) -> tuple[list[list[int]], list[int]]:
    """Token ids of `texts` (tagged already), a text beyond `limit` tokens truncated by the tokenizer (which keeps
    the end-of-sequence token); and the positions of the truncated ones."""
    ids = tokenizer(list(texts))["input_ids"] if texts else []
    truncated = [k for k, row in enumerate(ids) if limit is not None and len(row) > limit]
    for k in truncated:
        ids[k] = tokenizer(texts[k], truncation=True, max_length=limit)["input_ids"]
    return ids, truncated


def check_batches_fit(model, batches: Sequence[Sequence[int]], generation_kwargs: dict) -> None:
    """Before a first step: beams (x sentences) that the memory cannot hold fail here, not 40 s later."""
    from .inference import check_decoding_memory

    if batches:
        check_decoding_memory(
            model.config,
            getattr(model, "generation_config", None) or {},
            num_beams=generation_kwargs.get("num_beams"),
            sentences=max(len(batch) for batch in batches),
            max_new_tokens=generation_kwargs.get("max_new_tokens"),
            num_return_sequences=generation_kwargs.get("num_return_sequences"),
        )


def generate_batch(
    model, tokenizer, id_lists: Sequence[list[int]], generation_kwargs: dict, languages=None
) -> tuple[list[str], int]:
    """One padded batch through `model.generate`: the translations (one line each) and the generated tokens
    (special tokens and padding aside). `languages`: each row's target tag (None: not known); a row whose tag has
    one of the model's output vocabularies decodes within it, the others with the whole vocabulary, in a call of
    their own (`output_vocabulary.vocabulary_groups`). Without `languages`, every row uses the whole vocabulary."""
    if languages is None:
        return _generate_padded(model, tokenizer, id_lists, generation_kwargs)
    from .output_vocabulary import vocabulary_groups

    texts, tokens = [""] * len(id_lists), 0
    for rows, output_languages in vocabulary_groups(model, languages):
        options = (
            generation_kwargs
            if output_languages is None
            else {**generation_kwargs, "output_languages": output_languages}
        )
        group_texts, group_tokens = _generate_padded(model, tokenizer, [id_lists[row] for row in rows], options)
        for row, text in zip(rows, group_texts):
            texts[row] = text
        tokens += group_tokens
    return texts, tokens


def _generate_padded(model, tokenizer, id_lists, generation_kwargs) -> tuple[list[str], int]:
    import torch

    padded = tokenizer.pad({"input_ids": list(id_lists)}, return_tensors="pt")
    device = getattr(model, "device", None)
    if device is not None:
        padded = padded.to(device)
    with torch.no_grad():
        output = model.generate(**padded, **generation_kwargs)
    special = set(tokenizer.all_special_ids)
    texts, tokens = [], 0
    for ids in output.tolist():
        tokens += sum(token not in special for token in ids)
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        texts.append(" ".join(text.splitlines()))  # one line per translation
    return texts, tokens


def translate_texts(
    model,
    tokenizer,
    sources: Sequence[str],
    *,
    target_language: str | None = None,
    batch_size: int | None = None,
    max_tokens_per_batch: int | None = None,
    progress: bool = True,
    full_vocabulary: bool = False,
    **generation_kwargs,
) -> tuple[list[str], TranslationStats]:
    """Translations of `sources` in their order, and what it took. Each source decodes within the model's output
    vocabulary of its target language (`target_tag`) where there is one, unless `full_vocabulary`."""
    from tqdm.auto import tqdm

    check_batching(batch_size, max_tokens_per_batch)
    stats = TranslationStats(source_limit=source_limit(model, tokenizer))
    results = [""] * len(sources)
    todo = [index for index, source in enumerate(sources) if source.strip()]
    stats.empty = len(sources) - len(todo)
    ids, truncated = encode_sources(
        tokenizer, [tagged(sources[index].strip(), target_language) for index in todo], stats.source_limit
    )
    encoded = dict(zip(todo, ids))
    stats.truncated, stats.truncated_indices = len(truncated), [todo[k] for k in truncated]
    batches = make_batches({index: len(row) for index, row in encoded.items()}, todo, batch_size, max_tokens_per_batch)
    check_batches_fit(model, batches, generation_kwargs)
    model.eval()
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="translating", unit=" sentences", disable=not progress or not todo)
    try:
        for batch in batches:
            languages = None if full_vocabulary else [target_tag(sources[index], target_language) for index in batch]
            texts, tokens = generate_batch(
                model, tokenizer, [encoded[index] for index in batch], generation_kwargs, languages
            )
            for index, text in zip(batch, texts):
                results[index] = text
            stats.tokens += tokens
            stats.sentences += len(batch)
            bar.update(len(batch))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{stats.tokens / elapsed if elapsed > 0 else 0:.1f} tokens/s")
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - start
    return results, stats
