"""Ranker semantics (§12 rows 7-17, 21): candidate isolation, padding and batch invariance, position
modes, prefix reuse, shapes, non-degeneracy; tiny preset, B=3, S=11, C=5.

Guards past bugs of the reference: scores that depend on slot order or on trailing padding
(``reference`` mode, pinned so it is not changed silently), left padding moving every position, and
an all-zero init whose outputs are constant (which makes any accuracy check vacuous).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import (
    BF16_TOL,
    F32_TOL,
    batch,
    edit,
    forward,
    logits,
    pad_candidates,
    pad_history,
    prefix_hidden,
    ranker,
    take_candidates,
    take_rows,
    tiny,
)
from x_reco.common.types import RankerOutput
from x_reco.models import weighted_score
from x_reco.models.testing import random_embeddings

MODES = ("shared", "reference")
DTYPES = (("float32", F32_TOL), ("bfloat16", BF16_TOL))


def other_candidates(b, seed=11):
    """Same batch with new (valid) content in candidate slots 1..C-1."""
    rng = np.random.default_rng(seed)
    post, author = np.array(b.candidate_post_hashes), np.array(b.candidate_author_hashes)
    surface = np.array(b.candidate_product_surface)
    post[:, 1:] = rng.integers(1, 211, post[:, 1:].shape)
    author[:, 1:] = rng.integers(1, 53, author[:, 1:].shape)
    surface[:, 1:] = rng.integers(0, 7, surface[:, 1:].shape)
    return edit(b, candidate_post_hashes=post, candidate_author_hashes=author, candidate_product_surface=surface)


# -- row 7 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_candidate_isolation_exact(mode, dtype):
    model, b = ranker(mode, dtype), batch()
    base, changed = logits(model, b), logits(model, other_candidates(b))
    assert np.array_equal(base[:, 0], changed[:, 0])
    assert np.abs(base[0, 1:] - changed[0, 1:]).max() > 1e-3  # the edit was real


# -- row 8 --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode,dtype,tol",
    [("shared", "float32", F32_TOL), ("reference", "float32", F32_TOL), ("shared", "bfloat16", BF16_TOL)],
)
def test_single_candidate_and_padded_slate(mode, dtype, tol):
    model, b = ranker(mode, dtype), batch()
    base = logits(model, b)
    alone = logits(model, take_candidates(b, [0]))
    np.testing.assert_allclose(alone[:, 0], base[:, 0], atol=tol, rtol=0)
    np.testing.assert_allclose(logits(model, pad_candidates(b, 3))[:, :5], base, atol=tol, rtol=0)


# -- row 9 --------------------------------------------------------------------------------------
def scribble_padded_history(b, seed=12):
    rng = np.random.default_rng(seed)
    pad = ~(np.asarray(b.history_post_hashes)[:, :, 0] != 0)
    actions, surface = np.array(b.history_actions), np.array(b.history_product_surface)
    author = np.array(b.history_author_hashes)
    actions[pad] = rng.integers(0, 2, actions[pad].shape)
    surface[pad] = rng.integers(0, 7, surface[pad].shape)
    author[pad] = rng.integers(1, 53, author[pad].shape)
    assert pad.sum() > 5
    return edit(b, history_actions=actions, history_product_surface=surface, history_author_hashes=author)


@pytest.mark.parametrize("mode", MODES)
def test_padding_content_invariance_exact(mode):
    model, b = ranker(mode), batch()
    base = logits(model, b)
    assert np.array_equal(logits(model, scribble_padded_history(b)), base)
    emb = random_embeddings(tiny(), b, seed=3)
    base_emb = logits(model, b, emb)
    pad = np.asarray(b.history_post_hashes)[:, :, 0] == 0
    noisy = {}
    for name in ("history_post", "history_author"):
        x = np.array(getattr(emb, name))
        x[pad] = np.random.default_rng(4).standard_normal(x[pad].shape)
        noisy[name] = x
    assert np.array_equal(logits(model, b, emb.replace(**noisy)), base_emb)


def test_zeroing_one_candidate_leaves_others_exact():
    model, b = ranker(), batch()
    base = logits(model, b)
    post = np.array(b.candidate_post_hashes)
    post[0, 2, 0] = 0
    out = logits(model, edit(b, candidate_post_hashes=post))
    keep = np.ones((3, 5), bool)
    keep[0, 2] = False
    assert np.array_equal(out[keep], base[keep])


# -- row 10 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_user_and_history_outputs_ignore_candidates_exact(mode):
    model, b = ranker(mode), batch()
    changed = edit(other_candidates(b), candidate_post_hashes=np.zeros_like(b.candidate_post_hashes) + 7)
    assert np.array_equal(prefix_hidden(model, b), prefix_hidden(model, changed))


# -- row 11 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_batch_independence(dtype, tol):
    model, b = ranker("shared", dtype), batch()
    np.testing.assert_allclose(logits(model, take_rows(b, [0]))[0], logits(model, b)[0], atol=tol, rtol=0)


# -- row 12 -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype,tol,sizes,extras",
    [("float32", F32_TOL, (1, 2, 5), (4, 8)), ("bfloat16", BF16_TOL, (1, 5), (4,))],  # bf16: subset, fewer compiles
)
def test_shared_mode_permutation_chunking_and_trailing_padding(dtype, tol, sizes, extras):
    model = ranker("shared", dtype)
    b = batch(candidate_lengths=[5, 5, 4])
    base = logits(model, b)
    perm = [3, 0, 4, 1, 2]
    np.testing.assert_allclose(logits(model, take_candidates(b, perm)), base[:, perm], atol=tol, rtol=0)
    for size in sizes:
        chunks = [logits(model, take_candidates(b, slice(i, i + size))) for i in range(0, 5, size)]
        np.testing.assert_allclose(np.concatenate(chunks, axis=1), base, atol=tol, rtol=0)
    for extra in extras:
        np.testing.assert_allclose(logits(model, pad_history(b, extra)), base, atol=tol, rtol=0)


# -- row 13 -------------------------------------------------------------------------------------
def test_full_history_row_shared_equals_reference_slot0_exact():
    shared, reference = ranker("shared"), ranker("reference")
    for x, y in zip(jax.tree.leaves(nnx.state(shared)), jax.tree.leaves(nnx.state(reference))):
        assert np.array_equal(x, y)
    b = batch()
    assert (np.asarray(b.history_post_hashes)[0, :, 0] != 0).all()  # row 0 is full
    assert np.array_equal(logits(shared, b)[0, 0], logits(reference, b)[0, 0])


# -- row 14 -------------------------------------------------------------------------------------
def test_reference_mode_is_position_sensitive():
    model, b = ranker("reference"), batch()
    base = logits(model, b)
    swapped = logits(model, take_candidates(b, [1, 0, 2, 3, 4]))
    assert np.abs(swapped[0, 1] - base[0, 0]).max() > 1e-3
    assert np.abs(swapped[0, 0] - base[0, 1]).max() > 1e-3
    assert np.abs(logits(model, pad_history(b, 4))[0] - base[0]).max() > 1e-3


# -- row 15 (ranker half; the retrieval half is in test_retrieval) ------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_left_padding_changes_ranker_logits(mode):
    model = ranker(mode)
    b = batch(history_lengths=[7, 4, 9])
    assert np.abs(logits(model, pad_history(b, 4, left=True)) - logits(model, pad_history(b, 4))).max() > 1e-4


# -- row 16 -------------------------------------------------------------------------------------
def test_empty_history_and_no_user_finite():
    model, b = ranker(), batch()
    assert (np.asarray(b.history_post_hashes)[1, :, 0] == 0).all()  # row 1 has empty history
    users = np.array(b.user_hashes)
    users[1] = 0
    for x in (b, edit(b, user_hashes=users)):
        assert np.isfinite(logits(model, x)).all()


# -- row 17 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_output_shapes_and_dtypes(dtype):
    out = forward(ranker("shared", dtype), batch())
    assert isinstance(out, RankerOutput)
    assert out.logits_bca.shape == (3, 5, 19) and out.logits_bca.dtype == jnp.float32
    assert out.candidate_mask_bc.shape == (3, 5) and out.candidate_mask_bc.dtype == jnp.bool_
    want_mask = np.asarray(batch().candidate_post_hashes)[:, :, 0] != 0
    assert np.array_equal(np.asarray(out.candidate_mask_bc), want_mask)
    p = np.asarray(out.probs_bca)
    assert ((p > 0) & (p < 1)).all()


# -- row 21 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_default_init_is_not_degenerate(dtype):
    out = logits(ranker("shared", dtype), batch())
    assert out[0].std(axis=0).min() > 1e-3  # row 0 has 5 valid candidates


def test_upstream_zeros_gives_exactly_zero_logits():
    out = logits(ranker("shared", "float32", "upstream_zeros"), batch())
    assert np.array_equal(out, np.zeros_like(out))


# -- prefix reuse (inference-optimization §2.2-2.3 building block) ------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_cached_prefix_then_candidate_chunks_equal_dense(mode):
    model, b = ranker(mode), batch()

    @nnx.jit
    def split(model, b):
        t = model.tokens(b)
        prefix = model.encode_prefix(t.prefix_bpd, t.prefix_valid_bp)
        outs = [
            model.score_with_prefix(prefix, t.candidates_bcd[:, i:j], t.candidate_valid_bc[:, i:j], i)
            for i, j in ((0, 3), (3, 5))
        ]
        return jnp.concatenate([o.logits_bca for o in outs], axis=1)

    np.testing.assert_allclose(np.asarray(split(model, b)), logits(model, b), atol=F32_TOL, rtol=0)


def test_score_with_prefix_never_forms_the_candidate_block():
    model = ranker("shared")
    c = 37  # prime, distinct from every other axis of the tiny preset
    b = batch(candidate_len=c)
    graphdef, state = nnx.split(model)

    def shapes(fn):
        jaxpr = jax.make_jaxpr(fn)(state, b)
        return [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars if hasattr(v.aval, "shape")]

    def split(state, b):
        m = nnx.merge(graphdef, state)
        t = m.tokens(b)
        return m.score_with_prefix(
            m.encode_prefix(t.prefix_bpd, t.prefix_valid_bp), t.candidates_bcd, t.candidate_valid_bc
        ).logits_bca

    def dense(state, b):
        return nnx.merge(graphdef, state)(b).logits_bca

    has_block = lambda shape_list, size: any(list(s).count(size) >= 2 for s in shape_list)  # noqa: E731
    p = b.history_post_hashes.shape[1] + 1
    assert has_block(shapes(dense), p + c)  # the probe sees the dense path's (P+C)^2 block
    assert not has_block(shapes(split), c)


def test_weighted_score_pure_and_masks_padding():
    probs = jnp.asarray(np.random.default_rng(8).random((3, 5, 19)), jnp.float32)
    weights = {"favorite": 0.5, "reply": 5.0, "report": -234.0, "not_dwelled": -0.02}
    got = np.asarray(weighted_score(probs, weights))
    p = np.asarray(probs, np.float64)
    np.testing.assert_allclose(got, 0.5 * p[..., 0] + 5.0 * p[..., 1] - 234.0 * p[..., 17], rtol=1e-5)
    mask = np.ones((3, 5), bool)
    mask[1, 2:] = False
    masked = np.asarray(weighted_score(probs, weights, candidate_mask_bc=jnp.asarray(mask)))
    assert np.isneginf(masked[~mask]).all() and np.array_equal(masked[mask], got[mask])


def test_append_prefix_equals_full_prefix_encode():
    """Appending history after the first 5 events, in place in a fixed-capacity prefix, equals encoding it all."""
    model, b = ranker(), batch()

    @nnx.jit
    def both(model, b):
        t = model.tokens(b)
        full = model.encode_prefix(t.prefix_bpd, t.prefix_valid_bp)
        head_valid = t.prefix_valid_bp & (jnp.arange(t.prefix_valid_bp.shape[1]) < 6)[None, :]
        grown = model.append_prefix(
            model.encode_prefix(t.prefix_bpd, head_valid), t.prefix_bpd[:, 6:], t.prefix_valid_bp[:, 6:]
        )
        return full, grown

    full, grown = both(model, b)
    valid = np.asarray(full.prefix_valid_bp)
    assert valid[0, 6:].all()  # row 0 has a full history: the append really writes
    np.testing.assert_allclose(
        np.asarray(grown.k_lbpkd)[:, valid], np.asarray(full.k_lbpkd)[:, valid], atol=F32_TOL, rtol=0
    )
    np.testing.assert_allclose(
        np.asarray(grown.v_lbpkd)[:, valid], np.asarray(full.v_lbpkd)[:, valid], atol=F32_TOL, rtol=0
    )
    assert full.k_lbpkd.shape == (2, 3, 12, 2, 8)  # [L, B, P, Hkv, dk]
    assert np.array_equal(np.asarray(grown.prefix_valid_bp), valid)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk", [2, 3, 7])
def test_score_split_equals_dense_for_any_chunk(mode, chunk):
    model, b = ranker(mode), batch()
    split = nnx.jit(lambda m, b_: m.score_split(b_, chunk).logits_bca)
    np.testing.assert_allclose(np.asarray(split(model, b)), logits(model, b), atol=F32_TOL, rtol=0)
