"""Retrieval evaluation: leave-one-out by time, full-catalogue ranking (no sampled negatives).

Every held-out (example, item) target of a split is ranked against the whole catalogue, once over
all items and once with the user's already-seen items masked (``masked_`` keys; the target itself
is never masked). The popularity baseline ranks by training-positive counts on the same targets.
With a ``Bootstrap`` the HR@10 / NDCG@10 of both views also get a percentile interval over users
(``<metric>_ci_low`` / ``<metric>_ci_high``; the same resamples for every model on a split).
``seen_share@10`` says how much of the unmasked top 10 goes to items the user already interacted
with: what the masked view removes, and where a model loses the unmasked metrics.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.bootstrap import Bootstrap, bootstrap_interval
from x_reco.eval.heldout import ineligible_mask, interacted, seen_mask
from x_reco.eval.metrics import DEFAULT_CUTOFFS, per_target_metrics, ranking_metrics, target_ranks
from x_reco.models.retriever import PhoenixRetriever

INTERVAL_METRICS = ("hr@10", "ndcg@10")  # the metrics that get a bootstrap interval
SEEN_SHARE_K = 10  # ``seen_share@10``: the share of the unmasked top 10 the user already interacted with

_encode_user = nnx.jit(lambda model, batch: model.encode_user(batch))
_history_repeats = nnx.jit(lambda model, batch, post: model.history_repeats(batch, post))
_encode_items = nnx.jit(lambda model, post, author: model.encode_items(post, author))


def item_vectors(model: PhoenixRetriever, seqs: EngagementSequences, chunk: int = 4096) -> np.ndarray:
    """Unit vectors of every catalogue item, f32 [N, D] (candidate tower over the item hashes)."""
    post, author = seqs.catalogue.post_hashes.astype(np.int32), seqs.catalogue.author_hashes.astype(np.int32)
    n = len(post)
    pad = (-n) % chunk if n > chunk else 0
    post = np.concatenate([post, np.zeros((pad, post.shape[1]), np.int32)])
    author = np.concatenate([author, np.zeros((pad, author.shape[1]), np.int32)])
    size = min(chunk, len(post))
    parts = [
        np.asarray(_encode_items(model, post[i : i + size], author[i : i + size])) for i in range(0, len(post), size)
    ]
    return np.concatenate(parts)[:n]


def catalogue_index(model: PhoenixRetriever, seqs: EngagementSequences, param_version: str = "") -> dict:
    """The candidate index of the catalogue: ``item_ids`` [N], unit ``vectors`` f32 [N, D], ``mask``
    bool [N] (items with a post hash; padding rows have none) and the model's ``param_version``."""
    return {
        "item_ids": seqs.catalogue.item_ids,
        "vectors": item_vectors(model, seqs).astype(np.float32),
        "mask": seqs.catalogue.post_hashes[:, 0] != 0,
        "param_version": np.asarray(str(param_version)),
    }


