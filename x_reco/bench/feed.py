"""Feed latency benchmark (issue 13 "Speed"): end-to-end ``FeedPipeline.serve`` on this host, per stage.

``python -m x_reco.bench.feed --out DIR [--size large|small|tiny] [--requests N] [--quick]`` builds the
synthetic world (``WorldConfig.<size>()``; cached as parquet + npz under ``$XRECO_BENCH_CACHE`` or
``DIR/cache``, keyed by the world and sequence configs), its engagement sequences (the default
``SequenceConfig``, as ``make demo``) and a ``FeedPipeline`` over randomly initialised models of the
presets ``make demo`` trains (``default_train_config("synthetic", kind)``; latency does not depend on the
weights). Requests are a seeded sample of (user, test-split request time). Every reachable scorer bucket
is compiled before any request, warm-up requests run apart from the timed loop, and the timed loop
counts XLA compilations (0 expected). Then the scaling sweeps: the post index padded with fake rows
(random unit vectors, never eligible: every request scans them, the funnel after retrieval is the
world's) and the follow list replaced by k seeded authors. Writes ``DIR/feed/raw.json`` (metadata, load,
every raw time), ``DIR/feed/table.md`` and ``feed_latency.png``, ``latency_vs_index.png``,
``latency_vs_follows.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from x_reco.bench.metadata import collect
from x_reco.common.atomic import temp_sibling
from x_reco.common.plotting import figure_png, subplots
from x_reco.data.examples import EngagementSequences, SequenceConfig, Split
from x_reco.data.registry import PARTITIONS, dataset_spec
from x_reco.pipeline.feed import FeedOptions, FeedPipeline
from x_reco.pipeline.phoenix import PhoenixSource, _bucket
from x_reco.pipeline.rules import PHOENIX_MAX_RESULTS, THUNDER_MAX_RESULTS
from x_reco.pipeline.store import ServingData
from x_reco.pipeline.types import Component, FeedRequest, Query

# The generated (synthetic) world: the only partition whose size the benchmark can choose.
GENERATED = next(p for p in PARTITIONS if dataset_spec(p).generated)

SCHEMA_VERSION = 1
CACHE_VERSION = 1  # bump when the cached layout changes
GOALS_MS = {"p50": 100.0, "p99": 250.0, "thunder_p50": 1.0}
COUNTS = ("retrieved", "scored", "served")


@dataclasses.dataclass(frozen=True)
class FeedBenchConfig:
    """One run: the world, how many requests are timed, and the two scaling sweeps."""

    size: str = "large"
    requests: int = 200
    warmup: int = 20
    sweep_requests: int = 200  # timed requests per scaling point
    sweep_warmup: int = 20
    index_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    follow_sizes: tuple[int, ...] = (10, 30, 100, 200)
    compile_all: bool = True  # every reachable scorer bucket before any request (else: the warm-up's)
    prefix_cache_slots: int | None = None  # PhoenixScorer's prefix K/V cache; None: FeedOptions' default
    seed: int = 0
    cache: str | None = None

    def __post_init__(self):
        if self.size not in ("large", "small", "tiny"):
            raise ValueError(f"size {self.size!r} not in ('large', 'small', 'tiny')")
        if min(self.requests, self.sweep_requests) < 1 or min(self.warmup, self.sweep_warmup) < 0:
            raise ValueError(f"requests >= 1 and warmup >= 0, got {self}")

    @classmethod
    def quick(cls, **overrides) -> FeedBenchConfig:
        """Tiny world, few requests: the test's configuration (seconds)."""
        base = dict(size="tiny", requests=6, warmup=2, sweep_requests=3, sweep_warmup=1, compile_all=False)
        return cls(**(base | dict(index_sizes=(500, 2_000), follow_sizes=(2, 6)) | overrides))


# -- the world, cached ----------------------------------------------------------------------------


def _world_config(size: str):
    """``WorldConfig.<size>()``; ``tiny`` over 10 days, so that its last day is a test split."""
    from x_reco.data.synthetic import WorldConfig

    if size == "tiny":
        return dataclasses.replace(WorldConfig.tiny(), num_days=10)
    return {"large": WorldConfig.large, "small": WorldConfig.small}[size]()


