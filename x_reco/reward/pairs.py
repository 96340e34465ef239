"""Preference pairs, the 80/20 split and weight misspecification (reward spec §2)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

LABEL_NOISE_SD = 0.05
HELDOUT_FRACTION = 0.2


class _PairStream:
    """Pairs drawn sequentially from ``default_rng(seed)``, extended on demand."""

    def __init__(self, n_items: int, seed: int, noise_sd: float):
        self.n_items, self.noise_sd = n_items, noise_sd
        self.rng = np.random.default_rng(seed)
        self.c1 = self.c2 = np.zeros(0, np.int64)
        self.eps = np.zeros(0)

    def first(self, n_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.c1) < n_pairs:
            new = np.empty((n_pairs - len(self.c1), 3))
            for row in new:
                row[:2] = self.rng.choice(self.n_items, size=2, replace=False)
                row[2] = self.rng.normal(0.0, self.noise_sd)
            self.c1 = np.concatenate([self.c1, new[:, 0].astype(np.int64)])
            self.c2 = np.concatenate([self.c2, new[:, 1].astype(np.int64)])
            self.eps = np.concatenate([self.eps, new[:, 2]])
        return self.c1[:n_pairs].copy(), self.c2[:n_pairs].copy(), self.eps[:n_pairs].copy()


@functools.lru_cache(maxsize=512)
def _stream(n_items: int, seed: int, noise_sd: float) -> _PairStream:
    return _PairStream(n_items, seed, noise_sd)


def pair_stream(n_items: int, n_pairs: int, seed: int, noise_sd: float = LABEL_NOISE_SD):
    """The first ``n_pairs`` (item_1 [N], item_2 [N], noise [N]) drawn sequentially from
    ``default_rng(seed)``: a smaller N is a prefix of a larger one, and the draw does not depend on
    the labelling vector, so every stakeholder labels the same item pairs with the same noise.

    The reference's call order per pair: ``choice(n_items, 2, replace=False)``, then one normal.
    The 512 most recently used streams, per (n_items, seed, noise), are kept and extended on demand.
    """
    if n_pairs < 1 or n_items < 2:
        raise ValueError(f"need n_pairs >= 1 and n_items >= 2, got {n_pairs}, {n_items}")
    return _stream(n_items, seed, float(noise_sd)).first(n_pairs)


@dataclasses.dataclass(frozen=True)
class PairSet:
    """Labelled pairs of pool indices, already split: train then held-out, in the split's order."""

    pref_train: np.ndarray  # [n_train] int
    rej_train: np.ndarray  # [n_train] int
    pref_heldout: np.ndarray  # [n_heldout] int
    rej_heldout: np.ndarray  # [n_heldout] int

    @property
    def n_train(self) -> int:
        return len(self.pref_train)


def label_pairs(utility_m: np.ndarray, c1: np.ndarray, c2: np.ndarray, eps: np.ndarray):
    """(preferred [N], rejected [N]): c1 wins iff u(c1) − u(c2) + ε > 0 (ties and below: c2)."""
    first = (utility_m[c1] - utility_m[c2] + eps) > 0
    return np.where(first, c1, c2), np.where(first, c2, c1)


def split_indices(n_pairs: int, seed: int, heldout: float = HELDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(train idx, held-out idx): a ``default_rng(seed)`` permutation, the first int(0.2 N) held out."""
    perm = np.random.default_rng(seed).permutation(n_pairs)
    n_out = int(n_pairs * heldout)
    return perm[n_out:], perm[:n_out]


def make_pairs(x_md: np.ndarray, w_d: np.ndarray, n_pairs: int, seed: int, noise_sd: float = LABEL_NOISE_SD) -> PairSet:
    """N labelled pairs for labelling vector ``w_d`` on pool features ``x_md``, split 80/20 by seed."""
    c1, c2, eps = pair_stream(len(x_md), n_pairs, seed, noise_sd)
    utility = np.asarray(x_md, np.float32) @ np.asarray(w_d, np.float32)
    pref, rej = label_pairs(utility, c1, c2, eps)
    tr, ho = split_indices(n_pairs, seed)
    return PairSet(pref[tr], rej[tr], pref[ho], rej[ho])


def misspecify(w_d: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """w̃ = w ⊙ (1 + ε), ε ~ N(0, σ² I) from ``default_rng(seed)``: zeros stay zero."""
    eps = np.random.default_rng(seed).normal(0.0, sigma, len(w_d))
    return (np.asarray(w_d, np.float64) * (1.0 + eps)).astype(np.float32)


def win_rates(pairs: PairSet, n_items: int) -> np.ndarray:
    """Per-item empirical win rate in the training pairs (C9 label-only calibration targets);
    items never seen get 0.5."""
    wins = np.bincount(pairs.pref_train, minlength=n_items).astype(np.float64)
    seen = wins + np.bincount(pairs.rej_train, minlength=n_items)
    return np.divide(wins, seen, out=np.full(n_items, 0.5), where=seen > 0)


def shared_pairs(
    x_md: np.ndarray, weights: dict[str, np.ndarray], n_pairs: int, seed: int, noise_sd: float = LABEL_NOISE_SD
) -> dict[str, PairSet]:
    """The 87-run loss sweep's design: all stakeholders label the same item pairs with the same
    noise, one N(0, noise²) draw per item slot of each pair (the reference draws the pairs, then
    the two noise vectors), so labels differ only through utility. No held-out split."""
    rng = np.random.default_rng(seed)
    c = np.array([rng.choice(len(x_md), size=2, replace=False) for _ in range(n_pairs)])
    noise = rng.normal(0.0, noise_sd, (2, n_pairs))
    empty = np.zeros(0, np.int64)
    out = {}
    for name, w in weights.items():
        u = np.asarray(x_md, np.float32) @ np.asarray(w, np.float32)
        first = u[c[:, 0]] + noise[0] > u[c[:, 1]] + noise[1]
        out[name] = PairSet(np.where(first, c[:, 0], c[:, 1]), np.where(first, c[:, 1], c[:, 0]), empty, empty)
    return out
