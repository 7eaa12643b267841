"""Per-language output vocabularies: the pieces each target language's text uses, stored with the model.

    from xlm_swcm_hf.output_vocabulary import build_output_vocabularies, coverage, read_pairs

    vocabularies = build_output_vocabularies(tokenizer, read_pairs(["train.jsonl"]), special_ids(tokenizer, config))
    coverage(vocabularies, tokenizer, read_pairs(["test.jsonl"]))   # {"ug": Coverage(tokens=..., covered=...), ...}
    model.set_output_vocabularies(vocabularies); model.save_pretrained(folder)   # writes output_vocabularies.json
    model.generate(**batch, output_languages="ug")       # the head computes the Uyghur rows only

A language's vocabulary is every piece that the tokenized targets of its rows (the `lang` column: the tags the model
was trained with, script variants apart, e.g. kk and kk_Arab) use at least `min_count` times, plus the special tokens
generation may emit or starts from (pad, eos, bos, unk, the decoder start token). The coverage on held-out text is the
share of its target tokens (eos included) inside the vocabulary: what restricting the output would lose there.
`scripts/build_output_vocabulary.py` runs this on files and writes `output_vocabularies.json` into a model folder.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .checks import InputError, require_local_path, require_utf8
from .files import atomic_write_text
from .modeling_xlm_swcm import OUTPUT_VOCABULARIES_FILE, check_output_vocabularies
from .translation import LANGUAGE_FIELD, LANGUAGE_TAG


TARGET_FIELD = "target"
# A piece enters a language's vocabulary when its targets use it this often.
DEFAULT_MIN_COUNT = 1


@dataclass(frozen=True)
class Coverage:
    """Held-out target tokens of one language (eos included) and how many of them its vocabulary holds."""

    tokens: int
    covered: int

    @property
    def share(self) -> float:
        return self.covered / self.tokens if self.tokens else 1.0


def read_pairs(paths: Sequence[str | os.PathLike], what: str = "--data") -> list[tuple[str, str]]:
    """(lang, target) of every row of JSONL files with `target` and `lang` fields; a missing file, a broken line or
    a row without a text target or a language tag is an InputError naming the file and line."""
    pairs = []
    for path in paths:
        path = require_local_path(path, what, folder=False)
        require_utf8(path, what)
        before = len(pairs)
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{what} {os.fspath(path)} line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{where} is not valid JSON.") from None
                if not isinstance(row, dict):
                    raise InputError(f"{where} is not a JSON object.")
                target, tag = row.get(TARGET_FIELD), row.get(LANGUAGE_FIELD)
                if not isinstance(target, str):
                    raise InputError(f"{where}: field {TARGET_FIELD!r} is not text (got {json.dumps(target)}).")
                if not isinstance(tag, str) or not LANGUAGE_TAG.fullmatch(tag):
                    raise InputError(
                        f"{where}: field {LANGUAGE_FIELD!r} {json.dumps(tag)} is not a language tag like ug or kk_Arab."
                    )
                pairs.append((tag, target))
        if len(pairs) == before:
            raise InputError(f"{what} {os.fspath(path)} is empty.")
    return pairs


def special_ids(tokenizer, config=None) -> list[int]:
    """pad, eos, bos, unk (the tokenizer's) and the decoder start token (the config's): always allowed."""
    ids = [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]
    if config is not None:
        ids += [getattr(config, "decoder_start_token_id", None), getattr(config, "eos_token_id", None)]
    flat = [i for value in ids for i in (value if isinstance(value, list) else [value])]
    return sorted({i for i in flat if isinstance(i, int)})


def target_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Labels as training tokenizes them: the pieces, no <s>, then </s> (data.tokenization)."""
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    return [[*ids, tokenizer.eos_token_id] for ids in encoded]


