"""Jobs and schedules: materialize groups of assets per dataset partition.

Every asset is partitioned by dataset except ``audit_toolkit`` (the same for every dataset): it has
its own unpartitioned ``audit_job`` and stays out of ``research_job``, so that a backfill over datasets
does not recompute it once per partition. ``demo_job`` (one partition) materializes it once as well.
``serving_job`` serves and audits feeds from a partition's champion; ``closed_loop_replay`` (minutes of
simulation) has its own ``replay_job`` and stays out of ``research_job`` and ``demo_job``.
"""

import dagster as dg

from jobs.preflight import preflight_executor
from jobs.stream import advance_world_day, stream_automation, stream_job
from resources.tags import BENCH_GRID_TAG, WARM_START_TAG
from x_reco.data.registry import PARTITIONS, dataset_spec

data_job = dg.define_asset_job(
    "data_job",
    selection=dg.AssetSelection.groups("data"),
    description="Raw tables, item features, events and engagement sequences for one dataset partition.",
    executor_def=preflight_executor,
)

models_job = dg.define_asset_job(
    "models_job",
    selection=dg.AssetSelection.groups("models"),
    description="Retrain the retriever and ranker, rebuild the candidate index, evaluate, update the champion.",
    executor_def=preflight_executor,
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.groups("models"),
    description="Retrain on the partition's current data warm-started from its champion (a third of the step "
    "budget); model_evaluation promotes the new models only if they pass every blocking check and beat "
    "the champion on the same test day.",
    tags={WARM_START_TAG: "true"},
    executor_def=preflight_executor,
)

AUDIT = dg.AssetSelection.assets("audit_toolkit")
REPLAY = dg.AssetSelection.assets("closed_loop_replay")  # minutes on the demo world: its own job
STREAM = dg.AssetSelection.groups("stream")  # partitioned by simulated day: stream_job

research_job = dg.define_asset_job(
    "research_job",
    selection=dg.AssetSelection.groups("research") - AUDIT - REPLAY,
    description="Stakeholder utilities, BT reward models and the Goodhart analyses E1-E3 of one dataset.",
    executor_def=preflight_executor,
)

audit_job = dg.define_asset_job(
    "audit_job",
    selection=AUDIT,
    description="E4, the audit toolkit on the 18-action space (dataset-independent, not partitioned).",
    executor_def=preflight_executor,
)

serving_job = dg.define_asset_job(
    "serving_job",
    selection=dg.AssetSelection.groups("serving"),
    description="The served model variant (its int8 calibration, its agreement with f32), served feeds with their "
    "re-audit, and the weight-set audit of one dataset.",
    executor_def=preflight_executor,
)

replay_job = dg.define_asset_job(
    "replay_job",
    selection=REPLAY,
    description="Closed-loop replay: the served pipeline composes the synthetic world's feeds for its last days.",
    executor_def=preflight_executor,
)

demo_job = dg.define_asset_job(
    "demo_job",
    selection=dg.AssetSelection.all() - REPLAY - STREAM,
    description="Everything, for one dataset partition (what `make demo` runs on `synthetic`).",
    # One step at a time, in the run's own process: on a 2-core machine a training step running beside
    # `inference_benchmark` made its two process repeats differ by up to 77 % (what its
    # `repeats_consistent` check warns of), and a subprocess per step cost ~6 s of start-up each, a
    # third of the demo's wall time (measured: 18 steps, 233 s of step time in a 338 s run).
    # (An executor, not run config: `dg launch` sends an empty run config that would replace a default.)
    executor_def=preflight_executor.configured({"in_process": {}}),
)

bench_job = dg.define_asset_job(
    "bench_job",
    selection=dg.AssetSelection.assets("inference_benchmark"),
    description="inference_benchmark on the `issue` grid (the inference issue's rows; about 8 min on a "
    "2-core CPU) instead of demo_job's one-minute `demo` grid. The grid comes from the run tag "
    "`x-reco/bench-grid`, not from a default run config, which `dg launch` would replace with an empty "
    "one; an explicit `grid` in the run config wins. `make bench` runs the CLI's grids.",
    tags={BENCH_GRID_TAG: "issue"},
    executor_def=preflight_executor,
)

# Partitions whose data needs no download: retrained weekly once the schedule is switched on.
RETRAIN_PARTITIONS = tuple(p for p in PARTITIONS if dataset_spec(p).scheduled_retrain)


@dg.schedule(
    job=retrain_job,
    cron_schedule="0 3 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly warm-start retraining; model_evaluation promotes a new champion only if it wins.",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    for partition in RETRAIN_PARTITIONS:
        yield dg.RunRequest(run_key=f"{partition}-{context.scheduled_execution_time:%Y%m%d}", partition_key=partition)


@dg.asset_sensor(
    asset_key=dg.AssetKey("engagement_sequences"),
    job=retrain_job,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrain (warm start) whenever a partition's engagement sequences are rematerialized, e.g. "
    "after a simulated day arrived (stopped by default).",
)
def retrain_on_new_data(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    partition = asset_event.dagster_event.partition
    if partition and dataset_spec(partition).scheduled_retrain:
        yield dg.RunRequest(run_key=f"{partition}-{asset_event.storage_id}", partition_key=partition)


JOBS = [
    data_job,
    models_job,
    retrain_job,
    research_job,
    audit_job,
    serving_job,
    replay_job,
    demo_job,
    stream_job,
    bench_job,
]
SCHEDULES = [weekly_retrain, advance_world_day]
SENSORS = [stream_automation, retrain_on_new_data]
