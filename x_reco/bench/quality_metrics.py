"""Quality of a serving variant against ``ref-f32`` on the same source params (inference spec §5.6).

Inputs are per-user arrays with every candidate valid: logits [U, N, A] (f32) and weighted scores
[U, N]. The non-vacuity guard runs first (the zero-init trap: a constant model makes every agreement
metric perfect). Kendall tau-b is computed on scores, never on argsort indices. Top-k is reported as
the exact-match rate (identical ordered list) and the mean overlap |A ∩ B| / k, separately.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

# Written before measuring; trained checkpoints only (random-init models are reported, not gated).
GATES = {"mean_abs_dprob_max": 5e-3, "median_tau_weighted_min": 0.95, "top10_overlap_at_1000_min": 0.9}
TOP_KS = (1, 3, 10)
TOP_NS = (64, 500, 1000)


class VacuousReference(RuntimeError):
    """The reference outputs are (nearly) constant across candidates: quality numbers would be meaningless."""


def non_vacuity(ref_fav_logits_un: np.ndarray, min_std: float = 1e-3, min_share: float = 0.95) -> dict:
    """For >= 95 % of users the favorite logits need std > 1e-3 and at least N/2 distinct values."""
    n = ref_fav_logits_un.shape[1]
    std_ok = ref_fav_logits_un.std(axis=1) > min_std
    distinct_ok = np.array([len(np.unique(row)) >= n / 2 for row in ref_fav_logits_un])
    share = float(np.mean(std_ok & distinct_ok))
    return {
        "share_ok": share,
        "min_share": min_share,
        "passed": share >= min_share,
        "median_std": float(np.median(ref_fav_logits_un.std(axis=1))),
    }


def _topk(x_un: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-x_un, axis=1, kind="stable")[:, :k]


def topk_agreement(ref_un: np.ndarray, var_un: np.ndarray, k: int) -> dict[str, float]:
    """Exact ordered match rate and mean overlap of the top-k lists."""
    a, b = _topk(ref_un, k), _topk(var_un, k)
    exact = float(np.mean(np.all(a == b, axis=1)))
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))
    return {"exact": exact, "overlap": overlap}


def tau_stats(ref_un: np.ndarray, var_un: np.ndarray) -> dict[str, float]:
    """Kendall tau-b per user on scores: median and 5th percentile."""
    taus = np.array([kendalltau(r, v).statistic for r, v in zip(ref_un, var_un)], dtype=np.float64)
    taus = np.nan_to_num(taus, nan=1.0)  # both constant: identical (degenerate) rankings
    return {"median": float(np.median(taus)), "p05": float(np.percentile(taus, 5))}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def quality_block(
    ref_logits: np.ndarray,
    var_logits: np.ndarray,
    ref_score: np.ndarray,
    var_score: np.ndarray,
    action_names: tuple[str, ...],
    *,
    trained: bool,
    favorite: int = 0,
) -> dict:
    """§5.6 block of one variant. Raises VacuousReference if the guard fails.

    Args:
      ref_logits / var_logits: [U, N, A] logits (all candidates valid).
      ref_score / var_score: [U, N] weighted scores.
      trained: gates apply only to trained weights; random-init blocks are labelled "not gated".
    """
    guard = non_vacuity(ref_logits[:, :, favorite])
    if not guard["passed"]:
        raise VacuousReference(f"non-vacuity guard failed: {guard}")
    dl = np.abs(var_logits.astype(np.float64) - ref_logits)
    dp = np.abs(_sigmoid(var_logits.astype(np.float64)) - _sigmoid(ref_logits.astype(np.float64)))
    block = {
        "label": "trained" if trained else "random-init, not gated",
        "users": int(ref_logits.shape[0]),
        "candidates": int(ref_logits.shape[1]),
        "non_vacuity": guard,
        "logits": {"max_abs": float(dl.max()), "mean_abs": float(dl.mean())},
        "probs": {"max_abs": float(dp.max()), "mean_abs": float(dp.mean())},
        "per_action": {
            name: {
                "logit_max_abs": float(dl[..., a].max()),
                "prob_max_abs": float(dp[..., a].max()),
                "prob_mean_abs": float(dp[..., a].mean()),
            }
            for a, name in enumerate(action_names)
        },
        "kendall_tau": {
            "favorite": tau_stats(ref_logits[:, :, favorite], var_logits[:, :, favorite]),
            "weighted": tau_stats(ref_score, var_score),
        },
        "topk": {},
    }
    for n in TOP_NS:
        if n > ref_logits.shape[1]:
            continue
        for target, (r, v) in {
            "favorite": (ref_logits[:, :n, favorite], var_logits[:, :n, favorite]),
            "weighted": (ref_score[:, :n], var_score[:, :n]),
        }.items():
            for k in TOP_KS:
                block["topk"][f"{target}@{k}/N{n}"] = topk_agreement(r, v, k)
    block["gates"] = gate(block) if trained else {"applied": False}
    return block


def gate(block: dict) -> dict:
    """Apply ``GATES`` (fixed in advance) to a trained-weights block."""
    top10 = block["topk"].get("weighted@10/N1000")
    checks = {
        "mean_abs_dprob": block["probs"]["mean_abs"] <= GATES["mean_abs_dprob_max"],
        "median_tau_weighted": block["kendall_tau"]["weighted"]["median"] >= GATES["median_tau_weighted_min"],
        "top10_overlap_at_1000": None if top10 is None else top10["overlap"] >= GATES["top10_overlap_at_1000_min"],
    }
    return {
        "applied": True,
        "thresholds": GATES,
        "checks": checks,
        "passed": all(v for v in checks.values() if v is not None),
    }
