"""Research group: stakeholder utilities, preference pairs, BT reward models and Goodhart analyses."""

import dagster as dg
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, frame_markdown, image, publish_after_audit
from x_reco.data.tables import RawTables
from x_reco.reward import api, checks
from x_reco.reward.audit import AuditConfig
from x_reco.reward.deviations import deviations_table
from x_reco.reward.protocols import PROTOCOLS, SCALES, pairs_config, resolve_protocols, run_analysis


class ResearchConfig(dg.Config):
    """Protocols to run and the scale: `auto` is the dataset record's `research_scale`, `smoke`
    (N <= 200, 2 seeds) on `synthetic` and `full` (the published protocol sizes) on real datasets."""

    protocols: list[str] = pydantic.Field(
        list(PROTOCOLS),
        description=f"Goodhart analysis protocols to run (at least one of {sorted(PROTOCOLS)})",
    )
    scale: str = pydantic.Field(
        "auto",
        description=f"one of {list(SCALES)}: `auto` takes the dataset record's research_scale, `smoke` "
        "is N <= 200 with 2 seeds, `full` the published protocol sizes",
    )

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        if not self.protocols:
            raise ValueError(f"protocols=[] must name at least one of {sorted(PROTOCOLS)}")
        resolve_protocols(self.protocols)
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} must be one of {SCALES}")
        return self


def _figure_metadata(figures: dict[str, bytes], limit: int = 8) -> dict:
    return {k.replace("/", "__").removesuffix(".png"): image(v, k) for k, v in list(figures.items())[:limit]}


def _table_md(df: pd.DataFrame, max_rows: int = 40) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_markdown(df, max_rows))


@dg.asset(
    partitions_def=DATASETS,
    group_name="research",
    io_manager_key=DUCKDB,
    ins={"raw_interactions": dg.AssetIn(), "raw_items": dg.AssetIn(), "item_features": dg.AssetIn()},
    kinds={"duckdb", "jax"},
)
def stakeholder_utilities(
    context: dg.AssetExecutionContext,
    raw_interactions: pd.DataFrame,
    raw_items: pd.DataFrame,
    item_features: pd.DataFrame,
):
    """Stakeholder weight vectors per dataset and their raw geometry (cosines, pool covariance)."""
    partition = context.partition_key
    raw = RawTables(partition, raw_interactions, raw_items, pd.DataFrame({"user_id": []}))
    result = api.stakeholder_utilities(raw, item_features, api.StakeholderConfig(partition=partition))
    tables = result.tables
    return dg.Output(
        tables,
        metadata={
            "stakeholders": len(tables["stakeholder_weights"]),
            "weights": _table_md(tables["stakeholder_weights"][["stakeholder", "role", "norm"]]),
            "raw_cosines": _table_md(tables["raw_cosines"]),
        },
    )


@dg.asset(
    partitions_def=DATASETS,
    group_name="research",
    io_manager_key=DUCKDB,
    check_specs=[
        dg.AssetCheckSpec(
            "labels_consistent",
            asset="preference_pairs",
            blocking=True,
            description="preferred item has the higher noisy utility",
        )
    ],
    kinds={"duckdb"},
)
def preference_pairs(context: dg.AssetExecutionContext, item_features: pd.DataFrame, stakeholder_utilities: dict):
    """Preference pairs per stakeholder and seed from the true weights (80/20 train/held-out)."""
    weights = stakeholder_utilities["stakeholder_weights"]
    table = api.preference_pairs(item_features, weights, pairs_config(context.partition_key)).tables["preference_pairs"]
    output = dg.Output(table, metadata={"pairs": len(table), "heldout_share": checks.heldout_share(table)})
    agree = checks.label_agreement(table, item_features, weights)
    check = dg.AssetCheckResult(passed=agree == 1.0, metadata={"agreement": agree})
    yield from publish_after_audit(context, [output], [check])


