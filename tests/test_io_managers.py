"""Storage contracts: DuckDB tables round-trip per partition and tolerate schema changes
(dagster#13098), partitions with different columns stay apart, a failed write leaves the previous
tables in place, two processes writing one DuckDB file at once both succeed (the single-writer lock of
dagster#16248; no Dagster pool serializes DuckDB steps: every connection takes ``<database>.lock``), a
reader waits for a writer instead of failing, the serving store's readers share the lock, and .npz
arrays are written atomically and loaded without pickle. One test re-measures why DataFrames do not
use dagster-duckdb's own IO manager, so an upgrade that lifts the reason shows."""

import subprocess
import sys
import textwrap
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from resources import DuckDBFrameIOManager
from resources.io_managers import read_frame, schema_for, write_frame
from x_reco.common.filelock import file_lock, lock_path
from x_reco.pipeline.store import _read_tables

TWO_DATASETS = dg.StaticPartitionsDefinition(["synthetic", "movielens-100k"])
ITEMS = {
    "synthetic": pd.DataFrame({"item_id": ["1", "2"], "author_id": ["a", "b"]}),
    "movielens-100k": pd.DataFrame({"item_id": ["7"], "title": ["Heat"], "genre_00": np.array([1], np.int8)}),
}


def test_duckdb_round_trip_and_schema_evolution(tmp_path):
    db = str(tmp_path / "w.duckdb")
    df = pd.DataFrame({"user_id": ["1", "2"], "ts": np.array([5, 6], dtype=np.int64), "x": [0.5, np.nan]})
    write_frame(db, schema_for("movielens-100k"), "raw", df)
    back = read_frame(db, "movielens_100k", "raw")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    write_frame(db, "movielens_100k", "raw", df.assign(extra=[1, 2]).drop(columns="x"))
    assert list(read_frame(db, "movielens_100k", "raw").columns) == ["user_id", "ts", "extra"]
    write_frame(db, "synthetic", "raw", df.head(1))  # another partition, same table name
    assert len(read_frame(db, "movielens_100k", "raw")) == 2


def test_two_processes_write_one_duckdb_file(tmp_path):
    db = str(tmp_path / "w.duckdb")
    code = textwrap.dedent(f"""
        import sys, pandas as pd
        from resources.io_managers import write_frame
        part = sys.argv[1]
        for i in range(15):
            write_frame({db!r}, part, "t", pd.DataFrame({{"i": range(i + 1)}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, p]) for p in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(read_frame(db, "a", "t")) == len(read_frame(db, "b", "t")) == 15


def _hold(db: str, read_only: bool, seconds: float) -> subprocess.Popen:
    """A process that opens ``db`` (read-write through ``duckdb_connection``, or read-only under the
    shared lock as the serving store does) and keeps it open ``seconds``."""
    code = textwrap.dedent(f"""
        import time, duckdb
        from resources.io_managers import duckdb_connection
        from x_reco.common.filelock import database_lock
        if {read_only}:
            with database_lock({db!r}, read_only=True), duckdb.connect({db!r}, read_only=True):
                print("open", flush=True)
                time.sleep({seconds})
        else:
            with duckdb_connection({db!r}) as con:
                con.execute('CREATE OR REPLACE TABLE synthetic.raw_items AS SELECT 7 AS v')
                print("open", flush=True)
                time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def _seed(db: str) -> None:
    frames = {n: pd.DataFrame({"v": [1]}) for n in ("raw_items", "raw_users", "engagement_events")}
    for name, frame in frames.items():
        write_frame(db, "synthetic", name, frame)


def test_a_reader_waits_for_a_writer_instead_of_failing(tmp_path):
    """Past behaviour: a read-only open beside a writer failed at once with DuckDB's "Conflicting lock
    is held" (``x-reco feed`` during a Dagster run). Now the reader waits and sees the committed table."""
    db = str(tmp_path / "warehouse.duckdb")
    _seed(db)
    writer = _hold(db, read_only=False, seconds=2.0)
    t0 = time.perf_counter()
    assert list(read_frame(db, "synthetic", "raw_items")["v"]) == [7]
    assert time.perf_counter() - t0 > 1.0
    writer.wait(timeout=60)
    writer = _hold(db, read_only=False, seconds=2.0)
    t0 = time.perf_counter()
    assert list(_read_tables(tmp_path, "synthetic")["raw_items"]["v"]) == [7]  # the serving store's read
    assert time.perf_counter() - t0 > 1.0
    assert writer.wait(timeout=60) == 0


def test_serving_readers_share_the_lock_and_a_writer_waits_for_them(tmp_path):
    db = str(tmp_path / "warehouse.duckdb")
    _seed(db)
    reader = _hold(db, read_only=True, seconds=2.0)
    t0 = time.perf_counter()
    assert list(_read_tables(tmp_path, "synthetic")["raw_users"]["v"]) == [1]
    assert time.perf_counter() - t0 < 1.5  # DuckDB admits many read-only processes
    write_frame(db, "synthetic", "raw_users", pd.DataFrame({"v": [2]}))
    assert time.perf_counter() - t0 > 1.0  # the writer waited for the reader
    assert reader.wait(timeout=60) == 0
    assert list(read_frame(db, "synthetic", "raw_users")["v"]) == [2]


def test_a_long_wait_for_the_lock_is_logged(tmp_path):
    db = str(tmp_path / "w.duckdb")
    _seed(db)
    holder = _hold(db, read_only=False, seconds=1.5)
    lines: list[str] = []
    with file_lock(lock_path(db), warn_after_s=0.3, log=lines.append) as waited:
        assert waited > 0.3
    assert lines[0].startswith("waiting") and str(lock_path(db)) in lines[0] and lines[-1].startswith("got")
    assert holder.wait(timeout=60) == 0


def test_partitions_with_different_columns_stay_apart(tmp_path):
    """Each dataset partition keeps its own columns, and a downstream asset loads its own partition."""

    @dg.asset(partitions_def=TWO_DATASETS)
    def raw_items(context) -> pd.DataFrame:
        return ITEMS[context.partition_key]

    @dg.asset(partitions_def=TWO_DATASETS)
    def item_columns(context, raw_items: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"column": list(raw_items.columns), "rows": len(raw_items)})

    io = {"io_manager": DuckDBFrameIOManager(database=str(tmp_path / "w.duckdb"))}
    for key in ("synthetic", "movielens-100k"):
        assert dg.materialize([raw_items, item_columns], resources=io, partition_key=key).success
    for key, frame in ITEMS.items():
        columns = read_frame(str(tmp_path / "w.duckdb"), schema_for(key), "item_columns")
        assert list(columns["column"]) == list(frame.columns) and set(columns["rows"]) == {len(frame)}


