"""The storage layout under a data root, shared by the Dagster IO managers that write it and the
library readers that serve from it (``x-reco feed``): one place for every path and table name.

    <root>/warehouse.duckdb                 DataFrame assets: table <schema_for(partition)>.<asset>
                                            (a dict of frames: <asset>__<name>)
    <root>/arrays/<asset>/<partition>.npz   array assets (sequences, candidate index)
    <root>/records/<asset>/<partition>.json small JSON records (checkpoint records, manifests)
    <root>/champions/<partition>.json       the champion record (``x_reco.eval.champion``)
"""

from __future__ import annotations

import re
from pathlib import Path

WAREHOUSE = "warehouse.duckdb"
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
