"""Default training configs per dataset partition and model kind."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from x_reco.training.config import TrainConfig
from x_reco.training.run import TUNED

# The demo keeps `make demo` to a few minutes on 2 cores; the real datasets get the tuned budget.
_DEMO_STEPS = {"retriever": 300, "ranker": 200}


def default_train_config(partition: str, kind: str, **overrides: Any) -> TrainConfig:
    """TrainConfig for ``kind`` in {"retriever", "ranker"} on ``partition``, with field overrides."""
    if kind not in TUNED:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(TUNED)}")
    base = dict(TUNED[kind])
    if partition == "synthetic":
        base.update(num_steps=_DEMO_STEPS[kind], checkpoint_every=100,
                    warmup_steps=min(base["warmup_steps"], _DEMO_STEPS[kind] // 5))
    base.update(overrides)
    return TrainConfig.from_dict(base)


def data_digest(seqs: dict[str, np.ndarray]) -> str:
    """Short digest of the sequences a model trains on (part of its run directory name)."""
    h = hashlib.sha256()
    for key in ("split", "user_hashes", "hist_post_hashes", "cand_post_hashes", "cand_actions", "hash_spec_json"):
        h.update(key.encode())
        h.update(np.ascontiguousarray(seqs[key]).tobytes())
    return h.hexdigest()[:12]


def config_digest(cfg: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:12]
