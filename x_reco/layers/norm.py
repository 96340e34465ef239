"""RMSNorm with the Grok/Phoenix numerics: eps 1e-5 on the mean of squares, computed in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

RMS_NORM_EPS = 1e-5


def rms_norm(x: jax.Array, scale: jax.Array, eps: float = RMS_NORM_EPS) -> jax.Array:
    """``scale * x / sqrt(mean(x^2) + eps)`` over the last axis in f32, cast back to ``x.dtype``."""
    x32 = x.astype(jnp.float32)
    mean_sq = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    return (scale.astype(jnp.float32) * (x32 * jax.lax.rsqrt(mean_sq + eps))).astype(x.dtype)


class RMSNorm(nnx.Module):
    """Root-mean-square norm with a learned [D] scale (no bias, no mean subtraction)."""

    def __init__(
        self,
        dim: int,
        *,
        param_dtype=jnp.float32,
        scale_init: nnx.Initializer = nnx.initializers.ones,
        rngs: nnx.Rngs,
    ):
        self.scale = nnx.Param(scale_init(rngs.params(), (dim,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return rms_norm(x, self.scale.get_value())