def _by_language(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for tag, target in pairs:
        grouped.setdefault(tag, []).append(target)
    return grouped


def build_output_vocabularies(
    tokenizer,
    pairs: Iterable[tuple[str, str]],
    always: Sequence[int] = (),
    min_count: int = DEFAULT_MIN_COUNT,
    languages: Sequence[str] | None = None,
) -> dict[str, list[int]]:
    """{language: sorted ids}: the pieces its targets use at least `min_count` times plus `always` (see
    `special_ids`); only `languages` when given (each must have rows)."""
    if min_count < 1:
        raise InputError(f"--min-count must be >= 1, got {min_count}.")
    grouped = _by_language(pairs)
    if languages is not None:
        missing = [tag for tag in languages if tag not in grouped]
        if missing:
            raise InputError(
                f"--languages {', '.join(missing)}: no rows in the data; it has {', '.join(sorted(grouped))}."
            )
        grouped = {tag: grouped[tag] for tag in languages}
    vocabularies = {}
    for tag in sorted(grouped):
        counts = Counter(i for ids in target_ids(tokenizer, grouped[tag]) for i in ids)
        vocabularies[tag] = sorted({i for i, count in counts.items() if count >= min_count} | set(always))
    return vocabularies


def coverage(vocabularies: dict[str, Sequence[int]], tokenizer, pairs: Iterable[tuple[str, str]]) -> dict:
    """{language: Coverage} on held-out (lang, target) pairs; a language without a vocabulary covers nothing."""
    result = {}
    for tag, texts in sorted(_by_language(pairs).items()):
        allowed = set(vocabularies.get(tag, ()))
        ids = [i for row in target_ids(tokenizer, texts) for i in row]
        result[tag] = Coverage(tokens=len(ids), covered=sum(i in allowed for i in ids))
    return result


def output_vocabularies_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / OUTPUT_VOCABULARIES_FILE


def write_output_vocabularies(
    folder: str | os.PathLike, vocabularies: dict, vocab_size: int, overwrite: bool = False
) -> Path:
    """Write `vocabularies` as the folder's output_vocabularies.json, atomically; an existing file is replaced only
    with `overwrite` (it is this project's output, never a model file)."""
    checked = check_output_vocabularies(vocabularies, vocab_size)
    path = output_vocabularies_path(folder)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists already; pass --overwrite to replace it.")
    return atomic_write_text(path, json.dumps(checked, separators=(",", ":")) + "\n")


def format_report(vocabularies: dict, held_out: dict | None, vocab_size: int) -> str:
    """One line per language: its pieces (and share of the vocabulary) and, with held-out text, its coverage."""
    lines = []
    for tag, ids in sorted(vocabularies.items()):
        line = f"  {tag}: {len(ids)} pieces ({len(ids) / vocab_size:.1%} of {vocab_size})"
        if held_out is not None:
            measured = held_out.get(tag)
            line += (
                f"; held-out coverage {measured.share:.2%} ({measured.covered}/{measured.tokens} tokens)"
                if measured is not None
                else "; no held-out rows"
            )
        lines.append(line)
    for tag in sorted(set(held_out or {}) - set(vocabularies)):
        lines.append(f"  {tag}: no vocabulary; held-out {held_out[tag].tokens} tokens not covered")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ decoding with the vocabularies
# translate.py, back_translate.py, evaluate_model.py and serve.py use the model's output vocabularies wherever a
# row's target language has one; this one option turns that off.
FULL_VOCABULARY_OPTION = "--full-vocabulary"
FULL_VOCABULARY_HELP = (
    "decode with the whole vocabulary (default: a row whose target language has one of the model's output "
    "vocabularies, output_vocabularies.json, decodes within it; the others with the whole vocabulary)"
)


def add_full_vocabulary_argument(parser) -> None:
    parser.add_argument(FULL_VOCABULARY_OPTION, action="store_true", help=FULL_VOCABULARY_HELP)


def vocabulary_groups(model, languages: Sequence[str | None]) -> list[tuple[list[int], list[str] | None]]:
    """The rows of one batch, given their target tags (None: not known), as at most two groups for `generate`: the
    rows whose tag has one of the model's output vocabularies with their tags (its `output_languages`), then the
    rest with None (the whole vocabulary). `generate(output_languages=...)` needs a vocabulary for every row, and a
    batch falling back to the whole vocabulary for one such row would make a row's output depend on its
    batch-mates; split, each row decodes as it would alone."""
    known = getattr(model, "output_vocabularies", None) or {}
    restricted = [row for row, tag in enumerate(languages) if tag in known]
    rest = [row for row, tag in enumerate(languages) if tag not in known]
    groups: list[tuple[list[int], list[str] | None]] = []
    if restricted:
        groups.append((restricted, [languages[row] for row in restricted]))
    if rest:
        groups.append((rest, None))
    return groups


def read_output_vocabularies(folder: str | os.PathLike, vocab_size: int, what: str = "--model") -> dict:
    """The folder's output_vocabularies.json, checked as `from_pretrained` will check it ({} when there is none):
    a file that is not valid JSON or not a mapping of language tags to token ids is one InputError, before any
    model is loaded."""
    from .checks import read_json_file

    path = output_vocabularies_path(folder)
    if not path.is_file():
        return {}
    content = read_json_file(path, f"{what}'s output vocabularies")
    try:
        return check_output_vocabularies(content, vocab_size)
    except ValueError as error:
        raise InputError(
            f"{what}'s output vocabularies {path}: {error} Rebuild them with scripts/build_output_vocabulary.py "
            "--overwrite, or remove the file."
        ) from None
