"""The pipeline's data model (candidate-pipeline spec §3.1): request, query, columnar candidates.

Stages work on ``Candidates``, a set of equal-length numpy columns (``CANDIDATE_COLUMNS`` names
them, with their dtype and the value a fresh candidate holds); ``Candidates.record(i)`` is the
per-candidate view explanations use. Ids are strings, as in the public tables; ``""`` is an unknown
author (upstream's ``author_id = 0``) and ``None`` an absent link. ``in_network`` is int8 with
``-1`` for upstream's ``None`` (not yet hydrated), ``0`` False and ``1`` True.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

# name -> (numpy dtype, default). Object columns hold str, None or tuples.
CANDIDATE_COLUMNS: dict[str, tuple[Any, Any]] = {
    "row": (np.int64, -1),  # position in the request's retrieved list (set by the framework)
    "post_id": (object, ""),
    "author_id": (object, ""),  # "" = unknown (upstream author_id 0)
    "served_type": (object, ""),  # "in_network" (Thunder) | "oon_retrieval" (Phoenix)
    "retrieval_sources": (object, ()),  # tuple of source names that returned the post
    "retrieval_rank": (np.int64, -1),  # Phoenix retrieval rank (0-based); -1 not retrieved by Phoenix
    "retrieval_score": (np.float64, np.nan),  # u·v of the Phoenix retrieval
    "two_tower_score": (np.float64, np.nan),  # u·v of every scored post (PhoenixScorer, with a retrieval weight)
    "created_ts": (np.int64, -1),  # -1 unknown
    "text": (object, ""),
    "media_type": (object, ""),
    "is_reply": (bool, False),
    "is_retweet": (bool, False),
    "in_reply_to_post_id": (object, None),
    "in_reply_to_user_id": (object, None),
    "conversation_id": (object, None),  # root of the reply chain; None for non-replies
    "conversation_author_id": (object, None),  # author of the conversation root
    "retweeted_post_id": (object, None),
    "retweeted_user_id": (object, None),
    "quoted_post_id": (object, None),
    "quoted_user_id": (object, None),
    "ancestors": (object, ()),  # tuple of ancestor post ids (in_reply_to, conversation root)
    "in_network": (np.int8, -1),  # -1 None, 0 False, 1 True
    "video_duration_ms": (np.float64, np.nan),  # NaN: no video
    "quoted_video_duration_ms": (np.float64, np.nan),
    "subscription_author_id": (object, None),  # None: public post
    "author_blocks_viewer": (bool, False),
    "quoted_author_blocks_viewer": (bool, False),
    "author_followers_count": (np.int64, 0),
    "view_count_on_home": (np.int64, 0),
    "fav_count": (np.int64, 0),
    "is_mutual_follow_author": (bool, False),
    "visibility": (object, None),  # VF verdict: None allowed; "drop", "deleted", "miss", ...
    "weighted_score": (np.float64, np.nan),  # NaN: None (unscored)
    "score": (np.float64, np.nan),
    "pre_diversity_score": (np.float64, np.nan),
    "diversity_k": (np.int64, 0),
    "diversity_multiplier": (np.float64, 1.0),
    "oon_multiplier": (np.float64, 1.0),
    "cold_start_boosted": (bool, False),
    "pool_rank": (np.int64, -1),  # rank in the selector's sorted pool
}


def _column(name: str, values: Any, n: int) -> np.ndarray:
    dtype, _ = CANDIDATE_COLUMNS[name]
    if dtype is object:
        out = np.empty(n, dtype=object)
        out[:] = list(values) if not isinstance(values, np.ndarray) else values
        return out
    return np.asarray(values, dtype=dtype).reshape(n)


class Candidates:
    """Equal-length columns over one request's candidates, plus Phoenix probabilities [n, signals].

    ``probs`` is float64 [n, len(signal_names)] with NaN where a signal has no value (upstream
    ``None``); ``signal_names`` are upstream names (``retweet``, ``long_dwell``, ...).
    """

    def __init__(
        self,
        columns: Mapping[str, Any] | None = None,
        n: int | None = None,
        probs: np.ndarray | None = None,
        signal_names: tuple[str, ...] = (),
    ):
        columns = dict(columns or {})
        unknown = sorted(set(columns) - set(CANDIDATE_COLUMNS))
        if unknown:
            raise KeyError(f"unknown candidate columns {unknown}")
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        self.n = int(n)
        self.cols: dict[str, np.ndarray] = {}
        for name, (dtype, default) in CANDIDATE_COLUMNS.items():
            if name in columns:
                self.cols[name] = _column(name, columns[name], self.n)
            elif dtype is object:
                col = np.empty(self.n, dtype=object)
                col.fill(default)  # defaults are immutable (str, None, ())
                self.cols[name] = col
            else:
                self.cols[name] = np.full(self.n, default, dtype=dtype)
        self.signal_names = tuple(signal_names)
        self.probs = (
            np.full((self.n, len(self.signal_names)), np.nan) if probs is None else np.asarray(probs, np.float64)
        )
        if self.probs.shape != (self.n, len(self.signal_names)):
            raise ValueError(f"probs shape {self.probs.shape} != ({self.n}, {len(self.signal_names)})")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def __setitem__(self, name: str, values: Any) -> None:
        if name not in CANDIDATE_COLUMNS:
            raise KeyError(f"unknown candidate column {name!r}")
        self.cols[name] = _column(name, values, self.n)

    def take(self, idx: np.ndarray) -> Candidates:
        """The candidates at integer positions (or a bool mask) ``idx``, in that order (a copy)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = Candidates.__new__(Candidates)
        out.n = len(idx)
        out.cols = {k: v[idx] for k, v in self.cols.items()}
        out.signal_names = self.signal_names
        out.probs = self.probs[idx]
        return out

    def copy(self) -> Candidates:
        return self.take(np.arange(self.n))

    @staticmethod
    def concat(parts: Iterable[Candidates]) -> Candidates:
        parts = list(parts)
        if not parts:
            return Candidates()
        names = parts[0].signal_names
        if any(p.signal_names != names for p in parts):
            raise ValueError("cannot concatenate candidates with different signal names")
        out = Candidates.__new__(Candidates)
        out.n = sum(p.n for p in parts)
        out.cols = {k: np.concatenate([p.cols[k] for p in parts]) for k in CANDIDATE_COLUMNS}
        out.signal_names = names
        out.probs = np.concatenate([p.probs for p in parts]) if parts else np.zeros((0, len(names)))
        return out

    def with_signals(self, signal_names: tuple[str, ...], probs: np.ndarray) -> Candidates:
        """A shallow copy carrying new probabilities (the scorer's output)."""
        out = Candidates.__new__(Candidates)
        out.n, out.cols = self.n, dict(self.cols)
        out.signal_names, out.probs = tuple(signal_names), np.asarray(probs, np.float64)
        return out

    def related_ids(self) -> list[tuple[str, ...]]:
        """Per candidate: post_id, retweeted_post_id, in_reply_to_post_id (non-null) [A candidates_util]."""
        cols = (self.cols["post_id"], self.cols["retweeted_post_id"], self.cols["in_reply_to_post_id"])
        return [tuple(v for v in vals if v is not None) for vals in zip(*cols, strict=True)]

    def record(self, i: int) -> dict[str, Any]:
        """Candidate ``i`` as a plain dict (numpy scalars as Python values; in_network as bool/None)."""
        rec = {k: _py(v[i]) for k, v in self.cols.items()}
        rec["in_network"] = None if rec["in_network"] < 0 else bool(rec["in_network"])
        rec["phoenix_scores"] = {
            s: (None if np.isnan(p) else float(p)) for s, p in zip(self.signal_names, self.probs[i], strict=True)
        }
        return rec


