"""Batched training of linear BT reward models with optax Adam (reward spec §3 and C1).

B models (seeds × stakeholders × hyperparameters) train in lockstep in one jitted loop: they share
the minibatch index schedule, which the reference draws from ``default_rng(42)`` in every run
regardless of the data seed, so only models with the same number of training pairs are batched.
Adam is elementwise, so one optax state over the stacked [B, D] weights is B independent optimisers.
Shapes: B models, M pool items, D features, S optimiser steps, N training pairs, H held-out pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from x_reco.reward.losses import LossSpec, check_dimension, initial_weights, minibatch_loss, pair_terms
from x_reco.reward.pairs import PairSet

MODES = ("parity", "fixed_steps", "converged")


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Optimiser and schedule. ``parity``: epochs × ceil(N/64) steps over a fresh permutation per
    epoch (last partial batch kept); ``fixed_steps``: ``fixed_steps`` steps of 64 pairs drawn with
    replacement; ``converged``: like fixed_steps until the held-out loss has not improved by
    ``min_delta`` for ``patience`` evaluations (one every ``eval_every`` steps), capped at ``max_steps``."""

    mode: str = "parity"
    epochs: int = 50
    lr: float = 0.01
    batch_size: int = 64
    l2: float = 1e-3
    fixed_steps: int = 1250
    max_steps: int = 20_000
    patience: int = 20
    min_delta: float = 1e-5
    eval_every: int = 10
    shuffle_seed: int = 42

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown training mode {self.mode!r}; expected one of {MODES}")
        if min(self.epochs, self.batch_size, self.fixed_steps, self.max_steps, self.eval_every) < 1:
            raise ValueError(f"epochs, batch_size, steps and eval_every must be >= 1: {self}")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Per-model outputs, all leading axis B."""

    w_bd: np.ndarray
    train_acc: np.ndarray
    heldout_acc: np.ndarray
    final_loss: np.ndarray  # training objective on all training pairs, L2 included
    steps: np.ndarray


def schedule(n_train: int, spec: TrainSpec) -> tuple[np.ndarray, np.ndarray]:
    """(idx [S, 64], mask [S, 64]) minibatch indices into the training pairs for ``spec.mode``."""
    rng = np.random.default_rng(spec.shuffle_seed)
    bs = spec.batch_size
    if spec.mode == "parity":
        per_epoch = math.ceil(n_train / bs)
        idx = np.zeros((spec.epochs, per_epoch * bs), np.int32)
        for e in range(spec.epochs):
            idx[e, :n_train] = rng.permutation(n_train)
        mask = np.broadcast_to(np.arange(per_epoch * bs) < n_train, idx.shape)
        return idx.reshape(-1, bs), mask.reshape(-1, bs).astype(np.float32)
    steps = spec.fixed_steps if spec.mode == "fixed_steps" else spec.max_steps
    return rng.integers(0, n_train, (steps, bs)).astype(np.int32), np.ones((steps, bs), np.float32)


def _bucket(n: int) -> int:
    """Next power of two (min 8): padded shapes keep the number of XLA compilations small."""
    return max(8, 1 << (int(n) - 1).bit_length())


def _pad(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    width = [(0, 0)] * a.ndim
    width[axis] = (0, n - a.shape[axis])
    return np.pad(a, width)


def _model_loss(kind, l2, x_md, w_bd, pi_bn, ri_bn, mask_bn, e_bm, hyper_bk):
    def one(w, pi, ri, m, e, h):
        return minibatch_loss(kind, w, x_md[pi], x_md[ri], e[pi], e[ri], m, h, l2)

    return jax.vmap(one)(w_bd, pi_bn, ri_bn, mask_bn, e_bm, hyper_bk)


def _step(kind, l2, opt, x_md, pref_bn, rej_bn, e_bm, hyper_bk, idx_s, mask_s, state):
    w, opt_state = state

    def total(w_bd):
        return jnp.sum(
            _model_loss(
                kind,
                l2,
                x_md,
                w_bd,
                pref_bn[:, idx_s],
                rej_bn[:, idx_s],
                jnp.broadcast_to(mask_s, (w_bd.shape[0], mask_s.shape[0])),
                e_bm,
                hyper_bk,
            )
        )

    grad = jax.grad(total)(w)
    updates, opt_state = opt.update(grad, opt_state, w)
    return optax.apply_updates(w, updates), opt_state


@functools.partial(jax.jit, static_argnames=("kind", "l2", "lr"))
def _fit_fixed(x_md, pref_bn, rej_bn, e_bm, hyper_bk, w0_bd, idx_sk, mask_sk, n_steps, *, kind, l2, lr):
    opt = optax.adam(lr)

    def body(t, state):
        return _step(kind, l2, opt, x_md, pref_bn, rej_bn, e_bm, hyper_bk, idx_sk[t], mask_sk[t], state)

    w, _ = jax.lax.fori_loop(0, n_steps, body, (w0_bd, opt.init(w0_bd)))
    return w


def _heldout_loss(kind, x_md, w_bd, hp_bh, hr_bh, hmask_bh, e_bm, hyper_bk):
    def one(w, pi, ri, m, e, h):
        terms = pair_terms(kind, x_md[pi] @ w, x_md[ri] @ w, e[pi], e[ri], h)
        return jnp.sum(terms * m) / jnp.maximum(jnp.sum(m), 1.0)

    return jax.vmap(one)(w_bd, hp_bh, hr_bh, hmask_bh, e_bm, hyper_bk)


@functools.partial(jax.jit, static_argnames=("kind", "l2", "lr", "patience", "min_delta", "eval_every"))
def _fit_converged(
    x_md,
    pref_bn,
    rej_bn,
    e_bm,
    hyper_bk,
    w0_bd,
    idx_sk,
    mask_sk,
    n_steps,
    hp_bh,
    hr_bh,
    hmask_bh,
    *,
    kind,
    l2,
    lr,
    patience,
    min_delta,
    eval_every,
):
    opt = optax.adam(lr)
    b = w0_bd.shape[0]

    def chunk(carry):
        t, w, opt_state, best, bad, done, steps = carry

        def body(i, state):
            return _step(kind, l2, opt, x_md, pref_bn, rej_bn, e_bm, hyper_bk, idx_sk[t + i], mask_sk[t + i], state)

        w_new, opt_new = jax.lax.fori_loop(0, eval_every, body, (w, opt_state))
        keep = done[:, None]
        w_new = jnp.where(keep, w, w_new)
        opt_new = jax.tree.map(lambda o, n: jnp.where(keep, o, n) if n.ndim == 2 else n, opt_state, opt_new)
        loss = _heldout_loss(kind, x_md, w_new, hp_bh, hr_bh, hmask_bh, e_bm, hyper_bk)
        improved = best - loss >= min_delta
        bad = jnp.where(done, bad, jnp.where(improved, 0, bad + 1))
        best = jnp.where(done | ~improved, best, loss)
        steps = jnp.where(done, steps, t + eval_every)
        return t + eval_every, w_new, opt_new, best, bad, done | (bad >= patience), steps

    def cond(carry):
        return (carry[0] + eval_every <= n_steps) & ~jnp.all(carry[5])

    init = (
        jnp.int32(0),
        w0_bd,
        opt.init(w0_bd),
        jnp.full(b, jnp.inf),
        jnp.zeros(b, jnp.int32),
        jnp.zeros(b, bool),
        jnp.zeros(b, jnp.int32),
    )
    out = jax.lax.while_loop(cond, chunk, init)
    return out[1], out[6]


def train_models(
    x_md: np.ndarray,
    pairs: list[PairSet],
    loss: LossSpec | list[LossSpec],
    spec: TrainSpec,
    targets_bm: np.ndarray | None = None,
    init_d: np.ndarray | None = None,
) -> TrainResult:
    """Train one linear BT model per pair set (all with the same train/held-out sizes).

    ``loss`` is one LossSpec or one per model (same kind, hyperparameters may differ);
    ``targets_bm`` [B, M] are per-item calibration targets (calibrated kind only).
    """
    x = np.asarray(x_md, np.float32)
    m, d = x.shape
    specs = loss if isinstance(loss, list) else [loss] * len(pairs)
    if not pairs or len(specs) != len(pairs) or len({s.kind for s in specs}) != 1:
        raise ValueError("need >= 1 pair set and one loss of a single kind per pair set")
    kind = specs[0].kind
    check_dimension(specs[0], d)
    n, h = pairs[0].n_train, len(pairs[0].pref_heldout)
    if any(p.n_train != n or len(p.pref_heldout) != h for p in pairs):
        raise ValueError("all pair sets of one call must have the same train and held-out sizes")
    if kind == "calibrated" and targets_bm is None:
        raise ValueError("calibrated-BT needs per-item targets")
    b = len(pairs)
    bb, nb, hb = _bucket(b), _bucket(n), _bucket(max(h, 1))
    pref = _pad(_pad(np.stack([p.pref_train for p in pairs]), nb, 1), bb, 0).astype(np.int32)
    rej = _pad(_pad(np.stack([p.rej_train for p in pairs]), nb, 1), bb, 0).astype(np.int32)
    e = np.zeros((bb, m), np.float32) if targets_bm is None else _pad(np.asarray(targets_bm, np.float32), bb, 0)
    hyper = _pad(np.stack([s.hyper() for s in specs]), bb, 0)
    w0 = np.tile(initial_weights(d) if init_d is None else np.asarray(init_d, np.float32), (bb, 1))
    idx, mask = schedule(n, spec)
    s = len(idx)
    idx, mask = _pad(idx, _bucket(s), 0), _pad(mask, _bucket(s), 0)
    args = (jnp.asarray(x), pref, rej, e, hyper, w0, idx, mask, s)
    if spec.mode == "converged":
        hp = _pad(_pad(np.stack([p.pref_heldout for p in pairs]), hb, 1), bb, 0).astype(np.int32)
        hr = _pad(_pad(np.stack([p.rej_heldout for p in pairs]), hb, 1), bb, 0).astype(np.int32)
        hmask = np.broadcast_to(np.arange(hb) < h, (bb, hb)).astype(np.float32)
        w, steps = _fit_converged(
            *args,
            hp,
            hr,
            hmask,
            kind=kind,
            l2=spec.l2,
            lr=spec.lr,
            patience=spec.patience,
            min_delta=spec.min_delta,
            eval_every=spec.eval_every,
        )
        steps = np.asarray(steps)[:b]
    else:
        w = _fit_fixed(*args, kind=kind, l2=spec.l2, lr=spec.lr)
        steps = np.full(b, s)
    tmask = np.broadcast_to(np.arange(nb) < n, (bb, nb)).astype(np.float32)
    final = _final_loss(jnp.asarray(x), jnp.asarray(w), pref, rej, tmask, e, hyper, kind=kind, l2=spec.l2)
    w = np.asarray(w)[:b]
    r_mb = x @ w.T
    cols = np.arange(b)[None, :]

    def acc(pi, ri):
        return np.mean(r_mb[pi, cols] > r_mb[ri, cols], axis=0) if pi.shape[0] else np.full(b, np.nan)

    train = acc(np.stack([p.pref_train for p in pairs], 1), np.stack([p.rej_train for p in pairs], 1))
    held = acc(np.stack([p.pref_heldout for p in pairs], 1), np.stack([p.rej_heldout for p in pairs], 1))
    return TrainResult(w, train, held, np.asarray(final)[:b], steps)


@functools.partial(jax.jit, static_argnames=("kind", "l2"))
def _final_loss(x_md, w_bd, pref_bn, rej_bn, mask_bn, e_bm, hyper_bk, *, kind, l2):
    return _model_loss(kind, l2, x_md, w_bd, pref_bn, rej_bn, mask_bn, e_bm, hyper_bk)
