"""Entry points of the reward-modelling assets: plain DataFrames + a config in, tables + PNGs out.

One function per asset: stakeholder_utilities, preference_pairs, bt_reward_models,
goodhart_direction, labels_not_loss, data_budget, audit_toolkit. Every config has a ``smoke``
scale (N <= 200, 2 seeds) and, where the protocol matters, ``parity`` / ``corrected`` protocols.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from x_reco.data.item_features import pool_arrays
from x_reco.data.registry import DEFAULT_PARTITION, dataset_spec
from x_reco.data.tables import RawTables
from x_reco.reward import plots
from x_reco.reward.audit import LIMITATION, AuditConfig, run_audit
from x_reco.reward.budget import BudgetConfig, run_budget
from x_reco.reward.direction import SEEDS5, DirectionConfig, run_direction, trained_cosines
from x_reco.reward.direction_report import (
    cosine_table,
    direction_pairs,
    direction_summary,
    goodhart_curves,
    temperature_sweep,
)
from x_reco.reward.labels_loss import LabelsConfig, run_labels_not_loss
from x_reco.reward.losses import LossSpec
from x_reco.reward.pairs import LABEL_NOISE_SD, label_pairs, misspecify, pair_stream, split_indices
from x_reco.reward.pool import check_protocol, reward_pool
from x_reco.reward.runs import Job, run_jobs
from x_reco.reward.stakeholders import build_stakeholders, raw_geometry, weights_frame
from x_reco.reward.training import MODES, TrainSpec


@dataclasses.dataclass(frozen=True)
class AnalysisResult:
    """Output tables by name (§10) and figures by file name (PNG bytes)."""

    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StakeholderConfig:
    partition: str = DEFAULT_PARTITION
    disagreement_pairs: int = 10_000
    seed: int = 42

    @classmethod
    def smoke(cls, partition: str = DEFAULT_PARTITION) -> StakeholderConfig:
        return cls(partition=partition, disagreement_pairs=2_000)


def stakeholder_utilities(
    raw: RawTables | None, item_features: pd.DataFrame | None, config: StakeholderConfig
) -> AnalysisResult:
    """Tables ``stakeholder_weights`` and ``raw_cosines`` (raw cosine, pool covariance/correlation,
    label disagreement per primary pair). Synthetic needs neither ``raw`` nor ``item_features``
    (the 500-item content pool is generated)."""
    st = build_stakeholders(raw, config.partition)
    spec = dataset_spec(config.partition)
    feats = spec.item_features(raw) if item_features is None and spec.generated else item_features
    if feats is None:
        raise ValueError(f"{config.partition}: item_features are required")
    _, x, _, _ = pool_arrays(feats)
    geometry = raw_geometry(st, x, config.disagreement_pairs, config.seed)
    return AnalysisResult({"stakeholder_weights": weights_frame(st), "raw_cosines": geometry})


@dataclasses.dataclass(frozen=True)
class PairsConfig:
    """Materialised preference pairs: ``n_pairs`` per (stakeholder, seed), labels from the true
    weights (``sigma_p`` = 0) or a misspecified w̃."""

    n_pairs: int = 2500
    seeds: tuple[int, ...] = SEEDS5
    sigma_p: float = 0.0
    noise_sd: float = LABEL_NOISE_SD

    @classmethod
    def smoke(cls) -> PairsConfig:
        return cls(n_pairs=200, seeds=SEEDS5[:2])


def preference_pairs(
    item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame, config: PairsConfig
) -> AnalysisResult:
    """Table ``preference_pairs``: one row per pair with both items, the noise draw, the winner
    and the 80/20 split (the same pairs the analyses regenerate from the seeds)."""
    pool = reward_pool(item_features, stakeholder_weights)
    frames = []
    for name, w in pool.stakeholders.primary.items():
        for seed in config.seeds:
            label_w = misspecify(w, config.sigma_p, seed) if config.sigma_p > 0 else w
            c1, c2, eps = pair_stream(len(pool.x_md), config.n_pairs, seed, config.noise_sd)
            pref, rej = label_pairs(pool.x_md @ np.asarray(label_w, np.float32), c1, c2, eps)
            split = np.full(config.n_pairs, "train", dtype=object)
            split[split_indices(config.n_pairs, seed)[1]] = "heldout"
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": pool.dataset,
                        "stakeholder": name,
                        "seed": seed,
                        "pair": np.arange(config.n_pairs),
                        "item_1": pool.item_ids[c1],
                        "item_2": pool.item_ids[c2],
                        "noise": eps,
                        "preferred": pool.item_ids[pref],
                        "rejected": pool.item_ids[rej],
                        "split": split,
                    }
                )
            )
    return AnalysisResult({"preference_pairs": pd.concat(frames, ignore_index=True)})


@dataclasses.dataclass(frozen=True)
class BTConfig:
    """Reward models per stakeholder × loss × seed × mode at ``n_pairs`` unperturbed pairs."""

    protocol: str = "parity"
    n_pairs: int = 2500
    seeds: tuple[int, ...] = SEEDS5
    losses: tuple[LossSpec, ...] = (LossSpec("bt"), LossSpec("margin"), LossSpec("calibrated"))
    modes: tuple[str, ...] = ("parity",)
    train: TrainSpec = TrainSpec()

    def __post_init__(self):
        check_protocol(self.protocol)
        if not set(self.modes) <= set(MODES) or "bt" not in {s.kind for s in self.losses}:
            raise ValueError(f"modes must be in {MODES} and losses must include bt: {self}")

    @classmethod
    def corrected(cls) -> BTConfig:
        return cls(
            protocol="corrected",
            modes=MODES,
            losses=(
                LossSpec("bt"),
                LossSpec("margin"),
                LossSpec("calibrated", targets="labels"),
                LossSpec("calibrated", targets="leaky"),
            ),
        )

    @classmethod
    def smoke(cls, protocol: str = "parity") -> BTConfig:
        base = cls.corrected() if protocol == "corrected" else cls()
        return dataclasses.replace(
            base, n_pairs=200, seeds=SEEDS5[:2], train=TrainSpec(fixed_steps=200, max_steps=1000)
        )


def bt_reward_models(
    item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame, config: BTConfig
) -> AnalysisResult:
    """Tables ``bt_runs`` (accuracies, loss, steps, ‖w‖, w) and ``cosines`` (trained cosines of the
    standard-BT parity-mode models next to raw cosine, pool covariance/correlation, disagreement)."""
    pool = reward_pool(item_features, stakeholder_weights)
    jobs = [
        Job({"purpose": "reward_model", "stakeholder": n}, w, config.n_pairs, s, loss)
        for n, w in pool.stakeholders.all.items()
        for loss in config.losses
        for s in config.seeds
    ]
    runs = []
    for mode in config.modes:
        runs.append(run_jobs(pool.x_md, jobs, dataclasses.replace(config.train, mode=mode), pool.synthetic)[0])
    runs = pd.concat(runs, ignore_index=True).assign(dataset=pool.dataset, protocol=config.protocol)
    bt = runs[(runs["loss"] == "bt") & (runs["mode"] == config.modes[0])]
    wcols = sorted(c for c in runs.columns if c.startswith("w_"))
    models = {n: g.sort_values("seed")[wcols].to_numpy() for n, g in bt.groupby("stakeholder", sort=False)}
    cos = cosine_table(pool, {"cosines": trained_cosines(pool, models)}, raw_geometry(pool.stakeholders, pool.x_md))
    return AnalysisResult({"bt_runs": runs, "cosines": cos})


def goodhart_direction(
    item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame, config: DirectionConfig
) -> AnalysisResult:
    """E1. Tables direction_pairs, direction_summary, temperature_sweep, goodhart_curves, cosines,
    bt_runs; figures goodhart_curves_<dataset>_<target>.png, direction_scatter_<mechanism>.png,
    temperature_sweep.png (first mode, raw scale)."""
    pool = reward_pool(item_features, stakeholder_weights)
    raw = run_direction(pool, config)
    pairs = direction_pairs(pool, raw, config)
    curves = goodhart_curves(pool, raw, config)
    sweep = temperature_sweep(pairs, config)
    runs = pd.concat([raw["cos_runs"], raw["target_runs"]], ignore_index=True)
    tables = {
        "direction_pairs": pairs,
        "direction_summary": direction_summary(pairs, config),
        "temperature_sweep": sweep,
        "goodhart_curves": curves,
        "cosines": cosine_table(pool, raw, raw_geometry(pool.stakeholders, pool.x_md)),
        "bt_runs": runs.assign(dataset=pool.dataset, protocol=config.protocol),
    }
    mode, scale = config.modes[0], config.scales[0]
    figures = {
        f"goodhart_curves_{pool.dataset}_{t}.png": plots.goodhart_curves_png(curves, pool.dataset, t, mode, scale)
        for t in curves["target"].unique()
    }
    for mech in ("delta_sweep", "top10", "softmax_T1"):
        figures[f"direction_scatter_{mech}.png"] = plots.direction_scatter_png(pairs, mech, mode, scale, config.strong)
    figures["temperature_sweep.png"] = plots.temperature_sweep_png(sweep, mode, scale)
    return AnalysisResult(tables, figures)


def labels_not_loss(
    item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame, config: LabelsConfig
) -> AnalysisResult:
    """E2. Tables labels_not_loss, labels_not_loss_seeds, cross_stakeholder, bt_runs (+ loss_sweep)."""
    pool = reward_pool(item_features, stakeholder_weights)
    return AnalysisResult(run_labels_not_loss(pool, config))


def data_budget(item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame, config: BudgetConfig) -> AnalysisResult:
    """E3. Tables data_budget, data_budget_summary, bt_runs; figure data_budget_<dataset>.png."""
    pool = reward_pool(item_features, stakeholder_weights)
    tables = run_budget(pool, config)
    png = plots.data_budget_png(
        tables["data_budget"], tables["data_budget_summary"], pool.dataset, config.composites[0], config.modes[0]
    )
    return AnalysisResult(tables, {f"data_budget_{pool.dataset}.png": png})


def audit_toolkit(config: AuditConfig) -> AnalysisResult:
    """E4. Table audit (scenarios, sweep, thresholds; the limitation text in ``attrs``);
    figure audit_threshold.png."""
    audit = run_audit(config)["audit"]
    audit.attrs["limitation"] = LIMITATION
    return AnalysisResult({"audit": audit}, {"audit_threshold.png": plots.audit_threshold_png(audit)})
