"""Small statistics used by the analyses: Wilson intervals, bootstrap CIs, N50/N80 crossings."""

from __future__ import annotations

import math

import numpy as np


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion k/n ((nan, nan) when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (resampled with replacement)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def crossing_n(ns, recovery, level: float) -> float:
    """First N where ``recovery`` reaches ``level``, linearly interpolated between adjacent grid
    points with the point (0, 0) prepended, rounded to the nearest integer; +inf if never reached
    (reported as "> max N")."""
    n = np.concatenate([[0.0], np.asarray(ns, np.float64)])
    r = np.concatenate([[0.0], np.asarray(recovery, np.float64)])
    for i in range(1, len(n)):
        if r[i] >= level:
            frac = (level - r[i - 1]) / (r[i] - r[i - 1])
            return float(round_half_up(n[i - 1] + (n[i] - n[i - 1]) * frac))
    return math.inf


def censored_label(value: float, max_n: int) -> str:
    return f"> {max_n}" if math.isinf(value) else str(int(value))


def medians(values) -> dict[str, float]:
    """Median over finite values only (the preprint's headline) and over all with +inf censoring."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    return {
        "median_finite": float(np.median(finite)) if len(finite) else math.nan,
        "median_censored": float(np.median(v)) if len(v) else math.nan,
        "n_finite": int(len(finite)),
        "n_total": int(len(v)),
    }
