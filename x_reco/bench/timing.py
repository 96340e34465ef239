"""Timing and memory jobs of the benchmark, each run in a fresh worker process (``x_reco.bench.jobs``).

``python -m x_reco.bench.timing JOB.json OUT.json`` runs one timing job given as JSON: the entry
``x_reco.bench.compare`` uses when this tree is the older one of a before/after comparison.

Timing follows inference spec §5.3: compile (lower + compile) and the first call are timed apart from
steady state; >= 3 warm-ups; >= 100 synced calls cycling through pre-built, device-resident requests of
distinct seeded users, each call blocking on every output leaf; pipelined time (M back-to-back calls,
one block) on GPU; host time (hashing, padding into reusable buffers, one ``device_put``) separately.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import jax
import numpy as np

from x_reco.bench.jobs import execute, report
from x_reco.bench.workload import bench_config, bench_source, synthetic_requests
from x_reco.inference.cache import PrefixCache
from x_reco.inference.engine import abstract_batch, aot_compile, make_score_fn, memory_analysis, to_device
from x_reco.inference.params import ServingModel, bytes_by_dtype
from x_reco.inference.quantize import W8_EXCLUDED, make_variant
from x_reco.inference.requests import Bucket, RequestAssembler

S_BUCKETS = (128, 256, 512, 1024)
N_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096)
Shape = tuple[int, int, int]  # (B, S, N)
Grid = tuple[tuple[str, tuple[Shape, ...]], ...]  # (variant, its shapes), in run order


def as_grid(grid: Mapping[str, Iterable[Iterable[int]]] | Iterable[tuple[str, Iterable[Iterable[int]]]]) -> Grid:
    """``{variant: [(B, S, N), ...]}`` (or its items) as an immutable, ordered grid."""
    items = grid.items() if isinstance(grid, Mapping) else grid
    return tuple((str(v), tuple(tuple(int(x) for x in shape) for shape in shapes)) for v, shapes in items)


@dataclasses.dataclass(frozen=True)
class TimingJob:
    """Latency of some variants of one preset over their (B, S, N) shapes, in one process (spec §5.3).

    ``grid`` may be given as a mapping ``{variant: [(B, S, N), ...]}``; it is stored as ``Grid``.
    """

    kind: ClassVar[str] = "timing"
    preset: str
    grid: Grid
    repeat: int = 0
    calls: int = 100
    warmup: int = 3
    users: int = 200
    pipelined: int = 0
    accounting_samples: int = 50
    seed: int = 0
    table_rows: int | None = None
    source_cache: str | None = None
    s_buckets: tuple[int, ...] = S_BUCKETS

    def __post_init__(self):
        object.__setattr__(self, "grid", as_grid(self.grid))
        object.__setattr__(self, "s_buckets", tuple(self.s_buckets))

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.grid)

    def run(self) -> list[dict]:
        return run_timing(self)

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> TimingJob:
        """The JSON timing job that ``compare`` hands to both trees (the format workers have read since
        the first one: ``kind`` and ``variants`` are implied here)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(job) - names - {"kind", "variants"}
        if unknown or job.get("kind", "timing") != "timing":
            raise ValueError(f"not a timing job: kind={job.get('kind')!r}, unknown keys {sorted(unknown)}")
        return cls(**{k: v for k, v in job.items() if k in names})


@dataclasses.dataclass(frozen=True)
class MemoryJob:
    """Fresh-process peak device memory of one variant and one call (spec §5.5; None where unsupported)."""

    kind: ClassVar[str] = "memory"
    preset: str
    variant: str
    shape: Shape
    seed: int = 0
    table_rows: int | None = None
    source_cache: str | None = None

    def run(self) -> list[dict]:
        return run_memory(self)


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """How a §5.1 variant name maps onto a weight format, a path and a compute dtype."""

    name: str
    fmt: str = "f32"
    path: str = "split"  # dense | split | chunked | cached
    compute_dtype: str | None = "bfloat16"  # None: the source's own (what a feed serves, ``served_spec``)
    chunk: int | None = None
    precision: str | None = None
    calibrated: bool = False  # w8 rounded against calibration inputs (``inference.calibrate``), not to nearest