def world_data(size: str, cache_root: Path) -> tuple[ServingData, dict]:
    """The world's ``ServingData`` (no index, no champion) and where it came from; generated once per
    (world config, sequence config), then read back from ``cache_root/feed-world-<key>``."""
    world, seq_cfg = _world_config(size), SequenceConfig()
    key_src = json.dumps([CACHE_VERSION, world.to_dict(), dataclasses.asdict(seq_cfg)], sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    folder = cache_root / f"feed-world-{size}-{key}"
    t0 = time.perf_counter()
    hit = (folder / "done").exists()
    if not hit:
        _write_world(world, seq_cfg, folder)
    data = _read_world(folder)
    return data, {"folder": str(folder), "key": key, "hit": hit, "seconds": time.perf_counter() - t0}


def _write_world(world, seq_cfg: SequenceConfig, folder: Path) -> None:
    from x_reco.data.events import build_events
    from x_reco.data.sequences import build_sequences
    from x_reco.data.synthetic import generate_world_tables

    raw = generate_world_tables(world)
    events = build_events(raw)
    seqs = build_sequences(events, raw.items, raw.partition, seq_cfg)
    tmp = temp_sibling(folder, directory=True)  # unique to this writer; a killed one's is swept next time
    (tmp / "social").mkdir(parents=True, exist_ok=True)
    for name, frame in (("items", raw.items), ("users", raw.users), ("events", events)):
        frame.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet")
    for name, frame in raw.extra.items():
        frame.reset_index(drop=True).to_parquet(tmp / "social" / f"{name}.parquet")
    seqs.to_npz(tmp / "sequences.npz")
    (tmp / "manifest.json").write_text(json.dumps(raw.manifest, default=str))
    (tmp / "done").write_text("")
    try:
        tmp.rename(folder)  # atomic: a half-written cache is never read
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "done").exists():
            raise
        # another set-up published the same world first: keep it


def _read_world(folder: Path) -> ServingData:
    social = {p.stem: pd.read_parquet(p) for p in sorted((folder / "social").glob("*.parquet"))}
    return ServingData(
        partition=GENERATED,
        items=pd.read_parquet(folder / "items.parquet"),
        users=pd.read_parquet(folder / "users.parquet"),
        events=pd.read_parquet(folder / "events.parquet"),
        social=social,
        manifest=json.loads((folder / "manifest.json").read_text()),
        sequences=EngagementSequences.from_npz(folder / "sequences.npz"),
        index=None,  # built from the retriever by FeedPipeline
        champion={},
    )


def build_feed(data: ServingData, seed: int, prefix_cache_slots: int | None = None) -> tuple[FeedPipeline, dict]:
    """A ``FeedPipeline`` over random-init models of the ``make demo`` presets, and their configs."""
    from flax import nnx

    from x_reco.models.ranker import PhoenixRanker
    from x_reco.models.retriever import PhoenixRetriever
    from x_reco.training.config import model_config_for
    from x_reco.training.defaults import catalogue_window_s, default_train_config

    window = catalogue_window_s(data.manifest)
    cfgs = {
        kind: model_config_for(default_train_config(GENERATED, kind, catalogue_window_s=window), data.sequences)
        for kind in ("retriever", "ranker")
    }
    retriever = PhoenixRetriever(cfgs["retriever"], rngs=nnx.Rngs(params=seed))
    ranker = PhoenixRanker(cfgs["ranker"], rngs=nnx.Rngs(params=seed + 1))
    versions = {"retriever": f"random-init-{seed}", "ranker": f"random-init-{seed + 1}"}
    slots = {} if prefix_cache_slots is None else {"prefix_cache_slots": prefix_cache_slots}
    fp = FeedPipeline(data, retriever, ranker, FeedOptions(**slots), versions=versions)
    return fp, {k: dataclasses.asdict(c) for k, c in cfgs.items()}


# -- requests and timing ----------------------------------------------------------------------------


