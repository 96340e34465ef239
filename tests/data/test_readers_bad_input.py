"""Bad input (spec §14): every row of the table raises its own XRecoDataError whose message names
the file (and member, line, field), the archive is refused as a whole before anything is read,
and a materialisation that hits the error leaves its destination folder exactly as it was."""

from __future__ import annotations

import gzip
import stat
import zipfile
from pathlib import Path

import pytest

from tests.data.test_mind import mind_files, write_mind
from x_reco.common.atomic import atomic_dir
from x_reco.data.amazon import read_amazon_kindle
from x_reco.data.errors import (
    ChecksumMismatchError,
    CorruptArchiveError,
    EncodingError,
    MissingFileError,
    SchemaError,
    UnsafeArchiveEntryError,
    XRecoDataError,
)
from x_reco.data.mind import read_mind_small
from x_reco.data.movielens import ML_100K_SHA256, ML_GENRES, read_movielens_1m, read_movielens_100k
from x_reco.data.registry import load_raw

FLAGS = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)  # Drama
U_DATA = b"1\t10\t4\t881250949\n1\t20\t3\t881250949\n2\t10\t5\t891717742\n"


def tiny_grouplens(**overrides: bytes) -> dict[str, bytes]:
    members = {
        "u.data": U_DATA,
        "u.item": f"10|Movie (1995)|01-Jan-1995||http://x|{FLAGS}\n"
        f"20|Film (1996)|01-Jan-1996||http://y|{FLAGS}\n".encode("latin-1"),
        "u.user": b"1|24|M|technician|85711\n2|53|F|other|94043\n",
        "u.genre": ("".join(f"{g}|{i}\n" for i, g in enumerate(ML_GENRES)) + "\n").encode(),
        "u.info": b"2 users\n2 items\n3 ratings\n",
    }
    members.update({k.replace("_", "."): v for k, v in overrides.items()})
    return members


def write_zip(
    path: Path, members: dict[str, bytes], extra: dict[str, bytes] | None = None, method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(f"ml-100k/{name}", data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def dest(tmp_path):
    """An earlier output that a failed materialisation must leave untouched."""
    out = tmp_path / "out" / "movielens-100k"
    out.mkdir(parents=True)
    (out / "interactions.parquet").write_bytes(b"earlier output")
    return out


def refused(read, dest: Path, error: type[XRecoDataError], *needles: str) -> XRecoDataError:
    """Run a materialisation (read, then write atomically) and check it failed cleanly."""
    before = _snapshot(dest.parent)
    with pytest.raises(error) as err:
        with atomic_dir(dest) as tmp:
            read().interactions.to_parquet(tmp / "interactions.parquet")
    assert _snapshot(dest.parent) == before  # no partial output, no temporary leftovers
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    return err.value


def test_tiny_fixture_is_valid(tmp_path):
    tables = read_movielens_100k(write_zip(tmp_path / "ml-100k.zip", tiny_grouplens()), sha256=None)
    assert len(tables.interactions) == 3 and tables.manifest["ties"]["tie_groups"] == 1


def test_zip_with_parent_traversal(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(), {"../evil": b"x"})
    refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        UnsafeArchiveEntryError,
        str(path),
        "'../evil'",
        "refusing the whole archive",
    )
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "evil").exists()


def test_zip_with_absolute_path(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(), {"/tmp/evil": b"x"})
    refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        UnsafeArchiveEntryError,
        str(path),
        "'/tmp/evil'",
        "absolute path",
    )


def test_zip_with_symlink(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens())
    info = zipfile.ZipInfo("ml-100k/u.occupation")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        UnsafeArchiveEntryError,
        "'ml-100k/u.occupation'",
        "symbolic link",
    )


def test_zip_declaring_too_much(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(u_info=b"9" * 1000))
    refused(
        lambda: read_movielens_100k(path, sha256=None), dest, UnsafeArchiveEntryError, "'ml-100k/u.info'", "1000 bytes"
    )


def test_zip_cut_in_half(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(
        lambda: read_movielens_100k(path, sha256=None), dest, CorruptArchiveError, str(path), "corrupt or truncated"
    )


def test_zip_crc_failure(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(), method=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"881250949")] ^= 0x01  # "9" -> "8": still parses, CRC no longer matches
    path.write_bytes(bytes(raw))
    refused(
        lambda: read_movielens_100k(path, sha256=None), dest, CorruptArchiveError, str(path), "[ml-100k/u.data]", "CRC"
    )


