"""Prefix-cache append tail (issue 13 "Speed"): B=1 requests of users whose history grows one event per request.

``python -m x_reco.bench.append_tail --out DIR [--compare | --mode M] [--appends 200] [--candidates 64 ...]``
builds the benchmark source of a preset (``oss-mini`` with 10,000 table rows by default: the trained shape,
small tables) and pre-builds host and device batches for users whose history grows from ``--start``
events to the S class (a user's first request is a miss, every later one appends one event), then serves
them through one ``PrefixCache``; each request's N is drawn from ``--candidates`` (its own bucket).
Warm-up (per ``--mode``: nothing, first-use warming, or ``PrefixCache.warmup`` of every bucket; then
``--warmup-requests`` requests) is timed apart from the steady-state loop; ``--compare`` runs the same
requests in every mode (each with its own cache and executables, in one process). Every timed request is
split into phases (warm, lookup, moves, append, encode, score), each ending with ``jax.block_until_ready``, and
records the XLA compilations it triggered (``CompileCounter``). Writes ``DIR/raw.json`` (settings,
metadata, load, every raw time), ``DIR/table.md`` and ``DIR/append_tail.png`` (histogram and CDF).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from x_reco.bench.metadata import collect
from x_reco.bench.timing import build_variant, summarize, variant_spec
from x_reco.bench.workload import bench_config, bench_source
from x_reco.common.plotting import figure_png, subplots
from x_reco.inference.cache import PrefixCache
from x_reco.inference.engine import CompileCounter, to_device
from x_reco.inference.requests import Bucket, RawRequest, RequestAssembler

PHASES = ("warm", "lookup", "moves", "append", "encode", "score")
MODES = {
    "before": "no warmup, no warm-on-first-use (the cache before the fix)",
    "first-use": "default PrefixCache: a new bucket's first request warms every step",
    "warmup": "PrefixCache.warmup(every N bucket) at start-up",
}


@dataclasses.dataclass(frozen=True)
class AppendTailConfig:
    """One append-tail run: preset, shapes, how many appends are timed and how the cache is warmed."""

    preset: str = "oss-mini"
    table_rows: int = 10_000
    variant: str = "cached"  # a timing.variant_spec name: its compute dtype and precision
    history: int = 128  # the S class
    candidates: tuple[int, ...] = (64,)  # N buckets; each request draws one (seeded), exact N = its bucket
    start: int = 16  # events of a user's first (miss) request
    appends: int = 200  # timed appends (at least)
    warmup_requests: int = 1  # the first user's first request (a miss): a server that has served once
    mode: str = "warmup"  # a MODES key
    slots: int = 8
    append_chunk: int = 8
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(int(n) for n in self.candidates))
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} not in {sorted(MODES)}")
        if not 0 <= self.start < self.history:
            raise ValueError(f"start={self.start} must be in [0, history={self.history})")
        if self.appends < 1 or self.warmup_requests < 0:
            raise ValueError(f"appends={self.appends} >= 1 and warmup_requests={self.warmup_requests} >= 0")


def user_requests(cfg, user: int, history: int, candidates, start: int, seed: int) -> list[RawRequest]:
    """One user's requests: the history grows from ``start`` to ``history`` events; each request has fresh
    candidates, as many as one of ``candidates`` drawn at random."""
    rng = np.random.default_rng([seed, user])
    a, vs = cfg.num_history_actions, cfg.product_surface_vocab_size
    posts = rng.choice(1 << 40, size=history, replace=False).astype(np.uint64)
    authors = rng.integers(1, 1 << 30, history).astype(np.uint64)
    actions = (rng.random((history, a)) < 0.3).astype(np.float32)
    surface = rng.integers(0, vs, history).astype(np.int32)
    out = []
    for length in range(start, history + 1):
        n = int(rng.choice(candidates))
        cand = rng.integers(1, 1 << 40, n).astype(np.uint64)
        out.append(
            RawRequest(
                user_id=np.uint64(7_000_000 + user),
                history_post_ids=posts[:length],
                history_author_ids=authors[:length],
                history_actions=actions[:length],
                history_surface=surface[:length],
                candidate_post_ids=cand,
                candidate_author_ids=rng.integers(1, 1 << 30, n).astype(np.uint64),
                candidate_surface=rng.integers(0, vs, n).astype(np.int32),
            )
        )
    return out


def _phase(t0: float, value=None) -> float:
    if value is not None:
        jax.block_until_ready(value)
    return (time.perf_counter() - t0) * 1e3


def serve(cache: PrefixCache, host, device, counter: CompileCounter) -> dict:
    """One request through the cache's steps (the order ``PrefixCache.__call__`` uses), each phase synced.

    It calls the cache's private steps on purpose: ``__call__`` would not sync between them.
    """
    compiles, times = counter.count, {}
    t_all = t0 = time.perf_counter()
    cache.warm_for(host)
    times["warm"] = _phase(t0)
    t0 = time.perf_counter()
    plan = cache.lookup(host)
    times["lookup"] = _phase(t0)
    t0 = time.perf_counter()
    cache._apply_moves(plan)
    times["moves"] = _phase(t0, cache.pools[plan.cls])
    t0 = time.perf_counter()
    if plan.append:
        cache._append(host, plan)
    times["append"] = _phase(t0, cache.pools[plan.cls])
    t0 = time.perf_counter()
    if plan.encode:
        cache._encode(device, plan)
    times["encode"] = _phase(t0, cache.pools[plan.cls])
    t0 = time.perf_counter()
    out = cache.score(device, plan)
    times["score"] = _phase(t0, out)
    kind = "append" if plan.append else "miss" if plan.encode else "hit"
    total = _phase(t_all)
    return {
        "kind": kind,
        "N": host.num_candidates,
        "total_ms": total,
        "phases_ms": times,
        "compiles": counter.count - compiles,
    }


def run(config: AppendTailConfig) -> dict:
    """Build the workload, warm the cache, time every request; returns the raw record (JSON-able)."""
    spec = variant_spec(config.variant)
    cfg = bench_config(config.preset, config.table_rows)
    sm = build_variant(bench_source(cfg), spec)
    params = to_device(sm.params)
    per_user = config.history - config.start
    n_users = -(-(config.appends + config.warmup_requests) // per_user)
    reqs = [
        r
        for u in range(n_users)
        for r in user_requests(cfg, u, config.history, config.candidates, config.start, config.seed)
    ]
    buckets = [Bucket(1, config.history, n) for n in sorted(set(config.candidates))]
    asm = RequestAssembler(cfg.hash_spec, cfg.num_history_actions)
    host = [asm.assemble([r], Bucket(1, config.history, r.num_candidates), reuse=False) for r in reqs]
    device = [jax.device_put(h, may_alias=False) for h in host]
    cache = PrefixCache(
        sm,
        classes=(config.history,),
        slots=config.slots,
        append_chunk=config.append_chunk,
        precision=spec.precision,
        params=params,
        warm_on_first_use=config.mode != "before",
    )
    t0 = time.perf_counter()
    with CompileCounter() as warm_counter:
        if config.mode == "warmup":
            cache.warmup(buckets)
        warm = [serve(cache, host[i], device[i], warm_counter) for i in range(config.warmup_requests)]
    warmup_s = time.perf_counter() - t0
    with CompileCounter() as counter:
        timed = [serve(cache, host[i], device[i], counter) for i in range(config.warmup_requests, len(host))]
    return {
        "config": dataclasses.asdict(config),
        "buckets": [b.as_dict() for b in buckets],
        "compute_dtype": sm.compute_dtype,
        "warmup_s": warmup_s,
        "warmup_compiles": warm_counter.count,
        "warmup_requests": warm,
        "timed_compiles": counter.count,
        "requests": timed,
        "cache": cache.summary(),
        "summary": summarize_requests(timed),
    }


def summarize_requests(requests: list[dict]) -> dict:
    """Per request kind (and per kind and N when N varies): count, p50/p90/p99/max of the total, p99/p50,
    compilations, and p50/p99 of every phase."""
    groups: dict[str, list[dict]] = {}
    ns = sorted({r["N"] for r in requests})
    for kind in ("append", "miss", "hit"):
        rs = [r for r in requests if r["kind"] == kind]
        if rs:
            groups[kind] = rs
        for n in ns if len(ns) > 1 else ():
            if any(r["N"] == n for r in rs):
                groups[f"{kind} N={n}"] = [r for r in rs if r["N"] == n]
    return {name: _stats(rs) for name, rs in groups.items()}


def _stats(rs: list[dict]) -> dict:
    total = [r["total_ms"] for r in rs]
    stats = summarize(total)
    return {
        "n": len(rs),
        **{k: stats[k] for k in ("p50", "p90", "p99")},
        "max": float(max(total)),
        "p99_over_p50": stats["p99"] / stats["p50"],
        "compiles": int(sum(r["compiles"] for r in rs)),
        "phases": {
            p: {f"p{q}": float(np.percentile([r["phases_ms"][p] for r in rs], q)) for q in (50, 99)} for p in PHASES
        },
    }


def table_md(raw: dict) -> str:
    """One row per (mode, request kind): totals, p99/p50, compilations in the timed loop, phase p50/p99."""
    c = raw["config"]
    lines = [
        f"# Prefix-cache append tail: {c['preset']} ({raw['runs'][0]['compute_dtype']}), B=1, S={c['history']}, "
        f"N in {{{', '.join(map(str, c['candidates']))}}}, {c['warmup_requests']} warm-up request(s)",
        "",
        f"Load average (1, 5, 15 min) before / after: {raw['load_before']} / {raw['load_after']}",
        "",
        *(f"- {m}: {MODES[m]}" for m in (r["config"]["mode"] for r in raw["runs"])),
        "",
        "| mode | warm-up s (compiles) | kind | n | p50 ms | p90 ms | p99 ms | max ms | p99/p50 | compiles | "
        + " | ".join(f"{p} p50/p99 ms" for p in PHASES)
        + " |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(PHASES),
    ]
    for run in raw["runs"]:
        mode = run["config"]["mode"]
        for kind, s in run["summary"].items():
            phases = " | ".join(f"{s['phases'][p]['p50']:.2f} / {s['phases'][p]['p99']:.2f}" for p in PHASES)
            lines.append(
                f"| {mode} | {run['warmup_s']:.2f} ({run['warmup_compiles']}) | {kind} | {s['n']} | {s['p50']:.2f} | "
                f"{s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.2f} | {s['p99_over_p50']:.1f} | {s['compiles']} | "
                f"{phases} |"
            )
    return "\n".join(lines) + "\n"


def plot_png(raw: dict) -> bytes:
    """Histogram (log count) and CDF of the timed append latencies of every mode."""
    fig, (hist, cdf) = subplots(1, 2, figsize=(10, 3.5))
    times = {
        r["config"]["mode"]: np.sort([x["total_ms"] for x in r["requests"] if x["kind"] == "append"])
        for r in raw["runs"]
    }
    everything = np.concatenate(list(times.values()))
    bins = np.geomspace(max(everything.min(), 1e-2), everything.max() * 1.01, 60)  # one set for every mode
    for label, t in times.items():
        hist.hist(t, bins=bins, alpha=0.6, label=label)
        cdf.plot(t, np.arange(1, len(t) + 1) / len(t), label=label)
    for ax in (hist, cdf):
        ax.set_xscale("log")
        ax.set_xlabel("append request ms (log)")
        ax.legend(fontsize=7)
    hist.set_yscale("log")
    hist.set_ylabel("count")
    hist.set_title("timed appends")
    cdf.set_ylabel("fraction <= x")
    cdf.axhline(0.99, color="grey", lw=0.5)
    cdf.set_title("CDF")
    return figure_png(fig)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.append_tail", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--compare", action="store_true", help=f"run every mode in this order: {', '.join(MODES)}")
    defaults = AppendTailConfig()
    fields = [f.name for f in dataclasses.fields(AppendTailConfig)]
    for name in fields:
        value = getattr(defaults, name)
        kind = {"type": int, "nargs": "+"} if isinstance(value, tuple) else {"type": type(value)}
        p.add_argument(f"--{name.replace('_', '-')}", default=None, **kind)
    a = p.parse_args(argv)
    config = AppendTailConfig(**{k: getattr(a, k) for k in fields if getattr(a, k) is not None})
    modes = tuple(MODES) if a.compare else (config.mode,)
    load_before = os.getloadavg()
    runs = [run(dataclasses.replace(config, mode=m)) for m in modes]
    raw = {
        "config": runs[0]["config"],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "metadata": {**collect(), "command": [sys.executable, "-m", "x_reco.bench.append_tail", *argv]},
        "runs": runs,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    (a.out / "table.md").write_text(table_md(raw))
    (a.out / "append_tail.png").write_bytes(plot_png(raw))
    print(table_md(raw), end="")
    return raw


if __name__ == "__main__":
    main()