def test_failed_write_keeps_previous_tables(tmp_path):
    """All tables of a dict output are replaced in one transaction: if one cannot be written, none is."""
    db = str(tmp_path / "w.duckdb")
    unwritable = pd.DataFrame({"v": np.array([1j])})  # DuckDB has no complex type
    tables = iter(
        [
            {"a": pd.DataFrame({"v": [1, 2]}), "b": pd.DataFrame({"v": [3]})},
            {"a": pd.DataFrame({"v": [9]}), "b": unwritable},
        ]
    )

    @dg.asset
    def analysis() -> dict:
        return next(tables)

    io = {"io_manager": DuckDBFrameIOManager(database=db)}
    assert dg.materialize([analysis], resources=io).success
    assert not dg.materialize([analysis], resources=io, raise_on_error=False).success
    assert read_frame(db, "main", "analysis__a")["v"].tolist() == [1, 2]
    assert read_frame(db, "main", "analysis__b")["v"].tolist() == [3]
    write_frame(db, "main", "after", pd.DataFrame({"v": [0]}))  # the failed run left no lock behind


def test_library_io_manager_limits(tmp_path):
    """Why DuckDBFrameIOManager exists (see resources/io_managers.py): dagster-duckdb-pandas keeps all
    partitions in one table, so a dataset with other columns cannot be written, and a failed rewrite
    has already deleted the partition's previous rows. If this test fails, reconsider the library."""
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    extra = {"v": False}

    @dg.asset(partitions_def=TWO_DATASETS, metadata={"partition_expr": "dataset"})
    def raw_items(context) -> pd.DataFrame:
        frame = ITEMS[context.partition_key].assign(dataset=context.partition_key)
        return frame.assign(extra=1.0) if extra["v"] else frame

    io = {"io_manager": DuckDBPandasIOManager(database=str(tmp_path / "lib.duckdb"), schema="x")}

    def run(key):
        return dg.materialize([raw_items], resources=io, partition_key=key, raise_on_error=False).success

    assert run("synthetic")
    assert not run("movielens-100k")  # other columns: "table has 3 columns but 4 values were supplied"
    extra["v"] = True
    assert not run("synthetic")
    assert read_frame(str(tmp_path / "lib.duckdb"), "x", "raw_items").empty  # the old rows are gone