def sample_requests(fp: FeedPipeline, n: int, seed: int) -> list[FeedRequest]:
    """``n`` distinct seeded (user, visit) pairs among the test-split requests, at ``state.request_time``."""
    seqs = fp.data.sequences
    ex = seqs.examples
    test = ex.split == int(Split.TEST)
    users, visits = np.unique(ex.user_idx[test], return_counts=True)
    pairs = [(int(u), v) for u, c in zip(users, visits, strict=True) for v in range(int(c))]
    rng = np.random.default_rng(seed)
    take = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    out = []
    for i in take:
        user = str(seqs.catalogue.user_ids[pairs[i][0]])
        out.append(fp.request(user, fp.state.request_time(user, pairs[i][1])))
    return out


def compile_buckets(fp: FeedPipeline) -> dict:
    """``PhoenixScorer.warmup`` up to the most candidates a request can reach (both sources' caps), so
    the timed loop runs compiled code only (the prefix cache's steps too, when it is on)."""
    n_items = len(fp.catalogue.item_ids)
    most = min(PHOENIX_MAX_RESULTS, n_items) + (min(THUNDER_MAX_RESULTS, len(fp.thunder)) if fp.thunder else 0)
    t0 = time.perf_counter()
    fp.scorer.warmup([most])
    return {
        "up_to_candidates": most,
        "largest_bucket": _bucket(most, fp.scorer.chunk),
        "seconds": time.perf_counter() - t0,
    }


def serve_all(fp: FeedPipeline, requests: list[FeedRequest]) -> dict:
    """Serve each request; its wall time (ms), the per-component latencies (ms) and candidate counts."""
    from x_reco.inference.engine import CompileCounter

    wall, comps, counts = [], {}, {k: [] for k in COUNTS}
    gc.collect()
    with CompileCounter() as compiles:
        for i, req in enumerate(requests):
            t0 = time.perf_counter()
            res = fp.serve(req)
            wall.append((time.perf_counter() - t0) * 1e3)
            for s in res.trace:
                comps.setdefault(f"{s.stage}/{s.component}", [0.0] * i).append(s.latency_us / 1e3)
            for k in comps:  # components that did not run for this request
                comps[k] += [0.0] * (i + 1 - len(comps[k]))
            for k in COUNTS:
                counts[k].append(len(getattr(res, k)))
    stages: dict[str, list[float]] = {}
    for key, ms in comps.items():
        stage = key.split("/", 1)[0]
        stages[stage] = list(np.add(stages.get(stage, 0.0), ms))
    return {"wall_ms": wall, "stages_ms": stages, "components_ms": comps, "counts": counts, "compiles": compiles.count}


def summarize(ms: list[float]) -> dict:
    t = np.asarray(ms, np.float64)
    q = np.percentile(t, [50, 90, 99])
    return {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2]), "max": float(t.max()), "mean": float(t.mean())}


def measure(fp: FeedPipeline, requests: list[FeedRequest], warmup: int) -> dict:
    """Warm-up requests (kept apart), then the timed ones; summaries beside the raw times. Every
    measurement starts from an empty served log (reset in place: the hydrators and the side effect hold it)."""
    fp.served_log.__init__()
    cache = fp.scorer.cache
    if cache is not None:
        cache.flush()  # and a cold prefix cache: sweeps re-serve the same requests
    warm = serve_all(fp, requests[:warmup]) if warmup else None
    before = dataclasses.asdict(cache.stats) if cache is not None else {}
    run = serve_all(fp, requests[warmup:])
    after = dataclasses.asdict(cache.stats) if cache is not None else {}
    return {
        "warmup_wall_ms": warm["wall_ms"] if warm else [],
        "raw": run,
        "requests": [[r.user_id, r.t] for r in requests[warmup:]],
        "wall": summarize(run["wall_ms"]),
        "stages": {k: summarize(v) for k, v in run["stages_ms"].items()},
        "unattributed": summarize(np.subtract(run["wall_ms"], np.sum(list(run["stages_ms"].values()), axis=0))),
        "components": {k: summarize(v) for k, v in run["components_ms"].items()},
        "counts": {k: summarize(v) for k, v in run["counts"].items()},
        "compiles_in_timed_loop": run["compiles"],
        "prefix_cache_in_timed_loop": {k: after[k] - before[k] for k in after},
    }


