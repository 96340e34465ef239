"""Hard negatives for the ranker: the items the retriever ranks highest for an example's user that the
user never interacted with.

A ranker trained against uniform random negatives learns to tell a watched item from an arbitrary one,
which the retriever already does; in the two-stage pipeline it ranks the retriever's top items, so it is
trained on those (``TrainConfig.hard_negative_pool``). An item the user interacted with in the training
split, before or after the example, is never a negative: the pool excludes it before sampling.
"""

from __future__ import annotations

import numpy as np

from x_reco.common.actions import NUM_ACTIONS
from x_reco.data.batches import NEGATIVE_COLUMNS
from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.heldout import UserItems, ineligible_mask, interacted
from x_reco.eval.retrieval import item_vectors, user_scores
from x_reco.models.retriever import PhoenixRetriever
from x_reco.training.config import TrainConfig


def retriever_pools(
    retriever: PhoenixRetriever,
    seqs: EngagementSequences,
    rows: np.ndarray,
    pool: int,
    batch_size: int = 256,
    exclude: UserItems | None = None,
    catalogue_window_s: float | None = None,
) -> np.ndarray:
    """int32 [len(rows), pool]: each example row's top-``pool`` catalogue items by retriever score, best
    first, among the items its user never interacted with in the training split (``exclude``) and,
    with ``catalogue_window_s``, that were created in that window before the row's request; -1 past
    the last eligible item where a row has fewer (a recency window early in a world's life).

    Held-out interactions are not excluded: a pool that left out exactly the items a user engages
    with later would teach the ranker that the one top item never shown as a negative is the next
    one, a leak that inflates validation and test.
    """
    exclude = interacted(seqs, Split.VAL) if exclude is None else exclude
    items_nd = item_vectors(retriever, seqs)
    pool = min(pool, seqs.num_items)
    out = np.empty((len(rows), pool), np.int32)
    for start in range(0, len(rows), batch_size):
        r = rows[start : start + batch_size]
        scores = user_scores(retriever, seqs, r, items_nd, batch_size)
        scores[exclude.dense(seqs.examples.user_idx[r])] = -np.inf
        if catalogue_window_s:
            scores[ineligible_mask(seqs, r, catalogue_window_s)] = -np.inf
        top = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top[~np.isfinite(np.take_along_axis(scores, top, axis=1))] = -1  # fewer eligible items than ``pool``
        out[start : start + batch_size] = top
    return out


def sample_from_pools(pools_rk: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """int32 [R, num]: ``num`` distinct items per row drawn uniformly from its pool's items (entries
    >= 0); -1 for the draws past the size of a short pool."""
    if num > pools_rk.shape[1]:
        raise ValueError(f"cannot draw {num} distinct negatives from pools of {pools_rk.shape[1]}")
    keys = rng.random(pools_rk.shape)
    keys[pools_rk < 0] = np.inf  # a short pool's padding is drawn last, and stays -1
    pick = np.argpartition(keys, num - 1, axis=1)[:, :num] if num else np.zeros((len(pools_rk), 0), np.int64)
    return np.take_along_axis(pools_rk, pick, axis=1).astype(np.int32)


class HardNegativeBatches:
    """``make_batch`` of a ranker trained on hard negatives, drawn fresh each step (seeded by step) from
    the retriever's top ``cfg.hard_negative_pool`` items of the example's user that the user never
    interacted with (and, with ``cfg.negative_window_s``, that a feed could serve at the request time).

    The sampled slots of an example (per-event datasets) are refilled with them, and
    ``cfg.hard_negative_count`` more are appended to every example (datasets of served impressions,
    which have no sampled slots). Their labels are all-zero with the negative actions unobserved, as
    for any never-shown candidate.
    """

    def __init__(self, seqs: EngagementSequences, rows: np.ndarray, cfg: TrainConfig, retriever: PhoenixRetriever):
        self.seqs, self.rows, self.cfg = seqs, rows, cfg
        self.sampled = seqs.candidates.sampled[rows]
        pooled = self.sampled.any(axis=1) | (cfg.hard_negative_count > 0)
        window = cfg.negative_window_s
        self.pools = retriever_pools(retriever, seqs, rows[pooled], cfg.hard_negative_pool, catalogue_window_s=window)
        self.pool_of = np.full(len(rows), -1, np.int64)
        self.pool_of[pooled] = np.arange(len(self.pools))

    def items(self, pos: np.ndarray, step: int) -> np.ndarray:
        """int32 [len(pos), C + hard_negative_count]: the candidates of train rows ``pos`` at ``step`` (-1 padding)."""
        items = self.seqs.candidates.item_idx[self.rows[pos]].copy()
        c, extra = items.shape[1], self.cfg.hard_negative_count
        items = np.concatenate([items, np.full((len(pos), extra), -1, np.int32)], axis=1)
        slots = np.concatenate([self.sampled[pos], np.ones((len(pos), extra), bool)], axis=1)
        has = self.pool_of[pos] >= 0
        if has.any():
            rng = np.random.default_rng([self.cfg.seed, 0x4E, step])
            draws = sample_from_pools(self.pools[self.pool_of[pos][has]], min(c + extra, self.pools.shape[1]), rng)
            fill, take = items[has], slots[has]
            # the k-th hard slot of a row takes its k-th draw (distinct within the row)
            rank = np.cumsum(take, axis=1) - 1
            fill[take] = np.take_along_axis(draws, np.minimum(rank, draws.shape[1] - 1), axis=1)[take]
            items[has] = fill
        return items

    def __call__(self, pos: np.ndarray, step: int):
        r, items, b = self.rows[pos], self.items(pos, step), self.cfg.batch_size
        batch = self.seqs.catalogue_batch(r, np.maximum(items, 0), b)
        real = np.zeros((b, items.shape[1]), bool)
        real[: len(r)] = items >= 0
        batch = batch.replace(
            candidate_post_hashes=batch.candidate_post_hashes * real[..., None],
            candidate_author_hashes=batch.candidate_author_hashes * real[..., None],
        )
        labels = self.seqs.labels(r, b, True)
        extra = self.cfg.hard_negative_count
        if extra:
            mask = np.broadcast_to(self.seqs.observed_mask.astype(np.float32), (b, extra, NUM_ACTIONS)).copy()
            mask[..., NEGATIVE_COLUMNS] = 0.0
            labels = labels.replace(
                candidate_actions=np.concatenate(
                    [labels.candidate_actions, np.zeros((b, extra, NUM_ACTIONS), np.float32)], 1
                ),
                label_mask=np.concatenate([labels.label_mask, mask], 1),
            )
        # a slot a short pool left empty (-1) is padding: no hashes, no label
        return batch, labels.replace(candidate_mask=real)
