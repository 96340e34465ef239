"""E1, the directional Goodhart condition: train target models, evaluate hidden utilities (spec §5)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from x_reco.reward.pairs import misspecify
from x_reco.reward.pool import RewardPool, check_protocol
from x_reco.reward.runs import Job, run_jobs
from x_reco.reward.selection import (
    DELTAS,
    TEMPERATURES,
    mechanism_utilities,
    scores,
    softmax_local_cov,
    upper_tail_cov,
)
from x_reco.reward.stakeholders import cosine
from x_reco.reward.training import MODES, TrainSpec

SEEDS5 = (42, 142, 242, 342, 442)
SEEDS20 = tuple(42 + 100 * i for i in range(20))
CURVE_SEEDS = tuple(42 + 1000 * i + 100 * j for i in range(5) for j in range(5))
CURVE_NS = (25, 50, 100, 200, 500, 1000, 2000)
SCALES = ("raw", "unit")


@dataclasses.dataclass(frozen=True)
class DirectionConfig:
    """E1 settings. ``seeds`` drive the N_small/N_large direction calls, ``cos_seeds`` the trained
    cosines (standard BT, unperturbed labels, ``n_cosine`` pairs), ``curve_seeds`` the Goodhart
    curves over ``curve_ns`` and the σ sweep at ``n_large``. ``scales``: selections on the raw learned
    vector and/or on w/‖w‖ (C2); ``modes``: training modes (C1)."""

    protocol: str = "parity"
    seeds: tuple[int, ...] = SEEDS5
    cos_seeds: tuple[int, ...] = SEEDS5
    n_small: int = 25
    n_large: int = 2000
    n_cosine: int = 2500
    sigma_p: float = 0.3
    strong: float = 0.2
    curve_ns: tuple[int, ...] = CURVE_NS
    curve_seeds: tuple[int, ...] = CURVE_SEEDS
    curve_targets: tuple[str, ...] | None = None
    sigma_sweep: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.0)
    deltas: tuple[float, ...] = DELTAS
    temperatures: tuple[float, ...] = TEMPERATURES
    modes: tuple[str, ...] = ("parity",)
    scales: tuple[str, ...] = ("raw",)
    method_b: bool = True
    n_boot: int = 2000
    train: TrainSpec = TrainSpec()

    def __post_init__(self):
        check_protocol(self.protocol)
        if not set(self.modes) <= set(MODES) or not set(self.scales) <= set(SCALES):
            raise ValueError(f"modes must be in {MODES} and scales in {SCALES}: {self.modes}, {self.scales}")
        if 0.0 not in self.deltas or 1.0 not in self.temperatures:
            raise ValueError("deltas must include 0 (hard top-10) and temperatures must include 1")
        if not self.n_small < self.n_large or not self.seeds:
            raise ValueError(f"need n_small < n_large and >= 1 seed: {self.n_small}, {self.n_large}")

    @classmethod
    def parity(cls) -> DirectionConfig:
        return cls()

    @classmethod
    def corrected(cls) -> DirectionConfig:
        """C1 (all training modes), C2 (raw and unit scale), C6 (20 seeds); C3/C4/C7/C10 follow
        from the protocol."""
        return cls(protocol="corrected", seeds=SEEDS20, modes=MODES, scales=SCALES)

    @classmethod
    def smoke(cls, protocol: str = "parity") -> DirectionConfig:
        base = cls.corrected() if protocol == "corrected" else cls.parity()
        return dataclasses.replace(
            base,
            seeds=SEEDS5[:2],
            cos_seeds=SEEDS5[:2],
            n_large=200,
            n_cosine=200,
            curve_ns=(25, 50, 100, 200),
            curve_seeds=SEEDS5[:2],
            sigma_sweep=(0.3, 0.0),
            n_boot=200,
            train=TrainSpec(fixed_steps=200, max_steps=1000),
        )


def label_vector(pool: RewardPool, target: str, sigma: float, seed: int, protocol: str) -> np.ndarray:
    """w̃ of the target. The reference's synthetic null case labelled from the unperturbed user
    utility (parity keeps that bug, labelled; C4 fixes it)."""
    w = pool.stakeholders.primary[target]
    if pool.synthetic and protocol == "parity":
        return w
    return misspecify(w, sigma, seed)


def evaluation_names(pool: RewardPool, cfg: DirectionConfig) -> list[str]:
    names = list(pool.stakeholders.primary)
    return names + (list(pool.stakeholders.hidden_only) if cfg.method_b else [])


def trained_cosine_models(pool: RewardPool, names: list[str], seeds, n_pairs: int, train: TrainSpec):
    """Standard-BT models on unperturbed labels: (runs table, {name: [S, D]})."""
    jobs = [
        Job({"purpose": "cosine", "stakeholder": n, "sigma_p": 0.0}, pool.stakeholders.all[n], n_pairs, s)
        for n in names
        for s in seeds
    ]
    runs, w = run_jobs(pool.x_md, jobs, dataclasses.replace(train, mode="parity"), pool.synthetic)
    return runs, {n: w[i * len(seeds) : (i + 1) * len(seeds)] for i, n in enumerate(names)}


def trained_cosines(pool: RewardPool, models: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per unordered stakeholder pair: mean and sd over seeds of cos(ŵ_a, ŵ_b), plus raw cosine."""
    rows = []
    for a, b in itertools.combinations(models, 2):
        per_seed = [cosine(x, y) for x, y in zip(models[a], models[b])]
        rows.append(
            {
                "dataset": pool.dataset,
                "stakeholder_a": a,
                "stakeholder_b": b,
                "raw_cos": cosine(pool.stakeholders.all[a], pool.stakeholders.all[b]),
                "trained_cos": float(np.mean(per_seed)),
                "trained_cos_sd": float(np.std(per_seed)),
            }
        )
    return pd.DataFrame(rows)


