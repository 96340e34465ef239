"""Hash tables and embedding assembly ("block reduce": concat hashes + bias-free f32 projection).

Tables are ``HashTable`` variables, not ``nnx.Param``: optimizers select them explicitly
(``nnx.Optimizer(..., wrt=nnx.Param)`` skips them; weight decay never sees them). Row 0 is the
padding row: zero at init, and every gather multiplies by ``hash != 0`` so row 0 gets zero gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from x_reco.common.types import RecsysBatch, RecsysEmbeddings
from x_reco.layers.quant import gather_rows, linear

_fan_in = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
_fan_out = nnx.initializers.variance_scaling(1.0, "fan_out", "truncated_normal")


class HashTable(nnx.Variable):
    """A hash-embedding table [V, D] (f32); row 0 is padding and stays zero."""


def init_table(key: jax.Array, rows: int, dim: int, std: float, dtype=jnp.float32) -> jax.Array:
    """Normal(0, std) table with row 0 zeroed."""
    table = std * jax.random.normal(key, (rows, dim), dtype)
    return table.at[0].set(0)


class HashTables(nnx.Module):
    """The user, post and author tables; history and candidates share post and author tables."""

    def __init__(
        self,
        vocab_sizes: tuple[int, int, int],
        emb_size: int,
        *,
        init_std: float = 1.0,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        vu, vp, va = vocab_sizes
        self.user = HashTable(init_table(rngs.params(), vu, emb_size, init_std, param_dtype))
        self.post = HashTable(init_table(rngs.params(), vp, emb_size, init_std, param_dtype))
        self.author = HashTable(init_table(rngs.params(), va, emb_size, init_std, param_dtype))

    def lookup_items(self, post_hashes: jax.Array, author_hashes: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Post [..., Ni] and author [..., Na] hashes -> ([..., Ni, D], [..., Na, D])."""
        return gather_rows(self.post.get_value(), post_hashes), gather_rows(self.author.get_value(), author_hashes)

    def lookup(self, batch: RecsysBatch) -> RecsysEmbeddings:
        """Gather every embedding a batch needs."""
        hist_post, hist_author = self.lookup_items(batch.history_post_hashes, batch.history_author_hashes)
        cand_post, cand_author = self.lookup_items(batch.candidate_post_hashes, batch.candidate_author_hashes)
        return RecsysEmbeddings(
            user=gather_rows(self.user.get_value(), batch.user_hashes),
            history_post=hist_post,
            history_author=hist_author,
            candidate_post=cand_post,
            candidate_author=cand_author,
        )


def _flatten_hashes(*blocks: jax.Array) -> jax.Array:
    """Concat [..., K_i, D] blocks along the hash axis and flatten hash-major -> [..., sum(K_i) * D]."""
    x = jnp.concatenate([b.astype(jnp.float32) for b in blocks], axis=-2)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


class EmbeddingAssembly(nnx.Module):
    """User / history / candidate token builders (spec §5). Projections run in f32, output in ``dtype``.

    ``with_candidates=False`` (retrieval) omits ``candidate_proj``.
    """

    def __init__(
        self,
        emb_size: int,
        num_hashes: tuple[int, int, int],
        num_history_actions: int,
        product_surface_vocab_size: int,
        *,
        with_candidates: bool = True,
        dtype=jnp.bfloat16,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        d = emb_size
        nu, ni, na = num_hashes
        self.dtype = dtype
        self.num_surfaces = product_surface_vocab_size
        self.user_proj = nnx.Param(_fan_in(rngs.params(), (nu * d, d), param_dtype))
        self.history_proj = nnx.Param(_fan_in(rngs.params(), ((ni + na + 2) * d, d), param_dtype))
        self.candidate_proj = (
            nnx.Param(_fan_in(rngs.params(), ((ni + na + 1) * d, d), param_dtype)) if with_candidates else None
        )
        self.action_proj = nnx.Param(_fan_out(rngs.params(), (num_history_actions, d), param_dtype))
        self.surface_table = nnx.Param(_fan_out(rngs.params(), (product_surface_vocab_size, d), param_dtype))

    def action_embedding(self, actions_bsa: jax.Array) -> jax.Array:
        """Signed multi-hot ``(2a - 1) @ W``, zeroed where no action was taken; [B,S,D] compute dtype."""
        actions_bsa = actions_bsa.astype(jnp.float32)
        emb_bsd = linear(2.0 * actions_bsa - 1.0, self.action_proj.get_value(), jnp.float32)
        any_action_bs1 = jnp.any(actions_bsa != 0, axis=-1, keepdims=True)
        return (emb_bsd * any_action_bs1).astype(self.dtype)

    def surface_embedding(self, surface_bs: jax.Array) -> jax.Array:
        """``one_hot(idx, Vs) @ table``: out-of-range indices give zero vectors; compute dtype."""
        one_hot = jax.nn.one_hot(surface_bs, self.num_surfaces, dtype=jnp.float32)
        return linear(one_hot, self.surface_table.get_value(), jnp.float32).astype(self.dtype)

    def user_tokens(self, user_bnd: jax.Array) -> jax.Array:
        """User hash block [B, Nu, D] -> one token [B, 1, D]."""
        return linear(_flatten_hashes(user_bnd), self.user_proj.get_value(), jnp.float32)[:, None, :].astype(self.dtype)

    def history_tokens(
        self, post_bsnd: jax.Array, author_bsnd: jax.Array, actions_bsa: jax.Array, surface_bs: jax.Array
    ) -> jax.Array:
        """Concat [post | author | action | surface] per slot and project -> [B, S, D]."""
        x = _flatten_hashes(
            post_bsnd,
            author_bsnd,
            self.action_embedding(actions_bsa)[..., None, :],
            self.surface_embedding(surface_bs)[..., None, :],
        )
        return linear(x, self.history_proj.get_value(), jnp.float32).astype(self.dtype)

    def candidate_tokens(self, post_bcnd: jax.Array, author_bcnd: jax.Array, surface_bc: jax.Array) -> jax.Array:
        """Concat [post | author | surface] per candidate and project -> [B, C, D]."""
        if self.candidate_proj is None:
            raise ValueError("EmbeddingAssembly was built with with_candidates=False")
        x = _flatten_hashes(post_bcnd, author_bcnd, self.surface_embedding(surface_bc)[..., None, :])
        return linear(x, self.candidate_proj.get_value(), jnp.float32).astype(self.dtype)
