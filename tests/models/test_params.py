"""Parameter counts of §2.3 (§12 row 20) and compiled-vs-eager / abstract-large forwards (row 25).

Counts are computed on ``nnx.eval_shape`` models so the 1.5 B-element ``large`` tables are never
allocated. Guards: silently added or dropped parameters (e.g. a candidate projection in retrieval),
and a forward that cannot be traced at ``large`` size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import F32_TOL, batch, logits, ranker, retrieval, user_rep
from x_reco.configs import PhoenixConfig
from x_reco.models import PhoenixRanker, PhoenixRetriever, count_params, count_table_elements
from x_reco.models.testing import random_batch

COUNTS = {  # preset: (per layer, ranker, retrieval, table elements)
    "tiny": (7_808, 30_400, 34_880, (101 + 211 + 53) * 32),
    "reference-mini": (133_632, 487_296, 566_656, 3 * 100_000 * 128),
    "oss-mini": (133_632, 754_560, 833_920, 3 * 1_000_000 * 128),
    "large": (1_845_248, 25_579_008, 26_879_488, 3 * 1_000_000 * 512),
}


def abstract(cls, cfg):
    return nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0)))


def size(variable) -> int:
    return int(np.prod(variable.shape))


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_counts_exact(name):
    per_layer, n_ranker, n_retrieval, n_tables = COUNTS[name]
    cfg = PhoenixConfig.preset(name)
    r, q = abstract(PhoenixRanker, cfg), abstract(PhoenixRetriever, cfg)
    assert count_params(r.layers[0]) == per_layer
    assert count_params(r) == n_ranker
    assert count_params(q) == n_retrieval
    assert count_table_elements(r) == count_table_elements(q) == n_tables


def test_reference_mini_breakdown():
    r = abstract(PhoenixRanker, PhoenixConfig.reference_mini())
    e, layer = r.embed, r.layers[0]
    got = [
        size(e.surface_table),
        size(e.action_proj),
        size(e.user_proj),
        size(e.history_proj),
        size(e.candidate_proj),
        size(r.head.unembed),
    ]
    assert got == [2_048, 2_432, 32_768, 98_304, 81_920, 2_432] and sum(got) == 219_904
    assert count_params(layer.attn) == 65_536 and count_params(layer.ffn) == 67_584
    norms = (layer.norm_pre_attn, layer.norm_post_attn, layer.norm_pre_ffn, layer.norm_post_ffn)
    assert sum(count_params(n) for n in norms) == 512 and count_params(r.final_norm) == 128
    q = abstract(PhoenixRetriever, PhoenixConfig.reference_mini())
    assert q.embed.candidate_proj is None
    assert [size(q.cand_tower.w1), size(q.cand_tower.w2)] == [4 * 128 * 256, 256 * 128]


def test_kernel_shapes_stored_in_out():
    r = abstract(PhoenixRanker, PhoenixConfig.tiny())
    a, f = r.layers[1].attn, r.layers[1].ffn
    shapes = [x.shape for x in (a.wq, a.wk, a.wv, a.wo, f.w_gate, f.w_up, f.w_down, r.head.unembed)]
    assert shapes == [(32, 32), (32, 16), (32, 16), (32, 32), (32, 48), (32, 48), (48, 32), (32, 19)]
    assert r.embed.history_proj.shape == ((3 + 1 + 2) * 32, 32)
    assert r.embed.candidate_proj.shape == ((3 + 1 + 1) * 32, 32)
    assert {x.dtype for x in jax.tree.leaves(nnx.state(r))} == {jnp.dtype("float32")}  # bf16 compute, f32 params


def test_ranker_jit_equals_eager():
    b = batch()
    np.testing.assert_allclose(logits(ranker(), b), np.asarray(ranker()(b).logits_bca), atol=F32_TOL, rtol=0)


@pytest.mark.slow  # op-by-op eager dispatch compiles every primitive once (seconds on a shared CPU)
def test_retrieval_jit_equals_eager():
    b = batch()
    np.testing.assert_allclose(user_rep(retrieval(), b), np.asarray(retrieval().encode_user(b)), atol=F32_TOL, rtol=0)


def test_large_forward_eval_shape_allocates_nothing():
    cfg = PhoenixConfig.large()
    graphdef, state = nnx.split(abstract(PhoenixRanker, cfg))
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(state))
    b = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), random_batch(cfg, 2))
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, b)
    assert out.logits_bca.shape == (2, 64, 19) and out.logits_bca.dtype == jnp.float32
    assert max((a.size for a in jax.live_arrays()), default=0) < 10_000_000
