"""The synthetic world as a stream of simulated days: what has arrived by the end of day ``k``.

The world is simulated forward in time (each user's visits, feeds and engagements depend only on the
past), so the world *as of* the end of day ``k`` is the prefix of the seeded simulation: every row
whose time is before the clock, with the follow graph as it stood then. ``cut_world`` takes that
prefix and moves the evaluation split with the clock: the newest day is the test day, the day
before it validation, everything earlier (or the last ``window_days`` of it) training. With every
day arrived and no window, the cut is the whole world and its tables are unchanged.

Day ``k`` (1-based) is the calendar date ``day_key(k)`` of the world's clock; ``day_slice_counts``
says how many rows of each table arrived on that day (what the ``world_day`` asset publishes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from x_reco.data.synthetic.config import CLOCK_START_TS
from x_reco.data.synthetic.entities import DAY_S
from x_reco.data.tables import RawTables

# The longest world of the named sizes (``default`` and ``large``): the static day partitions.
MAX_DAYS = 30
MIN_ARRIVED_DAYS = 3  # a training day, a validation day and a test day

# Tables of posts (one row per post, or per post of a kind): kept when the post was created in time.
_POST_TABLES = ("post_text", "post_links", "post_media", "post_paywall", "post_safety")
# Tables of timed events: kept when their time column is before the clock.
_TIMED_TABLES = {"post_events": "ts", "user_blocks": "ts", "subscriptions": "since_ts"}
_SINCE_TABLES = ("muted_keywords", "author_blocks")


def day_key(day: int) -> str:
    """``day`` (1-based) of the world's clock as an ISO date: day 1 is 2024-01-01."""
    start = dt.datetime.fromtimestamp(CLOCK_START_TS, tz=dt.UTC).date()
    return (start + dt.timedelta(days=day - 1)).isoformat()


def day_number(key: str) -> int:
    """The inverse of ``day_key``; a ValueError names a key that is not a day of the clock."""
    try:
        date = dt.date.fromisoformat(key)
    except ValueError as exc:
        raise ValueError(f"{key!r} is not a simulated day (expected an ISO date like {day_key(1)})") from exc
    start = dt.datetime.fromtimestamp(CLOCK_START_TS, tz=dt.UTC).date()
    day = (date - start).days + 1
    if not 1 <= day <= MAX_DAYS:
        raise ValueError(f"{key} is outside the simulated days {day_key(1)} .. {day_key(MAX_DAYS)}")
    return day


DAY_KEYS: tuple[str, ...] = tuple(day_key(d) for d in range(1, MAX_DAYS + 1))


def clock_of(arrived: set[str] | list[str]) -> int:
    """The clock: how many days arrived without a gap from day 1 (0 when day 1 has not)."""
    have = {day_number(k) for k in arrived}
    clock = 0
    while clock + 1 in have:
        clock += 1
    return clock


def end_of_day_ts(day: int) -> int:
    """The clock's time at the end of ``day`` (exclusive bound of what has arrived)."""
    return CLOCK_START_TS + day * DAY_S


def cut_world(raw: RawTables, day: int, window_days: int | None = None) -> RawTables:
    """The world as it stood at the end of ``day``: the rows before the clock, the split moved.

    Args:
      raw: the whole synthetic world (``generate_world_tables``).
      day: days arrived, ``MIN_ARRIVED_DAYS`` .. the world's ``num_days``.
      window_days: keep only the impressions of the last ``window_days`` days (the training
        window slides with the clock); None keeps every arrived day.
    Raises ValueError naming the bound when ``day`` or ``window_days`` is out of range.
    """
    horizon = int(raw.manifest["config"]["num_days"])
    if not MIN_ARRIVED_DAYS <= day <= horizon:
        raise ValueError(
            f"clock day {day}: the world needs {MIN_ARRIVED_DAYS} to {horizon} arrived days "
            f"(a training, a validation and a test day; this world has {horizon})"
        )
    if window_days is not None and not MIN_ARRIVED_DAYS <= window_days:
        raise ValueError(f"window_days={window_days} must be >= {MIN_ARRIVED_DAYS} or None")
    until = end_of_day_ts(day)
    start = CLOCK_START_TS if window_days is None else max(CLOCK_START_TS, until - window_days * DAY_S)
    inter = raw.interactions
    inter = inter[(inter["ts"] < until) & (inter["ts"] >= start)].reset_index(drop=True)
    items = raw.items[raw.items["created_ts"] < until].reset_index(drop=True)
    posts = set(items["item_id"])
    # What the world schedules after its last day (e.g. a post's later deletion) stays with that day.
    extra_until = until if day < horizon else np.iinfo(np.int64).max
    extra = {name: _cut_extra(name, frame, extra_until, posts) for name, frame in raw.extra.items()}
    truth = dict(raw.truth)
    if "impressions" in truth:
        truth["impressions"] = _rows_in(truth["impressions"], "impression_id", set(inter["impression_id"]))
    if "posts" in truth:
        truth["posts"] = _rows_in(truth["posts"], "post_id", posts)
    cut = dataclasses.replace(raw, interactions=inter, items=items, extra=extra, truth=truth)
    return dataclasses.replace(cut, manifest=_clock_manifest(raw, cut, day, window_days, start))


