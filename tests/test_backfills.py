"""Backfills from the command line, as a user types them (real `dg` processes on a fresh instance;
about a minute: `make test-slow`): a range of simulated days is one run (world_day's single-run
backfill policy), after which the data group of the streamed partition reads the world at the last
day of the range; one raw table can be launched alone."""

import json
import sqlite3

import pytest

from tests.test_first_hour import _cli

pytestmark = pytest.mark.slow
TINY = {"synthetic_size": "tiny"}


def _runs(home) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "history" / "runs.db") as con:
        return con.execute("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp").fetchall()


def test_a_range_of_days_then_the_data_at_the_clock(tmp_path):
    days = json.dumps({"ops": {"world_day": {"config": TINY}}})
    proc = _cli(
        tmp_path, "dg", "launch", "--assets", "world_day", "--partition-range", "2024-01-01...2024-01-04",
        "--config-json", days,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    data = json.dumps({"ops": {"raw_tables": {"config": TINY}}})
    proc = _cli(tmp_path, "dg", "launch", "--job", "data_job", "--partition", "synthetic", "--config-json", data)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "clock: day 4 (2024-01-04), 4 days arrived" in proc.stdout + proc.stderr
    manifest = json.loads((tmp_path / "data" / "records" / "raw_manifest" / "synthetic.json").read_text())
    assert manifest["clock"]["day_key"] == "2024-01-04"
    assert [status for _, status in _runs(tmp_path / "dagster_home")] == ["SUCCESS", "SUCCESS"]


def test_one_raw_table_alone_from_the_command_line(tmp_path):
    config = json.dumps({"ops": {"raw_tables": {"config": TINY}}})
    proc = _cli(tmp_path, "dg", "launch", "--assets", "raw_items", "--partition", "synthetic", "--config-json", config)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (tmp_path / "data" / "warehouse.duckdb").exists()
    assert not (tmp_path / "data" / "records" / "raw_manifest").exists()  # only the table asked for
