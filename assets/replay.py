"""Closed-loop replay (candidate-pipeline spec §15.4): the served pipeline composes the synthetic
world's feeds for its last days, per weight set, checkpoints frozen. Group ``research``, its own
``replay_job`` (minutes of simulation on the demo world; not in ``demo_job``)."""

import time

import dagster as dg
import pydantic

from assets.common import DATASETS, DUCKDB, frame_markdown, image
from assets.serving import serving_pipeline
from resources import StorageResource
from x_reco.configs.weights import WeightSet
from x_reco.data.registry import dataset_spec
from x_reco.pipeline.replay import WORLD_POLICY, ReplayConfig
from x_reco.pipeline.replay import closed_loop_replay as closed_loop_replay_run
from x_reco.pipeline.rules import DEFAULT_RULES


def _replay_progress(context):
    """Replay progress every 10 s: the weight set, its requests so far, sets done and an ETA."""
    start = time.perf_counter()
    last = [start]

    def log(name: str, done: int, total: int, requests: int) -> None:
        now = time.perf_counter()
        if requests >= 0 and now - last[0] < 10.0:
            return
        last[0] = now
        elapsed = now - start
        eta = f"{elapsed / done * (total - done):,.0f}s" if done else "?"
        what = f"{requests} requests served" if requests >= 0 else "done"
        context.log.info(f"replay {name}: {what}; weight sets {done}/{total}, {elapsed:,.0f}s elapsed, ETA {eta}")

    return log


class ReplayAssetConfig(dg.Config):
    """Days replayed at the end of the world, the weight sets (``world``: the world's own composer, the
    baseline), the rule set, the user sample (unset: every user) and the seed of the sample and page-2 coins."""

    days: int = pydantic.Field(3, ge=1, description="days replayed at the end of the synthetic world")
    weight_sets: list[str] = pydantic.Field(
        [WORLD_POLICY, "published", "engagement-only", "stakeholder:society"],
        description=f"distinct weight sets that compose the feeds; `{WORLD_POLICY}` is the world's own "
        "composer (the baseline)",
    )
    rules: str = pydantic.Field(DEFAULT_RULES, description="rule set of the candidate pipeline")
    users: int | None = pydantic.Field(None, ge=1, description="users sampled per day; unset: every user")
    seed: int = pydantic.Field(0, ge=0, description="seed of the user sample and of the page-2 coins")

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        for name in self.weight_sets:
            if name != WORLD_POLICY:
                WeightSet.named(name)
        ReplayConfig(self.days, self.seed, tuple(self.weight_sets), self.rules, users=self.users)
        return self


@dg.asset(
    partitions_def=DATASETS,
    group_name="research",
    io_manager_key=DUCKDB,
    ins={"serving_model": dg.AssetIn(), "raw_manifest": dg.AssetIn()},
    kinds={"jax", "duckdb"},
)
def closed_loop_replay(
    context: dg.AssetExecutionContext,
    config: ReplayAssetConfig,
    storage: StorageResource,
    serving_model: dict,
    raw_manifest: dict,
):
    """The served pipeline composes the synthetic world's feeds for its last ``days`` days, per weight set,
    checkpoints frozen (§15.4): author-exposure Gini, small-author share, in-network share, negative
    feedback, follow-graph drift and true utility per day. Synthetic partition only; its own job."""
    partition = context.partition_key
    if not dataset_spec(partition).generated:
        raise dg.Failure(f"closed_loop_replay simulates a generated world; {partition} has no world model")
    pipeline = serving_pipeline(storage, partition, serving_model, config.rules, "published")
    replay_config = ReplayConfig(
        days=config.days,
        seed=config.seed,
        weight_sets=tuple(config.weight_sets),
        rules=config.rules,
        users=config.users,
    )
    context.log.info(f"replaying {config.days} days x {len(config.weight_sets)} weight sets of {partition}")
    t0 = time.perf_counter()
    result = closed_loop_replay_run(pipeline, raw_manifest, replay_config, progress=_replay_progress(context))
    metrics = result.tables["replay_metrics"]
    return dg.Output(
        result.tables,
        metadata={
            "seconds": time.perf_counter() - t0,
            "weight_sets": ", ".join(config.weight_sets),
            "impressions": int(metrics["impressions"].sum()),
            "metrics": dg.MetadataValue.md(frame_markdown(metrics, max_rows=60)),
            **{k: image(v, k) for k, v in result.figures.items()},
        },
    )