def test_truncated_gzip(tmp_path, dest):
    folder = tmp_path / "kindle"
    folder.mkdir()
    rows = b"A,B,5.0,1588615855070\n" * 50
    data = gzip.compress(b"user_id,parent_asin,rating,timestamp\n" + rows)
    (folder / "Kindle_Store.csv.gz").write_bytes(data[: len(data) // 2])
    refused(lambda: read_amazon_kindle(folder), dest, CorruptArchiveError, "Kindle_Store.csv.gz")


def test_wrong_checksum(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(), {"../evil": b"x"})
    # the checksum is verified before anything else, so the unsafe entry is never looked at
    error = refused(lambda: read_movielens_100k(path), dest, ChecksumMismatchError, str(path), "sha256", ML_100K_SHA256)
    assert error.expected == ML_100K_SHA256


def test_missing_member(tmp_path, dest):
    members = tiny_grouplens()
    del members["u.item"]
    path = write_zip(tmp_path / "ml-100k.zip", members)
    refused(lambda: read_movielens_100k(path, sha256=None), dest, MissingFileError, str(path), "'ml-100k/u.item'")


def test_u_data_line_with_three_fields(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(u_data=U_DATA + b"2\t20\t3\n"))
    error = refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        SchemaError,
        f"{path}[ml-100k/u.data], line 4, field 'timestamp'",
        "expected 4 fields",
        "got 3",
    )
    assert (error.line, error.field) == (4, "timestamp")


def test_u_data_wrong_separator(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(u_data=U_DATA.replace(b"\t", b",")))
    refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        SchemaError,
        "u.data], line 1, field 'item_id'",
        "separated by '\\t'",
    )


def test_ml1m_wrong_separator(tmp_path, dest):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1\t661\t3\t978302109\n")
    (folder / "movies.dat").write_bytes(b"1193::Title (1975)::Drama\n")
    (folder / "users.dat").write_bytes(b"1::F::1::10::48067\n")
    refused(
        lambda: read_movielens_1m(folder),
        dest,
        SchemaError,
        str(folder / "ratings.dat"),
        "line 2, field 'item_id'",
        "'::'",
    )


def test_unparsable_value(tmp_path, dest):
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(u_data=U_DATA.replace(b"\t3\t", b"\tthree\t")))
    refused(
        lambda: read_movielens_100k(path, sha256=None), dest, SchemaError, "u.data], line 2, field 'rating'", "'three'"
    )


def test_recbole_header_without_types(tmp_path, dest):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "ml-100k.inter").write_text("user_id\titem_id\n196\t242\n", encoding="utf-8")
    refused(
        lambda: read_movielens_100k(folder),
        dest,
        SchemaError,
        str(folder / "ml-100k.inter"),
        "line 1, field 'user_id'",
        ":type",
    )


def test_news_with_invalid_utf8(tmp_path, dest):
    news = b"N1\tnews\tworld\tok\t\thttp://a\t[]\t[]\nN2\tnews\tworld\tbad \xff\xfe title\t\thttp://b\t[]\t[]\n"
    folder = write_mind(tmp_path / "mind", mind_files(train__news_tsv=news))
    error = refused(
        lambda: read_mind_small(folder), dest, EncodingError, "MINDsmall_train.zip[news.tsv], line 2", "utf-8"
    )
    assert error.line == 2


def test_genre_order_differs(tmp_path, dest):
    genres = "".join(f"{g}|{i}\n" for i, g in enumerate(ML_GENRES))
    genres = genres.replace("Action|1", "Adventure|1")
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(u_genre=genres.encode()))
    refused(
        lambda: read_movielens_100k(path, sha256=None),
        dest,
        SchemaError,
        "u.genre], line 2, field 'genre'",
        "canonical order",
    )


def test_ua_test_that_does_not_follow_allbut(tmp_path, dest):
    ok = write_zip(tmp_path / "ok.zip", tiny_grouplens(ua_test=U_DATA, ua_base=b""))
    read_movielens_100k(ok, sha256=None)  # every rating is among its user's first 10
    swapped = U_DATA.replace(b"\t4\t", b"\t2\t")
    path = write_zip(tmp_path / "ml-100k.zip", tiny_grouplens(ua_test=swapped, ua_base=b""))
    refused(lambda: read_movielens_100k(path, sha256=None), dest, SchemaError, "ua.test], line 1", "allbut.pl")


def test_partition_files_absent(tmp_path, dest):
    absent = tmp_path / "absent"
    refused(lambda: load_raw("movielens-1m", absent), dest, MissingFileError, str(absent))
    refused(lambda: load_raw("amazon-kindle", tmp_path), dest, MissingFileError, "Kindle_Store.csv")
    refused(lambda: load_raw("mind-small", tmp_path), dest, MissingFileError, "MINDsmall_train.zip")
    refused(lambda: load_raw("mind-small"), dest, MissingFileError, "mind-small")


def test_unknown_partition():
    with pytest.raises(ValueError, match="unknown partition"):
        load_raw("movielens-20m")