@dg.asset(
    partitions_def=DATASETS,
    group_name="research",
    io_manager_key=DUCKDB,
    check_specs=[
        dg.AssetCheckSpec(
            "converged",
            asset="bt_reward_models",
            blocking=True,
            description="finite losses, held-out accuracy above chance",
        )
    ],
    kinds={"duckdb", "jax"},
)
def bt_reward_models(
    context: dg.AssetExecutionContext, config: ResearchConfig, item_features: pd.DataFrame, stakeholder_utilities: dict
):
    """Linear Bradley-Terry reward models per stakeholder x loss x seed x training mode."""
    result = run_analysis(
        "bt_reward_models",
        item_features,
        stakeholder_utilities["stakeholder_weights"],
        partition=context.partition_key,
        protocols=config.protocols,
        scale=config.scale,
    )
    tables = result.tables
    converged = checks.bt_convergence(tables["bt_runs"])
    output = dg.Output(
        tables,
        metadata={
            "runs": len(tables["bt_runs"]),
            "mean_heldout_accuracy": converged["mean_heldout_accuracy"],
            "min_heldout_accuracy": converged["min_heldout_accuracy"],
            "cosines": _table_md(tables["cosines"]),
        },
    )
    check = dg.AssetCheckResult(
        passed=converged["passed"],
        metadata={k: converged[k] for k in ("finite_losses", "all_above_chance", "min_heldout_accuracy")},
    )
    yield from publish_after_audit(context, [output], [check])


SUMMARY_TABLES = {
    "goodhart_direction": "direction_summary",
    "labels_not_loss": "labels_not_loss",
    "data_budget": "data_budget_summary",
}


def _analysis_asset(name: str, description: str):
    @dg.asset(
        name=name,
        partitions_def=DATASETS,
        group_name="research",
        io_manager_key=DUCKDB,
        description=description,
        kinds={"duckdb", "jax"},
        check_specs=[
            dg.AssetCheckSpec(
                "complete", asset=name, blocking=True, description="every analysis table is present and non-empty"
            )
        ],
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: ResearchConfig,
        item_features: pd.DataFrame,
        stakeholder_utilities: dict,
    ):
        result = run_analysis(
            name,
            item_features,
            stakeholder_utilities["stakeholder_weights"],
            partition=context.partition_key,
            protocols=config.protocols,
            scale=config.scale,
            with_deviations=True,
        )
        tables = result.tables
        summary = {"summary": _table_md(tables[SUMMARY_TABLES[name]])} if SUMMARY_TABLES[name] in tables else {}
        meta = {f"{k}_rows": len(v) for k, v in tables.items()}
        output = dg.Output(tables, metadata=meta | _figure_metadata(result.figures) | summary)
        empty = checks.empty_tables(tables)
        check = dg.AssetCheckResult(passed=not empty, metadata={"empty_tables": ", ".join(empty) or "none"})
        yield from publish_after_audit(context, [output], [check])

    return _asset


goodhart_direction = _analysis_asset(
    "goodhart_direction", "E1: directional Goodhart condition, three accuracies and the predictors"
)
labels_not_loss = _analysis_asset(
    "labels_not_loss", "E2: within-loss vs across-stakeholder cosines of learned reward vectors"
)
data_budget = _analysis_asset("data_budget", "E3: regret recovery vs number of preference pairs, N50/N80")


@dg.asset(group_name="research", io_manager_key=DUCKDB, kinds={"duckdb"})
def audit_toolkit(context: dg.AssetExecutionContext):
    """E4: cosine of platform vs society vectors in the 18-action space; the threshold x* computed.

    Not partitioned: the 18-action space and the α family are the same for every dataset, so one
    table serves all of them (stored in DuckDB schema ``main``)."""
    result = api.audit_toolkit(AuditConfig())
    audit = result.tables["audit"]
    thresholds = checks.audit_thresholds(audit)
    return dg.Output(
        {"audit": audit, "deviations": deviations_table()},
        metadata={
            "rows": len(audit),
            "thresholds": _table_md(thresholds) if len(thresholds) else "see table",
            "limitation": audit.attrs.get("limitation", ""),
            **_figure_metadata(result.figures),
        },
    )
