"""Host side of a ranking request: raw ids -> hashed, bucket-padded ``RecsysBatch`` in reusable buffers.

History is oldest -> newest with padding at the end; padding is positional (from the lengths) and
writes 0 to every hash, action and surface of a padded slot (phoenix spec §3.1). Each entity's ids
of a whole batch are hashed in one call: numeric ids under a ``splitmix64`` HashSpec vectorized,
other ids through the memoizing ``Hasher``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from x_reco.common.types import RecsysBatch
from x_reco.data.examples import EngagementSequences, Split
from x_reco.features.hashing import Hasher, HashSpec, splitmix64_hashes


@dataclasses.dataclass(frozen=True, order=True)
class Bucket:
    """One compiled request shape: B rows, S history slots, N candidates."""

    batch: int
    history: int
    candidates: int

    @property
    def tokens(self) -> int:
        return self.batch * (1 + self.history + self.candidates)

    def as_dict(self) -> dict[str, int]:
        return {"B": self.batch, "S": self.history, "N": self.candidates}


@dataclasses.dataclass(frozen=True)
class BucketSet:
    """Configured bucket values; every (B, S, N) combination gets one executable.

    S buckets are only allowed in ``shared`` position mode; in ``reference`` mode a request's S must
    equal a configured value exactly (candidate positions depend on the padded S).
    """

    batch: tuple[int, ...] = (1, 16, 64)
    history: tuple[int, ...] = (128, 256, 512, 1024)
    candidates: tuple[int, ...] = (64, 256, 1024, 4096)

    def __post_init__(self):
        for name in ("batch", "history", "candidates"):
            values = tuple(sorted(int(v) for v in getattr(self, name)))
            if not values or values[0] < 1:
                raise ValueError(f"BucketSet.{name} must be non-empty positive ints, got {values}")
            object.__setattr__(self, name, values)

    def all(self) -> list[Bucket]:
        return [Bucket(b, s, n) for b in self.batch for s in self.history for n in self.candidates]

    def select(self, b: int, s: int, n: int, position_mode: str = "shared") -> Bucket | None:
        """Smallest bucket holding (b, s, n); None when the shape is outside the set."""
        bb = next((v for v in self.batch if v >= b), None)
        nb = next((v for v in self.candidates if v >= n), None)
        if position_mode == "shared":
            sb = next((v for v in self.history if v >= s), None)
        else:
            sb = s if s in self.history else None
        return None if None in (bb, sb, nb) else Bucket(bb, sb, nb)


@dataclasses.dataclass
class RawRequest:
    """One user's request before hashing (one batch row). Ids are uint64 ints or strings; None = unknown user."""

    user_id: int | str | None
    history_post_ids: Sequence
    history_author_ids: Sequence
    history_actions: np.ndarray  # [L, A_in] {0, 1}
    history_surface: np.ndarray  # [L] int
    candidate_post_ids: Sequence
    candidate_author_ids: Sequence
    candidate_surface: np.ndarray  # [n] int

    @property
    def history_len(self) -> int:
        return len(self.history_post_ids)

    @property
    def num_candidates(self) -> int:
        return len(self.candidate_post_ids)


def empty_batch(bucket: Bucket, num_hashes: tuple[int, int, int], num_actions: int) -> RecsysBatch:
    """All-zero (all-padding) numpy batch of the bucket's shape."""
    b, s, n = bucket.batch, bucket.history, bucket.candidates
    nu, ni, na = num_hashes
    return RecsysBatch(
        user_hashes=np.zeros((b, nu), np.int32),
        history_post_hashes=np.zeros((b, s, ni), np.int32),
        history_author_hashes=np.zeros((b, s, na), np.int32),
        history_actions=np.zeros((b, s, num_actions), np.float32),
        history_product_surface=np.zeros((b, s), np.int32),
        candidate_post_hashes=np.zeros((b, n, ni), np.int32),
        candidate_author_hashes=np.zeros((b, n, na), np.int32),
        candidate_product_surface=np.zeros((b, n), np.int32),
    )


def _fields(batch: RecsysBatch):
    return [f.name for f in dataclasses.fields(batch)]


