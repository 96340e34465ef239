"""Explanations of a served feed (spec §15.1, §15.2): the fate ledger, near misses, why-not, and
the comparison of two feeds (Jaccard, RBO, Kendall τ, entering and leaving posts).

Everything here reads a ``FeedResult``; nothing calls a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from x_reco.pipeline.framework import FeedResult

TERMINAL_STATES = ("removed", "not_selected", "dropped_post_selection", "truncated", "served")


def fate_ledger(result: FeedResult) -> dict[int, dict[str, Any]]:
    """Exactly one terminal state per retrieved candidate (keyed by its ``row``), plus its flags."""
    ledger: dict[int, dict[str, Any]] = {}
    retrieved = result.retrieved

    def put(row: int, entry: dict[str, Any]) -> None:
        if row in ledger:
            raise AssertionError(f"row {row} ({retrieved['post_id'][row]}) has two terminal states")
        ledger[row] = {"post_id": retrieved["post_id"][row], **entry, "flags": sorted(result.flags.get(row, ()))}

    for r in result.removed:
        if r.stage == "post_selection_filter":
            put(r.row, {"state": "dropped_post_selection", "filter": r.component, "reason": r.reason})
        else:
            put(r.row, {"state": "removed", "stage": r.stage, "filter": r.component, "reason": r.reason})
    for pos, row in enumerate(result.served["row"]):
        put(int(row), {"state": "served", "position": pos})
    truncated = set(result.debug.get("truncated_rows", ()))
    cutoff = result.debug.get("cutoff_score", float("nan"))  # the selector's last kept score
    for i, row in enumerate(result.non_selected["row"]):
        rank = int(result.non_selected["pool_rank"][i])
        if int(row) in truncated:
            put(int(row), {"state": "truncated", "rank": rank})
        else:
            score = float(result.non_selected["score"][i])
            gap = cutoff - score if np.isfinite(score) and np.isfinite(cutoff) else None
            put(int(row), {"state": "not_selected", "rank": rank, "gap_to_cutoff": gap})
    missing = sorted(set(range(len(retrieved))) - set(ledger))
    if missing:
        raise AssertionError(f"rows {missing} of the retrieved candidates have no terminal state")
    return ledger


def near_miss(result: FeedResult, row: int) -> list[str]:
    """What bound a non-served, scored candidate: its rank with each multiplier set to 1, and a
    cold-start boost that lifted another post over it."""
    scored = result.scored
    idx = np.flatnonzero(scored["row"] == row)
    if not len(idx):
        return []
    i = int(idx[0])
    score = scored["score"]
    finite = np.where(np.isfinite(score), score, -np.inf)
    others = np.delete(finite, i)
    rank = int(np.sum(others > finite[i]))
    notes = []
    for column, label in (("oon_multiplier", "the OON factor"), ("diversity_multiplier", "author diversity")):
        factor = float(scored[column][i])
        if factor < 1.0 and np.isfinite(finite[i]):
            new_rank = int(np.sum(others > finite[i] / factor))
            if new_rank < rank:
                notes.append(f"rank {rank} -> {new_rank} without {label} (x{factor:.4g})")
    k = int(scored["diversity_k"][i])
    if k:
        notes.append(f"diversity k = {k}: x{float(scored['diversity_multiplier'][i]):.4g}")
    weighted = scored["weighted_score"]
    for j in np.flatnonzero(scored["cold_start_boosted"]):
        if j != i and finite[j] > finite[i] and weighted[j] < weighted[i]:
            notes.append(f"cold start lifted {scored['post_id'][j]} over it")
    return notes


def top_contributions(contrib: np.ndarray, signal_names: tuple[str, ...], k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row the ``k`` largest ``|w_s p_s|`` as (signal, value), largest first."""
    out = []
    for row in np.asarray(contrib, np.float64):
        vals = np.nan_to_num(row)
        order = np.argsort(-np.abs(vals), kind="stable")[:k]
        out.append([(signal_names[j], float(vals[j])) for j in order if vals[j] != 0.0])
    return out


def rbo(a: list[str], b: list[str], p: float = 0.9) -> float:
    """Rank-biased overlap of two rankings (extrapolated to the longer depth; 1 for identical lists)."""
    depth = max(len(a), len(b))
    if depth == 0:
        return 1.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    overlap, total, agree = 0, 0.0, 0.0
    for d in range(1, depth + 1):
        x = a[d - 1] if d <= len(a) else None
        y = b[d - 1] if d <= len(b) else None
        if x is not None:
            overlap += x in seen_b
            seen_a.add(x)
        if y is not None:
            overlap += y in seen_a
            seen_b.add(y)
        agree = overlap / d
        total += p ** (d - 1) * agree
    return float((1 - p) * total + p**depth * agree)


def kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall τ-b on the union of two rankings; a post missing from a list ties at its bottom."""
    union = list(dict.fromkeys(a + b))
    if len(union) < 2:
        return 1.0
    ra = [a.index(x) if x in a else len(a) for x in union]
    rb = [b.index(x) if x in b else len(b) for x in union]
    tau = stats.kendalltau(ra, rb).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def compare_feeds(
    base: list[str],
    other: list[str],
    pool_ids: np.ndarray,
    contrib_base: np.ndarray,
    contrib_other: np.ndarray,
    signal_names: tuple[str, ...],
    k: int = 35,
) -> dict[str, Any]:
    """Jaccard@k, RBO (p 0.9) and Kendall τ on the union of two served lists, and the entering / leaving
    posts with their largest per-signal ``Δ(w_s p_s)`` (other set minus base set, same probabilities).

    ``pool_ids`` are the post ids of the scored pool both sets ranked; ``contrib_*`` [pool, signals]
    their ``w_s(i) p_s`` under each set.
    """
    a, b = [str(x) for x in base[:k]], [str(x) for x in other[:k]]
    sa, sb = set(a), set(b)
    where = {str(p): i for i, p in enumerate(pool_ids)}

    def delta(post: str) -> dict[str, Any]:
        i = where[post]
        d = np.nan_to_num(contrib_other[i]) - np.nan_to_num(contrib_base[i])
        top = np.argsort(-np.abs(d), kind="stable")[:3]
        return {"post_id": post, "delta": {signal_names[t]: float(d[t]) for t in top if d[t] != 0.0}}

    return {
        "jaccard@35": len(sa & sb) / len(sa | sb) if sa | sb else 1.0,
        "rbo": rbo(a, b),
        "kendall_tau": kendall_tau(a, b),
        "entering": [delta(p) | {"position": b.index(p)} for p in b if p not in sa],
        "leaving": [delta(p) | {"position": a.index(p)} for p in a if p not in sb],
    }


def gini(counts: Any) -> float:
    """Gini coefficient of non-negative counts (0: equal; → 1: one holder takes all); 0 for none."""
    x = np.sort(np.asarray(counts, dtype=np.float64).reshape(-1))
    if len(x) == 0 or x.sum() <= 0:
        return 0.0
    if x[0] < 0:
        raise ValueError(f"gini needs non-negative counts, got {x[0]}")
    n = len(x)
    return float(2.0 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n)
