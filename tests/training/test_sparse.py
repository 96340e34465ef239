"""The sparse row-wise table option (phoenix spec §13, large tables): it gives the dense row-wise
Adagrad's losses and tables (its untouched rows have zero gradient), never materializes a [V, D]
gradient or moment, and resumes from its Orbax checkpoint exactly like the dense optimizers."""

import re

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import interrupt_at, tiny_cfg, toy_seqs
from x_reco.training import loop
from x_reco.training.config import model_config_for
from x_reco.training.resume import TrainCheckpoints
from x_reco.training.step import data_parallel

TABLES = ("user", "post", "author")


# The retriever cases (~10-15 s each; the ranker case runs the same sparse step) are `make test-slow`.
@pytest.mark.parametrize(
    "kind,loss",
    [
        pytest.param("retriever", "full", marks=pytest.mark.slow),
        pytest.param("retriever", "sampled", marks=pytest.mark.slow),
        ("ranker", "full"),
    ],
)
def test_sparse_equals_dense_rowwise_adagrad(kind, loss, tmp_path):
    train = loop.train_retriever if kind == "retriever" else loop.train_ranker
    cfg = tiny_cfg(num_steps=8, checkpoint_every=0, retrieval_loss=loss, table_learning_rate=3e-2)
    dense = train(toy_seqs(), cfg.replace(table_optimizer="rowwise_adagrad"), tmp_path / "dense")
    sparse = train(toy_seqs(), cfg.replace(table_optimizer="sparse_rowwise_adagrad"), tmp_path / "sparse")
    np.testing.assert_allclose(sparse.losses, dense.losses, rtol=1e-5)
    assert sparse.losses[-1] < sparse.losses[0]
    for name in TABLES:
        a, b = (np.asarray(getattr(r.model.tables, name)[...]) for r in (dense, sparse))
        np.testing.assert_allclose(b, a, atol=1e-5)
        assert not b[0].any()  # the padding row stays zero


def _lowered_step(table_optimizer: str, vocab: int) -> tuple[str, int]:
    seqs = toy_seqs(vocab_size=vocab)
    cfg = tiny_cfg(table_optimizer=table_optimizer)
    rows, items = seqs.retrieval_pairs("train")
    n = seqs.num_items
    task = loop._Task(
        "retriever",
        loop.PhoenixRetriever,
        len(rows),
        lambda pos, step: loop.retrieval_batch(seqs, rows[pos], items[pos], 16),
        ("sampled_softmax", 0.05, None),
        (np.zeros(n, np.float32), np.zeros(n, np.int32)),
        None,
    )
    mc = model_config_for(cfg, seqs)
    graphdef, state = nnx.split(loop._build(task, mc, cfg))
    step = loop._train_step(graphdef, task, cfg, mc, data_parallel())
    return step.lower(state, task.make_batch(np.arange(16), 0), task.consts).as_text(), mc.emb_size


def test_sparse_step_never_broadcasts_a_table_sized_array():
    vocab = 4999  # a row count no other array has
    for opt, expect_dense in (("rowwise_adagrad", True), ("sparse_rowwise_adagrad", False)):
        text, dim = _lowered_step(opt, vocab)
        zeros_vd = re.findall(rf"broadcast_in_dim[^\n]*tensor<{vocab}x{dim}xf32>", text)
        assert bool(zeros_vd) == expect_dense, opt  # the dense gradient of a gather starts as zeros [V, D]


def test_sparse_run_resumes_exactly(tmp_path):
    cfg = tiny_cfg(num_steps=10, checkpoint_every=4, table_optimizer="sparse_rowwise_adagrad", table_learning_rate=3e-2)
    whole = loop.train_ranker(toy_seqs(), cfg, tmp_path / "whole")
    interrupt_at(loop.train_ranker, toy_seqs(), cfg, tmp_path / "cut", 6)
    assert TrainCheckpoints(tmp_path / "cut", 2).latest_step() == 4
    resumed = loop.train_ranker(toy_seqs(), cfg, tmp_path / "cut")
    assert resumed.resumed_from == 4 and resumed.losses == whole.losses
