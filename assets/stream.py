"""Stream group: the synthetic world arrives one simulated day at a time.

``world_day`` is partitioned by simulated day (``WORLD_DAYS``): materializing a day is that day
arriving, with its counts (impressions, engaged impressions, visits, new posts and follows) and a
digest of its impressions in the metadata. Every day maps to the one streamed dataset partition, so
``raw_tables`` of that partition depends on the days (and no other partition does); it reads the
world as of the *clock*, the last day that arrived without a gap from day 1. With declarative
automation (``STREAM_AUTOMATION``) a new day carries on into the raw tables, events and sequences.

Why days are a static partition set and not ``DailyPartitionsDefinition``: simulated days are not
wall-clock days (the world's clock starts 2024-01-01), and a time-window partition has no mapping to
one static dataset partition, while ``StaticPartitionMapping`` sends every day to it.
"""

import json

import dagster as dg
import pydantic

from assets.common import WORLD_DAYS
from x_reco.data.registry import STREAM_PARTITION, load_raw
from x_reco.data.synthetic.config import WorldConfig
from x_reco.data.synthetic.stream import (
    DAY_KEYS,
    MIN_ARRIVED_DAYS,
    clock_of,
    day_digest,
    day_key,
    day_number,
    day_slice_counts,
)

WORLD_DAY = dg.AssetKey("world_day")
WORLD_DAY_DEP = dg.AssetDep(
    WORLD_DAY, partition_mapping=dg.StaticPartitionMapping({day: STREAM_PARTITION for day in DAY_KEYS})
)
# New upstream data carries downstream: a partition is requested when a dependency was updated since
# it was last requested or materialized, unless something upstream or itself is running. Partitions
# whose upstream never changes (every dataset but the streamed one, for world_day) are never requested.
STREAM_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("new upstream data")


class WorldDayConfig(dg.Config):
    """The synthetic world whose day arrives (must match raw_tables' synthetic_size and seed)."""

    synthetic_size: str = pydantic.Field(
        "small", description="Generated world: tiny | small (the demo) | default | large (WorldConfig sizes)"
    )
    synthetic_seed: int | None = pydantic.Field(
        None, ge=0, description="Generated world: its seed; empty = the size's own seed"
    )

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        WorldConfig.from_dict({"size": self.synthetic_size})
        return self

    def world(self) -> dict:
        """The generator config of the synthetic world these fields name."""
        return {"size": self.synthetic_size} | (
            {"seed": self.synthetic_seed} if self.synthetic_seed is not None else {}
        )


@dg.asset(
    partitions_def=WORLD_DAYS,
    group_name="stream",
    kinds={"python"},
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of days is one run: `--partition-range`
)
def world_day(context: dg.AssetExecutionContext, config: WorldDayConfig) -> dg.MaterializeResult:
    """Simulated days of the synthetic world arrive: their posts, impressions and engagements
    (seeded: the same day of the same world is the same rows, whenever and in whatever order the
    days are materialized). One run may bring a range of days (``dg launch --assets world_day
    --partition-range 2024-01-01...2024-01-10``)."""
    days = [day_number(key) for key in context.partition_keys]
    world = WorldConfig.from_dict(config.world())
    late = [day_key(d) for d in days if d > world.num_days]
    if late:
        raise dg.Failure(
            f"{late[0]} is after the {config.synthetic_size} world's last day "
            f"{day_key(world.num_days)} ({world.num_days} days)"
        )
    raw = load_raw(STREAM_PARTITION, synthetic_config=config.world())
    per_day = {}
    for day in days:
        per_day[day_key(day)] = {**day_slice_counts(raw, day), "impressions_digest": day_digest(raw, day)}
        context.log.info(f"day {day} ({day_key(day)}) arrives: {per_day[day_key(day)]}")
    last = per_day[day_key(days[-1])]
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "first_day": days[0],
            "day": days[-1],  # the counts below are this day's; per_day has every day of the run
            **last,
            "per_day": dg.MetadataValue.json(per_day),
            "world": json.dumps(config.world(), sort_keys=True),
        }
    )


def stream_clock(context: dg.AssetExecutionContext, clock_day: str | None, world: dict) -> int | None:
    """The day the streamed world is read at: ``clock_day`` when given, else the last day that
    arrived without a gap (``world_day`` materializations), else None (no day arrived: the whole
    world, as before the stream). Fails with what to run when too few days arrived, and when the
    days that arrived belong to another world than ``world``."""
    if clock_day is not None:
        context.log.info(f"clock set by config: {clock_day}")
        return day_number(clock_day)
    arrived = context.instance.get_materialized_partitions(WORLD_DAY)
    if not arrived:
        context.log.info("no simulated day has arrived (world_day): reading the whole world")
        return None
    clock = clock_of(arrived)
    if clock < MIN_ARRIVED_DAYS:
        missing = [day_key(d) for d in range(1, MIN_ARRIVED_DAYS + 1) if day_key(d) not in arrived]
        raise dg.Failure(
            f"the streamed world needs days {day_key(1)} .. {day_key(MIN_ARRIVED_DAYS)} to have arrived "
            f"(training, validation, test); missing {missing}: dg launch --job stream_job --partition {missing[0]}"
        )
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=WORLD_DAY, asset_partitions=[day_key(clock)]), limit=1
    ).records
    recorded = records[0].asset_materialization.metadata.get("world") if records else None
    wanted = json.dumps(world, sort_keys=True)
    if recorded is not None and recorded.value != wanted:
        raise dg.Failure(
            f"world_day {day_key(clock)} arrived for the world {recorded.value}, raw_tables reads {wanted}: "
            "materialize world_day with the same synthetic_size and synthetic_seed"
        )
    context.log.info(f"clock: day {clock} ({day_key(clock)}), {len(arrived)} days arrived")
    return clock
