"""Reader of RecBole atomic files: tab-separated UTF-8 with a typed ``name:type`` header."""

from __future__ import annotations

import dataclasses
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
    require_rows,
    sha256_bytes,
    split_fields,
    text_lines,
    to_float,
)
from x_reco.data.errors import MissingFileError, SchemaError
from x_reco.data.tables import INTERACTION_COLUMNS, RawTables

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
# canonical interaction column <- (RecBole field, required type)
_INTER_FIELDS = {
    "user_id": ("user_id", "token"),
    "item_id": ("item_id", "token"),
    "rating": ("rating", "float"),
    "ts": ("timestamp", "float"),
    "label": ("label", "float"),
    "impression_id": ("impression_id", "token"),
}


@dataclasses.dataclass(frozen=True)
class AtomicTable:
    """One parsed atomic file: ``frame`` has the bare field names, floats already parsed."""

    label: str
    frame: pd.DataFrame
    types: dict[str, str]
    sha256: str

    @property
    def first_data_line(self) -> int:
        return 2


def parse_header(line: str, label: str) -> dict[str, str]:
    """``{name: type}`` from the header line; a field without a valid type is a SchemaError."""
    types: dict[str, str] = {}
    for field in line.split("\t"):
        name, colon, kind = field.rpartition(":")
        if not colon or not name or kind not in ATOMIC_TYPES:
            raise SchemaError(label, 1, field, f"header field needs ':type' with type one of {', '.join(ATOMIC_TYPES)}")
        if name in types:
            raise SchemaError(label, 1, field, "duplicate header field")
        types[name] = kind
    return types


def _parse_float_seq(strings: pd.Series, label: str, field: str) -> pd.Series:
    def parse(i: int, cell: str) -> tuple[float, ...]:
        try:
            return tuple(float(v) for v in cell.split(" ") if v)
        except ValueError:
            raise SchemaError(label, i + 2, field, f"cannot parse {cell!r} as floats") from None

    return pd.Series([parse(i, c) for i, c in enumerate(strings)], index=strings.index, dtype=object)


def read_atomic(data: bytes, label: str) -> AtomicTable:
    """Parse one atomic file's bytes. Token columns stay strings; float columns are float64."""
    text = decode(data, label, "utf-8")
    header = text.split("\n", 1)[0].split("\t")
    check_complete(text, label, "\t", [field.rpartition(":")[0] or field for field in header])
    lines = text_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # a BOM is not part of the first field name
    if not lines:
        raise SchemaError(label, 1, None, "empty file: no header line")
    types = parse_header(lines[0], label)
    frame = split_fields(lines[1:], label=label, sep="\t", names=list(types), first_line=2)
    for name, kind in types.items():
        if kind == "float":
            frame[name] = to_float(frame[name], label=label, field=name, first_line=2, allow_empty=True)
        elif kind == "float_seq":
            frame[name] = _parse_float_seq(frame[name], label, name)
    return AtomicTable(label, frame, types, sha256_bytes(data))


def read_atomic_file(path: str | Path) -> AtomicTable:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path)
    return read_atomic(path.read_bytes(), str(path))


def require_field(table: AtomicTable, field: str, kind: str) -> None:
    if field not in table.types:
        raise SchemaError(table.label, 1, field, "required field missing from the header")
    if table.types[field] != kind:
        raise SchemaError(table.label, 1, field, f"expected type {kind!r}, got {table.types[field]!r}")


def _timestamps(table: AtomicTable) -> np.ndarray:
    """The ``timestamp`` column as int64 Unix seconds: present, integral and within UNIX_SECONDS."""
    values = table.frame["timestamp"].to_numpy()
    bad = np.flatnonzero(np.floor(values) != values)  # NaN fails too
    if bad.size:
        i = int(bad[0])
        detail = "missing timestamp" if np.isnan(values[i]) else f"non-integral timestamp {values[i]!r}"
        raise SchemaError(table.label, i + 2, "timestamp", detail)
    check_range(values, label=table.label, field="timestamp", lo=UNIX_SECONDS[0], hi=UNIX_SECONDS[1], first_line=2)
    return values.astype(np.int64)