def user_vectors(
    model: PhoenixRetriever, seqs: EngagementSequences, rows: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Unit user vectors [len(rows), D] for example rows (fixed-shape padded batches, one compile)."""
    parts = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        parts.append(np.asarray(_encode_user(model, seqs.batch(chunk, batch_size)))[: len(chunk)])
    return np.concatenate(parts) if parts else np.zeros((0, model.config.emb_size), np.float32)


def user_scores(
    model: PhoenixRetriever, seqs: EngagementSequences, rows: np.ndarray, items_nd: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """The retriever's score of every catalogue item for example rows, f32 [len(rows), N]: ``u·v`` plus
    its learned repeat term where the model has one (``PhoenixRetriever.history_repeats``)."""
    scores = user_vectors(model, seqs, rows, batch_size) @ np.asarray(items_nd).T
    if not model.config.repeat_logit:
        return scores
    post = seqs.catalogue.post_hashes.astype(np.int32)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        repeats = np.asarray(_history_repeats(model, seqs.batch(chunk, batch_size), post))[: len(chunk)]
        scores[start : start + len(chunk)] += repeats
    return scores


def popularity_scores(seqs: EngagementSequences) -> np.ndarray:
    """Training-positive count per catalogue item, f32 [N]."""
    _, items = seqs.retrieval_pairs(Split.TRAIN)
    return np.bincount(items, minlength=seqs.num_items).astype(np.float32)


def rank_targets(
    seqs: EngagementSequences,
    split: Split | str,
    score_rows,
    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS,
    chunk: int = 512,
    catalogue_window_s: float | None = None,
    bootstrap: Bootstrap | None = None,
) -> dict[str, float]:
    """Metrics of ``score_rows(rows) -> [len(rows), N]`` over a split's held-out targets, unmasked and masked.

    With ``catalogue_window_s`` the catalogue of each row is the items created in the window before
    its request (a feed's recent posts) in both views; otherwise it is every item. With ``bootstrap``
    also ``num_users`` and the intervals of ``INTERVAL_METRICS`` (``user_intervals``).
    """
    rows, items = seqs.retrieval_pairs(split)
    earlier = interacted(seqs, split)
    plain, masked, repeats = [], [], []
    for start in range(0, len(rows), chunk):
        r, t = rows[start : start + chunk], items[start : start + chunk]
        scores = score_rows(r)
        seen = seen_mask(seqs, split, r, earlier)
        seen[np.arange(len(t)), t] = False
        out_of_window = ineligible_mask(seqs, r, catalogue_window_s) if catalogue_window_s else np.zeros_like(seen)
        out_of_window[np.arange(len(t)), t] = False
        plain.append(target_ranks(scores, t, out_of_window))
        masked.append(target_ranks(scores, t, seen | out_of_window))
        repeats.append(_seen_share(scores, seen, out_of_window, SEEN_SHARE_K))
    plain_r = np.concatenate(plain) if plain else np.zeros(0)
    masked_r = np.concatenate(masked) if masked else np.zeros(0)
    out = ranking_metrics(plain_r, cutoffs)
    out[f"seen_share@{SEEN_SHARE_K}"] = float(np.concatenate(repeats).mean()) if repeats else float("nan")
    out.update({f"masked_{k}": v for k, v in ranking_metrics(masked_r, cutoffs).items()})
    out["num_targets"] = float(len(rows))
    if bootstrap is not None:
        users = seqs.examples.user_idx[rows]
        out["num_users"] = float(len(np.unique(users)))
        out.update(user_intervals({"": plain_r, "masked_": masked_r}, users, bootstrap))
    return out


def _seen_share(scores: np.ndarray, seen: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
    """Per row: the share of the unmasked top ``k`` (``excluded`` items left out) that the user
    already interacted with (``seen``; the target is never counted, nor an excluded item that fills a
    row with fewer than ``k`` eligible ones)."""
    s = np.where(excluded, -np.inf, scores)
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return np.take_along_axis(seen & ~excluded, top, axis=1).mean(axis=1)


def user_intervals(
    ranks_by_prefix: dict[str, np.ndarray],
    users_t: np.ndarray,
    bootstrap: Bootstrap,
    metrics: tuple[str, ...] = INTERVAL_METRICS,
) -> dict[str, float]:
    """``<prefix><metric>_ci_low`` / ``_ci_high`` for each {prefix: 0-based target ranks [T]} and metric;
    the targets' users ``users_t`` [T] are resampled (the same draws for every prefix)."""
    cutoffs = tuple(sorted({int(m.split("@")[1]) for m in metrics}))
    out = {}
    for prefix, ranks_t in ranks_by_prefix.items():
        per_target = per_target_metrics(ranks_t, cutoffs)
        low_m, high_m = bootstrap_interval(np.stack([per_target[m] for m in metrics], axis=1), users_t, bootstrap)
        for m, low, high in zip(metrics, low_m, high_m):
            out[f"{prefix}{m}_ci_low"], out[f"{prefix}{m}_ci_high"] = float(low), float(high)
    return out


def evaluate_retrieval(
    model: PhoenixRetriever,
    seqs: EngagementSequences,
    split: Split | str = Split.TEST,
    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS,
    batch_size: int = 256,
    catalogue_window_s: float | None = None,
    bootstrap: Bootstrap | None = None,
) -> dict[str, float]:
    """HR/NDCG/MRR@k of the retriever over the full catalogue on ``split`` (see module docstring)."""
    items_nd = item_vectors(model, seqs)
    return rank_targets(
        seqs,
        split,
        lambda r: user_scores(model, seqs, r, items_nd, batch_size),
        cutoffs,
        catalogue_window_s=catalogue_window_s,
        bootstrap=bootstrap,
    )


def evaluate_popularity(
    seqs: EngagementSequences,
    split: Split | str = Split.TEST,
    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS,
    catalogue_window_s: float | None = None,
    bootstrap: Bootstrap | None = None,
) -> dict[str, float]:
    """The same metrics for the popularity baseline (ties broken by catalogue index)."""
    pop_n = popularity_scores(seqs)
    return rank_targets(
        seqs,
        split,
        lambda r: np.broadcast_to(pop_n, (len(r), len(pop_n))),
        cutoffs,
        catalogue_window_s=catalogue_window_s,
        bootstrap=bootstrap,
    )
