"""Data group: raw tables, engagement events and Phoenix engagement sequences per dataset."""

import json

import dagster as dg
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, NPZ, check_result, image, publish_after_audit
from assets.stream import STREAM_AUTOMATION, WORLD_DAY_DEP, WorldDayConfig, stream_clock
from resources import DatasetSourcesResource
from x_reco.data import quality, summary
from x_reco.data.events import build_events
from x_reco.data.item_features import item_features as build_item_features
from x_reco.data.registry import ExampleKind, SplitRule, dataset_spec, load_raw
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.synthetic import SOCIAL_TABLES
from x_reco.data.synthetic.stream import day_number
from x_reco.data.tables import RawTables
from x_reco.data.truth import truth_table

# The public tables the candidate pipeline reads beyond items, users and events: the follow graph and §14.
RAW_SOCIAL_TABLES = ("authors", "follows", *SOCIAL_TABLES)

RAW_CHECKS = [
    dg.AssetCheckSpec("gx_suite", asset=name, blocking=True, description="GX expectations R1-R8 of the datasets spec")
    for name in ("raw_interactions", "raw_items", "raw_users")
] + [
    dg.AssetCheckSpec(
        "gx_suite",
        asset="item_features",
        blocking=True,
        description="S8: features in [0, 1], D columns, pool size of §8",
    )
]


class RawDataConfig(WorldDayConfig):
    """Which source to read; for the generated world, its size, seed (WorldDayConfig) and clock."""

    source_path: str | None = pydantic.Field(
        None, description="Files of a downloaded dataset; empty = the sources resource (XRECO_SOURCE_<NAME>)"
    )
    clock_day: str | None = pydantic.Field(
        None,
        description="Streamed world: read it as of the end of this simulated day (ISO date, e.g. 2024-01-08); "
        "empty = the days that arrived (world_day), or the whole world when none did",
    )
    window_days: int | None = pydantic.Field(
        None, ge=3, description="Streamed world: keep only the last N days of impressions; empty = every day"
    )

    @pydantic.model_validator(mode="after")
    def check_clock(self):
        """A clock day that is not a simulated day fails the run before any work."""
        if self.clock_day is not None:
            day_number(self.clock_day)
        return self


def _raw_out(**kwargs) -> dg.AssetOut:
    """An output of raw_tables: selectable alone (can_subset), carried on by automation when upstream changes."""
    return dg.AssetOut(is_required=False, automation_condition=STREAM_AUTOMATION, **kwargs)


