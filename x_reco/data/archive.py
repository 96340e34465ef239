"""Source-file access: checksums, safe zip/gzip reading, decoding and field splitting."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import itertools
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from x_reco.data.errors import (
    ChecksumMismatchError,
    CorruptArchiveError,
    EncodingError,
    MissingFileError,
    SchemaError,
    UnsafeArchiveEntryError,
)

MAX_ENTRY_BYTES = 4 * 2**30
SIZE_FACTOR = 20  # a member may declare at most this multiple of its expected size
# gzip declares no trustworthy size: a stream may expand to this multiple of its compressed size
# (text compresses 3-10x, a bomb ~1000x), and always to GZIP_FLOOR_BYTES
GZIP_RATIO = 100
GZIP_FLOOR_BYTES = 1 << 20
EXACT_INT = 2**53  # larger magnitudes are not exact once parsed as float64
UNIX_SECONDS = (0, 4_102_444_800)  # 1970-01-01 .. 2100-01-01: any other timestamp is corrupt
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, NotImplementedError)
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


# --- checksums -----------------------------------------------------------------------------


def file_digests(path: str | Path, algorithms: Sequence[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file, streamed in 1 MiB chunks (one pass for all algorithms)."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify_checksum(path: str | Path, expected: str, algorithm: str = "sha256") -> str:
    """Raise ``ChecksumMismatchError`` unless the file's digest equals ``expected``."""
    actual = file_digests(path, (algorithm,))[algorithm]
    if actual != expected.lower():
        raise ChecksumMismatchError(path, algorithm, expected.lower(), actual)
    return actual


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- zip safety ----------------------------------------------------------------------------


def _unsafe_reason(info: zipfile.ZipInfo, limit: int) -> str | None:
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    if ".." in parts:
        return "'..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.file_size > limit:
        return f"declares {info.file_size} bytes uncompressed (limit {limit})"
    return None


def check_zip_entries(path: str | Path, infos: Iterable[zipfile.ZipInfo], expected_sizes: Mapping[str, int]) -> None:
    """Refuse the whole archive if any entry is unsafe (spec §14).

    ``expected_sizes`` maps a member's base name to its expected uncompressed size; such members
    may declare at most ``SIZE_FACTOR`` times that, every member at most 4 GiB.
    """
    for info in infos:
        base = re.split(r"[/\\]", info.filename.rstrip("/\\"))[-1]
        limit = MAX_ENTRY_BYTES
        if base in expected_sizes:
            limit = min(limit, SIZE_FACTOR * expected_sizes[base])
        reason = _unsafe_reason(info, limit)
        if reason is not None:
            raise UnsafeArchiveEntryError(path, info.filename, reason)


# --- reading members -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Member:
    """One source file read fully into memory; ``label`` names it in error messages."""

    name: str
    label: str
    data: bytes
    sha256: str


def _zip_candidates(name: str, prefix: str) -> list[str]:
    return [prefix + name, name] if prefix else [name]


def _read_zip_members(
    path: Path,
    names: Sequence[str],
    optional: Sequence[str],
    prefix: str,
    expected_sizes: Mapping[str, int],
) -> dict[str, Member]:
    try:
        zf = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise CorruptArchiveError(path, None, str(exc)) from exc
    with zf:
        check_zip_entries(path, zf.infolist(), expected_sizes)
        present = set(zf.namelist())
        members = {}
        for name in [*names, *optional]:
            entry = next((c for c in _zip_candidates(name, prefix) if c in present), None)
            if entry is None:
                if name in optional:
                    continue
                raise MissingFileError(path, prefix + name)
            try:
                data = zf.read(entry)  # checks the CRC-32 once the member is fully read
            except _ZIP_ERRORS as exc:
                raise CorruptArchiveError(path, entry, str(exc)) from exc
            members[name] = Member(name, f"{path}[{entry}]", data, sha256_bytes(data))
    return members


