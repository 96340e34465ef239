"""Batches for training and evaluation, cut from the engagement-sequence arrays (host side, numpy)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from flax import struct

from x_reco.common.actions import ACTION_INDEX, NEGATIVE_ACTIONS
from x_reco.common.types import RecsysBatch
from x_reco.data.sequences import SPLIT_CODES

NEGATIVE_COLUMNS = np.array([ACTION_INDEX[a] for a in NEGATIVE_ACTIONS])


@struct.dataclass
class RankerLabels:
    """Labels travelling with a ranker batch (a pytree, so it can enter a jitted step)."""

    candidate_actions: np.ndarray  # [B, C, A] float32 in {0, 1}
    label_mask: np.ndarray  # [B, C, A] float32: 1 where the label is observed (dataset columns)
    candidate_mask: np.ndarray  # [B, C] bool: real candidates
    row_mask: np.ndarray  # [B] bool: real examples (the last batch is padded with empty rows)


def split_rows(seqs: dict[str, np.ndarray], split: str) -> np.ndarray:
    return np.flatnonzero(seqs["split"] == SPLIT_CODES[split])


def make_batch(seqs: dict[str, np.ndarray], rows: np.ndarray, batch_size: int | None = None) -> RecsysBatch:
    """RecsysBatch for the given example rows, padded with empty rows up to ``batch_size``."""
    pad = 0 if batch_size is None else batch_size - len(rows)
    if pad < 0:
        raise ValueError(f"{len(rows)} rows do not fit in batch_size {batch_size}")

    def take(name, dtype):
        arr = seqs[name][rows].astype(dtype)
        if pad:
            arr = np.concatenate([arr, np.zeros((pad,) + arr.shape[1:], dtype)], axis=0)
        return arr

    return RecsysBatch(
        user_hashes=take("user_hashes", np.int32),
        history_post_hashes=take("hist_post_hashes", np.int32),
        history_author_hashes=take("hist_author_hashes", np.int32),
        history_actions=take("hist_actions", np.float32),
        history_product_surface=take("hist_surface", np.int32),
        candidate_post_hashes=take("cand_post_hashes", np.int32),
        candidate_author_hashes=take("cand_author_hashes", np.int32),
        candidate_product_surface=np.broadcast_to(
            take("surface", np.int32)[:, None], (len(rows) + pad, seqs["cand_post_hashes"].shape[1])
        ).copy(),
    )


def make_labels(
    seqs: dict[str, np.ndarray],
    rows: np.ndarray,
    batch_size: int | None = None,
    mask_sampled_negative_actions: bool = False,
) -> RankerLabels:
    """Labels of example ``rows`` padded to ``batch_size``.

    The label mask is the dataset's observed columns for every candidate. With
    ``mask_sampled_negative_actions`` the negative-action columns of sampled (never shown)
    candidates are unobserved too, so ``p(not_interested)`` is learned from real interactions only
    instead of reading 0 on every random negative (the spec's "all-zero row" default).
    """
    b = len(rows) if batch_size is None else batch_size
    c = seqs["cand_post_hashes"].shape[1]
    acts = np.zeros((b, c, seqs["cand_actions"].shape[2]), np.float32)
    acts[: len(rows)] = seqs["cand_actions"][rows]
    cmask = np.zeros((b, c), bool)
    cmask[: len(rows)] = seqs["cand_post_hashes"][rows, :, 0] != 0
    rmask = np.zeros(b, bool)
    rmask[: len(rows)] = True
    lmask = np.broadcast_to(seqs["observed_mask"].astype(np.float32), acts.shape).copy()
    if mask_sampled_negative_actions:
        sampled = np.zeros((b, c), bool)
        sampled[: len(rows)] = seqs["cand_sampled"][rows]
        lmask[..., NEGATIVE_COLUMNS] *= ~sampled[..., None]
    return RankerLabels(acts, lmask, cmask, rmask)


def ranker_batches(
    seqs: dict[str, np.ndarray], split: str, batch_size: int, seed: int, epoch: int, shuffle: bool = True
) -> Iterator[tuple[RecsysBatch, RankerLabels]]:
    """Fixed-shape batches over one split; order seeded by (seed, epoch); the last batch is padded."""
    rows = split_rows(seqs, split)
    if shuffle:
        rows = np.random.default_rng([seed, epoch]).permutation(rows)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        yield make_batch(seqs, chunk, batch_size), make_labels(seqs, chunk, batch_size)


def retrieval_pairs(seqs: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(example row, catalogue item) for every engaged, non-sampled candidate of a split.

    Engaged = any observed action other than the four negative ones.
    """
    rows = split_rows(seqs, split)
    acts = seqs["cand_actions"][rows].astype(bool)
    observed = seqs["observed_mask"].astype(bool).copy()
    observed[NEGATIVE_COLUMNS] = False
    positive = acts[:, :, observed].any(axis=2) & (seqs["cand_item_idx"][rows] >= 0)
    positive &= ~seqs["cand_sampled"][rows]
    ex, slot = np.nonzero(positive)
    return rows[ex], seqs["cand_item_idx"][rows[ex], slot]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


@struct.dataclass
class RetrievalBatch:
    """(user, positive item) pairs: the item is the batch's only candidate (C = 1)."""

    batch: RecsysBatch  # user and history of each pair's example row; candidate = the positive
    item_b: np.ndarray  # [B] int32 catalogue index of the positive (0 in padded rows)
    row_mask_b: np.ndarray  # [B] bool: real pairs
    request_b: np.ndarray  # [B] int32 request time of the pair's example (``training_times``; 0 if unused)


def training_times(seqs: dict[str, np.ndarray], window_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(request time per example [E], creation time per item [N], window) as int32 seconds.

    Times are shifted to the earliest request and creation times are clipped to just outside the
    span any request can see, so the int32 comparisons of ``losses.eligible_in_window`` give
    exactly the eligibility of ``x_reco.eval.heldout.ineligible_mask`` on the int64 originals.
    """
    request, created = seqs["request_ts"].astype(np.int64), seqs["item_created_ts"].astype(np.int64)
    window = int(np.floor(window_s))  # integer times: created >= t - w  <=>  created >= t - floor(w)
    lo, hi = int(request.min()), int(request.max())
    if hi - lo + window + 2 >= 2**31:
        raise ValueError(f"request times span {hi - lo} s plus a {window} s window: too wide for int32 seconds")
    created = np.clip(created, lo - window - 1, hi + 1)
    return (request - lo).astype(np.int32), (created - lo).astype(np.int32), window


def make_retrieval_batch(
    seqs: dict[str, np.ndarray],
    rows: np.ndarray,
    items: np.ndarray,
    batch_size: int | None = None,
    request_times: np.ndarray | None = None,
) -> RetrievalBatch:
    """RetrievalBatch for example ``rows`` paired with catalogue ``items``, padded to ``batch_size``.

    ``request_times`` ([E] int32, from ``training_times``) fills ``request_b``; zeros without it.
    """
    batch = make_batch(seqs, rows, batch_size)
    b = batch.batch_size
    item_b = np.zeros(b, np.int32)
    item_b[: len(rows)] = items
    request_b = np.zeros(b, np.int32)
    if request_times is not None:
        request_b[: len(rows)] = request_times[rows]
    row_mask = np.arange(b) < len(rows)
    post = seqs["item_post_hashes"][item_b].astype(np.int32) * row_mask[:, None]
    author = seqs["item_author_hashes"][item_b].astype(np.int32) * row_mask[:, None]
    batch = batch.replace(
        candidate_post_hashes=post[:, None, :],
        candidate_author_hashes=author[:, None, :],
        candidate_product_surface=batch.candidate_product_surface[:, :1],
    )
    return RetrievalBatch(batch, item_b, row_mask, request_b)


def step_chunk(num: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Positions (into a pool of ``num`` examples) of global training step ``step``.

    Epoch ``e = step // steps_per_epoch`` visits the pool in the order ``permutation(Generator([seed,
    e]))``; the last chunk of an epoch may be short (the batch is padded). A pure function of the
    step, so a resumed run sees exactly the batches an uninterrupted run would.
    """
    spe = steps_per_epoch(num, batch_size)
    order = np.random.default_rng([seed, step // spe]).permutation(num)
    start = (step % spe) * batch_size
    return order[start : start + batch_size]
