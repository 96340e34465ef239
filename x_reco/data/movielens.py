"""MovieLens 100K and 1M readers: GroupLens archives, extracted folders or RecBole atomic files."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import numpy as np
import pandas as pd

from x_reco.data.archive import (
    UNIX_SECONDS,
    Member,
    check_ids,
    check_unique,
    file_digests,
    parse_delimited,
    read_members,
    require_rows,
    to_int,
)
from x_reco.data.errors import MissingFileError, SchemaError
from x_reco.data.recbole import AtomicTable, atomic_interactions, find_atomic_dir, read_atomic_dir, require_field
from x_reco.data.tables import INTERACTION_COLUMNS, RawTables

ML_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
GENRE_COLUMNS = tuple(f"genre_{i:02d}" for i in range(len(ML_GENRES)))
_GENRE_SLOT = {name: i for i, name in enumerate(ML_GENRES)}

ML_100K_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
ML_1M_SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
# approximate member sizes; they only bound what a zip entry may declare (x20)
_SIZES_100K = {
    "u.data": 1_979_173,
    "u.item": 236_344,
    "u.user": 22_628,
    "u.genre": 202,
    "u.info": 36,
    "ua.base": 1_792_501,
    "ua.test": 186_672,
}
_SIZES_1M = {"ratings.dat": 24_594_131, "movies.dat": 171_308, "users.dat": 134_368}
_RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
_USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")
# RecBole's conversion moved the title's last "(...)" into release_year, "(V)" included
_TITLE_SUFFIX = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_ML_ID = r"[1-9][0-9]*"  # MovieLens ids are positive integers, kept as their source strings


def recbole_ml100k_dir() -> Path:
    """The ML-100K atomic files shipped inside the installed RecBole wheel."""
    try:
        folder = importlib.resources.files("recbole") / "dataset_example" / "ml-100k"
    except ModuleNotFoundError as exc:
        raise MissingFileError(
            "recbole/dataset_example/ml-100k", None, "install it with: pip install --no-deps recbole==1.2.1"
        ) from exc
    path = Path(str(folder))
    if not (path / "ml-100k.inter").is_file():
        raise MissingFileError(path / "ml-100k.inter")
    return path


def _resolve(path: Path, name: str) -> tuple[str, Path]:
    """``(kind, path)`` with kind "zip", "dir" (extracted GroupLens) or "recbole"."""
    if path.is_file():
        return "zip", path
    if not path.is_dir():
        raise MissingFileError(path, None, f"expected {name}.zip, its folder or RecBole files")
    for candidate in (path, path / name):
        found = find_atomic_dir(candidate)
        if found is not None:
            return "recbole", found[0]
    if (path / f"{name}.zip").is_file():
        return "zip", path / f"{name}.zip"
    return "dir", path


# --- shared parsing --------------------------------------------------------------------------


def _check_keys(frame: pd.DataFrame, keys: tuple[str, ...], label: str, first_line: int, what: str | None) -> None:
    """At least one row (unless ``what`` is None), numeric ids, no repeated key."""
    if what is not None:
        require_rows(len(frame), label=label, first_line=first_line, what=what)
    for key in keys:
        check_ids(frame[key], label=label, field=key, first_line=first_line, pattern=_ML_ID)
    check_unique(frame, keys, label=label, first_line=first_line)


def _ratings(member: Member, sep: str, encoding: str, what: str | None = "ratings") -> pd.DataFrame:
    """Canonical interactions from a u.data / ratings.dat member (src_row = line order);
    ``what=None`` lets the file be empty (ua.base / ua.test)."""
    raw = parse_delimited(member.data, label=member.label, sep=sep, names=_RATING_FIELDS, encoding=encoding)
    _check_keys(raw, ("user_id", "item_id"), member.label, 1, what)
    rating = to_int(raw["rating"], label=member.label, field="rating")
    bad = np.flatnonzero((rating < 1) | (rating > 5))
    if bad.size:
        raise SchemaError(member.label, int(bad[0]) + 1, "rating", f"rating {int(rating[bad[0]])} outside 1..5")
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(object),
            "item_id": raw["item_id"].astype(object),
            "ts": to_int(
                raw["timestamp"], label=member.label, field="timestamp", lo=UNIX_SECONDS[0], hi=UNIX_SECONDS[1]
            ),
            "rating": rating.astype(np.float64),
            "label": pd.Series(pd.NA, index=raw.index, dtype="Int8"),
            "impression_id": None,
            "src_file": member.name,
            "src_row": np.arange(len(raw), dtype=np.int64),
        }
    )[list(INTERACTION_COLUMNS)]


def _flags_from_names(cells: pd.Series, label: str, field: str, sep: str, first_line: int) -> np.ndarray:
    """[n, 19] int8 genre flags from genre names joined by ``sep`` (unknown name = error)."""
    flags = np.zeros((len(cells), len(ML_GENRES)), dtype=np.int8)
    for row, cell in enumerate(cells):
        for name in filter(None, cell.split(sep)):
            if name not in _GENRE_SLOT:
                raise SchemaError(label, first_line + row, field, f"unknown genre {name!r}")
            flags[row, _GENRE_SLOT[name]] = 1
    return flags


def _items(ids: pd.Series, titles: list[str], years: list[str | None], flags: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"item_id": ids.astype(object).to_numpy(), "title": titles, "year": pd.Series(years, dtype=object)}
    )
    for slot, column in enumerate(GENRE_COLUMNS):
        frame[column] = flags[:, slot]
    return frame


def _split_title(title: str) -> tuple[str, str | None]:
    """(title without its last "(...)", that suffix) as RecBole's files have them."""
    match = _TITLE_SUFFIX.match(title)
    return (match.group(1), match.group(2)) if match else (title, None)


