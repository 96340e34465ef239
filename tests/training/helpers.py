"""Toy MovieLens-shaped sequences with learnable structure, and tiny train configs, for fast tests.

Each user belongs to one of ``num_groups`` item groups and rates that group's items in cyclic order
from a random start, so the next item is predictable from the history (a retriever can beat
popularity) and ratings follow the item (a ranker can learn ``favorite``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest

from x_reco.data.events import build_events
from x_reco.data.examples import EngagementSequences
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.tables import RawTables
from x_reco.training.config import TrainConfig

PARTITION = "movielens-100k"


def toy_raw(num_users=48, num_items=64, per_user=14, num_groups=4, seed=0) -> RawTables:
    rng = np.random.default_rng(seed)
    group_size = num_items // num_groups
    rows = []
    for u in range(num_users):
        g = u % num_groups
        start = int(rng.integers(group_size))
        for t in range(per_user):
            item = g * group_size + (start + t) % group_size
            rating = 5.0 if item % 3 else (1.0 if item % 2 else 3.0)
            rows.append((str(u), str(item), 1_000_000 + 100 * u + t, rating))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "rating"])
    inter["label"] = pd.array([pd.NA] * len(inter), dtype="Int8")
    inter["impression_id"] = None
    inter["src_file"] = "toy"
    inter["src_row"] = np.arange(len(inter), dtype=np.int64)
    items = pd.DataFrame({"item_id": [str(i) for i in range(num_items)]})
    users = pd.DataFrame({"user_id": [str(u) for u in range(num_users)]})
    return RawTables(PARTITION, inter, items, users)


@functools.cache
def toy_seqs(vocab_size: int = 1009, history_len: int = 7, candidate_len: int = 5) -> EngagementSequences:
    """Sequences of ``toy_raw`` (cached; a frozen value, so callers change it with ``dataclasses.replace``)."""
    raw = toy_raw()
    cfg = SequenceConfig(history_len=history_len, candidate_len=candidate_len, vocab_size=vocab_size)
    return build_sequences(build_events(raw), raw.items, PARTITION, cfg)


def with_catalogue(seqs: EngagementSequences, **changes) -> EngagementSequences:
    """``seqs`` with catalogue fields replaced (e.g. ``item_created_ts``)."""
    return dataclasses.replace(seqs, catalogue=dataclasses.replace(seqs.catalogue, **changes))


def tiny_cfg(**overrides) -> TrainConfig:
    base = dict(
        preset="tiny",
        model_overrides={"compute_dtype": "float32"},
        batch_size=16,
        num_steps=12,
        warmup_steps=2,
        learning_rate=3e-3,
        eval_every=0,
        checkpoint_every=5,
        keep_checkpoints=2,
    )
    return TrainConfig(**{**base, **overrides})


class Stop(Exception):
    """What ``interrupt_at`` raises from the progress callback to stop a training run mid-way."""


def interrupt_at(train, seqs: EngagementSequences, cfg: TrainConfig, run_dir, step: int) -> None:
    """Run ``train(seqs, cfg, run_dir)`` and stop it right after ``step`` (as a killed run would stop):
    ``run_dir`` keeps the checkpoints written before then, for a resume test."""

    def stop(done, *_):
        if done == step:
            raise Stop

    with pytest.raises(Stop):
        train(seqs, cfg, run_dir, progress=stop)
