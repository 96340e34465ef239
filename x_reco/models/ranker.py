"""Phoenix ranker: transformer over [user | history | candidates] with candidate isolation (spec §7-8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx, struct

from x_reco.common.actions import ACTIONS
from x_reco.common.types import RankerOutput, RecsysBatch, RecsysEmbeddings, TokenInputs
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.layers.embed import EmbeddingAssembly, HashTables
from x_reco.layers.norm import RMSNorm
from x_reco.models import masks
from x_reco.models.trunk import make_layers, run_candidate_layers, run_layers


@struct.dataclass
class PrefixKV:
    """Per-layer K (post-RoPE) and V of the [user | history] prefix, plus its validity.

    Layout: ``k_lbpkd`` / ``v_lbpkd`` [L, B, P, Hkv, dk] in the compute dtype; ``prefix_valid_bp``
    bool [B, P]. Positions are implicit (0..P-1).
    """

    k_lbpkd: jax.Array
    v_lbpkd: jax.Array
    prefix_valid_bp: jax.Array


class RankerHead(nnx.Module):
    """Bias-free f32 unembedding [D, A] -> per-action logits."""

    def __init__(self, emb_size: int, num_actions: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(1.0, "fan_out", "truncated_normal")
        self.unembed = nnx.Param(init(rngs.params(), (emb_size, num_actions), param_dtype))

    def __call__(self, h_bcd: jax.Array) -> jax.Array:
        return h_bcd.astype(jnp.float32) @ self.unembed[...].astype(jnp.float32)


class PhoenixRanker(nnx.Module):
    """The ranker. ``model(batch)`` gathers from the hash tables; ``forward_embeddings`` skips that.

    Param tree (spec §10): ``tables.{user,post,author}`` (HashTable), ``embed.*``, ``layers[i].*``,
    ``final_norm``, ``head.unembed``.
    """

    def __init__(self, config: PhoenixConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.tables = HashTables(config.vocab_sizes, config.emb_size, init_std=config.table_init_std, rngs=rngs)
        self.embed = EmbeddingAssembly(
            config.emb_size, config.num_hashes, config.num_history_actions, config.product_surface_vocab_size,
            with_candidates=True, dtype=config.dtype, param_dtype=config.param_jnp_dtype, rngs=rngs,
        )  # fmt: skip
        self.layers = make_layers(config, rngs)
        zeros = config.init == "upstream_zeros"
        self.final_norm = RMSNorm(
            config.emb_size, param_dtype=config.param_jnp_dtype,
            scale_init=nnx.initializers.zeros if zeros else nnx.initializers.ones, rngs=rngs,
        )  # fmt: skip
        self.head = RankerHead(config.emb_size, config.num_actions, param_dtype=config.param_jnp_dtype, rngs=rngs)

    # -- entry points --------------------------------------------------------------------------
    def __call__(self, batch: RecsysBatch) -> RankerOutput:
        """Score a hashed batch: logits [B, C, A] f32 and candidate mask [B, C]."""
        return self.forward_embeddings(batch, self.tables.lookup(batch))

    def forward_embeddings(self, batch: RecsysBatch, embeddings: RecsysEmbeddings) -> RankerOutput:
        """Score with precomputed embeddings; ``batch`` supplies validity, actions and surfaces."""
        return self.forward_tokens(self.tokens(batch, embeddings))

    def tokens(self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None) -> TokenInputs:
        """Assemble prefix and candidate tokens (compute dtype) with their validity."""
        emb = self.tables.lookup(batch) if embeddings is None else embeddings
        user = self.embed.user_tokens(emb.user)
        history = self.embed.history_tokens(
            emb.history_post, emb.history_author, batch.history_actions, batch.history_product_surface
        )
        candidates = self.embed.candidate_tokens(
            emb.candidate_post, emb.candidate_author, batch.candidate_product_surface
        )
        prefix_valid = jnp.concatenate([batch.user_valid_b[:, None], batch.history_valid_bs], axis=1)
        return TokenInputs(jnp.concatenate([user, history], axis=1), candidates, prefix_valid, batch.candidate_valid_bc)

    def forward_tokens(self, tokens: TokenInputs) -> RankerOutput:
        """Dense path: one pass over [prefix | candidates] with the candidate-isolation mask."""
        p, c = tokens.prefix_bpd.shape[1], tokens.candidates_bcd.shape[1]
        h_btd = jnp.concatenate([tokens.prefix_bpd, tokens.candidates_bcd], axis=1)
        positions = masks.ranker_positions(tokens.prefix_valid_bp[:, 1:], c, self.config.candidate_position_mode)
        mask = masks.ranker_dense_mask(tokens.prefix_valid_bp, tokens.candidate_valid_bc)
        h_btd, _, _ = run_layers(self.layers, h_btd, positions, mask)
        return RankerOutput(self.logits(h_btd[:, p:]), tokens.candidate_valid_bc)

    # -- prefix reuse (KV cache / chunked scoring) ---------------------------------------------
    def encode_prefix(self, tokens: TokenInputs) -> PrefixKV:
        """Run [user | history] causally and keep every layer's K/V (the candidates never change it)."""
        b, p, _ = tokens.prefix_bpd.shape
        _, k, v = run_layers(
            self.layers, tokens.prefix_bpd, masks.prefix_positions(b, p), masks.prefix_mask(tokens.prefix_valid_bp)
        )
        return PrefixKV(k, v, tokens.prefix_valid_bp)

    def extend_prefix(self, prefix: PrefixKV, new_tokens_bnd: jax.Array, new_valid_bn: jax.Array) -> PrefixKV:
        """Append N prefix tokens at positions P..P+N-1 (causal among themselves, seeing the cache).

        Exact: older tokens' K/V never depend on later ones. Returns the concatenated PrefixKV.
        """
        b, p = prefix.prefix_valid_bp.shape
        positions = masks.prefix_positions(b, new_tokens_bnd.shape[1], start=p)
        mask = masks.append_mask(prefix.prefix_valid_bp, new_valid_bn)
        _, k, v = run_layers(self.layers, new_tokens_bnd, positions, mask, (prefix.k_lbpkd, prefix.v_lbpkd))
        return PrefixKV(
            jnp.concatenate([prefix.k_lbpkd, k.astype(prefix.k_lbpkd.dtype)], axis=2),
            jnp.concatenate([prefix.v_lbpkd, v.astype(prefix.v_lbpkd.dtype)], axis=2),
            jnp.concatenate([prefix.prefix_valid_bp, new_valid_bn], axis=1),
        )

    def score_with_prefix(
        self, prefix: PrefixKV, candidates_bcd: jax.Array, candidate_valid_bc: jax.Array, slot_offset: int = 0
    ) -> RankerOutput:
        """Score candidate tokens against a cached prefix; equals the dense path (any chunk in shared mode).

        Split attention: each candidate attends the prefix keys and its own key only, so the C x C
        candidate block is never formed. ``slot_offset`` is the chunk's first global candidate slot
        (matters only in ``reference`` mode).
        """
        c = candidates_bcd.shape[1]
        positions = masks.candidate_positions(
            prefix.prefix_valid_bp[:, 1:], c, self.config.candidate_position_mode, slot_offset
        )
        h_bcd = run_candidate_layers(self.layers, candidates_bcd, positions, (prefix.k_lbpkd, prefix.v_lbpkd),
                                     prefix.prefix_valid_bp, candidate_valid_bc)  # fmt: skip
        return RankerOutput(self.logits(h_bcd), candidate_valid_bc)

    def logits(self, h_bcd: jax.Array) -> jax.Array:
        """Final norm + unembedding of candidate outputs -> [B, C, A] in ``logits_dtype``."""
        return self.head(self.final_norm(h_bcd)).astype(self.config.logits_dtype)


def weighted_score(
    probs_bca: jax.Array,
    weights: Mapping[str, float],
    action_names: Sequence[str] = ACTIONS,
    candidate_mask_bc: jax.Array | None = None,
) -> jax.Array:
    """``sum_a w_a p_a`` -> [B, C]; weights for actions the head lacks contribute nothing.

    With ``candidate_mask_bc``, padded candidates score -inf so ranking puts them last.
    """
    w_a = jnp.asarray([float(weights.get(name, 0.0)) for name in action_names], dtype=jnp.float32)
    score_bc = jnp.einsum("bca,a->bc", probs_bca.astype(jnp.float32), w_a)
    if candidate_mask_bc is not None:
        score_bc = jnp.where(candidate_mask_bc, score_bc, -jnp.inf)
    return score_bc
