"""Thunder, the in-memory store of recent posts read by the in-network source (candidate-pipeline spec §6).

The store is built once from the world's ``post_events`` log (Kafka's role upstream) and never
mutated: every read takes a time ``t`` and applies the liveness predicate of §6.3, so a ``view(t)``
is a consistent snapshot and two builds of the same log are equal (§6.5). Layout: one record per
ingested post id in columnar arrays sorted by ``post_id``, and the per-author posting lists
(``original``, ``secondary``, ``video``) as one array sorted by ``(author, list, created_ts,
post_id)`` so a read finds every followed author's window with two ``np.searchsorted`` calls.

Posting-list cap through time: upstream pops the oldest entry when a list reaches
``max_posting_list``; here, at time t a list holds the newest ``max_posting_list`` ingested posts of
that author and list with ``created_ts <= t`` (ties by ``post_id``). A post deleted after ingestion
keeps its slot (upstream marks it deleted without popping it), so it still counts towards the cap
and the scan limit. Upstream's periodic trim equals the retention predicate. Nullcast posts are never
ingested upstream; the x-reco world has none, so there is nothing to skip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from x_reco.pipeline.rules import (
    MAX_ORIGINAL_PER_AUTHOR,
    MAX_POST_AGE,
    MAX_POSTING_LIST,
    MAX_SCAN_PER_AUTHOR,
    MAX_SECONDARY_PER_AUTHOR,
    MIN_VIDEO_DURATION_MS,
    THUNDER_MAX_RESULTS,
)
from x_reco.pipeline.types import Candidates

ORIGINAL, SECONDARY, VIDEO = 0, 1, 2  # posting lists per author
_LISTS = 3
NEVER = np.iinfo(np.int64).max  # deleted_at of a post that is never deleted
EVENT_KINDS = ("create", "delete", "quote_delete")
LINK_KINDS = ("original", "reply", "retweet", "quote")
_LINK_COLUMNS = (
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "conversation_id",
    "retweeted_post_id",
    "retweeted_user_id",
    "quoted_post_id",
    "quoted_user_id",
)


@dataclasses.dataclass(frozen=True)
class CompactPost:
    """One ingested post as upstream's ``CompactPost`` (§6.1); ``source_*`` are the retweeted post/user.

    ``has_video`` is the media test (exactly one media item, a video, ``duration >=
    MinVideoDurationMs``); ``video_eligible`` adds §6.2's rules (replies never, a retweet of a
    non-reply video post live at ingestion).
    """

    post_id: str
    author_id: str
    created_ts: int
    in_reply_to_post_id: str | None
    in_reply_to_user_id: str | None
    source_post_id: str | None
    source_user_id: str | None
    conversation_id: str | None
    is_retweet: bool
    is_reply: bool
    has_video: bool
    video_eligible: bool


def _require(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _check_kinds(values: pd.Series, name: str, allowed: tuple[str, ...]) -> None:
    bad = sorted(set(values.unique()) - set(allowed))
    if bad:
        raise ValueError(f"{name}.kind has unknown values {bad}; expected {list(allowed)}")


def _sorted_events(post_events: pd.DataFrame) -> pd.DataFrame:
    """Events in log order ``(ts, seq)`` with their position ``order`` (ties stay in row order)."""
    _require(post_events, "post_events", ("ts", "seq", "kind", "post_id"))
    _check_kinds(post_events["kind"], "post_events", EVENT_KINDS)
    events = post_events.sort_values(["ts", "seq"], kind="stable").reset_index(drop=True)
    return events.assign(order=np.arange(len(events), dtype=np.int64))


def _tombstone_frame(
    events: pd.DataFrame, post_links: pd.DataFrame, created_ts_by_post: Mapping[str, int] | pd.Series, retention_s: int
) -> pd.DataFrame:
    """Per tombstoned id its first effective delete: columns ``post_id, ts, order`` (§6.3)."""
    deletes = events.loc[events["kind"] == "delete", ["post_id", "ts", "order"]]
    quotes = events.loc[events["kind"] == "quote_delete", ["post_id", "ts", "order"]]
    quoting = post_links.loc[post_links["quoted_post_id"].notna(), ["post_id", "quoted_post_id"]]
    cascade = quotes.rename(columns={"post_id": "quoted_post_id"}).merge(quoting, on="quoted_post_id")
    hits = pd.concat([deletes, cascade[["post_id", "ts", "order"]]], ignore_index=True)
    created = created_ts_by_post if isinstance(created_ts_by_post, pd.Series) else pd.Series(dict(created_ts_by_post))
    created = created.astype("float64")
    age = hits["ts"].to_numpy(np.float64) - created.reindex(hits["post_id"]).to_numpy()
    hits = hits[~(age > retention_s)]  # NaN (creation unknown) keeps the delete
    return hits.sort_values("order", kind="stable").drop_duplicates("post_id").reset_index(drop=True)


def tombstones(
    post_events: pd.DataFrame,
    post_links: pd.DataFrame,
    created_ts_by_post: Mapping[str, int] | pd.Series,
    retention_s: int = MAX_POST_AGE,
) -> dict[str, int]:
    """post_id -> effective deletion ts, the one home of §6.3's deletion rules.

    In log order ``(ts, seq)``: ``delete(p)`` at ts tombstones p unless ``ts - created_ts(p) >
    retention_s`` (a delete past retention is ignored; unknown creation keeps it);
    ``quote_delete(q)`` at ts applies the same delete to every post whose ``quoted_post_id`` is q. The
    first effective delete wins. Later ``create``s of a tombstoned id are ignored by the store.
    """
    frame = _tombstone_frame(_sorted_events(post_events), post_links, created_ts_by_post, retention_s)
    return {str(p): int(ts) for p, ts in zip(frame["post_id"], frame["ts"], strict=True)}


def _obj(values) -> np.ndarray:
    """An object array of str or None (pandas NaN/NA -> None)."""
    series = pd.Series(values, dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in series], dtype=object)


def _codes(vocab: pd.Index, values: np.ndarray) -> np.ndarray:
    """Index of each value in ``vocab``; -1 for None or absent."""
    return vocab.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)


def _group_rank(mask: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per element, how many True elements precede it in its group (groups are contiguous runs)."""
    before = np.concatenate(([0], np.cumsum(mask)))
    return before[:-1] - np.repeat(before[starts], lens)


