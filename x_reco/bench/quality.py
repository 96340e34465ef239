"""Benchmark jobs for quality (variants vs ``ref-f32``, spec §5.6) and retrieval serving (spec §2.6, §4.2).

Quality runs on a trained checkpoint (``--checkpoint`` + ``--sequences``) when one is given, else on
the random-init benchmark source, labelled "random-init, not gated".
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from x_reco.common.types import RecsysBatch
from x_reco.data.examples import EngagementSequences
from x_reco.inference.bench_worker import build_variant, summarize, time_calls, variant_spec
from x_reco.inference.engine import aot_compile, make_score_fn, memory_analysis, to_device
from x_reco.inference.params import ServingModel, bytes_by_dtype, serving_model, total_bytes
from x_reco.inference.quality import VacuousReference, quality_block
from x_reco.inference.retrieval import CompiledRetrieval, build_corpus_vectors, make_corpus, recall_at_k
from x_reco.inference.workload import bench_config, bench_source, checkpoint_users, synthetic_user_batch

QUALITY_VARIANTS = ("dense", "split", "bf16w", "w8", "t8", "w8+t8")


def _rows(batch: RecsysBatch, start: int, stop: int) -> RecsysBatch:
    return jax.tree.map(lambda x: np.asarray(x)[start:stop], batch)


def score_users(sm: ServingModel, spec, batch: RecsysBatch, users_per_call: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Logits [U, N, A] and weighted scores [U, N] of every user, in fixed-size calls (one compile)."""
    u = batch.batch_size
    pad = -u % users_per_call
    if pad:
        batch = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]), batch)
    fn = make_score_fn(sm, "dense" if spec.path == "dense" else "split")
    params = to_device(sm.params)
    compiled, _ = aot_compile(fn, params, _rows(batch, 0, users_per_call), precision=spec.precision)
    logits, scores = [], []
    for start in range(0, u + pad, users_per_call):
        out = compiled(params, jax.device_put(_rows(batch, start, start + users_per_call)))
        logits.append(np.asarray(out.logits_bca))
        scores.append(np.asarray(out.score_bc))
    return np.concatenate(logits)[:u], np.concatenate(scores)[:u], memory_analysis(compiled) or {}


def _source(job: dict) -> tuple[ServingModel, RecsysBatch, dict]:
    if job.get("checkpoint"):
        from x_reco.models.checkpoint import restore_checkpoint

        seqs = EngagementSequences.from_npz(job["sequences"])
        model, meta = restore_checkpoint(job["checkpoint"], hash_spec=seqs.hash_spec)
        with jax.default_device(jax.devices("cpu")[0]):
            source = serving_model(model, param_version=meta["param_version"])
        source = source.replace(state=jax.tree.map(np.asarray, source.state))
        batch = checkpoint_users(seqs, job["users"], job["candidates"], seed=job["seed"])
        info = {"trained": True, "checkpoint": str(job["checkpoint"]), "sequences": str(job["sequences"]),
                "step": meta.get("step"), "param_version": meta.get("param_version")}  # fmt: skip
        return source, batch, info
    cfg = bench_config(job["preset"], job.get("table_rows"))
    source = bench_source(cfg, root=job.get("source_cache"))
    batch = synthetic_user_batch(cfg, job["users"], cfg.history_len, job["candidates"], seed=job["seed"])
    return source, batch, {"trained": False, "preset": job["preset"]}


