"""Benchmark harness (inference spec §5): §3 floors, worker records carry every §5.8 field, one shared
source digest across variants and processes, repeat flags at 10 %, report files; the full CLI run is
``slow``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from x_reco.configs import PhoenixConfig
from x_reco.inference import bench, bench_report
from x_reco.inference.bench_worker import run_timing
from x_reco.inference.workload import bench_config, bench_source


def test_floors_match_the_spec_planning_numbers():
    large, mini = PhoenixConfig.large(), PhoenixConfig.oss_mini()
    assert bench_report.request_flops(mini, "split", 1, 127, 500) == pytest.approx(0.93e9, rel=0.05)
    assert bench_report.request_flops(large, "split", 1, 512, 500) == pytest.approx(57e9, rel=0.08)
    assert bench_report.request_flops(large, "dense", 1, 512, 500) == pytest.approx(73e9, rel=0.05)
    assert bench_report.floor_ms(large, "split", 1, 512, 500) == pytest.approx(0.072, rel=0.08)
    assert bench_report.weight_bytes_bf16(large) == pytest.approx(51.2e6, rel=0.02)


def test_source_is_deterministic_and_cached(tmp_path):
    cfg = bench_config("tiny", table_rows=97)
    first = bench_source(cfg, root=tmp_path)
    again = bench_source(cfg, root=tmp_path)
    assert first.source_param_digest == again.source_param_digest
    assert np.array_equal(first.state["tables"]["post"].get_value(), again.state["tables"]["post"].get_value())
    assert not np.asarray(first.state["tables"]["user"].get_value()[0]).any() and cfg.hash_spec.family == "splitmix64"


@pytest.fixture(scope="module")
def timing_records(tmp_path_factory):
    job = {"kind": "timing", "preset": "tiny", "repeat": 0, "calls": 4, "warmup": 3, "users": 6, "pipelined": 3,
           "seed": 0, "table_rows": 97, "source_cache": str(tmp_path_factory.mktemp("src")), "s_buckets": [16],
           "variants": ["split", "cached", "w8+t8"], "grid": {v: [[2, 11, 5]] for v in ("split", "cached", "w8+t8")}}  # fmt: skip
    return run_timing(job)


def test_worker_records_carry_the_protocol_fields(timing_records):
    need = {"bucket", "padding_waste", "compile_s", "first_call_ms", "times_ms", "pipelined_ms", "p50", "p90", "p99",
            "mean", "std", "candidates_per_s", "host_ms", "memory_analysis", "param_bytes", "kv_bytes_per_user",
            "cache", "source_param_digest", "w8_excluded"}  # fmt: skip
    for r in timing_records:
        assert need <= set(r) and len(r["times_ms"]) == 4
    assert len({r["source_param_digest"] for r in timing_records}) == 1
    cached = next(r for r in timing_records if r["variant"] == "cached")
    stats = cached["cache"]["stats"]
    assert stats["hits"] >= 4 + 3 + 1 and stats["misses"] >= 3 and cached["cache"]["miss_ms"] is not None
    quant = next(r for r in timing_records if r["variant"] == "w8+t8")
    assert "int8" in quant["param_bytes"]["tables"] and quant["w8_excluded"]


def test_report_flags_repeats_and_writes_files(timing_records, tmp_path):
    second = [dict(r, repeat=1, p50=r["p50"] * (1.5 if r["variant"] == "split" else 1.01)) for r in timing_records]
    records = timing_records + second
    flags = {tuple(f["config"][:2]): f["flagged"] for f in bench_report.repeat_flags(records)}
    assert flags[("tiny", "split")] and not flags[("tiny", "w8+t8")]
    meta = {"device_label": "test", "device_kind": "cpu", "utc": "now", "backend": "cpu", "git": {}}
    raw = {"metadata": meta, "records": records, "repeat_flags": bench_report.repeat_flags(records),
           "caching_accounting": bench_report.caching_accounting(records)}  # fmt: skip
    table = bench_report.table_md(raw)
    assert "| tiny | split | 2 | 11 | 5 |" in table and "⚠" in table
    assert raw["caching_accounting"][0]["a_split_ms"] is not None
    files = bench_report.plots(raw, tmp_path)
    assert all((tmp_path / f.split("/")[-1]).stat().st_size > 1000 for f in files)


def test_grids_cover_the_issue_rows():
    issue = bench.grid_for("oss-mini", "issue")
    assert [1, 127, 500] in issue["cached"] and [1, 127, 500] in issue["w8+t8"] and [64, 127, 500] in issue["split"]
    assert bench.grid_for("large", "issue")["dense"] == [[1, 512, 2048]]
    full = bench.grid_for("oss-mini", "full")
    assert len(full["split"]) == 7 * 4 * 3 and len(full["w8"]) == 3 * 2 * 3


def test_no_timing_keeps_only_the_other_jobs():
    args = bench.parse(["--out", "x", "--no-timing", "--presets", "oss-mini", "large", "--memory-presets", "large"])
    kinds = [j["kind"] for j in bench.make_jobs(args, "gpu")]
    assert "timing" not in kinds and kinds.count("memory") == 4 and kinds.count("retrieval") == 2
    assert [j["kind"] for j in bench.make_jobs(bench.parse(["--out", "x"]), "gpu")].count("timing") == 4


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "x_reco.inference.bench", "--out", str(tmp_path), "--presets", "tiny", "--calls", "3",
           "--users", "4", "--quality-users", "8", "--quality-candidates", "16", "--no-retrieval", "--repeats", "2",
           "--source-cache", str(tmp_path / "src")]  # fmt: skip
    subprocess.run(cmd, check=True)
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert raw["schema_version"] == 1 and raw["metadata"]["versions"]["jax"]
    assert {p.name for p in tmp_path.iterdir()} >= {"raw.json", "table.md", "latency_vs_candidates.png", "latency_vs_history.png"}


def test_headline_is_flat_and_numeric(timing_records):
    meta = {"device_label": "test", "device_kind": "cpu", "backend": "cpu"}
    raw = {"metadata": meta, "records": timing_records, "repeat_flags": bench_report.repeat_flags(timing_records)}
    head = bench_report.headline(raw)
    assert head["device"] == "test" and len(head["source_param_digests"]) == 1
    assert isinstance(head["tiny/split/B2/S11/N5/p50"], float) and head["tiny/cached/B2/S11/N5/candidates_per_s"] > 0


def test_quality_on_a_trained_checkpoint_rehashes_trains_and_gates(tmp_path):
    """The ``--checkpoint`` quality path: re-hash sequences to fewer rows, train, score every variant vs ref-f32."""
    from x_reco.inference.bench_quality import run_quality
    from x_reco.inference.trained import train_quality_checkpoint
    from tests.training.helpers import toy_seqs

    toy_seqs().to_npz(tmp_path / "toy.npz")
    checkpoint = train_quality_checkpoint(tmp_path / "toy.npz", tmp_path / "q", preset="tiny", vocab_size=101, steps=4)
    job = {"kind": "quality", "checkpoint": str(checkpoint), "sequences": str(tmp_path / "q" / "sequences.npz"),
           "users": 6, "candidates": 9, "seed": 0, "users_per_call": 3, "variants": ["split", "w8+t8"]}  # fmt: skip
    records = run_quality(job)
    assert [r["variant"] for r in records] == ["split", "w8+t8"] and all(r["trained"] for r in records)
    assert len({r["source_param_digest"] for r in records}) == 1 and records[0]["param_version"]
    split, quant = records[0]["quality"], records[1]["quality"]
    assert split["label"] == quant["label"] == "trained" and quant["gates"]["applied"]  # trained weights are gated
    assert 0 < split["logits"]["max_abs"] < quant["logits"]["max_abs"]  # bf16 compute, then int8 on top of it
    assert records[1]["bytes_ratio_vs_f32"] < 0.6 and records[0]["bytes_ratio_vs_f32"] == 1.0
