"""Rotary position embedding, half-split ("rotate-half") convention, per-row int32 positions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

ROPE_BASE = 10_000.0


def rope_phase(positions_bt: jax.Array, key_size: int, base: float = ROPE_BASE) -> jax.Array:
    """Phase [B, T, dk] in f32: ``pos * base^(-2i/dk)`` duplicated as [phase, phase]."""
    inv_freq = 1.0 / (base ** (jnp.arange(0, key_size, 2, dtype=jnp.float32) / key_size))
    phase = positions_bt.astype(jnp.float32)[..., None] * inv_freq
    return jnp.concatenate([phase, phase], axis=-1)


def apply_rope(x_bthd: jax.Array, positions_bt: jax.Array, base: float = ROPE_BASE) -> jax.Array:
    """Rotate ``x`` [B, T, H, dk] at positions [B, T]: ``x cos + rot(x) sin``, rot = [-x2, x1].

    Computed in f32 and cast back to ``x.dtype``. ``dk`` must be even.
    """
    half = x_bthd.shape[-1] // 2
    phase_bt1d = rope_phase(positions_bt, x_bthd.shape[-1], base)[:, :, None, :]
    x32 = x_bthd.astype(jnp.float32)
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * jnp.cos(phase_bt1d) + rotated * jnp.sin(phase_bt1d)).astype(x_bthd.dtype)
