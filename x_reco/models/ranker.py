"""Phoenix ranker: transformer over [user | history | candidates] with candidate isolation (spec §7-8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from x_reco.common.actions import ACTIONS
from x_reco.common.types import RankerOutput, RecsysBatch, RecsysEmbeddings, TokenInputs
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.layers.embed import EmbeddingAssembly, HashTables
from x_reco.layers.norm import RMSNorm
from x_reco.layers.quant import gather_rows, linear
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
        return linear(h_bcd, self.unembed.get_value(), jnp.float32)


class PhoenixRanker(nnx.Module):
    """The ranker. ``model(batch)`` gathers from the hash tables; ``forward_embeddings`` skips that.

    Param tree (spec §10): ``tables.{user,post,author}`` (HashTable), ``embed.*``, ``layers[i].*``,
    ``final_norm``, ``head.unembed``.
    """

    def __init__(self, config: PhoenixConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.tables = HashTables(config.vocab_sizes, config.emb_size, init_std=config.table_init_std, rngs=rngs)
        self.embed = EmbeddingAssembly(
            config.emb_size,
            config.num_hashes,
            config.num_history_actions,
            config.product_surface_vocab_size,
            with_candidates=True,
            dtype=config.dtype,
            param_dtype=config.param_jnp_dtype,
            rngs=rngs,
        )
        self.layers = make_layers(config, rngs)
        zeros = config.init == "upstream_zeros"
        self.final_norm = RMSNorm(
            config.emb_size,
            param_dtype=config.param_jnp_dtype,
            scale_init=nnx.initializers.zeros if zeros else nnx.initializers.ones,
            rngs=rngs,
        )
        self.head = RankerHead(config.emb_size, config.num_actions, param_dtype=config.param_jnp_dtype, rngs=rngs)

    # -- entry points --------------------------------------------------------------------------
    def __call__(self, batch: RecsysBatch) -> RankerOutput:
        """Score a hashed batch: logits [B, C, A] f32 and candidate mask [B, C]."""
        return self.forward_embeddings(batch, self.tables.lookup(batch))

    def forward_embeddings(self, batch: RecsysBatch, embeddings: RecsysEmbeddings) -> RankerOutput:
        """Score with precomputed embeddings; ``batch`` supplies validity, actions and surfaces."""
        return self.forward_tokens(self.tokens(batch, embeddings))

    def history_tokens(
        self, post_bsn: jax.Array, author_bsn: jax.Array, actions_bsa: jax.Array, surface_bs: jax.Array
    ) -> jax.Array:
        """History slots from raw hashes [B, S, Ni] / [B, S, Na], actions [B, S, A] and surfaces [B, S] -> [B, S, D]."""
        post, author = self.tables.lookup_items(post_bsn, author_bsn)
        return self.embed.history_tokens(post, author, actions_bsa, surface_bs)

    def prefix_tokens(
        self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """[user | history] tokens [B, P, D] (compute dtype) and their validity [B, P]."""
        if embeddings is None:
            user = gather_rows(self.tables.user.get_value(), batch.user_hashes)
            history = self.history_tokens(
                batch.history_post_hashes,
                batch.history_author_hashes,
                batch.history_actions,
                batch.history_product_surface,
            )
        else:
            user = embeddings.user
            history = self.embed.history_tokens(
                embeddings.history_post, embeddings.history_author, batch.history_actions, batch.history_product_surface
            )
        prefix_bpd = jnp.concatenate([self.embed.user_tokens(user), history], axis=1)
        return prefix_bpd, jnp.concatenate([batch.user_valid_b[:, None], batch.history_valid_bs], axis=1)

    def candidate_tokens(self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None) -> jax.Array:
        """Candidate tokens [B, C, D] in the compute dtype."""
        if embeddings is None:
            post, author = self.tables.lookup_items(batch.candidate_post_hashes, batch.candidate_author_hashes)
        else:
            post, author = embeddings.candidate_post, embeddings.candidate_author
        return self.embed.candidate_tokens(post, author, batch.candidate_product_surface)

    def tokens(self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None) -> TokenInputs:
        """Assemble prefix and candidate tokens (compute dtype) with their validity."""
        prefix_bpd, prefix_valid_bp = self.prefix_tokens(batch, embeddings)
        return TokenInputs(
            prefix_bpd, self.candidate_tokens(batch, embeddings), prefix_valid_bp, batch.candidate_valid_bc
        )

    def forward_tokens(self, tokens: TokenInputs) -> RankerOutput:
        """Dense path: one pass over [prefix | candidates] with the candidate-isolation mask."""
        p, c = tokens.prefix_bpd.shape[1], tokens.candidates_bcd.shape[1]
        h_btd = jnp.concatenate([tokens.prefix_bpd, tokens.candidates_bcd], axis=1)
        positions = masks.ranker_positions(tokens.prefix_valid_bp[:, 1:], c, self.config.candidate_position_mode)
        mask = masks.ranker_dense_mask(tokens.prefix_valid_bp, tokens.candidate_valid_bc)
        h_btd, _, _ = run_layers(self.layers, h_btd, positions, mask)
        return RankerOutput(self.logits(h_btd[:, p:]), tokens.candidate_valid_bc)

    # -- split path: prefix K/V once, candidates over it (serving, KV cache, chunked scoring) -----
    def score_split(self, batch: RecsysBatch, chunk: int | None = None) -> RankerOutput:
        """Equals ``model(batch)``: encode [user | history] once, then every candidate over its K/V.

        The C x C candidate block is never formed; with ``chunk`` the candidates run in static chunks
        of that many (``lax.map``), so activations stay O(chunk).
        """
        prefix = self.encode_prefix(*self.prefix_tokens(batch))
        return self.score_with_prefix(prefix, self.candidate_tokens(batch), batch.candidate_valid_bc, chunk=chunk)

    def encode_prefix(self, prefix_bpd: jax.Array, prefix_valid_bp: jax.Array) -> PrefixKV:
        """Run [user | history] causally and keep every layer's K/V (the candidates never change it)."""
        b, p, _ = prefix_bpd.shape
        _, k, v = run_layers(self.layers, prefix_bpd, masks.prefix_positions(b, p), masks.prefix_mask(prefix_valid_bp))
        return PrefixKV(k, v, prefix_valid_bp)

    def append_prefix(self, prefix: PrefixKV, new_tokens_bmd: jax.Array, new_valid_bm: jax.Array) -> PrefixKV:
        """Write M new history tokens into the padding after each row's valid history (capacity P fixed).

        ``prefix`` holds [user | L_b valid history slots | padding] per row. New token j of row b goes to
        position 1 + L_b + j, sees every valid cached key and the earlier new tokens (causal), and is
        written only where ``new_valid_bm`` (a prefix of the M slots) and it fits. Exact: older K/V never
        depend on later tokens, so this equals encoding the longer history from scratch.
        """
        (b, p), m = prefix.prefix_valid_bp.shape, new_tokens_bmd.shape[1]
        lengths_b = jnp.sum(prefix.prefix_valid_bp[:, 1:], axis=1, dtype=jnp.int32)
        slots_bm = 1 + lengths_b[:, None] + jnp.arange(m, dtype=jnp.int32)[None, :]
        mask = masks.append_mask(prefix.prefix_valid_bp, new_valid_bm)
        _, k, v = run_layers(self.layers, new_tokens_bmd, slots_bm, mask, (prefix.k_lbpkd, prefix.v_lbpkd))
        rows_bm = jnp.broadcast_to(jnp.arange(b)[:, None], (b, m))
        target_bm = jnp.where(new_valid_bm, slots_bm, p)  # p is out of range: dropped
        return PrefixKV(
            prefix.k_lbpkd.at[:, rows_bm, target_bm].set(k.astype(prefix.k_lbpkd.dtype), mode="drop"),
            prefix.v_lbpkd.at[:, rows_bm, target_bm].set(v.astype(prefix.v_lbpkd.dtype), mode="drop"),
            prefix.prefix_valid_bp.at[rows_bm, target_bm].set(True, mode="drop"),
        )

    def score_with_prefix(
        self,
        prefix: PrefixKV,
        candidates_bcd: jax.Array,
        candidate_valid_bc: jax.Array,
        slot_offset: int | jax.Array = 0,
        chunk: int | None = None,
    ) -> RankerOutput:
        """Score candidate tokens against a prefix's K/V; equals the dense path (any chunk in shared mode).

        Split attention: each candidate attends the prefix keys and its own key only, so the C x C
        candidate block is never formed. ``slot_offset`` is the first global candidate slot of these
        candidates (matters only in ``reference`` mode). ``chunk`` runs static chunks via ``lax.map``.
        """
        b, c, d = candidates_bcd.shape
        history_valid_bs = prefix.prefix_valid_bp[:, 1:]
        mode = self.config.candidate_position_mode
        if chunk is None or chunk >= c:
            positions_bc = masks.candidate_positions(history_valid_bs, c, mode, slot_offset)
            return RankerOutput(
                self._candidate_logits(prefix, candidates_bcd, positions_bc, candidate_valid_bc), candidate_valid_bc
            )
        nc = -(-c // chunk)

        def chunks(x):  # [B, C or nc*chunk, ...] -> [nc, B, chunk, ...], padding with zeros / False
            x = jnp.pad(x, [(0, 0), (0, nc * chunk - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
            return x.reshape(b, nc, chunk, *x.shape[2:]).swapaxes(0, 1)

        positions = masks.candidate_positions(history_valid_bs, nc * chunk, mode, slot_offset)
        xs = (chunks(candidates_bcd), chunks(positions), chunks(candidate_valid_bc))
        logits = jax.lax.map(lambda x: self._candidate_logits(prefix, x[0], x[1], x[2]), xs)  # [nc, B, chunk, A]
        return RankerOutput(logits.swapaxes(0, 1).reshape(b, nc * chunk, -1)[:, :c], candidate_valid_bc)

    def _candidate_logits(self, prefix: PrefixKV, h_bcd, positions_bc, valid_bc) -> jax.Array:
        kv = (prefix.k_lbpkd, prefix.v_lbpkd)
        h_bcd = run_candidate_layers(self.layers, h_bcd, positions_bc, kv, prefix.prefix_valid_bp, valid_bc)
        return self.logits(h_bcd)

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


def standardized(x: np.ndarray) -> np.ndarray:
    """Per-row z-score over the last axis, in float64, over the row's finite entries; a non-finite
    entry (an ineligible or unknown candidate) takes the row's lowest finite value first, and a row
    without spread is all zeros."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    low = np.min(np.where(finite, x, np.inf), axis=-1, keepdims=True)
    x = np.where(finite, x, np.where(np.isfinite(low), low, 0.0))
    sd = x.std(axis=-1, keepdims=True)
    return np.where(sd > 0, (x - x.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, 1.0), 0.0)


def two_stage_score(ranker_score: np.ndarray, retrieval_score: np.ndarray, retrieval_weight: float) -> np.ndarray:
    """The score a retrieve-then-rank request orders its candidates by (last axis = one request's
    candidates): ``(1 - b) z(ranker) + b z(retrieval)`` with per-request z-scores (``standardized``)
    of the ranker's weighted score and the retriever's ``u·v``, ``b = retrieval_weight`` in [0, 1]
    (the val split's best of ``eval.ranker.RETRIEVAL_WEIGHT_GRID``). ``b = 0`` returns the ranker's score
    itself (float64), ``b = 1`` the retriever's order (validation stops at 0.9: the ranker always re-ranks)."""
    if not 0.0 <= retrieval_weight <= 1.0:
        raise ValueError(f"retrieval_weight={retrieval_weight!r} must be in [0, 1]")
    if retrieval_weight == 0:
        return np.asarray(ranker_score, np.float64).copy()
    b = float(retrieval_weight)
    return (1.0 - b) * standardized(ranker_score) + b * standardized(retrieval_score)
