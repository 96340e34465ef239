"""The streamed world as Dagster runs it (tiny world, no training): simulated days arrive through
``world_day``; ``raw_tables`` of the streamed partition reads the world at the clock (the newest day
is the test day); too few days, a gap, or days of another world fail with what to run; automation
asks for the streamed partition's data after a new day and for nothing else; the schedule requests
the day after the clock; a single raw table can be materialized alone."""

import dagster as dg
import pytest

from assets import data as data_assets
from assets import stream as stream_assets
from definitions import defs
from jobs.stream import advance_world_day, next_day
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources
from x_reco.data.registry import STREAM_PARTITION
from x_reco.data.synthetic.stream import day_key, end_of_day_ts

TINY = {"synthetic_size": "tiny"}
DATA = [data_assets.raw_tables, data_assets.engagement_events, data_assets.engagement_sequences]


def _arrive(instance, day: int, world=TINY, raise_on_error=True):
    return dg.materialize(
        [stream_assets.world_day],
        partition_key=day_key(day),
        instance=instance,
        run_config={"ops": {"world_day": {"config": world}}},
        raise_on_error=raise_on_error,
    )


def _data(instance, root, world=TINY, selection=None):
    return dg.materialize(
        DATA,
        selection=selection,
        partition_key=STREAM_PARTITION,
        instance=instance,
        resources=tmp_resources(root),
        run_config={"ops": {"raw_tables": {"config": world}}},
        raise_on_error=False,
    )


def _failure(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return str(event.event_specific_data.error.cause or event.event_specific_data.error)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Days 1 and 2 arrive (too few), then day 3: the data at clock 3; then automation after day 4."""
    root = tmp_path_factory.mktemp("stream")
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        yield _run_days(root, instance)


def _run_days(root, instance) -> dict:
    out = {"root": root, "instance": instance}
    for day in (1, 2):
        _arrive(instance, day)
    out["too_few"] = _data(instance, root)
    out["day3"] = _arrive(instance, 3)
    out["clock3"] = _data(instance, root)
    out["other_world"] = _data(instance, root, world={"synthetic_size": "small"})
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    _arrive(instance, 4)
    out["automation"] = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    return out


def test_a_day_arrives_with_its_counts(days):
    (mat,) = days["day3"].get_asset_materialization_events()
    meta = mat.event_specific_data.materialization.metadata
    assert mat.partition == day_key(3) and meta["day"].value == 3
    assert meta["impressions"].value > 0 and len(meta["impressions_digest"].value) == 16


def test_the_data_is_read_at_the_clock(days):
    result = days["clock3"]
    assert result.success
    manifest = [
        e.event_specific_data.materialization.metadata["summary"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "raw_manifest"
    ][0]
    until = end_of_day_ts(3)
    assert manifest["clock"]["day_key"] == day_key(3)
    assert manifest["split_cutoffs"] == {"train_end_ts": until - 2 * 86_400, "val_end_ts": until - 86_400}
    inter = read_frame(str(days["root"] / "warehouse.duckdb"), STREAM_PARTITION, "raw_interactions")
    assert inter["ts"].max() < until
    events = read_frame(str(days["root"] / "warehouse.duckdb"), STREAM_PARTITION, "engagement_events")
    assert set(events["split"]) == {"train", "val", "test"}
    assert events.loc[events["split"] == "test", "ts"].min() >= until - 86_400


def test_too_few_days_or_another_world_fail_with_what_to_run(days):
    assert not days["too_few"].success
    assert "missing ['2024-01-03']: dg launch --job stream_job --partition 2024-01-03" in _failure(days["too_few"])
    assert not days["other_world"].success
    assert "materialize world_day with the same synthetic_size" in _failure(days["other_world"])


def test_a_day_after_the_world_ends_fails(days):
    result = _arrive(days["instance"], 6, raise_on_error=False)
    assert not result.success and "after the tiny world's last day 2024-01-05" in _failure(result)


def test_automation_carries_a_new_day_into_the_streamed_partition_only(days):
    requested = days["automation"]
    for key in ("raw_interactions", "raw_manifest", "engagement_events", "engagement_sequences"):
        assert requested.get_requested_partitions(dg.AssetKey(key)) == {STREAM_PARTITION}, key
    assert requested.get_requested_partitions(dg.AssetKey("retriever_checkpoint")) == set()


def test_the_schedule_requests_the_day_after_the_clock(days):
    assert next_day({day_key(1), day_key(2), day_key(4)}) == day_key(3)
    with dg.build_schedule_context(instance=days["instance"]) as context:
        request = advance_world_day(context)
    assert request.partition_key == day_key(5)  # days 1-4 arrived in the fixture


def test_one_raw_table_alone(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = _data(instance, tmp_path, selection=["raw_items"])
    assert result.success
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"raw_items"}
    assert [c.asset_key.path[-1] for c in result.get_asset_check_evaluations()] == ["raw_items"]
