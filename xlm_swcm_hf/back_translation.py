"""Back-translation: monolingual target-language text -> a reverse-direction model -> synthetic training pairs.

    from xlm_swcm_hf.back_translation import back_translate_file

    stats = back_translate_file(model, tokenizer, "mono.ug.jsonl", "bt.ug.jsonl", language="ug", source_language="en")

A ug -> en model translates each monolingual Uyghur row (tagged "en: ..." as the project's models are trained); each
row then becomes a pair in the training format (`data.task: translation`): `source` the synthetic English, tagged
with the pair's target language ("ug: ..."), `target` the real Uyghur text, `lang` ug, `src_lang` en, and `origin`
"back-translation" with `origin_model` (the reverse model's files' content, `translation.model_identity`). The input
row's other fields (e.g. `license`) are kept; its own `origin` moves to `target_origin`. Blank rows and rows whose
translation comes out empty give no pair (counted); a row whose `lang` is not `language` is refused
(`bulk_translation.scan_input`'s `row_language`, before any translating).

It runs on the block engine of `bulk_translation.translate_file`: streamed, resumable, sharded over the processes
of a torchrun / accelerate launch, merged in input order into a temporary name renamed into place. Recipes mix the
pairs with real data through `data.synthetic_train_file` and `data.synthetic_weight` (recipe.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .bulk_translation import file_format, row_source, scan_input, translate_file
from .checks import InputError
from .translation import LANGUAGE_FIELD, tagged


ORIGIN = "back-translation"  # the pairs' `origin` field
PAIR_FIELDS = ("source", "target", LANGUAGE_FIELD, "src_lang", "origin", "origin_model")


def check_pairs_output(output: str | os.PathLike) -> None:
    """Pairs are rows: a .jsonl or .parquet output."""
    if file_format(output) == "text":
        raise InputError(f"--output {output} must be a .jsonl or .parquet file: the pairs are rows for training.")


@dataclass
class PairCounts:
    """What became of the monolingual rows: pairs written, blank rows and empty translations left out."""

    pairs: int = 0
    blank: int = 0
    empty_translation: int = 0

    def summary(self) -> str:
        return (
            f"wrote {self.pairs} pairs; left out {self.blank} blank rows and {self.empty_translation} rows whose "
            "translation was empty"
        )


def pair_rows(
    rows: Iterable[tuple[dict | str, str]],
    *,
    text_column: str,
    language: str,
    source_language: str,
    model_id: str,
    counts: PairCounts,
) -> Iterator[dict]:
    """Training pairs from (monolingual row, synthetic translation): source synthetic, target real."""
    for row, translation in rows:
        text = row_source(row, text_column).strip()
        if not text:
            counts.blank += 1
            continue
        if not translation.strip():
            counts.empty_translation += 1
            continue
        extra = {} if isinstance(row, str) else {k: v for k, v in row.items() if k != text_column}
        if "origin" in extra:
            extra["target_origin"] = extra.pop("origin")
        for name in PAIR_FIELDS:
            extra.pop(name, None)
        counts.pairs += 1
        yield {
            "source": tagged(translation.strip(), language),
            "target": text,
            LANGUAGE_FIELD: language,
            "src_lang": source_language,
            "origin": ORIGIN,
            "origin_model": model_id,
            **extra,
        }


def back_translate_file(
    model,
    tokenizer,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    language: str,
    source_language: str,
    text_column: str | None = None,
    model_source: str | os.PathLike | None = None,
    **translate_kwargs,
):
    """Back-translate `input_path` (text, JSONL or Parquet of `language` text; JSONL/Parquet: the `text_column`
    field, default `DataRecipe.text_column`) with `model` (language -> `source_language`) into training pairs at
    `output` (.jsonl or .parquet). `translate_kwargs` go to `translate_file` (batching, blocks, `overwrite`,
    `group`, generation options). Returns (this process's `TranslationStats`, `PairCounts`; the counts are filled
    on the main process, which writes the output)."""
    from .recipe import DataRecipe
    from .translation import model_identity

    check_pairs_output(output)
    text_column = text_column or DataRecipe.text_column
    if translate_kwargs.get("summary") is None:  # every row's `lang`, where it has one, must be `language`
        translate_kwargs["summary"] = scan_input(
            input_path, text_column, column_option="--text-column", row_language=language
        )
    model_source = model_source or getattr(model.config, "_name_or_path", None) or None
    counts = PairCounts()

    def make_rows(rows):
        return pair_rows(
            rows,
            text_column=text_column,
            language=language,
            source_language=source_language,
            model_id=model_identity(model_source, model),
            counts=counts,
        )

    stats = translate_file(
        model,
        tokenizer,
        input_path,
        output,
        source_column=text_column,
        target_language=source_language,
        model_source=model_source,
        make_rows=make_rows,
        **translate_kwargs,
    )
    return stats, counts
