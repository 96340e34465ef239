"""Gated-GELU feed-forward block: ``W_down(gelu_tanh(x W_gate) * (x W_up))``, bias-free."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from x_reco.layers.quant import linear


class GatedFFN(nnx.Module):
    """Grok-style gated feed-forward; kernels stored [in, out] (``param_dtype`` or a quantized format)."""

    def __init__(
        self,
        emb_size: int,
        ffn_size: int,
        *,
        dtype=jnp.bfloat16,
        param_dtype=jnp.float32,
        kernel_init: nnx.Initializer,
        rngs: nnx.Rngs,
    ):
        self.dtype = dtype
        self.w_gate = nnx.Param(kernel_init(rngs.params(), (emb_size, ffn_size), param_dtype))
        self.w_up = nnx.Param(kernel_init(rngs.params(), (emb_size, ffn_size), param_dtype))
        self.w_down = nnx.Param(kernel_init(rngs.params(), (ffn_size, emb_size), param_dtype))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        gate_btf = jax.nn.gelu(linear(x_btd, self.w_gate.get_value(), self.dtype), approximate=True)
        up_btf = linear(x_btd, self.w_up.get_value(), self.dtype)
        return linear(gate_btf * up_btf, self.w_down.get_value(), self.dtype)
