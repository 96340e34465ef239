"""Leaf-layer numerics (§12 rows 4-6, §5): RMSNorm eps/dtype, half-split RoPE, GQA head grouping,
embedding assembly (hash-major concat, signed multi-hot actions, one-hot surface), hash tables.

Guards past bugs: library RMSNorms with another eps or dtype path, interleaved-pair RoPE, GQA
grouping by ``j % Hkv`` instead of ``j // G``, the all-minus-one action vector on no-action slots.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import tiny
from x_reco.layers import (
    Attention,
    EmbeddingAssembly,
    HashTable,
    HashTables,
    RMSNorm,
    apply_rope,
    gather_rows,
    grouped_attention,
    rms_norm,
)
from x_reco.models import PhoenixRanker
from x_reco.models.masks import prefix_mask


# -- row 4: RMSNorm ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale_of_x", [1.0, 1e-3])  # 1e-3: eps dominates the mean of squares
def test_rms_norm_formula_eps_1e5(scale_of_x):
    rng = np.random.default_rng(0)
    x = (scale_of_x * rng.standard_normal((3, 7, 32))).astype(np.float32)
    scale = rng.standard_normal(32).astype(np.float32)
    x64 = x.astype(np.float64)
    want = scale * x64 / np.sqrt(np.mean(x64**2, axis=-1, keepdims=True) + 1e-5)
    got = np.asarray(rms_norm(jnp.asarray(x), jnp.asarray(scale)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_rms_norm_keeps_input_dtype_and_f32_scale(dtype):
    norm = RMSNorm(32, rngs=nnx.Rngs(0))
    assert norm.scale[...].dtype == jnp.float32 and np.all(np.asarray(norm.scale[...]) == 1)
    assert norm(jnp.ones((2, 3, 32), dtype)).dtype == dtype


# -- row 5: RoPE ------------------------------------------------------------------------------
def test_rope_hand_computed_dk4_half_split():
    x = jnp.asarray([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    got = np.asarray(apply_rope(x, jnp.asarray([[1]], jnp.int32))).ravel()
    c1, s1, c2, s2 = np.cos(1.0), np.sin(1.0), np.cos(0.01), np.sin(0.01)  # inv_freq = [1, 10000^-0.5]
    want = [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.array_equal(np.asarray(apply_rope(x, jnp.zeros((1, 1), jnp.int32))), np.asarray(x))  # starts at 0


def test_rope_relative_shift_invariance_per_row_positions():
    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.standard_normal((3, 1, 2, 8)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 1, 2, 8)), jnp.float32)
    p, p2 = jnp.asarray([[0], [3], [17]], jnp.int32), jnp.asarray([[5], [3], [2]], jnp.int32)

    def dot(pq, pk):
        return np.asarray(jnp.sum(apply_rope(q, pq) * apply_rope(k, pk), axis=-1), np.float64)

    base = dot(p, p2)
    for delta in (1, 7, 23):
        np.testing.assert_allclose(dot(p + delta, p2 + delta), base, rtol=1e-5, atol=1e-5)
    assert np.abs(dot(p, p2 + 1) - base).max() > 1e-3  # non-vacuous: positions do matter


def test_rope_dtype_roundtrip():
    x = jnp.ones((2, 3, 4, 8), jnp.bfloat16)
    assert apply_rope(x, jnp.zeros((2, 3), jnp.int32)).dtype == jnp.bfloat16


# -- row 6: GQA grouping -----------------------------------------------------------------------
def test_gqa_core_query_heads_share_kv_head_j_div_g():
    rng = np.random.default_rng(2)
    q = jnp.asarray(rng.standard_normal((3, 5, 4, 4)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 5, 2, 4)), jnp.float32)
    v = jnp.concatenate([jnp.full((3, 5, 1, 4), 1.0), jnp.full((3, 5, 1, 4), 2.0)], axis=2)
    out = np.asarray(grouped_attention(q, k, v, jnp.ones((3, 1, 5, 5), bool), 0.125))
    np.testing.assert_allclose(out[:, :, :2], 1.0, atol=1e-6)  # heads 0, 1 = G heads read kv head 0
    np.testing.assert_allclose(out[:, :, 2:], 2.0, atol=1e-6)


def test_gqa_module_with_hand_set_weights():
    attn = Attention(8, 4, 2, 4, 1.0, dtype=jnp.float32, kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))
    attn.wv[...] = jnp.eye(8)  # kv head 0 = x[:4], kv head 1 = x[4:]; wq = 0 -> uniform attention
    wo = np.zeros((16, 8), np.float32)
    wo[4:8, :4] = np.eye(4)  # read query head 1 only
    attn.wo[...] = jnp.asarray(wo)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((3, 6, 8)), jnp.float32)
    valid = jnp.asarray([[True] * 6, [True] * 3 + [False] * 3, [True] * 6])
    pos = jnp.broadcast_to(jnp.arange(6), (3, 6))
    out, _, _ = attn(x, pos, prefix_mask(valid))
    xv = np.asarray(x)[..., :4] * np.asarray(valid)[..., None]
    cummean = np.cumsum(xv, axis=1) / np.minimum(np.arange(1, 7), np.asarray(valid).sum(1, keepdims=True))[..., None]
    np.testing.assert_allclose(np.asarray(out)[..., :4], cummean, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out)[..., 4:], 0.0, atol=1e-6)


def test_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="num_q_heads=3 not divisible by num_kv_heads=2"):
        Attention(8, 3, 2, 4, 1.0, kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))


# -- §5 embedding assembly ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def assembly():
    return EmbeddingAssembly(32, (2, 3, 1), 19, 7, dtype=jnp.float32, rngs=nnx.Rngs(4))


def test_action_embedding_signed_multi_hot_zero_without_action(assembly):
    a = np.zeros((1, 3, 19), np.float32)
    a[0, 1, [0, 5]] = 1
    a[0, 2] = 1
    got = np.asarray(assembly.action_embedding(jnp.asarray(a)))
    w = np.asarray(assembly.action_proj[...], np.float64)
    assert np.array_equal(got[0, 0], np.zeros(32))  # not the all-minus-one projection
    np.testing.assert_allclose(got[0, 1], (2 * a[0, 1] - 1) @ w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[0, 2], w.sum(0), rtol=1e-6, atol=1e-6)


def test_surface_is_one_hot_lookup_out_of_range_zero(assembly):
    got = np.asarray(assembly.surface_embedding(jnp.asarray([[0, 6, 7, -1]])))
    table = np.asarray(assembly.surface_table[...])
    np.testing.assert_allclose(got[0, :2], table[[0, 6]], rtol=1e-6)
    assert np.array_equal(got[0, 2:], np.zeros((2, 32)))


def test_block_reduce_concat_hash_major_then_project(assembly):
    rng = np.random.default_rng(5)
    user = rng.standard_normal((2, 2, 32)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(assembly.user_tokens(jnp.asarray(user)))[:, 0],
        np.concatenate([user[:, 0], user[:, 1]], -1) @ np.asarray(assembly.user_proj[...]),
        rtol=1e-5,
        atol=1e-5,
    )
    post, author = rng.standard_normal((2, 4, 3, 32)), rng.standard_normal((2, 4, 1, 32))
    actions = (rng.random((2, 4, 19)) < 0.3).astype(np.float32)
    surface = rng.integers(0, 7, (2, 4))
    got = np.asarray(assembly.history_tokens(*map(jnp.asarray, (post, author, actions, surface))))
    act = np.asarray(assembly.action_embedding(jnp.asarray(actions)))
    srf = np.asarray(assembly.surface_embedding(jnp.asarray(surface)))
    x = np.concatenate([post.reshape(2, 4, 96), author.reshape(2, 4, 32), act, srf], -1)
    np.testing.assert_allclose(got, x @ np.asarray(assembly.history_proj[...], np.float64), rtol=1e-5, atol=1e-5)
    cand = np.asarray(assembly.candidate_tokens(*map(jnp.asarray, (post, author, surface))))
    x = np.concatenate([post.reshape(2, 4, 96), author.reshape(2, 4, 32), srf], -1)
    np.testing.assert_allclose(cand, x @ np.asarray(assembly.candidate_proj[...], np.float64), rtol=1e-5, atol=1e-5)


def test_hash_tables_own_type_row0_zero_and_gather_masks_padding():
    tables = HashTables((101, 211, 53), 32, rngs=nnx.Rngs(6))
    for t in (tables.user, tables.post, tables.author):
        assert isinstance(t, HashTable) and not isinstance(t, nnx.Param)
    for t, rows in ((tables.user, 101), (tables.post, 211), (tables.author, 53)):
        assert t[...].shape == (rows, 32) and t[...].dtype == jnp.float32
        assert np.array_equal(np.asarray(t[...][0]), np.zeros(32)) and np.asarray(t[...][1:]).std() > 0.5
    table = jnp.ones((5, 4))  # even a non-zero row 0 never leaks through a padding hash
    assert np.array_equal(np.asarray(gather_rows(table, jnp.asarray([[0, 3]]))), [[[0] * 4, [1] * 4]])


def test_tables_are_not_params():
    model = nnx.eval_shape(lambda: PhoenixRanker(tiny(), rngs=nnx.Rngs(0)))
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    tables = jax.tree.leaves(nnx.state(model, HashTable))
    assert len(tables) == 3 and all(x.shape[0] in (101, 211, 53) for x in tables)
    assert not any(x.shape in {(101, 32), (211, 32), (53, 32)} for x in params)
