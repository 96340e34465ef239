"""Ranker evaluation (per-action AUC and log-loss) and the two-stage retrieve-then-rank metric.

Per-event held-out rows carry a single real candidate, so their empty slots are filled with sampled
never-interacted negatives (``heldout.with_sampled_negatives``), as in training; AUC and log-loss are
then taken per observed action over every real candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from x_reco.common.actions import ACTIONS
from x_reco.configs.weights import SIGNALS, WeightSet, head_signal
from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.registry import dataset_spec
from x_reco.eval.heldout import ineligible_mask, interacted, seen_mask, with_sampled_negatives
from x_reco.eval.metrics import auc, calibration_error, log_loss, ranking_metrics
from x_reco.eval.retrieval import item_vectors, user_scores
from x_reco.models.losses import ranker_bce
from x_reco.models.ranker import PhoenixRanker, two_stage_score, weighted_score
from x_reco.models.retriever import PhoenixRetriever

_logits = nnx.jit(lambda model, batch: model(batch).logits_bca)


def ranker_logits(model: PhoenixRanker, seqs: EngagementSequences, rows: np.ndarray, batch_size: int = 128):
    """Logits [R, C, A] and labels (``RankerLabels`` fields, unpadded) for example ``rows``."""
    logits, labels = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        logits.append(np.asarray(_logits(model, seqs.batch(chunk, batch_size)))[: len(chunk)])
        labels.append(seqs.labels(chunk))
    cat = lambda name: np.concatenate([getattr(x, name) for x in labels])  # noqa: E731
    return np.concatenate(logits), cat("candidate_actions"), cat("candidate_mask"), cat("label_mask")


def evaluate_ranker(
    model: PhoenixRanker,
    seqs: EngagementSequences,
    split: Split | str = Split.TEST,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, float]:
    """``<action>_auc``, ``<action>_log_loss`` and ``<action>_calibration_error`` (expected calibration
    error, ``metrics.calibration_error``) per observed action, the means, and the BCE loss.

    ``<action>_auc_real`` is the AUC among real (not sampled) candidates only, where both classes
    occur (e.g. favorite = rated >= 4 among watched items): the sampled negatives make the plain AUC
    mostly a real-vs-random test.
    """
    held = with_sampled_negatives(seqs, split, seed)
    logits, y, cmask, lmask = ranker_logits(model, held, np.arange(held.num_examples), batch_size)
    real = cmask & ~held.candidates.sampled
    names = model.config.output_action_names
    out: dict[str, float] = {"loss": float(ranker_bce(logits, y, cmask, lmask)), "num_examples": float(len(y))}
    aucs, losses = [], []
    for a, name in enumerate(names):
        if name not in ACTIONS or not seqs.observed_mask[ACTIONS.index(name)]:
            continue
        labels, scores = y[..., a][cmask], logits[..., a][cmask]
        out[f"{name}_auc"] = auc(labels, scores)
        out[f"{name}_log_loss"] = log_loss(labels, scores)
        out[f"{name}_calibration_error"] = calibration_error(labels, scores)
        real_auc = auc(y[..., a][real], logits[..., a][real])
        if np.isfinite(real_auc):
            out[f"{name}_auc_real"] = real_auc
        aucs += [out[f"{name}_auc"]] if np.isfinite(out[f"{name}_auc"]) else []
        losses.append(out[f"{name}_log_loss"])
    out["mean_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["mean_log_loss"] = float(np.mean(losses)) if losses else float("nan")
    return out


def objective_weights(partition: str) -> WeightSet:
    """The published weights on the partition's objective heads (``DatasetSpec.objective_actions``),
    every other weight zeroed: the published set itself where a dataset observes every action."""
    objective = set(dataset_spec(partition).objective_actions)
    published = WeightSet.published()
    drop = sorted({head_signal(a, ACTIONS) for a in ACTIONS if a not in objective} & set(SIGNALS))
    drop = [s for s in drop if published.weight(s) != 0]
    if not drop:
        return published
    return dataclasses.replace(published.masked(drop), name=f"{published.name}:{partition}-objective")


# The retrieval weights validation tries: steps of 0.05 from the ranker alone (0) to 0.9. Not 1: that
# would switch the ranker off, and with it the weight set, which the served feed must answer to (a
# counterfactual weight set, a stakeholder audit of served feeds).
RETRIEVAL_WEIGHT_GRID = tuple(round(0.05 * i, 2) for i in range(19))


def retrieval_weight_of(ranker_metadata: Mapping[str, Any]) -> float:
    """The retrieval weight a ranker checkpoint serves with (``models.ranker.two_stage_score``): the one
    its selected validation fit (``val_metrics["retrieval_weight"]``); 0 (the ranker's own order) for a
    ranker validated without a retriever."""
    value = ranker_metadata.get("extra", {}).get("val_metrics", {}).get("retrieval_weight")
    return 0.0 if value is None or not np.isfinite(value) else float(value)


def two_stage_rankings(
    retriever: PhoenixRetriever,
    ranker: PhoenixRanker,
    seqs: EngagementSequences,
    split: Split | str = Split.TEST,
    num_retrieved: int = 200,
    weights: WeightSet | None = None,
    batch_size: int = 32,
    catalogue_window_s: float | None = None,
):
    """Per batch of held-out targets: ``(rows, targets, top, weighted, retrieved)`` with the retriever's
    top ``num_retrieved`` unseen items ``top`` [R, k] (retriever order), the ranker's weighted score of
    each, ``weighted`` [R, k], and the retriever's ``u·v`` of each, ``retrieved`` [R, k] (-inf for an
    ineligible item filling a short list). What ``two_stage`` scores (``two_stage_score(weighted,
    retrieved, b)``), and what the served feed is checked against."""
    weights = objective_weights(seqs.partition) if weights is None else weights
    rows, targets = seqs.retrieval_pairs(split)
    items_nd = item_vectors(retriever, seqs)
    earlier = interacted(seqs, split)
    k = min(num_retrieved, items_nd.shape[0])
    for start in range(0, len(rows), batch_size):
        r, t = rows[start : start + batch_size], targets[start : start + batch_size]
        scores = user_scores(retriever, seqs, r, items_nd, batch_size)
        seen = seen_mask(seqs, split, r, earlier)
        if catalogue_window_s:
            seen |= ineligible_mask(seqs, r, catalogue_window_s)
        seen[np.arange(len(t)), t] = False
        scores[seen] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        retrieved = np.take_along_axis(scores, top, axis=1)
        yield r, t, top, _weighted_scores(ranker, seqs, r, top, weights, batch_size), retrieved


def two_stage(
    retriever: PhoenixRetriever,
    ranker: PhoenixRanker,
    seqs: EngagementSequences,
    split: Split | str = Split.TEST,
    num_retrieved: int = 200,
    weights: WeightSet | None = None,
    cutoffs: tuple[int, ...] = (10,),
    batch_size: int = 32,
    catalogue_window_s: float | None = None,
    retrieval_weights: Sequence[float] = (0.0,),
) -> dict[str, float]:
    """Retrieve top-``num_retrieved`` unseen items, re-rank them, score the target.

    The re-ranked order is ``two_stage_score(ranker's weighted score, retriever's u·v, b)``: for each
    ``b`` of ``retrieval_weights`` (one value: the served weight, ``retrieval_weight_of`` the ranker's
    checkpoint; ``RETRIEVAL_WEIGHT_GRID`` on the val split: the fit), the first with the highest
    NDCG at the first cutoff is reported. ``weights`` default to the partition's objective
    (``objective_weights``).

    Returns ``two_stage_<metric>@k`` (re-ranked at that ``b``, reported as ``retrieval_weight``),
    ``two_stage_ranker_<metric>@k`` (the ranker's own order, ``b = 0``), ``retrieval_<metric>@k``
    (retriever order, same candidates) and ``recall@<num_retrieved>``. A target outside the retrieved
    set counts as a miss.
    """
    grid = tuple(float(b) for b in retrieval_weights)
    if not grid:
        raise ValueError("retrieval_weights is empty; pass (0.0,) for the ranker's own order")
    orders = (0.0, *grid)
    ranked: dict[float, list[np.ndarray]] = {b: [] for b in orders}
    retrieved = []
    k = 0
    for r, t, top, rerank, ret in two_stage_rankings(
        retriever, ranker, seqs, split, num_retrieved, weights, batch_size, catalogue_window_s
    ):
        k = top.shape[1]
        for b in ranked:
            ranked[b].append(_rank_in(top, np.argsort(-two_stage_score(rerank, ret, b), axis=1, kind="stable"), t))
        retrieved.append(_rank_in(top, np.arange(k)[None, :].repeat(len(r), 0), t))
    metrics = {b: ranking_metrics(np.concatenate(v), cutoffs) for b, v in ranked.items()}
    key = f"ndcg@{cutoffs[0]}"
    best = max(grid, key=lambda b: (metrics[b][key], -b))  # ties: the smaller weight
    out = {f"two_stage_{m}": v for m, v in metrics[best].items()}
    out.update({f"two_stage_ranker_{m}": v for m, v in metrics[0.0].items()})
    out["retrieval_weight"] = best
    ret = np.concatenate(retrieved)
    out.update({f"retrieval_{m}": v for m, v in ranking_metrics(ret, cutoffs).items()})
    out[f"recall@{k}"] = float(np.mean(ret < k))
    return out


def _weighted_scores(ranker, seqs, rows, top_bk, weights: WeightSet, batch_size: int) -> np.ndarray:
    batch = seqs.catalogue_batch(rows, top_bk, batch_size)
    probs = 1.0 / (1.0 + np.exp(-np.asarray(_logits(ranker, batch), np.float64)))
    score = weighted_score(probs, weights.weights, ranker.config.output_action_names)
    return np.asarray(score)[: len(rows)]


def _rank_in(top_bk: np.ndarray, order_bk: np.ndarray, target_b: np.ndarray) -> np.ndarray:
    """Position of each target in ``top[order]`` (``k`` = not retrieved)."""
    listed = np.take_along_axis(top_bk, order_bk, axis=1) == target_b[:, None]
    return np.where(listed.any(axis=1), listed.argmax(axis=1), top_bk.shape[1])
