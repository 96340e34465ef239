"""Host-side (numpy) batches cut from engagement sequences: the one place training, evaluation and
serving benchmarks build ``RecsysBatch``es, ranker labels and retrieval pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from flax import struct

from x_reco.common.actions import ACTION_INDEX, NEGATIVE_ACTIONS
from x_reco.common.types import RecsysBatch

if TYPE_CHECKING:
    from x_reco.data.examples import EngagementSequences, Split

NEGATIVE_COLUMNS = np.array([ACTION_INDEX[a] for a in NEGATIVE_ACTIONS])


@struct.dataclass
class RankerLabels:
    """Labels travelling with a ranker batch (a pytree, so it can enter a jitted step)."""

    candidate_actions: np.ndarray  # [B, C, A] float32 in {0, 1}
    label_mask: np.ndarray  # [B, C, A] float32: 1 where the label is observed (dataset columns)
    candidate_mask: np.ndarray  # [B, C] bool: real candidates
    row_mask: np.ndarray  # [B] bool: real examples (the last batch is padded with empty rows)


@struct.dataclass
class RetrievalBatch:
    """(user, positive item) pairs: the item is the batch's only candidate (C = 1)."""

    batch: RecsysBatch  # user and history of each pair's example row; candidate = the positive
    item_b: np.ndarray  # [B] int32 catalogue index of the positive (0 in padded rows)
    row_mask_b: np.ndarray  # [B] bool: real pairs
    request_b: np.ndarray  # [B] int32 request time of the pair's example (``training_times``; 0 if unused)
    # the causal objective (``next_items``), else None: what each prefix position predicts, and when
    next_item_bp: np.ndarray | None = None  # [B, 1+S] int32 catalogue index, -1 where nothing is predicted
    next_request_bp: np.ndarray | None = None  # [B, 1+S] int32 time of that next event (``training_times``)
    dropout_seed_b: np.ndarray | None = None  # [B] uint32 seed of each row's dropout mask (training with dropout)


def _padded(arr: np.ndarray, dtype, size: int) -> np.ndarray:
    """``arr`` as ``dtype`` with zero rows appended up to ``size`` rows."""
    arr = arr.astype(dtype)
    pad = size - len(arr)
    if pad < 0:
        raise ValueError(f"{len(arr)} rows do not fit in batch_size {size}")
    return np.concatenate([arr, np.zeros((pad,) + arr.shape[1:], dtype)], axis=0) if pad else arr


def _request(seqs: EngagementSequences, rows: np.ndarray, b: int) -> dict[str, np.ndarray]:
    """The user and history fields of a RecsysBatch for example ``rows``, padded to ``b`` rows."""
    h = seqs.history
    return {
        "user_hashes": _padded(seqs.examples.user_hashes[rows], np.int32, b),
        "history_post_hashes": _padded(h.post_hashes[rows], np.int32, b),
        "history_author_hashes": _padded(h.author_hashes[rows], np.int32, b),
        "history_actions": _padded(h.actions[rows], np.float32, b),
        "history_product_surface": _padded(h.surface[rows], np.int32, b),
    }


def example_batch(seqs: EngagementSequences, rows: np.ndarray, batch_size: int | None = None) -> RecsysBatch:
    """RecsysBatch of example ``rows`` and their own candidates, padded with empty rows to ``batch_size``."""
    b = len(rows) if batch_size is None else batch_size
    c = seqs.candidates
    surface = _padded(seqs.examples.surface[rows], np.int32, b)
    return RecsysBatch(
        **_request(seqs, rows, b),
        candidate_post_hashes=_padded(c.post_hashes[rows], np.int32, b),
        candidate_author_hashes=_padded(c.author_hashes[rows], np.int32, b),
        candidate_product_surface=np.broadcast_to(surface[:, None], (b, c.post_hashes.shape[1])).copy(),
    )


def catalogue_batch(
    seqs: EngagementSequences, rows: np.ndarray, items: np.ndarray, batch_size: int | None = None
) -> RecsysBatch:
    """RecsysBatch of example ``rows``' users and histories with catalogue ``items`` [R, K] as candidates.

    Serving-shaped: every candidate is a catalogue item on the row's surface; padded rows are empty.
    """
    b = len(rows) if batch_size is None else batch_size
    items = np.asarray(items)
    valid = (np.arange(b) < len(rows))[:, None, None]
    padded_items = _padded(items, np.int64, b)
    cat = seqs.catalogue
    surface = _padded(seqs.examples.surface[rows], np.int32, b)
    return RecsysBatch(
        **_request(seqs, rows, b),
        candidate_post_hashes=(cat.post_hashes[padded_items] * valid).astype(np.int32),
        candidate_author_hashes=(cat.author_hashes[padded_items] * valid).astype(np.int32),
        candidate_product_surface=np.repeat(surface[:, None], items.shape[1], axis=1),
    )