def variant_spec(name: str) -> VariantSpec:
    fixed = {
        "ref-f32": VariantSpec(name, path="dense", compute_dtype="float32", precision="highest"),
        "dense": VariantSpec(name, path="dense"),
        "split": VariantSpec(name),
        "cached": VariantSpec(name, path="cached"),
        "bf16w": VariantSpec(name, fmt="bf16w"),
        "w8": VariantSpec(name, fmt="w8"),
        "t8": VariantSpec(name, fmt="t8"),
        "w8+t8": VariantSpec(name, fmt="w8+t8"),
        "w8+t8-f32": VariantSpec(name, fmt="w8+t8", compute_dtype="float32"),  # what a CPU feed serves
        "w8-cal": VariantSpec(name, fmt="w8", calibrated=True),
        "w8+t8-cal": VariantSpec(name, fmt="w8+t8", calibrated=True),
        "w8+t8-cal-f32": VariantSpec(name, fmt="w8+t8", compute_dtype="float32", calibrated=True),
    }
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"chunked-(\d+)", name)
    if match:
        return VariantSpec(name, path="chunked", chunk=int(match.group(1)))
    raise ValueError(f"unknown benchmark variant {name!r}")


def served_spec(fmt: str, rounding: str | None) -> VariantSpec:
    """The variant a feed serves (``pipeline.feed``): format ``fmt``, its w8 ``rounding``, computed in the
    checkpoint's own dtype (f32 for the trained configs on a CPU), not the benchmark's bf16."""
    calibrated = rounding == "calibrated"
    name = f"{fmt}{'-cal' if calibrated else ''} (as served)"
    return VariantSpec(name, fmt=fmt, compute_dtype=None, calibrated=calibrated)


def bucket_for(b: int, s: int, n: int, s_buckets=S_BUCKETS) -> Bucket:
    """The benchmark's bucket scheme: B exact, S up to the next S bucket, N up to the next power of two."""
    pick = lambda values, x: next((v for v in values if v >= x), x)  # noqa: E731
    return Bucket(b, pick(tuple(s_buckets), s), pick(N_BUCKETS, n))


def _cpu():
    return jax.default_device(jax.devices("cpu")[0])


def build_variant(source: ServingModel, spec: VariantSpec, calibration=None) -> ServingModel:
    """The variant's params, converted on the host CPU (so no f32 transient lands on the accelerator).

    Leaves come back as host numpy arrays, so ``to_device`` places the whole variant on the accelerator.
    A ``calibrated`` spec needs ``calibration`` ({path: H}, ``inference.calibrate.input_moments``).
    """
    if spec.calibrated and calibration is None:
        raise ValueError(f"variant {spec.name!r} rounds against calibration inputs: pass calibration=")
    with _cpu():
        sm = make_variant(source, spec.fmt, calibration if spec.calibrated else None)
        if spec.compute_dtype is not None:
            sm = sm.with_compute_dtype(spec.compute_dtype)
        return sm.replace(state=jax.tree.map(np.asarray, sm.state))


def summarize(times_ms: list[float]) -> dict:
    t = np.asarray(times_ms)
    return {
        "p50": float(np.percentile(t, 50)),
        "p90": float(np.percentile(t, 90)),
        "p99": float(np.percentile(t, 99)),
        "mean": float(t.mean()),
        "std": float(t.std()),
    }


