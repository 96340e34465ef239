"""Retrieval serving: compiled user tower per (B, S) bucket and exact top-k over a device-resident corpus.

Both towers are the trained ``PhoenixRetriever``'s own methods (``encode_user``, ``encode_items``) run
on the serving state. The corpus [N, D] is built offline by the candidate tower and stored f32, bf16 or row-wise int8
(``s_r = max_d |x_rd| / 127``) with a corpus mask. Top-k is a matmul + ``lax.top_k`` per corpus chunk
and a running merge (``lax.scan``), so memory stays O(B x chunk) for any N; the result equals one
pass over the whole corpus. Approximate variants (bf16 / int8 corpus) report recall@k against exact f32.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from x_reco.common.types import RecsysBatch, RetrievalOutput
from x_reco.inference.engine import abstract_batch, aot_compile, to_device
from x_reco.inference.params import ServingModel
from x_reco.inference.requests import Bucket
from x_reco.models.retriever import MASKED_SCORE

CORPUS_FORMATS = ("f32", "bf16", "int8")


@struct.dataclass
class Corpus:
    """Unit-norm item vectors, padded to whole chunks: ``data`` [nc*chunk, D], per-row ``scale``, ``mask``."""

    data: jax.Array
    scale: jax.Array
    mask: jax.Array
    chunk: int = struct.field(pytree_node=False)
    size: int = struct.field(pytree_node=False)
    fmt: str = struct.field(pytree_node=False)

    @property
    def nbytes(self) -> int:
        return int(self.data.size * self.data.dtype.itemsize + self.scale.size * 4 + self.mask.size)


def build_corpus_vectors(
    sm: ServingModel, post_hashes_nk: np.ndarray, author_hashes_nk: np.ndarray, batch: int = 1 << 16
) -> np.ndarray:
    """The retriever's candidate tower (``encode_items``) over a catalogue in fixed-size chunks -> host f32 [N, D].

    One compile: the last chunk is padded to ``batch`` rows.
    """
    if sm.kind != "retriever":
        raise ValueError(f"build_corpus_vectors needs a retriever ServingModel, got {sm.kind}")
    encode = jax.jit(lambda state, p, a: sm.module(state).encode_items(p, a))
    state = to_device(sm.state)
    n = len(post_hashes_nk)
    out = None
    for start in range(0, n, batch):
        p, a = post_hashes_nk[start : start + batch], author_hashes_nk[start : start + batch]
        rows = len(p)
        if rows < batch:
            p, a = np.pad(p, ((0, batch - rows), (0, 0))), np.pad(a, ((0, batch - rows), (0, 0)))
        v = np.asarray(encode(state, p, a))[:rows]
        if out is None:
            out = np.empty((n, v.shape[1]), np.float32)
        out[start : start + rows] = v
    return out


def make_corpus(
    vectors_nd: np.ndarray, fmt: str = "bf16", mask_n: np.ndarray | None = None, chunk: int = 1 << 16
) -> Corpus:
    """Device corpus in ``fmt`` ("f32", "bf16", "int8" row-wise), padded with masked rows to whole chunks."""
    if fmt not in CORPUS_FORMATS:
        raise ValueError(f"corpus format {fmt!r} not in {CORPUS_FORMATS}")
    n, d = vectors_nd.shape
    chunk = min(chunk, n)
    padded = -(-n // chunk) * chunk
    x = np.zeros((padded, d), np.float32)
    x[:n] = vectors_nd
    mask = np.zeros(padded, bool)
    mask[:n] = True if mask_n is None else mask_n
    scale = np.ones(padded, np.float32)
    if fmt == "int8":
        amax = np.abs(x).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        data = np.clip(np.round(x / scale[:, None]), -127, 127).astype(np.int8)
    else:
        data = jnp.asarray(x, jnp.bfloat16 if fmt == "bf16" else jnp.float32)
    data, scale, mask = to_device((data, scale, mask))
    return Corpus(data, scale, mask, chunk, n, fmt)


def top_k_chunked(user_bd: jax.Array, corpus: Corpus, k: int) -> tuple[jax.Array, jax.Array]:
    """Exact top-``k`` of ``u . corpus`` over corpus chunks with a running merge -> (scores, indices) [B, k]."""
    b, d = user_bd.shape
    nc = corpus.data.shape[0] // corpus.chunk
    dt = jnp.float32 if corpus.fmt == "f32" else jnp.bfloat16
    u = user_bd.astype(dt)
    kc = min(k, corpus.chunk)
    xs = (
        corpus.data.reshape(nc, corpus.chunk, d),
        corpus.scale.reshape(nc, -1),
        corpus.mask.reshape(nc, -1),
        jnp.arange(nc, dtype=jnp.int32) * corpus.chunk,
    )

    def step(carry, x):
        best_s, best_i = carry
        data, scale, mask, offset = x
        s = jnp.dot(u, data.astype(dt).T, preferred_element_type=jnp.float32) * scale[None, :]
        s = jnp.where(mask[None, :], s, MASKED_SCORE)
        cs, ci = jax.lax.top_k(s, kc)
        merged_s, pos = jax.lax.top_k(jnp.concatenate([best_s, cs], axis=1), k)
        merged_i = jnp.take_along_axis(jnp.concatenate([best_i, ci + offset], axis=1), pos, axis=1)
        return (merged_s, merged_i), None

    init = (jnp.full((b, k), -jnp.inf, jnp.float32), jnp.full((b, k), -1, jnp.int32))
    (scores, indices), _ = jax.lax.scan(step, init, xs)
    return scores, indices


class CompiledRetrieval:
    """User tower + chunked top-k, AOT-compiled per (B, S) bucket; ``retrieval(batch)`` -> RetrievalOutput."""

    def __init__(
        self, sm: ServingModel, corpus: Corpus, buckets: list[tuple[int, int]], k: int, precision: str | None = None
    ):
        if sm.kind != "retriever":
            raise ValueError(f"CompiledRetrieval needs a retriever ServingModel, got {sm.kind}")
        if sm.config.repeat_logit:
            raise ValueError(
                "CompiledRetrieval ranks u·v over a corpus index; this retriever also scores the items of "
                "the request's history (repeat_logit), which PhoenixSource and eval.retrieval.user_scores apply"
            )
        if k > corpus.size:
            raise ValueError(f"k={k} exceeds the corpus size {corpus.size}")
        self.sm, self.corpus, self.k = sm, corpus, k
        self.params = to_device(sm.params)

        def retrieve(params, corpus_, batch):
            u = sm.module(params.state).encode_user(batch)
            scores, idx = top_k_chunked(u, corpus_, k)
            return RetrievalOutput(u, idx, scores)

        self.fn = retrieve
        self.executables, self.compile_s = {}, {}
        t0 = time.perf_counter()
        for b, s in buckets:
            bucket = Bucket(b, s, 1)
            self.executables[(b, s)], self.compile_s[(b, s)] = aot_compile(
                retrieve, self.params, corpus, abstract_batch(bucket, sm), precision=precision
            )
        self.total_compile_s = time.perf_counter() - t0

    def __call__(self, device_batch: RecsysBatch) -> RetrievalOutput:
        key = (device_batch.batch_size, device_batch.num_history)
        if key not in self.executables:
            raise ValueError(f"retrieval request (B, S)={key} outside the compiled buckets {sorted(self.executables)}")
        return self.executables[key](self.params, self.corpus, device_batch)


def recall_at_k(exact_idx_bk: np.ndarray, approx_idx_bk: np.ndarray) -> float:
    """Mean |exact ∩ approx| / k over rows."""
    k = exact_idx_bk.shape[1]
    return float(np.mean([len(set(e) & set(a)) / k for e, a in zip(exact_idx_bk, approx_idx_bk)]))
