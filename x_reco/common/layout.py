"""The storage layout under a data root, shared by the Dagster IO managers that write it and the
library readers that serve from it (``x-reco feed``): one place for every path and table name.

    <root>/warehouse.duckdb                 DataFrame assets: table <schema_for(partition)>.<asset>
                                            (a dict of frames: <asset>__<name>)
    <root>/arrays/<asset>/<partition>.npz   array assets (sequences, candidate index)
    <root>/records/<asset>/<partition>.json small JSON records (checkpoint records, manifests)
    <root>/champions/<partition>.json       the champion record (``x_reco.eval.champion``)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

WAREHOUSE = "warehouse.duckdb"
ROOT_ENV = "XRECO_DATA_ROOT"
ARRAYS = "arrays"
RECORDS = "records"


def schema_for(partition: str | None) -> str:
    """DuckDB schema holding one dataset partition's tables, e.g. ``movielens_100k``."""
    return re.sub(r"[^a-z0-9_]", "_", (partition or "main").lower())


def warehouse_path(root: str | Path) -> Path:
    return Path(root) / WAREHOUSE


def array_path(root: str | Path, asset: str, partition: str) -> Path:
    return Path(root) / ARRAYS / asset / f"{partition}.npz"


def record_path(root: str | Path, asset: str, partition: str) -> Path:
    return Path(root) / RECORDS / asset / f"{partition}.json"


def local_dir(value: str, what: str) -> str:
    """``value`` if it is a local or mounted path; a URL raises (it would be written to a local folder)."""
    if "://" in value:
        raise ValueError(
            f"{what}={value!r} is a URL; x-reco stores its files on a local or mounted filesystem "
            "(deploy/README.md: mount the object store and give its path)"
        )
    return value


def default_root() -> str:
    """``$XRECO_DATA_ROOT``, else the repository's ``data/`` folder."""
    root = os.environ.get(ROOT_ENV, "")
    return local_dir(root, ROOT_ENV) if root else str(Path(__file__).resolve().parents[2] / "data")