# -- scaling sweeps -------------------------------------------------------------------------------


def padded_source(src: PhoenixSource, size: int, seed: int) -> PhoenixSource:
    """``src`` over an index of ``size`` rows: the real rows, then fake ones (random unit vectors over
    the world's time span, mask off) that every request scores, masks and partitions but never returns."""
    cat = src.cat
    n = size - len(cat.item_ids)
    rng = np.random.default_rng([seed, size])
    fake = rng.standard_normal((n, src.vectors.shape[1]), dtype=np.float32)
    fake /= np.linalg.norm(fake, axis=1, keepdims=True)
    ids = np.array([f"fake{i:08d}" for i in range(n)], dtype=object)
    created = rng.integers(cat.item_created_ts.min(), cat.item_created_ts.max() + 1, n)
    cat = dataclasses.replace(
        cat,
        item_ids=np.concatenate([cat.item_ids.astype(object), ids]),
        item_index=cat.item_index | {p: len(cat.item_ids) + i for i, p in enumerate(ids)},
        item_created_ts=np.concatenate([cat.item_created_ts, created]),
        item_author_idx=np.concatenate([cat.item_author_idx, np.zeros(n, cat.item_author_idx.dtype)]),
        post_hashes=np.concatenate([cat.post_hashes, np.zeros((n, cat.post_hashes.shape[1]), np.int32)]),
        item_author_hashes=np.concatenate(
            [cat.item_author_hashes, np.zeros((n, cat.item_author_hashes.shape[1]), np.int32)]
        ),
    )
    vectors, mask = np.concatenate([src.vectors, fake]), np.concatenate([src.mask, np.zeros(n, bool)])
    return PhoenixSource(src.retriever, cat, vectors, mask, src.window_s, src.max_results)


def _swap_source(fp: FeedPipeline, new: PhoenixSource) -> None:
    pipe = fp.pipeline
    pipe.sources = tuple(new if s is fp.phoenix else s for s in pipe.sources)
    fp.phoenix = new


class FollowListOverride(Component):
    """Dependent query hydrator: ``followed_ids`` = ``k`` seeded authors of the world per request."""

    name = "FollowListOverride"

    def __init__(self, authors: np.ndarray, k: int, seed: int):
        self.authors, self.k, self.seed = np.sort(authors.astype(str)), k, seed

    def hydrate(self, query: Query) -> dict:
        rng = np.random.default_rng([self.seed, self.k, int(query.request.request_id, 16) % (1 << 62)])
        k = min(self.k, len(self.authors))
        return {"followed_ids": frozenset(self.authors[rng.choice(len(self.authors), k, replace=False)])}


def sweep_index(fp: FeedPipeline, requests, config: FeedBenchConfig) -> list[dict]:
    """Latency against the post-index size; sizes below the world's index run at the world's size."""
    base, world = fp.phoenix, len(fp.phoenix.vectors)
    sizes = sorted({max(s, world) for s in config.index_sizes})
    out = []
    for size in sizes:
        _swap_source(fp, base if size == world else padded_source(base, size, config.seed))
        point = {"index_size": size, "padded": size > world, **measure(fp, requests, config.sweep_warmup)}
        out.append(point | {"phoenix_phases": phoenix_phases(fp, requests[config.sweep_warmup :])})
        _swap_source(fp, base)
    return out


def phoenix_phases(fp: FeedPipeline, requests) -> dict:
    """``PhoenixSource.get_candidates`` alone per request (ms), and its user encoding (the compiled
    retriever tower); the rest is the index scan: u·v, the masks and the top-k."""

    src, total, encode = fp.phoenix, [], []
    for req in requests:
        query = fp.state.query(req)
        t0 = time.perf_counter()
        src.get_candidates(query)
        t1 = time.perf_counter()
        src.encode_user(query)
        src.debug_for(query.request.request_id)  # drop the diagnostics the source kept for why-not
        total.append((t1 - t0) * 1e3)
        encode.append((time.perf_counter() - t1) * 1e3)
    scan = list(np.subtract(total, encode))
    return {"raw": {"total_ms": total, "encode_ms": encode, "scan_ms": scan}} | {
        k: summarize(v) for k, v in (("total", total), ("encode", encode), ("scan", scan))
    }


