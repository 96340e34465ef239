"""Data group: raw tables, engagement events and Phoenix engagement sequences per dataset."""

import json

import dagster as dg
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, NPZ, check_result, image, publish_after_audit
from resources import DatasetSourcesResource
from x_reco.data import quality, summary
from x_reco.data.events import build_events
from x_reco.data.item_features import item_features as build_item_features
from x_reco.data.registry import ExampleKind, SplitRule, dataset_spec, load_raw
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.synthetic import SOCIAL_TABLES
from x_reco.data.synthetic.config import WorldConfig
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


class RawDataConfig(dg.Config):
    """Which source to read; for `synthetic`, the world size and seed."""

    synthetic_size: str = "small"
    synthetic_seed: int = pydantic.Field(-1, ge=-1)  # -1: the size's seed
    source_path: str = ""  # overrides DatasetSourcesResource for this run

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        WorldConfig.from_dict({"size": self.synthetic_size})
        return self


@dg.multi_asset(
    outs={
        "raw_interactions": dg.AssetOut(io_manager_key=DUCKDB, kinds={"duckdb"}, description="Canonical interactions"),
        "raw_items": dg.AssetOut(
            io_manager_key=DUCKDB, kinds={"duckdb"}, description="Items with the dataset's columns"
        ),
        "raw_users": dg.AssetOut(io_manager_key=DUCKDB, kinds={"duckdb"}, description="Users"),
        "item_features": dg.AssetOut(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="D-dim item features in [0, 1] and the reward-modelling pool (datasets §8)",
        ),
        "world_truth": dg.AssetOut(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            description="Synthetic ground truth (archetypes, topics, true probabilities); "
            "only diagnostics may read it. Empty for real datasets.",
        ),
        "raw_social": dg.AssetOut(
            io_manager_key=DUCKDB,
            kinds={"duckdb"},
            is_required=False,
            description="The synthetic world's follow graph and social tables (authors, follows, text, links, media, "
            "paywalls, post events, safety, "
            "muted keywords, blocks; candidate-pipeline spec §14) as raw_social__<name>: the candidate "
            "pipeline reads them, training never does. Only the synthetic partition has them.",
        ),
        "raw_manifest": dg.AssetOut(
            kinds={"json"},
            description="The source's manifest (checksums, counts, generator config and seeds, split cutoffs); "
            "events, training and evaluation read the synthetic world's clock and recency window "
            "from it",
        ),
    },
    partitions_def=DATASETS,
    group_name="data",
    check_specs=RAW_CHECKS,
    pool="duckdb",
)
def raw_tables(context: dg.AssetExecutionContext, config: RawDataConfig, sources: DatasetSourcesResource):
    """Read one dataset partition into canonical tables and validate them."""
    partition = context.partition_key
    spec = dataset_spec(partition)
    source = config.source_path or sources.source_for(partition)
    synthetic = {"size": config.synthetic_size} | (
        {"seed": config.synthetic_seed} if config.synthetic_seed >= 0 else {}
    )
    context.log.info(f"reading {partition} from {source or 'the default source'}")
    raw = load_raw(partition, source, synthetic_config=synthetic if spec.generated else None)
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
    yield from publish_after_audit(context, outputs, _raw_checks(partition, spec, raw, features))


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
    pool="duckdb",
    kinds={"duckdb", "pandas"},
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

    history_len: int = pydantic.Field(32, ge=1)
    candidate_len: int = pydantic.Field(16, ge=1)
    seed: int = pydantic.Field(0, ge=0)
    vocab_size: int = pydantic.Field(100_000, ge=2)


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
