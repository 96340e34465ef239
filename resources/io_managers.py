"""IO managers: DataFrames to DuckDB (one schema per partition), arrays to atomic .npz files.

DataFrames do not go through dagster-duckdb's ``DuckDBPandasIOManager``, for reasons measured with
dagster-duckdb-pandas 0.29.27 (``tests/test_io_managers.py::test_library_io_manager_limits``): it keeps
every partition in one table filtered by ``partition_expr``, but a partition's columns differ by dataset
(``raw_items``, ``raw_users``, ``raw_interactions``, ``item_features`` and ``world_truth`` have other
columns for synthetic and MovieLens), so the second dataset's insert fails; a rewrite is a DELETE then an
INSERT outside one transaction, so a failed rewrite leaves the partition empty for downstream loads; and
the research assets return a dict of tables, which it has no handler for. What stays custom is the table
layout (``<dataset>.<asset>``, ``CREATE OR REPLACE`` in one transaction).

No Dagster pool serializes DuckDB steps: a step computes with nothing held, and only its connections
are serialized, by ``x_reco.common.filelock.database_lock``: an exclusive ``flock`` on
``<database>.lock`` held while the connection is open (a wait over 5 s is logged in the step's log).
Loads take it exclusively too: they open read-write, because DuckDB refuses a read-only connection in
a process that still has a read-write one to the same file (dagster-duckdb leaves one open after a
failed step); the serving store's read-only readers (``x_reco.pipeline.store``) share it. Connections
come from ``dagster_duckdb.DuckDBResource``, whose backoff still covers an opener outside x-reco.

A step with several DuckDB outputs (``raw_tables``: interactions, items, users, features, truth and the
social tables) publishes them in one transaction: ``assets.common.publish_after_audit`` numbers them
(output metadata ``transaction_part`` k of ``transaction_parts`` n), this manager holds parts 1..n-1 in
memory and writes all n in one transaction when part n arrives. A step that fails between two of its
outputs (the file locked by another process, a killed worker) leaves every table at its previous version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from resources.storage import default_root, local_dir
from x_reco.common.atomic import atomic_file
from x_reco.common.filelock import database_lock
from x_reco.common.layout import ARRAYS, RECORDS, WAREHOUSE, schema_for
from x_reco.data.examples import EngagementSequences


@contextmanager
def duckdb_connection(database: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection under the database's lock, closed even when the block raises (the
    resource closes it only on success, and an open connection keeps the file locked)."""
    with database_lock(database, read_only=read_only, log=dg.get_dagster_logger().warning):
        opener = (
            duckdb.connect(database, read_only=True)
            if read_only
            else DuckDBResource(database=database).get_connection()
        )
        with opener as con:
            try:
                yield con
            finally:
                con.close()


@dataclass(frozen=True)
class TableWrite:
    """The tables of one output: replace each ``schema.<name>`` with its frame; with ``stale_prefix``,
    also drop the other tables of that prefix (a dict output that lost a key)."""

    schema: str
    frames: dict[str, pd.DataFrame]
    stale_prefix: str = ""


def write_tables(database: str, writes: list[TableWrite]) -> None:
    """Apply every write in one transaction (columns may change between runs): all or nothing."""
    with duckdb_connection(database) as con:
        con.execute("BEGIN")
        try:
            for w in writes:
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{w.schema}"')
                for name, df in w.frames.items():
                    con.register("frame_to_write", df)
                    con.execute(f'CREATE OR REPLACE TABLE "{w.schema}"."{name}" AS SELECT * FROM frame_to_write')
                    con.unregister("frame_to_write")
                stale = set(_table_names(con, w.schema, w.stale_prefix)) - set(w.frames) if w.stale_prefix else set()
                for name in sorted(stale):
                    con.execute(f'DROP TABLE "{w.schema}"."{name}"')
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def write_frames(database: str, schema: str, frames: dict[str, pd.DataFrame], stale_prefix: str = "") -> None:
    """Replace each ``schema.<name>`` with its frame in one transaction."""
    write_tables(database, [TableWrite(schema, frames, stale_prefix)])


def write_frame(database: str, schema: str, table: str, df: pd.DataFrame) -> None:
    write_frames(database, schema, {table: df})


def read_frame(database: str, schema: str, table: str) -> pd.DataFrame:
    with duckdb_connection(database) as con:
        return _select(con, schema, table)