def ranker_labels(
    seqs: EngagementSequences,
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
    c = seqs.candidates
    acts = _padded(c.actions[rows], np.float32, b)
    cmask = _padded(c.post_hashes[rows, :, 0] != 0, bool, b)
    rmask = np.arange(b) < len(rows)
    lmask = np.broadcast_to(seqs.observed_mask.astype(np.float32), acts.shape).copy()
    if mask_sampled_negative_actions:
        sampled = _padded(c.sampled[rows], bool, b)
        lmask[..., NEGATIVE_COLUMNS] *= ~sampled[..., None]
    return RankerLabels(acts, lmask, cmask, rmask)


def retrieval_pairs(seqs: EngagementSequences, split: Split | str) -> tuple[np.ndarray, np.ndarray]:
    """(example row, catalogue item) for every engaged, non-sampled candidate of a split.

    Engaged = any observed action other than the four negative ones.
    """
    rows = seqs.rows(split)
    c = seqs.candidates
    observed = seqs.observed_mask.astype(bool).copy()
    observed[NEGATIVE_COLUMNS] = False
    positive = c.actions[rows].astype(bool)[:, :, observed].any(axis=2) & (c.item_idx[rows] >= 0)
    positive &= ~c.sampled[rows]
    ex, slot = np.nonzero(positive)
    return rows[ex], c.item_idx[rows[ex], slot]


def training_times(seqs: EngagementSequences, window_s: float) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(request time per example [E], creation time per item [I], window, history event times [E, S])
    as int32 seconds.

    Times are shifted to the earliest request or history event, and creation times are clipped to
    just outside the span any of them can see, so int32 comparisons
    (``models.losses.eligible_in_window``) give exactly the eligibility of
    ``x_reco.eval.heldout.ineligible_mask`` on the int64 originals. History times (the causal
    objective's targets) are 0 at padded slots.
    """
    request = seqs.examples.request_ts.astype(np.int64)
    hist_ts = seqs.history.ts.astype(np.int64)
    hist_valid = np.arange(hist_ts.shape[1])[None, :] < seqs.history.length[:, None]
    created = seqs.catalogue.item_created_ts.astype(np.int64)
    window = int(np.floor(window_s))  # integer times: created >= t - w  <=>  created >= t - floor(w)
    lo = int(min(request.min(), hist_ts[hist_valid].min(initial=request.min())))
    hi = int(request.max())
    if hi - lo + window + 2 >= 2**31:
        raise ValueError(f"request times span {hi - lo} s plus a {window} s window: too wide for int32 seconds")
    created = np.clip(created, lo - window - 1, hi + 1)
    history = np.where(hist_valid, hist_ts - lo, 0).astype(np.int32)
    return (request - lo).astype(np.int32), (created - lo).astype(np.int32), window, history


def next_items(seqs: EngagementSequences, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What each prefix position of (example ``rows``, ``items``) pairs predicts under the causal objective.

    Returns ``(item [R, 1+S] int32, slot [R, 1+S] int32)``. Position 0 (the user) predicts the first
    history item, position p the history item after slot p-1, and position L (the last valid one, L
    history items) the pair's own item; positions after L predict nothing (-1). ``slot`` says where
    the predicted event sits: history slot p for p < L, ``S`` (the request itself) at L, -1 after.
    The item a position predicts is never among its inputs: position p sees history slots < p.
    """
    rows, items = np.asarray(rows), np.asarray(items)
    h = seqs.history
    s = h.item_idx.shape[1]
    length = h.length[rows].astype(np.int64)
    cols = np.arange(s + 1)[None, :]
    item = np.concatenate([h.item_idx[rows], np.full((len(rows), 1), -1, np.int32)], axis=1)
    slot = np.broadcast_to(cols, item.shape).astype(np.int32).copy()
    at_end = cols == length[:, None]
    item = np.where(at_end, items[:, None], item)
    slot[at_end] = s
    after = cols > length[:, None]
    item[after], slot[after] = -1, -1
    return item.astype(np.int32), slot


def retrieval_batch(
    seqs: EngagementSequences,
    rows: np.ndarray,
    items: np.ndarray,
    batch_size: int | None = None,
    request_times: np.ndarray | None = None,
    causal: bool = False,
    history_times: np.ndarray | None = None,
) -> RetrievalBatch:
    """RetrievalBatch for example ``rows`` paired with catalogue ``items``, padded to ``batch_size``.

    ``request_times`` ([E] int32, from ``training_times``) fills ``request_b``; zeros without it.
    With ``causal`` the batch also says what every prefix position predicts (``next_items``) and, with
    ``history_times`` ([E, S] int32, ``training_times``' last array), when.
    """
    batch = catalogue_batch(seqs, rows, np.asarray(items)[:, None], batch_size)
    b = batch.batch_size
    item_b = _padded(np.asarray(items), np.int32, b)
    request_b = np.zeros(b, np.int32)
    if request_times is not None:
        request_b[: len(rows)] = request_times[rows]
    out = RetrievalBatch(batch, item_b, np.arange(b) < len(rows), request_b)
    if not causal:
        return out
    nxt, slot = next_items(seqs, rows, items)
    next_item = np.full((b, nxt.shape[1]), -1, np.int32)
    next_item[: len(rows)] = nxt
    next_request = np.zeros((b, nxt.shape[1]), np.int32)
    if request_times is not None and history_times is not None:
        times = np.concatenate([history_times[rows], request_times[rows][:, None]], axis=1)
        next_request[: len(rows)] = np.take_along_axis(times, np.maximum(slot, 0), axis=1) * (slot >= 0)
    return out.replace(next_item_bp=next_item, next_request_bp=next_request)
