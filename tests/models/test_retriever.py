"""Two-tower retrieval contract (§12 rows 9, 10, 15-19): padding invariance, causal user tower,
padding side, empty rows, shapes, unit norms, exact top-k with a corpus mask.

Guards: left padding shifting every RoPE position (reference Δ≈0.017), NaNs on users with nothing
valid, masked corpus items leaking into top-k.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import batch, cand_reps, edit, pad_history, retrieval, tiny, user_rep, user_seq
from x_reco.common.types import RetrievalOutput
from x_reco.configs.phoenix import USER_POOLS
from x_reco.models import PhoenixRetriever, l2_normalize, top_k
from x_reco.models.testing import random_embeddings


def test_padding_content_invariance_exact():
    model, b = retrieval(), batch()
    pad = np.asarray(b.history_post_hashes)[:, :, 0] == 0
    rng = np.random.default_rng(12)
    actions, surface = np.array(b.history_actions), np.array(b.history_product_surface)
    author = np.array(b.history_author_hashes)
    actions[pad] = rng.integers(0, 2, actions[pad].shape)
    surface[pad] = rng.integers(0, 7, surface[pad].shape)
    author[pad] = rng.integers(1, 53, author[pad].shape)
    noisy = edit(b, history_actions=actions, history_product_surface=surface, history_author_hashes=author)
    assert np.array_equal(user_rep(model, noisy), user_rep(model, b))
    emb = random_embeddings(tiny(), b, seed=5)
    post = np.array(emb.history_post)
    post[pad] = rng.standard_normal(post[pad].shape)
    assert np.array_equal(user_rep(model, b, emb.replace(history_post=post)), user_rep(model, b, emb))


def test_user_tower_is_causal_exact():
    model, b = retrieval(), batch()
    base = user_seq(model, b)
    for slot in (3, 7):  # rewrite history slot `slot` (position 1+slot) of the full row 0
        post = np.array(b.history_post_hashes)
        post[0, slot] = (post[0, slot] % 200) + 1
        out = user_seq(model, edit(b, history_post_hashes=post))
        assert np.array_equal(out[0, : slot + 1], base[0, : slot + 1])
        assert np.abs(out[0, slot + 1 :] - base[0, slot + 1 :]).max() > 1e-4
        assert np.array_equal(out[1:], base[1:])


def test_left_padding_changes_user_vector():
    model = retrieval()
    b = batch(history_lengths=[7, 4, 9])
    delta = np.abs(user_rep(model, pad_history(b, 4, left=True)) - user_rep(model, pad_history(b, 4))).max()
    assert delta > 1e-4


def test_empty_rows_finite_and_zero_when_nothing_valid():
    model, b = retrieval(), batch()
    users = np.array(b.user_hashes)
    users[1] = 0  # row 1 already has an empty history
    u = user_rep(model, edit(b, user_hashes=users))
    assert np.isfinite(u).all() and np.array_equal(u[1], np.zeros(32))
    assert np.abs(np.linalg.norm(user_rep(model, b)[1]) - 1) < 1e-5  # user token alone is still valid


def test_shapes_dtypes_and_unit_norms():
    model, b = retrieval(), batch()
    u, c = user_rep(model, b), cand_reps(model, b)
    assert u.shape == (3, 32) and u.dtype == np.float32
    assert c.shape == (3, 5, 32) and c.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, atol=1e-5)
    valid = np.asarray(b.candidate_post_hashes)[:, :, 0] != 0
    np.testing.assert_allclose(np.linalg.norm(c[valid], axis=-1), 1.0, atol=1e-5)
    assert np.array_equal(c[~valid], np.zeros_like(c[~valid]))  # padded candidates: zero vectors
    encode_items = nnx.jit(lambda m, p, a: m.encode_items(p, a))
    flat = encode_items(model, b.candidate_post_hashes[0], b.candidate_author_hashes[0])
    np.testing.assert_allclose(np.asarray(flat), c[0], atol=1e-6)
    out = nnx.jit(lambda m, x, corpus, mask: m(x, corpus, mask, 4))(model, b, flat, jnp.ones(5, bool))
    assert isinstance(out, RetrievalOutput)
    assert out.top_k_indices.shape == (3, 4) and out.top_k_indices.dtype == jnp.int32
    assert out.top_k_scores.shape == (3, 4) and out.top_k_scores.dtype == jnp.float32
    assert np.array_equal(np.asarray(out.user_representation), u)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(9)
    users = np.asarray(l2_normalize(jnp.asarray(rng.standard_normal((3, 32)))))
    items = np.asarray(l2_normalize(jnp.asarray(rng.standard_normal((13, 32)))))
    return users, items


def test_top_k_sorted_exact_scores(corpus):
    users, items = corpus
    out = top_k(users, items, jnp.ones(13, bool), 4)
    idx, scores = np.asarray(out.top_k_indices), np.asarray(out.top_k_scores)
    assert (np.diff(scores, axis=1) <= 0).all() and ((idx >= 0) & (idx < 13)).all()
    np.testing.assert_allclose(scores, np.einsum("bd,bkd->bk", users, items[idx]), atol=1e-6)
    full = users.astype(np.float64) @ items.T.astype(np.float64)
    np.testing.assert_allclose(scores, -np.sort(-full, axis=1)[:, :4], atol=1e-6)


def test_top_k_masked_items_never_returned(corpus):
    users, items = corpus
    mask = np.ones(13, bool)
    full = users @ items.T
    mask[np.argmax(full, axis=1)] = False  # hide every user's best item
    mask[[2, 5]] = False
    for k in (4, int(mask.sum())):
        idx = np.asarray(top_k(users, items, jnp.asarray(mask), k).top_k_indices)
        assert mask[idx].all()


def test_top_k_k_equals_n_is_permutation(corpus):
    users, items = corpus
    idx = np.asarray(top_k(users, items, jnp.ones(13, bool), 13).top_k_indices)
    assert all(sorted(row) == list(range(13)) for row in idx.tolist())


_prefix_users = nnx.jit(lambda m, b: m.prefix_users(b))


@pytest.mark.parametrize("pool", USER_POOLS)
def test_prefix_users_are_the_user_vector_of_each_cut_request(pool):
    """Position p of ``prefix_users`` is ``encode_user`` of the request cut after p (history slots >= p
    removed), so it never sees the item it is trained to predict; the last valid position is ``encode_user``."""
    model, b = PhoenixRetriever(tiny(user_pool=pool), rngs=nnx.Rngs(params=1)), batch()
    prefix, valid = (np.asarray(x) for x in _prefix_users(model, b))
    lengths = (np.asarray(b.history_post_hashes)[:, :, 0] != 0).sum(axis=1)
    assert lengths.max() > 3 and lengths.min() == 0  # full rows and an empty one
    full = user_rep(model, b)
    for row, length in enumerate(lengths):
        np.testing.assert_allclose(prefix[row, length], full[row], atol=1e-6)
        assert valid[row, : length + 1].all() and not valid[row, length + 1 :].any()
        for p in range(length + 1):
            post = np.array(b.history_post_hashes)
            post[row, p:] = 0
            np.testing.assert_allclose(
                prefix[row, p], user_rep(model, edit(b, history_post_hashes=post))[row], atol=1e-6
            )


def test_last_pool_reads_the_last_valid_position_even_without_a_user_token():
    model, b = PhoenixRetriever(tiny(user_pool="last"), rngs=nnx.Rngs(params=1)), batch()
    users = np.array(b.user_hashes)
    users[0] = 0  # user token invalid, history valid
    b = edit(b, user_hashes=users)
    seq = user_seq(model, b)
    length = int((np.asarray(b.history_post_hashes)[0, :, 0] != 0).sum())
    np.testing.assert_allclose(user_rep(model, b)[0], np.asarray(l2_normalize(seq[0, length])), atol=1e-6)
    mean = PhoenixRetriever(tiny(), rngs=nnx.Rngs(params=1))
    assert np.abs(user_rep(mean, b) - user_rep(model, b)).max() > 1e-3  # the two pools differ
