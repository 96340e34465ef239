"""Retrieval serving (inference spec §2.6): the chunked corpus build and the bucket-padded compiled user tower
(both the retriever's own methods on its serving state) equal the model on unpadded inputs,
chunked top-k with a merge equals one pass over the corpus, masked items never come back, and the
bf16 / int8 corpora report recall@k against exact f32.
"""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from tests.inference.helpers import tiny
from x_reco.inference.params import serving_model
from x_reco.inference.requests import Bucket, pad_batch
from x_reco.inference.retrieval import (
    CompiledRetrieval,
    build_corpus_vectors,
    make_corpus,
    recall_at_k,
    top_k_chunked,
)
from x_reco.models import PhoenixRetriever, top_k
from x_reco.models.testing import random_batch

_model = PhoenixRetriever(tiny(), rngs=nnx.Rngs(params=1))
_sm = serving_model(_model)


def _corpus_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_corpus_build_in_padded_chunks_equals_the_item_tower():
    post = np.random.default_rng(3).integers(1, 211, (300, 3)).astype(np.int32)
    author = np.random.default_rng(4).integers(1, 53, (300, 1)).astype(np.int32)
    items = build_corpus_vectors(_sm, post, author, batch=128)  # 3 chunks, the last one padded
    want = np.asarray(nnx.jit(lambda m, p, a: m.encode_items(p, a))(_model, post, author))
    assert items.shape == (300, 32) and np.abs(items - want).max() <= 1e-5


def test_compiled_user_tower_on_a_padded_bucket_equals_the_model():
    b = random_batch(tiny(), 2, history_len=11, candidate_len=1, seed=2)
    corpus = make_corpus(_corpus_vectors(300), "f32", chunk=128)
    server = CompiledRetrieval(_sm.with_compute_dtype("float32"), corpus, [(2, 16)], k=5, precision="highest")
    got = np.asarray(server(jax.device_put(pad_batch(b, Bucket(2, 16, 1)))).user_representation)
    want = np.asarray(nnx.jit(lambda m, x: m.encode_user(x))(_model, b))
    assert np.abs(got - want).max() <= 1e-5


def test_chunked_top_k_equals_one_pass_and_skips_masked_items():
    vectors = _corpus_vectors(1000)
    mask = np.ones(1000, bool)
    mask[::7] = False
    users = _corpus_vectors(3, seed=9)
    corpus = make_corpus(vectors, "f32", mask, chunk=128)  # 8 chunks, 24 masked padding rows
    scores, idx = jax.jit(top_k_chunked, static_argnums=2)(users, corpus, 50)
    ref = top_k(users, vectors, mask, 50)
    assert np.array_equal(np.asarray(idx), np.asarray(ref.top_k_indices))
    assert np.allclose(np.asarray(scores), np.asarray(ref.top_k_scores), atol=1e-6)
    assert mask[np.asarray(idx)].all()


def test_quantized_corpora_report_recall_against_exact():
    vectors, users = _corpus_vectors(4000, seed=5), _corpus_vectors(8, seed=6)
    exact = np.asarray(top_k_chunked(users, make_corpus(vectors, "f32", chunk=512), 100)[1])
    for fmt, floor in (("bf16", 0.9), ("int8", 0.9)):
        corpus = make_corpus(vectors, fmt, chunk=512)
        approx = np.asarray(top_k_chunked(users, corpus, 100)[1])
        recall = recall_at_k(exact, approx)
        assert floor <= recall <= 1.0
        assert corpus.nbytes < make_corpus(vectors, "f32", chunk=512).nbytes


def test_compiled_retrieval_bucket():
    corpus = make_corpus(_corpus_vectors(700), "bf16", chunk=256)
    server = CompiledRetrieval(_sm.with_compute_dtype("float32"), corpus, [(2, 16)], k=20, precision="highest")
    b = random_batch(tiny(), 2, history_len=11, candidate_len=1, seed=7)
    out = server(jax.device_put(pad_batch(b, Bucket(2, 16, 1))))
    assert np.asarray(out.top_k_indices).shape == (2, 20)
    assert np.all(np.diff(np.asarray(out.top_k_scores), axis=1) <= 0)


def test_a_retriever_with_a_repeat_term_is_refused_by_the_corpus_path():
    """The compiled path ranks u·v alone; a retriever that also scores the request's history items
    (``repeat_logit``) would be served a different ranking than it was evaluated on."""
    repeats = serving_model(PhoenixRetriever(dataclasses.replace(tiny(), repeat_logit=True), rngs=nnx.Rngs(1)))
    corpus = make_corpus(_corpus_vectors(64), "f32", chunk=64)
    with pytest.raises(ValueError, match="repeat_logit"):
        CompiledRetrieval(repeats, corpus, [(2, 16)], k=5)
