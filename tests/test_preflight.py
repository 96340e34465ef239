"""Issue 12, item 6 for whole runs: a bad value in any step's config fails the run before its first
step starts. Before the pre-flight executor, ``models_job`` with a bad ``ranker_checkpoint`` config
first trained the retriever (the ranker's config was only built when its step started). Issue 11,
item 5: a run whose partition tag is not a dataset (the launchpad's tags, ``dagster job launch
--tags``) is stopped the same way, naming the partitions; its first step used to fail on the name."""

import dagster as dg
import pytest

from jobs.preflight import RunConfigError, partition_error, preflight_errors
from x_reco.data.registry import PARTITIONS

BAD_MODELS_CONFIG = {
    "ops": {
        "ranker_checkpoint": {"config": {"num_steps": -5}},
        "retriever_checkpoint": {"config": {"overrides_json": '{"batch_size": 0}'}},
    },
    "execution": {"config": {"in_process": {}}},
}


def _job(name: str) -> dg.JobDefinition:
    from definitions import defs

    return defs.resolve_job_def(name)


def data_job() -> dg.JobDefinition:
    return _job("data_job")


def models_job() -> dg.JobDefinition:
    return _job("models_job")


def audit_job() -> dg.JobDefinition:
    return _job("audit_job")


def test_every_bad_step_config_is_listed_with_its_step_and_field():
    errors = preflight_errors(models_job(), BAD_MODELS_CONFIG)
    assert len(errors) == 2, errors
    ranker, retriever = errors
    assert ranker.startswith("ranker_checkpoint: ") and "num_steps=-5 must be >= 1" in ranker
    assert retriever.startswith("retriever_checkpoint: ") and "batch_size=0 must be >= 1" in retriever


def test_only_the_planned_steps_are_checked():
    assert preflight_errors(models_job(), BAD_MODELS_CONFIG, step_keys=["candidate_index"]) == []


@pytest.mark.parametrize("name", ["data_job", "models_job", "research_job", "serving_job", "replay_job", "demo_job"])
def test_the_default_config_of_every_job_passes(name):
    assert preflight_errors(_job(name), {}) == []


def test_every_job_and_the_asset_job_run_behind_the_preflight():
    from definitions import defs

    for job in [*(defs.resolve_job_def(j.name) for j in defs.jobs), defs.resolve_implicit_global_asset_job_def()]:
        assert job.executor_def.name == "preflight_multi_or_in_process", job.name


def test_a_bad_config_fails_the_run_before_any_step_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("XRECO_DATA_ROOT", str(tmp_path / "data"))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(
            dg.reconstructable(models_job),
            instance=instance,
            run_config=BAD_MODELS_CONFIG,
            tags={"dagster/partition": "synthetic"},
            raise_on_error=False,
        )
        assert not result.success
        events = instance.all_logs(result.run_id)
        started = [
            e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START
        ]
        assert started == []
        failure = next(
            e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        text = failure.dagster_event.event_specific_data.error.to_string()
        assert RunConfigError.__name__ in text
        assert "ranker_checkpoint: " in text and "num_steps=-5" in text and "batch_size=0" in text
    assert not (tmp_path / "data").exists()  # nothing was written


def test_a_valid_config_runs_through_the_preflight(tmp_path, monkeypatch):
    monkeypatch.setenv("XRECO_DATA_ROOT", str(tmp_path / "data"))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(
            dg.reconstructable(audit_job),
            instance=instance,
            run_config={"execution": {"config": {"in_process": {}}}},
        )
        assert result.success
        assert [e.step_key for e in result.get_step_success_events()] == ["audit_toolkit"]


def test_an_unknown_partition_tag_is_named_with_the_partitions():
    error = partition_error(data_job(), {"dagster/partition": "bogus"})
    assert error == f"partition: unknown partition 'bogus'; expected one of: {', '.join(PARTITIONS)}"
    assert partition_error(data_job(), {"dagster/partition": PARTITIONS[0]}) is None
    assert partition_error(audit_job(), {"dagster/partition": "bogus"}) is None  # not partitioned: no opinion


def test_a_run_with_an_unknown_partition_fails_before_any_step_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("XRECO_DATA_ROOT", str(tmp_path / "data"))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(
            dg.reconstructable(data_job),
            instance=instance,
            run_config={"execution": {"config": {"in_process": {}}}},
            tags={"dagster/partition": "bogus"},
            raise_on_error=False,
        )
        assert not result.success
        events = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event]
        assert [e for e in events if e.event_type == dg.DagsterEventType.STEP_START] == []
        failure = next(e for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        text = failure.event_specific_data.error.to_string()
        assert "partition: unknown partition 'bogus'; expected one of: synthetic, movielens-100k" in text
    assert not (tmp_path / "data").exists()
