"""Research group: stakeholder utilities, preference pairs, BT reward models and Goodhart analyses."""

import dagster as dg
import numpy as np
import pandas as pd

from assets.common import DATASETS, DUCKDB, frame_markdown, image
from x_reco.data.registry import dataset_spec
from x_reco.data.tables import RawTables
from x_reco.reward import api
from x_reco.reward.audit import AuditConfig
from x_reco.reward.budget import BudgetConfig
from x_reco.reward.deviations import deviations_table
from x_reco.reward.direction import DirectionConfig
from x_reco.reward.labels_loss import LabelsConfig

PROTOCOLS = {"preprint": "parity", "corrected": "corrected"}


class ResearchConfig(dg.Config):
    """Protocols to run and the scale: `auto` is the dataset record's `research_scale`, `smoke`
    (N <= 200, 2 seeds) on `synthetic` and `full` (the published protocol sizes) on real datasets."""

    protocols: list[str] = ["preprint", "corrected"]
    scale: str = "auto"


def _smoke(config: ResearchConfig, partition: str) -> bool:
    if config.scale not in ("auto", "smoke", "full"):
        raise ValueError(f"scale must be auto, smoke or full, got {config.scale!r}")
    return config.scale == "smoke" or (config.scale == "auto" and dataset_spec(partition).research_scale == "smoke")