def _year_token(token: str) -> str | None:
    return token if re.fullmatch(r"\d{4}", token) else None


def _users(frame: pd.DataFrame, label: str, first_line: int) -> pd.DataFrame:
    _check_keys(frame, ("user_id",), label, first_line, "users")
    users = frame[list(_USER_COLUMNS)].astype(object).reset_index(drop=True)
    users["age"] = to_int(users["age"], label=label, field="age", first_line=first_line, lo=0, hi=150)
    return users


# --- GroupLens ML-100K -----------------------------------------------------------------------


def _gl100k_items(member: Member) -> pd.DataFrame:
    names = ("item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRE_COLUMNS)
    raw = parse_delimited(member.data, label=member.label, sep="|", names=names, encoding="latin-1")
    _check_keys(raw, ("item_id",), member.label, 1, "items")
    flags = np.stack([to_int(raw[c], label=member.label, field=c) for c in GENRE_COLUMNS], 1)
    bad = np.argwhere((flags != 0) & (flags != 1))
    if bad.size:  # R7
        row, slot = map(int, bad[0])
        raise SchemaError(member.label, row + 1, GENRE_COLUMNS[slot], "genre flag is not 0/1")
    split = [_split_title(t) for t in raw["title"]]
    years = [
        _year_token(suffix if suffix is not None else date[-4:])
        for (_, suffix), date in zip(split, raw["release_date"])
    ]
    return _items(raw["item_id"], [t for t, _ in split], years, flags.astype(np.int8))


def _check_genre_order(member: Member) -> None:
    raw = parse_delimited(member.data, label=member.label, sep="|", names=("genre", "index"), encoding="latin-1")
    for line, (name, index) in enumerate(zip(raw["genre"], raw["index"]), start=1):
        expected = ML_GENRES[line - 1] if line <= len(ML_GENRES) else None
        if name != expected or index != str(line - 1):
            raise SchemaError(
                member.label, line, "genre", f"{name}|{index} differs from the canonical order ({expected})"
            )
    if len(raw) != len(ML_GENRES):
        raise SchemaError(member.label, len(raw), "genre", f"expected {len(ML_GENRES)} genres")


def _parse_info(member: Member) -> dict[str, int]:
    info = {}
    for line in member.data.decode("latin-1").split("\n"):
        match = re.fullmatch(r"\s*(\d+)\s+(\w+)\s*", line)
        if match:
            info[match.group(2)] = int(match.group(1))
    return info


def _grouplens_100k(kind: str, path: Path, sha256: str | None) -> RawTables:
    members = read_members(
        path,
        ("u.data", "u.item", "u.user", "u.genre"),
        optional=("u.info", "ua.base", "ua.test"),
        prefix="ml-100k/",
        expected_sizes=_SIZES_100K,
        sha256=sha256 if kind == "zip" else None,
    )
    _check_genre_order(members["u.genre"])
    inter = _ratings(members["u.data"], "\t", "ascii")
    items = _gl100k_items(members["u.item"])
    user_raw = parse_delimited(
        members["u.user"].data, label=members["u.user"].label, sep="|", names=_USER_COLUMNS, encoding="ascii"
    )
    users = _users(user_raw, members["u.user"].label, 1)
    tables = RawTables("movielens-100k", inter, items, users)
    _add_ua_split(tables, members)
    tables.manifest = _manifest(tables, path, f"grouplens-{kind}", members)
    if "u.info" in members:
        tables.manifest["u_info"] = _parse_info(members["u.info"])
    return tables


# --- ua.base / ua.test (allbut.pl) ------------------------------------------------------------


def allbut_split(interactions: pd.DataFrame, start: int = 1, stop: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ``allbut.pl ua 1 10``: each user's ratings number start..stop in source line
    order go to test, the rest to base; both sorted by numeric (user, item) as ``mku.sh`` does.

    Returns ``(base, test)`` frames of user_id, item_id, rating, ts, src_row.
    """
    ordered = interactions.sort_values("src_row", kind="stable")
    nth = ordered.groupby("user_id", sort=False).cumcount() + 1
    is_test = ((nth >= start) & (nth <= stop)).to_numpy()
    columns = ["user_id", "item_id", "rating", "ts", "src_row"]
    return _numeric_sorted(ordered.loc[~is_test, columns]), _numeric_sorted(ordered.loc[is_test, columns])


def _numeric_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = pd.DataFrame(
        {"u": frame["user_id"].astype(np.int64), "i": frame["item_id"].astype(np.int64)}, index=frame.index
    )
    order = keys.sort_values(["u", "i"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _add_ua_split(tables: RawTables, members: dict[str, Member] | None = None) -> None:
    base, test = allbut_split(tables.interactions)
    tables.extra["ua_base"], tables.extra["ua_test"] = base, test
    for name, rebuilt in (("ua.base", base), ("ua.test", test)):
        if members and name in members:
            _check_same_split(members[name], rebuilt)


def _check_same_split(member: Member, rebuilt: pd.DataFrame) -> None:
    given = _ratings(member, "\t", "ascii", what=None)
    cols = ["user_id", "item_id", "rating", "ts"]
    if len(given) != len(rebuilt):
        raise SchemaError(
            member.label, None, None, f"{len(given)} rows, the allbut.pl rebuild of u.data has {len(rebuilt)}"
        )
    diff = np.flatnonzero((given[cols].to_numpy() != rebuilt[cols].to_numpy()).any(axis=1))
    if diff.size:
        raise SchemaError(member.label, int(diff[0]) + 1, None, "differs from the allbut.pl rebuild of u.data")


# --- RecBole atomic input ----------------------------------------------------------------------


def _recbole_items(table: AtomicTable) -> pd.DataFrame:
    require_field(table, "item_id", "token")
    frame = table.frame
    _check_keys(frame, ("item_id",), table.label, 2, "items")
    genre_field = next((f for f in ("class", "genre") if f in table.types), None)
    title_field = next((f for f in ("movie_title", "title") if f in table.types), None)
    if genre_field is None:
        raise SchemaError(table.label, 1, "class", "needs a class:token_seq or genre:token_seq")
    flags = _flags_from_names(frame[genre_field], table.label, genre_field, " ", 2)
    titles = list(frame[title_field]) if title_field else [None] * len(frame)
    years = [_year_token(y) for y in frame.get("release_year", pd.Series([""] * len(frame)))]
    return _items(frame["item_id"], titles, years, flags)


def _recbole_movielens(partition: str, path: Path) -> RawTables:
    path, name = find_atomic_dir(path)
    tables = read_atomic_dir(path, name)
    for suffix in ("item", "user"):
        if suffix not in tables:
            raise MissingFileError(path, f"{name}.{suffix}")
    inter = atomic_interactions(tables["inter"], f"{name}.inter")
    _check_keys(inter, ("user_id", "item_id"), tables["inter"].label, 2, "ratings")
    bad = np.flatnonzero(~np.isin(inter["rating"].to_numpy(), [1, 2, 3, 4, 5]))
    if bad.size:  # R3: whole stars only (also catches a missing rating field)
        raise SchemaError(tables["inter"].label, int(bad[0]) + 2, "rating", "not in 1..5")
    user = tables["user"]
    for field in _USER_COLUMNS:
        if field not in user.types:
            raise SchemaError(user.label, 1, field, "required field missing from the header")
    raw = RawTables(
        partition, inter[list(INTERACTION_COLUMNS)], _recbole_items(tables["item"]), _users(user.frame, user.label, 2)
    )
    raw.manifest = _manifest(raw, path, "recbole", {f"{name}.{k}": t for k, t in tables.items()})
    return raw


# --- ML-1M ------------------------------------------------------------------------------------


def _gl1m_items(member: Member) -> pd.DataFrame:
    raw = parse_delimited(
        member.data, label=member.label, sep="::", names=("item_id", "title", "genres"), encoding="latin-1"
    )
    _check_keys(raw, ("item_id",), member.label, 1, "items")
    flags = _flags_from_names(raw["genres"], member.label, "genres", "|", 1)
    split = [_split_title(t) for t in raw["title"]]
    return _items(raw["item_id"], [t for t, _ in split], [_year_token(y or "") for _, y in split], flags)


def _grouplens_1m(kind: str, path: Path, sha256: str | None) -> RawTables:
    members = read_members(
        path,
        ("ratings.dat", "movies.dat", "users.dat"),
        prefix="ml-1m/",
        expected_sizes=_SIZES_1M,
        sha256=sha256 if kind == "zip" else None,
    )
    inter = _ratings(members["ratings.dat"], "::", "latin-1")
    user_raw = parse_delimited(
        members["users.dat"].data,
        label=members["users.dat"].label,
        sep="::",
        names=("user_id", "gender", "age", "occupation", "zip_code"),
        encoding="latin-1",
    )
    users = _users(user_raw, members["users.dat"].label, 1)
    tables = RawTables("movielens-1m", inter, _gl1m_items(members["movies.dat"]), users)
    tables.manifest = _manifest(tables, path, f"grouplens-{kind}", members)
    return tables


# --- manifest ---------------------------------------------------------------------------------


def tie_statistics(interactions: pd.DataFrame) -> dict[str, int]:
    """Ratings sharing (user, ts), tie groups, and users whose latest ts is shared (spec §3)."""
    sizes = interactions.groupby(["user_id", "ts"], sort=False).size()
    tied = sizes[sizes >= 2]
    latest = interactions.groupby("user_id", sort=False)["ts"].transform("max")
    at_latest = interactions.loc[interactions["ts"] == latest].groupby("user_id").size()
    return {
        "ratings_in_ties": int(tied.sum()),
        "tie_groups": int(len(tied)),
        "users_latest_ts_shared": int((at_latest >= 2).sum()),
    }


def _manifest(tables: RawTables, path: Path, source_format: str, files: dict) -> dict:
    inter = tables.interactions
    manifest = {
        "partition": tables.partition,
        "source": str(path),
        "source_format": source_format,
        "files": {name: {"sha256": f.sha256, "rows": _rows(f)} for name, f in files.items()},
        "counts": {
            "interactions": len(inter),
            "users": len(tables.users),
            "items": len(tables.items),
            "rated_items": int(inter["item_id"].nunique()),
            "interaction_users": int(inter["user_id"].nunique()),
        },
        "ts_min": int(inter["ts"].min()),
        "ts_max": int(inter["ts"].max()),
        "duplicate_pairs": int(inter.duplicated(["user_id", "item_id"]).sum()),
        "rating_histogram": {str(int(k)): int(v) for k, v in inter["rating"].value_counts().sort_index().items()},
        "genre_totals": {g: int(tables.items[c].sum()) for g, c in zip(ML_GENRES, GENRE_COLUMNS)},
        "ties": tie_statistics(inter),
    }
    if path.is_file():
        manifest["archive"] = file_digests(path, ("sha256", "md5"))
    if "ua_test" in tables.extra:
        manifest["ua"] = {"base": len(tables.extra["ua_base"]), "test": len(tables.extra["ua_test"])}
    return manifest


def _rows(file: Member | AtomicTable) -> int | None:
    if isinstance(file, AtomicTable):
        return len(file.frame)
    return sum(1 for line in file.data.split(b"\n") if line.strip())


# --- public readers ---------------------------------------------------------------------------


def read_movielens_100k(source: str | Path | None = None, *, sha256: str | None = ML_100K_SHA256) -> RawTables:
    """Read ML-100K from the GroupLens zip, its extracted folder or RecBole atomic files.

    Args:
      source: ``ml-100k.zip``, a folder holding it / its members, or a RecBole ``ml-100k/``
        folder; ``None`` reads the copy inside the installed RecBole wheel.
      sha256: pinned digest of the zip (verified before reading); ``None`` skips the check
        for archives built locally.
    """
    kind, path = _resolve(Path(source) if source is not None else recbole_ml100k_dir(), "ml-100k")
    if kind == "recbole":
        tables = _recbole_movielens("movielens-100k", path)
        _add_ua_split(tables)
        tables.manifest["ua"] = {"base": len(tables.extra["ua_base"]), "test": len(tables.extra["ua_test"])}
        return tables
    return _grouplens_100k(kind, path, sha256)


def read_movielens_1m(source: str | Path, *, sha256: str | None = ML_1M_SHA256) -> RawTables:
    """Read ML-1M from ``ml-1m.zip``, its extracted folder or RecBole atomic files.

    ``::`` is split literally; files are latin-1; genres map onto the 19 ML-100K slots
    (slot 0, "unknown", stays 0).
    """
    kind, path = _resolve(Path(source), "ml-1m")
    if kind == "recbole":
        return _recbole_movielens("movielens-1m", path)
    return _grouplens_1m(kind, path, sha256)
