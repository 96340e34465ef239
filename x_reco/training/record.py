"""The small JSON record of a training run that the Dagster checkpoint assets publish."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from x_reco.data.examples import EngagementSequences
from x_reco.training.config import TrainConfig
from x_reco.training.defaults import config_digest, data_digest
from x_reco.training.loop import TrainResult


def run_name(cfg: TrainConfig, seqs: EngagementSequences) -> str:
    """``<config digest>-<data digest>``: the run directory of a config on some data (a rerun resumes)."""
    return f"{config_digest(cfg)}-{data_digest(seqs)}"


def losses_finite(losses: list[float]) -> bool:
    """Every training loss is finite (and there is at least one)."""
    arr = np.asarray(losses, dtype=np.float64)
    return bool(arr.size and np.isfinite(arr).all())


def train_record(
    kind: str, partition: str, cfg: TrainConfig, seqs: EngagementSequences, result: TrainResult
) -> dict[str, Any]:
    """JSON-safe summary of ``result``: checkpoint path, steps, digests, logged validation metrics
    (NaN as None), final loss, timing and ``losses_finite``."""
    return {
        "kind": kind,
        "partition": partition,
        "path": result.checkpoint_path,
        "step": result.step,
        "selected_step": result.selected_step,
        "config_digest": config_digest(cfg),
        "data_digest": data_digest(seqs),
        "val_metrics": {k: (float(v) if math.isfinite(v) else None) for k, v in result.val_metrics.items()},
        "final_loss": float(result.losses[-1]) if result.losses else None,
        "losses_finite": losses_finite(result.losses),
        "wall_time_s": result.wall_time_s,
        "train_time_s": result.train_time_s,
        "examples_per_s": result.examples_per_s,
    }
