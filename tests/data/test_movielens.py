"""MovieLens readers: ML-100K from the RecBole wheel reproduces spec §3 exactly, and the GroupLens
path yields the same events in the same tie-broken order (eSASRec showed that losing the source
order of same-timestamp ratings silently changes about a quarter of a leave-last-out test set)."""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from x_reco.data.movielens import (
    GENRE_COLUMNS,
    ML_GENRES,
    allbut_split,
    read_movielens_1m,
    read_movielens_100k,
    recbole_ml100k_dir,
)
from x_reco.data.registry import load_raw
from x_reco.data.tables import INTERACTION_COLUMNS

GENRE_TOTALS = {
    "Drama": 725,
    "Comedy": 505,
    "Action": 251,
    "Thriller": 251,
    "Romance": 247,
    "Adventure": 135,
    "Children's": 122,
    "Crime": 109,
    "Sci-Fi": 101,
    "Horror": 92,
    "War": 71,
    "Mystery": 61,
    "Musical": 56,
    "Documentary": 50,
    "Animation": 42,
    "Western": 27,
    "Film-Noir": 24,
    "Fantasy": 22,
    "unknown": 2,
}
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


# --- building a GroupLens-format archive from the RecBole copy -------------------------------


def _atomic_rows(name: str) -> list[list[str]]:
    text = (recbole_ml100k_dir() / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.split("\n")[1:] if line]


def _allbut(u_data: list[list[str]], start: int = 1, stop: int = 10) -> tuple[list, list]:
    """A line-by-line transliteration of GroupLens' allbut.pl, then mku.sh's numeric sort."""
    seen: dict[str, int] = {}
    base, test = [], []
    for row in u_data:
        seen[row[0]] = seen.get(row[0], 0) + 1
        (test if start <= seen[row[0]] <= stop else base).append(row)

    def key(row):
        return int(row[0]), int(row[1])

    return sorted(base, key=key), sorted(test, key=key)


def grouplens_100k_members() -> dict[str, bytes]:
    """u.data/u.item/u.user/u.genre/u.info/ua.* in the exact GroupLens formats."""
    u_data = [row[:4] for row in _atomic_rows("ml-100k.inter")]
    items = []
    for item_id, title, year, classes in _atomic_rows("ml-100k.item"):
        flags = ["1" if g in classes.split(" ") else "0" for g in ML_GENRES]
        if item_id == "267":  # GroupLens' own row for the unknown movie
            items.append("|".join([item_id, "unknown", "", "", "", *flags]))
            continue
        date = f"01-Jan-{year}" if year.isdigit() else ""
        url = f"http://us.imdb.com/M/title-exact?{title.replace(' ', '%20')}"
        items.append("|".join([item_id, f"{title} ({year})", date, "", url, *flags]))
    users = ["|".join(row) for row in _atomic_rows("ml-100k.user")]
    base, test = _allbut(u_data)

    def tsv(rows):
        return "".join("\t".join(r) + "\n" for r in rows).encode("ascii")

    return {
        "u.data": tsv(u_data),
        "u.item": ("\n".join(items) + "\n").encode("latin-1"),
        "u.user": ("\n".join(users) + "\n").encode("ascii"),
        "u.genre": ("".join(f"{g}|{i}\n" for i, g in enumerate(ML_GENRES)) + "\n").encode(),
        "u.info": b"943 users\n1682 items\n100000 ratings\n",
        "ua.base": tsv(base),
        "ua.test": tsv(test),
    }


def write_zip(path: Path, members: dict[str, bytes], prefix: str = "ml-100k/") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(prefix + name, data)
    return path


@pytest.fixture(scope="module")
def recbole_tables():
    return read_movielens_100k()


@pytest.fixture(scope="module")
def grouplens_zip(tmp_path_factory):
    return write_zip(tmp_path_factory.mktemp("gl") / "ml-100k.zip", grouplens_100k_members())


@pytest.fixture(scope="module")
def grouplens_tables(grouplens_zip):
    return read_movielens_100k(grouplens_zip, sha256=None)


def _tie_broken(inter: pd.DataFrame) -> list[tuple]:
    ordered = inter.sort_values(["user_id", "ts", "src_row"], kind="stable")
    return list(zip(ordered["user_id"], ordered["item_id"], ordered["rating"], ordered["ts"]))


# --- RecBole wheel copy: spec §3 figures -------------------------------------------------------


def test_recbole_copy_has_published_sizes(recbole_tables):
    inter = recbole_tables.interactions
    assert len(inter) == 100_000
    assert len(recbole_tables.users) == 943 and inter["user_id"].nunique() == 943
    assert len(recbole_tables.items) == 1_682 and inter["item_id"].nunique() == 1_682
    assert inter["user_id"].value_counts().min() >= 20
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert (inter["ts"].min(), inter["ts"].max()) == (874_724_710, 893_286_638)
    hist = inter["rating"].value_counts().sort_index().to_dict()
    assert hist == {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}


