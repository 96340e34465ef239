"""E3, data budget as regret recovery of a hidden stakeholder (reward spec §7, C5, C8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from x_reco.reward.direction import SEEDS20
from x_reco.reward.pool import RewardPool, check_protocol
from x_reco.reward.runs import Job, run_jobs
from x_reco.reward.selection import DELTAS, greedy_sets, scores, set_utilities
from x_reco.reward.stats import censored_label, crossing_n, medians
from x_reco.reward.training import MODES, TrainSpec

BUDGET_NS = (25, 50, 100, 200, 500)
COMPOSITES = ("parity_div3", "true_k", "norm_matched")


@dataclasses.dataclass(frozen=True)
class BudgetConfig:
    """E3 settings. Composites: ``parity_div3`` = (Σ observed + ŵ_h)/3 (the reference's hard-coded
    3), ``true_k`` = (Σ observed + ŵ_h)/K (C5), ``norm_matched`` = as true_k with ŵ_h rescaled to
    the mean norm of the raw vectors (C5: separates information from re-weighting)."""

    protocol: str = "parity"
    seeds: tuple[int, ...] = SEEDS20
    ns: tuple[int, ...] = BUDGET_NS
    deltas: tuple[float, ...] = DELTAS
    composites: tuple[str, ...] = ("parity_div3",)
    modes: tuple[str, ...] = ("parity",)
    train: TrainSpec = TrainSpec()

    def __post_init__(self):
        check_protocol(self.protocol)
        if not set(self.composites) <= set(COMPOSITES) or not set(self.modes) <= set(MODES):
            raise ValueError(f"bad composites {self.composites} or modes {self.modes}")
        if list(self.ns) != sorted(self.ns) or not self.seeds:
            raise ValueError(f"ns must be increasing and seeds non-empty: {self.ns}")

    @classmethod
    def parity(cls) -> BudgetConfig:
        return cls()

    @classmethod
    def corrected(cls) -> BudgetConfig:
        return cls(protocol="corrected", composites=COMPOSITES, modes=MODES)

    @classmethod
    def smoke(cls, protocol: str = "parity") -> BudgetConfig:
        base = cls.corrected() if protocol == "corrected" else cls.parity()
        return dataclasses.replace(
            base, seeds=SEEDS20[:2], ns=(25, 50, 100, 200), train=TrainSpec(fixed_steps=200, max_steps=1000)
        )


def frontier(pool: RewardPool, w_bd: np.ndarray, hidden: str, cfg: BudgetConfig) -> np.ndarray:
    """Hidden set utility of each scorer at every δ, [B, L]."""
    u = pool.utilities([hidden])
    sets = greedy_sets(scores(pool.x_md, w_bd), pool.topics(cfg.protocol), cfg.deltas)
    return set_utilities(sets, u)[:, :, 0]


def composite(observed: np.ndarray, learned_bd: np.ndarray, k: int, kind: str) -> np.ndarray:
    """Scorers combining the observed raw vectors [K−1, D] with learned hidden vectors [B, D]."""
    if kind == "parity_div3":
        return (observed.sum(0) + learned_bd) / 3.0
    if kind == "norm_matched":
        target = np.linalg.norm(observed, axis=1).mean()  # the observed raw vectors' mean norm
        learned_bd = learned_bd * (target / np.maximum(np.linalg.norm(learned_bd, axis=1, keepdims=True), 1e-12))
    return (observed.sum(0) + learned_bd) / k


def run_budget(pool: RewardPool, cfg: BudgetConfig) -> dict[str, pd.DataFrame]:
    """Tables ``data_budget`` (one row per hidden × composite × mode × N, plus N = 0 rows) and
    ``data_budget_summary`` (regret(0), N50, N80 per hidden × composite × mode) and ``bt_runs``."""
    prim = pool.stakeholders.primary
    names, k = list(prim), len(prim)
    raw = np.stack([prim[n] for n in names]).astype(np.float64)
    rows, summary, runs = [], [], []
    for hidden in names:
        observed = raw[[i for i, n in enumerate(names) if n != hidden]]
        max_ach = float(frontier(pool, raw.mean(0, keepdims=True), hidden, cfg).max())
        regret0 = float(np.mean(max_ach - frontier(pool, observed.mean(0, keepdims=True), hidden, cfg)))
        jobs = [
            Job({"purpose": "budget", "stakeholder": hidden}, prim[hidden], n, s) for n in cfg.ns for s in cfg.seeds
        ]
        for mode in cfg.modes:
            r, w = run_jobs(pool.x_md, jobs, dataclasses.replace(cfg.train, mode=mode), pool.synthetic)
            runs.append(r)
            for kind in cfg.composites:
                regret = (
                    (max_ach - frontier(pool, composite(observed, w.astype(np.float64), k, kind), hidden, cfg))
                    .mean(axis=1)
                    .reshape(len(cfg.ns), len(cfg.seeds))
                )
                base = {
                    "dataset": pool.dataset,
                    "protocol": cfg.protocol,
                    "hidden": hidden,
                    "composite": kind,
                    "mode": mode,
                }
                rec = 1.0 - regret.mean(axis=1) / regret0 if regret0 != 0 else np.full(len(cfg.ns), np.nan)
                rows.append({**base, "n_pairs": 0, "regret_mean": regret0, "regret_sd": 0.0, "recovery": 0.0})
                rows += [
                    {
                        **base,
                        "n_pairs": n,
                        "regret_mean": float(regret[i].mean()),
                        "regret_sd": float(regret[i].std()),
                        "recovery": float(rec[i]),
                    }
                    for i, n in enumerate(cfg.ns)
                ]
                n50, n80 = crossing_n(cfg.ns, rec, 0.5), crossing_n(cfg.ns, rec, 0.8)
                summary.append(
                    {
                        **base,
                        "max_achievable": max_ach,
                        "regret0": regret0,
                        "n50": n50,
                        "n80": n80,
                        "n50_label": censored_label(n50, cfg.ns[-1]),
                        "n80_label": censored_label(n80, cfg.ns[-1]),
                    }
                )
    return {
        "data_budget": pd.DataFrame(rows),
        "data_budget_summary": pd.DataFrame(summary),
        "bt_runs": pd.concat(runs, ignore_index=True).assign(dataset=pool.dataset, protocol=cfg.protocol),
    }


def budget_medians(summary: pd.DataFrame) -> pd.DataFrame:
    """N50/N80 medians over configurations (concatenate datasets first): finite-only (the
    preprint's headline) next to all configurations with "> max N" censored as +inf (C8)."""
    rows = []
    for (protocol, kind, mode), g in summary.groupby(["protocol", "composite", "mode"], sort=False):
        for col in ("n50", "n80"):
            rows.append(
                {"protocol": protocol, "composite": kind, "mode": mode, "statistic": col, **medians(g[col].to_numpy())}
            )
    return pd.DataFrame(rows)