def run_quality(job: dict) -> list[dict]:
    """Quality blocks of every variant against ref-f32 on the same source params and users."""
    source, batch, info = _source(job)
    per_call = job.get("users_per_call", 8)
    ref_spec = variant_spec("ref-f32")
    ref_logits, ref_score, _ = score_users(build_variant(source, ref_spec), ref_spec, batch, per_call)
    f32_bytes = total_bytes(source.params)
    records = []
    for name in job.get("variants", QUALITY_VARIANTS):
        spec = variant_spec(name)
        sm = build_variant(source, spec)
        t0 = time.perf_counter()
        logits, score, mem = score_users(sm, spec, batch, per_call)
        try:
            block = quality_block(ref_logits, logits, ref_score, score, sm.config.output_action_names,
                                  trained=info["trained"])  # fmt: skip
        except VacuousReference as err:
            block = {"aborted": str(err)}
        print(f"[quality] {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        records.append({
            "kind": "quality", "variant": name, "format": sm.variant, **info,
            "source_param_digest": sm.source_param_digest, "config_digest": sm.config.digest(),
            "S": batch.num_history, "N": batch.num_candidates, "quality": block,
            "param_bytes": bytes_by_dtype(sm.params), "bytes_total": total_bytes(sm.params),
            "bytes_ratio_vs_f32": total_bytes(sm.params) / f32_bytes, "memory_analysis": mem,
            "quantized": list(sm.quantized), "excluded": [list(e) for e in sm.excluded],
        })  # fmt: skip
    return records


def _retrieval_batches(cfg, users: int, b: int, s_bucket: int, seed: int) -> list[RecsysBatch]:
    from x_reco.inference.requests import Bucket, RequestAssembler
    from x_reco.inference.workload import synthetic_requests

    reqs = synthetic_requests(cfg, users, cfg.history_len, 0, seed=seed)
    asm = RequestAssembler(cfg.hash_spec, cfg.num_history_actions)
    bucket = Bucket(b, s_bucket, 1)
    return [asm.assemble(reqs[i : i + b], bucket, reuse=False) for i in range(0, users - b + 1, b)]


def run_retrieval(job: dict) -> list[dict]:
    """Top-k over corpora of several sizes and formats: compile, synced/pipelined timings, recall@k vs f32."""
    cfg = bench_config(job["preset"], job.get("table_rows"))
    sm = bench_source(cfg, kind="retrieval", root=job.get("source_cache")).with_compute_dtype("bfloat16")
    rng = np.random.default_rng(job["seed"])
    n_max = max(job["corpus_sizes"])
    rows = min(cfg.post_vocab_size, cfg.author_vocab_size)
    post = rng.integers(1, rows, (n_max, cfg.num_post_hashes)).astype(np.int32)
    author = rng.integers(1, rows, (n_max, cfg.num_author_hashes)).astype(np.int32)
    t0 = time.perf_counter()
    vectors = build_corpus_vectors(sm, post, author)
    build_s = time.perf_counter() - t0
    s_bucket, k = 128 if cfg.history_len <= 128 else 512, job["k"]
    records = []
    for n in job["corpus_sizes"]:
        exact_idx = {}
        for fmt in ("f32",) + tuple(f for f in job["formats"] if f != "f32"):
            corpus = make_corpus(vectors[:n], fmt, chunk=job.get("chunk", 1 << 16))
            for b in job["batch"]:
                batches = [jax.device_put(x) for x in _retrieval_batches(cfg, job["users"], b, s_bucket, job["seed"])]
                server = CompiledRetrieval(sm, corpus, [(b, s_bucket)], k)
                timing = time_calls(lambda i: server(batches[i]), len(batches), job["warmup"], job["calls"], job["pipelined"])
                idx = np.concatenate([np.asarray(server(x).top_k_indices) for x in batches])
                if fmt == "f32":
                    exact_idx[b] = idx
                print(f"[retrieval] N={n} {fmt} B={b}", file=sys.stderr, flush=True)
                records.append({
                    "kind": "retrieval", "preset": job["preset"], "repeat": job["repeat"], "corpus_size": n,
                    "format": fmt, "B": b, "S": cfg.history_len, "k": k, "chunk": corpus.chunk,
                    "corpus_bytes": corpus.nbytes, "corpus_build_s": build_s,
                    "compile_s": server.total_compile_s, **timing, **summarize(timing["times_ms"]),
                    "users_per_s": b / (summarize(timing["times_ms"])["p50"] / 1e3),
                    "recall_at_k_vs_f32": recall_at_k(exact_idx[b], idx) if b in exact_idx else None,
                    "source_param_digest": sm.source_param_digest,
                })  # fmt: skip
                del server
            del corpus
    return records

