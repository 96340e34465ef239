"""Retrieval serving job of the benchmark (spec §2.6, §4.2): exact top-k over corpora of several sizes
and formats, with compile time, synced / pipelined timings and recall@k against the f32 corpus."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import ClassVar

import jax
import numpy as np

from x_reco.bench.timing import summarize, time_calls
from x_reco.bench.workload import bench_config, bench_source, synthetic_requests
from x_reco.common.types import RecsysBatch
from x_reco.inference.requests import Bucket, RequestAssembler
from x_reco.inference.retrieval import CompiledRetrieval, build_corpus_vectors, make_corpus, recall_at_k


@dataclasses.dataclass(frozen=True)
class RetrievalJob:
    """Top-k of ``users`` synthetic users over random corpora of ``corpus_sizes`` items, per format and batch."""

    kind: ClassVar[str] = "retrieval"
    preset: str = "oss-mini"
    corpus_sizes: tuple[int, ...] = (1_000_000,)
    formats: tuple[str, ...] = ("bf16", "int8")  # f32 always runs first, as the exact reference
    batch: tuple[int, ...] = (1,)
    k: int = 1000
    users: int = 200
    calls: int = 100
    warmup: int = 3
    pipelined: int = 0
    repeat: int = 0
    chunk: int = 1 << 16
    seed: int = 0
    table_rows: int | None = None
    source_cache: str | None = None

    def run(self) -> list[dict]:
        return run_retrieval(self)


def _retrieval_batches(cfg, users: int, b: int, s_bucket: int, seed: int) -> list[RecsysBatch]:
    reqs = synthetic_requests(cfg, users, cfg.history_len, 0, seed=seed)
    asm = RequestAssembler(cfg.hash_spec, cfg.num_history_actions)
    bucket = Bucket(b, s_bucket, 1)
    return [asm.assemble(reqs[i : i + b], bucket, reuse=False) for i in range(0, users - b + 1, b)]


def run_retrieval(job: RetrievalJob) -> list[dict]:
    """One record per (corpus size, format, batch)."""
    cfg = bench_config(job.preset, job.table_rows)
    sm = bench_source(cfg, kind="retriever", root=job.source_cache).with_compute_dtype("bfloat16")
    rng = np.random.default_rng(job.seed)
    n_max = max(job.corpus_sizes)
    rows = min(cfg.post_vocab_size, cfg.author_vocab_size)
    post = rng.integers(1, rows, (n_max, cfg.num_post_hashes)).astype(np.int32)
    author = rng.integers(1, rows, (n_max, cfg.num_author_hashes)).astype(np.int32)
    t0 = time.perf_counter()
    vectors = build_corpus_vectors(sm, post, author)
    build_s = time.perf_counter() - t0
    s_bucket, k = 128 if cfg.history_len <= 128 else 512, job.k
    records = []
    for n in job.corpus_sizes:
        exact_idx = {}
        for fmt in ("f32",) + tuple(f for f in job.formats if f != "f32"):
            corpus = make_corpus(vectors[:n], fmt, chunk=job.chunk)
            for b in job.batch:
                batches = [jax.device_put(x) for x in _retrieval_batches(cfg, job.users, b, s_bucket, job.seed)]
                server = CompiledRetrieval(sm, corpus, [(b, s_bucket)], k)
                call = lambda i, srv=server, xs=batches: srv(xs[i])  # noqa: E731 - bound now, not at the loop's end
                timing = time_calls(call, len(batches), job.warmup, job.calls, job.pipelined)
                idx = np.concatenate([np.asarray(server(x).top_k_indices) for x in batches])
                if fmt == "f32":
                    exact_idx[b] = idx
                print(f"[retrieval] N={n} {fmt} B={b}", file=sys.stderr, flush=True)
                stats = summarize(timing["times_ms"])
                records.append(
                    {
                        "kind": "retrieval",
                        "preset": job.preset,
                        "repeat": job.repeat,
                        "corpus_size": n,
                        "format": fmt,
                        "B": b,
                        "S": cfg.history_len,
                        "k": k,
                        "chunk": corpus.chunk,
                        "corpus_bytes": corpus.nbytes,
                        "corpus_build_s": build_s,
                        "compile_s": server.total_compile_s,
                        **timing,
                        **stats,
                        "users_per_s": b / (stats["p50"] / 1e3),
                        "recall_at_k_vs_f32": recall_at_k(exact_idx[b], idx) if b in exact_idx else None,
                        "source_param_digest": sm.source_param_digest,
                    }
                )
                del server, call
            del corpus
    return records