def _py(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


@dataclasses.dataclass(frozen=True)
class FeedRequest:
    """One For You request (§3.1); ``page >= 2`` is a bottom request."""

    partition: str
    user_id: str
    t: int
    page: int = 1
    surface: int = 0
    in_network_only: bool = False
    exclude_videos: bool = False
    topic_ids: tuple[str, ...] = ()

    @property
    def request_id(self) -> str:
        """16 hex digits of sha256(partition, user, t, page): independent of rules and weights."""
        key = f"{self.partition}\x1f{self.user_id}\x1f{int(self.t)}\x1f{int(self.page)}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def is_bottom(self) -> bool:
        return self.page >= 2


@dataclasses.dataclass(frozen=True)
class History:
    """The viewer's engaged events strictly before t, oldest -> newest, end-padded to S slots.

    Field for field the ``_history`` of ``x_reco.data.sequences`` (indices into the sequences'
    catalogue); ``length`` valid slots.
    """

    length: int
    item_idx: np.ndarray  # [S] int32, -1 padding
    author_idx: np.ndarray  # [S] int32, -1 padding
    ts: np.ndarray  # [S] int64, 0 padding
    surface: np.ndarray  # [S] int8
    actions: np.ndarray  # [S, A] int8


@dataclasses.dataclass(frozen=True)
class Query:
    """The request plus the viewer's state as of t (§4). Query hydrators fill disjoint fields."""

    request: FeedRequest
    user_idx: int = -1  # index into the sequences' user vocabulary; -1 unknown
    history: History | None = None
    cold_user: bool = False  # empty history (§4 empty_history="score")
    followed_ids: frozenset[str] = frozenset()
    blocked_ids: frozenset[str] = frozenset()
    muted_ids: frozenset[str] = frozenset()
    subscribed_ids: frozenset[str] = frozenset()
    muted_keywords: tuple[str, ...] = ()
    seen_ids: frozenset[str] = frozenset()
    served_ids: frozenset[str] = frozenset()
    account_created_ts: int | None = None
    follower_count: int = 0
    mutual_follow_ids: frozenset[str] = frozenset()

    @property
    def t(self) -> int:
        return self.request.t

    @property
    def user_id(self) -> str:
        return self.request.user_id


@dataclasses.dataclass
class FilterResult:
    """A filter's verdict: ``keep`` bool [n]; per removed candidate a reason and its rule inputs.

    ``reasons[i]`` is None for kept candidates, else a dict with at least ``"rule"`` (a short
    machine-readable name) plus the inputs that triggered it (the matching keyword, the blocked
    ancestor, ...).
    """

    keep: np.ndarray
    reasons: list[dict[str, Any] | None]

    @staticmethod
    def from_reasons(reasons: list[dict[str, Any] | None]) -> FilterResult:
        return FilterResult(np.array([r is None for r in reasons], dtype=bool), reasons)


class PipelineError(RuntimeError):
    """Raised under ``strict=True`` wherever upstream would fail open (§3.3)."""

    def __init__(self, stage: str, component: str, cause: BaseException | str):
        self.stage, self.component, self.cause = stage, component, cause
        super().__init__(f"{stage}/{component}: {cause}")


class Component:
    """A pipeline component: a ``name`` (the class name by default) and ``enabled(query)``.

    Subclasses implement one of: ``hydrate(query) -> dict`` (query hydrator: its own Query fields),
    ``get_candidates(query) -> Candidates`` (source), ``hydrate(query, cands) -> dict[str, array]``
    (candidate hydrator: its own columns, same length and order), ``filter(query, cands) ->
    FilterResult`` (filter), ``score(query, cands) -> Candidates`` (scorer), ``run(query, result)``
    (side effect).
    """

    @property
    def name(self) -> str:
        return type(self).__name__

    def enabled(self, query: Query) -> bool:
        return True
