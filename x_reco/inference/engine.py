"""The compiled request path: ``score(params, batch) -> ScoreOutput``, AOT-compiled per (B, S, N) bucket.

One jitted function does everything (table gathers, embedding assembly, prefix encode, candidate pass,
head, probabilities, weighted score) by running the training model's own methods on the serving state.
Parameters are an argument (never baked in as constants), stay resident on the device, and the static
facts (config, compute dtype, path) are closed over. At start-up ``CompiledRanker`` lowers and
compiles one executable per bucket; requests are zero-padded up to the next bucket; a shape outside
the set raises, or with ``fallback="count"`` is compiled on demand and counted. Calling an AOT
``Compiled`` object can never recompile.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from x_reco.common.types import RecsysBatch
from x_reco.inference.params import ServingModel, ServingParams
from x_reco.inference.requests import Bucket, BucketSet, empty_batch, pad_batch, real_tokens

PATHS = ("dense", "split", "chunked")
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@struct.dataclass
class ScoreOutput:
    """Per-request outputs: f32 logits and sigmoid probabilities [B, N, A], weighted score [B, N]
    (-inf at padded candidates, so ranking puts them last) and the candidate mask [B, N]."""

    logits_bca: jax.Array
    probs_bca: jax.Array
    score_bc: jax.Array
    candidate_mask_bc: jax.Array


def finish(score_weights_a: jax.Array, logits_bca: jax.Array, candidate_mask_bc: jax.Array) -> ScoreOutput:
    """Probabilities and the weighted score ``sum_a w_a p_a`` (f32 weights [A]) from logits."""
    logits_bca = logits_bca.astype(jnp.float32)
    probs = jax.nn.sigmoid(logits_bca)
    score = jnp.einsum("bca,a->bc", probs, jnp.asarray(score_weights_a, jnp.float32))
    return ScoreOutput(logits_bca, probs, jnp.where(candidate_mask_bc, score, -jnp.inf), candidate_mask_bc)


def make_score_fn(sm: ServingModel, path: str = "split", chunk: int | None = None) -> Callable:
    """The pure request function ``score(params: ServingParams, batch) -> ScoreOutput`` of ``sm``'s graph.

    It merges ``sm``'s graph with the state it is given and runs the ranker's own methods: "dense"
    (``model(batch)``, one pass with the (P+N)^2 mask), "split" (``model.score_split``: prefix once,
    candidates over its K/V; the default) or "chunked" (split with candidates in static chunks of
    ``chunk``). Any variant's state works: the layers dispatch on the weight format.
    """
    if path not in PATHS:
        raise ValueError(f"path {path!r} not in {PATHS}")
    if path == "chunked" and not chunk:
        raise ValueError("path='chunked' needs chunk >= 1")
    if sm.kind != "ranker":
        raise ValueError(f"make_score_fn needs a ranker ServingModel, got {sm.kind}")

    def score(params: ServingParams, batch: RecsysBatch) -> ScoreOutput:
        model = sm.module(params.state)
        out = model(batch) if path == "dense" else model.score_split(batch, chunk if path == "chunked" else None)
        return finish(params.score_weights, out.logits_bca, out.candidate_mask_bc)

    return score


def to_device(tree, device=None):
    """Copy a pytree to ``device`` (default: the default backend's first device), explicitly.

    ``jax.device_put(x)`` without a device leaves an already committed array where it is, so params
    converted under ``jax.default_device(cpu)`` would otherwise stay on the host and be copied to the
    accelerator on every call.
    """
    return jax.device_put(tree, device if device is not None else jax.devices()[0])


def abstract(tree):
    """ShapeDtypeStructs of a pytree of arrays (for ``lower``)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def abstract_batch(bucket: Bucket, sm: ServingModel) -> RecsysBatch:
    return abstract(empty_batch(bucket, sm.config.num_hashes, sm.config.num_history_actions))


def block(tree):
    """Block until every leaf of ``tree`` is ready; returns it."""
    return jax.block_until_ready(tree)


class CompileCounter(contextlib.AbstractContextManager):
    """Counts XLA backend compilations while active (``jax.monitoring`` duration events)."""

    def __init__(self):
        self.count = 0

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        unregister = getattr(jax.monitoring, "unregister_event_duration_listener", None)
        if unregister is not None:
            unregister(self._listener)
        return False


def aot_compile(fn: Callable, *args, precision: str | None = None, donate_argnums=()):
    """``jax.jit(fn).lower(*abstract args).compile()`` -> (Compiled, seconds)."""
    ctx = jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()
    t0 = time.perf_counter()
    with ctx:
        compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*[abstract(a) for a in args]).compile()
    return compiled, time.perf_counter() - t0


class ExecutableCache:
    """Compiled executables keyed by static facts and argument shapes, least recently used evicted past ``maxsize``.

    Caches with the same model config, variant and shapes can share one (pass it to each), so a
    second cache compiles nothing; the owner decides its lifetime.
    """

    def __init__(self, maxsize: int = 32):
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize} must be >= 1")
        self.maxsize = maxsize
        self._items: collections.OrderedDict[tuple, object] = collections.OrderedDict()

    def get(self, key: tuple):
        exe = self._items.get(key)
        if exe is not None:
            self._items.move_to_end(key)
        return exe

    def put(self, key: tuple, exe) -> None:
        self._items[key] = exe
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def items(self) -> list[tuple[tuple, object]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)