def test_recbole_copy_genre_totals(recbole_tables):
    totals = dict(zip(ML_GENRES, recbole_tables.items[list(GENRE_COLUMNS)].sum().tolist()))
    assert totals == GENRE_TOTALS
    assert recbole_tables.manifest["genre_totals"] == GENRE_TOTALS


def test_recbole_copy_tie_statistics(recbole_tables):
    assert recbole_tables.manifest["ties"] == {
        "ratings_in_ties": 75_772,
        "tie_groups": 25_211,
        "users_latest_ts_shared": 415,
    }


def test_recbole_manifest_pins_source_files(recbole_tables):
    files = recbole_tables.manifest["files"]
    assert {name: f["sha256"] for name, f in files.items()} == RECBOLE_SHA256
    assert files["ml-100k.inter"]["rows"] == 100_000
    assert recbole_tables.manifest["source_format"] == "recbole"


def test_canonical_schema(recbole_tables):
    inter = recbole_tables.interactions
    assert tuple(inter.columns) == INTERACTION_COLUMNS
    assert inter["ts"].dtype == np.int64 and inter["src_row"].dtype == np.int64
    assert inter["rating"].dtype == np.float64 and str(inter["label"].dtype) == "Int8"
    assert inter["user_id"].map(type).eq(str).all()
    assert inter["src_row"].tolist() == list(range(100_000))
    assert (inter["src_file"] == "ml-100k.inter").all()
    items = recbole_tables.items
    assert list(items.columns) == ["item_id", "title", "year", *GENRE_COLUMNS]
    assert (items[list(GENRE_COLUMNS)].dtypes == np.int8).all()
    assert list(recbole_tables.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]


def test_recbole_quirks_are_kept(recbole_tables):
    items = recbole_tables.items.set_index("item_id")
    assert items.loc["267", "title"] == "unkonwn" and items.loc["267", "year"] is None
    assert items.loc["1412", "year"] is None  # "(V)" is not a year
    assert items.loc["543", "title"] == "Misérables, Les" and items.loc["543", "year"] == "1995"
    assert items.loc["1", GENRE_COLUMNS[0]] == 0


def test_ua_split_follows_allbut(recbole_tables):
    base, test = recbole_tables.extra["ua_base"], recbole_tables.extra["ua_test"]
    assert (len(base), len(test)) == (90_570, 9_430)
    assert test["user_id"].value_counts().eq(10).all()
    u_data = [row[:4] for row in _atomic_rows("ml-100k.inter")]
    want_base, want_test = _allbut(u_data)
    got = list(zip(test["user_id"], test["item_id"], test["ts"].astype(str)))
    assert got == [(r[0], r[1], r[3]) for r in want_test]
    assert len(want_base) == len(base)


def test_allbut_split_on_a_tiny_frame():
    inter = pd.DataFrame(
        {
            "user_id": ["2", "1", "2", "1", "2"],
            "item_id": ["5", "3", "4", "9", "1"],
            "rating": 3.0,
            "ts": [5, 4, 3, 2, 1],
            "src_row": range(5),
        }
    )
    base, test = allbut_split(inter, start=1, stop=2)
    assert list(zip(test["user_id"], test["item_id"])) == [("1", "3"), ("1", "9"), ("2", "4"), ("2", "5")]
    assert list(base["item_id"]) == ["1"]


# --- GroupLens path ----------------------------------------------------------------------------


def test_grouplens_zip_matches_recbole(recbole_tables, grouplens_tables):
    gl, rb = grouplens_tables.interactions, recbole_tables.interactions
    cols = ["user_id", "item_id", "rating", "ts"]
    assert Counter(map(tuple, gl[cols].to_numpy())) == Counter(map(tuple, rb[cols].to_numpy()))
    assert _tie_broken(gl) == _tie_broken(rb)
    assert (gl["src_file"] == "u.data").all()
    assert grouplens_tables.manifest["ties"] == recbole_tables.manifest["ties"]


def test_grouplens_items_and_users_match_recbole(recbole_tables, grouplens_tables):
    gl, rb = grouplens_tables.items, recbole_tables.items
    pd.testing.assert_frame_equal(gl[["item_id", *GENRE_COLUMNS]], rb[["item_id", *GENRE_COLUMNS]])
    same = gl["item_id"] != "267"  # GroupLens says "unknown", RecBole "unkonwn"
    assert gl.loc[same, "title"].tolist() == rb.loc[same, "title"].tolist()
    assert gl["year"].tolist() == rb["year"].tolist()
    pd.testing.assert_frame_equal(grouplens_tables.users, recbole_tables.users)


def test_grouplens_manifest(grouplens_zip, grouplens_tables):
    manifest = grouplens_tables.manifest
    assert manifest["source_format"] == "grouplens-zip"
    assert manifest["u_info"] == {"users": 943, "items": 1682, "ratings": 100_000}
    assert manifest["ua"] == {"base": 90_570, "test": 9_430}  # and ua.* matched the rebuild
    assert len(manifest["archive"]["sha256"]) == 64
    assert set(manifest["files"]) >= {"u.data", "u.item", "u.user", "u.genre"}


