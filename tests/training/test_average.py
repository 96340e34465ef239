"""Parameter averaging (``TrainConfig.ema_decay``): the average's arithmetic, a run that keeps one
trains exactly as one without (the loss curve is the raw parameters'), exports and validates the
average, and a run stopped mid-way resumes to the same average."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import interrupt_at, tiny_cfg, toy_seqs
from x_reco.models.checkpoint import restore_checkpoint
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.step import ParamAverage

CFG = tiny_cfg(num_steps=30, checkpoint_every=10, learning_rate=1e-2, warmup_steps=2)


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Any(nnx.Param)))]


def test_the_average_follows_the_parameters_with_a_warming_decay():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    p0 = np.asarray(model.kernel[...])
    avg = ParamAverage(model, decay=0.5)
    assert np.array_equal(np.asarray(avg.model.kernel[...]), p0)  # starts at the parameters
    expected = p0.astype(np.float64)
    for n, value in enumerate((1.0, -2.0, 4.0, 0.5)):
        model.kernel[...] = jnp.full_like(model.kernel[...], value)
        avg.update(model)
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18.., 0.25, 0.3.. then capped at 0.5
        expected = d * expected + (1 - d) * value
        np.testing.assert_allclose(np.asarray(avg.model.kernel[...]), expected, rtol=1e-6)
    assert int(avg.count[...]) == 4
    assert not np.array_equal(np.asarray(avg.model.kernel[...]), np.asarray(model.kernel[...]))


def test_an_averaged_run_trains_the_same_and_exports_the_average(tmp_path):
    plain = train_retriever(toy_seqs(), CFG, tmp_path / "plain")
    averaged = train_retriever(toy_seqs(), CFG.replace(ema_decay=0.9), tmp_path / "avg")
    assert averaged.losses == plain.losses  # the average never feeds back into training
    exported, _ = restore_checkpoint(averaged.checkpoint_path)
    got, raw = _params(exported), _params(plain.model)
    assert all(np.array_equal(a, b) for a, b in zip(got, _params(averaged.model), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(got, raw, strict=True))
    assert averaged.val_metrics != plain.val_metrics  # validated on the average


@pytest.mark.parametrize("train", [train_retriever, train_ranker], ids=["retriever", "ranker"])
def test_a_stopped_averaged_run_resumes_to_the_same_average(train, tmp_path):
    cfg = CFG.replace(ema_decay=0.8)
    whole = train(toy_seqs(), cfg, tmp_path / "whole")
    interrupt_at(train, toy_seqs(), cfg, tmp_path / "cut", 25)
    resumed = train(toy_seqs(), cfg, tmp_path / "cut")
    assert resumed.resumed_from == 20 and resumed.losses == whole.losses
    assert all(np.array_equal(a, b) for a, b in zip(_params(resumed.model), _params(whole.model), strict=True))


def test_ema_decay_must_be_a_fraction_below_one():
    with pytest.raises(ValueError, match=r"ema_decay=1.0 must be in \[0, 1\)"):
        tiny_cfg(ema_decay=1.0)