def _impressions_of(raw: RawTables, day: int) -> pd.DataFrame:
    inter = raw.interactions
    return inter[(inter["ts"] >= end_of_day_ts(day - 1)) & (inter["ts"] < end_of_day_ts(day))]


def day_slice_counts(raw: RawTables, day: int) -> dict[str, int]:
    """Rows of each timed table that arrived on ``day`` (impressions, engagements, posts, follows...)."""
    lo, hi = end_of_day_ts(day - 1), end_of_day_ts(day)
    today = _impressions_of(raw, day)
    actions = [c for c in ("favorite", "reply", "repost", "share", "click") if c in today]
    counts = {
        "impressions": len(today),
        "engaged_impressions": int((today[actions].sum(axis=1) > 0).sum()) if actions else 0,
        "visits": int(today["visit_id"].nunique()) if "visit_id" in today else 0,
        "users": int(today["user_id"].nunique()),
        "posts": int(((raw.items["created_ts"] >= lo) & (raw.items["created_ts"] < hi)).sum()),
    }
    if "follows" in raw.extra:
        since = raw.extra["follows"]["since_ts"]
        counts["new_follows"] = int(((since >= lo) & (since < hi)).sum())
    return counts


def day_digest(raw: RawTables, day: int) -> str:
    """sha256 (16 hex) of the impressions of ``day``: equal for equal worlds, whoever computes it."""
    today = _impressions_of(raw, day)
    cols = [c for c in today.columns if c not in ("rating", "label")]
    hashed = pd.util.hash_pandas_object(today[cols], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _rows_in(frame: pd.DataFrame, column: str, keep: set) -> pd.DataFrame:
    return frame[frame[column].isin(keep)].reset_index(drop=True)


def _cut_extra(name: str, frame: pd.DataFrame, until: int, posts: set) -> pd.DataFrame:
    if name in _POST_TABLES:
        return _rows_in(frame, "post_id", posts)
    if name in _TIMED_TABLES:
        return frame[frame[_TIMED_TABLES[name]] < until].reset_index(drop=True)
    if name in _SINCE_TABLES:
        return frame[frame["since_ts"] < until].reset_index(drop=True)
    if name == "follows":
        kept = frame[frame["since_ts"] < until].reset_index(drop=True)
        ended = kept["until_ts"].to_numpy(dtype="float64", na_value=np.nan)
        later = ~np.isnan(ended) & (ended >= until)  # an unfollow after the clock has not happened yet
        if later.any():
            kept["until_ts"] = kept["until_ts"].mask(later, pd.NA)
        return kept
    return frame  # entities (authors) exist from the start


def _clock_manifest(raw: RawTables, cut: RawTables, day: int, window_days: int | None, start: int) -> dict:
    manifest = dict(raw.manifest)
    until = end_of_day_ts(day)
    manifest["clock"] = {
        "day": day,
        "day_key": day_key(day),
        "until_ts": until,
        "horizon_days": int(raw.manifest["config"]["num_days"]),
        "window_days": window_days,
        "window_start_ts": start,
    }
    manifest["split_cutoffs"] = {"train_end_ts": until - 2 * DAY_S, "val_end_ts": until - DAY_S}
    counts = dict(manifest.get("counts", {}))
    counts.update(
        posts=len(cut.items),
        impressions=len(cut.interactions),
        visits=int(cut.interactions["visit_id"].nunique()),
        **{name: len(frame) for name, frame in cut.extra.items() if name in counts},
        **{f"truth_{name}": len(frame) for name, frame in cut.truth.items() if f"truth_{name}" in counts},
    )
    manifest["counts"] = counts
    rates = manifest.get("action_rates", {})
    manifest["action_rates"] = {
        a: float(cut.interactions[a].mean()) if len(cut.interactions) else 0.0 for a in rates if a in cut.interactions
    }
    return manifest