def device_memory() -> dict | None:
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    return {k: int(stats[k]) for k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit") if k in stats}


def time_calls(call, n_inputs: int, warmup: int, calls: int, pipelined: int) -> dict:
    """First call, warm-ups, synced calls (block on every leaf each time) and a pipelined run."""
    t0 = time.perf_counter()
    jax.block_until_ready(call(0))
    first_ms = (time.perf_counter() - t0) * 1e3
    for i in range(warmup):
        jax.block_until_ready(call((i + 1) % n_inputs))
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(call(i % n_inputs))
        times.append((time.perf_counter() - t0) * 1e3)
    pipe = None
    if pipelined:
        t0 = time.perf_counter()
        outs = [call(i % n_inputs) for i in range(pipelined)]
        jax.block_until_ready(outs)
        pipe = (time.perf_counter() - t0) * 1e3 / pipelined
        del outs
    return {"first_call_ms": first_ms, "times_ms": times, "pipelined_ms": pipe, "pipelined_calls": pipelined}


class Workload:
    """Pre-built requests of one (B, S, N): host batches, device-resident copies and raw requests."""

    def __init__(self, sm: ServingModel, b: int, s: int, n: int, users: int, seed: int, s_buckets=S_BUCKETS):
        self.bucket = bucket_for(b, s, n, s_buckets)
        self.n_batches = max(1, math.ceil(users / b))
        cfg = sm.config
        self.requests = synthetic_requests(cfg, self.n_batches * b, s, n, seed=seed)
        self.asm = RequestAssembler(cfg.hash_spec, cfg.num_history_actions)
        self.groups = [self.requests[i * b : (i + 1) * b] for i in range(self.n_batches)]
        self.host = [self.asm.assemble(g, self.bucket, reuse=False) for g in self.groups]
        self.device = [jax.device_put(h, may_alias=False) for h in self.host]
        real = sum(1 + r.history_len + r.num_candidates for r in self.requests)
        self.padding_waste = 1.0 - real / (self.n_batches * self.bucket.tokens)

    def host_times(self, calls: int) -> dict:
        """Hashing + padding into the reused buffer + one device_put (blocked), per request."""
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            batch = self.asm.assemble(self.groups[i % self.n_batches], self.bucket)
            jax.block_until_ready(jax.device_put(batch, may_alias=False))
            times.append((time.perf_counter() - t0) * 1e3)
        return summarize(times)


def _cache_accounting(cache: PrefixCache, wl: Workload, samples: int) -> dict:
    """§5.4 pieces: miss (cold: lookup + encode + score) and append-one-event latencies."""
    miss, append = [], []
    for i in range(min(samples, wl.n_batches)):
        cache.flush()
        t0 = time.perf_counter()
        jax.block_until_ready(cache(wl.host[i], wl.device[i]))
        miss.append((time.perf_counter() - t0) * 1e3)
    for i in range(min(samples, wl.n_batches)):
        host = wl.host[i]
        lengths = (host.history_post_hashes[:, :, 0] != 0).sum(axis=1)
        if lengths.min() < 1:
            continue
        cut = dataclasses.replace(host, **{f: _drop_last(getattr(host, f), lengths) for f in _HIST})
        cache.flush()
        jax.block_until_ready(cache(cut, jax.device_put(cut, may_alias=False)))
        t0 = time.perf_counter()
        jax.block_until_ready(cache(host, wl.device[i]))
        append.append((time.perf_counter() - t0) * 1e3)
    return {
        "miss_ms": summarize(miss) if miss else None,
        "append1_ms": summarize(append) if append else None,
        "append_samples": len(append),
    }


_HIST = ("history_post_hashes", "history_author_hashes", "history_actions", "history_product_surface")


def _drop_last(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    x = np.array(x)
    x[np.arange(len(lengths)), lengths - 1] = 0
    return x


def time_config(sm: ServingModel, params, spec: VariantSpec, b: int, s: int, n: int, job: TimingJob) -> dict:
    """One record: compile, first call, synced/pipelined timings, host time, memory, cache stats."""
    wl = Workload(sm, b, s, n, job.users, job.seed, job.s_buckets)
    pipelined = job.pipelined
    cache_info = None
    if spec.path == "cached":
        cache = PrefixCache(
            sm, classes=(wl.bucket.history,), slots=wl.n_batches * b + b, precision=spec.precision, params=params
        )
        t0 = time.perf_counter()
        jax.block_until_ready([cache(h, d) for h, d in zip(wl.host, wl.device)])  # warm every user
        warm_s = time.perf_counter() - t0
        compile_s = cache.compile_s
        timing = time_calls(lambda i: cache(wl.host[i], wl.device[i]), wl.n_batches, job.warmup, job.calls, pipelined)
        score_exe = next(exe for key, exe in cache.executables.items() if key[0] == "score")
        mem = memory_analysis(score_exe)
        accounting = _cache_accounting(cache, wl, job.accounting_samples)
        cache_info = {"stats": cache.summary(), "warm_s": warm_s, **accounting}
        del cache
    else:
        fn = make_score_fn(sm, "split" if spec.path == "split" else spec.path, spec.chunk)
        ctx = jax.default_matmul_precision(spec.precision) if spec.precision else contextlib.nullcontext()
        compiled, compile_s = aot_compile(fn, params, abstract_batch(wl.bucket, sm), precision=spec.precision)
        with ctx:
            call = lambda i: compiled(params, wl.device[i])  # noqa: E731
            timing = time_calls(call, wl.n_batches, job.warmup, job.calls, pipelined)
        mem = memory_analysis(compiled)
    stats = summarize(timing["times_ms"])
    host = wl.host_times(min(job.calls, 100))
    return {
        "preset": job.preset,
        "mode": sm.config.candidate_position_mode,
        "variant": spec.name,
        "format": sm.variant,
        "path": spec.path,
        "chunk": spec.chunk,
        "compute_dtype": sm.compute_dtype,
        "B": b,
        "S": s,
        "N": n,
        "repeat": job.repeat,
        "bucket": wl.bucket.as_dict(),
        "padding_waste": wl.padding_waste,
        "users": wl.n_batches * b,
        "compile_s": compile_s,
        **timing,
        **stats,
        "candidates_per_s": b * n / (stats["p50"] / 1e3),
        "host_ms": host,
        "end_to_end_p50_ms": stats["p50"] + host["p50"],
        "memory_analysis": mem,
        "device_memory_process": device_memory(),
        "param_bytes": bytes_by_dtype(sm.params),
        "kv_bytes_per_user": kv_bytes(sm, wl.bucket.history),
        "cache": cache_info,
        "table_rows": list(sm.config.vocab_sizes),
        "source_param_digest": sm.source_param_digest,
        "config_digest": sm.config.digest(),
        "w8_excluded": dict(W8_EXCLUDED) if "w8" in sm.variant else None,
    }


def kv_bytes(sm: ServingModel, s: int) -> int:
    """layers x 2 x Hkv x dk x P x bytes (compute dtype) for P = 1 + S."""
    c = sm.config
    return c.num_layers * 2 * c.num_kv_heads * c.key_size * (1 + s) * sm.cd.itemsize


def run_timing(job: TimingJob) -> list[dict]:
    cfg = bench_config(job.preset, job.table_rows)
    source = bench_source(cfg, root=job.source_cache)
    records = []
    for name, shapes in job.grid:
        spec = variant_spec(name)
        sm = build_variant(source, spec)
        params = to_device(sm.params)
        for b, s, n in shapes:
            print(f"[{job.preset} r{job.repeat}] {name} B={b} S={s} N={n}", file=sys.stderr, flush=True)
            records.append(time_config(sm, params, spec, b, s, n, job))
            report(f"{job.preset} r{job.repeat} {name} B={b} S={s} N={n}")
        del params, sm
        gc.collect()
    return records


def run_memory(job: MemoryJob) -> list[dict]:
    """Peak device memory before, with the params resident and after one call of ``job.shape``."""
    cfg = bench_config(job.preset, job.table_rows)
    spec = variant_spec(job.variant)
    sm = build_variant(bench_source(cfg, root=job.source_cache), spec)
    before = device_memory()
    params = to_device(sm.params)
    jax.block_until_ready(params)
    resident = device_memory()
    b, s, n = job.shape
    wl = Workload(sm, b, s, n, users=b, seed=job.seed)
    fn = make_score_fn(sm, spec.path if spec.path != "cached" else "split", spec.chunk)
    compiled, _ = aot_compile(fn, params, abstract_batch(wl.bucket, sm), precision=spec.precision)
    jax.block_until_ready(compiled(params, wl.device[0]))
    return [
        {
            "kind": "memory",
            "preset": job.preset,
            "variant": spec.name,
            "format": sm.variant,
            "B": b,
            "S": s,
            "N": n,
            "before": before,
            "after_params": resident,
            "after_call": device_memory(),
            "memory_analysis": memory_analysis(compiled),
            "param_bytes": bytes_by_dtype(sm.params),
            "source_param_digest": sm.source_param_digest,
        }
    ]


def main(argv: list[str]) -> None:
    """A JSON timing job in, its records as JSON out (the harness and the asset never write job files)."""
    job = TimingJob.from_dict(json.loads(Path(argv[0]).read_text()))
    Path(argv[1]).write_text(json.dumps(execute(job)))


if __name__ == "__main__":
    main(sys.argv[1:])