@dg.multi_asset(
    outs={
        "raw_interactions": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="Canonical interactions",
        ),
        "raw_items": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="Items with the dataset's columns",
        ),
        "raw_users": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="Users",
        ),
        "item_features": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="D-dim item features in [0, 1] and the reward-modelling pool (datasets §8)",
        ),
        "world_truth": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="Synthetic ground truth (archetypes, topics, true probabilities); "
            "only diagnostics may read it. Empty for real datasets.",
        ),
        "raw_social": _raw_out(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="The synthetic world's follow graph and social tables (authors, follows, text, links, media, "
            "paywalls, post events, safety, "
            "muted keywords, blocks; candidate-pipeline spec §14) as raw_social__<name>: the candidate "
            "pipeline reads them, training never does. Only the synthetic partition has them.",
        ),
        "raw_manifest": _raw_out(
            kinds={"json"},
            description="The source's manifest (checksums, counts, generator config and seeds, split cutoffs); "
            "events, training and evaluation read the synthetic world's clock and recency window "
            "from it",
        ),
    },
    partitions_def=DATASETS,
    group_name="data",
    check_specs=RAW_CHECKS,
    deps=[WORLD_DAY_DEP],
    can_subset=True,
)
def raw_tables(context: dg.AssetExecutionContext, config: RawDataConfig, sources: DatasetSourcesResource):
    """Read one dataset partition into canonical tables and validate them. Each table can be
    selected alone (``dg launch --assets raw_items``); the tables of one run publish together."""
    partition = context.partition_key
    spec = dataset_spec(partition)
    source = config.source_path or sources.source_for(partition)
    clock = stream_clock(context, config.clock_day, config.world()) if spec.streamed else None
    context.log.info(f"reading {partition} from {source or 'the default source'}")
    raw = load_raw(
        partition,
        source,
        synthetic_config=config.world() if spec.generated else None,
        clock_day=clock,
        window_days=config.window_days if spec.streamed else None,
    )
    n_users = len(raw.users)
    manifest = _json_safe(raw.manifest)
    features = build_item_features(raw)
    outputs = [
        dg.Output(
            raw.interactions,
            output_name="raw_interactions",
            metadata={
                "rows": len(raw.interactions),
                "users": raw.interactions["user_id"].nunique(),
                "items": raw.interactions["item_id"].nunique(),
            },
        ),
        dg.Output(raw.items, output_name="raw_items", metadata={"rows": len(raw.items)}),
        dg.Output(raw.users, output_name="raw_users", metadata={"rows": n_users}),
        dg.Output(
            features,
            output_name="item_features",
            metadata={
                "items": len(features),
                "pool": int(features["in_pool"].sum()),
                "dims": sum(c.startswith("f_") for c in features.columns),
            },
        ),
        dg.Output(truth_table(raw), output_name="world_truth", metadata={"tables": len(raw.truth)}),
    ]
    if all(name in raw.extra for name in RAW_SOCIAL_TABLES):
        social = {name: raw.extra[name] for name in RAW_SOCIAL_TABLES}
        rows = {f"rows_{name}": len(frame) for name, frame in social.items()}
        # The IO manager adds "tables" (their names) and "rows" (the total).
        outputs.append(dg.Output(social, output_name="raw_social", metadata={"table_count": len(social), **rows}))
    # The manifest last: it is published only after every table it describes was written.
    outputs.append(
        dg.Output(
            manifest,
            output_name="raw_manifest",
            metadata={
                "keys": len(manifest),
                "summary": dg.MetadataValue.json({k: v for k, v in manifest.items() if k != "calibration"}),
            },
        )
    )  # the full manifest is the output
    selected = context.op_execution_context.selected_output_names
    checks = [c for c in _raw_checks(partition, spec, raw, features) if c.asset_key.path[-1] in selected]
    yield from publish_after_audit(context, [o for o in outputs if o.output_name in selected], checks)


