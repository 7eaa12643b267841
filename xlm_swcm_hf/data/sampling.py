"""Temperature-based language sampling over per-language datasets."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import datasets
import numpy as np
from datasets import Dataset, IterableDataset

from ..recipe import DataRecipe


logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- language sampling
def temperature_sampling_probabilities(
    sizes: Mapping[str, int], temperature: float = DataRecipe.sampling_temperature
) -> dict[str, float]:
    """Language sampling probabilities `p_i ∝ (n_i / N) ** (1 / T)`.

    `T = 1` samples in proportion to size; `T > 1` flattens the distribution, up-sampling low-resource
    languages (`T = inf`: uniform over the non-empty languages); `T < 1` sharpens it. The default is XLM-R's
    `alpha = 1 / T = 0.3`. Empty languages get probability 0.
    """
    if not sizes:
        raise ValueError("sizes is empty")
    if not (temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature}")
    names = list(sizes)
    counts = np.asarray([sizes[name] for name in names], dtype=np.float64)
    if (counts < 0).any():
        raise ValueError(f"sizes must be >= 0, got {dict(sizes)}")
    total = counts.sum()
    if total == 0:
        raise ValueError("all sizes are 0")
    present = counts > 0
    if math.isinf(temperature):
        weights = present.astype(np.float64)
    else:
        weights = np.zeros_like(counts)
        weights[present] = (counts[present] / total) ** (1.0 / temperature)
    probabilities = weights / weights.sum()
    return {name: float(p) for name, p in zip(names, probabilities)}


def interleave_languages(
    datasets_by_lang: Mapping[str, Dataset | IterableDataset],
    temperature: float = DataRecipe.sampling_temperature,
    seed: int = 0,
    *,
    sizes: Mapping[str, int] | None = None,
    stopping_strategy: str = "all_exhausted",
    lang_column: str | None = "lang",
):
    """One dataset drawing from the per-language datasets with `temperature_sampling_probabilities`
    (`datasets.interleave_datasets(probabilities=..., seed=seed, stopping_strategy=...)`).

    With `"all_exhausted"` it stops once every language has been seen completely, so small languages are
    repeated. `sizes` defaults to the datasets' lengths (give it for streaming datasets). Empty languages are left
    out. With `lang_column`, a dataset without that column gets it, filled with its language key.
    """
    if not datasets_by_lang:
        raise ValueError("datasets_by_lang is empty")
    if sizes is None:
        try:
            sizes = {lang: len(ds) for lang, ds in datasets_by_lang.items()}
        except TypeError as error:
            raise ValueError("pass sizes=... for datasets without a length (streaming)") from error
    probabilities = temperature_sampling_probabilities({lang: sizes[lang] for lang in datasets_by_lang}, temperature)
    langs = [lang for lang in datasets_by_lang if probabilities[lang] > 0]
    if len(langs) < len(datasets_by_lang):
        logger.warning(
            "interleave_languages: leaving out empty languages %s", sorted(set(datasets_by_lang) - set(langs))
        )
    parts = []
    for lang in langs:
        ds = datasets_by_lang[lang]
        if lang_column and lang_column not in (ds.column_names or []):
            if isinstance(ds, Dataset):
                ds = ds.add_column(lang_column, [lang] * len(ds))
            else:
                ds = ds.map(lambda _example, value=lang: {lang_column: value})
        parts.append(ds)
    logger.info(
        "interleave_languages: T=%s, probabilities %s",
        temperature,
        {lang: round(probabilities[lang], 4) for lang in langs},
    )
    return datasets.interleave_datasets(
        parts,
        probabilities=[probabilities[lang] for lang in langs],
        seed=seed,
        stopping_strategy=stopping_strategy,
    )