def sweep_follows(fp: FeedPipeline, requests, config: FeedBenchConfig) -> list[dict]:
    authors = fp.data.social["authors"]["author_id"].to_numpy()
    pipe, out = fp.pipeline, []
    for k in config.follow_sizes:
        override = FollowListOverride(authors, k, config.seed)
        pipe.dependent_query_hydrators = (override,)
        point = {"follows": min(k, len(authors)), "requested": k, **measure(fp, requests, config.sweep_warmup)}
        out.append(point | {"thunder_alone": thunder_alone(fp, requests[config.sweep_warmup :], override)})
    pipe.dependent_query_hydrators = ()
    return out


def thunder_alone(fp: FeedPipeline, requests, override: FollowListOverride | None = None) -> dict:
    """``ThunderSource.get_candidates`` per request (ms) outside the pipeline: no other source competes
    for the interpreter lock, which the in-pipeline latency of a concurrent source includes."""
    (source,) = [s for s in fp.pipeline.sources if s.name == "ThunderSource"]
    ms = []
    for req in requests:
        query = fp.state.query(req)
        if override is not None:
            query = dataclasses.replace(query, **override.hydrate(query))
        t0 = time.perf_counter()
        source.get_candidates(query)
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"raw_ms": ms, **summarize(ms)}


# -- the run ----------------------------------------------------------------------------------------


