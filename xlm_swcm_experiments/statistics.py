"""Small statistics for paired comparisons of training runs: no scipy, deterministic.

- `t_quantile_975(df)`: the two-sided 95% Student t quantile (table for df <= 30, Cornish-Fisher expansion beyond).
- `mean_sd(values)`: mean and sample standard deviation.
- `paired_t_interval(differences)`: mean paired difference with its seed-level 95% t-interval.
- `paired_bootstrap_ratio(...)`: difference of two per-token ratios (e.g. NLL per target token), 95% percentile
  interval from resampling sentences with a fixed seed; each resample keeps the pairing (the same sentences for both).
- `bootstrap_mean(differences)`: the same with every item counting once: the mean of per-item paired differences.
- `paired_bootstrap(stats_a, stats_b, score)`: the difference of any corpus score computed from summed per-item
  statistics (corpus chrF, exact match), 95% percentile interval, the same resampling.
- `verdict(...)`: plain words; "no difference shown" whenever an interval contains 0.
- `format_span`, `format_interval`, `format_mean_sd`: how reports print an interval, a difference with its interval
  and a mean over seeds.
"""

from __future__ import annotations

import math


# t_{0.975, df} for df = 1..30 (two-sided 95%).
T_975 = (
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
Z_975 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (the half-width factor of a 95% interval)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z, v = Z_975, float(df)  # Cornish-Fisher expansion around the normal quantile (error < 1e-6 for df > 30)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def mean_sd(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("no values")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def paired_t_interval(differences) -> dict:
    """Mean of paired differences (one per seed) and its 95% t-interval; no interval from a single pair."""
    mean, sd = mean_sd(differences)
    n = len(differences)
    if sd is None:
        return {"mean": mean, "low": None, "high": None, "sd": None, "n": n}
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "n": n}


def paired_bootstrap_ratio(
    numerators_a,
    numerators_b,
    denominators,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """sum(a)/sum(d) - sum(b)/sum(d) with a 95% percentile interval from resampling items (sentences).

    `numerators_a[i]`, `numerators_b[i]`: item i's summed NLL under the two models; `denominators[i]`: its token count
    (the same tokens for both, so the difference is of NLL per target token). Each resample draws items with
    replacement and recomputes both ratios of sums on the same items, so the pairing is kept.
    """
    import numpy as np

    a = np.asarray(numerators_a, dtype=np.float64)
    b = np.asarray(numerators_b, dtype=np.float64)
    d = np.asarray(denominators, dtype=np.float64)
    if not (len(a) == len(b) == len(d)) or len(a) == 0:
        raise ValueError(f"paired bootstrap needs equal, non-empty lengths, got {len(a)}, {len(b)}, {len(d)}")
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples)
    for start in range(0, resamples, 250):  # chunks keep the index matrix small for large test sets
        index = rng.integers(0, len(a), size=(min(250, resamples - start), len(a)))
        estimates[start : start + len(index)] = (a[index].sum(axis=1) - b[index].sum(axis=1)) / d[index].sum(axis=1)
    return {
        "mean": float((a.sum() - b.sum()) / d.sum()),
        "low": float(np.percentile(estimates, 2.5)),
        "high": float(np.percentile(estimates, 97.5)),
        "resamples": resamples,
        "seed": seed,
        "items": len(a),
    }


def bootstrap_mean(differences, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Mean of paired per-item differences (e.g. sentence chrF of one model minus another's) with a 95% percentile
    interval: `paired_bootstrap_ratio` with every item counting once."""
    count = len(differences)
    return paired_bootstrap_ratio(differences, [0.0] * count, [1] * count, resamples=resamples, seed=seed)


def paired_bootstrap(stats_a, stats_b, score, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """score(a's summed statistics) - score(b's) with a 95% percentile interval from resampling items.

    `stats_a[i]`, `stats_b[i]`: item i's statistics under two systems (rows of equal width, e.g. sacrebleu's chrF
    match counts per sentence); `score` maps statistics summed over a set of items to the corpus score. Each
    resample draws items with replacement and scores both systems on the same items, so the pairing is kept.
    """
    import numpy as np

    a = np.asarray(stats_a, dtype=np.float64)
    b = np.asarray(stats_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) == 0:
        raise ValueError(
            f"paired bootstrap needs equal, non-empty (items, statistics) arrays, got {a.shape}, {b.shape}"
        )
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples)
    for start in range(0, resamples, 250):  # chunks keep the index matrix small for large test sets
        index = rng.integers(0, len(a), size=(min(250, resamples - start), len(a)))
        for offset, (sum_a, sum_b) in enumerate(zip(a[index].sum(axis=1), b[index].sum(axis=1))):
            estimates[start + offset] = score(sum_a) - score(sum_b)
    return {
        "mean": float(score(a.sum(axis=0)) - score(b.sum(axis=0))),
        "low": float(np.percentile(estimates, 2.5)),
        "high": float(np.percentile(estimates, 97.5)),
        "resamples": resamples,
        "seed": seed,
        "items": len(a),
    }


def contains_zero(interval: dict) -> bool:
    return interval["low"] is None or interval["low"] <= 0 <= interval["high"]


def verdict(name: str, reference: str, intervals: list[dict], lower_is_better: bool = True, unit: str = "") -> str:
    """Plain words about `name` minus `reference` from one or more 95% intervals of that difference.

    A difference is "shown" only when every interval excludes 0 on the same side; otherwise "no difference shown".
    """
    if not intervals or any(interval["low"] is None for interval in intervals):
        return f"{name} vs {reference}: no difference shown (one seed gives no interval)."
    mean = intervals[0]["mean"]
    spans = "; ".join(format_span(i) for i in intervals)
    if any(contains_zero(interval) for interval in intervals) or len({i["low"] > 0 for i in intervals}) > 1:
        straddling = [format_span(i) for i in intervals if contains_zero(i)]
        which = f"{'; '.join(straddling)} contain{'s' if len(straddling) == 1 else ''} 0" if straddling else "disagree"
        return f"{name} vs {reference}: no difference shown ({mean:+.3f}{unit}, 95% intervals {spans}: {which})."
    better = (mean < 0) == lower_is_better
    return (
        f"{name} is {'better' if better else 'worse'} than {reference}: {mean:+.3f}{unit}, "
        f"95% intervals {spans} exclude 0."
    )


def format_span(interval: dict, digits: int = 3) -> str:
    """`[-0.166, +0.392]`: a 95% interval's bounds."""
    return f"[{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"


def format_interval(interval: dict | None, digits: int = 3, missing: str = "no interval") -> str:
    """`+0.113 [-0.166, +0.392]`: a mean difference and its 95% interval; `+0.113 (<missing>)` where one seed gives
    no interval; "" where there is no difference at all (the reference's own row)."""
    if not interval:
        return ""
    if interval.get("low") is None:
        return f"{interval['mean']:+.{digits}f} ({missing})"
    return f"{interval['mean']:+.{digits}f} {format_span(interval, digits)}"


def format_mean_sd(mean: float, sd: float | None, digits: int) -> str:
    """`4.303 ± 0.026`: a mean over seeds and its sample SD; the mean alone where one value gives no SD."""
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")
