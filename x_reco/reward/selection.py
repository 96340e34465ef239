"""Selection mechanisms over the pool and the local-covariance predictors (reward spec §4, C3).

Shapes: B scorers, M pool items, L diversity weights δ, T temperatures, H evaluation stakeholders,
K = 10 selected items. Scores and utilities are float64 (the reference scores in float64).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

DELTAS = tuple(round(0.05 * i, 2) for i in range(21))
TEMPERATURES = (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TOP_K = 10
_CHUNK_ELEMENTS = 4_000_000


def scores(x_md: np.ndarray, w_bd: np.ndarray) -> np.ndarray:
    """s(c) = w · p(c) for every scorer, [B, M] float64."""
    return np.asarray(w_bd, np.float64) @ np.asarray(x_md, np.float64).T


def greedy_sets(scores_bm: np.ndarray, topic_m: np.ndarray, deltas=DELTAS, k: int = TOP_K) -> np.ndarray:
    """Greedy diversity top-K, [B, L, K] pool indices in pick order.

    Each of K steps picks the remaining item maximising (1 − δ)·s(c) + δ/(n_topic(c) + 1), with
    n_topic the items of c's topic already chosen; ties go to the earlier pool position. At δ = 0
    this is the K highest-scoring items (hard top-K).
    """
    s = np.asarray(scores_bm, np.float64)
    b, m = s.shape
    if k > m:
        raise ValueError(f"cannot select {k} of {m} items")
    d = np.asarray(deltas, np.float64)
    topic = np.asarray(topic_m, np.int64)
    n_topics = int(topic.max()) + 1
    out = np.empty((b, len(d), k), np.int64)
    step = max(1, _CHUNK_ELEMENTS // (len(d) * m))
    for lo in range(0, b, step):
        out[lo : lo + step] = _greedy_chunk(s[lo : lo + step], topic, n_topics, d, k)
    return out


def _greedy_chunk(s_bm, topic_m, n_topics, d_l, k):
    b, m = s_bm.shape
    base = (1.0 - d_l)[None, :, None] * s_bm[:, None, :]  # [b, L, M]
    counts = np.zeros((b, len(d_l), n_topics))
    taken = np.zeros((b, len(d_l), m), bool)
    picks = np.empty((b, len(d_l), k), np.int64)
    bi, li = np.meshgrid(np.arange(b), np.arange(len(d_l)), indexing="ij")
    for j in range(k):
        adjusted = base + d_l[None, :, None] / (counts[:, :, topic_m] + 1.0)
        adjusted[taken] = -np.inf
        pick = np.argmax(adjusted, axis=2)  # first maximum: pool order breaks ties
        picks[:, :, j] = pick
        taken[bi, li, pick] = True
        counts[bi, li, topic_m[pick]] += 1.0
    return picks


def set_utilities(sets_blk: np.ndarray, u_hm: np.ndarray) -> np.ndarray:
    """Σ_{c∈S} U_h(c), [B, L, H]."""
    return np.asarray(u_hm, np.float64)[:, sets_blk].sum(axis=-1).transpose(1, 2, 0)


def softmax_policy(scores_bm: np.ndarray, temperature: float) -> np.ndarray:
    """π(c) ∝ exp(s(c)/T) over the whole pool, [B, M]."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(np.asarray(scores_bm, np.float64) / temperature, axis=1)


def softmax_utilities(scores_bm: np.ndarray, u_hm: np.ndarray, temps=TEMPERATURES) -> np.ndarray:
    """E_π[U_h] = Σ_c π_T(c) U_h(c), [B, T, H]."""
    u = np.asarray(u_hm, np.float64)
    return np.stack([softmax_policy(scores_bm, t) @ u.T for t in temps], axis=1)


def mechanism_utilities(x_md, w_bd, topic_m, u_hm, deltas=DELTAS, temps=TEMPERATURES, k: int = TOP_K):
    """(δ-frontier utilities [B, L, H], softmax utilities [B, T, H]) of the scorers ``w_bd``."""
    s = scores(x_md, w_bd)
    return set_utilities(greedy_sets(s, topic_m, deltas, k), u_hm), softmax_utilities(s, u_hm, temps)


def softmax_local_cov(scores_bm: np.ndarray, u_hm: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Cov_{π_T}(s, U_h) = d/dβ E_{π∝exp(βs)}[U_h] at β = 1/T, [B, H]."""
    pi = softmax_policy(scores_bm, temperature)
    s = np.asarray(scores_bm, np.float64)
    u = np.asarray(u_hm, np.float64)
    es = np.sum(pi * s, axis=1)
    return (pi * s) @ u.T - es[:, None] * (pi @ u.T)


def upper_tail_cov(scores_bm: np.ndarray, u_hm: np.ndarray, share: float = 0.05) -> np.ndarray:
    """Uniform covariance of s and U_h among the top ``share`` of items by s, [B, H]."""
    s = np.asarray(scores_bm, np.float64)
    u = np.asarray(u_hm, np.float64)
    n = max(2, int(np.ceil(share * s.shape[1])))
    top = np.argsort(-s, axis=1, kind="stable")[:, :n]
    st = np.take_along_axis(s, top, axis=1)  # [B, n]
    ut = u[:, top]  # [H, B, n]
    cov = np.mean((st - st.mean(1, keepdims=True))[None] * (ut - ut.mean(2, keepdims=True)), axis=2)
    return cov.T
