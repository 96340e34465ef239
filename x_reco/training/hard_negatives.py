"""Hard negatives for the ranker: the items the retriever ranks highest for an example's user that the
user never interacted with.

A ranker trained against uniform random negatives learns to tell a watched item from an arbitrary one,
which the retriever already does; in the two-stage pipeline it ranks the retriever's top items, so it is
trained on those (``TrainConfig.hard_negative_pool``). An item the user interacted with in the training
split, before or after the example, is never a negative: the pool excludes it before sampling.
"""

from __future__ import annotations

import numpy as np

from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.heldout import UserItems, ineligible_mask, interacted
from x_reco.eval.retrieval import item_vectors, user_vectors
from x_reco.models.retriever import PhoenixRetriever


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
    with ``catalogue_window_s``, that were created in that window before the row's request.

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
        scores = user_vectors(retriever, seqs, r, batch_size) @ items_nd.T
        scores[exclude.dense(seqs.examples.user_idx[r])] = -np.inf
        if catalogue_window_s:
            scores[ineligible_mask(seqs, r, catalogue_window_s)] = -np.inf
        top = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + batch_size] = np.take_along_axis(top, order, axis=1)
        if not np.isfinite(np.take_along_axis(scores, top, axis=1)).all():
            raise ValueError(
                f"a user among example rows {r[0]}..{r[-1]} has fewer than {pool} unseen items"
                + (f" in the {catalogue_window_s} s window" if catalogue_window_s else "")
            )
    return out


def sample_from_pools(pools_rk: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """int32 [R, num]: ``num`` distinct items per row drawn uniformly from its pool."""
    if num > pools_rk.shape[1]:
        raise ValueError(f"cannot draw {num} distinct negatives from pools of {pools_rk.shape[1]}")
    keys = rng.random(pools_rk.shape)
    pick = np.argpartition(keys, num - 1, axis=1)[:, :num] if num else np.zeros((len(pools_rk), 0), np.int64)
    return np.take_along_axis(pools_rk, pick, axis=1).astype(np.int32)
