"""The Flax forward equals an independent float64 NumPy implementation of the spec (§5-9).

Written from the spec text, not from the library: explicit per-head loops, an element-wise mask
built from its definition, rotate-half RoPE, tanh-GELU by formula. Fixed weights (seed 0 tiny
ranker, seed 1 tiny retrieval), f32 compute under "highest" matmul precision. Tolerance: max abs
error 1e-4 on logits (|logits| ~ 3) and 1e-5 on the unit user vector; observed errors are ~1e-6.
"""

import numpy as np
import pytest

from tests.models.helpers import batch, logits, ranker, retrieval, user_rep

LOGIT_ATOL = 1e-4
USER_ATOL = 1e-5


def arr(variable):
    return np.asarray(variable[...], np.float64)


def rms(x, scale):
    return scale * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)


def rope(x, pos):  # x [B, T, H, d], pos [B, T]
    d = x.shape[-1]
    inv = 10000.0 ** (-np.arange(0, d, 2) / d)
    ph = pos[..., None] * inv
    ph = np.concatenate([ph, ph], -1)[:, :, None, :]
    rot = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], -1)
    return x * np.cos(ph) + rot * np.sin(ph)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def attention(layer, x, pos, mask, hq, hkv, dk, mult):  # mask [B, T, T] bool
    a = layer.attn
    b, t, _ = x.shape
    q = rope((x @ arr(a.wq)).reshape(b, t, hq, dk), pos)
    k = rope((x @ arr(a.wk)).reshape(b, t, hkv, dk), pos)
    v = (x @ arr(a.wv)).reshape(b, t, hkv, dk)
    out = np.zeros((b, t, hq, dk))
    for h in range(hq):
        g = h // (hq // hkv)
        logit = np.einsum("btd,bsd->bts", q[:, :, h], k[:, :, g]) * mult
        logit = np.where(mask, 30 * np.tanh(logit / 30), -1e30)
        w = np.exp(logit - logit.max(-1, keepdims=True))
        out[:, :, h] = np.einsum("bts,bsd->btd", w / w.sum(-1, keepdims=True), v[:, :, g])
    return out.reshape(b, t, hq * dk) @ arr(a.wo)


def trunk(model, x, pos, mask):
    c = model.config
    for layer in model.layers:
        a = attention(
            layer,
            rms(x, arr(layer.norm_pre_attn.scale)),
            pos,
            mask,
            c.num_q_heads,
            c.num_kv_heads,
            c.key_size,
            c.attn_output_multiplier,
        )
        x = x + rms(a, arr(layer.norm_post_attn.scale))
        f = layer.ffn
        h = rms(x, arr(layer.norm_pre_ffn.scale))
        x = x + rms((gelu_tanh(h @ arr(f.w_gate)) * (h @ arr(f.w_up))) @ arr(f.w_down), arr(layer.norm_post_ffn.scale))
    return x


def lookup(table, hashes):
    return arr(table)[hashes] * (hashes != 0)[..., None]


def prefix_tokens(model, b):
    e, tab = model.embed, model.tables
    bsz, s = b.history_post_hashes.shape[:2]
    user = lookup(tab.user, b.user_hashes).reshape(bsz, 1, -1) @ arr(e.user_proj)
    acts = np.asarray(b.history_actions, np.float64)
    act = ((2 * acts - 1) @ arr(e.action_proj)) * acts.any(-1, keepdims=True)
    surf = arr(e.surface_table)[b.history_product_surface]
    hist = np.concatenate(
        [
            lookup(tab.post, b.history_post_hashes).reshape(bsz, s, -1),
            lookup(tab.author, b.history_author_hashes).reshape(bsz, s, -1),
            act,
            surf,
        ],
        -1,
    )
    valid = np.concatenate([b.user_hashes[:, :1] != 0, b.history_post_hashes[:, :, 0] != 0], 1)
    return np.concatenate([user, hist @ arr(e.history_proj)], 1), valid


def numpy_ranker_logits(model, b):
    b = type(b)(**{k: np.asarray(v) for k, v in vars(b).items()})
    prefix, pvalid = prefix_tokens(model, b)
    e, tab = model.embed, model.tables
    bsz, c = b.candidate_post_hashes.shape[:2]
    cand = np.concatenate(
        [
            lookup(tab.post, b.candidate_post_hashes).reshape(bsz, c, -1),
            lookup(tab.author, b.candidate_author_hashes).reshape(bsz, c, -1),
            arr(e.surface_table)[b.candidate_product_surface],
        ],
        -1,
    ) @ arr(e.candidate_proj)
    x = np.concatenate([prefix, cand], 1)
    valid = np.concatenate([pvalid, b.candidate_post_hashes[:, :, 0] != 0], 1)
    o, t = prefix.shape[1], x.shape[1]
    mask = np.zeros((bsz, t, t), bool)
    for qi in range(t):
        for ki in range(t):
            allowed = ki <= qi if qi < o else (ki < o or ki == qi)
            mask[:, qi, ki] = allowed & valid[:, ki]
    length = pvalid[:, 1:].sum(1)
    if model.config.candidate_position_mode == "shared":
        cpos = np.repeat((1 + length)[:, None], c, 1)
    else:
        cpos = np.repeat((o + np.arange(c))[None], bsz, 0)
    pos = np.concatenate([np.repeat(np.arange(o)[None], bsz, 0), cpos], 1).astype(np.float64)
    h = trunk(model, x, pos, mask)
    return rms(h[:, o:], arr(model.final_norm.scale)) @ arr(model.head.unembed)


def numpy_user_vector(model, b):
    b = type(b)(**{k: np.asarray(v) for k, v in vars(b).items()})
    x, valid = prefix_tokens(model, b)
    p = x.shape[1]
    mask = np.tril(np.ones((p, p), bool))[None] & valid[:, None, :]
    h = trunk(model, x, np.repeat(np.arange(p, dtype=np.float64)[None], x.shape[0], 0), mask)
    m = valid[..., None].astype(np.float64)
    u = (h * m).sum(1) / np.maximum(m.sum(1), 1)
    return u / np.sqrt(np.maximum((u * u).sum(-1, keepdims=True), 1e-12))


@pytest.mark.parametrize("mode", ["shared", "reference"])
def test_ranker_logits_match_float64_numpy(mode):
    model, b = ranker(mode), batch()
    want = numpy_ranker_logits(model, b)
    got = logits(model, b)
    assert np.abs(want).max() > 0.5  # non-vacuous
    np.testing.assert_allclose(got, want, atol=LOGIT_ATOL, rtol=0)


def test_retrieval_user_vector_matches_float64_numpy():
    model, b = retrieval(), batch()
    np.testing.assert_allclose(user_rep(model, b), numpy_user_vector(model, b), atol=USER_ATOL, rtol=0)