def _read_dir_members(path: Path, names: Sequence[str], optional: Sequence[str], prefix: str) -> dict[str, Member]:
    members = {}
    for name in [*names, *optional]:
        candidates = [path / prefix / name, path / name] if prefix else [path / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            if name in optional:
                continue
            raise MissingFileError(path, prefix + name)
        data = found.read_bytes()
        members[name] = Member(name, str(found), data, sha256_bytes(data))
    return members


def read_members(
    source: str | Path,
    names: Sequence[str],
    *,
    optional: Sequence[str] = (),
    prefix: str = "",
    expected_sizes: Mapping[str, int] | None = None,
    sha256: str | None = None,
) -> dict[str, Member]:
    """Read the named members of a zip archive or an extracted directory fully into memory.

    Args:
      source: a ``.zip`` file or a directory.
      names: required member base names (e.g. ``"u.data"``); ``optional`` ones may be absent.
      prefix: folder inside the archive/directory (``"ml-100k/"``); members directly at the top
        level are accepted too.
      expected_sizes: expected uncompressed sizes by base name, for the zip-bomb check.
      sha256: pinned digest of the archive file, verified before anything else is read.
    """
    path = Path(source)
    if path.is_dir():
        return _read_dir_members(path, names, optional, prefix)
    if not path.is_file():
        raise MissingFileError(path)
    if sha256 is not None:
        verify_checksum(path, sha256)
    return _read_zip_members(path, names, optional, prefix, expected_sizes or {})


def gzip_limit(compressed_bytes: int) -> int:
    """Bytes a gzip stream of this compressed size may expand to (its zip-bomb cap)."""
    return max(GZIP_FLOOR_BYTES, GZIP_RATIO * compressed_bytes)


def _gzip_too_big(label: str, limit: int) -> UnsafeArchiveEntryError:
    inner = re.sub(r"\.gz$", "", Path(label).name)
    return UnsafeArchiveEntryError(label, inner, f"expands past {limit} bytes (gzip limit)")


def gunzip(data: bytes, label: str, max_bytes: int | None = None) -> bytes:
    """Decompress a whole gzip stream (every member) into memory.

    A truncated or corrupt stream is ``CorruptArchiveError``; one expanding past ``max_bytes``
    (default ``gzip_limit(len(data))``, at most 4 GiB) is ``UnsafeArchiveEntryError``, raised
    before more than that is held.
    """
    limit = min(MAX_ENTRY_BYTES, gzip_limit(len(data))) if max_bytes is None else max_bytes
    chunks, total = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            while chunk := fh.read(min(_CHUNK, limit - total + 1)):
                total += len(chunk)
                if total > limit:
                    raise _gzip_too_big(label, limit)
                chunks.append(chunk)
    except _GZIP_ERRORS as exc:
        raise CorruptArchiveError(label, None, str(exc)) from exc
    return b"".join(chunks)


def gzip_lines(path: str | Path, max_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Stream ``(line number, line)`` of a gzip file without holding it in memory.

    The expansion cap is ``max_bytes`` (default ``gzip_limit`` of the file's size); a line is
    never read past it, so one endless line cannot fill memory either.
    """
    path = Path(path)
    label = str(path)
    limit = gzip_limit(path.stat().st_size) if max_bytes is None else max_bytes
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            for line_no in itertools.count(1):
                line = fh.readline(limit - total + 1)
                if not line:
                    return
                total += len(line)
                if total > limit:
                    raise _gzip_too_big(label, limit)
                yield line_no, line
    except _GZIP_ERRORS as exc:
        raise CorruptArchiveError(label, None, str(exc)) from exc


# --- decoding and splitting ----------------------------------------------------------------


def decode(data: bytes, label: str, encoding: str) -> str:
    """Decode strictly; failures and U+FFFD (R8) become ``EncodingError`` naming the line."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EncodingError(label, line, encoding, exc.reason) from exc
    bad = text.find("\ufffd")
    if bad >= 0:
        raise EncodingError(label, text.count("\n", 0, bad) + 1, encoding, "U+FFFD in text")
    return text


def check_complete(text: str, label: str, sep: str | None = None, names: Sequence[str] = ()) -> None:
    """A non-empty text file must end with a newline; otherwise it was cut inside its last line
    (an interrupted download or copy), and the last value may be silently short."""
    if not text or text.endswith("\n"):
        return
    last = text[text.rfind("\n") + 1 :]
    field = names[min(last.count(sep), len(names) - 1)] if sep and names else None
    line = text.count("\n") + 1
    raise SchemaError(label, line, field, f"truncated: the file ends inside line {line}, without a newline")


def text_lines(text: str) -> list[str]:
    """Data lines split on LF only (a CR inside a field stays there); trailing blank lines go."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _check_field_counts(lines: list[str], sep: str, names: Sequence[str], label: str, first_line: int) -> None:
    want = len(names) - 1
    bad = next((i for i, line in enumerate(lines) if line.count(sep) != want), None)
    if bad is None:
        return
    got = lines[bad].count(sep) + 1
    field = names[got] if got < len(names) else names[-1]
    raise SchemaError(label, first_line + bad, field, f"expected {len(names)} fields separated by {sep!r}, got {got}")


def _private_separator(text: str) -> str:
    # pandas' fast parser takes one character; pick one the text does not contain
    for char in ("\t", "\x1f", "\x1e", "\x1d"):
        if char not in text:
            return char
    raise ValueError("no free single-character separator")


def split_fields(lines: list[str], *, label: str, sep: str, names: Sequence[str], first_line: int = 1) -> pd.DataFrame:
    """Split pre-validated lines into a frame of strings, one column per name.

    The field count is checked on every line first (``SchemaError`` naming the line and the
    first missing field); quoting is disabled and nothing is converted to NaN.
    """
    _check_field_counts(lines, sep, names, label, first_line)
    if not lines:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
    text = "\n".join(lines)
    if len(sep) > 1:  # literal multi-character separator, no regex engine
        fast = _private_separator(text)
        text, sep = text.replace(sep, fast), fast
    frame = pd.read_csv(
        io.StringIO(text),
        sep=sep,
        header=None,
        names=list(names),
        dtype=str,
        quoting=csv.QUOTE_NONE,
        na_filter=False,
        keep_default_na=False,
        engine="c",
        lineterminator="\n",
        skip_blank_lines=False,
    )
    if len(frame) != len(lines):
        raise SchemaError(label, None, None, f"parsed {len(frame)} rows from {len(lines)} lines")
    return frame


def parse_delimited(data: bytes, *, label: str, sep: str, names: Sequence[str], encoding: str) -> pd.DataFrame:
    """Decode, check it is complete, then split a header-less delimited file (lines 1-based)."""
    text = decode(data, label, encoding)
    check_complete(text, label, sep, names)
    return split_fields(text_lines(text), label=label, sep=sep, names=names)


def _first_bad(strings: pd.Series, bad: np.ndarray, label: str, field: str, first_line: int, what: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SchemaError(label, first_line + i, field, f"cannot parse {strings.iloc[i]!r} as {what}")


def to_float(
    strings: pd.Series, *, label: str, field: str, first_line: int = 1, allow_empty: bool = False
) -> np.ndarray:
    """Parse a string column as float64; the first unparsable cell is a ``SchemaError``.

    With ``allow_empty`` an empty cell is NaN (RecBole's convention for a missing float).
    """
    values = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if allow_empty:
        bad &= (strings != "").to_numpy()
    _first_bad(strings, bad, label, field, first_line, "a number")
    return values


def check_range(
    values: np.ndarray,
    *,
    label: str,
    field: str,
    lo: float,
    hi: float,
    first_line: int = 1,
    strings: pd.Series | None = None,
) -> None:
    """The first value outside ``[lo, hi]`` is a ``SchemaError`` quoting its source text."""
    bad = np.flatnonzero((values < lo) | (values > hi))
    if bad.size:
        i = int(bad[0])
        shown = strings.iloc[i] if strings is not None else repr(float(values[i]))
        raise SchemaError(label, first_line + i, field, f"{shown!r} is outside {lo:.0f}..{hi:.0f}")


def to_int(
    strings: pd.Series,
    *,
    label: str,
    field: str,
    first_line: int = 1,
    lo: float = -EXACT_INT,
    hi: float = EXACT_INT,
) -> np.ndarray:
    """Parse a string column as int64; empty, fractional or non-numeric cells are errors, and so
    is a value outside ``[lo, hi]`` (by default +-2**53, so nothing wraps around int64)."""
    values = pd.to_numeric(strings, errors="coerce")
    as_float = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(as_float) | (np.floor(as_float) != as_float)
    _first_bad(strings, bad, label, field, first_line, "an integer")
    check_range(as_float, label=label, field=field, lo=lo, hi=hi, first_line=first_line, strings=strings)
    return values.to_numpy(dtype=np.int64)


def check_ids(strings: pd.Series, *, label: str, field: str, first_line: int = 1, pattern: str | None = None) -> None:
    """Ids are non-empty strings (and full matches of ``pattern`` when given)."""
    bad = (strings == "").to_numpy()
    if pattern is not None:
        bad |= ~strings.str.fullmatch(pattern).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "empty id" if strings.iloc[i] == "" else f"id {strings.iloc[i]!r} does not match {pattern}"
        raise SchemaError(label, first_line + i, field, what)


def check_unique(frame: pd.DataFrame, keys: Sequence[str], *, label: str, first_line: int = 1) -> None:
    """A repeated key (one column or a tuple of columns) is a ``SchemaError`` at its second line."""
    dup = frame.duplicated(list(keys)).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        key = tuple(frame[k].iloc[i] for k in keys)
        same = np.logical_and.reduce([(frame[k] == v).to_numpy() for k, v in zip(keys, key)])
        first = int(np.flatnonzero(same)[0])
        shown = key[0] if len(key) == 1 else key
        raise SchemaError(
            label,
            first_line + i,
            keys[-1],
            f"duplicate {', '.join(keys)} {shown!r} (first on line {first_line + first})",
        )


def require_rows(n: int, *, label: str, first_line: int = 1, what: str = "rows") -> None:
    """An empty table is a ``SchemaError``: every reader needs at least one data line."""
    if n == 0:
        raise SchemaError(label, first_line, None, f"empty file: no {what}")
