"""The serving state as of t (candidate-pipeline spec §4, §7, §11 step 2, §12) over a partition's public tables.

``TableState`` indexes the tables once (per-user and per-post numpy arrays, sorted by time) and
answers every read through the leak rule of §4: events with ``ts < t``, posts with ``created_ts ≤ t``,
follows with ``since_ts < t`` and (``until_ts`` null or ``≥ t``), blocks, mutes, subscriptions and
muted keywords with ``ts`` / ``since_ts < t``, served-log rows before t. ``ServedLog`` is §12's
append-only log. Real partitions have no social tables: authors, text and links fall back as §13 says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS
from x_reco.data.examples import Catalogue
from x_reco.data.registry import ExampleKind, dataset_spec
from x_reco.data.synthetic.config import SURFACES
from x_reco.data.synthetic.social import SOCIAL_TABLES
from x_reco.data.tables import RawTables
from x_reco.pipeline.rules import SERVED_HISTORY_MAX, SERVED_HISTORY_WINDOW_S
from x_reco.pipeline.types import Candidates, FeedRequest, History, Query

SERVING_SOCIAL_TABLES: tuple[str, ...] = ("follows", *SOCIAL_TABLES)
HOME_SURFACES: tuple[int, ...] = (SURFACES.index("for_you"), SURFACES.index("following"))  # §7 view_count_on_home
_NEVER = np.iinfo(np.int64).max
_LINKS = ("in_reply_to_post_id", "in_reply_to_user_id", "conversation_id")
_LINKS += ("retweeted_post_id", "retweeted_user_id", "quoted_post_id", "quoted_user_id")


class UnknownUserError(KeyError, ValueError):
    """The requested user is in neither the users table nor the events of the partition."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ServingTables:
    """The public tables serving reads: items (``item_id`` plus ``author_id``/``created_ts``/the
    profile's diversity column where the dataset has them), ``engagement_events`` (sorted by
    ``(user_id, ts, src_row)``), users and the §14 social tables (empty for real datasets)."""

    partition: str
    items: pd.DataFrame
    events: pd.DataFrame
    users: pd.DataFrame
    social: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: RawTables, events: pd.DataFrame) -> ServingTables:
        keep = ("item_id", "author_id", "created_ts", dataset_spec(raw.partition).serving.diversity_key)
        items = raw.items[[c for c in dict.fromkeys(keep) if c in raw.items.columns]].copy()
        items["item_id"] = items["item_id"].astype(str)
        social = {k: raw.extra[k] for k in SERVING_SOCIAL_TABLES if k in raw.extra}
        return cls(raw.partition, items, events, raw.users, social)


def _obj(values: Any) -> np.ndarray:
    """Object array of str or None (pandas NaN / NA -> None)."""
    s = pd.Series(values, dtype=object)
    return s.where(s.notna(), None).to_numpy(dtype=object)


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.equal(np.asarray(values, dtype=object), None)


class _Ids:
    """A sorted string vocabulary: vectorised id -> code (``-1`` unknown or None), no pandas per call."""

    def __init__(self, ids: Iterable[Any]):
        self.ids = np.unique(np.asarray([str(i) for i in ids], dtype=str))

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, values: Any) -> np.ndarray:
        obj = np.asarray(values, dtype=object).reshape(-1)
        none = _is_none(obj)
        if not len(self.ids) or not len(obj):
            return np.full(len(obj), -1, np.int64)
        u = np.where(none, "", obj).astype(str)
        pos = np.minimum(np.searchsorted(self.ids, u), len(self.ids) - 1)
        return np.where((self.ids[pos] == u) & ~none, pos, -1).astype(np.int64)


def _padded(values: np.ndarray, default: Any, dtype: Any = None) -> np.ndarray:
    """``values`` plus one trailing default, so code ``-1`` reads the default."""
    out = np.empty(len(values) + 1, dtype=dtype if dtype is not None else np.asarray(values).dtype)
    out[:-1] = values
    out[-1] = default
    return out