def atomic_interactions(table: AtomicTable, src_file: str) -> pd.DataFrame:
    """Canonical interactions from a ``.inter`` table; ``src_row`` is its data-line order.

    Required: ``user_id:token``, ``item_id:token``, ``timestamp:float`` (integral seconds).
    Optional: ``rating:float``, ``label:float`` (0/1), ``impression_id:token``. Unknown fields
    are kept after the canonical columns.
    """
    frame, n = table.frame, len(table.frame)
    for canonical in ("user_id", "item_id", "ts"):
        require_field(table, *_INTER_FIELDS[canonical])
    for canonical in ("rating", "label", "impression_id"):
        if _INTER_FIELDS[canonical][0] in table.types:
            require_field(table, *_INTER_FIELDS[canonical])
    require_rows(n, label=table.label, first_line=2, what="interactions")
    for field in ("user_id", "item_id"):
        check_ids(frame[field], label=table.label, field=field, first_line=2)
    out = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype(object),
            "item_id": frame["item_id"].astype(object),
            "ts": _timestamps(table),
            "rating": frame["rating"] if "rating" in frame else np.full(n, np.nan),
            "label": _labels(table),
            "impression_id": frame["impression_id"] if "impression_id" in frame else None,
            "src_file": src_file,
            "src_row": np.arange(n, dtype=np.int64),
        }
    )
    known = {field for field, _ in _INTER_FIELDS.values()}
    for name in frame.columns:
        if name not in known and name not in out:
            out[name] = frame[name]
    return out


def _labels(table: AtomicTable) -> pd.Series:
    if "label" not in table.frame:
        return pd.Series(pd.NA, index=table.frame.index, dtype="Int8")
    values = table.frame["label"].to_numpy()
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        i = int(bad[0])
        raise SchemaError(table.label, i + 2, "label", f"label {values[i]!r} is not 0 or 1")
    return pd.Series(values.astype(np.int8), index=table.frame.index, dtype="Int8")


def find_atomic_dir(path: str | Path) -> tuple[Path, str] | None:
    """``(directory, name)`` if ``path`` holds ``<name>.inter`` (name = the folder's name first)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / f"{path.name}.inter").is_file():
        return path, path.name
    inters = sorted(path.glob("*.inter"))
    return (path, inters[0].stem) if len(inters) == 1 else None


def read_atomic_dir(path: str | Path, name: str | None = None) -> dict[str, AtomicTable]:
    """Read ``<name>.inter`` and, when present, ``<name>.item`` / ``<name>.user``."""
    path = Path(path)
    name = name or path.name
    tables = {"inter": read_atomic_file(path / f"{name}.inter")}
    for suffix in ("item", "user"):
        file = path / f"{name}.{suffix}"
        if file.is_file():
            tables[suffix] = read_atomic_file(file)
    return tables


def _side_table(table: AtomicTable | None, key: str, ids: pd.Series) -> pd.DataFrame:
    if table is None:  # no side file: the ids seen in the interactions, sorted
        return pd.DataFrame({key: sorted(ids.unique())}, dtype=object)
    require_field(table, key, "token")
    frame = table.frame
    require_rows(len(frame), label=table.label, first_line=2, what=key.removesuffix("_id") + "s")
    check_ids(frame[key], label=table.label, field=key, first_line=2)
    check_unique(frame, (key,), label=table.label, first_line=2)
    return frame[[key, *[c for c in frame.columns if c != key]]].reset_index(drop=True)


def read_recbole_raw(partition: str, path: str | Path) -> RawTables:
    """Generic RecBole atomic directory -> RawTables (side tables keep their own fields)."""
    found = find_atomic_dir(path)
    if found is None:
        raise MissingFileError(path, "<name>.inter", "not a RecBole atomic directory")
    directory, name = found
    tables = read_atomic_dir(directory, name)
    inter = atomic_interactions(tables["inter"], f"{name}.inter")
    items = _side_table(tables.get("item"), "item_id", inter["item_id"])
    users = _side_table(tables.get("user"), "user_id", inter["user_id"])
    manifest = {
        "partition": partition,
        "source": str(directory),
        "source_format": "recbole",
        "files": {f"{name}.{k}": {"sha256": t.sha256, "rows": len(t.frame)} for k, t in tables.items()},
    }
    return RawTables(
        partition,
        inter[list(INTERACTION_COLUMNS) + [c for c in inter.columns if c not in INTERACTION_COLUMNS]],
        items,
        users,
        manifest=manifest,
    )
