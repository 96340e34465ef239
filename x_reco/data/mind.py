"""MIND-small reader: train and dev archives (or folders) to canonical raw tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from x_reco.data.archive import (
    UNIX_SECONDS,
    Member,
    check_ids,
    check_range,
    file_digests,
    parse_delimited,
    read_members,
    require_rows,
)
from x_reco.data.errors import MissingFileError, SchemaError
from x_reco.data.tables import INTERACTION_COLUMNS, RawTables

MIND_SPLITS = ("train", "dev")
# third-party MD5s of the original zips: a cross-check only, mirrors may re-zip
MIND_SMALL_MD5 = {"train": "bd6ae77fa15949653f39829e946d327c", "dev": "1c9e798fe440c1999547211cd5245e3e"}
_NEWS_FIELDS = ("news_id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities")
_ITEM_COLUMNS = ("item_id", "category", "subcategory", "title", "abstract", "title_entities", "abstract_entities")
_BEHAVIOR_FIELDS = ("impression_id", "user_id", "time", "history", "impressions")
# approximate sizes (train) only bound what a zip entry may declare (x20)
_SIZES = {
    "behaviors.tsv": 92_000_000,
    "news.tsv": 41_000_000,
    "entity_embedding.vec": 25_000_000,
    "relation_embedding.vec": 1_100_000,
}
_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def _locate(source: Path, split: str) -> Path:
    for candidate in (source / f"MINDsmall_{split}.zip", source / f"MINDsmall_{split}"):
        if candidate.exists():
            return candidate
    raise MissingFileError(source / f"MINDsmall_{split}.zip", None, f"or the extracted folder MINDsmall_{split}/")


def _first_false(mask: np.ndarray) -> int | None:
    bad = np.flatnonzero(~mask)
    return int(bad[0]) if bad.size else None


def _parse_times(raw: pd.DataFrame, label: str) -> np.ndarray:
    """``MM/DD/YYYY HH:MM:SS AM/PM`` as naive UTC -> int64 seconds."""
    parsed = pd.to_datetime(raw["time"], format=_TIME_FORMAT, errors="coerce")
    row = _first_false(parsed.notna().to_numpy())
    if row is not None:
        raise SchemaError(label, row + 1, "Time", f"cannot parse {raw['time'].iloc[row]!r}")
    ts = parsed.to_numpy().astype("datetime64[s]").astype(np.int64)
    check_range(ts, label=label, field="Time", lo=UNIX_SECONDS[0], hi=UNIX_SECONDS[1], strings=raw["time"])
    return ts


def _check_pattern(values: pa.Array, pattern: str, rows: np.ndarray, label: str, field: str) -> None:
    ok = pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)
    bad = _first_false(ok)
    if bad is not None:
        raise SchemaError(label, int(rows[bad]) + 1, field, f"{values[bad].as_py()!r} does not match {pattern}")


def _impression_tokens(raw: pd.DataFrame, label: str) -> pd.DataFrame:
    """One row per ``NewsID-label`` token: row (0-based line), position, item_id, label."""
    lists = pc.split_pattern(pa.array(raw["impressions"], type=pa.string()), " ")
    rows = pc.list_parent_indices(lists).to_numpy()
    tokens = pc.list_flatten(lists)
    _check_pattern(tokens, r"^N\d+-[01]$", rows, label, "Impressions")
    offsets = lists.offsets.to_numpy()
    return pd.DataFrame(
        {
            "row": rows.astype(np.int64),
            "position": (np.arange(len(rows)) - offsets[rows]).astype(np.int32),
            "item_id": pc.utf8_slice_codeunits(tokens, 0, -2).to_numpy(zero_copy_only=False),
            "label": pc.equal(pc.utf8_slice_codeunits(tokens, -1), "1").to_numpy(zero_copy_only=False).astype(np.int8),
        }
    )


def _read_behaviors(member: Member, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(behaviors, interactions) of one ``behaviors.tsv``."""
    raw = parse_delimited(member.data, label=member.label, sep="\t", names=_BEHAVIOR_FIELDS, encoding="utf-8")
    require_rows(len(raw), label=member.label, what="impressions")
    check_ids(raw["impression_id"], label=member.label, field="Impression ID", pattern=r"\d+")
    check_ids(raw["user_id"], label=member.label, field="User ID", pattern=r"U\d+")
    dup = _first_false(~raw["impression_id"].duplicated().to_numpy())
    if dup is not None:  # R5: ids restart per file but are unique within one
        raise SchemaError(
            member.label, dup + 1, "Impression ID", f"duplicate impression id {raw['impression_id'].iloc[dup]!r}"
        )
    _check_pattern(
        pa.array(raw["history"], type=pa.string()), r"^(N\d+( N\d+)*)?$", np.arange(len(raw)), member.label, "History"
    )
    ts = _parse_times(raw, member.label)
    behaviors = pd.DataFrame(
        {
            "impression_id": raw["impression_id"].astype(object),
            "user_id": raw["user_id"],
            "ts": ts,
            "history": raw["history"],
            "file": split,
            "src_row": np.arange(len(raw), dtype=np.int64),
        }
    )
    tokens = _impression_tokens(raw, member.label)
    rows = tokens["row"].to_numpy()
    inter = pd.DataFrame(
        {
            "user_id": raw["user_id"].to_numpy()[rows],
            "item_id": tokens["item_id"],
            "ts": ts[rows],
            "rating": np.nan,
            "label": pd.array(tokens["label"], dtype="Int8"),
            "impression_id": raw["impression_id"].to_numpy()[rows],
            "src_file": f"{split}/behaviors.tsv",
            "src_row": rows,
            "position": tokens["position"],
        }
    )
    return behaviors, inter