def memory_analysis(compiled) -> dict[str, int] | None:
    """Argument / output / temp / generated-code (and peak, when reported) bytes of an executable."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if m is None:
        return None
    names = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "temp_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
        "peak_memory_in_bytes",
    )
    return {n: int(getattr(m, n)) for n in names if getattr(m, n, None) is not None}


class CompiledRanker:
    """AOT-compiled request path of one ServingModel over a bucket set.

    ``ranker(batch)`` takes a host (numpy) ``RecsysBatch``, pads it into this ranker's reusable
    buffers, does one ``device_put`` of the batch pytree and runs that bucket's executable. Returns
    ``(ScoreOutput on device, bucket)``; rows >= B and candidates >= N of the output are padding.
    """

    def __init__(
        self,
        sm: ServingModel,
        buckets: BucketSet | Iterable[Bucket],
        *,
        path: str = "split",
        chunk: int | None = None,
        fallback: str = "error",
        precision: str | None = None,
    ):
        if fallback not in ("error", "count"):
            raise ValueError(f"fallback {fallback!r} not in ('error', 'count')")
        if isinstance(buckets, BucketSet):
            self.bucket_set, bucket_list = buckets, buckets.all()
        else:
            bucket_list = sorted(set(buckets))
            self.bucket_set = BucketSet(
                *(tuple({getattr(b, f) for b in bucket_list}) for f in ("batch", "history", "candidates"))
            )
        self.sm, self.path, self.chunk, self.fallback, self.precision = sm, path, chunk, fallback, precision
        self.fn = make_score_fn(sm, path, chunk)
        self.params = to_device(sm.params)
        self.executables: dict[Bucket, object] = {}
        self.compile_s: dict[Bucket, float] = {}
        for bucket in bucket_list:
            self.executables[bucket], self.compile_s[bucket] = aot_compile(
                self.fn, self.params, abstract_batch(bucket, sm), precision=precision
            )
        self._buffers: dict[Bucket, RecsysBatch] = {}
        self._fallback_fn = jax.jit(self.fn)
        self.requests = self.fallbacks = self._real = self._padded = 0

    def select(self, batch: RecsysBatch) -> Bucket | None:
        b, s, n = batch.batch_size, batch.num_history, batch.num_candidates
        bucket = self.bucket_set.select(b, s, n, self.sm.config.candidate_position_mode)
        return bucket if bucket in self.executables else None

    def device_batch(self, batch: RecsysBatch, bucket: Bucket) -> RecsysBatch:
        """Pad into the bucket's reusable host buffer and copy it to the device in one ``device_put``."""
        if bucket not in self._buffers:
            self._buffers[bucket] = empty_batch(bucket, self.sm.config.num_hashes, self.sm.config.num_history_actions)
        return jax.device_put(pad_batch(batch, bucket, self._buffers[bucket]), may_alias=False)

    def __call__(self, batch: RecsysBatch) -> tuple[ScoreOutput, Bucket]:
        bucket = self.select(batch)
        self.requests += 1
        if bucket is None:
            if self.fallback == "error":
                raise ValueError(
                    f"request shape (B={batch.batch_size}, S={batch.num_history}, N={batch.num_candidates}) "
                    f"is outside the compiled buckets {self.bucket_set}"
                )
            self.fallbacks += 1
            exact = Bucket(batch.batch_size, batch.num_history, batch.num_candidates)
            self._count(batch, exact)
            return self._fallback_fn(self.params, jax.device_put(batch, may_alias=False)), exact
        self._count(batch, bucket)
        return self.executables[bucket](self.params, self.device_batch(batch, bucket)), bucket

    def _count(self, batch: RecsysBatch, bucket: Bucket) -> None:
        self._real += real_tokens(batch)
        self._padded += bucket.tokens

    def score_numpy(self, batch: RecsysBatch) -> dict[str, np.ndarray]:
        """Blocking convenience: outputs as numpy, trimmed to the request's B and N."""
        out, _ = self(batch)
        b, n = batch.batch_size, batch.num_candidates
        return {
            k: np.asarray(getattr(out, k))[:b, :n] for k in ("logits_bca", "probs_bca", "score_bc", "candidate_mask_bc")
        }

    def stats(self) -> dict:
        """Executable count, compile seconds, fallbacks and padding waste (1 - real / bucket tokens)."""
        return {
            "executables": len(self.executables),
            "compile_s_total": float(sum(self.compile_s.values())),
            "compile_s": {f"B{b.batch}_S{b.history}_N{b.candidates}": s for b, s in self.compile_s.items()},
            "requests": self.requests,
            "fallbacks": self.fallbacks,
            "padding_waste": (1.0 - self._real / self._padded) if self._padded else 0.0,
        }
