"""Pure-function Phoenix forward over a serving-params pytree: tokens, prefix encode, split candidate pass.

Numerics follow ``x_reco.models`` exactly (same rms_norm, RoPE, soft-cap, -1e30 fill, f32 softmax); the
only difference is that weights may be QWeight / QTable (``quantize.py``). The split candidate pass
never forms the N x N block: per layer each candidate attends the P prefix keys plus its own key
(the diagonal), softmax over P+1 keys in f32, output ``w_p V_p + w_self V_c``.

Static arguments: ``cfg`` (PhoenixConfig) and ``cd`` (compute dtype). Tensor names: b batch, p prefix
positions, n candidates, m appended tokens, h query heads, k kv heads, g = h // k, d key size, l layers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from x_reco.common.types import RecsysBatch, TokenInputs
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.inference.quantize import gather_rows, linear
from x_reco.layers.attention import grouped_attention, split_attention
from x_reco.layers.norm import rms_norm
from x_reco.layers.rope import apply_rope
from x_reco.models import masks

F32 = jnp.float32


# -- embedding assembly (spec §5) ------------------------------------------------------------------
def _flatten(*blocks: jax.Array) -> jax.Array:
    x = jnp.concatenate([b.astype(F32) for b in blocks], axis=-2)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def _surface(embed: dict, surface: jax.Array, cfg: PhoenixConfig, cd) -> jax.Array:
    one_hot = jax.nn.one_hot(surface, cfg.product_surface_vocab_size, dtype=F32)
    return (one_hot @ jnp.asarray(embed["surface_table"]).astype(F32)).astype(cd)


def _actions(embed: dict, actions_bsa: jax.Array, cd) -> jax.Array:
    actions_bsa = actions_bsa.astype(F32)
    emb = (2.0 * actions_bsa - 1.0) @ jnp.asarray(embed["action_proj"]).astype(F32)
    return (emb * jnp.any(actions_bsa != 0, axis=-1, keepdims=True)).astype(cd)


def user_tokens(params: dict, user_hashes: jax.Array, cd) -> jax.Array:
    """[B, Nu] hashes -> one user token [B, 1, D]."""
    x = _flatten(gather_rows(params["tables"]["user"], user_hashes))
    return linear(x, params["embed"]["user_proj"], F32)[:, None, :].astype(cd)


def history_tokens(params, post, author, actions, surface, cfg: PhoenixConfig, cd) -> jax.Array:
    """History hashes [B, S, Ni] / [B, S, Na], actions [B, S, A], surfaces [B, S] -> tokens [B, S, D]."""
    t, e = params["tables"], params["embed"]
    x = _flatten(gather_rows(t["post"], post), gather_rows(t["author"], author),
                 _actions(e, actions, cd)[..., None, :], _surface(e, surface, cfg, cd)[..., None, :])  # fmt: skip
    return linear(x, e["history_proj"], F32).astype(cd)


def candidate_tokens(params, post, author, surface, cfg: PhoenixConfig, cd) -> jax.Array:
    """Candidate hashes [B, C, Ni] / [B, C, Na], surfaces [B, C] -> tokens [B, C, D]."""
    t, e = params["tables"], params["embed"]
    x = _flatten(gather_rows(t["post"], post), gather_rows(t["author"], author),
                 _surface(e, surface, cfg, cd)[..., None, :])  # fmt: skip
    return linear(x, e["candidate_proj"], F32).astype(cd)


def prefix_tokens(params: dict, batch: RecsysBatch, cfg: PhoenixConfig, cd) -> tuple[jax.Array, jax.Array]:
    """[user | history] tokens [B, P, D] and their validity [B, P]."""
    history = history_tokens(params, batch.history_post_hashes, batch.history_author_hashes,
                             batch.history_actions, batch.history_product_surface, cfg, cd)  # fmt: skip
    prefix = jnp.concatenate([user_tokens(params, batch.user_hashes, cd), history], axis=1)
    return prefix, jnp.concatenate([batch.user_valid_b[:, None], batch.history_valid_bs], axis=1)


def tokens(params: dict, batch: RecsysBatch, cfg: PhoenixConfig, cd) -> TokenInputs:
    """All trunk inputs of a hashed batch (same as ``PhoenixRanker.tokens``)."""
    prefix, valid = prefix_tokens(params, batch, cfg, cd)
    cands = candidate_tokens(params, batch.candidate_post_hashes, batch.candidate_author_hashes,
                             batch.candidate_product_surface, cfg, cd)  # fmt: skip
    return TokenInputs(prefix, cands, valid, batch.candidate_valid_bc)


# -- one layer, split into attention-agnostic pieces -----------------------------------------------
def qkv(lp: dict, h: jax.Array, positions: jax.Array, cfg: PhoenixConfig, cd):
    """Pre-norm + projections + RoPE: Q [B,T,H,d], K [B,T,K,d] (post-RoPE), V [B,T,K,d] in ``cd``."""
    b, t, _ = h.shape
    x = rms_norm(h, lp["norm_pre_attn"]).astype(cd)
    a = lp["attn"]
    q = linear(x, a["wq"], cd).reshape(b, t, cfg.num_q_heads, cfg.key_size)
    k = linear(x, a["wk"], cd).reshape(b, t, cfg.num_kv_heads, cfg.key_size)
    v = linear(x, a["wv"], cd).reshape(b, t, cfg.num_kv_heads, cfg.key_size)
    return apply_rope(q, positions), apply_rope(k, positions), v


def finish_layer(lp: dict, h: jax.Array, o_bthd: jax.Array, cd) -> jax.Array:
    """Output projection, post-attn norm, residual, then the FFN half of the sandwich block."""
    b, t, hq, d = o_bthd.shape
    attn_out = linear(o_bthd.reshape(b, t, hq * d), lp["attn"]["wo"], cd)
    h = h + rms_norm(attn_out, lp["norm_post_attn"]).astype(h.dtype)
    x = rms_norm(h, lp["norm_pre_ffn"]).astype(cd)
    f = lp["ffn"]
    gate = jax.nn.gelu(linear(x, f["w_gate"], cd), approximate=True)
    ffn = linear(gate * linear(x, f["w_up"], cd), f["w_down"], cd)
    return h + rms_norm(ffn, lp["norm_post_ffn"]).astype(h.dtype)


def head_logits(params: dict, h_bnd: jax.Array, cfg: PhoenixConfig) -> jax.Array:
    """Final norm + f32 unembedding -> [B, N, A] logits."""
    x = rms_norm(h_bnd, params["final_norm"]).astype(F32)
    return linear(x, params["head"]["unembed"], F32).astype(cfg.logits_dtype)


# -- prefix -----------------------------------------------------------------------------------------
def encode_prefix(params, prefix_bpd, prefix_valid_bp, cfg: PhoenixConfig, cd):
    """Causal [user | history] pass: (h [B,P,D], K [L,B,P,K,d] post-RoPE, V [L,B,P,K,d])."""
    b, p, _ = prefix_bpd.shape
    positions, mask = masks.prefix_positions(b, p), masks.prefix_mask(prefix_valid_bp)
    h, ks, vs = prefix_bpd, [], []
    for lp in params["layers"]:
        q, k, v = qkv(lp, h, positions, cfg, cd)
        h = finish_layer(lp, h, grouped_attention(q, k, v, mask, cfg.attn_output_multiplier), cd)
        ks.append(k)
        vs.append(v)
    return h, jnp.stack(ks), jnp.stack(vs)


def prefix_valid(lengths_b: jax.Array, user_valid_b: jax.Array, prefix_len: int) -> jax.Array:
    """Validity [B, P] of a cached prefix from its history length L and user-valid flag."""
    pos = jnp.arange(prefix_len)[None, :]
    return ((pos == 0) & user_valid_b[:, None]) | ((pos >= 1) & (pos <= lengths_b[:, None]))


def extend_prefix(params, k_lbpkd, v_lbpkd, lengths_b, user_valid_b, new_bmd, new_valid_bm, cfg, cd):
    """Write M appended history tokens at positions 1+L_b..; they see the cached keys and each other causally.

    ``k_lbpkd`` / ``v_lbpkd`` [L, B, P, K, d] hold a prefix whose first 1+L_b positions are valid;
    ``new_valid_bm`` marks real new events (a prefix of the M slots). Exact: older K/V never depend on
    later tokens. Returns the updated (K, V); invalid new slots write nothing.
    """
    b, m, _ = new_bmd.shape
    p = k_lbpkd.shape[2]
    slots_bm = 1 + lengths_b[:, None] + jnp.arange(m, dtype=jnp.int32)[None, :]
    mask = masks.append_mask(prefix_valid(lengths_b, user_valid_b, p), new_valid_bm)
    h, ks, vs = new_bmd, [], []
    for i, lp in enumerate(params["layers"]):
        q, k, v = qkv(lp, h, slots_bm, cfg, cd)
        keys = jnp.concatenate([k_lbpkd[i].astype(k.dtype), k], axis=1)
        values = jnp.concatenate([v_lbpkd[i].astype(v.dtype), v], axis=1)
        h = finish_layer(lp, h, grouped_attention(q, keys, values, mask, cfg.attn_output_multiplier), cd)
        ks.append(k)
        vs.append(v)
    rows = jnp.broadcast_to(jnp.arange(b)[:, None], (b, m))
    target = jnp.where(new_valid_bm, slots_bm, p)  # p is out of range: dropped
    k_new, v_new = jnp.stack(ks).astype(k_lbpkd.dtype), jnp.stack(vs).astype(v_lbpkd.dtype)
    return (k_lbpkd.at[:, rows, target].set(k_new, mode="drop"),
            v_lbpkd.at[:, rows, target].set(v_new, mode="drop"))  # fmt: skip


# -- candidates -------------------------------------------------------------------------------------
def candidate_positions(prefix_valid_bp, n: int, cfg: PhoenixConfig, slot_offset=0) -> jax.Array:
    """RoPE positions [B, N]: shared 1 + L_b; reference 1 + S + slot_offset + i (offset may be traced)."""
    history_valid = prefix_valid_bp[:, 1:]
    b, s = history_valid.shape
    if cfg.candidate_position_mode == "shared":
        length = jnp.sum(history_valid, axis=1, dtype=jnp.int32)
        return jnp.broadcast_to((1 + length)[:, None], (b, n))
    return jnp.broadcast_to(1 + s + slot_offset + jnp.arange(n, dtype=jnp.int32)[None, :], (b, n))


def candidate_pass(params, k_lbpkd, v_lbpkd, prefix_valid_bp, cand_bnd, cand_valid_bn, positions_bn, cfg, cd):
    """Split candidate pass against a prefix K/V: logits [B, N, A]."""
    h = cand_bnd
    for i, lp in enumerate(params["layers"]):
        q, k, v = qkv(lp, h, positions_bn, cfg, cd)
        kp, vp = k_lbpkd[i].astype(cd), v_lbpkd[i].astype(cd)
        o = split_attention(q, k, v, kp, vp, prefix_valid_bp, cand_valid_bn, cfg.attn_output_multiplier)
        h = finish_layer(lp, h, o, cd)
    return head_logits(params, h, cfg)


def chunked_candidate_pass(params, k, v, prefix_valid_bp, cand_bnd, cand_valid_bn, cfg, cd, chunk: int):
    """``candidate_pass`` over static chunks of ``chunk`` candidates (``lax.map``); exact in shared mode."""
    b, n, d = cand_bnd.shape
    nc = -(-n // chunk)
    pad = nc * chunk - n
    positions = candidate_positions(prefix_valid_bp, nc * chunk, cfg)
    x = jnp.pad(cand_bnd, ((0, 0), (0, pad), (0, 0))).reshape(b, nc, chunk, d).swapaxes(0, 1)
    valid = jnp.pad(cand_valid_bn, ((0, 0), (0, pad))).reshape(b, nc, chunk).swapaxes(0, 1)
    pos = positions.reshape(b, nc, chunk).swapaxes(0, 1)

    def one(args):
        xc, vc, pc = args
        return candidate_pass(params, k, v, prefix_valid_bp, xc, vc, pc, cfg, cd)

    logits = jax.lax.map(one, (x, valid, pos))  # [nc, B, chunk, A]
    return logits.swapaxes(0, 1).reshape(b, nc * chunk, -1)[:, :n]


def split_forward(params, toks: TokenInputs, cfg: PhoenixConfig, cd, chunk: int | None = None) -> jax.Array:
    """Prefix encode + split candidate pass (optionally chunked) in one function: logits [B, N, A]."""
    _, k, v = encode_prefix(params, toks.prefix_bpd, toks.prefix_valid_bp, cfg, cd)
    n = toks.candidates_bcd.shape[1]
    if chunk is not None and chunk < n:
        return chunked_candidate_pass(params, k, v, toks.prefix_valid_bp, toks.candidates_bcd,
                                      toks.candidate_valid_bc, cfg, cd, chunk)  # fmt: skip
    positions = candidate_positions(toks.prefix_valid_bp, n, cfg)
    return candidate_pass(params, k, v, toks.prefix_valid_bp, toks.candidates_bcd, toks.candidate_valid_bc,
                          positions, cfg, cd)  # fmt: skip


def dense_forward(params, toks: TokenInputs, cfg: PhoenixConfig, cd) -> jax.Array:
    """Dense path: one pass over [prefix | candidates] with the (P+N)^2 candidate-isolation mask."""
    p, n = toks.prefix_bpd.shape[1], toks.candidates_bcd.shape[1]
    h = jnp.concatenate([toks.prefix_bpd, toks.candidates_bcd], axis=1)
    positions = masks.ranker_positions(toks.prefix_valid_bp[:, 1:], n, cfg.candidate_position_mode)
    mask = masks.ranker_dense_mask(toks.prefix_valid_bp, toks.candidate_valid_bc)
    for lp in params["layers"]:
        q, k, v = qkv(lp, h, positions, cfg, cd)
        h = finish_layer(lp, h, grouped_attention(q, k, v, mask, cfg.attn_output_multiplier), cd)
    return head_logits(params, h[:, p:], cfg)
