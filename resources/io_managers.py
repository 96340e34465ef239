"""IO managers: DataFrames to DuckDB (one schema per partition), arrays to atomic .npz files."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from resources.storage import default_root
from x_reco.common.atomic import atomic_file


def schema_for(partition: str | None) -> str:
    """DuckDB schema holding one dataset partition's tables, e.g. ``movielens_100k``."""
    return re.sub(r"[^a-z0-9_]", "_", (partition or "main").lower())


def connect(database: str, retries: int = 40) -> duckdb.DuckDBPyConnection:
    """Open a short-lived connection, retrying while another process holds the write lock."""
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries):
        try:
            return duckdb.connect(database)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == retries - 1:
                raise
            time.sleep(0.25 * (1 + attempt % 8))
    raise AssertionError("unreachable")


def write_frame(database: str, schema: str, table: str, df: pd.DataFrame) -> None:
    """Replace ``schema.table`` with ``df`` in one transaction (schemas may change between runs)."""
    con = connect(database)
    try:
        con.execute("BEGIN")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.register("frame_to_write", df)
        con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS SELECT * FROM frame_to_write')
        con.unregister("frame_to_write")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def read_frame(database: str, schema: str, table: str) -> pd.DataFrame:
    con = connect(database)
    try:
        return con.execute(f'SELECT * FROM "{schema}"."{table}"').df()
    finally:
        con.close()


class DuckDBFrameIOManager(dg.ConfigurableIOManager):
    """Stores each partition of a DataFrame asset as table ``<partition>.<asset>`` in DuckDB."""

    database: str = ""

    def _db(self) -> str:
        return self.database or os.path.join(default_root(), "warehouse.duckdb")

    def _where(self, context) -> tuple[str, str]:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return schema_for(partition), context.asset_key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        """A DataFrame becomes ``<partition>.<asset>``; a dict of DataFrames ``<asset>__<name>`` each."""
        schema, table = self._where(context)
        if isinstance(obj, dict):
            bad = [k for k, v in obj.items() if not isinstance(v, pd.DataFrame)]
            if bad or not obj:
                raise TypeError(f"{context.asset_key}: expected a non-empty dict of DataFrames, bad keys {bad}")
            for name, frame in obj.items():
                write_frame(self._db(), schema, f"{table}__{name}", frame)
            stale = set(table_names(self._db(), schema, f"{table}__")) - {f"{table}__{n}" for n in obj}
            drop_tables(self._db(), schema, sorted(stale))
            context.add_output_metadata({"tables": ", ".join(f"{schema}.{table}__{n}" for n in obj),
                                         "rows": sum(len(f) for f in obj.values())})
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key}: expected a pandas DataFrame, got {type(obj).__name__}")
        write_frame(self._db(), schema, table, obj)
        context.add_output_metadata({"table": f"{schema}.{table}", "rows": len(obj)})

    def load_input(self, context: dg.InputContext):
        schema, table = self._where(context)
        names = table_names(self._db(), schema, f"{table}__")
        if names:
            return {n.removeprefix(f"{table}__"): read_frame(self._db(), schema, n) for n in names}
        return read_frame(self._db(), schema, table)


def drop_tables(database: str, schema: str, names: list[str]) -> None:
    if not names:
        return
    con = connect(database)
    try:
        for name in names:
            con.execute(f'DROP TABLE IF EXISTS "{schema}"."{name}"')
    finally:
        con.close()


def table_names(database: str, schema: str, prefix: str) -> list[str]:
    con = connect(database)
    try:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND starts_with(table_name, ?)"
            " ORDER BY table_name", [schema, prefix]).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


class _NpzUPathIOManager(dg.UPathIOManager):
    extension = ".npz"

    def dump_to_path(self, context: dg.OutputContext, obj: dict, path) -> None:
        if not isinstance(obj, dict):
            raise TypeError(f"{context.asset_key}: expected a dict of numpy arrays, got {type(obj).__name__}")
        arrays = {k: np.asarray(v) for k, v in obj.items()}
        bad = [k for k, v in arrays.items() if v.dtype == object]
        if bad:
            raise TypeError(f"{context.asset_key}: object arrays cannot be stored without pickle: {bad}")
        with atomic_file(str(path), "wb") as fh:
            np.savez_compressed(fh, **arrays)
        context.add_output_metadata({"arrays": len(arrays), "bytes": os.path.getsize(str(path))})

    def load_from_path(self, context: dg.InputContext, path) -> dict:
        with np.load(str(path), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


class NpzIOManager(dg.ConfigurableIOManagerFactory):
    """Stores dict-of-array assets as one compressed ``.npz`` per partition, written atomically."""

    base_dir: str = ""

    def create_io_manager(self, context) -> _NpzUPathIOManager:
        from upath import UPath

        return _NpzUPathIOManager(base_path=UPath(self.base_dir or os.path.join(default_root(), "arrays")))


class _JsonUPathIOManager(dg.UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj, path) -> None:
        import json

        try:
            text = json.dumps(obj, indent=2, sort_keys=True)
        except TypeError as exc:
            raise TypeError(f"{context.asset_key}: output is not JSON-serializable ({exc}); "
                            "x-reco never pickles outputs") from exc
        with atomic_file(str(path), "w") as fh:
            fh.write(text + "\n")

    def load_from_path(self, context: dg.InputContext, path) -> dict:
        import json

        with open(str(path)) as fh:
            return json.load(fh)


class JsonIOManager(dg.ConfigurableIOManagerFactory):
    """Small records (checkpoint paths, champion records) as JSON files; the default IO manager,
    so that no output is ever pickled."""

    base_dir: str = ""

    def create_io_manager(self, context) -> _JsonUPathIOManager:
        from upath import UPath

        return _JsonUPathIOManager(base_path=UPath(self.base_dir or os.path.join(default_root(), "records")))
