"""Source-file access (spec §14): streamed checksums, whole-archive refusal of unsafe entries
before anything is read, CRC-checked members, strict decoding with line numbers, literal
multi-character separators, and the opt-in fetch that never leaves a half-written file."""

from __future__ import annotations

import gzip
import hashlib
import stat
import zipfile
from pathlib import Path

import pytest

from x_reco.data.archive import (
    MAX_ENTRY_BYTES,
    check_zip_entries,
    decode,
    file_digests,
    gunzip,
    parse_delimited,
    read_members,
    to_int,
    verify_checksum,
)
from x_reco.data.errors import (
    ChecksumMismatchError,
    CorruptArchiveError,
    EncodingError,
    MissingFileError,
    SchemaError,
    UnsafeArchiveEntryError,
)
from x_reco.data.fetch import Download, download, fetch


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_digests_are_streamed_and_correct(tmp_path):
    data = bytes(range(256)) * 9000  # > 1 MiB: several chunks
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_digests(path, ("sha256", "md5")) == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }
    assert verify_checksum(path, hashlib.md5(data).hexdigest().upper(), "md5")


def test_checksum_mismatch_message(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    with pytest.raises(ChecksumMismatchError) as err:
        verify_checksum(path, "0" * 64)
    assert str(path) in str(err.value) and "sha256" in str(err.value) and "0" * 64 in str(err.value)
    assert err.value.actual == hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    "entry, reason",
    [
        ("../evil", "'..'"),
        ("a/../../evil", "'..'"),
        ("/etc/evil", "absolute"),
        ("\\evil", "absolute"),
        ("C:/evil", "drive letter"),
        ("c:evil", "drive letter"),
        ("a\\..\\evil", "'..'"),
    ],
)
def test_unsafe_names(tmp_path, entry, reason):
    with pytest.raises(UnsafeArchiveEntryError, match=reason) as err:
        infos = [zipfile.ZipInfo("ok.txt"), zipfile.ZipInfo(entry)]
        check_zip_entries(tmp_path / "a.zip", infos, {})
    assert err.value.entry == entry and str(tmp_path / "a.zip") in str(err.value)


def test_symlink_entry(tmp_path):
    info = zipfile.ZipInfo("ml-100k/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveEntryError, match="symbolic link"):
        read_members(path, ("u.data",), prefix="ml-100k/")


def test_declared_sizes(tmp_path):
    huge = zipfile.ZipInfo("x.bin")
    huge.file_size = MAX_ENTRY_BYTES + 1
    with pytest.raises(UnsafeArchiveEntryError, match="limit"):
        check_zip_entries(tmp_path / "a.zip", [huge], {})
    big = zipfile.ZipInfo("d/u.info")
    big.file_size = 20 * 36 + 1
    with pytest.raises(UnsafeArchiveEntryError, match="d/u.info"):
        check_zip_entries(tmp_path / "a.zip", [big], {"u.info": 36})
    big.file_size = 20 * 36
    check_zip_entries(tmp_path / "a.zip", [big], {"u.info": 36})


def test_members_from_zip_with_or_without_prefix(tmp_path):
    nested = _zip(tmp_path / "a.zip", {"ml/x.txt": b"1", "y.txt": b"2"})
    members = read_members(nested, ("x.txt", "y.txt"), optional=("z.txt",), prefix="ml/")
    assert {k: m.data for k, m in members.items()} == {"x.txt": b"1", "y.txt": b"2"}
    assert members["x.txt"].label == f"{nested}[ml/x.txt]"
    assert members["x.txt"].sha256 == hashlib.sha256(b"1").hexdigest()


def test_members_from_folder(tmp_path):
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "x.txt").write_bytes(b"1")
    members = read_members(tmp_path, ("x.txt",), prefix="ml/")
    assert members["x.txt"].data == b"1"
    assert members["x.txt"].label == str(tmp_path / "ml" / "x.txt")
    with pytest.raises(MissingFileError, match="ml/y.txt"):
        read_members(tmp_path, ("y.txt",), prefix="ml/")


def test_crc_failure_names_member(tmp_path):
    path = _zip(tmp_path / "a.zip", {"m.txt": b"hello world" * 10}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"hello world")
    raw[at] ^= 0xFF  # payload changed, CRC-32 in the headers not
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError) as err:
        read_members(path, ("m.txt",))
    assert err.value.member == "m.txt" and str(path) in str(err.value)


def test_missing_archive(tmp_path):
    with pytest.raises(MissingFileError, match="nope.zip"):
        read_members(tmp_path / "nope.zip", ("a",))


def test_truncated_gzip():
    data = gzip.compress(b"a,b\n" * 1000)
    assert gunzip(data, "f.gz") == b"a,b\n" * 1000
    with pytest.raises(CorruptArchiveError, match="f.gz"):
        gunzip(data[: len(data) // 2], "f.gz")


def test_decode_names_the_line():
    with pytest.raises(EncodingError, match=r"f\.tsv, line 3: cannot decode as utf-8"):
        decode(b"a\nb\nc\xff\n", "f.tsv", "utf-8")
    with pytest.raises(EncodingError, match="line 2"):
        decode("a\n\ufffd\n".encode(), "f.tsv", "utf-8")
    assert decode("Mis\xe9rables".encode("latin-1"), "f", "latin-1") == "Misérables"


def test_literal_multi_char_separator():
    frame = parse_delimited(
        b"1::a:b::x|y\n2::c::z\n", label="m.dat", sep="::", names=("id", "title", "genres"), encoding="latin-1"
    )
    assert frame.values.tolist() == [["1", "a:b", "x|y"], ["2", "c", "z"]]
    with pytest.raises(SchemaError, match=r"m\.dat, line 2, field 'genres'"):
        parse_delimited(
            b"1::a::x\n2::c\n", label="m.dat", sep="::", names=("id", "title", "genres"), encoding="latin-1"
        )


def test_quotes_and_carriage_returns_are_data():
    frame = parse_delimited(b'1\t"open\n2\tx\ry\n', label="f", sep="\t", names=("a", "b"), encoding="utf-8")
    assert frame["b"].tolist() == ['"open', "x\ry"]


def test_to_int_names_the_bad_cell():
    import pandas as pd

    with pytest.raises(SchemaError, match=r"f, line 12, field 'ts'.*'1.5'"):
        to_int(pd.Series(["1", "1.5"]), label="f", field="ts", first_line=11)


# --- fetch: checksum and atomic write, on file:// URLs (no network in tests) -----------------


def test_download_verifies_and_keeps_good_files(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(b"archive bytes")
    good = hashlib.sha256(b"archive bytes").hexdigest()
    dest = tmp_path / "dest"
    path, digest = download(Download(src.as_uri(), "a.zip", good), dest)
    assert path.read_bytes() == b"archive bytes" and digest == good
    assert fetch("x", dest, downloads=(Download(src.as_uri(), "b.zip"),)) == {"b.zip": good}
    assert (dest / "x.sha256.json").is_file()


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(b"tampered")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.zip").write_bytes(b"previous")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        download(Download(src.as_uri(), "a.zip", "0" * 64), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.zip"]
    assert (dest / "a.zip").read_bytes() == b"previous"
