"""Every BT loss variant of reward spec §3 matches its formula and its finite-difference gradient;
constrained-BT refuses non-action features; the post-hoc reranker follows its definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from x_reco.reward.losses import LossSpec, initial_weights, minibatch_loss, posthoc_scores
from x_reco.reward.stakeholders import NEG_IDX, POS_IDX

N, D, L2 = 7, 18, 1e-3
SPECS = [
    LossSpec("bt"),
    LossSpec("margin", margin=0.5, tau=0.1),
    LossSpec("hinge", margin=0.05),
    LossSpec("calibrated", lam=1.0),
    LossSpec("constrained", lam=10.0, constraint="user"),
    LossSpec("constrained", lam=10.0, constraint="society"),
    LossSpec("constrained", lam=10.0, constraint="platform"),
]


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    xp, xr = rng.uniform(0, 0.4, (N, D)), rng.uniform(0, 0.4, (N, D))
    ep, er = rng.uniform(0, 1, N), rng.uniform(0, 1, N)
    mask = np.array([1, 1, 1, 1, 1, 0, 0], np.float64)  # a partial last batch: 5 real pairs
    w = rng.normal(0.0, 0.3, D)
    w[NEG_IDX] = [-0.3, 0.2, -0.05, 0.4]  # some user constraints active, some not
    return w, xp, xr, ep, er, mask


def _reference(spec: LossSpec, w, xp, xr, ep, er, mask):
    """The §3 table written out in numpy on the 5 real pairs."""
    keep = mask > 0
    rp, rr = xp[keep] @ w, xr[keep] @ w
    delta = rp - rr
    softplus = lambda z: np.logaddexp(0.0, z)  # noqa: E731
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    if spec.kind == "margin":
        base = np.mean(spec.tau * softplus((spec.margin - delta) / spec.tau))
    elif spec.kind == "hinge":
        base = np.mean(np.maximum(0.0, spec.margin - delta))
    else:
        base = np.mean(softplus(-delta))
    if spec.kind == "calibrated":
        base += spec.lam * (np.mean((sig(rp) - ep[keep]) ** 2) + np.mean((sig(rr) - er[keep]) ** 2))
    if spec.kind == "constrained":
        c = {"user": np.mean(np.maximum(0.0, w[NEG_IDX] + 0.1)), "society": max(0.0, 0.3 - np.std(w)), "platform": 0.0}[
            spec.constraint
        ]
        base += spec.lam * c
    return base + L2 * np.sum(w**2)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_loss_value_and_finite_difference_gradient(spec):
    w, xp, xr, ep, er, mask = _batch()
    with jax.enable_x64(True):

        def f(wv):
            return minibatch_loss(
                spec.kind,
                wv,
                jnp.asarray(xp),
                jnp.asarray(xr),
                jnp.asarray(ep),
                jnp.asarray(er),
                jnp.asarray(mask),
                jnp.asarray(spec.hyper(), jnp.float64),
                L2,
            )

        value = float(f(jnp.asarray(w)))
        grad = np.asarray(jax.grad(f)(jnp.asarray(w)))
        eps = 1e-6
        numeric = np.array(
            [(float(f(jnp.asarray(w + eps * e))) - float(f(jnp.asarray(w - eps * e)))) / (2 * eps) for e in np.eye(D)]
        )
    # hyperparameters travel as float32 (the trainer's dtype), hence rel 1e-6 rather than 1e-12
    assert value == pytest.approx(_reference(spec, w, xp, xr, ep, er, mask), rel=1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_margin_loss_tends_to_hinge_as_tau_shrinks():
    w, xp, xr, ep, er, mask = _batch(1)
    hinge = _reference(LossSpec("hinge", margin=0.5), w, xp, xr, ep, er, mask)
    smooth = _reference(LossSpec("margin", margin=0.5, tau=1e-4), w, xp, xr, ep, er, mask)
    assert smooth == pytest.approx(hinge, abs=1e-3)


def test_spec_validation_and_initialisation():
    with pytest.raises(ValueError, match="unknown loss kind"):
        LossSpec("focal")
    with pytest.raises(ValueError, match="tau"):
        LossSpec("margin", tau=0.0)
    w18 = initial_weights(18)
    assert w18[POS_IDX].tolist() == [1.0] * 5 and w18[NEG_IDX].tolist() == [-1.0] * 4
    assert np.count_nonzero(w18) == 9
    np.testing.assert_array_equal(initial_weights(19), np.full(19, 0.1, np.float32))


def test_constrained_bt_needs_the_action_space():
    from x_reco.reward.pairs import make_pairs
    from x_reco.reward.training import TrainSpec, train_models

    x = np.random.default_rng(0).uniform(0, 1, (23, 19)).astype(np.float32)
    pairs = [make_pairs(x, np.ones(19), 25, 42)]
    with pytest.raises(ValueError, match="18-action"):
        train_models(x, pairs, LossSpec("constrained", constraint="user"), TrainSpec(epochs=1))


def test_posthoc_reranker():
    x = np.random.default_rng(3).uniform(0.05, 0.3, (11, 18))
    base = np.arange(18) / 18.0
    np.testing.assert_allclose(posthoc_scores(x, base, "platform", 0.7), x @ base)
    np.testing.assert_allclose(posthoc_scores(x, base, "user", 0.5), x @ base - 0.5 * x[:, NEG_IDX].sum(1))
    entropy = -np.sum(x * np.log(x + 1e-8), axis=1) / np.log(18)
    np.testing.assert_allclose(posthoc_scores(x, base, "society", 0.2), x @ base + 0.2 * entropy)
    with pytest.raises(ValueError):
        posthoc_scores(x, base, "advertiser", 0.1)
