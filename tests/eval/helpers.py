"""Trained toy checkpoints for evaluation tests: a retriever that beats popularity on the toy data
(as in tests/training/test_loop.py) and a briefly trained ranker, with their training records."""

from __future__ import annotations

from pathlib import Path

from tests.training.helpers import PARTITION, tiny_cfg, toy_seqs
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.record import train_record

RETRIEVER_CFG = tiny_cfg(num_steps=100, checkpoint_every=0, batch_size=16, learning_rate=1e-2, warmup_steps=4)
RANKER_CFG = tiny_cfg(checkpoint_every=0)


def toy_records(root: Path) -> dict[str, dict]:
    """{"retriever_checkpoint": record, "ranker_checkpoint": record} of models trained under ``root``
    on ``toy_seqs()`` (partition ``movielens-100k``, the whole catalogue)."""
    seqs = toy_seqs()
    out = {}
    for kind, train, cfg in (("retriever", train_retriever, RETRIEVER_CFG), ("ranker", train_ranker, RANKER_CFG)):
        result = train(seqs, cfg, Path(root) / kind)
        out[f"{kind}_checkpoint"] = train_record(kind, PARTITION, cfg, seqs, result)
    return out