def pad_batch(batch: RecsysBatch, bucket: Bucket, out: RecsysBatch | None = None) -> RecsysBatch:
    """Zero-pad a (numpy) batch up to ``bucket``: extra rows, history slots and candidates are padding.

    ``out`` (a batch of the bucket's shape, e.g. from ``empty_batch``) is overwritten and returned.
    """
    b, s, n = batch.batch_size, batch.num_history, batch.num_candidates
    if b > bucket.batch or s > bucket.history or n > bucket.candidates:
        raise ValueError(f"batch (B={b}, S={s}, N={n}) does not fit bucket {bucket}")
    if out is None:
        nums = (batch.user_hashes.shape[1], batch.history_post_hashes.shape[2], batch.history_author_hashes.shape[2])
        out = empty_batch(bucket, nums, batch.history_actions.shape[2])
    for name in _fields(batch):
        src, dst = np.asarray(getattr(batch, name)), getattr(out, name)
        dst.fill(0)
        dst[tuple(slice(0, k) for k in src.shape)] = src
    return out


class RequestAssembler:
    """Hashes raw requests into one bucket-shaped batch, reusing preallocated buffers per bucket."""

    def __init__(self, spec: HashSpec, num_actions: int):
        self.spec, self.num_actions = spec, num_actions
        self.hasher = Hasher(spec)
        self._buffers: dict[Bucket, RecsysBatch] = {}

    def hash(self, entity: str, ids) -> np.ndarray:
        """Ids [...] -> int32 [..., K]; vectorized for numeric ids under splitmix64."""
        arr = np.asarray(ids)
        if self.spec.family == "splitmix64" and arr.dtype.kind in "iu":
            return splitmix64_hashes(
                arr.astype(np.uint64), entity, self.spec.k(entity), self.spec.v(entity), self.spec.seed
            )
        return self.hasher.hash_ids(entity, list(ids) if arr.dtype.kind in "iu" else ids)

    def buffer(self, bucket: Bucket) -> RecsysBatch:
        if bucket not in self._buffers:
            self._buffers[bucket] = empty_batch(bucket, tuple(self.spec.num_hashes), self.num_actions)
        return self._buffers[bucket]

    def hash_many(self, entity: str, pieces: Sequence) -> np.ndarray:
        """Hash the concatenation of several id sequences in one call -> int32 [sum(len), K]."""
        arrays = [np.asarray(p) for p in pieces]
        if all(a.dtype.kind in "iu" for a in arrays):
            flat = arrays[0].ravel() if len(arrays) == 1 else np.concatenate([a.ravel() for a in arrays])
            return self.hash(entity, flat.astype(np.uint64))
        return self.hasher.hash_ids(entity, [x for a in arrays for x in a.ravel().tolist()])

    def assemble(self, requests: Sequence[RawRequest], bucket: Bucket, reuse: bool = True) -> RecsysBatch:
        """One padded batch for ``requests`` (<= bucket.batch rows); unused rows are padding rows.

        Each entity's ids of all rows are hashed in one call and scattered to their (row, slot)
        positions, so the host cost grows with the ids, not with Python work per row. With ``reuse``
        the returned arrays are this assembler's buffers: copy them to the device
        (``device_put(..., may_alias=False)``) before assembling the next request.
        """
        if len(requests) > bucket.batch:
            raise ValueError(f"{len(requests)} requests do not fit bucket {bucket}")
        for i, req in enumerate(requests):
            if req.history_len > bucket.history or req.num_candidates > bucket.candidates:
                raise ValueError(
                    f"request {i} (S={req.history_len}, N={req.num_candidates}) does not fit bucket {bucket}"
                )
        out = self.buffer(bucket) if reuse else empty_batch(bucket, tuple(self.spec.num_hashes), self.num_actions)
        for name in _fields(out):
            getattr(out, name).fill(0)
        known = [i for i, r in enumerate(requests) if r.user_id is not None]
        if known:
            out.user_hashes[known] = self.hash_many("user", [[requests[i].user_id] for i in known])
        hist_rows, hist_slots = _positions([r.history_len for r in requests])
        if len(hist_rows):
            out.history_post_hashes[hist_rows, hist_slots] = self.hash_many(
                "post", [r.history_post_ids for r in requests]
            )
            out.history_author_hashes[hist_rows, hist_slots] = self.hash_many(
                "author", [r.history_author_ids for r in requests]
            )
            width = out.history_actions.shape[2]
            out.history_actions[hist_rows, hist_slots] = np.concatenate(
                [np.asarray(r.history_actions).reshape(r.history_len, width) for r in requests]
            )
            out.history_product_surface[hist_rows, hist_slots] = np.concatenate(
                [np.asarray(r.history_surface).reshape(-1) for r in requests]
            )
        cand_rows, cand_slots = _positions([r.num_candidates for r in requests])
        if len(cand_rows):
            out.candidate_post_hashes[cand_rows, cand_slots] = self.hash_many(
                "post", [r.candidate_post_ids for r in requests]
            )
            out.candidate_author_hashes[cand_rows, cand_slots] = self.hash_many(
                "author", [r.candidate_author_ids for r in requests]
            )
            out.candidate_product_surface[cand_rows, cand_slots] = np.concatenate(
                [np.asarray(r.candidate_surface).reshape(-1) for r in requests]
            )
        return out

    def assemble_per_row(self, requests: Sequence[RawRequest], bucket: Bucket) -> RecsysBatch:
        """Reference path: the same batch built one row and one id list at a time (fresh arrays).

        ``assemble`` must equal it exactly (tested); ``python -m x_reco.bench.host`` times both.
        """
        if len(requests) > bucket.batch:
            raise ValueError(f"{len(requests)} requests do not fit bucket {bucket}")
        out = empty_batch(bucket, tuple(self.spec.num_hashes), self.num_actions)
        for row, req in enumerate(requests):
            length, n = req.history_len, req.num_candidates
            if length > bucket.history or n > bucket.candidates:
                raise ValueError(f"request {row} (S={length}, N={n}) does not fit bucket {bucket}")
            if req.user_id is not None:
                out.user_hashes[row] = self.hash("user", [req.user_id])[0]
            if length:
                out.history_post_hashes[row, :length] = self.hash("post", req.history_post_ids)
                out.history_author_hashes[row, :length] = self.hash("author", req.history_author_ids)
                out.history_actions[row, :length] = req.history_actions
                out.history_product_surface[row, :length] = req.history_surface
            if n:
                out.candidate_post_hashes[row, :n] = self.hash("post", req.candidate_post_ids)
                out.candidate_author_hashes[row, :n] = self.hash("author", req.candidate_author_ids)
                out.candidate_product_surface[row, :n] = req.candidate_surface
        return out


