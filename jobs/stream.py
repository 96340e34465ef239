"""The streamed world's clock: a job that makes one simulated day arrive, the schedule that advances
it, and the automation sensor that carries a new day into the data group."""

import dagster as dg

from jobs.preflight import preflight_executor
from x_reco.data.synthetic.stream import DAY_KEYS, clock_of, day_key, day_number

WORLD_DAY = dg.AssetKey("world_day")

stream_job = dg.define_asset_job(
    "stream_job",
    selection=dg.AssetSelection.assets(WORLD_DAY),
    description="One simulated day of the synthetic world arrives (world_day); a range of days is a backfill.",
    executor_def=preflight_executor,
)


def next_day(arrived: set[str]) -> str | None:
    """The day after the clock (the first day missing from the gap-free run from day 1), or None
    when every simulated day has arrived."""
    day = clock_of(arrived) + 1
    return day_key(day) if day <= len(DAY_KEYS) else None


@dg.schedule(
    job=stream_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Advance the synthetic world's clock by one simulated day every hour (stopped by default).",
)
def advance_world_day(context: dg.ScheduleEvaluationContext):
    day = next_day(context.instance.get_materialized_partitions(WORLD_DAY))
    if day is None:
        return dg.SkipReason("every simulated day has arrived")
    return dg.RunRequest(run_key=f"world_day-{day}", partition_key=day, tags={"simulated_day": str(day_number(day))})


# Evaluates the data group's automation conditions (STREAM_AUTOMATION): a day that arrived, or any
# upstream table that changed, is carried into the raw tables, events and sequences. Runs with the
# daemon (`make ui`); it never starts work for a partition whose upstream did not change.
stream_automation = dg.AutomationConditionSensorDefinition(
    "stream_automation",
    target=dg.AssetSelection.groups("data"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Carries new data (a simulated day, an updated table) down the data group.",
)
