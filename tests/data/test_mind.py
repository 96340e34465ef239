"""MIND-small reader on tiny files in the official format: quoting disabled (titles carry
unbalanced double quotes that a default CSV reader would swallow across lines), empty histories,
12-hour times read as naive UTC, one interaction per impression token, a de-duplicated news
union."""

from __future__ import annotations

import calendar
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from x_reco.data.errors import MissingFileError, SchemaError
from x_reco.data.mind import read_mind_small
from x_reco.data.registry import load_raw
from x_reco.data.tables import INTERACTION_COLUMNS

ENT = '[{"Label": "Prince Philip", "Type": "P", "WikidataId": "Q80976", "Confidence": 1.0}]'
NEWS_TRAIN = (
    f"N55528\tlifestyle\tlifestyleroyals\tThe Brands Queen Elizabeth Swear By\tShop them.\t"
    f"https://assets.msn.com/labs/mind/AAGH0ET.html\t{ENT}\t[]\n"
    'N19639\thealth\tweightloss\t"Biggest Loser" star\'s 5 rules\t\t'
    "https://assets.msn.com/labs/mind/AAB19MK.html\t[]\t[]\n"
    "N61837\tnews\tnewsworld\tA title\tAn abstract.\thttps://assets.msn.com/labs/mind/AAJgNsz.html"
    "\t[]\t[]\n"
)
NEWS_DEV = (
    "N61837\tnews\tnewsworld\tA title\tAn abstract.\thttps://assets.msn.com/labs/mind/AAJgNsz.html"
    "\t[]\t[]\n"
    "N11111\tsports\tfootball_nfl\tGame day\tRecap.\thttps://assets.msn.com/labs/mind/X.html"
    "\t[]\t[]\n"
)
BEHAVIORS_TRAIN = (
    "1\tU13740\t11/11/2019 9:05:58 AM\tN55528 N19639\tN55528-0 N19639-1 N61837-0\n"
    "2\tU91836\t11/12/2019 6:11:30 PM\t\tN61837-1\n"  # empty History
    "3\tU13740\t11/13/2019 12:00:01 AM\tN19639\tN55528-0 N61837-0\n"
)
BEHAVIORS_DEV = "1\tU55555\t11/15/2019 8:55:22 AM\tN55528\tN11111-1 N61837-0\n"


def _utc(*args) -> int:
    return calendar.timegm((*args, 0, 0, 0))


def mind_files(**overrides: bytes) -> dict[str, dict[str, bytes]]:
    files = {
        "train": {
            "behaviors.tsv": BEHAVIORS_TRAIN.encode(),
            "news.tsv": NEWS_TRAIN.encode(),
            "entity_embedding.vec": b"Q80976\t0.1\t0.2\n",
            "relation_embedding.vec": b"",
        },
        "dev": {
            "behaviors.tsv": BEHAVIORS_DEV.encode(),
            "news.tsv": NEWS_DEV.encode(),
            "entity_embedding.vec": b"",
            "relation_embedding.vec": b"",
        },
    }
    for key, data in overrides.items():
        split, name = key.split("__")
        files[split][name.replace("_tsv", ".tsv")] = data
    return files


