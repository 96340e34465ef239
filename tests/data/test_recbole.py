"""RecBole atomic files (spec §7): the typed header drives parsing, and every malformed header,
row or value is a SchemaError naming file, line and field instead of a silently shifted column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from x_reco.data.errors import MissingFileError, SchemaError
from x_reco.data.recbole import (
    atomic_interactions,
    find_atomic_dir,
    parse_header,
    read_atomic,
    read_recbole_raw,
)
from x_reco.data.registry import load_raw
from x_reco.data.tables import INTERACTION_COLUMNS

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\tlabel:float\t"
    "impression_id:token\tscore:float_seq\n"
    "u1\tN1\t\t1573463158\t1\t7\t0.5 1.5\n"
    "u1\tN2\t\t1573463158\t0\t7\t\n"
    "u2\tN1\t\t1573463200\t0\t8\t2\n"
)


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_header_types():
    assert parse_header("a:token\tb:token_seq\tc:float\td:float_seq", "f") == {
        "a": "token",
        "b": "token_seq",
        "c": "float",
        "d": "float_seq",
    }


@pytest.mark.parametrize(
    "header, field",
    [
        ("user_id\titem_id", "user_id"),
        ("user_id:token\titem_id:int", "item_id:int"),
        ("user_id:token\t:token", ":token"),
    ],
)
def test_header_without_valid_type(header, field):
    with pytest.raises(SchemaError) as err:
        read_atomic(f"{header}\n1\t2\n".encode(), "x.inter")
    assert err.value.line == 1 and err.value.field == field
    assert "x.inter, line 1" in str(err.value) and repr(field) in str(err.value)


def test_types_are_parsed():
    table = read_atomic(INTER.encode(), "m.inter")
    frame = table.frame
    assert frame["rating"].isna().all() and frame["timestamp"].dtype == np.float64
    assert frame["user_id"].tolist() == ["u1", "u1", "u2"]
    assert frame["score"].tolist() == [(0.5, 1.5), (), (2.0,)]


def test_interactions_from_inter():
    inter = atomic_interactions(read_atomic(INTER.encode(), "m.inter"), "m.inter")
    assert tuple(inter.columns[:8]) == INTERACTION_COLUMNS and "score" in inter.columns
    assert inter["ts"].dtype == np.int64 and inter["ts"].tolist()[2] == 1573463200
    assert inter["label"].tolist() == [1, 0, 0] and str(inter["label"].dtype) == "Int8"
    assert inter["impression_id"].tolist() == ["7", "7", "8"]
    assert inter["src_row"].tolist() == [0, 1, 2]


def test_wrong_field_count_names_line_and_field():
    text = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n4\t5\n"
    with pytest.raises(SchemaError, match=r"a\.inter, line 3, field 'timestamp'"):
        read_atomic(text.encode(), "a.inter")


def test_unparsable_float_names_line_and_field():
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\tfour\t3\n"
    with pytest.raises(SchemaError, match=r"a\.inter, line 2, field 'rating'.*'four'"):
        read_atomic(text.encode(), "a.inter")


def test_non_integral_timestamp_is_rejected():
    text = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\t881250949.5\n"
    with pytest.raises(SchemaError, match=r"a\.inter, line 3, field 'timestamp'.*non-integral"):
        atomic_interactions(read_atomic(text.encode(), "a.inter"), "a.inter")


def test_missing_required_field():
    text = "user_id:token\titem_id:token\n1\t2\n"
    with pytest.raises(SchemaError, match=r"a\.inter, line 1, field 'timestamp'"):
        atomic_interactions(read_atomic(text.encode(), "a.inter"), "a.inter")


def test_label_must_be_binary():
    text = "user_id:token\titem_id:token\ttimestamp:float\tlabel:float\n1\t2\t3\t2\n"
    with pytest.raises(SchemaError, match=r"line 2, field 'label'"):
        atomic_interactions(read_atomic(text.encode(), "a.inter"), "a.inter")


def test_bom_and_crlf_are_tolerated():
    text = "\ufeffuser_id:token\titem_id:token\ttimestamp:float\r\n1\t2\t3\r\n"
    inter = atomic_interactions(read_atomic(text.encode(), "a.inter"), "a.inter")
    assert inter[["user_id", "item_id", "ts"]].values.tolist() == [["1", "2", 3]]


def test_generic_directory_and_registry(tmp_path):
    folder = _write(
        tmp_path / "mind",
        {
            "mind.inter": INTER,
            "mind.item": 'item_id:token\tcategory:token\ttitle:token_seq\nN1\tnews\tA "quote\nN2\tx\tB\n',
        },
    )
    assert find_atomic_dir(folder) == (folder, "mind")
    tables = read_recbole_raw("mind-small", folder)
    assert tables.items.columns.tolist() == ["item_id", "category", "title"]
    assert tables.items["title"].tolist() == ['A "quote', "B"]
    assert tables.users["user_id"].tolist() == ["u1", "u2"]  # no .user: ids of the interactions
    assert tables.manifest["files"]["mind.inter"]["rows"] == 3
    via_registry = load_raw("mind-small", folder)
    pd.testing.assert_frame_equal(via_registry.interactions, tables.interactions)


def test_not_an_atomic_directory(tmp_path):
    with pytest.raises(MissingFileError, match=str(tmp_path)):
        read_recbole_raw("mind-small", tmp_path)