class _Grouped:
    """A table's rows grouped by a string key, sorted by ``ts`` within the key (stable)."""

    def __init__(self, keys: Any, ts: Any, **cols: Any):
        keys = np.asarray(keys, dtype=str)
        ts = np.asarray(ts, dtype=np.int64)
        order = np.lexsort((ts, keys))
        keys, self.ts = keys[order], ts[order]
        self.cols = {k: np.asarray(v)[order] for k, v in cols.items()}
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(keys)].astype(int)[: len(starts)]
        self.span = {str(keys[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}

    def before(self, key: str, t: int) -> slice:
        """Rows of ``key`` with ``ts < t``."""
        s, e = self.span.get(key, (0, 0))
        return slice(s, s + int(np.searchsorted(self.ts[s:e], t, side="left")))


class _Counts:
    """Per-key counts of timestamps below t, vectorised over keys (composite ``code·2^32 + ts`` keys)."""

    def __init__(self, codes: np.ndarray, ts: np.ndarray):
        self.base = int(ts.min()) if len(ts) else 0
        if len(ts) and int(ts.max()) - self.base >= 2**32:
            raise ValueError(f"timestamps span {int(ts.max()) - self.base} s, more than 2^32")
        self.keys = np.sort(codes.astype(np.int64) * 2**32 + (ts.astype(np.int64) - self.base))

    def before(self, codes: np.ndarray, t: int) -> np.ndarray:
        rel = int(np.clip(t - self.base, 0, 2**32 - 1))
        lo = codes.astype(np.int64) * 2**32
        n = np.searchsorted(self.keys, lo + rel, side="left") - np.searchsorted(self.keys, lo, side="left")
        return np.where(codes >= 0, n, 0).astype(np.int64)


def _item_authors(items: pd.DataFrame, partition: str, no_author: str) -> np.ndarray:
    """§13: the item's author, else the profile's diversity column (amazon ``store``; unknown store ->
    the item id), else one constant author."""
    for col in ("author_id", dataset_spec(partition).serving.diversity_key):
        if col in items.columns:
            vals = _obj(items[col])
            blank = _is_none(vals) | (vals == "")
            return np.where(blank, items["item_id"].astype(str).to_numpy(object), vals.astype(str)).astype(object)
    return np.full(len(items), no_author, dtype=object)


class TableState:
    """The partition's state as of any t, from its public tables (§4; §7 reads; §11 VF verdicts).

    Args:
      tables: the partition's ``ServingTables``.
      catalogue: the serving sequences' catalogue (history and ``user_idx`` index into it).
      observed_mask: int8 [A] actions the dataset observes (an event is engaged iff one is set).
      history_len: S, the checkpoint's history length.
      deleted_at: post_id -> deletion ts (Thunder's tombstones); deleted at ≤ t fails CoreData, VF.
      no_author: the constant author of author-less datasets (default ``"<partition>:no_author"``).
    """

    def __init__(
        self,
        tables: ServingTables,
        catalogue: Catalogue,
        observed_mask: np.ndarray,
        history_len: int,
        deleted_at: Mapping[str, int] | None = None,
        no_author: str | None = None,
    ):
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {history_len}")
        self.partition, self.catalogue, self.history_len = tables.partition, catalogue, int(history_len)
        self.social = dict(tables.social)
        self.no_author = no_author or f"{tables.partition}:no_author"
        self._user_pos = {str(u): i for i, u in enumerate(catalogue.user_ids)}
        self._index_events(tables.events, np.asarray(observed_mask).astype(bool))
        self._index_users(tables)
        self._index_posts(tables, dict(deleted_at or {}))
        self._index_social()

    # -- construction -------------------------------------------------------------------------------
    def _index_events(self, events: pd.DataFrame, mask: np.ndarray) -> None:
        users = events["user_id"].astype(str).to_numpy()
        ts = events["ts"].to_numpy(np.int64)
        order = np.lexsort((events["src_row"].to_numpy(np.int64), ts, users))
        ev = events.iloc[order]
        actions = ev[list(ACTIONS)].to_numpy(np.int8)
        engaged = actions[:, mask].any(axis=1)
        e = ev[engaged]
        self._history = _Grouped(
            e["user_id"].astype(str),
            e["ts"],
            item_idx=pd.Index(self.catalogue.item_ids).get_indexer(e["item_id"].astype(str)).astype(np.int32),
            author_idx=pd.Index(self.catalogue.author_ids).get_indexer(e["author_id"].astype(str)).astype(np.int32),
            surface=e["surface"].to_numpy(np.int8),
            actions=actions[engaged],
        )
        # Seen = the user's impressions; in per-event data (ratings) every event is an item the user saw.
        per_event = dataset_spec(self.partition).example_kind == ExampleKind.PER_EVENT
        x = ev if per_event else ev[ev["exposed"].to_numpy().astype(bool)]
        self._seen = _Grouped(x["user_id"].astype(str), x["ts"], post_id=x["item_id"].astype(str).to_numpy(object))
        self._events = ev
        test = ev[ev["split"].astype(str).to_numpy() == "test"]
        key = test["request_key"].astype(object).where(test["request_key"].notna(), "#" + test["src_row"].astype(str))
        starts = test.groupby([test["user_id"].astype(str), key], sort=False)["ts"].min().sort_values(kind="stable")
        self._test_requests = {str(u): g.to_numpy(np.int64) for u, g in starts.groupby(level=0, sort=False)}

    def _index_users(self, tables: ServingTables) -> None:
        users = tables.users
        known = set(users["user_id"].astype(str)) | set(self._events["user_id"].astype(str)) | set(self._user_pos)
        self._known_users = known
        self._created = {}
        if "created_ts" in users.columns:
            created = users["created_ts"].astype(np.int64).tolist()
            self._created = dict(zip(users["user_id"].astype(str), created, strict=True))

    def _index_posts(self, tables: ServingTables, deleted_at: dict[str, int]) -> None:
        items = tables.items
        ids = [*items["item_id"].astype(str), *self.catalogue.item_ids, *self._events["item_id"].astype(str)]
        self._posts = _Ids(ids)
        n, codes = len(self._posts), self._posts.codes(items["item_id"].astype(str).to_numpy(object))
        cat = self._posts.codes(self.catalogue.item_ids)
        author = np.full(n, "", dtype=object)
        author[cat] = self.catalogue.author_ids[self.catalogue.item_author_idx].astype(object)  # not in the table
        author[codes] = _item_authors(items, self.partition, self.no_author)
        created = np.full(n, -1, dtype=np.int64)
        created[cat] = self.catalogue.item_created_ts  # creation, else first event (real datasets)
        if "created_ts" in items.columns:
            created[codes] = items["created_ts"].to_numpy(np.int64)
        known = np.zeros(n, bool)
        known[codes], known[cat] = True, True
        self._author, self._created_ts = _padded(author, "", object), _padded(created, -1)
        self._known = _padded(known, False)
        dead = np.full(n, _NEVER, np.int64)
        if deleted_at:
            d_codes = self._posts.codes(list(deleted_at))
            dead[d_codes[d_codes >= 0]] = np.fromiter(deleted_at.values(), np.int64, len(deleted_at))[d_codes >= 0]
        self._deleted = _padded(dead, _NEVER)
        self._post_columns(items)
        self._engagement_counts()

    def _column(self, table: str, column: str, default: Any, dtype: Any = object) -> np.ndarray:
        """A per-post column from a social table (padded; ``default`` where the table has no row)."""
        out = np.full(len(self._posts) + 1, default, dtype=dtype)
        frame = self.social.get(table)
        if frame is not None and len(frame):
            codes = self._posts.codes(frame["post_id"].astype(str).to_numpy(object))
            vals = _obj(frame[column]) if dtype is object else frame[column].to_numpy(dtype)
            out[codes[codes >= 0]] = vals[codes >= 0]
        return out

    def _post_columns(self, items: pd.DataFrame) -> None:
        if "post_text" in self.social:
            self._text = self._column("post_text", "text", "")
            self._text[_is_none(self._text)] = ""
        else:  # §13: the item id stands for the text, so CoreData only checks that the item is known
            self._text = np.where(self._known, _padded(self._posts.ids.astype(object), ""), "").astype(object)
        self._links = {c: self._column("post_links", c, None) for c in _LINKS}
        self._links["kind"] = self._column("post_links", "kind", None)
        root = self._posts.codes(self._links["conversation_id"])
        self._links["conversation_author_id"] = np.where(root >= 0, self._author[root], None)
        reply, conv = self._links["in_reply_to_post_id"], self._links["conversation_id"]
        self._ancestors = np.empty(len(reply), dtype=object)
        self._ancestors[:] = [
            tuple(a for a in (r, c if c != r else None) if a is not None) for r, c in zip(reply, conv, strict=True)
        ]
        self._media_type = _padded(_obj(items["media_type"]), "") if "media_type" in items.columns else None
        self._video = self._column("post_media", "video_duration_ms", np.nan, np.float64)
        self._paywall = self._column("post_paywall", "subscription_author_id", None)
        self._safety = self._column("post_safety", "level", None)
        self._safety_missing = self._column("post_safety", "missing", True, bool)

    def _engagement_counts(self) -> None:
        ev = self._events
        codes = self._posts.codes(ev["item_id"].astype(str).to_numpy(object))
        ts = ev["ts"].to_numpy(np.int64)
        home = ev["exposed"].to_numpy().astype(bool) & np.isin(ev["surface"].to_numpy(), HOME_SURFACES)
        fav = ev["favorite"].to_numpy() > 0
        self._views, self._favs = _Counts(codes[home], ts[home]), _Counts(codes[fav], ts[fav])

    def _index_social(self) -> None:
        def table(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
            frame = self.social.get(name)
            return frame if frame is not None else pd.DataFrame({c: [] for c in columns})

        f = table("follows", ("user_id", "author_id", "since_ts", "until_ts"))
        since = f["since_ts"].to_numpy(np.int64)
        u = pd.array(f["until_ts"], dtype="Int64")
        until = np.where(u.isna(), _NEVER, u.fillna(0).to_numpy(np.int64))
        self._follows = _Grouped(f["user_id"], since, author=f["author_id"].astype(str).to_numpy(object), until=until)
        authors = _Ids(f["author_id"].astype(str))
        self._follow_authors = authors
        a = authors.codes(f["author_id"].astype(str).to_numpy(object))
        closed = until < _NEVER
        self._opened = _Counts(a, since)
        self._closed = _Counts(a[closed], np.maximum(until, since)[closed])  # until < since: never open
        b = table("user_blocks", ("user_id", "author_id", "ts", "kind"))
        self._blocks = _Grouped(b["user_id"], b["ts"], author=_obj(b["author_id"]), kind=_obj(b["kind"]))
        s = table("subscriptions", ("user_id", "author_id", "since_ts"))
        self._subs = _Grouped(s["user_id"], s["since_ts"], author=_obj(s["author_id"]))
        k = table("muted_keywords", ("user_id", "keyword", "since_ts"))
        self._keywords = _Grouped(k["user_id"], k["since_ts"], keyword=_obj(k["keyword"]))
        ab = table("author_blocks", ("author_id", "user_id", "since_ts"))
        self._author_blocks = _Grouped(ab["user_id"], ab["since_ts"], author=_obj(ab["author_id"]))

    # -- query side (§4) ----------------------------------------------------------------------------
    def check_user(self, user_id: str) -> None:
        if user_id not in self._known_users:
            valid = sorted(self._known_users)[:5]
            raise UnknownUserError(
                f"unknown user {user_id!r} in partition {self.partition!r} "
                f"({len(self._known_users)} users, e.g. {valid})"
            )

    def user_idx(self, user_id: str) -> int:
        """Index into the catalogue's users; ``-1`` for a known user the sequences never saw."""
        self.check_user(user_id)
        return self._user_pos.get(user_id, -1)

    def request_time(self, user_id: str, visit: int = 0) -> int:
        """The start of the user's ``visit``-th test-split request (0-based; per-event datasets: event)."""
        self.check_user(user_id)
        times = self._test_requests.get(user_id, np.zeros(0, np.int64))
        if not 0 <= visit < len(times):
            raise ValueError(
                f"user {user_id!r} has {len(times)} test-split request(s) in {self.partition!r}; no visit {visit}"
            )
        return int(times[visit])

    def default_request_time(self, user_id: str) -> int:
        """The user's first test-split request (``x-reco feed`` without ``--at``)."""
        return self.request_time(user_id, 0)

    def history_at(self, user_id: str, t: int) -> History:
        """The user's engaged events with ``ts < t``: the last S, oldest -> newest, end-padded (§4)."""
        h, s = self._history, self.history_len
        rows = h.before(user_id, t)
        n = min(rows.stop - rows.start, s)
        take = np.arange(rows.stop - n, rows.stop)

        def pad(arr: np.ndarray, fill: int, dtype: Any) -> np.ndarray:
            out = np.full((s, *arr.shape[1:]), fill, dtype=dtype)
            out[:n] = arr[take]
            return out

        return History(
            length=int(n),
            item_idx=pad(h.cols["item_idx"], -1, np.int32),
            author_idx=pad(h.cols["author_idx"], -1, np.int32),
            ts=pad(h.ts, 0, np.int64),
            surface=pad(h.cols["surface"], 0, np.int8),
            actions=pad(h.cols["actions"], 0, np.int8),
        )

    def history_fields(self, user_id: str, t: int) -> dict[str, Any]:
        """``user_idx``, ``history`` and ``cold_user`` (empty history, §4 ``empty_history``)."""
        idx = self.user_idx(user_id)
        history = self.history_at(user_id, t)
        return {"user_idx": idx, "history": history, "cold_user": history.length == 0}

    def seen_ids(self, user_id: str, t: int) -> frozenset[str]:
        """Posts of the user's impressions (exposed events) with ``ts < t``."""
        return frozenset(self._seen.cols["post_id"][self._seen.before(user_id, t)])

    def followed_ids(self, user_id: str, t: int) -> frozenset[str]:
        f = self._follows
        rows = f.before(user_id, t)
        return frozenset(f.cols["author"][rows][f.cols["until"][rows] >= t])

    def social_fields(self, user_id: str, t: int) -> dict[str, Any]:
        """Follows, blocks, mutes, subscriptions and muted keywords as of t (§4)."""
        b = self._blocks.before(user_id, t)
        authors, kinds = self._blocks.cols["author"][b], self._blocks.cols["kind"][b]
        keywords = self._keywords.cols["keyword"][self._keywords.before(user_id, t)]
        return {
            "followed_ids": self.followed_ids(user_id, t),
            "blocked_ids": frozenset(authors[kinds == "block"]),
            "muted_ids": frozenset(authors[kinds == "mute"]),
            "subscribed_ids": frozenset(self._subs.cols["author"][self._subs.before(user_id, t)]),
            "muted_keywords": tuple(dict.fromkeys(keywords)),
        }

    def profile_fields(self, user_id: str, t: int) -> dict[str, Any]:
        """Account creation, the viewer's follower count at t, mutual follows (none: no user follows a user)."""
        self.check_user(user_id)
        return {
            "account_created_ts": self._created.get(user_id),
            "follower_count": int(self.author_followers([user_id], t)[0]),
            "mutual_follow_ids": frozenset(),
        }

    def query(self, request: FeedRequest, served_log: ServedLog | None = None) -> Query:
        """Every §4 field of ``request`` (the query hydrators of ``hydrators.py`` split this)."""
        user, t = request.user_id, request.t
        fields = self.history_fields(user, t) | self.social_fields(user, t) | self.profile_fields(user, t)
        fields["seen_ids"] = self.seen_ids(user, t)
        fields["served_ids"] = served_log.served_ids(user, t) if served_log is not None else frozenset()
        return Query(request, **fields)

    # -- candidate side (§7, §11) -------------------------------------------------------------------
    def post_codes(self, post_ids: Any) -> np.ndarray:
        return self._posts.codes(post_ids)

    def core_data(self, post_ids: Any, t: int) -> dict[str, np.ndarray]:
        """§7 CoreData columns (the quote's columns are ``quote``'s); a failure (unknown, created after
        t, deleted at ≤ t) gives author and text ``""`` and no links (CoreDataHydration removes it)."""
        c = self._posts.codes(post_ids)
        ok = (c >= 0) & self._known[c] & (self._created_ts[c] <= t) & (self._deleted[c] > t)
        c = np.where(ok, c, -1)
        out = {"author_id": self._author[c], "text": self._text[c], "created_ts": self._created_ts[c]}
        out.update({k: self._links[k][c] for k in (*_LINKS, "conversation_author_id") if not k.startswith("quoted")})
        out["ancestors"] = self._ancestors[c]
        kind = self._links["kind"][c]
        out["is_reply"], out["is_retweet"] = kind == "reply", kind == "retweet"
        if self._media_type is not None:
            out["media_type"] = self._media_type[c]
        return out

    def author_followers(self, author_ids: Any, t: int) -> np.ndarray:
        """Open follows of each author at t (``since_ts < t``, until null or ``≥ t``)."""
        a = self._follow_authors.codes(author_ids)
        return self._opened.before(a, t) - self._closed.before(a, t)

    def video_duration(self, post_ids: Any) -> np.ndarray:
        """``post_media`` duration in ms; NaN: no video."""
        return self._video[self._posts.codes(post_ids)]

    def quoted_video_duration(self, post_ids: Any) -> np.ndarray:
        return self.video_duration(self._links["quoted_post_id"][self._posts.codes(post_ids)])

    def quote(self, post_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """(quoted_post_id, quoted_user_id) per post; None where not a quote."""
        c = self._posts.codes(post_ids)
        return self._links["quoted_post_id"][c], self._links["quoted_user_id"][c]

    def subscription_author(self, post_ids: Any) -> np.ndarray:
        """The author whose subscribers may see the post (``post_paywall``); None: public."""
        return self._paywall[self._posts.codes(post_ids)]

    def author_blocks_viewer(self, author_ids: Any, viewer: str, t: int) -> np.ndarray:
        """Whether each author blocked ``viewer`` before t (``author_blocks.since_ts < t``)."""
        blockers = self._author_blocks.cols["author"][self._author_blocks.before(viewer, t)]
        authors = np.asarray(author_ids, dtype=object).reshape(-1)
        if not len(blockers):
            return np.zeros(len(authors), bool)
        return _Ids(blockers).codes(authors) >= 0

    def engagement_counts(self, post_ids: Any, t: int) -> dict[str, np.ndarray]:
        """``view_count_on_home`` (impressions on for_you / following) and ``fav_count``, ``ts < t``."""
        c = self._posts.codes(post_ids)
        return {"view_count_on_home": self._views.before(c, t), "fav_count": self._favs.before(c, t)}

    def vf_verdict(self, post_ids: Any, in_network: Any, t: int) -> np.ndarray:
        """§11 step 2: ``"deleted"`` (deleted at ≤ t), ``"miss"`` (no safety label), ``"drop"``
        (``drop_all``; ``drop_recs`` out of network only), else None. Without a ``post_safety`` table
        (real datasets, where VF is disabled) only deletions give a verdict."""
        c = self._posts.codes(post_ids)
        inn = np.asarray(in_network).reshape(-1) > 0
        level = self._safety[c]
        drop = (level == "drop_all") | ((level == "drop_recs") & ~inn)
        out = np.where(drop, "drop", None).astype(object)
        if "post_safety" in self.social:
            out[self._safety_missing[c] | (c < 0)] = "miss"
        out[(c >= 0) & (self._deleted[c] <= t)] = "deleted"
        return out


# -- §12 served log ---------------------------------------------------------------------------------
SERVED_LOG_COLUMNS = (
    "request_id",
    "t",
    "user_id",
    "page",
    "position",
    "post_id",
    "source_post_id",
    "ancestors",
    "served_type",
    "is_ancestor",
    "weighted_score",
    "score",
    "weight_set",
    "rules",
)
_REQUIRED = ("request_id", "t", "user_id", "post_id")
_SLATE = ("pool_rank", "pre_diversity_score", "diversity_k", "cold_start_boosted")


class ServedLog:
    """§12's append-only served log in memory: one row per served post and per conversation ancestor.

    Columns are ``SERVED_LOG_COLUMNS`` plus whatever extra keys rows bring (head probabilities
    ``p_<signal>``, slate context, ``<name>_version`` of each checkpoint); absent values are None.
    """

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {c: [] for c in SERVED_LOG_COLUMNS}
        self._n = 0
        self._by_user: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return self._n

    def append(self, row: Mapping[str, Any]) -> None:
        missing = [k for k in _REQUIRED if row.get(k) is None]
        if missing:
            raise ValueError(f"served-log row lacks {missing}: {dict(row)}")
        for k in row:
            if k not in self._cols:
                self._cols[k] = [None] * self._n
        for k, col in self._cols.items():
            col.append(row.get(k))
        self._by_user.setdefault(str(row["user_id"]), []).append(self._n)
        self._n += 1

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def record(
        self,
        request: FeedRequest,
        served: Candidates,
        *,
        weight_set: str,
        rules: str,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        """Append the rows of one served feed: each post at its position, then its ancestors."""
        versions = {f"{k}_version": v for k, v in (versions or {}).items()}
        base = {"request_id": request.request_id, "t": int(request.t), "user_id": request.user_id}
        base |= {"page": int(request.page), "weight_set": weight_set, "rules": rules, **versions}
        for i in range(len(served)):
            rec = served.record(i)
            row = base | {"position": i, "post_id": rec["post_id"], "source_post_id": rec["retweeted_post_id"]}
            row |= {k: rec[k] for k in ("ancestors", "served_type", "weighted_score", "score", *_SLATE)}
            row |= {f"p_{s}": p for s, p in rec["phoenix_scores"].items()}
            self.append(row | {"is_ancestor": False})
            for a in rec["ancestors"]:
                self.append(
                    base | {"position": i, "post_id": a, "served_type": rec["served_type"], "is_ancestor": True}
                )

    def served_ids(self, user_id: str, t: int) -> frozenset[str]:
        """``post_id`` ∪ ``source_post_id`` of the newest ≤ SERVED_HISTORY_MAX rows served to the user
        in ``[t − SERVED_HISTORY_WINDOW_S, t)`` (§4, [O served_history_query_hydrator.rs])."""
        rows = np.asarray(self._by_user.get(user_id, []), dtype=np.int64)
        if not len(rows):
            return frozenset()
        ts = np.asarray([self._cols["t"][r] for r in rows], dtype=np.int64)
        window = (ts >= t - SERVED_HISTORY_WINDOW_S) & (ts < t)
        rows, ts = rows[window], ts[window]
        newest = rows[np.lexsort((-rows, -ts))][:SERVED_HISTORY_MAX]
        ids = [self._cols[c][r] for r in newest for c in ("post_id", "source_post_id")]
        return frozenset(i for i in ids if i is not None)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in self._cols.items()}).infer_objects()
