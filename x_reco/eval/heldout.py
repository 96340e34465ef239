"""Held-out example helpers: which items each user has already seen, and sampled negatives.

"Seen" items of an evaluation row are the user's items in every earlier split (train for val; train
and val for test; all interacted, non-sampled candidates) plus the row's own history.
"""

from __future__ import annotations

import numpy as np

from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.registry import ExampleKind, dataset_spec


class UserItems:
    """Per-user sorted item lists (CSR) built from (user, item) pairs."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int):
        keys = np.unique(users.astype(np.int64) * num_items + items.astype(np.int64))
        self.num_items = num_items
        self.keys = keys
        self.indptr = np.searchsorted(keys // num_items, np.arange(num_users + 1))
        self.items = (keys % num_items).astype(np.int64)

    def dense(self, users: np.ndarray) -> np.ndarray:
        """bool [len(users), N]: True at each user's items."""
        out = np.zeros((len(users), self.num_items), bool)
        for i, u in enumerate(users):
            out[i, self.items[self.indptr[u] : self.indptr[u + 1]]] = True
        return out

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.num_items + items.astype(np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        return (self.keys[pos] == keys) if len(self.keys) else np.zeros(keys.shape, bool)


def interacted(seqs: EngagementSequences, before: Split | str | None = None) -> UserItems:
    """Items each user interacted with (non-sampled, valid candidates), in splits before ``before``
    (every split when None)."""
    split = seqs.examples.split
    rows = np.arange(len(split)) if before is None else np.flatnonzero(split < Split.parse(before))
    cand = seqs.candidates.item_idx[rows]
    real = (cand >= 0) & ~seqs.candidates.sampled[rows]
    users = np.broadcast_to(seqs.examples.user_idx[rows][:, None], cand.shape)[real]
    return UserItems(users, cand[real], len(seqs.catalogue.user_ids), seqs.num_items)


def seen_mask(
    seqs: EngagementSequences, split: Split | str, rows: np.ndarray, earlier: UserItems | None = None
) -> np.ndarray:
    """bool [len(rows), N]: items seen before ``split`` by each row's user, plus the row's history."""
    if earlier is None:
        earlier = interacted(seqs, split)
    mask = earlier.dense(seqs.examples.user_idx[rows])
    hist = seqs.history.item_idx[rows]
    r, s = np.nonzero(hist >= 0)
    mask[r, hist[r, s]] = True
    return mask


def ineligible_mask(seqs: EngagementSequences, rows: np.ndarray, window_s: float) -> np.ndarray:
    """bool [len(rows), N]: items a feed could not serve at the row's request time.

    A feed serves recent posts: an item is eligible iff it was created in
    ``[request_ts - window_s, request_ts]``.
    """
    return window_ineligible(seqs.catalogue.item_created_ts[None, :], seqs.examples.request_ts[rows][:, None], window_s)


def window_ineligible(created_ts: np.ndarray, t: np.ndarray | int, window_s: float) -> np.ndarray:
    """True where an item created at ``created_ts`` is outside ``[t - window_s, t]`` (broadcasting);
    the one eligibility rule of evaluation and of the served feed's retrieval."""
    return (created_ts > t) | (created_ts < t - window_s)


def with_sampled_negatives(seqs: EngagementSequences, split: Split | str, seed: int = 0) -> EngagementSequences:
    """The ``split`` rows of a per-event dataset with empty candidate slots filled by negatives.

    Negatives are uniform over items the user never interacted with in any split (the rule the
    training rows use), labelled all-zero and flagged ``sampled``. Per-request datasets already
    carry real unengaged impressions and are returned restricted to the split, unchanged.
    """
    out = seqs.split_view(split)  # boolean indexing: the per-example arrays are copies
    if dataset_spec(seqs.partition).example_kind != ExampleKind.PER_EVENT:
        return out
    c = out.candidates
    r, s = np.nonzero(c.item_idx < 0)
    users = out.examples.user_idx[r]
    seen = interacted(seqs)
    rng = np.random.default_rng([seed, 2])
    draws = rng.integers(0, seqs.num_items, size=len(r))
    bad = seen.contains(users, draws)
    while bad.any():
        draws[bad] = rng.integers(0, seqs.num_items, size=int(bad.sum()))
        bad = seen.contains(users, draws)
    c.item_idx[r, s] = draws
    c.post_hashes[r, s] = seqs.catalogue.post_hashes[draws]
    c.author_hashes[r, s] = seqs.catalogue.author_hashes[draws]
    c.actions[r, s] = 0
    c.sampled[r, s] = True
    return out
