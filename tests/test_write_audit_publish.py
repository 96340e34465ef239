"""Write-audit-publish (issue 12, item 1): a blocking check runs on the in-memory outputs before any
of them is written. Past bug: raw_tables wrote the manifest and every table, then ran its blocking GX
check; after a truncated source the warehouse held the bad tables and a later
`dg launch --assets engagement_events` succeeded on them, and when the DuckDB file was locked the run
failed with the manifest already rewritten. Now a failing check leaves the previous tables and
manifest as they were, the run red and downstream not run, and the manifest is published after its
tables. Every asset with a blocking check goes through the same helper."""

import copy
import dataclasses
import inspect

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets import data as data_assets
from assets.common import publish_after_audit
from resources import io_managers
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources
from x_reco.data.registry import load_raw

TABLES = ("raw_interactions", "raw_items", "raw_users", "item_features", "raw_social__follows")
TINY = {"ops": {"raw_tables": {"config": {"synthetic_size": "tiny"}}}}


def _snapshot(root) -> dict:
    db = str(root / "warehouse.duckdb")
    tables = {name: read_frame(db, "synthetic", name) for name in (*TABLES, "engagement_events")}
    return {"manifest": (root / "records" / "raw_manifest" / "synthetic.json").read_bytes(), **tables}


def _assert_unchanged(root, before: dict) -> None:
    after = _snapshot(root)
    assert after["manifest"] == before["manifest"]
    for name in (*TABLES, "engagement_events"):
        pd.testing.assert_frame_equal(after[name], before[name], obj=name)


@pytest.fixture(scope="module")
def tiny_world():
    """The tiny synthetic world, generated once: raw_tables reads a copy of it (``load_raw`` patched)."""
    return load_raw("synthetic", None, synthetic_config={"size": "tiny"})


def _source(raw, **changes):
    """A ``load_raw`` stand-in returning a fresh copy of ``raw`` with ``changes`` applied."""

    def load(*args, **kwargs):
        return dataclasses.replace(copy.deepcopy(raw), **changes)

    return load


@pytest.fixture(scope="module")
def good_root(tmp_path_factory, tiny_world):
    """A warehouse holding a good tiny world: raw tables, manifest and engagement events."""
    root = tmp_path_factory.mktemp("wap")
    assets = [data_assets.raw_tables, data_assets.engagement_events]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_assets, "load_raw", _source(tiny_world))
        assert dg.materialize(assets, resources=tmp_resources(root), partition_key="synthetic", run_config=TINY).success
    return root


def _step_error(result, step: str) -> str:
    return str(result.failure_data_for_node(step).error)


def test_truncated_source_fails_the_check_and_keeps_the_previous_version(good_root, tiny_world, monkeypatch):
    """The source is cut inside its last row (its timestamp lost): the blocking check fails on the
    in-memory table, nothing is written, and a later downstream launch reads the good version."""
    before = _snapshot(good_root)
    inter = tiny_world.interactions.iloc[: len(tiny_world.interactions) // 2].copy()
    inter.loc[inter.index[-1], "ts"] = None
    manifest = {**tiny_world.manifest, "truncated": True}
    monkeypatch.setattr(data_assets, "load_raw", _source(tiny_world, interactions=inter, manifest=manifest))
    result = dg.materialize(
        [data_assets.raw_tables, data_assets.engagement_events],
        resources=tmp_resources(good_root),
        partition_key="synthetic",
        run_config=TINY,
        raise_on_error=False,
    )
    assert not result.success
    assert not result.get_asset_materialization_events()  # no table, no manifest
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.path[-1] for c in failed] == ["raw_interactions"]
    assert failed[0].metadata["published"].value is False
    error = _step_error(result, "raw_tables")
    assert "blocking check failed, nothing was published" in error and "raw_interactions.gx_suite" in error
    assert "raw_manifest" in error  # named among the outputs that keep their previous version
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "engagement_events" not in started
    _assert_unchanged(good_root, before)

    # The later `dg launch --assets engagement_events` runs on the good tables.
    later = dg.materialize(
        [data_assets.raw_tables, data_assets.engagement_events],
        selection=[data_assets.engagement_events],
        resources=tmp_resources(good_root),
        partition_key="synthetic",
    )
    assert later.success
    _assert_unchanged(good_root, before)


def test_locked_warehouse_leaves_the_manifest(good_root, tiny_world, monkeypatch):
    """Another process holds the DuckDB file: the first table write fails (after DuckDBResource's
    backoff, skipped here) and the new manifest is not written before its tables."""
    before = _snapshot(good_root)
    manifest = {**tiny_world.manifest, "seed": 12345}
    monkeypatch.setattr(data_assets, "load_raw", _source(tiny_world, manifest=manifest))

    def locked(database):
        raise duckdb.IOException(f'Could not set lock on file "{database}": Conflicting lock is held')

    monkeypatch.setattr(io_managers, "duckdb_connection", locked)
    result = dg.materialize(
        [data_assets.raw_tables],
        resources=tmp_resources(good_root),
        partition_key="synthetic",
        run_config=TINY,
        raise_on_error=False,
    )
    assert not result.success and "Conflicting lock is held" in _step_error(result, "raw_tables")
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "raw_manifest" not in materialized
    monkeypatch.undo()
    _assert_unchanged(good_root, before)


