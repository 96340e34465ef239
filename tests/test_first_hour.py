"""Issue 11 item 5, a user's first hour: the rough edges a new user hit on a clean clone answer in
one line that says what to do, not a 50-line traceback (docs/first-hour.md lists them).

1. An unknown partition: ``dg launch --job data_job --partition bogus`` printed Dagster's traceback
   ending in "Could not find a partition with key `bogus`" (with ``--assets``, a
   ``DagsterInvalidSubsetError`` naming no partition). Dagster raises it from the partitions
   definition's ``validate_partition_key`` before any run exists; ``resources.NamedPartitions``
   raises a ``ClickException`` there, which the ``dg`` and ``dagster`` CLIs print as
   ``Error: unknown partition 'bogus'; expected one of: synthetic, ...`` (exit status 1). A run
   launched with an unknown partition tag is stopped by the pre-flight (tests/test_preflight.py).
2. A downloaded dataset without its files fails its run naming ``XRECO_SOURCE_<NAME>`` and the
   ``x-reco fetch`` command (the library side: tests/data/test_missing_source.py).
3. Plain ``dg launch`` without DAGSTER_HOME records its run in the project's ``.dagster_home``
   (needs the root ``dagster.yaml``; the test skips, saying so, while the checkout has none).

The CLI tests run the real ``dg``/``dagster`` in a subprocess (5-15 s each), the default suite only one.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.common import DATASETS
from resources import NamedPartitions, UnknownPartitionError
from x_reco.data.errors import MissingSourceError
from x_reco.data.registry import PARTITIONS, dataset_spec

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPECTED = f"Error: unknown partition 'bogus'; expected one of: {', '.join(PARTITIONS)}"
needs_named_partitions = pytest.mark.skipif(
    not isinstance(DATASETS, NamedPartitions),
    reason="assets/common.py must define DATASETS = NamedPartitions(list(PARTITIONS))",
)


def _cli(tmp_path: Path, *argv: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """Run a venv command as an activated-venv user would, on a DAGSTER_HOME holding deploy/dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    base = {**os.environ, "DAGSTER_HOME": str(home), "XRECO_DATA_ROOT": str(tmp_path / "data")}
    base |= {"VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    full = {k: v for k, v in (base | env).items() if v is not None}
    cmd = [str(BIN / argv[0]), *argv[1:]]
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def _assert_one_line_answer(proc: subprocess.CompletedProcess) -> None:
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.splitlines()[-1] == EXPECTED, output[-3000:]


def test_an_unknown_partition_is_one_line_naming_the_partitions():
    with pytest.raises(UnknownPartitionError) as caught:
        NamedPartitions(list(PARTITIONS)).validate_partition_key("bogus")
    assert f"Error: {caught.value}" == EXPECTED
    assert isinstance(caught.value, ValueError)
    NamedPartitions(list(PARTITIONS)).validate_partition_key(PARTITIONS[-1])  # a known key passes


def test_a_long_key_list_is_named_by_its_ends():
    keys = [f"2024-01-{d:02d}" for d in range(1, 31)]
    with pytest.raises(UnknownPartitionError, match=r"expected one of: 2024-01-01 \.\.\. 2024-01-30 \(30 keys\)$"):
        NamedPartitions(keys).validate_partition_key("2024-02-01")


@needs_named_partitions
def test_dg_launch_of_an_unknown_partition_answers_in_one_line(tmp_path):
    _assert_one_line_answer(_cli(tmp_path, "dg", "launch", "--job", "data_job", "--partition", "bogus"))


@pytest.mark.slow
@needs_named_partitions
@pytest.mark.parametrize(
    "argv",
    [
        ("dg", "launch", "--assets", "raw_items", "--partition", "bogus"),
        ("dagster", "asset", "materialize", "-m", "definitions", "--select", "raw_items", "--partition", "bogus"),
    ],
    ids=["dg-assets", "dagster-asset-materialize"],
)
def test_every_cli_answers_an_unknown_partition_in_one_line(tmp_path, argv):
    _assert_one_line_answer(_cli(tmp_path, *argv))


def test_a_missing_source_fails_the_run_naming_the_variable_and_the_fetch_command(tmp_path, monkeypatch):
    from assets.data import raw_tables
    from definitions import build_resources
    from tests.dagster_resources import tmp_resources

    partition = "movielens-1m"
    env = dataset_spec(partition).source_env
    monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("XRECO_DATA_ROOT", str(tmp_path / "data"))
    storage = {k: v for k, v in tmp_resources(tmp_path).items() if k != "sources"}
    result = dg.materialize(
        [raw_tables], partition_key=partition, resources=build_resources() | storage, raise_on_error=False
    )
    assert not result.success
    cause = result.failure_data_for_node("raw_tables").error.cause
    assert cause.cls_name == MissingSourceError.__name__
    line = cause.message.split(": ", 1)[1].strip()  # "<module>.MissingSourceError: <message>"
    assert "\n" not in line
    assert f"${env} is not set" in line and f"x-reco fetch {partition} " in line and f"export {env}=" in line
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing was published


def _runs(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "history" / "runs.db") as con:
        return con.execute("SELECT pipeline_name, status FROM runs").fetchall()


def test_the_root_instance_yaml_is_the_deploy_one_stored_in_the_project():
    import yaml

    root = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    assert root.pop("storage") == {"sqlite": {"base_dir": ".dagster_home"}}
    assert root.pop("local_artifact_storage")["config"] == {"base_dir": ".dagster_home"}
    assert root == deploy


@pytest.mark.slow
def test_plain_dg_launch_records_its_run_in_the_project_instance(tmp_path):
    project = tmp_path / "project"  # a copy: the checkout's own .dagster_home is left alone
    ignore = shutil.ignore_patterns(".venv", ".git", ".dagster_home", "data", "*.egg-info", ".*cache*", "__pycache__")
    shutil.copytree(ROOT, project, ignore=ignore)
    instance = project / ".dagster_home"  # what `make` prepares: the yaml and the schema
    instance.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", instance / "dagster.yaml")
    migrate = _cli(tmp_path, "dagster", "instance", "migrate", DAGSTER_HOME=str(instance))
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    user_home = tmp_path / "home"
    user_home.mkdir()
    proc = _cli(tmp_path, "dg", "launch", "--job", "audit_job", cwd=project, DAGSTER_HOME=None, HOME=str(user_home))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert _runs(instance) == [("audit_job", "SUCCESS")]
    assert not list(project.glob(".tmp_dagster_home_*"))
    # dg's own telemetry (dagster_dg_core/utils/telemetry.py) writes $HOME/.dagster/{.telemetry,logs}
    # before any project file is read; no instance data may land there.
    assert {p.name for p in (user_home / ".dagster").glob("*")} <= {".telemetry", "logs"}