def _raw_checks(partition: str, spec, raw: RawTables, features: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """The blocking GX suites of raw_tables, run on the in-memory tables before any is written."""
    n_users = len(raw.users)
    inter = quality.interactions_frame(partition, raw.interactions)
    inter_result = quality.run_suite(inter, "raw_interactions", quality.interactions_expectations(partition, n_users))
    if spec.quality.structural_rules:
        inter_result = quality.merge_results(inter_result, quality.structural_rules_result(raw))
    feat_frame = features.assign(in_pool_int=features["in_pool"].astype(int))
    return [
        check_result(inter_result, asset_key="raw_interactions"),
        check_result(
            quality.run_suite(raw.items, "raw_items", quality.items_expectations(partition)), asset_key="raw_items"
        ),
        check_result(
            quality.run_suite(raw.users, "raw_users", quality.users_expectations(partition, n_users)),
            asset_key="raw_users",
        ),
        check_result(
            quality.run_suite(feat_frame, "item_features", quality.item_features_expectations(partition)),
            asset_key="item_features",
        ),
    ]


def _json_safe(obj):
    """The manifest as the JSON IO manager stores it (numpy scalars and paths as strings)."""
    return json.loads(json.dumps(obj, default=str))


@dg.asset(
    partitions_def=DATASETS,
    group_name="data",
    io_manager_key=DUCKDB,
    ins={"raw_interactions": dg.AssetIn(), "raw_items": dg.AssetIn(), "raw_manifest": dg.AssetIn()},
    check_specs=[
        dg.AssetCheckSpec(
            "gx_suite",
            asset="engagement_events",
            blocking=True,
            description="S3-S5: per-user order, split order, binary actions",
        )
    ],
    kinds={"duckdb", "pandas"},
    automation_condition=STREAM_AUTOMATION,
)
def engagement_events(
    context: dg.AssetExecutionContext, raw_interactions: pd.DataFrame, raw_items: pd.DataFrame, raw_manifest: dict
):
    """One row per engagement with the 19 Phoenix action columns and its split."""
    partition = context.partition_key
    raw = RawTables(partition, raw_interactions, raw_items, pd.DataFrame({"user_id": []}), manifest=raw_manifest)
    events = build_events(raw)
    stats = summary.events_summary(events)
    result = quality.run_suite(
        quality.events_frame(events, partition), "engagement_events", quality.events_expectations(partition)
    )
    output = dg.Output(
        events,
        metadata={
            "rows": stats["rows"],
            "users": stats["users"],
            "items": stats["items"],
            **{f"split_{k}": v for k, v in stats["splits"].items()},
            "actions": dg.MetadataValue.md(summary.actions_markdown(stats["actions"])),
            "actions_plot": image(summary.actions_png(stats["actions"], f"{partition}: actions"), "actions"),
        },
    )
    yield from publish_after_audit(context, [output], [check_result(result)])


class SequenceBuildConfig(dg.Config):
    """Sizes and hashing of the engagement sequences (datasets spec §11)."""

    history_len: int = pydantic.Field(32, ge=1, description="History events kept per example (the most recent)")
    candidate_len: int = pydantic.Field(16, ge=1, description="Candidates per example (targets and sampled negatives)")
    seed: int = pydantic.Field(0, ge=0, description="Seed of the negative sampling")
    vocab_size: int = pydantic.Field(100_000, ge=2, description="Rows of each hashed-id table (HashSpec)")


@dg.asset(
    partitions_def=DATASETS,
    group_name="data",
    io_manager_key=NPZ,
    check_specs=[
        dg.AssetCheckSpec(
            "gx_suite",
            asset="engagement_sequences",
            blocking=True,
            description="S1-S7: padding, hash range, ordering, leave-last-out",
        )
    ],
    kinds={"numpy"},
    automation_condition=STREAM_AUTOMATION,
)
def engagement_sequences(
    context: dg.AssetExecutionContext,
    config: SequenceBuildConfig,
    engagement_events: pd.DataFrame,
    raw_items: pd.DataFrame,
):
    """Phoenix training and evaluation examples (arrays in one .npz per dataset)."""
    partition = context.partition_key
    cfg = SequenceConfig(
        history_len=config.history_len,
        candidate_len=config.candidate_len,
        seed=config.seed,
        vocab_size=config.vocab_size,
    )
    spec = dataset_spec(partition)
    seqs = build_sequences(engagement_events, raw_items, partition, cfg)
    stats = summary.sequences_summary(seqs)
    quantiles = stats.pop("history_len_quantiles")
    output = dg.Output(
        seqs,
        metadata={
            **stats,
            **{f"history_len_{k}": v for k, v in quantiles.items()},
            "history_plot": image(summary.history_png(seqs, f"{partition}: history length"), "history"),
        },
    )
    frame = quality.sequence_frame(seqs)
    per_event = spec.example_kind == ExampleKind.PER_EVENT
    exps = quality.sequence_expectations(cfg.history_len, cfg.vocab_size, per_event)
    result = quality.run_suite(frame, "engagement_sequences", exps)
    if spec.split_rule == SplitRule.LEAVE_LAST_OUT:
        lloo = quality.run_suite(
            quality.leave_last_out_frame(seqs), "leave_last_out", quality.leave_last_out_expectations()
        )
        result = quality.merge_results(result, lloo)
    yield from publish_after_audit(context, [output], [check_result(result)])