@dataclasses.dataclass(frozen=True)
class _Caps:
    max_posting_list: int
    max_scan_per_author: int
    max_original_per_author: int
    max_secondary_per_author: int

    def __post_init__(self):
        bad = {k: v for k, v in dataclasses.asdict(self).items() if not (isinstance(v, int) and v > 0)}
        if bad:
            raise ValueError(f"Thunder caps must be positive ints, got {bad}")


def _records(posts, post_links, post_media, events, tomb: pd.DataFrame) -> pd.DataFrame:
    """One row per post with a record and a ``create`` event, sorted by post_id, with liveness inputs."""
    creates = events.loc[events["kind"] == "create", ["post_id", "ts", "order"]].drop_duplicates("post_id")
    rec = posts.merge(creates.rename(columns={"ts": "create_ts", "order": "create_order"}), on="post_id")
    links = post_links[["post_id", "kind", *_LINK_COLUMNS]]
    rec = rec.merge(links, on="post_id", how="left", validate="one_to_one")
    rec = rec.merge(tomb.rename(columns={"ts": "deleted_at", "order": "delete_order"}), on="post_id", how="left")
    rec = rec.sort_values("post_id", kind="stable").reset_index(drop=True)
    rec["kind"] = rec["kind"].fillna("original")
    media = post_media.groupby("post_id")["video_duration_ms"].agg(["size", "min"]).reindex(rec["post_id"])
    rec["has_video"] = (
        (rec["media_type"].to_numpy() == "video")
        & (media["size"].to_numpy() == 1)
        & (media["min"].to_numpy(np.float64) >= MIN_VIDEO_DURATION_MS)
    )
    # a create after the id's tombstone is ignored: the post is never ingested (no list slot)
    rec["ingested"] = ~(rec["delete_order"].to_numpy(np.float64) < rec["create_order"].to_numpy(np.float64))
    rec["visible_from"] = np.maximum(rec["created_ts"].to_numpy(np.int64), rec["create_ts"].to_numpy(np.int64))
    deleted = rec["deleted_at"]
    rec["deleted_at"] = np.where(deleted.isna(), NEVER, deleted.fillna(0).to_numpy(np.float64).astype(np.int64))
    return rec


