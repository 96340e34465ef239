"""Amazon Reviews 2023 Kindle_Store reader: 5-core ratings, item metadata, reference subset."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from x_reco.data.archive import (
    UNIX_SECONDS,
    check_complete,
    check_ids,
    check_range,
    check_unique,
    decode,
    file_digests,
    gunzip,
    gzip_lines,
    require_rows,
    split_fields,
    text_lines,
    to_float,
    to_int,
)
from x_reco.data.errors import EncodingError, MissingFileError, SchemaError
from x_reco.data.movielens import tie_statistics
from x_reco.data.tables import INTERACTION_COLUMNS, RawTables

RATINGS_FILES = ("Kindle_Store.csv", "Kindle_Store.csv.gz")
META_FILE = "meta_Kindle_Store.jsonl.gz"
REVIEWS_FILE = "Kindle_Store.jsonl.gz"
# where the Hugging Face layout keeps each file, relative to the source folder
_SUBDIRS = ("", "benchmark/5core/rating_only", "raw/meta_categories", "raw/review_categories")
_CSV_HEADER = ("user_id", "parent_asin", "rating", "timestamp")
MS_THRESHOLD = 10**11  # larger timestamps are milliseconds
_ASIN = re.compile(rb'"parent_asin":\s*"([^"]*)"')
_USER = re.compile(rb'"user_id":\s*"([^"]*)"')
_PAGES = re.compile(r"(\d[\d,]*)\s*pages?\b", re.IGNORECASE)
_META_COLUMNS = (
    "item_id",
    "title",
    "main_category",
    "categories",
    "price",
    "average_rating",
    "rating_number",
    "store",
    "print_length_pages",
    "details",
    "_price_non_numeric",
)


def _find(source: Path, names: tuple[str, ...]) -> Path | None:
    for sub in _SUBDIRS:
        for name in names:
            if (source / sub / name).is_file():
                return source / sub / name
    return None


# --- 5-core ratings ---------------------------------------------------------------------------


def _seconds(ms_or_s: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    """Convert to seconds; one file must use one unit (values > 1e11 are milliseconds)."""
    is_ms = ms_or_s > MS_THRESHOLD
    if is_ms.size and is_ms.any() and not is_ms.all():
        row = int(np.flatnonzero(is_ms != is_ms[0])[0])
        raise SchemaError(label, row + 2, "timestamp", f"mixed units: {ms_or_s[0]} on line 2 but {ms_or_s[row]} here")
    if is_ms.size and is_ms[0]:
        return ms_or_s // 1000, "ms"
    return ms_or_s, "s"


def _read_ratings(path: Path) -> tuple[pd.DataFrame, dict]:
    label = str(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gunzip(data, label)
    text = decode(data, label, "utf-8")
    check_complete(text, label, ",", _CSV_HEADER)
    lines = text_lines(text)
    header = tuple(lines[0].split(",")) if lines else ()
    if header != _CSV_HEADER:
        missing = next((c for c in _CSV_HEADER if c not in header), None)
        raise SchemaError(label, 1, missing, f"header {','.join(header)!r}, expected {','.join(_CSV_HEADER)!r}")
    raw = split_fields(lines[1:], label=label, sep=",", names=_CSV_HEADER, first_line=2)
    require_rows(len(raw), label=label, first_line=2, what="ratings")
    for field in ("user_id", "parent_asin"):
        check_ids(raw[field], label=label, field=field, first_line=2)
    check_unique(raw, ("user_id", "parent_asin"), label=label, first_line=2)  # R5
    rating = to_float(raw["rating"], label=label, field="rating", first_line=2)
    bad = np.flatnonzero((rating < 1) | (rating > 5))
    if bad.size:  # R3
        raise SchemaError(label, int(bad[0]) + 2, "rating", f"rating {rating[bad[0]]} not in 1..5")
    lo, hi = UNIX_SECONDS
    raw_ts = to_int(raw["timestamp"], label=label, field="timestamp", first_line=2, lo=lo, hi=hi * 1000)
    ts, unit = _seconds(raw_ts, label)
    check_range(ts, label=label, field="timestamp", lo=lo, hi=hi, first_line=2, strings=raw["timestamp"])
    inter = pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(object),
            "item_id": raw["parent_asin"].astype(object),
            "ts": ts,
            "rating": rating,
            "label": pd.Series(pd.NA, index=raw.index, dtype="Int8"),
            "impression_id": None,
            "src_file": path.name,
            "src_row": np.arange(len(raw), dtype=np.int64),
        }
    )
    return inter, {
        "rows": len(inter),
        "timestamp_unit": unit,
        "users": int(inter["user_id"].nunique()),
        "items": int(inter["item_id"].nunique()),
        "duplicate_pairs": int(inter.duplicated(["user_id", "item_id"]).sum()),
    }


def reference_subset(inter: pd.DataFrame, top_items: int = 20_000, min_user_reviews: int = 5) -> pd.DataFrame:
    """The reference study's subset: the ``top_items`` items with most reviews (ties broken by
    item id), then users with >= ``min_user_reviews`` reviews on them; one pass, no fixed point.
    Rows keep their source order."""
    counts = inter["item_id"].value_counts()
    ranked = counts.reset_index().sort_values(["count", "item_id"], ascending=[False, True], kind="stable")
    kept = inter[inter["item_id"].isin(ranked["item_id"].iloc[:top_items])]
    per_user = kept["user_id"].value_counts()
    return kept[kept["user_id"].isin(per_user.index[per_user >= min_user_reviews])]


# --- JSON Lines -------------------------------------------------------------------------------


def _jsonl(path: Path, pattern: re.Pattern, wanted: set) -> Iterator[tuple[int, dict]]:
    """Stream ``(line, record)`` of a gzip JSON Lines file, parsing only lines whose
    ``pattern`` match is in ``wanted`` (the files are far larger than the subset)."""
    for line_no, line in gzip_lines(path):
        match = pattern.search(line)
        if match is None or match.group(1).decode("utf-8", "replace") not in wanted:
            continue
        yield line_no, _loads(line, str(path), line_no)


def _loads(line: bytes, label: str, line_no: int) -> dict:
    try:
        record = json.loads(line)
    except UnicodeDecodeError as exc:
        raise EncodingError(label, line_no, "utf-8", exc.reason) from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(label, line_no, None, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise SchemaError(label, line_no, None, "a JSON object per line expected")
    return record


def _price(value) -> tuple[float, bool]:
    """(price, was a non-numeric string)."""
    if value is None or isinstance(value, bool):
        return np.nan, False
    if isinstance(value, (int, float)):
        return float(value), False
    try:
        return float(str(value).strip()), False
    except ValueError:
        return np.nan, True


def _pages(details) -> int | None:
    text = details.get("Print length") if isinstance(details, dict) else None
    match = _PAGES.search(text) if isinstance(text, str) else None
    return int(match.group(1).replace(",", "")) if match else None


def _meta_row(record: dict) -> dict:
    price, non_numeric = _price(record.get("price"))
    categories, details = record.get("categories"), record.get("details")
    return {
        "item_id": record["parent_asin"],
        "title": record.get("title"),
        "main_category": record.get("main_category"),
        "categories": None if categories is None else json.dumps(categories, ensure_ascii=False),
        "price": price,
        "average_rating": record.get("average_rating"),
        "rating_number": record.get("rating_number"),
        "store": record.get("store"),
        "print_length_pages": _pages(details),
        "details": None if details is None else json.dumps(details, ensure_ascii=False),
        "_price_non_numeric": non_numeric,
    }


def _read_meta(path: Path | None, item_ids: pd.Series) -> tuple[pd.DataFrame, dict]:
    """Items table for ``item_ids`` (sorted), metadata where present."""
    rows, duplicates = {}, 0
    if path is not None:
        wanted = set(item_ids)
        for _, record in _jsonl(path, _ASIN, wanted):
            asin = record.get("parent_asin")
            if asin in wanted:
                duplicates += asin in rows
                rows.setdefault(asin, _meta_row(record))
    meta = pd.DataFrame(list(rows.values()), columns=list(_META_COLUMNS))
    items = pd.DataFrame({"item_id": np.sort(item_ids.unique())}, dtype=object)
    items = items.merge(meta, on="item_id", how="left")
    stats = {
        "file": path is not None,
        "items_without_meta": int((~items["item_id"].isin(meta["item_id"])).sum()),
        "price_non_numeric": int(items["_price_non_numeric"].eq(True).sum()),
        "print_length_missing": int(items["print_length_pages"].isna().sum()),
        "duplicate_rows": duplicates,
    }
    return _item_dtypes(items.drop(columns="_price_non_numeric")), stats


def _item_dtypes(items: pd.DataFrame) -> pd.DataFrame:
    for column in ("title", "main_category", "categories", "store", "details"):
        items[column] = items[column].astype(object).where(items[column].notna(), None)
    items["price"] = items["price"].astype(np.float64)
    items["average_rating"] = pd.to_numeric(items["average_rating"]).astype(np.float64)
    items["rating_number"] = pd.to_numeric(items["rating_number"]).astype("Int64")
    items["print_length_pages"] = pd.to_numeric(items["print_length_pages"]).astype("Int64")
    return items


def _review_text_flags(path: Path | None, inter: pd.DataFrame) -> tuple[pd.Series, dict]:
    """``has_text`` per interaction from the earliest review of that (user, item); NA if none."""
    if path is None:
        return pd.Series(pd.NA, index=inter.index, dtype="boolean"), {"file": False}
    pairs = set(zip(inter["user_id"], inter["item_id"]))
    earliest: dict[tuple[str, str], tuple[int, int]] = {}
    for _, record in _jsonl(path, _USER, set(inter["user_id"])):
        key = (record.get("user_id"), record.get("parent_asin"))
        if key in pairs:
            text = str(record.get("text") or "").strip()
            entry = (int(record.get("timestamp") or 0), bool(text))
            earliest[key] = min(earliest.get(key, entry), entry)
    flags = [earliest[k][1] if k in earliest else pd.NA for k in zip(inter["user_id"], inter["item_id"])]
    return pd.Series(flags, index=inter.index, dtype="boolean"), {
        "file": True,
        "pairs_without_review": len(pairs) - len(earliest),
    }


# --- public reader ----------------------------------------------------------------------------


def read_amazon_kindle(source: str | Path, *, top_items: int = 20_000, min_user_reviews: int = 5) -> RawTables:
    """Read Kindle_Store (Amazon Reviews 2023) and build the reference subset (spec §6).

    Args:
      source: folder with ``Kindle_Store.csv`` (or ``.csv.gz``), optional
        ``meta_Kindle_Store.jsonl.gz`` and ``Kindle_Store.jsonl.gz`` (also found in the Hugging
        Face layout's sub-folders).
      top_items, min_user_reviews: the subset rule.

    interactions carry an extra ``has_text`` column (nullable boolean: the review has text; NA
    without the review file or review). items keep ``details`` as a JSON string.
    """
    source = Path(source)
    ratings_path = _find(source, RATINGS_FILES)
    if ratings_path is None:
        raise MissingFileError(source / RATINGS_FILES[0], None, f"or {RATINGS_FILES[1]}")
    five_core, core_stats = _read_ratings(ratings_path)
    inter = reference_subset(five_core, top_items, min_user_reviews)
    meta_path, reviews_path = _find(source, (META_FILE,)), _find(source, (REVIEWS_FILE,))
    items, meta_stats = _read_meta(meta_path, inter["item_id"])
    has_text, review_stats = _review_text_flags(reviews_path, inter)
    inter = inter[list(INTERACTION_COLUMNS)].assign(has_text=has_text).reset_index(drop=True)
    users = pd.DataFrame({"user_id": np.sort(inter["user_id"].unique())}, dtype=object)
    files = [p for p in (ratings_path, meta_path, reviews_path) if p is not None]
    manifest = {
        "partition": "amazon-kindle",
        "source": str(source),
        "files": {p.name: file_digests(p, ("sha256",)) for p in files},
        "five_core": core_stats,
        "subset": {
            "top_items": top_items,
            "min_user_reviews": min_user_reviews,
            "interactions": len(inter),
            "users": len(users),
            "items": len(items),
        },
        "meta": meta_stats,
        "reviews": review_stats,
        "ts_min": int(inter["ts"].min()) if len(inter) else None,
        "ts_max": int(inter["ts"].max()) if len(inter) else None,
        "ties": tie_statistics(inter),
    }
    return RawTables("amazon-kindle", inter, items, users, manifest=manifest)
