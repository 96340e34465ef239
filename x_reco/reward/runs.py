"""Many BT fits at once: group jobs by pair count and loss kind, train each group batched."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pandas as pd

from x_reco.reward.losses import LossSpec, leaky_targets
from x_reco.reward.pairs import LABEL_NOISE_SD, make_pairs, win_rates
from x_reco.reward.training import TrainSpec, train_models

MAX_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Job:
    """One model: labels from ``label_w`` on ``n_pairs`` pairs drawn with ``seed``.

    ``key`` is the caller's identifier (a dict of columns copied into the runs table); ``true_w``
    feeds the leaky calibration targets (the stakeholder's true utility)."""

    key: dict
    label_w: np.ndarray
    n_pairs: int
    seed: int
    loss: LossSpec = LossSpec()
    true_w: np.ndarray | None = None


def run_jobs(
    x_md: np.ndarray, jobs: list[Job], spec: TrainSpec, synthetic: bool, noise_sd: float = LABEL_NOISE_SD
) -> tuple[pd.DataFrame, np.ndarray]:
    """Train every job; returns (runs table, learned weights [J, D] aligned with ``jobs``).

    Runs table columns: the job's key columns, n_pairs, seed, loss, mode, train_acc, heldout_acc,
    final_loss, steps, norm, w_00..w_{D-1}.
    """
    x = np.asarray(x_md, np.float32)
    w_out = np.zeros((len(jobs), x.shape[1]), np.float32)
    metrics: list[dict] = [{} for _ in jobs]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j, job in enumerate(jobs):
        groups[(job.n_pairs, job.loss.kind)].append(j)
    for members in groups.values():
        for lo in range(0, len(members), MAX_BATCH):
            chunk = members[lo : lo + MAX_BATCH]
            pairs = [make_pairs(x, jobs[j].label_w, jobs[j].n_pairs, jobs[j].seed, noise_sd) for j in chunk]
            targets = _targets(x, [jobs[j] for j in chunk], pairs, synthetic)
            res = train_models(x, pairs, [jobs[j].loss for j in chunk], spec, targets)
            for i, j in enumerate(chunk):
                w_out[j] = res.w_bd[i]
                metrics[j] = {
                    "train_acc": float(res.train_acc[i]),
                    "heldout_acc": float(res.heldout_acc[i]),
                    "final_loss": float(res.final_loss[i]),
                    "steps": int(res.steps[i]),
                }
    rows = []
    for job, met, w in zip(jobs, metrics, w_out):
        row = {
            **job.key,
            "n_pairs": job.n_pairs,
            "seed": job.seed,
            "loss": job.loss.name,
            "mode": spec.mode,
            **met,
            "norm": float(np.linalg.norm(w)),
        }
        row.update({f"w_{i:02d}": float(v) for i, v in enumerate(w)})
        rows.append(row)
    return pd.DataFrame(rows), w_out


def _targets(x, jobs: list[Job], pairs, synthetic: bool) -> np.ndarray | None:
    if jobs[0].loss.kind != "calibrated":
        return None
    out = []
    for job, p in zip(jobs, pairs):
        if job.loss.targets == "labels":
            out.append(win_rates(p, len(x)))
        else:
            out.append(leaky_targets(x, job.label_w if job.true_w is None else job.true_w, synthetic))
    return np.stack(out).astype(np.float32)
