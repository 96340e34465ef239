"""Storage contracts: DuckDB tables round-trip per partition and tolerate schema changes
(dagster#13098), two processes writing one DuckDB file both succeed (the single-writer lock of
dagster#16248), and .npz arrays are written atomically and loaded without pickle."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from resources.io_managers import read_frame, write_frame, schema_for


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


def test_npz_io_manager_atomic_and_pickle_free(tmp_path):
    import dagster as dg

    from resources import NpzIOManager

    @dg.asset
    def arrays():
        return {"a": np.arange(5), "names": np.array(["x", "yy"])}

    @dg.asset
    def total(arrays):
        assert arrays["names"].dtype.kind == "U"
        return None

    result = dg.materialize([arrays], resources={"io_manager": NpzIOManager(base_dir=str(tmp_path))})
    assert result.success
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.rglob("*.tmp"))
    with np.load(files[0], allow_pickle=False) as z:
        assert z["a"].tolist() == [0, 1, 2, 3, 4]

    @dg.asset(name="bad")
    def bad():
        return {"o": np.array([{"x": 1}], dtype=object)}

    with pytest.raises(Exception, match="object arrays"):
        dg.materialize([bad], resources={"io_manager": NpzIOManager(base_dir=str(tmp_path))})


def test_duckdb_io_manager_multi_table_outputs(tmp_path):
    """An asset returning a dict of DataFrames stores one table each; a later run with fewer tables
    leaves no stale table behind for downstream loads."""
    import dagster as dg

    from resources import DuckDBFrameIOManager

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