def test_npz_io_manager_atomic_and_pickle_free(tmp_path):
    import dagster as dg

    from resources import JsonIOManager, NpzIOManager

    @dg.asset
    def arrays():
        return {"a": np.arange(5), "names": np.array(["x", "yy"])}

    loaded = {}

    @dg.asset(io_manager_key="json")
    def total(arrays):
        loaded.update(arrays)
        return {}

    resources = {"io_manager": NpzIOManager(base_dir=str(tmp_path)), "json": JsonIOManager(base_dir=str(tmp_path))}
    result = dg.materialize([arrays, total], resources=resources)
    assert result.success
    assert loaded["names"].dtype.kind == "U" and loaded["names"].tolist() == ["x", "yy"]
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.rglob("*.tmp"))
    with np.load(files[0], allow_pickle=False) as z:
        assert z["a"].tolist() == [0, 1, 2, 3, 4]

    @dg.asset(name="bad")
    def bad():
        return {"o": np.array([{"x": 1}], dtype=object)}

    with pytest.raises(Exception, match="object arrays"):
        dg.materialize([bad], resources={"io_manager": NpzIOManager(base_dir=str(tmp_path))})


def test_npz_io_manager_saves_and_loads_typed_sequences(tmp_path):
    """EngagementSequences go through the .npz IO manager as the typed value (annotated inputs) and as
    the spec's flat arrays on disk; a file with a missing field fails naming it."""
    from resources import JsonIOManager, NpzIOManager
    from tests.training.helpers import toy_seqs
    from x_reco.data.examples import EngagementSequences

    seqs, loaded = toy_seqs(), []

    @dg.asset
    def engagement_sequences() -> EngagementSequences:
        return seqs

    @dg.asset(io_manager_key="json")
    def consumer(engagement_sequences: EngagementSequences) -> dict:
        loaded.append(engagement_sequences)
        return {}

    resources = {"io_manager": NpzIOManager(base_dir=str(tmp_path)), "json": JsonIOManager(base_dir=str(tmp_path))}
    assert dg.materialize([engagement_sequences, consumer], resources=resources).success
    (path,) = tmp_path.rglob("engagement_sequences.npz")
    assert set(np.load(path, allow_pickle=False).files) == set(seqs.to_arrays())
    assert isinstance(loaded[0], EngagementSequences)
    want = seqs.to_arrays()
    assert all(v.tobytes() == want[k].tobytes() for k, v in loaded[0].to_arrays().items())
    np.savez(path, **{k: v for k, v in want.items() if k != "hist_ts"})
    result = dg.materialize(
        [engagement_sequences, consumer], selection=[consumer], resources=resources, raise_on_error=False
    )
    assert not result.success
    assert "missing field(s) ['hist_ts']" in str(result.failure_data_for_node("consumer").error)


def test_duckdb_io_manager_multi_table_outputs(tmp_path):
    """An asset returning a dict of DataFrames stores one table each; a later run with fewer tables
    leaves no stale table behind for downstream loads."""
    keys = iter([("a", "b"), ("a",)])

    @dg.asset
    def analysis():
        return {k: pd.DataFrame({"v": [1, 2]}) for k in next(keys)}

    @dg.asset
    def reader(analysis):
        return pd.DataFrame({"names": sorted(analysis)})

    io = {"io_manager": DuckDBFrameIOManager(database=str(tmp_path / "w.duckdb"))}
    assert dg.materialize([analysis, reader], resources=io).success
    assert list(read_frame(str(tmp_path / "w.duckdb"), "main", "reader")["names"]) == ["a", "b"]
    assert dg.materialize([analysis, reader], resources=io).success
    assert list(read_frame(str(tmp_path / "w.duckdb"), "main", "reader")["names"]) == ["a"]


@pytest.mark.parametrize("url", ["memory://x-reco", "s3://bucket/x-reco"])
def test_url_roots_are_refused_before_anything_is_written(tmp_path, monkeypatch, url):
    """UPath would write a URL root into a local folder named after it: refuse it with the setting's name."""
    from resources import JsonIOManager, NpzIOManager, StorageResource

    @dg.asset
    def arrays():
        return {"a": np.arange(3)}

    monkeypatch.chdir(tmp_path)
    for manager, name in (
        (NpzIOManager(base_dir=url), "npz_io_manager.base_dir"),
        (JsonIOManager(base_dir=url), "io_manager.base_dir"),
    ):
        with pytest.raises(dg.DagsterResourceFunctionError) as err:
            dg.materialize([arrays], resources={"io_manager": manager})
        assert isinstance(err.value.__cause__, ValueError) and name in str(err.value.__cause__)
    with pytest.raises(ValueError, match="storage.root"):
        StorageResource(root=url).path("checkpoints")
    monkeypatch.setenv("XRECO_DATA_ROOT", url)
    with pytest.raises(ValueError, match="XRECO_DATA_ROOT"):
        StorageResource().path("checkpoints")
    assert not list(tmp_path.iterdir())  # no local 'memory:' or 's3:' folder appeared
