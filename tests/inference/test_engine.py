"""Compiled request path (inference spec §2.1): one AOT executable per bucket, requests padded up to it,
zero new compilations over 100 varied requests, out-of-set shapes rejected or explicitly counted, and
the host assembler (hashing + positional padding) matching a hand-built batch.
"""

import jax
import numpy as np
import pytest
from flax import nnx

from tests.inference.helpers import F32_TOL, model_logits, source, tiny, valid_candidates
from x_reco.configs.weights import WeightSet
from x_reco.features.hashing import Hasher
from x_reco.inference.engine import CompileCounter, CompiledRanker
from x_reco.inference.requests import Bucket, BucketSet, RawRequest, RequestAssembler, assemble_batch, empty_batch
from x_reco.models import weighted_score
from x_reco.models.testing import random_batch

BUCKET = Bucket(4, 16, 8)


@pytest.fixture(scope="module")
def compiled():
    return CompiledRanker(source(), [BUCKET], precision="highest")


def test_hundred_varied_requests_compile_nothing(compiled):
    rng = np.random.default_rng(0)
    with CompileCounter() as counter:
        for i in range(100):
            b, s, n = int(rng.integers(1, 5)), int(rng.integers(1, 17)), int(rng.integers(1, 9))
            batch = random_batch(tiny(), b, history_len=s, candidate_len=n, seed=i)
            out, bucket = compiled(batch)
            assert bucket == BUCKET and np.asarray(out.logits_bca).shape == (4, 8, 19)
    assert counter.count == 0
    assert compiled.stats()["executables"] == 1 and compiled.stats()["fallbacks"] == 0
    assert 0 < compiled.stats()["padding_waste"] < 1


def test_counter_sees_a_real_compilation():
    import jax
    import jax.numpy as jnp

    with CompileCounter() as counter:
        jax.jit(lambda x: x * 3 + 1)(jnp.arange(7.0)).block_until_ready()
    assert counter.count >= 1


def test_padded_request_equals_the_model(compiled):
    batch = random_batch(tiny(), 3, history_len=9, candidate_len=6, seed=3)
    out = compiled.score_numpy(batch)
    ref = model_logits(batch)
    mask = valid_candidates(batch)
    assert np.abs(out["logits_bca"] - ref)[mask].max() <= F32_TOL
    weights = WeightSet.published().weights
    expected = np.asarray(weighted_score(1 / (1 + np.exp(-ref)), weights, candidate_mask_bc=mask))
    assert np.allclose(out["score_bc"][mask], expected[mask], atol=1e-5)
    assert np.all(np.isneginf(out["score_bc"][~mask]))  # padded candidates rank last


def test_shape_outside_the_buckets_is_an_error_or_counted(compiled):
    big = random_batch(tiny(), 2, history_len=20, candidate_len=5, seed=1)
    with pytest.raises(ValueError, match="outside the compiled buckets"):
        compiled(big)
    lenient = CompiledRanker(source(), [Bucket(1, 1, 1)], fallback="count")
    out, bucket = lenient(big)
    assert bucket == Bucket(2, 20, 5) and lenient.stats()["fallbacks"] == 1


def test_bucket_selection_and_reference_mode_needs_exact_history():
    buckets = BucketSet(batch=(1, 16), history=(128, 512), candidates=(64, 256))
    assert buckets.select(3, 127, 65) == Bucket(16, 128, 256)
    assert buckets.select(1, 600, 10) is None
    assert buckets.select(1, 127, 10, "reference") is None
    assert buckets.select(1, 128, 10, "reference") == Bucket(1, 128, 64)


def test_assembler_hashes_and_pads_positionally():
    cfg = tiny()
    req = RawRequest(
        user_id="u1",
        history_post_ids=["p1", "p2"],
        history_author_ids=["a1", "a2"],
        history_actions=np.eye(2, cfg.num_history_actions, dtype=np.float32),
        history_surface=np.array([3, 0]),
        candidate_post_ids=["p3"],
        candidate_author_ids=["a1"],
        candidate_surface=np.array([2]),
    )
    batch = assemble_batch([req], Bucket(2, 4, 3), cfg.hash_spec, cfg.num_history_actions)
    hasher = Hasher(cfg.hash_spec)
    assert np.array_equal(batch.user_hashes[0], hasher.hash_ids("user", ["u1"])[0])
    assert np.array_equal(batch.history_post_hashes[0, :2], hasher.hash_ids("post", ["p1", "p2"]))
    assert np.array_equal(batch.candidate_author_hashes[0, 0], hasher.hash_ids("author", ["a1"])[0])
    assert not batch.history_post_hashes[0, 2:].any() and not batch.user_hashes[1].any()  # padding is zero
    assert batch.history_product_surface[0].tolist() == [3, 0, 0, 0]


