"""The Grok-style transformer trunk shared by the ranker and the retriever's user tower (spec §6)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from x_reco.configs.phoenix import PhoenixConfig
from x_reco.layers.attention import Attention
from x_reco.layers.ffn import GatedFFN
from x_reco.layers.norm import RMSNorm

XAVIER = nnx.initializers.variance_scaling(1.0, "fan_avg", "truncated_normal")

Dropout = tuple[jax.Array, float]  # training only: (seed per row, uint32 [B]; rate in [0, 1))


class Dropouts(NamedTuple):
    """Training-time dropout of the user tower: per-row seeds, input-token and residual-branch rates."""

    seed_b: jax.Array  # uint32 [B]
    tokens: float = 0.0
    residual: float = 0.0


def token_dropout(h_btd: jax.Array, seed_b: jax.Array, rate: float, site: int = 0) -> jax.Array:
    """Inverted dropout of token features: each element is zeroed with probability ``rate`` and the rest
    scaled by 1 / (1 - rate). Row b's mask is a pure function of (``seed_b[b]``, ``site``), so a run and
    its resumption draw the same masks and every dropout site of a step draws its own."""
    if rate <= 0:
        return h_btd
    site_seed_b = seed_b.astype(jnp.uint32) ^ jnp.uint32((0x9E3779B9 * site) % 2**32)
    keep = jax.vmap(lambda s: jax.random.bernoulli(jax.random.key(s), 1.0 - rate, h_btd.shape[1:]))(site_seed_b)
    return jnp.where(keep, h_btd / (1.0 - rate), 0.0).astype(h_btd.dtype)


class TransformerLayer(nnx.Module):
    """Sandwich-norm block: ``h += post(attn(pre(h)))``; ``h += post(ffn(pre(h)))``. No bias, no dropout."""

    def __init__(
        self,
        emb_size: int,
        num_q_heads: int,
        num_kv_heads: int,
        key_size: int,
        ffn_size: int,
        attn_output_multiplier: float,
        *,
        dtype=jnp.bfloat16,
        param_dtype=jnp.float32,
        kernel_init: nnx.Initializer = XAVIER,
        scale_init: nnx.Initializer = nnx.initializers.ones,
        rngs: nnx.Rngs,
    ):
        norm = dict(param_dtype=param_dtype, scale_init=scale_init, rngs=rngs)
        self.norm_pre_attn = RMSNorm(emb_size, **norm)
        self.attn = Attention(
            emb_size,
            num_q_heads,
            num_kv_heads,
            key_size,
            attn_output_multiplier,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            rngs=rngs,
        )
        self.norm_post_attn = RMSNorm(emb_size, **norm)
        self.norm_pre_ffn = RMSNorm(emb_size, **norm)
        self.ffn = GatedFFN(
            emb_size, ffn_size, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init, rngs=rngs
        )
        self.norm_post_ffn = RMSNorm(emb_size, **norm)

    def ffn_block(self, h_btd: jax.Array, dropout: tuple[Dropout, int] | None = None) -> jax.Array:
        """Second residual half: ``h + post_ffn(ffn(pre_ffn(h)))`` (branch dropped at (seeds, site))."""
        branch = self.norm_post_ffn(self.ffn(self.norm_pre_ffn(h_btd)))
        if dropout is not None:
            (seed_b, rate), site = dropout
            branch = token_dropout(branch, seed_b, rate, site)
        return h_btd + branch.astype(h_btd.dtype)

    def __call__(
        self,
        h_btd: jax.Array,
        positions_bt: jax.Array,
        mask_b1ts: jax.Array,
        past_kv: tuple[jax.Array, jax.Array] | None = None,
        dropout: tuple[Dropout, int] | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One layer; returns (h [B,T,D], K [B,T,K,d] post-RoPE, V [B,T,K,d]) of these tokens.

        ``dropout`` (training only): ``((seed_b, rate), site)`` drops both residual branches, at sites
        ``site`` and ``site + 1``.
        """
        attn_out, k, v = self.attn(self.norm_pre_attn(h_btd), positions_bt, mask_b1ts, past_kv)
        if dropout is None:
            return self._residuals(h_btd, attn_out), k, v
        (seed_b, rate), site = dropout
        branch = token_dropout(self.norm_post_attn(attn_out), seed_b, rate, site)
        return self.ffn_block(h_btd + branch.astype(h_btd.dtype), ((seed_b, rate), site + 1)), k, v

    def candidates(
        self,
        h_bnd: jax.Array,
        positions_bn: jax.Array,
        prefix_kv: tuple[jax.Array, jax.Array],
        prefix_valid_bp: jax.Array,
        cand_valid_bn: jax.Array,
    ) -> jax.Array:
        """One layer for isolated candidates over a cached prefix (split attention): h [B, N, D]."""
        attn_out = self.attn.candidates(
            self.norm_pre_attn(h_bnd), positions_bn, prefix_kv, prefix_valid_bp, cand_valid_bn
        )
        return self._residuals(h_bnd, attn_out)

    def _residuals(self, h_btd: jax.Array, attn_out_btd: jax.Array) -> jax.Array:
        """``h + post_attn(attn_out)``, then the FFN half."""
        return self.ffn_block(h_btd + self.norm_post_attn(attn_out_btd).astype(h_btd.dtype))