def _select(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> pd.DataFrame:
    return con.execute(f'SELECT * FROM "{schema}"."{table}"').df()


def _table_names(con: duckdb.DuckDBPyConnection, schema: str, prefix: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND starts_with(table_name, ?)"
        " ORDER BY table_name",
        [schema, prefix],
    ).fetchall()
    return [r[0] for r in rows]


# Outputs of a multi-output step held until its last DuckDB output: (run id, step key) -> writes.
_PENDING: dict[tuple[str, str], list[TableWrite]] = {}


def _transaction_part(context: dg.OutputContext) -> tuple[int, int]:
    """(k, n) from the output metadata ``publish_after_audit`` sets; (1, 1) for a lone output."""
    try:
        meta = context.output_metadata or {}
    except Exception:  # a context built by hand has no step
        return 1, 1
    value = lambda k: getattr(meta.get(k), "value", meta.get(k))  # noqa: E731  (MetadataValue or plain int)
    return int(value("transaction_part") or 1), int(value("transaction_parts") or 1)


class DuckDBFrameIOManager(dg.ConfigurableIOManager):
    """Stores each partition of a DataFrame asset as table ``<partition>.<asset>`` in DuckDB, and a
    dict of DataFrames as tables ``<partition>.<asset>__<name>``."""

    database: str = ""

    def _db(self) -> str:
        return self.database or os.path.join(default_root(), WAREHOUSE)

    def _where(self, context) -> tuple[str, str]:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return schema_for(partition), context.asset_key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        schema, table = self._where(context)
        if isinstance(obj, dict):
            bad = [k for k, v in obj.items() if not isinstance(v, pd.DataFrame)]
            if bad or not obj:
                raise TypeError(f"{context.asset_key}: expected a non-empty dict of DataFrames, bad keys {bad}")
            frames = {f"{table}__{name}": frame for name, frame in obj.items()}
            write = TableWrite(schema, frames, stale_prefix=f"{table}__")
            metadata = {"tables": ", ".join(f"{schema}.{n}" for n in frames), "rows": sum(len(f) for f in obj.values())}
        elif isinstance(obj, pd.DataFrame):
            write = TableWrite(schema, {table: obj})
            metadata = {"table": f"{schema}.{table}", "rows": len(obj)}
        else:
            raise TypeError(f"{context.asset_key}: expected a pandas DataFrame, got {type(obj).__name__}")
        part, parts = _transaction_part(context)
        key = (context.run_id, context.step_key)
        if parts > 1:
            if part == 1 or key not in _PENDING:  # a new step transaction (a failed step's leftovers go)
                for stale in [k for k in _PENDING if k[1] == context.step_key]:
                    del _PENDING[stale]
                _PENDING[key] = []
            _PENDING[key].append(write)
            if part < parts:
                context.add_output_metadata(
                    {**metadata, "published": f"with the step's other outputs ({part}/{parts})"}
                )
                return
            writes = _PENDING.pop(key)
            if len(writes) != parts:
                raise RuntimeError(
                    f"{context.step_key}: {len(writes)} of {parts} outputs of the step's transaction arrived; "
                    "nothing was written"
                )
            write_tables(self._db(), writes)
            context.add_output_metadata({**metadata, "published": f"all {parts} outputs in one transaction"})
            return
        write_tables(self._db(), [write])
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext):
        schema, table = self._where(context)
        with duckdb_connection(self._db()) as con:
            names = _table_names(con, schema, f"{table}__")
            if names:
                return {n.removeprefix(f"{table}__"): _select(con, schema, n) for n in names}
            return _select(con, schema, table)


class _NpzUPathIOManager(dg.UPathIOManager):
    extension = ".npz"

    def dump_to_path(self, context: dg.OutputContext, obj, path) -> None:
        if isinstance(obj, EngagementSequences):
            obj.to_npz(str(path))
            context.add_output_metadata({"arrays": len(obj.to_arrays()), "bytes": os.path.getsize(str(path))})
            return
        if not isinstance(obj, dict):
            raise TypeError(
                f"{context.asset_key}: expected EngagementSequences or a dict of numpy arrays, got {type(obj).__name__}"
            )
        arrays = {k: np.asarray(v) for k, v in obj.items()}
        bad = [k for k, v in arrays.items() if v.dtype == object]
        if bad:
            raise TypeError(f"{context.asset_key}: object arrays cannot be stored without pickle: {bad}")
        with atomic_file(str(path), "wb") as fh:
            np.savez_compressed(fh, **arrays)
        context.add_output_metadata({"arrays": len(arrays), "bytes": os.path.getsize(str(path))})

    def load_from_path(self, context: dg.InputContext, path):
        """EngagementSequences where the input is annotated so, else a dict of arrays."""
        if context.dagster_type.typing_type is EngagementSequences:
            return EngagementSequences.from_npz(str(path))
        with np.load(str(path), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


class NpzIOManager(dg.ConfigurableIOManagerFactory):
    """Stores EngagementSequences and dict-of-array assets as one compressed ``.npz`` per partition,
    written atomically."""

    base_dir: str = ""

    def create_io_manager(self, context) -> _NpzUPathIOManager:
        from upath import UPath

        return _NpzUPathIOManager(
            base_path=UPath(local_dir(self.base_dir, "npz_io_manager.base_dir") or os.path.join(default_root(), ARRAYS))
        )


class _JsonUPathIOManager(dg.UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj, path) -> None:
        import json

        try:
            text = json.dumps(obj, indent=2, sort_keys=True)
        except TypeError as exc:
            raise TypeError(
                f"{context.asset_key}: output is not JSON-serializable ({exc}); x-reco never pickles outputs"
            ) from exc
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

        return _JsonUPathIOManager(
            base_path=UPath(local_dir(self.base_dir, "io_manager.base_dir") or os.path.join(default_root(), RECORDS))
        )
