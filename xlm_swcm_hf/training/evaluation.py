"""Generation-based evaluation: batched decoding with the model's generation_config, per-language metrics."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import torch

from ..files import atomic_write_json, atomic_write_text
from ..recipe import GENERATION_BATCH_SIZE, DataRecipe
from .reporting import metrics_markdown


def check_text_fields(dataset, task: str, columns=None, where: str = "") -> None:
    """The text columns (source, target, question) of raw data hold text: a number there is refused, naming the
    row and column, before `format_examples` would write it out as if it were text (null is its missing field)."""
    from ..checks import InputError
    from ..data.formatting import _resolve_columns

    try:
        resolved = _resolve_columns(task, columns)
    except (ValueError, TypeError):
        return  # format_examples reports the bad --columns itself
    for role in ("source", "target", "question"):
        name = getattr(resolved, role, None)
        if not name or name not in dataset.column_names:
            continue
        for row, value in enumerate(dataset[name]):
            if isinstance(value, (bool, int, float)) and value == value:  # NaN is a missing value, not a number
                raise InputError(
                    f"{where}row {row}: column {name!r} is a number ({value!r}), not text; write it as text (in "
                    "quotes) or fix the row."
                )


def make_compute_metrics(tokenizer):
    """Seq2SeqTrainer hook: decode generated ids and labels, score with the multilingual metrics."""
    from ..metrics import compute_generation_metrics

    def compute_metrics(eval_prediction):
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = torch.as_tensor(predictions)
        labels = torch.as_tensor(labels)
        predictions = predictions.masked_fill(predictions < 0, tokenizer.pad_token_id)
        labels = labels.masked_fill(labels < 0, tokenizer.pad_token_id)
        decoded_predictions = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        decoded_labels = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        return compute_generation_metrics(decoded_predictions, decoded_labels)

    return compute_metrics


@torch.no_grad()
def generate_predictions(
    model,
    tokenizer,
    sources: list[str],
    batch_size: int = GENERATION_BATCH_SIZE,
    max_source_length: int = DataRecipe.max_source_length,
    languages: list[str | None] | None = None,
    **generation_kwargs,
) -> list[str]:
    """Batched generation with the model's generation_config (`generation_kwargs` override it), with progress.
    `languages`: each source's target tag (None: not known); a source whose tag has one of the model's output
    vocabularies decodes within it, the others with the whole vocabulary (`output_vocabulary.vocabulary_groups`).
    Without `languages`, every source uses the whole vocabulary."""
    from tqdm.auto import tqdm

    from ..output_vocabulary import vocabulary_groups

    model.eval()
    predictions = []
    order = sorted(range(len(sources)), key=lambda index: len(sources[index]))  # less padding per batch
    for start in tqdm(range(0, len(order), batch_size), desc="generating", unit="batch"):
        batch_indices = order[start : start + batch_size]
        groups = (
            [(list(range(len(batch_indices))), None)]
            if languages is None
            else vocabulary_groups(model, [languages[i] for i in batch_indices])
        )
        for rows, output_languages in groups:
            indices = [batch_indices[row] for row in rows]
            batch = tokenizer(
                [sources[i] for i in indices],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_source_length,
            ).to(model.device)
            options = {} if output_languages is None else {"output_languages": output_languages}
            output = model.generate(**batch, **generation_kwargs, **options)
            texts = tokenizer.batch_decode(output, skip_special_tokens=True)
            predictions.extend(zip(indices, (text.strip() for text in texts)))
    return [text for _, text in sorted(predictions)]


def evaluate_model(
    model,
    tokenizer,
    dataset,
    output_dir: str | os.PathLike,
    batch_size: int = GENERATION_BATCH_SIZE,
    max_source_length: int = DataRecipe.max_source_length,
    full_vocabulary: bool = False,
    **generation_kwargs,
) -> dict:
    """Generate for a formatted dataset (`source_text`, `target_text`, optional `lang`); write predictions + metrics.

    A row whose `lang` has one of the model's output vocabularies decodes within it (the others, and all rows with
    `full_vocabulary`, with the whole vocabulary).

    Metrics are overall and, when the data has a `lang` column, per language (the cross-lingual transfer table),
    with `off_target` (percent of outputs below `OFF_TARGET_THRESHOLD` of their letters in the target's script) for
    every group whose languages' scripts are known.
    """
    from ..metrics import compute_generation_metrics, knows_script, off_target_rate

    output_dir = Path(output_dir)
    sources, references = list(dataset["source_text"]), list(dataset["target_text"])
    languages = list(dataset["lang"]) if "lang" in dataset.column_names else [None] * len(sources)
    predictions = generate_predictions(
        model,
        tokenizer,
        sources,
        batch_size=batch_size,
        max_source_length=max_source_length,
        languages=None if full_vocabulary else languages,
        **generation_kwargs,
    )
    metrics = {"all": {**compute_generation_metrics(predictions, references), "count": len(predictions)}}
    if all(knows_script(language) for language in languages):
        metrics["all"]["off_target"] = off_target_rate(predictions, languages)
    if any(language is not None for language in languages):
        grouped = defaultdict(lambda: ([], []))
        for prediction, reference, language in zip(predictions, references, languages):
            grouped[language][0].append(prediction)
            grouped[language][1].append(reference)
        for language in sorted(grouped):
            group_predictions, group_references = grouped[language]
            metrics[language] = {
                **compute_generation_metrics(group_predictions, group_references),
                "count": len(group_predictions),
            }
            if knows_script(language):
                tags = [language] * len(group_predictions)
                metrics[language]["off_target"] = off_target_rate(group_predictions, tags)
    records = []
    for source, reference, prediction, language in zip(sources, references, predictions, languages):
        record = {"source": source, "reference": reference, "prediction": prediction}
        if language is not None:
            record["lang"] = language
        records.append(json.dumps(record, ensure_ascii=False) + "\n")
    # each file to a temporary name, then renamed into place: an earlier evaluation is replaced whole or not at all
    atomic_write_text(output_dir / "predictions.jsonl", "".join(records))
    atomic_write_json(output_dir / "metrics.json", metrics)
    atomic_write_text(output_dir / "metrics.md", metrics_markdown(metrics))
    return metrics