def _protocols(config: ResearchConfig) -> list[tuple[str, str]]:
    unknown = sorted(set(config.protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; expected {sorted(PROTOCOLS)}")
    return [(name, PROTOCOLS[name]) for name in config.protocols]


def _run_protocols(config, partition, make_config, run) -> tuple[dict[str, pd.DataFrame], dict[str, bytes]]:
    """Run one analysis per protocol; tables concatenated with a `protocol` column."""
    tables: dict[str, list[pd.DataFrame]] = {}
    figures: dict[str, bytes] = {}
    for name, proto in _protocols(config):
        cfg = make_config(proto, _smoke(config, partition))
        result = run(cfg)
        for key, frame in result.tables.items():
            tables.setdefault(key, []).append(frame.assign(protocol=name))
        figures.update({f"{name}/{k}": v for k, v in result.figures.items()})
    return {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}, figures


def _figure_metadata(figures: dict[str, bytes], limit: int = 8) -> dict:
    return {k.replace("/", "__").removesuffix(".png"): image(v, k) for k, v in list(figures.items())[:limit]}


def _table_md(df: pd.DataFrame, max_rows: int = 40) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_markdown(df, max_rows))


@dg.asset(partitions_def=DATASETS, group_name="research", io_manager_key=DUCKDB, pool="duckdb",
          ins={"raw_interactions": dg.AssetIn(), "raw_items": dg.AssetIn(), "item_features": dg.AssetIn()},
          kinds={"duckdb", "jax"})
def stakeholder_utilities(context: dg.AssetExecutionContext, raw_interactions: pd.DataFrame,
                          raw_items: pd.DataFrame, item_features: pd.DataFrame):
    """Stakeholder weight vectors per dataset and their raw geometry (cosines, pool covariance)."""
    partition = context.partition_key
    raw = RawTables(partition, raw_interactions, raw_items, pd.DataFrame({"user_id": []}))
    result = api.stakeholder_utilities(raw, item_features, api.StakeholderConfig(partition=partition))
    tables = result.tables
    return dg.Output(tables, metadata={
        "stakeholders": len(tables["stakeholder_weights"]),
        "weights": _table_md(tables["stakeholder_weights"][["stakeholder", "role", "norm"]]),
        "raw_cosines": _table_md(tables["raw_cosines"]),
    })


@dg.asset(partitions_def=DATASETS, group_name="research", io_manager_key=DUCKDB, pool="duckdb",
          check_specs=[dg.AssetCheckSpec("labels_consistent", asset="preference_pairs", blocking=True,
                                         description="preferred item has the higher noisy utility")],
          kinds={"duckdb"})
def preference_pairs(context: dg.AssetExecutionContext, item_features: pd.DataFrame,
                     stakeholder_utilities: dict):
    """Preference pairs per stakeholder and seed from the true weights (80/20 train/held-out)."""
    smoke = dataset_spec(context.partition_key).research_scale == "smoke"
    cfg = api.PairsConfig.smoke() if smoke else api.PairsConfig()
    pairs = api.preference_pairs(item_features, stakeholder_utilities["stakeholder_weights"], cfg)
    table = pairs.tables["preference_pairs"]
    yield dg.Output(table, metadata={"pairs": len(table), "heldout_share": float((table["split"] == "heldout").mean())})
    agree = _label_agreement(table, item_features, stakeholder_utilities["stakeholder_weights"])
    yield dg.AssetCheckResult(passed=bool(agree == 1.0), metadata={"agreement": agree})


def _label_agreement(pairs: pd.DataFrame, features: pd.DataFrame, weights: pd.DataFrame) -> float:
    """Share of pairs whose winner has the larger utility-plus-noise difference (must be 1)."""
    fcols = sorted(c for c in features.columns if c.startswith("f_"))
    x = features.set_index("item_id")[fcols]
    wcols = sorted(c for c in weights.columns if c.startswith("w_"))
    w = weights.set_index("stakeholder")[wcols]
    ok = []
    for name, g in pairs.groupby("stakeholder"):
        u = x.to_numpy(np.float64) @ w.loc[name].to_numpy(np.float64)
        util = pd.Series(u, index=x.index)
        d = util.loc[g["item_1"]].to_numpy() - util.loc[g["item_2"]].to_numpy() + g["noise"].to_numpy()
        winner = np.where(d > 0, g["item_1"], g["item_2"])
        ok.append(winner == g["preferred"].to_numpy())
    return float(np.concatenate(ok).mean()) if ok else 0.0


@dg.asset(partitions_def=DATASETS, group_name="research", io_manager_key=DUCKDB, pool="duckdb",
          check_specs=[dg.AssetCheckSpec("converged", asset="bt_reward_models", blocking=True,
                                         description="finite losses, held-out accuracy above chance")],
          kinds={"duckdb", "jax"})
def bt_reward_models(context: dg.AssetExecutionContext, config: ResearchConfig, item_features: pd.DataFrame,
                     stakeholder_utilities: dict):
    """Linear Bradley-Terry reward models per stakeholder x loss x seed x training mode."""
    partition = context.partition_key

    def make(proto, smoke):
        if smoke:
            return api.BTConfig.smoke(proto)
        return api.BTConfig.corrected() if proto == "corrected" else api.BTConfig()

    weights = stakeholder_utilities["stakeholder_weights"]
    tables, _ = _run_protocols(config, partition, make, lambda c: api.bt_reward_models(item_features, weights, c))
    runs = tables["bt_runs"]
    acc_col, loss_col = "heldout_acc", "final_loss"
    yield dg.Output(tables, metadata={
        "runs": len(runs), "mean_heldout_accuracy": float(runs[acc_col].mean()),
        "min_heldout_accuracy": float(runs[acc_col].min()),
        "cosines": _table_md(tables["cosines"]),
    })
    finite = bool(np.isfinite(runs[loss_col]).all())
    above = bool((runs[acc_col] > 0.5).all())
    yield dg.AssetCheckResult(passed=finite and above, metadata={
        "finite_losses": finite, "all_above_chance": above, "min_heldout_accuracy": float(runs[acc_col].min())})


def _analysis_asset(name: str, description: str, make_config, run):
    @dg.asset(name=name, partitions_def=DATASETS, group_name="research", io_manager_key=DUCKDB, pool="duckdb",
              description=description, kinds={"duckdb", "jax"},
              check_specs=[dg.AssetCheckSpec("complete", asset=name, blocking=True,
                                             description="every analysis table is present and non-empty")])
    def _asset(context: dg.AssetExecutionContext, config: ResearchConfig, item_features: pd.DataFrame,
               stakeholder_utilities: dict):
        weights = stakeholder_utilities["stakeholder_weights"]
        tables, figures = _run_protocols(config, context.partition_key, make_config,
                                         lambda c: run(item_features, weights, c))
        tables["deviations"] = deviations_table()
        meta = {f"{k}_rows": len(v) for k, v in tables.items()}
        yield dg.Output(tables, metadata=meta | _figure_metadata(figures) | _summary_metadata(name, tables))
        empty = [k for k, v in tables.items() if v.empty]
        yield dg.AssetCheckResult(passed=not empty, metadata={"empty_tables": ", ".join(empty) or "none"})

    return _asset


def _summary_metadata(name: str, tables: dict[str, pd.DataFrame]) -> dict:
    key = {"goodhart_direction": "direction_summary", "labels_not_loss": "labels_not_loss",
           "data_budget": "data_budget_summary"}.get(name)
    return {"summary": _table_md(tables[key])} if key in tables else {}


def _direction_config(proto, smoke):
    return DirectionConfig.smoke(proto) if smoke else getattr(DirectionConfig, proto)()


def _labels_config(proto, smoke):
    return LabelsConfig.smoke(proto) if smoke else getattr(LabelsConfig, proto)()


def _budget_config(proto, smoke):
    return BudgetConfig.smoke(proto) if smoke else getattr(BudgetConfig, proto)()


goodhart_direction = _analysis_asset(
    "goodhart_direction", "E1: directional Goodhart condition, three accuracies and the predictors",
    _direction_config, api.goodhart_direction)
labels_not_loss = _analysis_asset(
    "labels_not_loss", "E2: within-loss vs across-stakeholder cosines of learned reward vectors",
    _labels_config, api.labels_not_loss)
data_budget = _analysis_asset(
    "data_budget", "E3: regret recovery vs number of preference pairs, N50/N80",
    _budget_config, api.data_budget)


@dg.asset(partitions_def=DATASETS, group_name="research", io_manager_key=DUCKDB, pool="duckdb",
          kinds={"duckdb"})
def audit_toolkit(context: dg.AssetExecutionContext):
    """E4: cosine of platform vs society vectors in the 18-action space; the threshold x* computed."""
    result = api.audit_toolkit(AuditConfig())
    audit = result.tables["audit"]
    thresholds = audit[audit["kind"] == "threshold"] if "kind" in audit.columns else audit.head(0)
    return dg.Output({"audit": audit, "deviations": deviations_table()}, metadata={
        "rows": len(audit),
        "thresholds": _table_md(thresholds) if len(thresholds) else "see table",
        "limitation": audit.attrs.get("limitation", ""),
        **_figure_metadata(result.figures),
    })

