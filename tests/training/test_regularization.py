"""Training-time regularization of the retriever: token dropout (seeded per step and row, never at
evaluation) and early stopping on validation (``early_stopping_patience``)."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.models.checkpoint import read_metadata
from x_reco.models.trunk import token_dropout
from x_reco.training.loop import train_retriever


def test_token_dropout_is_seeded_per_row_and_keeps_the_expectation():
    h = jnp.ones((4, 9, 64))
    seeds = jnp.array([1, 2, 1, 3], jnp.uint32)
    out = np.asarray(token_dropout(h, seeds, 0.25))
    assert np.array_equal(out[0], out[2]) and not np.array_equal(out[0], out[1])  # same seed, same mask
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.03
    assert np.array_equal(np.asarray(token_dropout(h, seeds, 0.0)), np.asarray(h))


def test_dropout_runs_reproduce_and_differ_from_no_dropout(tmp_path):
    cfg = tiny_cfg(num_steps=3, checkpoint_every=0, dropout=0.3, residual_dropout=0.2, retrieval_positions="all")
    a = train_retriever(toy_seqs(), cfg, tmp_path / "a")
    b = train_retriever(toy_seqs(), cfg, tmp_path / "b")
    plain = train_retriever(toy_seqs(), cfg.replace(dropout=0.0, residual_dropout=0.0), tmp_path / "plain")
    assert a.losses == b.losses and a.losses[0] != plain.losses[0]  # the first step already drops
    with pytest.raises(ValueError, match=r"dropout=1.0 must be in \[0, 1\)"):
        tiny_cfg(dropout=1.0)


def test_early_stopping_stops_after_patience_and_resumes_to_the_same_model(tmp_path):
    cfg = tiny_cfg(
        num_steps=200,
        checkpoint_every=50,
        eval_every=5,
        select_best=True,
        early_stopping_patience=2,
        learning_rate=3e-2,
        warmup_steps=2,
    )
    run = train_retriever(toy_seqs(), cfg, tmp_path / "run")
    best = run.selected_step
    assert run.step == best + 2 * 5 < 200  # two evaluations without a new best, then stop
    assert read_metadata(run.checkpoint_path)["extra"]["stopped_early"] is True
    again = train_retriever(toy_seqs(), cfg, tmp_path / "run")  # the stopped run is finished, not resumed
    assert again.resumed_from == run.step and again.step == run.step and again.selected_step == best
    with pytest.raises(ValueError, match="early_stopping_patience=2 needs select_best"):
        tiny_cfg(early_stopping_patience=2)


def test_each_dropout_site_draws_its_own_mask():
    h = jnp.ones((2, 5, 32))
    seeds = jnp.array([7, 8], jnp.uint32)
    masks = [np.asarray(token_dropout(h, seeds, 0.5, site)) == 0 for site in range(4)]
    assert all(not np.array_equal(masks[i], masks[j]) for i in range(4) for j in range(i + 1, 4))
    assert np.array_equal(masks[2], np.asarray(token_dropout(h, seeds, 0.5, 2)) == 0)
