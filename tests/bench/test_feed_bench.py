"""The feed latency benchmark (``python -m x_reco.bench.feed --quick``) writes its raw times, table and plots,
with every pipeline stage's latency, both scaling sweeps and the candidate counts as finite numbers.
No timing thresholds: a test only proves the benchmark measures what it says."""

import json
import math

import pytest

from x_reco.bench import feed
from x_reco.pipeline.framework import STAGES


def _finite(values) -> bool:
    return len(values) > 0 and all(isinstance(v, float | int) and math.isfinite(v) for v in values)


@pytest.mark.slow  # ~18 s of world building and serving: `make test-slow` (and `make bench` runs it)
def test_quick_run_writes_raw_times_table_and_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XRECO_BENCH_CACHE", raising=False)
    feed.main(["--out", str(tmp_path), "--quick"])
    out = tmp_path / "feed"
    names = {"raw.json", "table.md", "feed_latency.png", "latency_vs_index.png", "latency_vs_follows.png"}
    assert names <= {p.name for p in out.iterdir()}
    assert all((out / n).stat().st_size > 0 for n in names)
    assert list((tmp_path / "cache").glob("feed-world-tiny-*/sequences.npz")), "the world is cached as npz"
    raw = json.loads((out / "raw.json").read_text())
    meta, main = raw["metadata"], raw["main"]
    assert meta["cpu"]["model"] and meta["utc"] and len(meta["load_before"]) == 3 and meta["command"][-1] == "--quick"
    assert "random init" in meta["models"]["weights"] and main["prefix_cache_in_timed_loop"]["misses"] > 0

    # every stage kind the pipeline ran, with raw per-request times and p50/p99 summaries
    cfg = feed.FeedBenchConfig.quick()
    assert len(main["raw"]["wall_ms"]) == cfg.requests and len(main["warmup_wall_ms"]) == cfg.warmup
    assert {"query_hydrator", "source", "hydrator", "filter", "scorer", "selector", "side_effect"} <= set(
        main["stages"]
    )
    assert set(main["stages"]) <= set(STAGES)
    for summary in [main["wall"], *main["stages"].values(), *main["components"].values()]:
        assert _finite([summary[k] for k in ("p50", "p90", "p99", "max")])
    for per_request in [*main["raw"]["stages_ms"].values(), *main["raw"]["components_ms"].values()]:
        assert len(per_request) == cfg.requests and _finite(per_request)
    assert {"source/ThunderSource", "source/PhoenixSource", "scorer/PhoenixScorer"} <= set(main["components"])
    counts = main["counts"]
    assert counts["retrieved"]["p50"] >= counts["scored"]["p50"] >= counts["served"]["p50"] > 0

    # the index sweep pads the index (the funnel after retrieval stays the world's); the follow sweep sets k
    index = raw["scaling"]["index"]
    assert [p["index_size"] for p in index] == sorted(p["index_size"] for p in index) and index[-1]["padded"]
    assert all(p["raw"]["counts"] == index[0]["raw"]["counts"] for p in index)
    follows = raw["scaling"]["follows"]
    assert [p["follows"] for p in follows] == list(cfg.follow_sizes)
    assert all(_finite(p["raw"]["wall_ms"]) and "source" in p["stages"] for p in [*index, *follows])
    assert all(_finite(p["phoenix_phases"]["raw"]["encode_ms"] + p["phoenix_phases"]["raw"]["scan_ms"]) for p in index)
    assert all(_finite(p["thunder_alone"]["raw_ms"]) for p in [main, *follows])

    table = (out / "table.md").read_text()
    assert "p50" in table and "random init" in table and "dominates" in table
    assert table in capsys.readouterr().out