def target_jobs(pool: RewardPool, cfg: DirectionConfig) -> list[Job]:
    """One job per (target, N, seed, σ), deduplicated over the direction, curve and σ-sweep grids."""
    targets = list(pool.stakeholders.primary)
    curve_targets = targets if cfg.curve_targets is None else list(cfg.curve_targets)
    keys = {(t, n, s, cfg.sigma_p) for t in targets for n in (cfg.n_small, cfg.n_large) for s in cfg.seeds}
    keys |= {(t, n, s, cfg.sigma_p) for t in curve_targets for n in cfg.curve_ns for s in cfg.curve_seeds}
    keys |= {(t, cfg.n_large, s, sig) for t in curve_targets for s in cfg.curve_seeds for sig in cfg.sigma_sweep}
    return [
        Job({"purpose": "target", "stakeholder": t, "sigma_p": sig}, label_vector(pool, t, sig, s, cfg.protocol), n, s)
        for t, n, s, sig in sorted(keys)
    ]


def evaluate_scorers(pool: RewardPool, w_jd: np.ndarray, names: list[str], cfg: DirectionConfig):
    """Hidden utilities of every scorer: δ-frontier [J, scale, L, H] and softmax [J, scale, T, H]."""
    u = pool.utilities(names)
    topics = pool.topics(cfg.protocol)
    deltas, softs = [], []
    for scale in cfg.scales:
        w = w_jd if scale == "raw" else w_jd / np.maximum(np.linalg.norm(w_jd, axis=1, keepdims=True), 1e-12)
        d, s = mechanism_utilities(pool.x_md, w, topics, u, cfg.deltas, cfg.temperatures)
        deltas.append(d)
        softs.append(s)
    return np.stack(deltas, 1), np.stack(softs, 1)


def mechanism_frame(runs: pd.DataFrame, util_delta, util_soft, names, cfg: DirectionConfig) -> pd.DataFrame:
    """Long table: one row per (scorer, scale, hidden, mechanism[, T]) with its hidden utility."""
    zero = list(cfg.deltas).index(0.0)
    parts = []
    for k, scale in enumerate(cfg.scales):
        mechs = {"delta_sweep": util_delta[:, k].mean(axis=1), "top10": util_delta[:, k, zero]}
        mechs.update({f"softmax_T{t:g}": util_soft[:, k, i] for i, t in enumerate(cfg.temperatures)})
        for mech, vals in mechs.items():  # vals [J, H]
            frame = (
                runs[["stakeholder", "n_pairs", "seed", "sigma_p", "mode"]]
                .rename(columns={"stakeholder": "target"})
                .loc[np.repeat(np.arange(len(runs)), len(names))]
            )
            frame = frame.assign(
                scale=scale, hidden=np.tile(names, len(runs)), mechanism=mech, utility=vals.reshape(-1)
            )
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def run_direction(pool: RewardPool, cfg: DirectionConfig) -> dict[str, pd.DataFrame]:
    """Train everything E1 needs and return the raw material of its tables.

    Keys: ``cos_runs``/``target_runs`` (bt_runs rows), ``cosines`` (trained cosines), ``evals``
    (mechanism_frame of every target model), ``local`` (C3 local covariances at the N_small scorers).
    """
    names = evaluation_names(pool, cfg)
    cos_runs, cos_models = trained_cosine_models(pool, names, cfg.cos_seeds, cfg.n_cosine, cfg.train)
    jobs = target_jobs(pool, cfg)
    runs, evals, local = [], [], []
    for mode in cfg.modes:
        r, w = run_jobs(pool.x_md, jobs, dataclasses.replace(cfg.train, mode=mode), pool.synthetic)
        d, s = evaluate_scorers(pool, w, names, cfg)
        runs.append(r)
        evals.append(mechanism_frame(r, d, s, names, cfg))
        local.append(local_covariances(pool, r, w, names, cfg))
    return {
        "cos_runs": cos_runs,
        "target_runs": pd.concat(runs, ignore_index=True),
        "cosines": trained_cosines(pool, cos_models),
        "evals": pd.concat(evals, ignore_index=True),
        "local": pd.concat(local, ignore_index=True),
    }


def local_covariances(pool, runs, w_jd, names, cfg: DirectionConfig) -> pd.DataFrame:
    """C3: Cov_{π_T=1}(s_t, U_h) and the top-5 % tail covariance at each N_small target scorer."""
    pick = (
        (runs["n_pairs"] == cfg.n_small) & (runs["sigma_p"] == cfg.sigma_p) & runs["seed"].isin(cfg.seeds)
    ).to_numpy()
    u = pool.utilities(names)
    rows = []
    for scale in cfg.scales:
        w = w_jd[pick]
        if scale == "unit":
            w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        s = scores(pool.x_md, w)
        soft, tail = softmax_local_cov(s, u), upper_tail_cov(s, u)
        for i, r in enumerate(runs[pick].itertuples()):
            for h, name in enumerate(names):
                rows.append(
                    {
                        "mode": r.mode,
                        "scale": scale,
                        "target": r.stakeholder,
                        "hidden": name,
                        "seed": r.seed,
                        "cov_softmax_local": soft[i, h],
                        "cov_upper_tail": tail[i, h],
                    }
                )
    return pd.DataFrame(rows)
