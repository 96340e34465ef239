"""Strict readers (issue 12, item 2 and the gzip half of item 7): a text file cut inside its last
value, an out-of-range timestamp, an empty or non-numeric id, an empty table and a repeated row each
used to get through (or die with a bare ValueError naming no file); each is now a ``SchemaError``
naming file, line and field. A gzip stream that expands past its cap is refused like a zip member
that declares too much."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from tests.data.test_amazon import write_kindle
from tests.data.test_mind import mind_files, write_mind
from tests.data.test_readers_bad_input import U_DATA, tiny_grouplens
from x_reco.data.amazon import read_amazon_kindle
from x_reco.data.archive import GZIP_FLOOR_BYTES, gunzip, gzip_lines, to_int
from x_reco.data.errors import SchemaError, UnsafeArchiveEntryError
from x_reco.data.mind import read_mind_small
from x_reco.data.movielens import read_movielens_1m, read_movielens_100k
from x_reco.data.recbole import read_recbole_raw

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
INTER_ROWS = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy\n"
ITEM += "302\tL.A. Confidential\t1997\tCrime Film-Noir\n377\tHeavyweights\t1994\tChildren's Comedy\n"
USER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n196\t49\tM\twriter\t55105\n"
USER += "186\t39\tF\texecutive\t00000\n22\t25\tM\twriter\t40206\n"


def grouplens_dir(tmp_path: Path, **overrides: bytes) -> Path:
    """An extracted ml-100k/ folder (no zip CRC to catch a cut file)."""
    folder = tmp_path / "ml-100k"
    folder.mkdir(parents=True)
    for name, data in tiny_grouplens(**overrides).items():
        (folder / name).write_bytes(data)
    return folder


def recbole_dir(tmp_path: Path, inter: str = INTER_HEADER + INTER_ROWS, item: str = ITEM, user: str = USER) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for suffix, text in (("inter", inter), ("item", item), ("user", user)):
        (folder / f"ml-100k.{suffix}").write_text(text, encoding="utf-8")
    return folder


def ml1m_dir(tmp_path: Path, ratings: bytes = b"1::1193::5::978300760\n") -> Path:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_bytes(ratings)
    (folder / "movies.dat").write_bytes(b"1193::Title (1975)::Drama\n")
    (folder / "users.dat").write_bytes(b"1::F::1::10::48067\n")
    return folder


def fails(read, where: str, field: str | None, *needles: str) -> SchemaError:
    """``read()`` raises a SchemaError whose message starts with ``where`` and names ``field``."""
    with pytest.raises(SchemaError) as err:
        read()
    message = str(err.value)
    assert where in message and err.value.field == field, message
    for needle in needles:
        assert needle in message, (needle, message)
    return err.value


def test_fixtures_are_valid(tmp_path):
    assert len(read_movielens_100k(grouplens_dir(tmp_path / "gl"), sha256=None).interactions) == 3
    assert len(read_movielens_100k(recbole_dir(tmp_path)).interactions) == 3
    assert len(read_movielens_1m(ml1m_dir(tmp_path)).interactions) == 1


# --- a file cut inside its last value ----------------------------------------------------------


def test_recbole_inter_cut_inside_last_value(tmp_path):
    folder = recbole_dir(tmp_path, inter=INTER_HEADER + INTER_ROWS[:-4])  # 878887116 -> 878887
    fails(
        lambda: read_movielens_100k(folder),
        f"{folder / 'ml-100k.inter'}, line 4, field 'timestamp'",
        "timestamp",
        "truncated: the file ends inside line 4, without a newline",
    )


def test_recbole_side_file_cut(tmp_path):
    folder = recbole_dir(tmp_path, user=USER[:-3])
    fails(lambda: read_movielens_100k(folder), "ml-100k.user, line 4, field 'zip_code'", "zip_code", "truncated")


def test_grouplens_u_data_cut_inside_last_value(tmp_path):
    folder = grouplens_dir(tmp_path, u_data=U_DATA[:-4])
    fails(
        lambda: read_movielens_100k(folder, sha256=None),
        f"{folder / 'u.data'}, line 3, field 'timestamp'",
        "timestamp",
        "truncated",
    )


def test_cut_inside_an_earlier_field_names_that_field(tmp_path):
    folder = ml1m_dir(tmp_path, ratings=b"1::1193::5::978300760\n1::66")
    fails(lambda: read_movielens_1m(folder), "ratings.dat, line 2, field 'item_id'", "item_id", "truncated")


def test_amazon_csv_cut(tmp_path):
    folder = write_kindle(tmp_path, meta=False, reviews=False)
    path = folder / "Kindle_Store.csv"
    path.write_bytes(path.read_bytes()[:-5])
    fails(lambda: read_amazon_kindle(folder), f"{path}, line 8, field 'timestamp'", "timestamp", "truncated")


def test_mind_behaviors_cut(tmp_path):
    files = mind_files()
    files["train"]["behaviors.tsv"] = files["train"]["behaviors.tsv"][:-3]
    folder = write_mind(tmp_path / "mind", files, as_zip=False)
    fails(
        lambda: read_mind_small(folder),
        "MINDsmall_train/behaviors.tsv, line 3, field 'impressions'",
        "impressions",
        "truncated",
    )


# --- out-of-range values -------------------------------------------------------------------------


def test_grouplens_timestamp_1e30(tmp_path):
    folder = grouplens_dir(tmp_path, u_data=U_DATA.replace(b"891717742", b"1e30"))
    fails(
        lambda: read_movielens_100k(folder, sha256=None),
        "u.data, line 3, field 'timestamp'",
        "timestamp",
        "'1e30' is outside 0..4102444800",
    )


def test_negative_timestamp(tmp_path):
    folder = ml1m_dir(tmp_path, ratings=b"1::1193::5::-978300760\n")
    fails(lambda: read_movielens_1m(folder), "ratings.dat, line 1, field 'timestamp'", "timestamp", "outside")


def test_recbole_timestamp_1e30(tmp_path):
    folder = recbole_dir(tmp_path, inter=INTER_HEADER + INTER_ROWS.replace("891717742", "1e30"))
    fails(
        lambda: read_movielens_100k(folder),
        "ml-100k.inter, line 3, field 'timestamp'",
        "timestamp",
        "'1e+30' is outside 0..4102444800",
    )


def test_amazon_timestamp_1e30(tmp_path):
    folder = write_kindle(tmp_path, meta=False, reviews=False)
    path = folder / "Kindle_Store.csv"
    path.write_bytes(path.read_bytes().replace(b"1400000000000", b"1e30"))
    fails(lambda: read_amazon_kindle(folder), "Kindle_Store.csv, line 8, field 'timestamp'", "timestamp", "outside")


def test_amazon_seconds_after_2100(tmp_path):
    folder = write_kindle(tmp_path, [("AE1", "B001", "5.0", "99999999999")], meta=False, reviews=False)
    fails(lambda: read_amazon_kindle(folder), "line 2, field 'timestamp'", "timestamp", "'99999999999' is outside")


def test_to_int_never_wraps_around():
    for text in ("9223372036854775808", "1e30", "-1e19"):
        with pytest.raises(SchemaError, match=r"f, line 2, field 'n'.*outside"):
            to_int(pd.Series(["1", text]), label="f", field="n")
    assert to_int(pd.Series(["-5", "9007199254740992"]), label="f", field="n").tolist() == [-5, 2**53]


def test_user_age_out_of_range(tmp_path):
    folder = grouplens_dir(tmp_path, u_user=b"1|24|M|technician|85711\n2|1e30|F|other|94043\n")
    fails(lambda: read_movielens_100k(folder, sha256=None), "u.user, line 2, field 'age'", "age", "outside 0..150")


# --- empty and non-numeric ids -------------------------------------------------------------------


@pytest.mark.parametrize("bad, detail", [(b"", "empty id"), (b"abc", "'abc' does not match")])
def test_grouplens_bad_user_id(tmp_path, bad, detail):
    folder = grouplens_dir(tmp_path, u_data=U_DATA.replace(b"2\t10", bad + b"\t10"))
    fails(lambda: read_movielens_100k(folder, sha256=None), "u.data, line 3, field 'user_id'", "user_id", detail)


def test_recbole_movielens_non_numeric_item_id(tmp_path):
    folder = recbole_dir(tmp_path, inter=INTER_HEADER + INTER_ROWS.replace("302", "x302"))
    fails(lambda: read_movielens_100k(folder), "ml-100k.inter, line 3, field 'item_id'", "item_id", "'x302'")


def test_ml1m_bad_item_id_in_movies(tmp_path):
    folder = ml1m_dir(tmp_path)
    (folder / "movies.dat").write_bytes(b"1193::Title (1975)::Drama\n::Other (1980)::Drama\n")
    fails(lambda: read_movielens_1m(folder), "movies.dat, line 2, field 'item_id'", "item_id", "empty id")


def test_generic_recbole_empty_item_id(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t5\nu2\t\t6\n")
    fails(lambda: read_recbole_raw("x", folder), "x.inter, line 3, field 'item_id'", "item_id", "empty id")


def test_mind_empty_user_id(tmp_path):
    behaviors = b"1\t\t11/11/2019 9:05:58 AM\t\tN55528-0\n"
    folder = write_mind(tmp_path / "mind", mind_files(train__behaviors_tsv=behaviors))
    fails(lambda: read_mind_small(folder), "behaviors.tsv], line 1, field 'User ID'", "User ID", "empty id")


def test_amazon_empty_item_id(tmp_path):
    folder = write_kindle(tmp_path, [("AE1", "B001", "5.0", "1588615855070"), ("AE1", "", "4.0", "1588615855070")])
    fails(lambda: read_amazon_kindle(folder), "line 3, field 'parent_asin'", "parent_asin", "empty id")


# --- empty tables --------------------------------------------------------------------------------


def test_empty_u_data(tmp_path):
    folder = grouplens_dir(tmp_path, u_data=b"")
    fails(lambda: read_movielens_100k(folder, sha256=None), "u.data, line 1:", None, "empty file: no ratings")


@pytest.mark.parametrize("member, what", [("u_item", "items"), ("u_user", "users")])
def test_empty_grouplens_side_files(tmp_path, member, what):
    folder = grouplens_dir(tmp_path, **{member: b""})
    fails(lambda: read_movielens_100k(folder, sha256=None), "line 1:", None, f"empty file: no {what}")


def test_empty_ratings_dat(tmp_path):
    fails(lambda: read_movielens_1m(ml1m_dir(tmp_path, ratings=b"")), "ratings.dat, line 1:", None, "no ratings")


def test_recbole_inter_with_header_only(tmp_path):
    folder = recbole_dir(tmp_path, inter=INTER_HEADER)
    fails(lambda: read_movielens_100k(folder), "ml-100k.inter, line 2:", None, "empty file: no interactions")


@pytest.mark.parametrize("side, what", [("item", "items"), ("user", "users")])
def test_recbole_side_files_with_header_only(tmp_path, side, what):
    files = {"item": ITEM, "user": USER, side: (ITEM if side == "item" else USER).split("\n")[0] + "\n"}
    folder = recbole_dir(tmp_path, **files)
    fails(lambda: read_movielens_100k(folder), f"ml-100k.{side}, line 2:", None, f"empty file: no {what}")


def test_generic_recbole_item_file_with_header_only(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t5\n")
    (folder / "x.item").write_text("item_id:token\ttitle:token_seq\n")
    fails(lambda: read_recbole_raw("x", folder), "x.item, line 2:", None, "empty file: no items")


def test_amazon_header_only(tmp_path):
    folder = write_kindle(tmp_path, [], meta=False, reviews=False)
    fails(lambda: read_amazon_kindle(folder), "Kindle_Store.csv, line 2:", None, "empty file: no ratings")


@pytest.mark.parametrize("name, what", [("behaviors_tsv", "impressions"), ("news_tsv", "news")])
def test_mind_empty_files(tmp_path, name, what):
    folder = write_mind(tmp_path / "mind", mind_files(**{f"dev__{name}": b""}))
    fails(lambda: read_mind_small(folder), "MINDsmall_dev.zip[", None, f"empty file: no {what}")


# --- duplicate rows ------------------------------------------------------------------------------


def test_grouplens_duplicate_rating(tmp_path):
    folder = grouplens_dir(tmp_path, u_data=U_DATA + b"1\t10\t2\t881250999\n")
    fails(
        lambda: read_movielens_100k(folder, sha256=None),
        "u.data, line 4, field 'item_id'",
        "item_id",
        "duplicate user_id, item_id ('1', '10') (first on line 1)",
    )


def test_grouplens_duplicate_item_and_user(tmp_path):
    item = tiny_grouplens()["u.item"]
    folder = grouplens_dir(tmp_path / "a", u_item=item + item.split(b"\n")[0] + b"\n")
    fails(lambda: read_movielens_100k(folder, sha256=None), "u.item, line 3, field 'item_id'", "item_id", "'10'")
    folder = grouplens_dir(tmp_path / "b", u_user=b"1|24|M|technician|85711\n2|53|F|other|94043\n1|24|M|x|1\n")
    fails(lambda: read_movielens_100k(folder, sha256=None), "u.user, line 3, field 'user_id'", "user_id", "'1'")


def test_recbole_duplicate_rating(tmp_path):
    folder = recbole_dir(tmp_path, inter=INTER_HEADER + INTER_ROWS + "196\t242\t5\t881250950\n")
    fails(lambda: read_movielens_100k(folder), "ml-100k.inter, line 5, field 'item_id'", "item_id", "line 2")


def test_generic_recbole_duplicate_user(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t5\n")
    (folder / "x.user").write_text("user_id:token\tage:float\nu1\t3\nu1\t4\n")
    fails(lambda: read_recbole_raw("x", folder), "x.user, line 3, field 'user_id'", "user_id", "duplicate")


def test_amazon_duplicate_pair(tmp_path):
    rows = [("AE1", "B001", "5.0", "1588615855070"), ("AE1", "B001", "4.0", "1588615856070")]
    folder = write_kindle(tmp_path, rows, meta=False, reviews=False)
    fails(lambda: read_amazon_kindle(folder), "line 3, field 'parent_asin'", "parent_asin", "duplicate")


# --- gzip expansion cap ----------------------------------------------------------------------------


def test_gunzip_cap():
    data = gzip.compress(b"a,b\n" * 1000)
    assert gunzip(data, "f.gz", max_bytes=4000) == b"a,b\n" * 1000
    with pytest.raises(UnsafeArchiveEntryError, match=r"f\.gz: unsafe archive entry 'f'.*expands past 3999 bytes"):
        gunzip(data, "f.gz", max_bytes=3999)


def test_gzip_lines_cap(tmp_path):
    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(gzip.compress(b"{}\n" * 100))
    assert sum(1 for _ in gzip_lines(path, max_bytes=300)) == 100
    with pytest.raises(UnsafeArchiveEntryError, match="expands past 299 bytes"):
        list(gzip_lines(path, max_bytes=299))


def test_gzip_bomb_ratings(tmp_path):
    folder = tmp_path / "kindle"
    folder.mkdir()
    bomb = b"user_id,parent_asin,rating,timestamp\n" + b"0" * (4 * GZIP_FLOOR_BYTES)  # ~1000x compression
    (folder / "Kindle_Store.csv.gz").write_bytes(gzip.compress(bomb))
    with pytest.raises(
        UnsafeArchiveEntryError, match=r"Kindle_Store\.csv\.gz: unsafe archive entry 'Kindle_Store.csv'"
    ):
        read_amazon_kindle(folder)


def test_gzip_bomb_meta_is_one_endless_line(tmp_path):
    folder = write_kindle(tmp_path, reviews=False)
    (folder / "meta_Kindle_Store.jsonl.gz").write_bytes(gzip.compress(b"x" * (4 * GZIP_FLOOR_BYTES)))
    with pytest.raises(UnsafeArchiveEntryError, match="meta_Kindle_Store.jsonl.gz"):
        read_amazon_kindle(folder, top_items=3, min_user_reviews=2)