def test_extracted_folder_reads_like_the_zip(tmp_path, grouplens_zip, grouplens_tables):
    with zipfile.ZipFile(grouplens_zip) as zf:
        zf.extractall(tmp_path)
    for source in (tmp_path, tmp_path / "ml-100k"):
        tables = read_movielens_100k(source)
        pd.testing.assert_frame_equal(tables.interactions, grouplens_tables.interactions)
        assert tables.manifest["source_format"] == "grouplens-dir"


def test_load_raw_defaults_to_the_recbole_copy():
    tables = load_raw("movielens-100k")
    assert tables.partition == "movielens-100k" and len(tables.interactions) == 100_000


@pytest.mark.skipif(
    not os.environ.get("XRECO_SOURCE_MOVIELENS_100K"),
    reason="set XRECO_SOURCE_MOVIELENS_100K to the GroupLens ml-100k.zip to run",
)
def test_real_grouplens_archive(recbole_tables):
    tables = read_movielens_100k(os.environ["XRECO_SOURCE_MOVIELENS_100K"])  # pinned SHA-256 verified
    assert _tie_broken(tables.interactions) == _tie_broken(recbole_tables.interactions)
    assert tables.manifest["ties"] == recbole_tables.manifest["ties"]
    assert tables.manifest["genre_totals"] == GENRE_TOTALS


# --- ML-1M -------------------------------------------------------------------------------------


ML1M_MEMBERS = {
    "ratings.dat": b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n2::2355::2::978298413\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    "2355::Misérables, Les (1995)::Drama|Musical\n"
    "3952::Contender, The (2000)::Drama|Thriller\n".encode("latin-1"),
    "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n",
}


def test_ml1m_zip(tmp_path):
    path = write_zip(tmp_path / "ml-1m.zip", ML1M_MEMBERS, prefix="ml-1m/")
    tables = read_movielens_1m(path, sha256=None)
    inter = tables.interactions
    assert tuple(inter.columns) == INTERACTION_COLUMNS
    assert inter["item_id"].tolist() == ["1193", "661", "1193", "2355"]
    assert inter["ts"].tolist() == [978300760, 978302109, 978298413, 978298413]
    assert inter["rating"].tolist() == [5.0, 3.0, 4.0, 2.0]
    items = tables.items.set_index("item_id")
    assert items.loc["2355", "title"] == "Misérables, Les" and items.loc["2355", "year"] == "1995"
    flags = items.loc["661", list(GENRE_COLUMNS)].to_numpy()
    assert flags.tolist() == [1 if g in ("Animation", "Children's", "Musical") else 0 for g in ML_GENRES]
    assert (items[GENRE_COLUMNS[0]] == 0).all()  # slot 0 ("unknown") is never set in ML-1M
    assert tables.users.to_dict("records")[1] == {
        "user_id": "2",
        "age": 56,
        "gender": "M",
        "occupation": "16",
        "zip_code": "70072",
    }
    assert tables.manifest["ties"]["tie_groups"] == 1


def test_ml1m_recbole_atomic_matches_grouplens(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ml-1m.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t1193\t5\t978300760\n1\t661\t3\t978302109\n2\t1193\t4\t978298413\n"
        "2\t2355\t2\t978298413\n",
        encoding="utf-8",
    )
    (folder / "ml-1m.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
        "1193\tOne Flew Over the Cuckoo's Nest\t1975\tDrama\n"
        "661\tJames and the Giant Peach\t1996\tAnimation Children's Musical\n"
        "2355\tMisérables, Les\t1995\tDrama Musical\n3952\tContender, The\t2000\tDrama Thriller\n",
        encoding="utf-8",
    )
    (folder / "ml-1m.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t1\tF\t10\t48067\n2\t56\tM\t16\t70072\n",
        encoding="utf-8",
    )
    atomic = read_movielens_1m(folder)
    grouplens = read_movielens_1m(write_zip(tmp_path / "ml-1m.zip", ML1M_MEMBERS, "ml-1m/"), sha256=None)
    cols = ["user_id", "item_id", "ts", "rating", "src_row"]
    pd.testing.assert_frame_equal(atomic.interactions[cols], grouplens.interactions[cols])
    pd.testing.assert_frame_equal(atomic.items, grouplens.items)
    pd.testing.assert_frame_equal(atomic.users, grouplens.users)


@pytest.mark.skipif(
    not os.environ.get("XRECO_SOURCE_MOVIELENS_1M"),
    reason="set XRECO_SOURCE_MOVIELENS_1M to ml-1m.zip or its folder to run",
)
def test_real_ml1m():
    tables = read_movielens_1m(os.environ["XRECO_SOURCE_MOVIELENS_1M"])
    inter = tables.interactions
    assert len(inter) == 1_000_209 and inter["user_id"].nunique() == 6_040
    assert inter["item_id"].nunique() == 3_706 and len(tables.items) == 3_883
    assert (inter["ts"].min(), inter["ts"].max()) == (956_703_932, 1_046_454_590)
    assert (tables.items[GENRE_COLUMNS[0]] == 0).all()
