"""Weight formats the layers accept: f32 / bf16 arrays, per-channel int8 ``QWeight``, row-wise int8 ``QTable``.

A format is a value, not a mode: a serving variant replaces a ``Param``'s array with a ``QWeight`` (or a
``HashTable``'s with a ``QTable``) and the same layer code runs, because every matmul goes through
``linear`` and every table gather through ``gather_rows``, which dispatch on the value.

* ``QWeight``: per-output-channel symmetric int8 of W [in, out]: ``s_o = max_i |W_io| / 127`` (1 for an
  all-zero column), ``q = clip(round(W / s), -127, 127)``; ``y = (x @ q.astype(cd)) * s``.
* ``QTable``: row-wise int8 of a hash table, ``s_r = max_d |T_rd| / 127``; rows are dequantized after the
  gather, and row 0 (padding) stays exactly zero.
* ``Observed``: calibration only (eager calls, never jitted): an f32 weight that accumulates the second
  moment of the inputs it multiplies, which error-compensating int8 rounding minimizes against
  (``x_reco.inference.calibrate``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class QWeight:
    """Per-output-channel int8 weight: ``q`` int8 [in, out], ``scale`` f32 [out]."""

    q: jax.Array
    scale: jax.Array

    @property
    def shape(self):
        return self.q.shape


@struct.dataclass
class QTable:
    """Row-wise int8 hash table: ``q`` int8 [V, D], ``scale`` f32 [V]."""

    q: jax.Array
    scale: jax.Array

    @property
    def shape(self):
        return self.q.shape


class Observed:
    """An f32 weight W [in, out] that records ``sum x x^T`` [in, in] (f64) and the row count of every
    input it multiplies. Eager calls only: the inputs must be concrete arrays."""

    def __init__(self, w):
        self.w = w
        self.xtx = np.zeros((w.shape[0], w.shape[0]), np.float64)
        self.rows = 0

    @property
    def shape(self):
        return self.w.shape

    def observe(self, x) -> None:
        xs = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        self.xtx += xs.T @ xs
        self.rows += len(xs)


def linear(x: jax.Array, w, dtype) -> jax.Array:
    """``x @ w`` in ``dtype``; a QWeight is dequantized inside the matmul: ``(x @ q.astype(dtype)) * s``."""
    if isinstance(w, Observed):
        w.observe(x)
        w = w.w
    x = x.astype(dtype)
    if isinstance(w, QWeight):
        y = jnp.dot(x, w.q.astype(dtype), preferred_element_type=jnp.float32) * w.scale
        return y.astype(dtype)
    return x @ w.astype(dtype)


def gather_rows(table, hashes: jax.Array) -> jax.Array:
    """Rows at int32 ``hashes`` [...] -> [..., D] f32; padding hash 0 gives exact zeros (any format)."""
    valid = (hashes != 0)[..., None].astype(jnp.float32)
    if isinstance(table, QTable):
        return table.q[hashes].astype(jnp.float32) * table.scale[hashes][..., None] * valid
    return table[hashes].astype(jnp.float32) * valid


def dense(w) -> jax.Array:
    """f32 view of a weight in any format (tests and accounting only; never on the request path)."""
    if isinstance(w, (QWeight, QTable)):
        axis = 0 if isinstance(w, QWeight) else 1
        return w.q.astype(jnp.float32) * jnp.expand_dims(w.scale, axis)
    return jnp.asarray(w, jnp.float32)