def test_assembler_reuses_buffers_and_vectorizes_numeric_ids():
    import dataclasses

    cfg = tiny()
    spec = dataclasses.replace(cfg.hash_spec, family="splitmix64")
    asm = RequestAssembler(spec, cfg.num_history_actions)
    req = RawRequest(
        np.uint64(7),
        np.array([1, 2], np.uint64),
        np.array([5, 6], np.uint64),
        np.zeros((2, cfg.num_history_actions), np.float32),
        np.array([1, 1]),
        np.array([9], np.uint64),
        np.array([5], np.uint64),
        np.array([0]),
    )
    first = asm.assemble([req], BUCKET)
    again = asm.assemble([req], BUCKET)
    assert first is again and np.array_equal(again.history_post_hashes[0, :2], asm.hasher.hash_ids("post", [1, 2]))


@pytest.mark.parametrize("family", ["blake2b", "splitmix64"])
def test_batched_assembly_equals_hashing_each_row(family):
    """Rows of varied lengths (empty history, no candidates, unknown user) hashed in one call per
    entity land exactly where hashing each row on its own puts them; blake2b mixes numeric and
    string rows."""
    import dataclasses

    cfg = tiny()
    spec = dataclasses.replace(cfg.hash_spec, family=family)
    a, rng = cfg.num_history_actions, np.random.default_rng(3)

    def ids(n, prefix):
        if family == "blake2b" and prefix == "p":
            return [f"{prefix}{x}" for x in rng.integers(1, 99, n)]
        return rng.integers(1, 2**40, n).astype(np.uint64)

    def request(user, length, n):
        return RawRequest(
            user,
            ids(length, "p"),
            ids(length, "a"),
            (rng.random((length, a)) < 0.3).astype(np.float32),
            rng.integers(0, 3, length),
            ids(n, "p"),
            ids(n, "a"),
            rng.integers(0, 3, n),
        )

    reqs = [request(np.uint64(5), 3, 2), request(None, 0, 4), request(np.uint64(9), 4, 0), request(np.uint64(2), 1, 1)]
    bucket = Bucket(5, 4, 4)
    got = RequestAssembler(spec, a).assemble(reqs, bucket)
    hasher, want = Hasher(spec), empty_batch(bucket, tuple(spec.num_hashes), a)
    for row, r in enumerate(reqs):
        h, n = r.history_len, r.num_candidates
        if r.user_id is not None:
            want.user_hashes[row] = hasher.hash_ids("user", [r.user_id])[0]
        want.history_post_hashes[row, :h] = hasher.hash_ids("post", list(r.history_post_ids))
        want.history_author_hashes[row, :h] = hasher.hash_ids("author", list(r.history_author_ids))
        want.history_actions[row, :h] = r.history_actions
        want.history_product_surface[row, :h] = r.history_surface
        want.candidate_post_hashes[row, :n] = hasher.hash_ids("post", list(r.candidate_post_ids))
        want.candidate_author_hashes[row, :n] = hasher.hash_ids("author", list(r.candidate_author_ids))
        want.candidate_product_surface[row, :n] = r.candidate_surface
    reference = RequestAssembler(spec, a).assemble_per_row(reqs, bucket)
    for field in dataclasses.fields(want):
        assert np.array_equal(getattr(got, field.name), getattr(want, field.name)), field.name
        assert np.array_equal(getattr(reference, field.name), getattr(want, field.name)), field.name
    assert (
        got.history_post_hashes[0, :3].all() and not got.history_post_hashes[1].any() and not got.user_hashes[1].any()
    )
    with pytest.raises(ValueError, match="request 1"):
        RequestAssembler(spec, a).assemble([reqs[0], request(None, 5, 1)], bucket)


def test_serving_model_is_the_trained_model_and_scores_with_its_weights():
    from tests.inference.helpers import ranker
    from x_reco.inference.engine import aot_compile, make_score_fn

    sm = source()
    model_leaves = jax.tree.leaves(nnx.state(ranker()))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(sm.state), model_leaves, strict=True))
    assert type(sm.module()) is type(ranker())  # the serving graph is the training class, not a copy
    batch = random_batch(tiny(), 3, seed=5)
    compiled, _ = aot_compile(make_score_fn(sm, "dense"), sm.params, batch, precision="highest")
    out = compiled(sm.params, batch)
    mask = valid_candidates(batch)
    ref = model_logits(batch)
    assert np.abs(np.asarray(out.logits_bca) - ref)[mask].max() <= F32_TOL
    want = weighted_score(jax.nn.sigmoid(ref), dict(WeightSet.published().weights), tiny().output_action_names, mask)
    assert np.abs(np.asarray(out.score_bc)[mask] - np.asarray(want)[mask]).max() <= 1e-4
    assert np.all(np.isneginf(np.asarray(out.score_bc)[~mask]))


def test_params_are_placed_explicitly_on_the_default_device():
    from x_reco.bench.timing import build_variant, variant_spec

    # Converted under jax.default_device(cpu): a bare jax.device_put would leave committed leaves on the
    # host (and an accelerator run would copy the weights on every call). Host numpy + explicit placement.
    sm = build_variant(source(), variant_spec("w8+t8"))
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(sm.state))
    ranker_exe = CompiledRanker(sm, [Bucket(1, 4, 2)])
    assert {d for leaf in jax.tree.leaves(ranker_exe.params) for d in leaf.devices()} == {jax.devices()[0]}
