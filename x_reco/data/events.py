"""Canonical engagement events: one row per (user, item, time) with the 19 action columns and a split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS
from x_reco.data.tables import RawTables

EVENT_COLUMNS = (
    "user_id",
    "item_id",
    "author_id",
    "ts",
    "src_row",
    "surface",
    "request_key",
    *ACTIONS,
    "dwell_seconds",
    "exposed",
    "split",
)
DAY = 86_400


def build_events(raw: RawTables) -> pd.DataFrame:
    """Map a partition's raw interactions to the events table, sorted by (user, ts, src_row).

    Rating-derived actions (MovieLens, Amazon) are proxies, not observed X actions; columns the
    dataset does not observe are zero.
    """
    from x_reco.data.registry import dataset_spec  # the registry imports this module's builders

    spec = dataset_spec(raw.partition)
    events = spec.events(raw)
    events = events.sort_values(["user_id", "ts", "src_row"], kind="mergesort").reset_index(drop=True)
    for name, observed in zip(ACTIONS, spec.observed_mask):
        if not observed:
            events[name] = np.int8(0)
    return events[list(EVENT_COLUMNS)]


def _empty_actions(n: int) -> dict[str, np.ndarray]:
    return {name: np.zeros(n, dtype=np.int8) for name in ACTIONS}


def rating_events(raw: RawTables, author_column: str | None = None) -> pd.DataFrame:
    """Ratings are events: click (and dwell) on every one, favorite >= 4, not_interested <= 2;
    leave-last-out split. ``author_column``: the items column that names the author (else none)."""
    inter = raw.interactions
    rating = inter["rating"].to_numpy(dtype=np.float64)
    acts = _empty_actions(len(inter))
    acts["click"][:] = 1
    acts["favorite"] = (rating >= 4).astype(np.int8)
    acts["not_interested"] = (rating <= 2).astype(np.int8)
    acts["dwell"][:] = 1  # a rating implies the item was watched; datasets that don't observe dwell mask it
    if "has_text" in inter.columns:  # Amazon reviews JSONL: a written review counts as a reply
        acts["reply"] = inter["has_text"].fillna(False).to_numpy().astype(np.int8)
    events = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(str).to_numpy(),
            "item_id": inter["item_id"].astype(str).to_numpy(),
            "author_id": _authors(raw, author_column),
            "ts": inter["ts"].to_numpy(dtype=np.int64),
            "src_row": inter["src_row"].to_numpy(dtype=np.int64),
            "surface": np.zeros(len(inter), dtype=np.int8),
            "request_key": None,
            **acts,
            "dwell_seconds": np.full(len(inter), np.nan, dtype=np.float32),
            "exposed": np.zeros(len(inter), dtype=np.int8),
        }
    )
    return _leave_last_out(events)


def _authors(raw: RawTables, column: str | None) -> np.ndarray:
    """Author per interaction: the items' ``column`` where known (Amazon's store), else a constant
    that carries no signal."""
    constant = f"{raw.partition}:no_author"
    n = len(raw.interactions)
    if column is None or column not in raw.items.columns:
        return np.full(n, constant, dtype=object)
    store = raw.items.set_index("item_id")[column]
    mapped = raw.interactions["item_id"].map(store)
    return mapped.where(mapped.notna() & (mapped.astype(str) != ""), constant).astype(str).to_numpy()


def _leave_last_out(events: pd.DataFrame) -> pd.DataFrame:
    """Last event per user (by ts, then source line) -> test, second-to-last -> val, rest -> train."""
    events = events.sort_values(["user_id", "ts", "src_row"], kind="mergesort").reset_index(drop=True)
    from_end = events.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    split = np.where(from_end == 0, "test", np.where(from_end == 1, "val", "train"))
    events["split"] = split
    return events


def synthetic_events(raw: RawTables) -> pd.DataFrame:
    """Every impression is an event (exposed); split by the day its visit starts (80/10/10 of days)."""
    inter = raw.interactions
    cfg = raw.manifest.get("config", {})
    num_days = int(cfg.get("num_days", 0)) or None
    split_fracs = cfg.get("split", (0.8, 0.1, 0.1))
    acts = {name: inter[name].to_numpy(dtype=np.int8) for name in ACTIONS}
    events = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(str).to_numpy(),
            "item_id": inter["item_id"].astype(str).to_numpy(),
            "author_id": inter["author_id"].astype(str).to_numpy(),
            "ts": inter["ts"].to_numpy(dtype=np.int64),
            "src_row": inter["src_row"].to_numpy(dtype=np.int64),
            "surface": inter["surface"].to_numpy(dtype=np.int8),
            "request_key": inter["visit_id"].astype(str).to_numpy(),
            **acts,
            "dwell_seconds": inter["dwell_seconds"].to_numpy(dtype=np.float32),
            "exposed": np.ones(len(inter), dtype=np.int8),
        }
    )
    visit_start = events.groupby("request_key")["ts"].transform("min").to_numpy()
    train_end, val_end = _synthetic_cutoffs(raw.manifest, visit_start, num_days, split_fracs)
    events["split"] = np.where(visit_start < train_end, "train", np.where(visit_start < val_end, "val", "test"))
    return events


def _synthetic_cutoffs(manifest: dict, visit_start: np.ndarray, num_days, fracs) -> tuple[int, int]:
    """The world's own (train_end_ts, val_end_ts); else whole days from its clock start."""
    cut = manifest.get("split_cutoffs")
    if cut:
        return int(cut["train_end_ts"]), int(cut["val_end_ts"])
    start = int(manifest.get("clock_start_ts", visit_start.min() // DAY * DAY))
    num_days = num_days or int((visit_start.max() - start) // DAY) + 1
    return (start + int(round(fracs[0] * num_days)) * DAY, start + int(round((fracs[0] + fracs[1]) * num_days)) * DAY)


def mind_events(raw: RawTables) -> pd.DataFrame:
    """Impression tokens are events (label 1 -> click, 0 -> exposed negative).

    Split: train file minus its last 24 h -> train, last 24 h of train -> val, dev file -> test.
    """
    inter = raw.interactions
    acts = _empty_actions(len(inter))
    acts["click"] = inter["label"].fillna(0).to_numpy().astype(np.int8)
    src = inter["src_file"].astype(str)
    ts = inter["ts"].to_numpy(dtype=np.int64)
    is_dev = src.str.startswith("dev").to_numpy()
    train_end = ts[~is_dev].max() if (~is_dev).any() else 0
    split = np.where(is_dev, "test", np.where(ts > train_end - DAY, "val", "train"))
    return pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(str).to_numpy(),
            "item_id": inter["item_id"].astype(str).to_numpy(),
            "author_id": np.full(len(inter), f"{raw.partition}:no_author", dtype=object),
            "ts": ts,
            "src_row": inter["src_row"].to_numpy(dtype=np.int64),
            "surface": np.zeros(len(inter), dtype=np.int8),
            "request_key": (src + ":" + inter["impression_id"].astype(str)).to_numpy(),
            **acts,
            "dwell_seconds": np.full(len(inter), np.nan, dtype=np.float32),
            "exposed": np.ones(len(inter), dtype=np.int8),
            "split": split,
        }
    )
