"""Preference pairs (reward spec §2) and batched BT training (§3): label consistency, the prefix
property, the 80/20 split, misspecification, and equivalence of the batched jitted trainer with a
plain per-step optax loop (the reference's procedure)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from x_reco.data.item_features import pool_arrays, synthetic_content_pool
from x_reco.reward.losses import LossSpec, initial_weights
from x_reco.reward.pairs import label_pairs, make_pairs, misspecify, pair_stream, split_indices, win_rates
from x_reco.reward.stakeholders import synthetic_stakeholders
from x_reco.reward.training import TrainSpec, schedule, train_models


@pytest.fixture(scope="module")
def pool():
    _, x, _, _ = pool_arrays(synthetic_content_pool())
    return x, synthetic_stakeholders().primary


def test_labels_follow_noisy_utility(pool):
    x, st = pool
    c1, c2, eps = pair_stream(len(x), 301, seed=7)
    assert np.all(c1 != c2) and np.all((c1 >= 0) & (c1 < len(x)))
    u = x @ st["user"]
    pref, rej = label_pairs(u, c1, c2, eps)
    assert np.all(u[pref] - u[rej] + np.where(pref == c1, eps, -eps) > 0)  # the winner had the larger noisy utility
    assert np.mean(u[pref] > u[rej]) > 0.9  # noise 0.05: near-deterministic


def test_pair_stream_prefix_and_stakeholder_independence(pool):
    x, st = pool
    long, short = pair_stream(len(x), 400, seed=11), pair_stream(len(x), 25, seed=11)
    for a, b in zip(long, short):
        np.testing.assert_array_equal(a[:25], b)
    rng = np.random.default_rng(11)  # the reference's call order
    first = rng.choice(len(x), size=2, replace=False)
    assert (long[0][0], long[1][0]) == tuple(first) and long[2][0] == rng.normal(0.0, 0.05)
    a, b = make_pairs(x, st["user"], 200, 3), make_pairs(x, st["society"], 200, 3)
    same_items = {frozenset(p) for p in zip(a.pref_train, a.rej_train)} == {
        frozenset(p) for p in zip(b.pref_train, b.rej_train)
    }
    assert same_items  # same item pairs, only the labels differ


@pytest.mark.parametrize("n, n_train", [(25, 20), (2000, 1600), (7, 6)])
def test_split_sizes(n, n_train):
    tr, ho = split_indices(n, seed=42)
    assert len(tr) == n_train and len(ho) == n - n_train
    assert sorted(np.concatenate([tr, ho]).tolist()) == list(range(n))


def test_misspecification():
    w = np.array([1.0, 0.0, -0.5, 2.0], np.float32)
    wt = misspecify(w, 0.3, seed=5)
    eps = np.random.default_rng(5).normal(0.0, 0.3, 4)
    np.testing.assert_allclose(wt, w * (1 + eps), rtol=1e-6)
    assert wt[1] == 0.0
    np.testing.assert_array_equal(misspecify(w, 0.0, seed=5), w)


def test_win_rates():
    from x_reco.reward.pairs import PairSet

    p = PairSet(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([], int), np.array([], int))
    np.testing.assert_allclose(win_rates(p, 4), [1.0, 0.5, 0.0, 0.5])


def test_schedules():
    idx, mask = schedule(150, TrainSpec(epochs=3))
    assert idx.shape == (3 * math.ceil(150 / 64), 64) and mask.sum() == 3 * 150
    first = np.random.default_rng(42).permutation(150)
    np.testing.assert_array_equal(idx[:3].reshape(-1)[:150], first)
    idx, mask = schedule(150, TrainSpec(mode="fixed_steps", fixed_steps=1250))
    assert idx.shape == (1250, 64) and idx.max() < 150 and mask.all()


def _reference_fit(xp, xr, epochs):
    """The reference's loop: optax Adam, a fresh default_rng(42) permutation per epoch, float32."""
    w = jnp.asarray(initial_weights(xp.shape[1]))
    opt = optax.adam(0.01)
    state = opt.init(w)
    rng = np.random.default_rng(42)
    grad = jax.jit(jax.grad(lambda w, a, b: jnp.mean(jnp.log(1 + jnp.exp(-(a @ w - b @ w)))) + 1e-3 * jnp.sum(w**2)))
    for _ in range(epochs):
        perm = rng.permutation(len(xp))
        for i in range(0, len(xp), 64):
            b = perm[i : i + 64]
            updates, state = opt.update(grad(w, jnp.asarray(xp[b]), jnp.asarray(xr[b])), state, w)
            w = optax.apply_updates(w, updates)
    return np.asarray(w)


def test_batched_trainer_equals_the_reference_loop(pool):
    x, st = pool
    pairs = [make_pairs(x, st[name], 150, seed) for name, seed in (("user", 42), ("society", 142), ("platform", 7))]
    res = train_models(x, pairs, LossSpec(), TrainSpec(epochs=10))
    for i, p in enumerate(pairs):
        ref = _reference_fit(x[p.pref_train], x[p.rej_train], 10)
        np.testing.assert_allclose(res.w_bd[i], ref, atol=2e-6)
    assert res.steps.tolist() == [10 * math.ceil(120 / 64)] * 3


def test_bt_converges_above_chance(pool):
    x, st = pool
    pairs = [make_pairs(x, st["user"], 500, s) for s in (42, 142)]
    res = train_models(x, pairs, LossSpec(), TrainSpec())
    assert res.heldout_acc.min() > 0.85 and res.train_acc.min() > 0.85
    assert np.all(np.isfinite(res.final_loss))


def test_modes_and_mixed_hyperparameters(pool):
    x, st = pool
    pairs = [make_pairs(x, st["platform"], 200, s) for s in (1, 2)]
    fixed = train_models(x, pairs, LossSpec(), TrainSpec(mode="fixed_steps", fixed_steps=97))
    assert fixed.steps.tolist() == [97, 97]
    conv = train_models(x, pairs, LossSpec(), TrainSpec(mode="converged", max_steps=3000, eval_every=10))
    assert np.all(conv.steps < 3000) and np.all(conv.steps % 10 == 0) and conv.heldout_acc.min() > 0.8
    margins = [LossSpec("margin", margin=0.1), LossSpec("margin", margin=1.0)]
    both = train_models(x, [pairs[0]] * 2, margins, TrainSpec(epochs=5))
    solo = train_models(x, [pairs[0]], margins[1], TrainSpec(epochs=5))
    np.testing.assert_allclose(both.w_bd[1], solo.w_bd[0], atol=1e-6)
    assert not np.allclose(both.w_bd[0], both.w_bd[1])
    with pytest.raises(ValueError, match="same train"):
        train_models(x, [pairs[0], make_pairs(x, st["user"], 100, 3)], LossSpec(), TrainSpec(epochs=1))