class ThunderStore:
    """The immutable columnar post store (§6); every read is a time predicate over the whole log.

    Build it with ``from_tables``; ``view(t)`` binds the reads to one t. Arrays are never mutated
    after construction, so concurrent readers need no lock.
    """

    def __init__(self, rec: pd.DataFrame, tomb: dict[str, int], retention_s: int, caps: _Caps):
        self.retention_s, self.caps, self._tomb = int(retention_s), caps, tomb
        n = len(rec)
        self.post_id = rec["post_id"].to_numpy(object)
        self._index = {p: i for i, p in enumerate(self.post_id)}
        self.author_id = _obj(rec["author_id"])
        self.created_ts = rec["created_ts"].to_numpy(np.int64)
        self.visible_from = rec["visible_from"].to_numpy(np.int64)
        self.deleted = rec["deleted_at"].to_numpy(np.int64)
        self.is_reply = rec["kind"].to_numpy() == "reply"
        self.is_retweet = rec["kind"].to_numpy() == "retweet"
        self.has_video = rec["has_video"].to_numpy(bool)
        self.links = {c: _obj(rec[c]) for c in _LINK_COLUMNS}
        extra = set(self.links["in_reply_to_post_id"]) | set(self.links["conversation_id"]) | set(self.post_id)
        extra -= {None, *self.post_id}
        refs = pd.Index([*self.post_id, *sorted(extra)], dtype=object)  # records keep codes 0..n-1
        self._irt = _codes(refs, self.links["in_reply_to_post_id"])
        self._conv = _codes(refs, self.links["conversation_id"])
        users = {*self.author_id, *self.links["in_reply_to_user_id"], *self.links["retweeted_user_id"]} - {None}
        self._users = pd.Index(sorted(users), dtype=object)
        self._user_code = {u: i for i, u in enumerate(self._users)}
        self._author = _codes(self._users, self.author_id)
        self._irt_user = _codes(self._users, self.links["in_reply_to_user_id"])
        self._src_user = _codes(self._users, self.links["retweeted_user_id"])
        self.video_eligible = self._video_eligible()
        self._build_lists(rec["ingested"].to_numpy(bool))
        ancestors = [
            tuple(a for a in (irt, conv if conv != irt else None) if a is not None)
            for irt, conv in zip(self.links["in_reply_to_post_id"], self.links["conversation_id"], strict=True)
        ]
        self._cand = {
            "post_id": self.post_id,
            "author_id": self.author_id,
            "created_ts": self.created_ts,
            "is_reply": self.is_reply,
            "is_retweet": self.is_retweet,
            "media_type": _obj(rec["media_type"]),
            "ancestors": _tuples(ancestors),
            "served_type": np.full(n, "in_network", dtype=object),
            "retrieval_sources": _tuples([("thunder",)] * n),
            **self.links,
        }

    @classmethod
    def from_tables(
        cls,
        posts: pd.DataFrame,
        post_links: pd.DataFrame,
        post_media: pd.DataFrame,
        post_events: pd.DataFrame,
        *,
        retention_s: int = MAX_POST_AGE,
        max_posting_list: int = MAX_POSTING_LIST,
        max_scan_per_author: int = MAX_SCAN_PER_AUTHOR,
        max_original_per_author: int = MAX_ORIGINAL_PER_AUTHOR,
        max_secondary_per_author: int = MAX_SECONDARY_PER_AUTHOR,
    ) -> ThunderStore:
        """Ingest the §14 tables: records from ``posts``/``post_links``/``post_media``, liveness from the log.

        Only ids with a ``create`` event and a ``posts`` row are records (the store has not heard of
        the others); ``deleted_at`` also answers for tombstoned ids without a record.
        """
        caps = _Caps(max_posting_list, max_scan_per_author, max_original_per_author, max_secondary_per_author)
        _require(posts, "posts", ("post_id", "author_id", "created_ts", "media_type"))
        _require(post_links, "post_links", ("post_id", "kind", *_LINK_COLUMNS))
        _check_kinds(post_links["kind"], "post_links", LINK_KINDS)
        _require(post_media, "post_media", ("post_id", "video_duration_ms"))
        events = _sorted_events(post_events)
        tomb = _tombstone_frame(events, post_links, posts.set_index("post_id")["created_ts"], retention_s)
        rec = _records(posts, post_links, post_media, events, tomb)
        tomb_dict = {str(p): int(ts) for p, ts in zip(tomb["post_id"], tomb["ts"], strict=True)}
        return cls(rec, tomb_dict, retention_s, caps)

    def _video_eligible(self) -> np.ndarray:
        """§6.2 at ingestion: replies never; own video, or a retweet of a live non-reply video post."""
        src = _codes(pd.Index(self.post_id, dtype=object), self.links["retweeted_post_id"])
        ok = src >= 0
        at = self.visible_from
        src_video = ok & self.has_video[src] & ~self.is_reply[src] & self._live(np.where(ok, src, -1), at)
        return ~self.is_reply & (self.has_video | (self.is_retweet & src_video))

    def _build_lists(self, ingested: np.ndarray) -> None:
        """Posting lists as one key array: ``(author * 3 + list) * stride + (created_ts - base)``, sorted."""
        idx = np.flatnonzero(ingested)
        original = ~self.is_reply[idx] & ~self.is_retweet[idx]
        video = idx[self.video_eligible[idx]]
        entry = np.concatenate([idx, video])
        lists = np.concatenate([np.where(original, ORIGINAL, SECONDARY), np.full(len(video), VIDEO)])
        created = self.created_ts[entry]
        self._base = int(created.min()) if len(entry) else 0
        self._stride = (int(created.max()) - self._base + 3) if len(entry) else 3
        key = (self._author[entry] * _LISTS + lists) * self._stride + (created - self._base)
        order = np.lexsort((entry, key))  # ties in created_ts by post_id (records are sorted by post_id)
        self._key, self._entry = key[order], entry[order]

    # -- reads ---------------------------------------------------------------------------------

    def _live(self, idx: np.ndarray, t) -> np.ndarray:
        """§6.3 at t (scalar or per element) for record indices ``idx``; -1 (unknown) is never live."""
        idx = np.asarray(idx, dtype=np.int64)
        if not len(self.post_id):
            return np.zeros(idx.shape, bool)
        j = np.where(idx >= 0, idx, 0)
        alive = (self.visible_from[j] <= t) & (t - self.created_ts[j] <= self.retention_s) & (self.deleted[j] > t)
        return (idx >= 0) & alive

    def _newest_first(self, authors: np.ndarray, which: int, t: int):
        """Per author the capped list window at t, newest first: (record idx, group starts, group lengths)."""
        segs = authors * _LISTS + which
        lo_rel = min(max(t - self.retention_s - self._base, 0), self._stride - 1)
        hi_rel = min(max(t - self._base, -1), self._stride - 1)
        lo = np.searchsorted(self._key, segs * self._stride + lo_rel, "left")
        hi = np.searchsorted(self._key, segs * self._stride + hi_rel, "right")
        lens = np.maximum(hi - np.maximum(lo, hi - self.caps.max_posting_list), 0)
        starts = np.cumsum(lens) - lens
        pos = np.repeat(hi - 1, lens) - (np.arange(int(lens.sum())) - np.repeat(starts, lens))
        return self._entry[pos], starts, lens

    def _reply_ok(self, idx: np.ndarray, t: int, followed: np.ndarray) -> np.ndarray:
        """§6.4: a reply survives iff its parent is live and original, or a reply in R's conversation
        chain (``P.in_reply_to_post_id == R.conversation_id``) with ``R.in_reply_to_user_id`` followed."""
        code = self._irt[idx]
        parent = np.where(code < len(self.post_id), code, -1)
        p = np.where(parent >= 0, parent, 0)
        original = ~self.is_reply[p] & ~self.is_retweet[p]
        conv = self._conv[idx]
        chain = self.is_reply[p] & (conv >= 0) & (self._irt[p] == conv) & followed[self._irt_user[idx]]
        return (code < 0) | (self._live(parent, t) & (original | chain))

    def _scan(self, authors, which, t, limit, viewer, exclude, followed=None) -> np.ndarray:
        """Upstream ``get_posts_from_map``: skip excluded, scan <= max_scan, live, no self-retweet, take limit."""
        idx, starts, lens = self._newest_first(authors, which, t)
        keep = ~np.isin(idx, exclude) if len(exclude) else np.ones(len(idx), bool)
        keep &= _group_rank(keep, starts, lens) < self.caps.max_scan_per_author
        keep &= self._live(idx, t)
        keep &= ~(self.is_retweet[idx] & (self._src_user[idx] == viewer))
        if followed is not None:
            keep &= self._reply_ok(idx, t, followed)
        keep &= _group_rank(keep, starts, lens) < limit
        return idx[keep]

    def recent_posts(
        self,
        followed_ids: Iterable[str],
        viewer_id: str,
        t: int,
        max_results: int = THUNDER_MAX_RESULTS,
        exclude_post_ids: Iterable[str] = (),
    ) -> Candidates:
        """§6.4: the followed authors' live posts at t as in-network candidates, newest first.

        Per author up to ``max_original_per_author`` originals and ``max_secondary_per_author``
        replies/retweets; ties in ``created_ts`` by ``post_id`` descending; at most ``max_results``.
        Duplicate or unknown followed ids are ignored.
        """
        if max_results < 0:
            raise ValueError(f"max_results must be >= 0, got {max_results}")
        t = int(t)
        codes = np.fromiter((self._user_code.get(u, -1) for u in followed_ids), np.int64)
        authors = np.unique(codes[codes >= 0])
        followed = np.zeros(len(self._users) + 1, bool)  # the extra last slot answers code -1
        followed[authors] = True
        exclude = np.fromiter((self._index.get(p, -1) for p in exclude_post_ids), np.int64)
        exclude = exclude[exclude >= 0]
        viewer = self._user_code.get(viewer_id, -2)
        caps = self.caps
        idx = np.concatenate(
            [
                self._scan(authors, ORIGINAL, t, caps.max_original_per_author, viewer, exclude),
                self._scan(authors, SECONDARY, t, caps.max_secondary_per_author, viewer, exclude, followed),
            ]
        )
        idx = idx[np.lexsort((-idx, -self.created_ts[idx]))][:max_results]
        return Candidates({k: v[idx] for k, v in self._cand.items()}, n=len(idx))

    def _indices(self, post_ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self._index.get(p, -1) for p in post_ids), np.int64)

    def is_live(self, post_ids: Iterable[str], t: int) -> np.ndarray:
        """bool [len(post_ids)]: §6.3 liveness at t; ids the store never ingested are not live."""
        return self._live(self._indices(post_ids), int(t))

    def deleted_at(self, post_id: str) -> int | None:
        """The effective deletion ts of ``post_id`` (§6.3), None if never deleted."""
        return self._tomb.get(post_id)

    def status(self, post_id: str, t: int) -> str:
        """For explanations: "unknown", "not_created", "deleted", "expired" or "live" at t."""
        i, deleted = self._index.get(post_id), self._tomb.get(post_id)
        if i is None:
            return "deleted" if deleted is not None and deleted <= t else "unknown"
        if t < self.visible_from[i]:
            return "not_created"
        if self.deleted[i] <= t:
            return "deleted"
        return "expired" if t - self.created_ts[i] > self.retention_s else "live"

    def get(self, post_id: str) -> CompactPost | None:
        """The ingested record of ``post_id`` whatever its liveness; None if the store never ingested it."""
        i = self._index.get(post_id)
        if i is None:
            return None
        links = {k: v[i] for k, v in self.links.items()}
        return CompactPost(
            post_id=post_id,
            author_id=self.author_id[i],
            created_ts=int(self.created_ts[i]),
            in_reply_to_post_id=links["in_reply_to_post_id"],
            in_reply_to_user_id=links["in_reply_to_user_id"],
            source_post_id=links["retweeted_post_id"],
            source_user_id=links["retweeted_user_id"],
            conversation_id=links["conversation_id"],
            is_retweet=bool(self.is_retweet[i]),
            is_reply=bool(self.is_reply[i]),
            has_video=bool(self.has_video[i]),
            video_eligible=bool(self.video_eligible[i]),
        )

    def video_posts(self, author_id: str, t: int) -> np.ndarray:
        """The author's maintained video list at t (§6.2): live post ids, newest first. No For You path reads it."""
        code = self._user_code.get(author_id, -1)
        if code < 0:
            return np.empty(0, dtype=object)
        idx, _, _ = self._newest_first(np.array([code], np.int64), VIDEO, int(t))
        return self.post_id[idx[self._live(idx, int(t))]]

    def view(self, t: int) -> ThunderView:
        """A consistent snapshot at t (cheap: shares the arrays)."""
        return ThunderView(self, int(t))

    def __len__(self) -> int:
        return len(self.post_id)

    def _state(self) -> tuple:
        arrays = (
            self.post_id, self.author_id, self.created_ts, self.visible_from, self.deleted, self.is_reply,
            self.is_retweet, self.has_video, self.video_eligible, self._key, self._entry, self._cand["media_type"],
            *self.links.values(),
        )  # fmt: skip
        return (self.retention_s, self.caps, self._tomb, *(a.tolist() for a in arrays))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ThunderStore):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True)
