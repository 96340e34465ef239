"""The RankingScorer (candidate-pipeline spec §9.2–§9.7): weighted sum, offset, cold start, diversity, OON.

Every step is a pure function over one request's arrays, in float64; ``rank_scores`` chains them
and is the one place both ``RankingScorer`` and counterfactual re-ranking (§15 item 2) compute a
score, so a weight-set diff needs no second model call. Probabilities arrive in signal space
(upstream names, NaN = None); ``signal_probs`` maps a checkpoint's head columns there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from x_reco.configs.weights import WeightSet, head_signal
from x_reco.models.ranker import two_stage_score
from x_reco.pipeline import rules as R
from x_reco.pipeline.rules import RuleSet, rule_set
from x_reco.pipeline.types import Candidates, Component, Query


def signal_probs(head_probs_ca: np.ndarray, head_names: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Head outputs [C, A] (x-reco column names) -> (upstream signal names, f64 [C, A]) per §9.2.

    Continuous x22 columns must already be in seconds (the head's softplus output).
    """
    names = tuple(head_signal(a, head_names) for a in head_names)
    return names, np.asarray(head_probs_ca, np.float64)


def align_signals(
    probs: np.ndarray, signal_names: Sequence[str], signals: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``probs`` [n, len(signal_names)] re-ordered to ``signals`` -> (x [n, len(signals)] f64, absent).

    A signal without a column is a NaN column and listed in ``absent`` (e.g. ``cont_dwell_time`` for an
    a19 checkpoint, which has no seconds head, §9.2).
    """
    probs = np.asarray(probs, np.float64)
    index = {s: j for j, s in enumerate(signal_names)}
    x = np.full((probs.shape[0], len(signals)), np.nan)
    for j, s in enumerate(signals):
        if s in index:
            x[:, j] = probs[:, index[s]]
    return x, tuple(s for s in signals if s not in index)


def candidate_weights(cands: Candidates, query: Query, weights: WeightSet, rules: RuleSet | str) -> np.ndarray:
    """Per-candidate weights w_s(i) [n, len(rules.signals)] f64 with the §9.3 gates and boosts."""
    rules = rule_set(rules)
    n, signals = len(cands), rules.signals
    w = np.tile(np.array([weights.weight(s) for s in signals], np.float64), (n, 1))
    col = {s: j for j, s in enumerate(signals)}
    gates = weights.gates
    if "vqv" in col:
        ok = cands["video_duration_ms"] > gates.min_video_duration_ms  # NaN (no video) -> False
        cap = rules.vqv_viewer_follower_cap
        if cap is not None and not query.follower_count < cap:
            ok = np.zeros(n, bool)
        w[:, col["vqv"]] *= ok
    if "quoted_vqv" in col and gates.quoted_vqv_duration_check:
        w[:, col["quoted_vqv"]] *= ~(cands["quoted_video_duration_ms"] <= gates.min_video_duration_ms)
    if "reply" in col and rules.mutual_follow_reply_boost:
        boosted = ~cands["is_reply"] & ~cands["is_retweet"] & cands["is_mutual_follow_author"]
        w[:, col["reply"]] += boosted * weights.boosts.mutual_follow_reply
    if "post_unexplored" in col and gates.post_unexplored_in_network_only:
        w[:, col["post_unexplored"]] *= cands["in_network"] == 1
    return w


def weighted_parts(
    probs: np.ndarray,
    signal_names: Sequence[str],
    cands: Candidates,
    query: Query,
    weights: WeightSet,
    rules: RuleSet | str,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Contributions ``w_s(i) · (x_{i,s} ?? 0)`` [n, len(rules.signals)] f64 and the absent signals (§9.3).

    Columns follow ``rules.signals``; a None/NaN value contributes exactly 0. Continuous signals multiply
    seconds; an absent one (a19 ``cont_dwell_time``) is a NaN column, so it contributes 0.
    """
    rules = rule_set(rules)
    x, absent = align_signals(probs, signal_names, rules.signals)
    w = candidate_weights(cands, query, weights, rules)
    return w * np.where(np.isnan(x), 0.0, x), absent


def offset_score(c: np.ndarray, p: float, n: float, t: float) -> np.ndarray:
    """§9.4: ``max(c, 0)`` if T == 0; ``(c + N) / T · 0.001`` if c < 0; else ``c + 0.001``."""
    c = np.asarray(c, np.float64)
    if t == 0:
        return np.maximum(c, 0.0)
    return np.where(c < 0, (c + n) / t * R.NEGATIVE_SCORES_OFFSET, c + R.NEGATIVE_SCORES_OFFSET)


def _positions_desc(scores: np.ndarray) -> np.ndarray:
    """0-based rank of each entry by score desc, ties lower index first."""
    order = np.argsort(-scores, kind="stable")
    pos = np.empty(len(scores), np.int64)
    pos[order] = np.arange(len(scores))
    return pos


def cold_start_boost(
    weighted: np.ndarray, cands: Candidates, rules: RuleSet, request_id: str
) -> tuple[np.ndarray, np.ndarray]:
    """§9.5 author cold start: lift the best eligible low-reach original to the rank-15 score.

    Returns (new scores, boosted mask); ``boosted`` is True only where the score was actually raised.
    A no-op unless ``rules.cold_start`` and more than ``COLD_START_SLOT_MIN`` candidates.
    """
    weighted = np.asarray(weighted, np.float64)
    n, out, boosted = len(weighted), weighted.copy(), np.zeros(len(weighted), bool)
    hi = min(R.COLD_START_SLOT_MAX, n)
    lo = min(R.COLD_START_SLOT_MIN, hi)
    if not rules.cold_start or lo >= hi:
        return out, boosted
    rng = np.random.Generator(np.random.PCG64(int(request_id, 16)))
    target = np.sort(weighted)[::-1][rng.integers(lo, hi)]
    nonzero = weighted != 0
    pos = np.full(n, n, np.int64)
    pos[nonzero] = _positions_desc(weighted[nonzero])
    limit = int(np.floor(R.LOW_IMPRESSIONS_MAX_POSITION_RATIO * nonzero.sum()))
    eligible = (
        ~cands["is_reply"]
        & ~cands["is_retweet"]
        & (cands["author_followers_count"] <= R.COLD_START_FOLLOWER_CAP)
        & (cands["view_count_on_home"] < R.COLD_START_IMPRESSION_THRESHOLD)
        & nonzero
        & (pos < limit)
    )
    if not eligible.any():
        return out, boosted
    idx = np.flatnonzero(eligible)
    best = idx[::-1][np.argmax(weighted[idx][::-1])]  # highest score, ties to the later index
    if target > weighted[best]:
        out[best], boosted[best] = target, True
    return out, boosted


def author_diversity(
    pre_div: np.ndarray,
    author_ids: np.ndarray,
    decay: float = R.AUTHOR_DIVERSITY_DECAY,
    floor: float = R.AUTHOR_DIVERSITY_FLOOR,
) -> tuple[np.ndarray, np.ndarray]:
    """§9.6: (multiplier ``(1 − floor)·decay^k + floor``, k) with k = earlier same-author candidates.

    Order: stable sort by ``pre_div`` desc (ties keep input order), over all scorer inputs.
    """
    n = len(pre_div)
    order = np.argsort(-np.asarray(pre_div, np.float64), kind="stable")
    _, group = np.unique(np.asarray(author_ids, dtype=object)[order].astype(str), return_inverse=True)
    by_group = np.argsort(group, kind="stable")  # within a group: sorted (score) order
    sorted_groups = group[by_group]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.diff(np.r_[starts, n])
    k_sorted = np.empty(n, np.int64)
    k_sorted[by_group] = np.arange(n) - np.repeat(starts, counts)
    k = np.empty(n, np.int64)
    k[order] = k_sorted
    return (1.0 - floor) * decay ** k.astype(np.float64) + floor, k


def oon_factor(
    cands: Candidates,
    query: Query,
    rules: RuleSet,
    new_user_age_threshold_secs: float = R.NEW_USER_AGE_THRESHOLD_SECS,
) -> np.ndarray:
    """§9.7 out-of-network multiplier [n]; 1 where it does not apply (never for ``in_network`` None)."""
    in_net = cands["in_network"]
    applies = in_net == 0
    if rules.oon_in_network_replies_retweets:
        applies |= (in_net == 1) & (cands["is_reply"] | cands["is_retweet"])
    factor = R.OON_WEIGHT_FACTOR
    if rules.oon_branches:
        created = query.account_created_ts
        new_user = (
            created is not None
            and query.t - created < new_user_age_threshold_secs
            and len(query.followed_ids) >= R.NEW_USER_MIN_FOLLOWING
        )
        if query.request.topic_ids:
            factor = R.TOPIC_OON_WEIGHT_FACTOR
        elif new_user:
            factor = R.NEW_USER_OON_WEIGHT_FACTOR
    return np.where(applies, factor, 1.0)


@dataclasses.dataclass(frozen=True)
class RankScores:
    """The scorer's arrays for one request ([n] unless noted); ``r["score"]`` reads a field by name.

    ``contributions`` [n, len(signals)] = ``w_s(i)·p_s`` (explanations); ``combined`` = their row sums
    (c); ``weighted_score`` = offset(c); cold start and the multipliers start from ``weighted_score``, or
    with a retrieval weight b > 0 from ``exp(two_stage_score(c, two_tower_score, b))``;
    ``score = pre_diversity_score · diversity_multiplier · oon_multiplier``.
    """

    signals: tuple[str, ...]
    absent: tuple[str, ...]
    pnt: tuple[float, float, float]
    contributions: np.ndarray
    combined: np.ndarray
    weighted_score: np.ndarray
    cold_start_boosted: np.ndarray
    pre_diversity_score: np.ndarray
    diversity_k: np.ndarray
    diversity_multiplier: np.ndarray
    oon_multiplier: np.ndarray
    score: np.ndarray

    def __getitem__(self, name: str):
        return getattr(self, name)


def rank_scores(
    probs: np.ndarray,
    signal_names: Sequence[str],
    cands: Candidates,
    query: Query,
    weights: WeightSet,
    rules: RuleSet | str,
    diversity: bool = True,
    request_id: str | None = None,
    retrieval_weight: float = 0.0,
) -> RankScores:
    """§9.3–§9.7 for one request: the single scoring path of serving and counterfactuals.

    Args:
      probs: [n, len(signal_names)] f64 probabilities (seconds for continuous signals), NaN = None.
      signal_names: upstream signal names of ``probs``' columns.
      cands, query: the request's candidates and query (gates, cold start, OON read them).
      weights, rules: the weight set and rule set.
      diversity: author diversity on (off in single-author partition profiles, §13).
      request_id: seeds cold start; default ``query.request.request_id``.
      retrieval_weight: b in [0, 1]. With b > 0 the request's order blends the combined score with the
        retriever's ``cands["two_tower_score"]``, as the two-stage evaluation does
        (``models.ranker.two_stage_score``: per-request z-scores over these candidates); its exp is the
        positive base that cold start and the diversity and OON multipliers act on (a multiplier m
        lowers the blend by -log m). The ranker checkpoint's validation fit b
        (``eval.ranker.retrieval_weight_of``).
    """
    rules = rule_set(rules)
    n = len(cands)
    contrib, absent = weighted_parts(probs, signal_names, cands, query, weights, rules)
    combined = contrib.sum(axis=1)
    pnt = weights.pnt(rules)
    weighted = offset_score(combined, *pnt)
    base = weighted
    if retrieval_weight:
        base = np.exp(two_stage_score(combined, cands["two_tower_score"], retrieval_weight))
    pre_div, boosted = cold_start_boost(base, cands, rules, request_id or query.request.request_id)
    if diversity:
        div, k = author_diversity(pre_div, cands["author_id"])
    else:
        div, k = np.ones(n), np.zeros(n, np.int64)
    oon = oon_factor(cands, query, rules)
    return RankScores(
        signals=rules.signals,
        absent=absent,
        pnt=pnt,
        contributions=contrib,
        combined=combined,
        weighted_score=weighted,
        cold_start_boosted=boosted,
        pre_diversity_score=pre_div,
        diversity_k=k,
        diversity_multiplier=div,
        oon_multiplier=oon,
        score=pre_div * div * oon,
    )


_WRITTEN = (
    "weighted_score",
    "pre_diversity_score",
    "cold_start_boosted",
    "diversity_k",
    "diversity_multiplier",
    "oon_multiplier",
    "score",
)


class RankingScorer(Component):
    """Scorer stage (§3.2 #5) applying ``rank_scores`` to the Phoenix probabilities on ``cands``
    (and, with ``retrieval_weight`` > 0, to their ``two_tower_score``)."""

    def __init__(
        self, weights: WeightSet | str, rules: RuleSet | str, diversity: bool = True, retrieval_weight: float = 0.0
    ):
        self.weights = weights if isinstance(weights, WeightSet) else WeightSet.named(weights)
        self.rules = rule_set(rules)
        self.diversity = diversity
        self.retrieval_weight = float(retrieval_weight)

    def score(self, query: Query, cands: Candidates) -> Candidates:
        """A copy of ``cands`` with the scorer's columns written (same length and order)."""
        r = rank_scores(
            cands.probs,
            cands.signal_names,
            cands,
            query,
            self.weights,
            self.rules,
            self.diversity,
            retrieval_weight=self.retrieval_weight,
        )
        out = cands.with_signals(cands.signal_names, cands.probs)
        for name in _WRITTEN:
            out[name] = r[name]
        return out
