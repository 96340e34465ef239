"""Ranking and classification metrics on host numpy arrays (no model code)."""

from __future__ import annotations

import numpy as np

DEFAULT_CUTOFFS = (10, 20)


def target_ranks(scores_bn: np.ndarray, target_b: np.ndarray, masked_bn: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each row's target among the unmasked items (ties broken by lower index first).

    Args:
      scores_bn: [B, N] scores. target_b: int [B] target item per row.
      masked_bn: optional bool [B, N]; masked items never outrank the target (the target itself
        must be unmasked).
    """
    rows = np.arange(len(target_b))
    t_b = scores_bn[rows, target_b][:, None]
    idx = np.arange(scores_bn.shape[1])[None, :]
    above = (scores_bn > t_b) | ((scores_bn == t_b) & (idx < target_b[:, None]))
    if masked_bn is not None:
        above &= ~masked_bn
    return above.sum(axis=1)


def per_target_metrics(ranks_b: np.ndarray, cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS) -> dict[str, np.ndarray]:
    """hr@k, ndcg@k and mrr@k of each row, f64 [B], from 0-based ranks of one held-out item per row."""
    ranks_b = np.asarray(ranks_b, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in cutoffs:
        hit = ranks_b < k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks_b + 2.0), 0.0)
        out[f"mrr@{k}"] = np.where(hit, 1.0 / (ranks_b + 1.0), 0.0)
    return out


def ranking_metrics(ranks_b: np.ndarray, cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS) -> dict[str, float]:
    """HR@k, NDCG@k and MRR@k (means of ``per_target_metrics``); NaN without rows."""
    return {k: float(v.mean()) if len(v) else float("nan") for k, v in per_target_metrics(ranks_b, cutoffs).items()}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with average ranks for ties); NaN if only one class is present."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0  # average 1-based rank within each tie group
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy from logits (numerically stable); NaN on empty input."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    x = np.asarray(logits, dtype=np.float64).ravel()
    if len(y) == 0:
        return float("nan")
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def calibration_error(labels: np.ndarray, logits: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean over equal-width probability bins of
    |mean predicted probability - observed rate| (NaN when there are no labels)."""
    y = np.asarray(labels, np.float64).reshape(-1)
    if y.size == 0:
        return float("nan")
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64).reshape(-1)))
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, minlength=bins) - np.bincount(which, y, minlength=bins))
    return float(gap.sum() / count.sum())