def _read_news(member: Member, split: str) -> pd.DataFrame:
    raw = parse_delimited(member.data, label=member.label, sep="\t", names=_NEWS_FIELDS, encoding="utf-8")
    require_rows(len(raw), label=member.label, what="news")
    check_ids(raw["news_id"], label=member.label, field="News ID", pattern=r"N\d+")
    return raw.assign(_label=member.label, _line=np.arange(1, len(raw) + 1))


def _union_news(news: list[pd.DataFrame]) -> pd.DataFrame:
    """Union of the news tables on News ID; a duplicate must repeat the row exactly."""
    union = pd.concat(news, ignore_index=True)
    distinct = union.drop_duplicates(list(_NEWS_FIELDS))
    clash = distinct["news_id"].duplicated(keep="first").to_numpy()
    if clash.any():
        later = distinct.iloc[int(np.flatnonzero(clash)[0])]
        first = distinct[distinct["news_id"] == later["news_id"]].iloc[0]
        raise SchemaError(
            later["_label"],
            int(later["_line"]),
            "News ID",
            f"news {later['news_id']} differs from its earlier row ({first['_label']}, line {first['_line']})",
        )
    items = distinct.rename(columns={"news_id": "item_id"})
    return items[list(_ITEM_COLUMNS)].reset_index(drop=True)


def _split_manifest(
    split: str, path: Path, members: dict[str, Member], behaviors: pd.DataFrame, inter: pd.DataFrame
) -> dict:
    entry = {
        "source": str(path),
        "files": {name: {"sha256": m.sha256} for name, m in members.items()},
        "impressions": len(behaviors),
        "impression_tokens": len(inter),
        "clicks": int(inter["label"].sum()),
        "users": int(behaviors["user_id"].nunique()),
    }
    if path.is_file():
        digests = file_digests(path, ("sha256", "md5"))
        entry["archive"] = digests
        entry["md5_matches_third_party"] = digests["md5"] == MIND_SMALL_MD5[split]
    return entry


def read_mind_small(source: str | Path, *, sha256: dict[str, str] | None = None) -> RawTables:
    """Read MIND-small from a folder holding ``MINDsmall_{train,dev}.zip`` or their folders.

    Args:
      source: the folder.
      sha256: optional pinned digests of the zips, ``{"train": ..., "dev": ...}``.

    interactions has one row per impression token (extra column ``position``: the token's
    index in the impression); ``extra["behaviors"]`` one row per impression.
    """
    source = Path(source)
    behaviors, inters, news, manifest = [], [], [], {"partition": "mind-small", "splits": {}}
    for split in MIND_SPLITS:
        path = _locate(source, split)
        members = read_members(
            path,
            ("behaviors.tsv", "news.tsv"),
            prefix=f"MINDsmall_{split}/",
            expected_sizes=_SIZES,
            sha256=(sha256 or {}).get(split),
        )
        b, i = _read_behaviors(members["behaviors.tsv"], split)
        behaviors.append(b)
        inters.append(i)
        news.append(_read_news(members["news.tsv"], split))
        manifest["splits"][split] = _split_manifest(split, path, members, b, i)
        manifest["splits"][split]["news"] = len(news[-1])
    return _assemble(behaviors, inters, news, manifest)


def _assemble(
    behaviors: list[pd.DataFrame], inters: list[pd.DataFrame], news: list[pd.DataFrame], manifest: dict
) -> RawTables:
    items = _union_news(news)
    inter = pd.concat(inters, ignore_index=True)
    inter = inter[[*INTERACTION_COLUMNS, "position"]]
    behavior_table = pd.concat(behaviors, ignore_index=True)
    users = pd.DataFrame({"user_id": np.sort(behavior_table["user_id"].unique())}, dtype=object)
    train_tokens = inter.loc[inter["src_file"] == "train/behaviors.tsv", "item_id"]
    manifest.update(
        {
            "counts": {
                "news": len(items),
                "users": len(users),
                "impressions": len(behavior_table),
                "impression_tokens": len(inter),
                "items_with_5_train_tokens": int((train_tokens.value_counts() >= 5).sum()),
                "tokens_unknown_item": int((~inter["item_id"].isin(items["item_id"])).sum()),
            },
            "ts_min": int(behavior_table["ts"].min()) if len(behavior_table) else None,
            "ts_max": int(behavior_table["ts"].max()) if len(behavior_table) else None,
        }
    )
    return RawTables("mind-small", inter, items, users, extra={"behaviors": behavior_table}, manifest=manifest)
