"""Attention masks and RoPE positions of the Phoenix models (spec §7, §11.1).

Masks are key-side only: ``mask[b, 0, q, k] = valid[b, k] & structure[q, k]`` (bool, broadcast over
heads). Query rows at padded positions are computed and ignored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from x_reco.configs.phoenix import POSITION_MODES


def causal_mask(seq_len: int, dtype=jnp.float32) -> jax.Array:
    """Lower-triangular ones (1, 1, T, T)."""
    return jnp.tril(jnp.ones((seq_len, seq_len), dtype=dtype))[None, None]


def ranker_attention_mask(seq_len: int, candidate_offset: int, dtype=jnp.float32) -> jax.Array:
    """Candidate-isolation structure (1, 1, T, T) in ``dtype``.

    Causal over [user | history]; every candidate row sees columns < ``candidate_offset`` and itself;
    user/history rows never see candidates. T=6, o=3 rows: 100000 111000 ... 111010 111001.
    """
    mask = jnp.tril(jnp.ones((seq_len, seq_len), dtype=dtype))
    idx = jnp.arange(seq_len)
    in_block = (idx[:, None] >= candidate_offset) & (idx[None, :] >= candidate_offset)
    mask = jnp.where(in_block & (idx[:, None] != idx[None, :]), jnp.zeros((), dtype), mask)
    return mask[None, None]


def with_key_validity(structure_11ts: jax.Array, valid_bs: jax.Array) -> jax.Array:
    """Bool [B, 1, Tq, Tk]: ``structure != 0`` and key ``valid``."""
    return (structure_11ts != 0) & valid_bs[:, None, None, :]


def ranker_dense_mask(prefix_valid_bp: jax.Array, candidate_valid_bc: jax.Array) -> jax.Array:
    """Full ranker mask over [user | history | candidates]: bool [B, 1, T, T]."""
    p, c = prefix_valid_bp.shape[1], candidate_valid_bc.shape[1]
    valid_bt = jnp.concatenate([prefix_valid_bp, candidate_valid_bc], axis=1)
    return with_key_validity(ranker_attention_mask(p + c, p, jnp.bool_), valid_bt)


def prefix_mask(prefix_valid_bp: jax.Array) -> jax.Array:
    """Causal mask over [user | history] with key validity: bool [B, 1, P, P] (also the retriever's user-tower mask)."""
    return with_key_validity(causal_mask(prefix_valid_bp.shape[1], jnp.bool_), prefix_valid_bp)


def candidates_over_prefix_mask(prefix_valid_bp: jax.Array, candidate_valid_bc: jax.Array) -> jax.Array:
    """Candidate queries over keys [prefix | candidates]: bool [B, 1, C, P+C].

    Each candidate sees every valid prefix key and itself (if valid); equals the candidate rows of
    ``ranker_dense_mask``.
    """
    (b, p), c = prefix_valid_bp.shape, candidate_valid_bc.shape[1]
    prefix_b1cp = jnp.broadcast_to(prefix_valid_bp[:, None, None, :], (b, 1, c, p))
    self_b1cc = jnp.eye(c, dtype=jnp.bool_)[None, None] & candidate_valid_bc[:, None, None, :]
    return jnp.concatenate([prefix_b1cp, self_b1cc], axis=-1)


def append_mask(past_valid_bp: jax.Array, new_valid_bn: jax.Array) -> jax.Array:
    """New prefix tokens appended after cached ones: all valid cached keys + causal among new. [B,1,N,P+N]."""
    (b, p), n = past_valid_bp.shape, new_valid_bn.shape[1]
    past_b1np = jnp.broadcast_to(past_valid_bp[:, None, None, :], (b, 1, n, p))
    return jnp.concatenate([past_b1np, with_key_validity(causal_mask(n, jnp.bool_), new_valid_bn)], axis=-1)


def prefix_positions(batch_size: int, prefix_len: int, start: int = 0) -> jax.Array:
    """Positions ``start .. start+P-1`` for every row: int32 [B, P] (user at 0, history slot s at 1+s)."""
    return jnp.broadcast_to(jnp.arange(start, start + prefix_len, dtype=jnp.int32), (batch_size, prefix_len))


def prefix_valid(lengths_b: jax.Array, user_valid_b: jax.Array, prefix_len: int) -> jax.Array:
    """Validity [B, P] of a prefix holding the user token and L_b history slots (then padding)."""
    pos = jnp.arange(prefix_len)[None, :]
    return ((pos == 0) & user_valid_b[:, None]) | ((pos >= 1) & (pos <= lengths_b[:, None]))


def candidate_positions(
    history_valid_bs: jax.Array, num_candidates: int, mode: str, slot_offset: int | jax.Array = 0
) -> jax.Array:
    """RoPE positions of candidates, int32 [B, C].

    ``shared``: every candidate at 1 + L_b (L_b valid history length).
    ``reference``: candidate i at 1 + S + slot_offset + i (S padded history length; ``slot_offset``
    is a chunk's global first slot and may be traced).
    """
    if mode not in POSITION_MODES:
        raise ValueError(f"candidate position mode {mode!r} not in {POSITION_MODES}")
    b, s = history_valid_bs.shape
    if mode == "shared":
        length_b = jnp.sum(history_valid_bs, axis=1, dtype=jnp.int32)
        return jnp.broadcast_to((1 + length_b)[:, None], (b, num_candidates))
    slots_c = 1 + s + slot_offset + jnp.arange(num_candidates, dtype=jnp.int32)
    return jnp.broadcast_to(slots_c[None, :], (b, num_candidates)).astype(jnp.int32)


def ranker_positions(history_valid_bs: jax.Array, num_candidates: int, mode: str) -> jax.Array:
    """Positions of the whole ranker sequence [user | history | candidates]: int32 [B, T]."""
    b, s = history_valid_bs.shape
    return jnp.concatenate(
        [prefix_positions(b, 1 + s), candidate_positions(history_valid_bs, num_candidates, mode)], axis=1
    )
