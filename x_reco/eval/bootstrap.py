"""Percentile bootstrap intervals over users for per-target ranking metrics (host numpy only).

A user is the unit that is resampled: with several held-out targets per user, all of them enter or
leave a resample together, and each resample's statistic is the target-weighted mean (sum of the
drawn users' metric values over the number of their targets), the estimator the point metric is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_MAX_DRAWS = 1 << 22  # resamples x users drawn per chunk (bounds memory at ~32 MiB of int64 counts)


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """How to bootstrap: ``resamples`` draws of the users with replacement, a two-sided percentile
    interval at ``level``, from ``numpy.random.default_rng(seed)``."""

    resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if self.resamples < 2:
            raise ValueError(f"Bootstrap.resamples must be >= 2; got {self.resamples}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"Bootstrap.level must be in (0, 1); got {self.level}")


def _matrix(values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values[:, None] if values.ndim == 1 else values


def user_totals(values_tm: np.ndarray, users_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-user sums of per-target metric values and per-user target counts.

    Args:
      values_tm: [T, M] metric values of T targets. users_t: [T] user of each target (any ids).
    Returns:
      (sums_um f64 [U, M], counts_u f64 [U]) over the U distinct users, in sorted id order.
    """
    values_tm = _matrix(values_tm)
    _, user_t = np.unique(np.asarray(users_t), return_inverse=True)
    num_users = int(user_t.max()) + 1 if len(user_t) else 0
    sums_um = np.zeros((num_users, values_tm.shape[1]))
    np.add.at(sums_um, user_t, values_tm)
    return sums_um, np.bincount(user_t, minlength=num_users).astype(np.float64)


def resample_counts(num_users: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each user is drawn in each resample of ``num_users`` draws with replacement, f64 [R, U]."""
    draws_ru = rng.integers(0, num_users, size=(resamples, num_users))
    flat = (draws_ru + num_users * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * num_users).reshape(resamples, num_users).astype(np.float64)


def bootstrap_means(values_tm: np.ndarray, users_t: np.ndarray, bootstrap: Bootstrap) -> np.ndarray:
    """The target-weighted mean of each metric in every user resample, f64 [R, M] (see module docstring)."""
    sums_um, counts_u = user_totals(values_tm, users_t)
    num_users = len(counts_u)
    rng = np.random.default_rng(bootstrap.seed)
    chunk = max(1, _MAX_DRAWS // max(num_users, 1))
    parts = []
    for start in range(0, bootstrap.resamples, chunk):
        w_ru = resample_counts(num_users, min(chunk, bootstrap.resamples - start), rng)
        parts.append((w_ru @ sums_um) / (w_ru @ counts_u)[:, None])
    return np.concatenate(parts)


def bootstrap_interval(
    values_tm: np.ndarray, users_t: np.ndarray, bootstrap: Bootstrap = Bootstrap()
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval (low [M], high [M]) of each metric's mean over users; NaN without targets.

    Args:
      values_tm: [T, M] (or [T]) per-target metric values, e.g. hit@10 and NDCG@10 of each target.
      users_t: [T] the user of each target; a user's targets are resampled together.
    """
    values_tm = _matrix(values_tm)
    if not len(users_t):
        nan_m = np.full(values_tm.shape[1], np.nan)
        return nan_m, nan_m.copy()
    tail = (1.0 - bootstrap.level) / 2.0
    low_m, high_m = np.quantile(bootstrap_means(values_tm, users_t, bootstrap), [tail, 1.0 - tail], axis=0)
    return low_m, high_m
