"""Amazon Kindle_Store reader on tiny files in the official 2023 formats: millisecond timestamps
become seconds (and a file mixing units is refused), non-numeric prices become NaN and are
counted, and the reference subset is the one-pass top-items-then-active-users rule of spec §6."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from x_reco.data.amazon import read_amazon_kindle, reference_subset
from x_reco.data.errors import CorruptArchiveError, SchemaError
from x_reco.data.tables import INTERACTION_COLUMNS

RATINGS = [  # user, item, rating, timestamp (ms)
    ("AE1", "B001", "5.0", "1588615855070"),
    ("AE1", "B002", "4.0", "1588615855070"),
    ("AE1", "B003", "1.0", "1600000000000"),
    ("AE2", "B001", "3.0", "1500000000000"),
    ("AE2", "B002", "2.0", "1500000001000"),
    ("AE3", "B001", "5.0", "1400000000999"),
    ("AE3", "B004", "4.0", "1400000000000"),
]
META = [
    {
        "main_category": "Kindle Store",
        "title": "Book One",
        "average_rating": 4.5,
        "rating_number": 1200,
        "features": [],
        "description": [],
        "price": 9.99,
        "images": [],
        "videos": [],
        "store": "Jane Doe (Author)",
        "categories": ["Kindle Store", "Kindle eBooks", "Romance"],
        "details": {"Publisher": "X", "Print length": "320 pages"},
        "parent_asin": "B001",
        "bought_together": None,
    },
    {
        "main_category": "Kindle Store",
        "title": "Book Two",
        "average_rating": 3.1,
        "rating_number": 12,
        "price": "from 0.99",
        "store": None,
        "categories": [],
        "details": {"Print length": "1,024 pages"},
        "parent_asin": "B002",
    },
    {"main_category": None, "title": "Unrelated", "price": None, "parent_asin": "B999", "details": {}},
    {
        "main_category": "Kindle Store",
        "title": "Book Three",
        "average_rating": 2.0,
        "rating_number": 3,
        "price": None,
        "store": "S",
        "categories": ["Kindle Store"],
        "details": {},
        "parent_asin": "B003",
    },
]
REVIEWS = [
    {
        "rating": 5.0,
        "title": "Great",
        "text": "Loved it",
        "images": [],
        "asin": "B001X",
        "parent_asin": "B001",
        "user_id": "AE1",
        "timestamp": 1588615855070,
        "helpful_vote": 0,
        "verified_purchase": True,
    },
    {
        "rating": 4.0,
        "title": "",
        "text": "  ",
        "asin": "B002",
        "parent_asin": "B002",
        "user_id": "AE1",
        "timestamp": 1588615855070,
    },
]


def _csv(rows) -> bytes:
    return ("user_id,parent_asin,rating,timestamp\n" + "".join(",".join(r) + "\n" for r in rows)).encode()


def _jsonl_gz(records) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def write_kindle(folder: Path, rows=RATINGS, *, gz: bool = False, meta=True, reviews=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = _csv(rows)
    if gz:
        (folder / "Kindle_Store.csv.gz").write_bytes(gzip.compress(data))
    else:
        (folder / "Kindle_Store.csv").write_bytes(data)
    if meta:
        (folder / "meta_Kindle_Store.jsonl.gz").write_bytes(_jsonl_gz(META))
    if reviews:
        (folder / "Kindle_Store.jsonl.gz").write_bytes(_jsonl_gz(REVIEWS))
    return folder


@pytest.fixture(scope="module")
def kindle(tmp_path_factory):
    return read_amazon_kindle(write_kindle(tmp_path_factory.mktemp("kindle")), top_items=3, min_user_reviews=2)


def test_subset_rule():
    inter = pd.DataFrame({"user_id": [r[0] for r in RATINGS], "item_id": [r[1] for r in RATINGS]})
    subset = reference_subset(inter, top_items=3, min_user_reviews=2)
    # items by count: B001 (3), B002 (2), then B003/B004 (1) tie -> B003 by id; AE3 keeps 1
    assert subset.index.tolist() == [0, 1, 2, 3, 4]


def test_interactions(kindle):
    inter = kindle.interactions
    assert tuple(inter.columns) == (*INTERACTION_COLUMNS, "has_text")
    assert inter["user_id"].tolist() == ["AE1", "AE1", "AE1", "AE2", "AE2"]
    assert inter["ts"].tolist() == [1588615855, 1588615855, 1600000000, 1500000000, 1500000001]
    assert inter["ts"].dtype == np.int64 and inter["rating"].dtype == np.float64
    assert inter["src_row"].tolist() == [0, 1, 2, 3, 4]
    assert (inter["src_file"] == "Kindle_Store.csv").all()
    assert inter["has_text"].tolist()[:2] == [True, False] and inter["has_text"].isna().sum() == 3
    assert kindle.users["user_id"].tolist() == ["AE1", "AE2"]


def test_items_from_meta(kindle):
    items = kindle.items.set_index("item_id")
    assert kindle.items.columns.tolist() == [
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
    ]
    assert items.index.tolist() == ["B001", "B002", "B003"]
    assert items.loc["B001", "price"] == 9.99 and np.isnan(items.loc["B002", "price"])
    assert json.loads(items.loc["B001", "categories"])[-1] == "Romance"
    assert items["print_length_pages"].tolist()[:2] == [320, 1024]
    assert str(items["rating_number"].dtype) == "Int64"
    assert items.loc["B002", "store"] is None
    meta = kindle.manifest["meta"]
    assert meta["price_non_numeric"] == 1 and meta["items_without_meta"] == 0


def test_manifest(kindle):
    manifest = kindle.manifest
    assert manifest["five_core"]["rows"] == 7 and manifest["five_core"]["timestamp_unit"] == "ms"
    assert manifest["subset"]["interactions"] == 5 and manifest["subset"]["items"] == 3
    assert manifest["ties"] == {"ratings_in_ties": 2, "tie_groups": 1, "users_latest_ts_shared": 0}
    assert set(manifest["files"]) == {"Kindle_Store.csv", "meta_Kindle_Store.jsonl.gz", "Kindle_Store.jsonl.gz"}


def test_gzip_csv_without_side_files(tmp_path, kindle):
    tables = read_amazon_kindle(
        write_kindle(tmp_path, gz=True, meta=False, reviews=False), top_items=3, min_user_reviews=2
    )
    cols = ["user_id", "item_id", "ts", "rating", "src_row"]
    pd.testing.assert_frame_equal(tables.interactions[cols], kindle.interactions[cols])
    assert tables.items["title"].isna().all() and tables.manifest["meta"]["items_without_meta"] == 3
    assert tables.interactions["has_text"].isna().all()


def test_seconds_stay_seconds(tmp_path):
    rows = [(u, i, r, str(int(t) // 1000)) for u, i, r, t in RATINGS]
    tables = read_amazon_kindle(write_kindle(tmp_path, rows), top_items=3, min_user_reviews=2)
    assert tables.interactions["ts"].tolist()[0] == 1588615855
    assert tables.manifest["five_core"]["timestamp_unit"] == "s"


def test_mixed_units_are_refused(tmp_path):
    rows = list(RATINGS)
    rows[3] = ("AE2", "B001", "3.0", "1500000000")
    with pytest.raises(SchemaError, match=r"Kindle_Store\.csv, line 5, field 'timestamp'.*mixed"):
        read_amazon_kindle(write_kindle(tmp_path, rows))


def test_wrong_header(tmp_path):
    folder = write_kindle(tmp_path)
    (folder / "Kindle_Store.csv").write_bytes(b"user_id,asin,rating,timestamp\nA,B,5.0,1\n")
    with pytest.raises(SchemaError, match=r"Kindle_Store\.csv, line 1, field 'parent_asin'"):
        read_amazon_kindle(folder)


def test_truncated_meta_gzip(tmp_path):
    folder = write_kindle(tmp_path)
    data = (folder / "meta_Kindle_Store.jsonl.gz").read_bytes()
    (folder / "meta_Kindle_Store.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptArchiveError, match="meta_Kindle_Store.jsonl.gz"):
        read_amazon_kindle(folder, top_items=3, min_user_reviews=2)


@pytest.mark.skipif(
    not os.environ.get("XRECO_SOURCE_AMAZON_KINDLE"),
    reason="set XRECO_SOURCE_AMAZON_KINDLE to the folder with Kindle_Store.csv(.gz)",
)
def test_real_kindle():
    tables = read_amazon_kindle(os.environ["XRECO_SOURCE_AMAZON_KINDLE"])
    inter = tables.interactions
    assert inter["item_id"].nunique() <= 20_000
    assert inter["user_id"].value_counts().min() >= 5
    assert 830_908_800 <= inter["ts"].min() and inter["ts"].max() <= 1_696_118_400