def write_mind(folder: Path, files: dict[str, dict[str, bytes]], as_zip: bool = True) -> Path:
    """MINDsmall_{train,dev}.zip with the four files at the archive's top level (or folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, members in files.items():
        if as_zip:
            archive = folder / f"MINDsmall_{split}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
        else:
            (folder / f"MINDsmall_{split}").mkdir()
            for name, data in members.items():
                (folder / f"MINDsmall_{split}" / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def mind(tmp_path_factory):
    return read_mind_small(write_mind(tmp_path_factory.mktemp("mind"), mind_files()))


def test_one_interaction_per_impression_token(mind):
    inter = mind.interactions
    assert tuple(inter.columns) == (*INTERACTION_COLUMNS, "position")
    assert len(inter) == 3 + 1 + 2 + 2
    train = inter[inter["src_file"] == "train/behaviors.tsv"]
    assert train["item_id"].tolist() == ["N55528", "N19639", "N61837", "N61837", "N55528", "N61837"]
    assert train["label"].tolist() == [0, 1, 0, 1, 0, 0] and str(inter["label"].dtype) == "Int8"
    assert train["src_row"].tolist() == [0, 0, 0, 1, 2, 2]
    assert train["position"].tolist() == [0, 1, 2, 0, 0, 1]
    assert train["impression_id"].tolist() == ["1", "1", "1", "2", "3", "3"]
    assert inter["rating"].isna().all()
    dev = inter[inter["src_file"] == "dev/behaviors.tsv"]
    assert dev["user_id"].tolist() == ["U55555", "U55555"] and dev["impression_id"].eq("1").all()


def test_times_are_naive_utc(mind):
    ts = mind.extra["behaviors"]["ts"].tolist()
    assert ts == [
        _utc(2019, 11, 11, 9, 5, 58),
        _utc(2019, 11, 12, 18, 11, 30),
        _utc(2019, 11, 13, 0, 0, 1),
        _utc(2019, 11, 15, 8, 55, 22),
    ]
    assert mind.interactions["ts"].dtype == np.int64


def test_behaviors_table(mind):
    behaviors = mind.extra["behaviors"]
    assert behaviors.columns.tolist() == ["impression_id", "user_id", "ts", "history", "file", "src_row"]
    assert behaviors["history"].tolist() == ["N55528 N19639", "", "N19639", "N55528"]
    assert behaviors["file"].tolist() == ["train", "train", "train", "dev"]
    assert behaviors["src_row"].tolist() == [0, 1, 2, 0]


def test_news_union_keeps_quotes_and_dedups(mind):
    items = mind.items
    assert items.columns.tolist() == [
        "item_id",
        "category",
        "subcategory",
        "title",
        "abstract",
        "title_entities",
        "abstract_entities",
    ]
    assert items["item_id"].tolist() == ["N55528", "N19639", "N61837", "N11111"]
    titles = items.set_index("item_id")["title"]
    assert titles["N19639"] == '"Biggest Loser" star\'s 5 rules'
    assert items.set_index("item_id").loc["N19639", "abstract"] == ""
    assert items.set_index("item_id").loc["N55528", "title_entities"] == ENT


def test_users_and_manifest(mind):
    assert mind.users["user_id"].tolist() == ["U13740", "U55555", "U91836"]
    counts = mind.manifest["counts"]
    assert counts == {
        "news": 4,
        "users": 3,
        "impressions": 4,
        "impression_tokens": 8,
        "items_with_5_train_tokens": 0,
        "tokens_unknown_item": 0,
    }
    train = mind.manifest["splits"]["train"]
    assert train["impressions"] == 3 and train["impression_tokens"] == 6 and train["clicks"] == 2
    assert len(train["archive"]["sha256"]) == 64 and train["md5_matches_third_party"] is False


def test_extracted_folders_read_like_zips(tmp_path, mind):
    tables = load_raw("mind-small", write_mind(tmp_path, mind_files(), as_zip=False))
    pd.testing.assert_frame_equal(tables.interactions, mind.interactions)
    pd.testing.assert_frame_equal(tables.items, mind.items)


def test_differing_duplicate_news_names_the_id(tmp_path):
    dev_news = NEWS_DEV.replace("An abstract.", "Another abstract.").encode()
    folder = write_mind(tmp_path, mind_files(dev__news_tsv=dev_news))
    with pytest.raises(SchemaError) as err:
        read_mind_small(folder)
    message = str(err.value)
    assert "N61837" in message and "MINDsmall_dev.zip[news.tsv], line 1" in message
    assert "MINDsmall_train.zip[news.tsv], line 3" in message


def test_bad_impression_token(tmp_path):
    behaviors = BEHAVIORS_TRAIN.replace("N61837-1", "N61837-2").encode()
    with pytest.raises(SchemaError, match=r"behaviors\.tsv\], line 2, field 'Impressions'"):
        read_mind_small(write_mind(tmp_path, mind_files(train__behaviors_tsv=behaviors)))


def test_bad_time(tmp_path):
    behaviors = BEHAVIORS_TRAIN.replace("6:11:30 PM", "18:11:30").encode()
    with pytest.raises(SchemaError, match=r"behaviors\.tsv\], line 2, field 'Time'"):
        read_mind_small(write_mind(tmp_path, mind_files(train__behaviors_tsv=behaviors)))


def test_missing_dev_archive(tmp_path):
    files = mind_files()
    del files["dev"]
    with pytest.raises(MissingFileError, match="MINDsmall_dev.zip"):
        read_mind_small(write_mind(tmp_path, files))


@pytest.mark.skipif(
    not os.environ.get("XRECO_SOURCE_MIND_SMALL"),
    reason="set XRECO_SOURCE_MIND_SMALL to the folder with MINDsmall_{train,dev}.zip",
)
def test_real_mind_small():
    tables = read_mind_small(os.environ["XRECO_SOURCE_MIND_SMALL"])
    splits = tables.manifest["splits"]
    assert (splits["train"]["impressions"], splits["dev"]["impressions"]) == (156_965, 73_152)
    assert (splits["train"]["news"], splits["dev"]["news"]) == (51_282, 42_416)
    assert len(tables.items) == 65_238 and len(tables.users) == 94_057
    tokens = (splits["train"]["impression_tokens"], splits["dev"]["impression_tokens"])
    assert tokens == (5_843_444, 2_740_998)
    assert tables.manifest["counts"]["items_with_5_train_tokens"] == 12_261
