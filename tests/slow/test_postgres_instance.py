"""deploy/dagster-postgres.yaml on a real PostgreSQL server (issue 11, item 6). Contract: the shared
deployment's instance runs a two-partition backfill through the daemon with every run, event and
materialization in Postgres; a daemon-launched run whose worker gets `kill -9` is failed (by its code
server) and gives its pool slot (limit 1, per run) to the queued run; an in-process run killed the same way holds
no slot and is failed by the daemon's run monitoring at its `dagster/max_runtime`."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType

from tests.slow.conftest import REPO, wait_for

DEPLOY_YAML = REPO / "deploy" / "dagster-postgres.yaml"
BIN = Path(sys.executable).parent
BACKFILL_PARTITIONS = ("synthetic", "movielens-100k")  # the two that need no download
Status = dg.DagsterRunStatus
MAX_RUNTIME = 30  # s: `dagster/max_runtime` of the killed in-process run; a queued run takes ~10 s on 2 busy cores


def _write_instance(home: Path) -> None:
    """deploy/dagster-postgres.yaml, with the daemon's monitor polling every second (30 s deployed)."""
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def instance_env(postgres_server, tmp_path, request, monkeypatch):
    """A DAGSTER_HOME on its own Postgres database; the same variables go to every subprocess."""
    db = request.node.name.replace("test_", "")[:40]
    postgres_server.create_database(db)
    _write_instance(tmp_path / "home")
    env = {
        **postgres_server.env(db),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "XRECO_DATA_ROOT": str(tmp_path / "data"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _cli("instance", "migrate")
    return db


def _cli(*args: str, cwd: Path = REPO) -> str:
    """A `dagster` CLI command under the test's environment; its output in the failure message."""
    done = subprocess.run([BIN / "dagster", *args], cwd=cwd, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, f"dagster {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Daemon:
    """`dagster-daemon run` as a subprocess with its log in a file, stopped by the fixture."""

    def __init__(self, log: Path, *target: str, cwd: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [BIN / "dagster-daemon", "run", *target],
            cwd=cwd,
            env=os.environ,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-40:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def _runs(instance: dg.DagsterInstance, **filters) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(**filters)))


def _finished(instance, run_ids) -> bool:
    return all(instance.get_run_by_id(r).is_finished for r in run_ids)


@pytest.mark.slow
def test_backfill_runs_through_the_daemon_with_everything_in_postgres(instance_env, postgres_server, tmp_path):
    """`dagster job backfill` of data_job over two partitions: the daemon dequeues and launches both
    runs, both succeed, and Postgres holds the runs, their event logs, the partitioned
    materializations and the blocking checks' results."""
    daemon = Daemon(tmp_path / "daemon.log", "-w", str(REPO / "workspace.yaml"), cwd=REPO)
    try:
        target = ["-w", str(REPO / "workspace.yaml"), "-j", "data_job"]
        _cli("job", "backfill", *target, "--partitions", ",".join(BACKFILL_PARTITIONS), "--noprompt")
        with dg.DagsterInstance.get() as instance:
            (backfill,) = instance.get_backfills()
            runs = _runs(instance, tags={"dagster/backfill": backfill.backfill_id})
            assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(BACKFILL_PARTITIONS)
            ids = [r.run_id for r in runs]
            wait_for(
                lambda: _finished(instance, ids), 900, lambda: f"the backfill's runs; daemon log:\n{daemon.tail()}", 2
            )
            statuses = {r: instance.get_run_by_id(r).status for r in ids}
            assert set(statuses.values()) == {Status.SUCCESS}, f"{statuses}\n{daemon.tail()}"
    finally:
        daemon.stop()
    _assert_backfill_in_postgres(postgres_server, instance_env, ids)
    assert (tmp_path / "data" / "warehouse.duckdb").exists()


def _assert_backfill_in_postgres(server, db: str, run_ids: list[str]) -> None:
    """Read the tables dagster-postgres wrote, with psycopg2, not through Dagster."""
    # The backfill's runs: the default-on stream_automation sensor may have started a run of its own
    # meanwhile (the backfill changed the data group's tables), depending on when its ticks fall.
    rows = server.query(db, "SELECT run_id, status, partition FROM runs WHERE run_id = ANY(%s)", (list(run_ids),))
    assert sorted(run_id for run_id, _, _ in rows) == sorted(run_ids)
    assert {status for _, status, _ in rows} == {"SUCCESS"}
    assert sorted(partition for _, _, partition in rows) == sorted(BACKFILL_PARTITIONS)
    for run_id in run_ids:
        (n_events,) = server.query(db, "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))[0]
        assert n_events > 20, run_id
    materialized = set(
        server.query(
            db, "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
    )
    for partition in BACKFILL_PARTITIONS:
        for asset in ("raw_interactions", "item_features", "engagement_events", "engagement_sequences"):
            assert (json.dumps([asset]), partition) in materialized
    checks = server.query(
        db,
        "SELECT c.asset_key, r.partition, c.execution_status FROM asset_check_executions c JOIN runs r USING (run_id)",
    )  # the check table's own partition column stays empty (Dagster 1.13.27)
    assert (json.dumps(["engagement_sequences"]), "synthetic", "SUCCEEDED") in checks
    assert {status for _, _, status in checks} == {"SUCCEEDED"}
    assert len(checks) == 2 * 6  # 4 raw_tables suites, events and sequences, per partition


DEFS = textwrap.dedent("""
    import time
    import dagster as dg

    @dg.asset(pool="writer")
    def slow_writer():
        time.sleep(600)

    @dg.asset(pool="writer")
    def quick_writer():
        return 1

    slow_job = dg.define_asset_job("slow_job", [slow_writer], executor_def=dg.in_process_executor)
    quick_job = dg.define_asset_job("quick_job", [quick_writer], executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[slow_writer, quick_writer], jobs=[slow_job, quick_job])
""")


@pytest.fixture
def pool_defs(instance_env, tmp_path):
    """Two jobs in one pool (the yaml's limit 1, per run; one sleeps 10 min) and a daemon serving them."""
    defs = tmp_path / "defs.py"
    defs.write_text(DEFS)
    daemon = Daemon(tmp_path / "daemon.log", "-f", str(defs), cwd=tmp_path)
    yield defs, daemon
    daemon.stop()


def _launch(instance, defs: Path, job: str) -> str:
    """Submit ``job`` to the queued run coordinator (the daemon launches it); its run id."""
    _cli("job", "launch", "-f", str(defs), "-j", job, cwd=defs.parent)
    return _runs(instance, job_name=job)[0].run_id


def _events(instance, run_id: str, kind: DagsterEventType | set[DagsterEventType]) -> list:
    return instance.all_logs(run_id, of_type=kind)


def _worker_pid(instance, run_id: str) -> int:
    """The run worker's pid, from its "Started process for run (pid: N)" engine event."""
    for event in _events(instance, run_id, DagsterEventType.ENGINE_EVENT):
        if event.message.startswith("Started process for run"):
            return int(event.dagster_event.engine_event_data.metadata["pid"].value)
    raise AssertionError(f"no run worker pid for {run_id}")


@pytest.mark.slow
def test_killed_run_worker_is_failed_and_frees_its_pool_slot(pool_defs):
    """`kill -9` of a daemon-launched run worker: the code server that spawned it marks the run FAILED
    (the default launcher has no worker health check for the monitor), and the run queued behind it
    in the pool starts only then."""
    defs, daemon = pool_defs
    with dg.DagsterInstance.get() as instance:
        dead = _launch(instance, defs, "slow_job")
        wait_for(lambda: _events(instance, dead, DagsterEventType.STEP_START), 180, "slow_writer to start")
        waiting = _launch(instance, defs, "quick_job")
        time.sleep(6)  # a few of the daemon's dequeue ticks
        assert instance.get_run_by_id(waiting).status == Status.QUEUED  # the pool holds one run
        os.kill(_worker_pid(instance, dead), signal.SIGKILL)
        wait_for(lambda: _finished(instance, [dead, waiting]), 120, lambda: f"both runs; daemon log:\n{daemon.tail()}")
        (dead_record,) = instance.get_run_records(dg.RunsFilter(run_ids=[dead]))
        (waiting_record,) = instance.get_run_records(dg.RunsFilter(run_ids=[waiting]))
        messages = [e.message for e in instance.all_logs(dead)]
    assert dead_record.dagster_run.status == Status.FAILURE
    assert waiting_record.dagster_run.status == Status.SUCCESS
    assert waiting_record.start_time >= dead_record.end_time  # dequeued once the slot was free
    assert any("was terminated by signal 9 (SIGKILL)" in m for m in messages), messages[-4:]


@pytest.mark.slow
def test_killed_in_process_run_is_failed_by_run_monitoring(pool_defs, tmp_path):
    """An in-process run (`dagster job execute`, as `dg launch`) killed with `kill -9` stays STARTED:
    nothing saw it die. It holds no pool slot (only runs submitted to the queue carry their pools), so
    the queued run goes on at once; the daemon's run monitoring fails it at its `dagster/max_runtime`
    (30 s here, 12 h in the yaml)."""
    defs, daemon = pool_defs
    tags = json.dumps({"dagster/max_runtime": str(MAX_RUNTIME)})
    cmd = [BIN / "dagster", "job", "execute", "-f", defs, "-j", "slow_job", "--tags", tags]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=os.environ, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        with dg.DagsterInstance.get() as instance:
            started = lambda: [r.run_id for r in _runs(instance, job_name="slow_job")  # noqa: E731
                               if _events(instance, r.run_id, DagsterEventType.STEP_START)]  # fmt: skip
            (dead,) = wait_for(started, 180, "slow_writer to start")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            waiting = _launch(instance, defs, "quick_job")
            wait_for(
                lambda: _finished(instance, [waiting]), 120, lambda: f"the queued run; daemon log:\n{daemon.tail()}"
            )
            assert instance.get_run_by_id(waiting).status == Status.SUCCESS
            assert instance.get_run_by_id(dead).status == Status.STARTED  # dead, and not waited for
            wait_for(
                lambda: _finished(instance, [dead]),
                MAX_RUNTIME + 60,
                lambda: f"the monitor; daemon log:\n{daemon.tail()}",
            )
            assert instance.get_run_by_id(dead).status == Status.FAILURE
            messages = [e.message for e in instance.all_logs(dead)]
            assert f"Canceling due to exceeding maximum runtime of {MAX_RUNTIME} seconds." in messages, messages[-4:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