class ThunderView:
    """The store's reads bound to one t (§6.5): what Thunder held at t. ``deleted_at`` hides later deletes."""

    store: ThunderStore
    t: int

    def recent_posts(
        self,
        followed_ids: Iterable[str],
        viewer_id: str,
        max_results: int = THUNDER_MAX_RESULTS,
        exclude_post_ids: Iterable[str] = (),
    ) -> Candidates:
        return self.store.recent_posts(followed_ids, viewer_id, self.t, max_results, exclude_post_ids)

    def is_live(self, post_ids: Iterable[str]) -> np.ndarray:
        return self.store.is_live(post_ids, self.t)

    def status(self, post_id: str) -> str:
        return self.store.status(post_id, self.t)

    def deleted_at(self, post_id: str) -> int | None:
        ts = self.store.deleted_at(post_id)
        return ts if ts is not None and ts <= self.t else None

    def video_posts(self, author_id: str) -> np.ndarray:
        return self.store.video_posts(author_id, self.t)


class ThunderWriter:
    """Replay mode (§6.5): one writer appends ``post_events`` in ts order; snapshots are stores.

    The post records (``posts``, ``post_links``, ``post_media``) play the event payloads. A snapshot
    equals ``ThunderStore.from_tables`` over the events appended so far (it is built that way).
    """

    def __init__(self, posts: pd.DataFrame, post_links: pd.DataFrame, post_media: pd.DataFrame, **store_kwargs):
        self._tables = (posts, post_links, post_media)
        self._kwargs = store_kwargs
        self._parts: list[pd.DataFrame] = []
        self._last_ts: int | None = None
        self._snapshot: ThunderStore | None = None

    @property
    def last_ts(self) -> int | None:
        """ts of the newest appended event; None before the first."""
        return self._last_ts

    def append(self, events: pd.DataFrame) -> None:
        """Append events (columns ``ts, seq, kind, post_id``); ValueError if any ts goes back in time."""
        _require(events, "events", ("ts", "seq", "kind", "post_id"))
        _check_kinds(events["kind"], "events", EVENT_KINDS)
        if not len(events):
            return
        ts = events["ts"].to_numpy(np.int64)
        back = np.flatnonzero(np.diff(ts) < 0)
        if len(back):
            raise ValueError(f"events out of ts order: ts {ts[back[0] + 1]} after {ts[back[0]]}")
        if self._last_ts is not None and ts[0] < self._last_ts:
            raise ValueError(f"events out of ts order: ts {ts[0]} after the appended {self._last_ts}")
        self._parts.append(events[["ts", "seq", "kind", "post_id"]].copy())
        self._last_ts, self._snapshot = int(ts[-1]), None

    def snapshot(self) -> ThunderStore:
        """The store as of the last appended event (rebuilt after each append, then cached)."""
        if self._snapshot is None:
            cols = {"ts": np.int64, "seq": np.int64, "kind": object, "post_id": object}
            empty = pd.DataFrame({k: pd.Series(dtype=v) for k, v in cols.items()})
            events = pd.concat(self._parts, ignore_index=True) if self._parts else empty
            self._snapshot = ThunderStore.from_tables(*self._tables, events, **self._kwargs)
        return self._snapshot


def _tuples(values: list[tuple]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element-wise: numpy would broadcast equal-length tuples into a 2-D array
        out[i] = v
    return out
