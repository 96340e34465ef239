"""Phoenix two-tower retriever: causal user tower with masked mean pool, MLP candidate tower (spec §9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from x_reco.common.types import RecsysBatch, RecsysEmbeddings, RetrievalOutput
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.layers.embed import EmbeddingAssembly, HashTables
from x_reco.layers.quant import linear
from x_reco.models import masks
from x_reco.models.trunk import Dropouts, make_layers, run_layers, token_dropout

L2_FLOOR = 1e-12
MASKED_SCORE = -1e12


def l2_normalize(x: jax.Array) -> jax.Array:
    """``x / sqrt(max(|x|^2, 1e-12))`` over the last axis in f32 (zero vectors stay zero)."""
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), L2_FLOOR))


def top_k(user_rep_bd: jax.Array, corpus_nd: jax.Array, corpus_mask_n: jax.Array, k: int) -> RetrievalOutput:
    """Exact top-k of ``u @ corpus.T`` (corpus assumed unit-norm); masked items score -1e12. ``k`` static."""
    scores_bn = user_rep_bd.astype(jnp.float32) @ corpus_nd.astype(jnp.float32).T
    scores_bn = jnp.where(corpus_mask_n[None, :], scores_bn, MASKED_SCORE)
    scores_bk, indices_bk = jax.lax.top_k(scores_bn, k)
    return RetrievalOutput(user_rep_bd, indices_bk.astype(jnp.int32), scores_bk)


class CandidateTower(nnx.Module):
    """f32 MLP over concatenated post+author hash embeddings: W1 -> SiLU -> W2 -> L2."""

    def __init__(self, emb_size: int, num_item_hashes: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
        d = emb_size
        init = nnx.initializers.variance_scaling(1.0, "fan_out", "truncated_normal")  # 1/(2D), then 1/D
        self.w1 = nnx.Param(init(rngs.params(), (num_item_hashes * d, 2 * d), param_dtype))
        self.w2 = nnx.Param(init(rngs.params(), (2 * d, d), param_dtype))

    def __call__(self, post_xnd: jax.Array, author_xnd: jax.Array | None = None) -> jax.Array:
        """Post [..., Ni, D] and author [..., Na, D] -> unit vectors [..., D] (zero for padded items).

        With ``author_xnd=None``, ``post_xnd`` is the already concatenated [..., Ni+Na, D] block.
        """
        blocks = [post_xnd] if author_xnd is None else [post_xnd, author_xnd]
        x = jnp.concatenate(blocks, axis=-2).astype(jnp.float32)
        x = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
        h = jax.nn.silu(linear(x, self.w1.get_value(), jnp.float32))
        return l2_normalize(linear(h, self.w2.get_value(), jnp.float32))


class PhoenixRetriever(nnx.Module):
    """Two-tower retriever. Param tree: ``tables``, ``embed`` (no candidate_proj), ``layers``, ``cand_tower``."""

    def __init__(self, config: PhoenixConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.tables = HashTables(config.vocab_sizes, config.emb_size, init_std=config.table_init_std, rngs=rngs)
        self.embed = EmbeddingAssembly(
            config.emb_size,
            config.num_hashes,
            config.num_history_actions,
            config.product_surface_vocab_size,
            with_candidates=False,
            dtype=config.dtype,
            param_dtype=config.param_jnp_dtype,
            rngs=rngs,
        )
        self.layers = make_layers(config, rngs)
        item_hashes = config.num_post_hashes + config.num_author_hashes
        self.cand_tower = CandidateTower(config.emb_size, item_hashes, param_dtype=config.param_jnp_dtype, rngs=rngs)
        if config.repeat_logit:
            self.repeat_logit = nnx.Param(jnp.zeros((), jnp.float32))

    # -- user tower ----------------------------------------------------------------------------
    def user_sequence(
        self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None, dropout: Dropouts | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Trunk outputs over [user | history] (causal, no final norm): ([B, P, D] f32, valid bool [B, P]).

        ``dropout`` (training only) drops input token features and each layer's residual branches
        (``trunk.token_dropout``).
        """
        emb = self.tables.lookup(batch) if embeddings is None else embeddings
        user = self.embed.user_tokens(emb.user)
        history = self.embed.history_tokens(
            emb.history_post, emb.history_author, batch.history_actions, batch.history_product_surface
        )
        h_bpd = jnp.concatenate([user, history], axis=1)
        if dropout is not None and dropout.tokens:
            h_bpd = token_dropout(h_bpd, dropout.seed_b, dropout.tokens)
        valid_bp = jnp.concatenate([batch.user_valid_b[:, None], batch.history_valid_bs], axis=1)
        b, p, _ = h_bpd.shape
        positions, mask = masks.prefix_positions(b, p), masks.prefix_mask(valid_bp)
        h_bpd, _, _ = run_layers(self.layers, h_bpd, positions, mask, dropout=dropout)
        return h_bpd.astype(jnp.float32), valid_bp

    def encode_user(self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None) -> jax.Array:
        """Unit user vectors [B, D] f32 (zero if nothing is valid).

        ``config.user_pool="mean"``: masked mean over valid positions, then L2 (spec §9); ``"last"``: the
        last valid position's output, then L2 (as SASRec reads its user state).
        """
        return self.pool_user(*self.user_sequence(batch, embeddings))

    def pool_user(self, h_bpd: jax.Array, valid_bp: jax.Array) -> jax.Array:
        """``encode_user`` from the user tower's outputs (``user_sequence``)."""
        m_bp1 = valid_bp[..., None].astype(jnp.float32)
        if self.config.user_pool == "last":
            last_b = jnp.max(jnp.where(valid_bp, jnp.arange(valid_bp.shape[1])[None, :], 0), axis=1)
            pooled_bd = jnp.take_along_axis(h_bpd * m_bp1, last_b[:, None, None], axis=1)[:, 0]
        else:
            pooled_bd = jnp.sum(h_bpd * m_bp1, axis=1) / jnp.maximum(jnp.sum(m_bp1, axis=1), 1.0)
        return l2_normalize(pooled_bd)

    def prefix_users(
        self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None, dropout: Dropouts | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Unit user vectors at every position of [user | history]: ([B, P, D] f32, valid bool [B, P]).

        Position p pools the valid positions <= p (``user_pool``), so (the trunk being causal) it is
        ``encode_user`` of the same request cut after p; at the last valid position it is
        ``encode_user``. The causal retrieval objective trains position p to predict the next item.
        """
        h_bpd, valid_bp = self.user_sequence(batch, embeddings, dropout)
        m_bp1 = valid_bp[..., None].astype(jnp.float32)
        if self.config.user_pool == "last":
            return l2_normalize(h_bpd * m_bp1), valid_bp
        pooled_bpd = jnp.cumsum(h_bpd * m_bp1, axis=1) / jnp.maximum(jnp.cumsum(m_bp1, axis=1), 1.0)
        return l2_normalize(pooled_bpd), valid_bp

    def history_repeats(self, batch: RecsysBatch, item_post_hashes_nk: jax.Array, prefix: bool = False):
        """The learned repeat term (``config.repeat_logit``; None without it) of every catalogue item, in
        the units of ``u·v``: ``r`` where the item (its post hashes) is in the request's history, else 0.

        [B, N] for the whole history (the term of ``encode_user``'s scores), or with ``prefix``
        [B, 1+S, N] for the user vector at each position of [user | history] (``prefix_users``):
        position p has seen history slots < p, so the item it predicts (slot p) is not marked by it.
        A model whose training targets never repeat a history item learns r < 0: it stops spending its
        top ranks on what the user just engaged with, from its own input, not from an evaluator's mask.
        """
        if not self.config.repeat_logit:
            return None
        hist_bsk, items_nk = batch.history_post_hashes, jnp.asarray(item_post_hashes_nk)
        same_bsn = jnp.all(hist_bsk[:, :, None, :] == items_nk[None, None, :, :], axis=-1)
        same_bsn &= batch.history_valid_bs[:, :, None]
        r = self.repeat_logit.get_value()
        if not prefix:
            return r * jnp.any(same_bsn, axis=1).astype(jnp.float32)
        seen_bsn = jnp.cumsum(same_bsn.astype(jnp.int32), axis=1) > 0  # slots <= s
        seen_bpn = jnp.concatenate([jnp.zeros_like(seen_bsn[:, :1]), seen_bsn], axis=1)  # position p: slots < p
        return r * seen_bpn.astype(jnp.float32)

    # -- candidate tower -----------------------------------------------------------------------
    def encode_candidates(self, batch: RecsysBatch, embeddings: RecsysEmbeddings | None = None) -> jax.Array:
        """Unit candidate vectors [B, C, D] f32 (zero for padded candidates)."""
        if embeddings is None:
            post, author = self.tables.lookup_items(batch.candidate_post_hashes, batch.candidate_author_hashes)
        else:
            post, author = embeddings.candidate_post, embeddings.candidate_author
        return self.cand_tower(post, author)

    def encode_items(self, post_hashes_nk: jax.Array, author_hashes_nk: jax.Array) -> jax.Array:
        """Corpus building: flat item hashes [N, Ni], [N, Na] -> unit vectors [N, D]."""
        return self.cand_tower(*self.tables.lookup_items(post_hashes_nk, author_hashes_nk))

    def __call__(self, batch: RecsysBatch, corpus_nd: jax.Array, corpus_mask_n: jax.Array, k: int) -> RetrievalOutput:
        """User vectors and exact top-``k`` over a prebuilt unit-norm corpus [N, D]."""
        return top_k(self.encode_user(batch), corpus_nd, corpus_mask_n, k)
