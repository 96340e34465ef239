"""Held-out example helpers: which items each user has already seen, and sampled negatives.

"Seen" items of an evaluation row are the user's items in every earlier split (train for val; train
and val for test; all interacted, non-sampled candidates) plus the row's own history.
"""

from __future__ import annotations

import numpy as np

from x_reco.data.sequences import PER_EVENT, SPLIT_CODES, split_view


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


def interacted(seqs: dict[str, np.ndarray], max_split: int | None = None) -> UserItems:
    """Items each user interacted with (non-sampled, valid candidates) in splits <= ``max_split``."""
    rows = np.arange(len(seqs["split"])) if max_split is None else np.flatnonzero(seqs["split"] <= max_split)
    cand = seqs["cand_item_idx"][rows]
    real = (cand >= 0) & ~seqs["cand_sampled"][rows]
    users = np.broadcast_to(seqs["user_idx"][rows][:, None], cand.shape)[real]
    return UserItems(users, cand[real], len(seqs["user_ids"]), len(seqs["item_ids"]))


def seen_mask(
    seqs: dict[str, np.ndarray], split: str, rows: np.ndarray, earlier: UserItems | None = None
) -> np.ndarray:
    """bool [len(rows), N]: items seen before ``split`` by each row's user, plus the row's history."""
    if earlier is None:
        earlier = interacted(seqs, SPLIT_CODES[split] - 1)
    mask = earlier.dense(seqs["user_idx"][rows])
    hist = seqs["hist_item_idx"][rows]
    r, s = np.nonzero(hist >= 0)
    mask[r, hist[r, s]] = True
    return mask


def ineligible_mask(seqs: dict[str, np.ndarray], rows: np.ndarray, window_s: float) -> np.ndarray:
    """bool [len(rows), N]: items a feed could not serve at the row's request time.

    A feed serves recent posts: an item is eligible iff it was created in
    ``[request_ts - window_s, request_ts]``.
    """
    created = seqs["item_created_ts"][None, :]
    t = seqs["request_ts"][rows][:, None]
    return (created > t) | (created < t - window_s)


def with_sampled_negatives(seqs: dict[str, np.ndarray], split: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The ``split`` rows of a per-event dataset with empty candidate slots filled by negatives.

    Negatives are uniform over items the user never interacted with in any split (the rule the
    training rows use), labelled all-zero and flagged ``cand_sampled``. Per-request datasets already
    carry real unengaged impressions and are returned restricted to the split, unchanged.
    """
    out = split_view(seqs, split)  # boolean indexing: the per-example arrays are copies
    if str(seqs["partition"]) not in PER_EVENT:
        return out
    cand = out["cand_item_idx"]
    r, s = np.nonzero(cand < 0)
    users = out["user_idx"][r]
    seen = interacted(seqs)
    rng = np.random.default_rng([seed, 2])
    draws = rng.integers(0, len(seqs["item_ids"]), size=len(r))
    bad = seen.contains(users, draws)
    while bad.any():
        draws[bad] = rng.integers(0, len(seqs["item_ids"]), size=int(bad.sum()))
        bad = seen.contains(users, draws)
    cand[r, s] = draws
    out["cand_post_hashes"][r, s] = seqs["item_post_hashes"][draws]
    out["cand_author_hashes"][r, s] = seqs["item_author_hashes"][draws]
    out["cand_actions"][r, s] = 0
    out["cand_sampled"][r, s] = True
    return out