def run_feed_bench(config: FeedBenchConfig, out: str | Path, *, command: list[str] | None = None) -> dict:
    """Run the benchmark into ``out/feed``; returns the dict written to ``raw.json``."""
    out = Path(out)
    folder = out / "feed"
    folder.mkdir(parents=True, exist_ok=True)
    cache = Path(config.cache or os.environ.get("XRECO_BENCH_CACHE") or out / "cache")
    load_before, t_start = os.getloadavg(), time.perf_counter()
    data, cache_info = world_data(config.size, cache)
    t0 = time.perf_counter()
    fp, model_cfgs = build_feed(data, config.seed, config.prefix_cache_slots)
    build_s = time.perf_counter() - t0
    need = max(config.requests + config.warmup, config.sweep_requests + config.sweep_warmup)
    requests = sample_requests(fp, need, config.seed)
    compiled = compile_buckets(fp) if config.compile_all else {"largest_bucket": None, "seconds": 0.0}
    main = measure(fp, requests[: config.requests + config.warmup], config.warmup)
    main["thunder_alone"] = thunder_alone(fp, requests[config.warmup : config.requests + config.warmup])
    sweep = requests[: config.sweep_requests + config.sweep_warmup]
    scaling = {"index": sweep_index(fp, sweep, config), "follows": sweep_follows(fp, sweep, config)}
    fp.pipeline.close()
    raw = {
        "schema_version": SCHEMA_VERSION,
        "metadata": {
            **collect(),
            "command": command,
            "settings": dataclasses.asdict(config),
            "load_before": list(load_before),
            "load_after": list(os.getloadavg()),
            "wall_s": time.perf_counter() - t_start,
            "world": {
                "size": config.size,
                "config": _world_config(config.size).to_dict(),
                "cache": cache_info,
                "posts_in_index": len(fp.catalogue.item_ids),
                "users": len(data.sequences.catalogue.user_ids),
                "authors": len(data.social["authors"]),
                "thunder_posts": len(fp.thunder) if fp.thunder else 0,
            },
            "models": {"weights": "random init (latency does not depend on the weights)", "configs": model_cfgs},
            "pipeline_build_s": build_s,
            "compiled": compiled,
            "prefix_cache_slots": fp.options.prefix_cache_slots if fp.scorer.cache is not None else 0,
            "rules": fp.rules.name,
            "weights": repr(fp.weights),
            "goals_ms": GOALS_MS,
        },
        "main": main,
        "scaling": scaling,
    }
    (folder / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    (folder / "table.md").write_text(table_md(raw))
    raw["paths"] = {"raw_json": str(folder / "raw.json"), "table_md": str(folder / "table.md"), **plots(raw, folder)}
    return raw


# -- report -----------------------------------------------------------------------------------------


def _ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _goal(value: float, goal: float) -> str:
    return f"{'met' if value <= goal else 'missed'} (goal ≤ {goal:g} ms)"


def _dominant(point: dict) -> tuple[str, float, float]:
    stages = {k: v["p50"] for k, v in point["stages"].items()}
    top = max(stages, key=stages.get)
    return top, stages[top], sum(stages.values())


def _sweep_rows(points: list[dict], label: str, key: str) -> list[str]:
    stage_names = sorted({k for p in points for k in p["stages"]}, key=_stage_order)
    lines = [
        f"| {label} | p50 ms | p99 ms | " + " | ".join(f"{s} p50" for s in stage_names) + " | retrieved | scored |",
        "|---" * (5 + len(stage_names)) + "|",
    ]
    for p in points:
        cells = " | ".join(_ms(p["stages"][s]["p50"]) if s in p["stages"] else "-" for s in stage_names)
        name = f"{p[key]:,}" + (" (padded)" if p.get("padded") else "")
        lines.append(
            f"| {name} | {_ms(p['wall']['p50'])} | {_ms(p['wall']['p99'])} | {cells} | "
            f"{p['counts']['retrieved']['p50']:.0f} | {p['counts']['scored']['p50']:.0f} |"
        )
    return lines


def _stage_order(stage: str) -> int:
    from x_reco.pipeline.framework import STAGES

    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def dominance_sentence(points: list[dict], key: str, unit: str, component: str) -> str:
    """Which stage has the largest p50 at each end of a sweep, and how ``component``'s p50 grows."""
    parts = []
    for p in (points[0], points[-1]) if len(points) > 1 else points:
        top, ms, total = _dominant(p)
        parts.append(f"at {p[key]:,} {unit} the {top} stage dominates ({_ms(ms)} of {_ms(total)} ms stage p50)")
    ms = [p["components"].get(component, {"p50": float("nan")})["p50"] for p in (points[0], points[-1])]
    name = component.split("/")[-1]
    return "; ".join(parts).capitalize() + f"; {name} p50 goes {_ms(ms[0])} → {_ms(ms[-1])} ms."


def table_md(raw: dict) -> str:
    meta, main = raw["metadata"], raw["main"]
    world, w = meta["world"], main["wall"]
    cpu = meta["cpu"]
    counts = [(k, main["counts"][k]) for k in COUNTS]
    alone = main["thunder_alone"]
    thunder = main["components"].get("source/ThunderSource", {"p50": float("nan"), "p99": float("nan")})
    lines = [
        f"Feed latency: `{' '.join(meta['command'] or ['run_feed_bench'])}`",
        "",
        f"Host: {cpu['model']} ({cpu['usable_cores']} usable cores), {meta['backend']}; {meta['utc']}; "
        f"git {str(meta['git']['commit'])[:10]}{' (dirty)' if meta['git']['dirty'] else ''}; load average "
        f"{meta['load_before'][0]:.2f} before, {meta['load_after'][0]:.2f} after.",
        f"World: `WorldConfig.{world['size']}()` ({world['users']:,} users, {world['authors']:,} authors, "
        f"{world['posts_in_index']:,} posts in the index, {world['thunder_posts']:,} in Thunder); rules "
        f"{meta['rules']}, weights {meta['weights']}. Models: the `make demo` presets, **random init** "
        "(latency does not depend on the weights). "
        f"{len(main['raw']['wall_ms'])} timed requests after {len(main['warmup_wall_ms'])} warm-up; scorer "
        + (
            f"buckets up to {meta['compiled']['largest_bucket']} candidates compiled before any request; "
            if meta["compiled"]["largest_bucket"]
            else "buckets compiled by the warm-up; "
        )
        + f"{main['compiles_in_timed_loop']} compilations in the timed loop. Prefix cache: "
        f"{meta['prefix_cache_slots']} slots, cold at the start of every measurement; timed loop "
        + ", ".join(f"{k} {main['prefix_cache_in_timed_loop'].get(k, 0)}" for k in ("hits", "misses", "appends"))
        + ".",
        "",
        "| end-to-end `serve()` | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|",
        f"| ms | {_ms(w['p50'])} | {_ms(w['p90'])} | {_ms(w['p99'])} | {_ms(w['max'])} |",
        "",
        f"Goals (printed, not asserted): p50 {_goal(w['p50'], GOALS_MS['p50'])}; "
        f"p99 {_goal(w['p99'], GOALS_MS['p99'])}; "
        f"Thunder lookup p50 {_ms(thunder['p50'])} ms in the pipeline (beside PhoenixSource, sharing the "
        f"interpreter lock), {_ms(alone['p50'])} ms alone (p99 {_ms(alone['p99'])}): "
        f"{_goal(alone['p50'], GOALS_MS['thunder_p50'])}.",
        "",
        "| stage (latency_us summed per kind; sources and hydrators run concurrently) | p50 ms | p99 ms |",
        "|---|---|---|",
        *[
            f"| {k} | {_ms(v['p50'])} | {_ms(v['p99'])} |"
            for k, v in sorted(main["stages"].items(), key=lambda kv: _stage_order(kv[0]))
        ],
        "| wall − Σ stages (framework work, CPU waits; < 0 when concurrent stages overlap) | "
        f"{_ms(main['unattributed']['p50'])} | {_ms(main['unattributed']['p99'])} |",
        "",
        "| component | p50 ms | p99 ms |",
        "|---|---|---|",
        *[
            f"| {k} | {_ms(v['p50'])} | {_ms(v['p99'])} |"
            for k, v in sorted(main["components"].items(), key=lambda kv: (_stage_order(kv[0].split("/")[0]), kv[0]))
        ],
        "",
        "| candidates per request | p50 | mean | max |",
        "|---|---|---|---|",
        *[f"| {k} | {c['p50']:.0f} | {c['mean']:.1f} | {c['max']:.0f} |" for k, c in counts],
    ]
    idx, fol = raw["scaling"]["index"], raw["scaling"]["follows"]
    lines += [
        "",
        f"Post-index size ({len(idx[0]['raw']['wall_ms'])} timed requests per point): rows beyond the world's are fake "
        "(random unit vectors, never eligible), so every request scores, masks and partitions all of them while "
        "the funnel after retrieval stays the world's; sizes below the world's index run at its size. "
        + dominance_sentence(idx, "index_size", "posts", "source/PhoenixSource")
        + " PhoenixSource alone (outside the pipeline, p50): "
        + "; ".join(
            f"{p['index_size']:,}: encode {_ms(p['phoenix_phases']['encode']['p50'])} + scan "
            f"{_ms(p['phoenix_phases']['scan']['p50'])} ms"
            for p in idx
        )
        + ".",
        "",
        *_sweep_rows(idx, "index size", "index_size"),
        "",
        "Follow-list size (a dependent query hydrator replaces followed_ids by k seeded authors of the world): "
        + dominance_sentence(fol, "follows", "followed authors", "source/ThunderSource"),
        "",
        *_sweep_rows(fol, "follows", "follows"),
    ]
    lines += [
        "",
        "| follows | ThunderSource in the pipeline p50 / p99 ms | ThunderSource alone p50 / p99 ms |",
        "|---|---|---|",
        *[
            f"| {p['follows']} | {_ms(p['components']['source/ThunderSource']['p50'])} / "
            f"{_ms(p['components']['source/ThunderSource']['p99'])} | {_ms(p['thunder_alone']['p50'])} / "
            f"{_ms(p['thunder_alone']['p99'])} |"
            for p in fol
        ],
    ]
    return "\n".join(lines) + "\n"


def plots(raw: dict, folder: Path) -> dict[str, str]:
    """``feed_latency.png`` (histogram, CDF, stage p50/p99) and the two scaling line plots."""
    main, paths = raw["main"], {}
    fig, (a, b, c) = subplots(1, 3, figsize=(14, 3.6))
    wall = np.sort(main["raw"]["wall_ms"])
    a.hist(wall, bins=40)
    a.set(title="serve() wall time", xlabel="ms", ylabel="requests")
    b.plot(wall, np.arange(1, len(wall) + 1) / len(wall))
    for goal in (GOALS_MS["p50"], GOALS_MS["p99"]):
        b.axvline(goal, color="grey", linestyle=":")
    b.set(title="CDF (goals dotted)", xlabel="ms", ylabel="fraction")
    names = sorted(main["stages"], key=_stage_order)
    x = np.arange(len(names))
    c.bar(x - 0.2, [main["stages"][n]["p50"] for n in names], 0.4, label="p50")
    c.bar(x + 0.2, [main["stages"][n]["p99"] for n in names], 0.4, label="p99")
    c.set_xticks(x, names, rotation=60, fontsize=7)
    c.set(title="per stage", ylabel="ms")
    c.legend()
    paths["feed_latency_png"] = _save(fig, folder / "feed_latency.png")
    for kind, key, xlabel in (
        ("index", "index_size", "posts in the index"),
        ("follows", "follows", "followed authors"),
    ):
        points = raw["scaling"][kind]
        fig, ax = subplots(figsize=(6, 3.6))
        xs = [p[key] for p in points]
        ax.plot(xs, [p["wall"]["p50"] for p in points], "o-", label="serve p50")
        ax.plot(xs, [p["wall"]["p99"] for p in points], "o--", label="serve p99")
        for stage in sorted({s for p in points for s in p["stages"]}, key=_stage_order):
            ys = [p["stages"].get(stage, {"p50": 0.0})["p50"] for p in points]
            if max(ys) >= 0.05 * max(p["wall"]["p50"] for p in points):
                ax.plot(xs, ys, ".:", label=f"{stage} p50")
        extra = {"follows": [("ThunderSource alone", "thunder_alone")]}.get(
            kind,
            [("PhoenixSource encode", "phoenix_phases", "encode"), ("PhoenixSource scan", "phoenix_phases", "scan")],
        )
        for label, *path in extra:
            ys = [p[path[0]][path[1]]["p50"] if len(path) == 2 else p[path[0]]["p50"] for p in points]
            ax.plot(xs, ys, "x-.", label=f"{label} p50")
        ax.set_xscale("log" if kind == "index" else "linear")
        ax.set(title=f"feed latency vs {xlabel}", xlabel=xlabel, ylabel="ms")
        ax.legend(fontsize=7)
        paths[f"latency_vs_{kind}_png"] = _save(fig, folder / f"latency_vs_{kind}.png")
    return paths


def _save(fig, path: Path) -> str:
    path.write_bytes(figure_png(fig))
    return str(path)


def parse(argv: list[str] | None = None) -> tuple[FeedBenchConfig, Path]:
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.feed", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output directory (results go to OUT/feed)")
    p.add_argument("--size", choices=("large", "small", "tiny"), default=None, help="world (default large)")
    p.add_argument("--requests", type=int, default=None, help="timed requests (default 200)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default 20)")
    p.add_argument("--sweep-requests", type=int, default=None, help="timed requests per scaling point")
    p.add_argument("--quick", action="store_true", help="tiny world, a few requests (seconds; for tests)")
    p.add_argument("--cache", default=None, help="world cache folder (default $XRECO_BENCH_CACHE or OUT/cache)")
    p.add_argument("--prefix-cache-slots", type=int, default=None, help="0: no prefix cache (default: FeedOptions')")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    given = {"size": a.size, "requests": a.requests, "warmup": a.warmup, "sweep_requests": a.sweep_requests}
    given = {k: v for k, v in given.items() if v is not None} | {
        "seed": a.seed,
        "cache": a.cache,
        "prefix_cache_slots": a.prefix_cache_slots,
    }
    return (FeedBenchConfig.quick(**given) if a.quick else FeedBenchConfig(**given)), a.out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    config, out = parse(argv)
    raw = run_feed_bench(config, out, command=[Path(sys.executable).name, "-m", "x_reco.bench.feed", *argv])
    print((out / "feed" / "table.md").read_text())
    return raw


if __name__ == "__main__":
    main()
