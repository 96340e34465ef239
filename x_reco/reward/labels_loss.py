"""E2, "labels, not loss": three losses on identical pairs converge to near-identical vectors (spec §6)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from x_reco.data.item_features import synthetic_content_pool
from x_reco.reward.direction import SEEDS5
from x_reco.reward.losses import LossSpec, leaky_targets
from x_reco.reward.pairs import shared_pairs
from x_reco.reward.pool import RewardPool, check_protocol
from x_reco.reward.runs import Job, run_jobs
from x_reco.reward.stakeholders import cosine, synthetic_stakeholders
from x_reco.reward.training import MODES, TrainSpec, train_models

SWEEP_MARGINS = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)
SWEEP_LAMBDAS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
SWEEP_CONSTRAINTS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)


@dataclasses.dataclass(frozen=True)
class LabelsConfig:
    """E2 settings; ``calibrations`` lists the calibration-target variants (C9: "labels" are
    per-item win rates, "leaky" the stakeholder's own utility); ``sweep`` adds the synthetic
    87-run loss sweep (3 BT + 30 margin + 30 calibrated + 24 constrained)."""

    protocol: str = "parity"
    seeds: tuple[int, ...] = SEEDS5
    n_pairs: int = 2500
    margin: float = 0.5
    lam: float = 1.0
    constraint_lam: float = 10.0
    calibrations: tuple[str, ...] = ("leaky",)
    group_b_seed: int = 42
    group_b_margins: tuple[float, ...] = (0.1, 0.5, 1.0)
    group_b_lambdas: tuple[float, ...] = (0.1, 1.0, 5.0)
    modes: tuple[str, ...] = ("parity",)
    sweep: bool = False
    sweep_items: int = 2000
    sweep_pairs: int = 50_000
    sweep_epochs: int = 30
    train: TrainSpec = TrainSpec()

    def __post_init__(self):
        check_protocol(self.protocol)
        if not set(self.calibrations) <= {"leaky", "labels"} or not set(self.modes) <= set(MODES):
            raise ValueError(f"bad calibrations {self.calibrations} or modes {self.modes}")

    @classmethod
    def parity(cls) -> LabelsConfig:
        return cls()

    @classmethod
    def corrected(cls) -> LabelsConfig:
        return cls(protocol="corrected", calibrations=("labels", "leaky"), modes=MODES)

    @classmethod
    def smoke(cls, protocol: str = "parity") -> LabelsConfig:
        base = cls.corrected() if protocol == "corrected" else cls.parity()
        return dataclasses.replace(
            base, seeds=SEEDS5[:2], n_pairs=200, train=TrainSpec(fixed_steps=200, max_steps=1000)
        )


def _variants(cfg: LabelsConfig) -> list[tuple[str, LossSpec]]:
    """(group, loss) of every model per (stakeholder, seed); group B only at ``group_b_seed``."""
    out = [("A", LossSpec("bt")), ("A", LossSpec("margin", margin=cfg.margin))]
    out += [("A", LossSpec("calibrated", lam=cfg.lam, targets=t)) for t in cfg.calibrations]
    out += [("B", LossSpec("margin", margin=m)) for m in cfg.group_b_margins if m != cfg.margin]
    out += [
        ("B", LossSpec("calibrated", lam=lam, targets=t))
        for t in cfg.calibrations
        for lam in cfg.group_b_lambdas
        if lam != cfg.lam
    ]
    return out


def _jobs(pool: RewardPool, cfg: LabelsConfig) -> list[Job]:
    jobs = []
    for name, w in pool.stakeholders.primary.items():
        for seed in cfg.seeds:
            for group, loss in _variants(cfg):
                if group == "A" or seed == cfg.group_b_seed:
                    jobs.append(Job({"stakeholder": name, "variant": loss.name}, w, cfg.n_pairs, seed, loss))
            if pool.synthetic and name in ("user", "society", "platform"):
                loss = LossSpec("constrained", lam=cfg.constraint_lam, constraint=name)
                jobs.append(Job({"stakeholder": name, "variant": loss.name}, w, cfg.n_pairs, seed, loss))
    return jobs


def run_labels_not_loss(pool: RewardPool, cfg: LabelsConfig) -> dict[str, pd.DataFrame]:
    """Tables: bt_runs, labels_not_loss_seeds, labels_not_loss, cross_stakeholder (+ loss_sweep)."""
    jobs = _jobs(pool, cfg)
    runs = []
    for mode in cfg.modes:
        r, _ = run_jobs(pool.x_md, jobs, dataclasses.replace(cfg.train, mode=mode), pool.synthetic)
        runs.append(r)
    runs = pd.concat(runs, ignore_index=True).assign(dataset=pool.dataset, protocol=cfg.protocol)
    w = runs[sorted(c for c in runs.columns if c.startswith("w_"))].to_numpy()
    vec = {(r.mode, r.stakeholder, r.variant, r.seed): w[i] for i, r in enumerate(runs.itertuples())}
    seeds = _per_seed(pool, cfg, vec)
    out = {
        "bt_runs": runs,
        "labels_not_loss_seeds": seeds,
        "labels_not_loss": _summary(pool, cfg, seeds, vec),
        "cross_stakeholder": _cross(pool, cfg, vec),
    }
    if cfg.sweep and pool.synthetic:
        out["loss_sweep"] = loss_sweep(cfg)
    return out


def _triple(cfg: LabelsConfig, calibration: str) -> tuple[str, str, str]:
    return (
        "bt",
        LossSpec("margin", margin=cfg.margin).name,
        LossSpec("calibrated", lam=cfg.lam, targets=calibration).name,
    )


def _per_seed(pool, cfg, vec) -> pd.DataFrame:
    rows = []
    for mode, cal, name, seed in itertools.product(cfg.modes, cfg.calibrations, pool.stakeholders.primary, cfg.seeds):
        bt, mg, ca = (vec[(mode, name, v, seed)] for v in _triple(cfg, cal))
        c = {
            "cos_bt_margin": cosine(bt, mg),
            "cos_bt_calibrated": cosine(bt, ca),
            "cos_margin_calibrated": cosine(mg, ca),
        }
        rows.append(
            {
                "dataset": pool.dataset,
                "protocol": cfg.protocol,
                "mode": mode,
                "calibration": cal,
                "stakeholder": name,
                "seed": seed,
                **c,
                "within_loss_cos": float(np.mean(list(c.values()))),
            }
        )
    return pd.DataFrame(rows)


def _mean_pairwise(vectors) -> float:
    return float(np.mean([cosine(a, b) for a, b in itertools.combinations(vectors, 2)]))


def _summary(pool, cfg, seeds: pd.DataFrame, vec) -> pd.DataFrame:
    """Within-loss mean ± sd over seeds; group B (seed 42) within-family and versus-BT cosines."""
    rows = []
    b = cfg.group_b_seed if cfg.group_b_seed in cfg.seeds else None
    for (mode, cal, name), g in seeds.groupby(["mode", "calibration", "stakeholder"], sort=False):
        row = {
            "dataset": pool.dataset,
            "protocol": cfg.protocol,
            "mode": mode,
            "calibration": cal,
            "stakeholder": name,
            "within_loss_cos": g["within_loss_cos"].mean(),
            "within_loss_sd": g["within_loss_cos"].std(ddof=0),
            "within_loss_min": g["within_loss_cos"].min(),
            **{c: g[c].mean() for c in ("cos_bt_margin", "cos_bt_calibrated", "cos_margin_calibrated")},
        }
        if b is not None:
            bt = vec[(mode, name, "bt", b)]
            margins = [vec[(mode, name, LossSpec("margin", margin=m).name, b)] for m in cfg.group_b_margins]
            cals = [
                vec[(mode, name, LossSpec("calibrated", lam=lam, targets=cal).name, b)] for lam in cfg.group_b_lambdas
            ]
            row.update(
                {
                    "margin_within_family": _mean_pairwise(margins),
                    "margin_vs_bt": float(np.mean([cosine(bt, m) for m in margins])),
                    "calibrated_within_family": _mean_pairwise(cals),
                    "calibrated_vs_bt": float(np.mean([cosine(bt, c) for c in cals])),
                }
            )
        if pool.synthetic:
            variant = LossSpec("constrained", lam=cfg.constraint_lam, constraint=name).name
            row["constrained_vs_bt"] = float(
                np.mean([cosine(vec[(mode, name, "bt", s)], vec[(mode, name, variant, s)]) for s in cfg.seeds])
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _cross(pool, cfg, vec) -> pd.DataFrame:
    """Across-stakeholder cosines per loss (the control: same loss, different labels)."""
    variants = {v for cal in cfg.calibrations for v in _triple(cfg, cal)}
    rows = []
    for mode, v in itertools.product(cfg.modes, sorted(variants)):
        for a, b in itertools.combinations(pool.stakeholders.primary, 2):
            per = [cosine(vec[(mode, a, v, s)], vec[(mode, b, v, s)]) for s in cfg.seeds]
            rows.append(
                {
                    "dataset": pool.dataset,
                    "protocol": cfg.protocol,
                    "mode": mode,
                    "loss": v,
                    "stakeholder_a": a,
                    "stakeholder_b": b,
                    "cos_mean": float(np.mean(per)),
                    "cos_sd": float(np.std(per)),
                }
            )
    return pd.DataFrame(rows)


def loss_sweep(cfg: LabelsConfig, seed: int = 42) -> pd.DataFrame:
    """The synthetic 87-run sweep: cross-stakeholder cosines per loss and hyperparameter on a
    ``sweep_items`` pool with ``sweep_pairs`` shared pairs, ``sweep_epochs`` epochs, no hold-out."""
    pool_x = synthetic_content_pool(cfg.sweep_items, seed)
    x = pool_x[[c for c in pool_x.columns if c.startswith("f_")]].to_numpy(np.float32)
    weights = synthetic_stakeholders().primary
    pairs = shared_pairs(x, weights, cfg.sweep_pairs, seed)
    names = list(weights)
    spec = dataclasses.replace(cfg.train, mode="parity", epochs=cfg.sweep_epochs)
    k = len(names)
    groups = [("bt", 0.0, [LossSpec("bt")] * k)]  # (family, hyperparameter, one loss per stakeholder)
    groups += [("margin", m, [LossSpec("margin", margin=m)] * k) for m in SWEEP_MARGINS]
    groups += [("calibrated", lam, [LossSpec("calibrated", lam=lam)] * k) for lam in SWEEP_LAMBDAS]
    groups += [
        ("constrained", lam, [LossSpec("constrained", lam=lam, constraint=n) for n in names])
        for lam in SWEEP_CONSTRAINTS
    ]
    targets = leaky_targets(x, weights["user"], synthetic=True)  # stakeholder-independent on synthetic
    rows = []
    for family in ("bt", "margin", "calibrated", "constrained"):
        fam = [g for g in groups if g[0] == family]
        specs = [spec_ for g in fam for spec_ in g[2]]
        res = train_models(
            x,
            [pairs[n] for _ in fam for n in names],
            specs,
            spec,
            np.tile(targets, (len(specs), 1)) if family == "calibrated" else None,
        )
        for g, (_, hyper, _) in enumerate(fam):
            w, acc = res.w_bd[g * k : (g + 1) * k], res.train_acc[g * k : (g + 1) * k]
            for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
                rows.append(
                    {
                        "family": family,
                        "hyper": hyper,
                        "stakeholder_a": a,
                        "stakeholder_b": b,
                        "cos": cosine(w[i], w[j]),
                        "train_acc_a": float(acc[i]),
                        "train_acc_b": float(acc[j]),
                    }
                )
    return pd.DataFrame(rows)