def make_layers(config: PhoenixConfig, rngs: nnx.Rngs) -> nnx.List:
    """The trunk's layers from a config; ``init="upstream_zeros"`` zeroes kernels and norm scales."""
    zeros = config.init == "upstream_zeros"
    return nnx.List(
        [
            TransformerLayer(
                config.emb_size,
                config.num_q_heads,
                config.num_kv_heads,
                config.key_size,
                config.ffn_size,
                config.attn_output_multiplier,
                dtype=config.dtype,
                param_dtype=config.param_jnp_dtype,
                kernel_init=nnx.initializers.zeros if zeros else XAVIER,
                scale_init=nnx.initializers.zeros if zeros else nnx.initializers.ones,
                rngs=rngs,
            )
            for _ in range(config.num_layers)
        ]
    )


def run_layers(
    layers: nnx.List,
    h_btd: jax.Array,
    positions_bt: jax.Array,
    mask_b1ts: jax.Array,
    past_kv: tuple[jax.Array, jax.Array] | None = None,
    dropout: Dropouts | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Run every layer.

    Args:
      h_btd: [B, T, D] tokens in the compute dtype.
      positions_bt: int32 [B, T] RoPE positions.
      mask_b1ts: bool [B, 1, T, P+T] key-side mask (P = 0 without ``past_kv``).
      past_kv: optional cached (K, V), each [L, B, P, K, d], of earlier tokens.
      dropout: training only: ``dropout.residual`` drops every layer's residual branches
        (sites 1, 2 in layer 0, 3, 4 in layer 1, ...; site 0 is the input tokens').
    Returns:
      (h [B,T,D], K [L,B,T,K,d], V [L,B,T,K,d]): outputs and this call's per-layer K (post-RoPE) and V.
    """
    ks, vs = [], []
    for i, layer in enumerate(layers):
        layer_past = None if past_kv is None else (past_kv[0][i], past_kv[1][i])
        drop = None if dropout is None or not dropout.residual else ((dropout.seed_b, dropout.residual), 1 + 2 * i)
        h_btd, k, v = layer(h_btd, positions_bt, mask_b1ts, layer_past, drop)
        ks.append(k)
        vs.append(v)
    return h_btd, jnp.stack(ks), jnp.stack(vs)


def run_candidate_layers(
    layers: nnx.List,
    h_bnd: jax.Array,
    positions_bn: jax.Array,
    prefix_kv: tuple[jax.Array, jax.Array],
    prefix_valid_bp: jax.Array,
    cand_valid_bn: jax.Array,
) -> jax.Array:
    """Every layer for isolated candidates over a prefix's per-layer (K, V), each [L, B, P, K, d]."""
    for i, layer in enumerate(layers):
        h_bnd = layer.candidates(
            h_bnd, positions_bn, (prefix_kv[0][i], prefix_kv[1][i]), prefix_valid_bp, cand_valid_bn
        )
    return h_bnd