def _positions(lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, slot) of every filled position when row i holds ``lengths[i]`` leading entries."""
    if len(lengths) == 1:
        return np.zeros(lengths[0], np.int64), np.arange(lengths[0])
    lengths = np.asarray(lengths, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, np.arange(len(rows)) - starts


def assemble_batch(requests: Sequence[RawRequest], bucket: Bucket, spec: HashSpec, num_actions: int) -> RecsysBatch:
    """Convenience: hash and pad ``requests`` into a fresh batch of ``bucket``'s shape."""
    return RequestAssembler(spec, num_actions).assemble(requests, bucket, reuse=False)


def real_tokens(batch: RecsysBatch) -> int:
    """Valid tokens of a (numpy) batch: per row 1 (user) + valid history + valid candidates."""
    hist = (np.asarray(batch.history_post_hashes)[:, :, 0] != 0).sum()
    cand = (np.asarray(batch.candidate_post_hashes)[:, :, 0] != 0).sum()
    users = (np.asarray(batch.user_hashes)[:, 0] != 0).sum()
    return int(users + hist + cand)


def checkpoint_users(
    sequences: EngagementSequences,
    n_users: int = 200,
    n_candidates: int = 1000,
    seed: int = 0,
    split: Split = Split.TEST,
) -> RecsysBatch:
    """One request per distinct user (its latest ``split`` example, else its latest of any split) with up
    to ``n_candidates`` distinct catalogue items as candidates. Numpy RecsysBatch. ``split=Split.TRAIN``
    gives calibration requests disjoint from the test requests a variant is judged on."""
    ex = sequences.examples
    order = np.lexsort((ex.request_ts, ex.split == split))[::-1]  # that split first, newest first
    _, first = np.unique(ex.user_idx[order], return_index=True)
    rows = np.sort(order[first])[:n_users]
    items = sequences.num_items
    n = min(n_candidates, items)
    rng = np.random.default_rng(seed)
    pick = np.stack([rng.choice(items, n, replace=False) for _ in rows])
    return sequences.catalogue_batch(rows, pick)
