"""Grouped-query attention with RoPE, logit multiplier, 30*tanh soft-cap, -1e30 mask fill, f32 softmax.

The core is split into pure functions so a prefix/candidate split or a KV cache can reuse it:
``Attention.qkv`` (projections + RoPE), ``attention_probs`` / ``grouped_attention`` (any query and
key lengths, key-side mask [B, 1, Tq, Tk]), ``split_attention`` (isolated candidates over a prefix
without the candidate x candidate block) and ``Attention.output`` (output projection).
Tensor names: t query tokens, s key tokens, h query heads, k kv heads, g = h // k, d key size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from x_reco.layers.quant import linear
from x_reco.layers.rope import apply_rope

ATTN_SOFT_CAP = 30.0
MASK_FILL = -1e30


def soft_cap(logits: jax.Array, cap: float = ATTN_SOFT_CAP) -> jax.Array:
    """``cap * tanh(x / cap)``."""
    return cap * jnp.tanh(logits / cap)


def attention_logits(q_bthd: jax.Array, k_bskd: jax.Array, multiplier: float) -> jax.Array:
    """Soft-capped f32 logits [B, K, G, Tq, Tk]; query head j reads kv head j // G."""
    b, t, h, d = q_bthd.shape
    kv = k_bskd.shape[2]
    q_btkgd = q_bthd.reshape(b, t, kv, h // kv, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", q_btkgd, k_bskd, preferred_element_type=jnp.float32)
    return soft_cap(logits * multiplier)


def attention_probs(q_bthd: jax.Array, k_bskd: jax.Array, mask_b1ts: jax.Array, multiplier: float) -> jax.Array:
    """f32 softmax over keys [B, K, G, Tq, Tk]; masked keys get -1e30 so all-masked rows stay finite."""
    logits = attention_logits(q_bthd, k_bskd, multiplier)
    logits = jnp.where(mask_b1ts[:, :, None], logits, MASK_FILL)
    return jax.nn.softmax(logits, axis=-1)


def combine_values(probs_bkgts: jax.Array, v_bskd: jax.Array) -> jax.Array:
    """Weighted sum of values in ``v``'s dtype -> [B, Tq, H, d] in query-head order."""
    o_btkgd = jnp.einsum("bkgts,bskd->btkgd", probs_bkgts.astype(v_bskd.dtype), v_bskd)
    b, t, kv, g, d = o_btkgd.shape
    return o_btkgd.reshape(b, t, kv * g, d)


def grouped_attention(
    q_bthd: jax.Array, k_bskd: jax.Array, v_bskd: jax.Array, mask_b1ts: jax.Array, multiplier: float
) -> jax.Array:
    """Full GQA core: q [B,Tq,H,d], k/v [B,Tk,K,d], bool mask [B,1,Tq,Tk] -> [B,Tq,H,d]."""
    return combine_values(attention_probs(q_bthd, k_bskd, mask_b1ts, multiplier), v_bskd)


def split_attention(
    q_bnhd: jax.Array,
    k_bnkd: jax.Array,
    v_bnkd: jax.Array,
    kp_bpkd: jax.Array,
    vp_bpkd: jax.Array,
    prefix_valid_bp: jax.Array,
    cand_valid_bn: jax.Array,
    multiplier: float,
) -> jax.Array:
    """Isolated candidates over [P prefix keys | own key] -> [B, N, H, d]; the N x N block is never formed.

    Equals ``grouped_attention`` with ``masks.candidates_over_prefix_mask`` (each candidate sees the
    valid prefix keys and its own key, if valid): the masked candidate-candidate entries contribute
    exact zeros there, here they are never computed.
    """
    b, n, hq, d = q_bnhd.shape
    kv = kp_bpkd.shape[2]
    q = q_bnhd.reshape(b, n, kv, hq // kv, d)
    lp = jnp.einsum("bnkgd,bpkd->bkgnp", q, kp_bpkd, preferred_element_type=jnp.float32)
    lp = jnp.where(prefix_valid_bp[:, None, None, None, :], soft_cap(lp * multiplier), MASK_FILL)
    ls = jnp.einsum("bnkgd,bnkd->bkgn", q, k_bnkd, preferred_element_type=jnp.float32)
    ls = jnp.where(cand_valid_bn[:, None, None, :], soft_cap(ls * multiplier), MASK_FILL)
    probs = jax.nn.softmax(jnp.concatenate([lp, ls[..., None]], axis=-1), axis=-1).astype(v_bnkd.dtype)
    o = jnp.einsum("bkgnp,bpkd->bnkgd", probs[..., :-1], vp_bpkd, preferred_element_type=jnp.float32)
    o = o + jnp.einsum("bkgn,bnkd->bnkgd", probs[..., -1], v_bnkd, preferred_element_type=jnp.float32)
    return o.astype(v_bnkd.dtype).reshape(b, n, hq, d)  # one rounding, like the dense path's single einsum


class Attention(nnx.Module):
    """Bias-free GQA projections (wq, wk, wv, wo stored [in, out]) around ``grouped_attention``."""

    def __init__(
        self,
        emb_size: int,
        num_q_heads: int,
        num_kv_heads: int,
        key_size: int,
        attn_output_multiplier: float,
        *,
        dtype=jnp.bfloat16,
        param_dtype=jnp.float32,
        kernel_init: nnx.Initializer,
        rngs: nnx.Rngs,
    ):
        if num_q_heads % num_kv_heads:
            raise ValueError(f"num_q_heads={num_q_heads} not divisible by num_kv_heads={num_kv_heads}")
        if key_size % 2:
            raise ValueError(f"key_size={key_size} must be even for RoPE")
        self.num_q_heads, self.num_kv_heads, self.key_size = num_q_heads, num_kv_heads, key_size
        self.multiplier = float(attn_output_multiplier)
        self.dtype = dtype
        hq, hkv = num_q_heads * key_size, num_kv_heads * key_size
        self.wq = nnx.Param(kernel_init(rngs.params(), (emb_size, hq), param_dtype))
        self.wk = nnx.Param(kernel_init(rngs.params(), (emb_size, hkv), param_dtype))
        self.wv = nnx.Param(kernel_init(rngs.params(), (emb_size, hkv), param_dtype))
        self.wo = nnx.Param(kernel_init(rngs.params(), (hq, emb_size), param_dtype))

    def qkv(self, x_btd: jax.Array, positions_bt: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Q [B,T,H,d] and K [B,T,K,d] with RoPE at ``positions_bt``; V [B,T,K,d]; compute dtype."""
        b, t, _ = x_btd.shape
        q = linear(x_btd, self.wq.get_value(), self.dtype).reshape(b, t, self.num_q_heads, self.key_size)
        k = linear(x_btd, self.wk.get_value(), self.dtype).reshape(b, t, self.num_kv_heads, self.key_size)
        v = linear(x_btd, self.wv.get_value(), self.dtype).reshape(b, t, self.num_kv_heads, self.key_size)
        return apply_rope(q, positions_bt), apply_rope(k, positions_bt), v

    def output(self, o_bthd: jax.Array) -> jax.Array:
        """Flatten heads in query-head order and project: [B,T,H,d] -> [B,T,D]."""
        b, t, h, d = o_bthd.shape
        return linear(o_bthd.reshape(b, t, h * d), self.wo.get_value(), self.dtype)

    def __call__(
        self,
        x_btd: jax.Array,
        positions_bt: jax.Array,
        mask_b1ts: jax.Array,
        past_kv: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Attend ``x``'s queries to [past keys | own keys].

        Args:
          x_btd: [B, T, D] inputs (already normed).
          positions_bt: int32 [B, T] RoPE positions of these tokens.
          mask_b1ts: bool [B, 1, T, P+T] (P = 0 without ``past_kv``) key-side mask.
          past_kv: optional cached (K [B,P,K,d] post-RoPE, V [B,P,K,d]) of earlier tokens.
        Returns:
          (out [B,T,D], K [B,T,K,d], V [B,T,K,d]) with this call's own K/V for caching.
        """
        q, k, v = self.qkv(x_btd, positions_bt)
        keys, values = k, v
        if past_kv is not None:
            keys = jnp.concatenate([past_kv[0].astype(k.dtype), k], axis=1)
            values = jnp.concatenate([past_kv[1].astype(v.dtype), v], axis=1)
        out = grouped_attention(q, keys, values, mask_b1ts, self.multiplier)
        return self.output(out), k, v

    def candidates(
        self,
        x_bnd: jax.Array,
        positions_bn: jax.Array,
        prefix_kv: tuple[jax.Array, jax.Array],
        prefix_valid_bp: jax.Array,
        cand_valid_bn: jax.Array,
    ) -> jax.Array:
        """Isolated candidates over a cached prefix (``split_attention``): out [B, N, D]."""
        q, k, v = self.qkv(x_bnd, positions_bn)
        kp, vp = prefix_kv[0].astype(k.dtype), prefix_kv[1].astype(v.dtype)
        out = split_attention(q, k, v, kp, vp, prefix_valid_bp, cand_valid_bn, self.multiplier)
        return self.output(out)