def test_a_step_that_dies_between_its_outputs_publishes_none_of_them(good_root, tiny_world, monkeypatch):
    """raw_tables' six DuckDB outputs go in one transaction: the fifth (world_truth) cannot be stored,
    after the first four were handed to the IO manager. Past bug: each output was its own
    transaction, so the first four tables were already replaced (new interactions beside the old
    manifest and the old downstream tables)."""
    before = _snapshot(good_root)
    inter = tiny_world.interactions.iloc[:-50].copy()  # a valid, different world
    monkeypatch.setattr(data_assets, "load_raw", _source(tiny_world, interactions=inter))
    monkeypatch.setattr(data_assets, "truth_table", lambda raw: ["not", "a", "frame"])
    result = dg.materialize(
        [data_assets.raw_tables],
        resources=tmp_resources(good_root),
        partition_key="synthetic",
        run_config=TINY,
        raise_on_error=False,
    )
    assert not result.success and "expected a pandas DataFrame, got list" in _step_error(result, "raw_tables")
    _assert_unchanged(good_root, before)


def test_the_outputs_of_a_step_are_numbered_for_one_transaction(good_root, tiny_world, monkeypatch):
    monkeypatch.setattr(data_assets, "load_raw", _source(tiny_world))
    result = dg.materialize(
        [data_assets.raw_tables], resources=tmp_resources(good_root), partition_key="synthetic", run_config=TINY
    )
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    parts = {name: m["transaction_part"].value for name, m in meta.items() if "transaction_part" in m}
    assert sorted(parts.values()) == [1, 2, 3, 4, 5, 6] and "raw_manifest" not in parts
    assert {m["transaction_parts"].value for name, m in meta.items() if name in parts} == {6}
    assert meta["raw_social"]["published"].value == "all 6 outputs in one transaction"


def test_failed_check_on_a_single_asset_keeps_its_table_and_skips_downstream(tmp_path):
    """The helper on a one-output DuckDB asset: the second, failing version never reaches the table."""
    versions = iter([pd.DataFrame({"v": [1, 2]}), pd.DataFrame({"v": [-1]})])

    @dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="numbers", blocking=True)])
    def numbers(context: dg.AssetExecutionContext):
        frame = next(versions)
        check = dg.AssetCheckResult(passed=bool((frame["v"] > 0).all()), description="every value positive")
        yield from publish_after_audit(context, [dg.Output(frame)], [check])

    @dg.asset
    def doubled(numbers: pd.DataFrame) -> pd.DataFrame:
        return numbers * 2

    io = {"io_manager": io_managers.DuckDBFrameIOManager(database=str(tmp_path / "w.duckdb"))}
    assert dg.materialize([numbers, doubled], resources=io).success
    result = dg.materialize([numbers, doubled], resources=io, raise_on_error=False)
    assert not result.success
    error = _step_error(result, "numbers")
    assert "numbers.positive (every value positive)" in error and "numbers keep their previous version" in error
    assert read_frame(str(tmp_path / "w.duckdb"), "main", "numbers")["v"].tolist() == [1, 2]
    assert read_frame(str(tmp_path / "w.duckdb"), "main", "doubled")["v"].tolist() == [2, 4]
    assert "doubled" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def test_direct_call_yields_the_checks_then_raises():
    """Called as a function (tests, notebooks): the failed check results come out before the Failure."""
    context = dg.build_asset_context()
    gen = publish_after_audit(context, [dg.Output(1)], [dg.AssetCheckResult(passed=False, check_name="c")])
    (check,) = [next(gen)]
    assert not check.passed and check.metadata["published"].value is False
    with pytest.raises(dg.Failure, match="nothing was published"):
        next(gen)
    passing = list(publish_after_audit(context, [dg.Output(1)], [dg.AssetCheckResult(passed=True, check_name="c")]))
    assert isinstance(passing[0], dg.Output) and passing[1].passed  # published first, then checked
    warn = dg.AssetCheckResult(passed=False, check_name="w", severity=dg.AssetCheckSeverity.WARN)
    assert isinstance(next(publish_after_audit(context, [dg.Output(1)], [warn])), dg.Output)  # a warning publishes


def test_every_blocking_check_goes_through_publish_after_audit():
    """No asset may yield an Output before its blocking check: each one publishes through the helper."""
    from definitions import defs

    blocking = [
        a for a in defs.get_repository_def().asset_graph.assets_defs if any(spec.blocking for spec in a.check_specs)
    ]
    names = {a.node_def.name for a in blocking}
    assert {"raw_tables", "engagement_events", "model_evaluation", "served_feeds"} <= names
    for a in blocking:
        source = inspect.getsource(a.op.compute_fn.decorated_fn)
        assert "publish_after_audit(" in source and "yield dg.Output" not in source, a.node_def.name
