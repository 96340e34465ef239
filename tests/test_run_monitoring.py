"""Runs that die give their DuckDB pool back (issue 12, item 4). Past bug: with op-granularity pools a
`dg launch` killed with `kill -9` stayed STARTED holding the `duckdb` slot; every later DuckDB step
waited for it forever inside its run worker, busy-polling at ~96 % of a core. The instance yamls
now enable run monitoring (dead runs failed, slots of ended runs freed) and count the pool per run,
so a blocked run waits queued in the daemon and in-process runs never wait on a slot."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import PoolGranularity, dagster_instance_config
from dagster._daemon.monitoring.run_monitoring import check_run_timeout

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
MONITORING = {
    "enabled": True,
    "start_timeout_seconds": 180,
    "cancel_timeout_seconds": 180,
    "max_resume_run_attempts": 0,
    "poll_interval_seconds": 30,
    "max_runtime_seconds": 43200,
    "free_slots_after_run_end_seconds": 60,
}


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-postgres.yaml"])
def test_instance_yamls_validate_with_run_monitoring(tmp_path, name):
    """Both yamls pass Dagster's instance schema and carry the same monitoring and pool settings."""
    shutil.copy(DEPLOY / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_monitoring"] == MONITORING
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "run"}


def test_embedded_instance_loads_with_monitoring_and_run_pools(tmp_path):
    """The instance `make demo` uses: monitoring on, resume off, pool of 1 counted per run."""
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_poll_interval_seconds == 30
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
        pools = instance.get_concurrency_config().pool_config
        assert pools.pool_granularity == PoolGranularity.RUN and pools.default_pool_limit == 1


DEFS = textwrap.dedent("""
    import time
    import dagster as dg

    @dg.asset(pool="duckdb")
    def slow_writer():
        time.sleep(600)

    @dg.asset(pool="duckdb")
    def quick_writer():
        return 1

    defs = dg.Definitions(assets=[slow_writer, quick_writer])
""")


def _materialize(home: Path, module: Path, asset: str) -> subprocess.Popen:
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    cmd = [str(dagster), "asset", "materialize", "-f", str(module), "--select", asset]
    return subprocess.Popen(cmd, env=env, cwd=home, start_new_session=True)


@pytest.mark.slow
def test_killed_run_does_not_wedge_the_next_duckdb_run(tmp_path):
    """Kill -9 a run while its DuckDB-pool step runs; the next DuckDB-pool run finishes at once
    (with the old op-granularity yaml it waited for the dead run's slot forever at ~100 % of a
    core), and run monitoring fails the dead run when it passes its maximum runtime."""
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    module = tmp_path / "defs.py"
    module.write_text(DEFS)
    slow = _materialize(tmp_path, module, "slow_writer")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        deadline = time.time() + 120
        while not any(r.status == dg.DagsterRunStatus.STARTED for r in instance.get_runs()):
            assert time.time() < deadline and slow.poll() is None, "the first run never started"
            time.sleep(0.5)
        time.sleep(2)  # inside the step
        os.killpg(slow.pid, signal.SIGKILL)
        slow.wait(timeout=30)
        (dead,) = instance.get_runs()
        assert dead.status == dg.DagsterRunStatus.STARTED  # nothing reports an in-process run's death
        assert instance.event_log_storage.get_concurrency_info("duckdb").active_slot_count == 0
        quick = _materialize(tmp_path, module, "quick_writer")
        try:
            assert quick.wait(timeout=120) == 0
        finally:
            if quick.poll() is None:
                os.killpg(quick.pid, signal.SIGKILL)
        statuses = sorted(r.status.value for r in instance.get_runs())
        assert statuses == ["STARTED", "SUCCESS"]
        # The daemon's monitor fails the dead run once it passes max_runtime_seconds (1 s here).
        (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[dead.run_id]))
        time.sleep(1.5)
        check_run_timeout(instance, record, logging.getLogger("test"), 1.0)
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
