"""Benchmark harness (inference spec §5): §3 floors, worker records carry every §5.8 field, one shared
source digest across variants and processes, repeat flags at 10 %, report files, typed jobs planned
from a ``BenchConfig`` and each run in a fresh worker process (a failed or dead worker costs only its
own job), progress reported per configuration while a worker runs (past complaint: the Dagster step
logged nothing for minutes), and the ``demo`` grid the asset runs by default; the full CLI run is ``slow``.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.bench.helpers import ProbeJob
from tests.training.helpers import toy_seqs
from x_reco.bench import harness, report
from x_reco.bench.jobs import run_jobs
from x_reco.bench.quality import QualityJob, run_quality
from x_reco.bench.timing import TimingJob, run_timing
from x_reco.bench.trained import train_quality_checkpoint
from x_reco.bench.workload import bench_config, bench_source
from x_reco.configs import PhoenixConfig
from x_reco.data.examples import EngagementSequences
from x_reco.eval.ranker import objective_weights


def test_floors_match_the_spec_planning_numbers():
    large, mini = PhoenixConfig.large(), PhoenixConfig.oss_mini()
    assert report.request_flops(mini, "split", 1, 127, 500) == pytest.approx(0.93e9, rel=0.05)
    assert report.request_flops(large, "split", 1, 512, 500) == pytest.approx(57e9, rel=0.08)
    assert report.request_flops(large, "dense", 1, 512, 500) == pytest.approx(73e9, rel=0.05)
    assert report.floor_ms(large, "split", 1, 512, 500) == pytest.approx(0.072, rel=0.08)
    assert report.weight_bytes_bf16(large) == pytest.approx(51.2e6, rel=0.02)


def test_source_is_deterministic_and_cached(tmp_path):
    cfg = bench_config("tiny", table_rows=97)
    first = bench_source(cfg, root=tmp_path)
    again = bench_source(cfg, root=tmp_path)
    assert first.source_param_digest == again.source_param_digest
    assert np.array_equal(first.state["tables"]["post"].get_value(), again.state["tables"]["post"].get_value())
    assert not np.asarray(first.state["tables"]["user"].get_value()[0]).any() and cfg.hash_spec.family == "splitmix64"


@pytest.fixture(scope="module")
def timing_records(tmp_path_factory):
    grid = {v: [(2, 11, 5)] for v in ("split", "cached", "w8+t8")}
    job = TimingJob(
        "tiny",
        grid,
        calls=4,
        warmup=3,
        users=6,
        pipelined=3,
        table_rows=97,
        source_cache=str(tmp_path_factory.mktemp("src")),
        s_buckets=(16,),
    )
    return run_timing(job)


def test_worker_records_carry_the_protocol_fields(timing_records):
    need = {
        "bucket",
        "padding_waste",
        "compile_s",
        "first_call_ms",
        "times_ms",
        "pipelined_ms",
        "p50",
        "p90",
        "p99",
        "mean",
        "std",
        "candidates_per_s",
        "host_ms",
        "memory_analysis",
        "param_bytes",
        "kv_bytes_per_user",
        "cache",
        "source_param_digest",
        "w8_excluded",
    }
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
    flags = {tuple(f["config"][:2]): f["flagged"] for f in report.repeat_flags(records)}
    assert flags[("tiny", "split")] and not flags[("tiny", "w8+t8")]
    meta = {"device_label": "test", "device_kind": "cpu", "utc": "now", "backend": "cpu", "git": {}}
    raw = {
        "metadata": meta,
        "records": records,
        "repeat_flags": report.repeat_flags(records),
        "caching_accounting": report.caching_accounting(records),
    }
    table = report.table_md(raw)
    assert "| tiny | split | 2 | 11 | 5 |" in table and "⚠" in table
    assert raw["caching_accounting"][0]["a_split_ms"] is not None
    files = report.plots(raw, tmp_path)
    assert all((tmp_path / f.split("/")[-1]).stat().st_size > 1000 for f in files)


def test_grids_cover_the_issue_rows():
    issue = harness.grid_for("oss-mini", "issue")
    assert [1, 127, 500] in issue["cached"] and [1, 127, 500] in issue["w8+t8"] and [64, 127, 500] in issue["split"]
    assert harness.grid_for("large", "issue")["dense"] == [[1, 512, 2048]]
    full = harness.grid_for("oss-mini", "full")
    assert len(full["split"]) == 7 * 4 * 3 and len(full["w8"]) == 3 * 2 * 3


def test_demo_grid_times_the_four_serving_paths_and_scores_int8_on_the_trained_ranker_only():
    demo = harness.grid_for("oss-mini", "demo")
    assert tuple(demo) == harness.DEMO_VARIANTS and all(shapes == [[1, 127, 256]] for shapes in demo.values())
    config = harness.BenchConfig.for_grid("demo", presets=("oss-mini",), calls=None, users=7, retrieval=False)
    assert (config.calls, config.users, config.quality_users) == (20, 7, 32)  # unset: the grid's; given: kept
    kinds = [j.kind for j in harness.make_jobs(config, "cpu")]
    assert kinds == ["timing", "timing"]  # no quality on the random-init source
    trained = harness.BenchConfig.for_grid("demo", checkpoint="ckpt", sequences=toy_seqs(), retrieval=False)
    quality = [j for j in harness.make_jobs(trained, "cpu") if j.kind == "quality"]
    assert (
        len(quality) == 1
        and quality[0].checkpoint == "ckpt"
        and quality[0].variants == ("w8+t8", "w8+t8-f32", "w8+t8-cal", "w8+t8-cal-f32")
    )
    assert harness.BenchConfig.for_grid("issue").calls == 100 and harness.parse(["--out", "x"])[0].grid == "reduced"


def test_progress_counts_every_configuration_once_even_when_labels_are_lost_or_a_job_fails():
    timing = TimingJob("tiny", {"split": [(1, 11, 64), (2, 11, 64)], "dense": [(1, 11, 64)]})
    probe = ProbeJob()
    calls = []
    tracker = harness._Tracker([timing, probe], lambda *a: calls.append(a))
    tracker.step(timing, "tiny r0 split B=1 S=11 N=64")
    tracker.finish(timing, {"error": None})  # two labels still in flight when the job ended
    tracker.step(timing, "late label")  # ignored: the job is counted
    tracker.finish(probe, {"error": "worker process died"})
    assert [(d, t) for d, t, _, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[0][2] == "tiny r0 split B=1 S=11 N=64" and calls[-1][2] == "probe failed"
    assert all(e >= 0 for *_, e in calls)


def test_a_worker_reports_configurations_while_its_job_runs():
    heard = []
    results = list(run_jobs([ProbeJob("report"), ProbeJob()], on_report=lambda job, label: heard.append(label)))
    assert heard == ["first", "second"] and all(records for _, records, _ in results)


def test_cli_options_plan_typed_jobs():
    config, out = harness.parse(
        [
            "--out",
            "x",
            "--no-timing",
            "--presets",
            "oss-mini",
            "large",
            "--memory-presets",
            "large",
            "--table-rows",
            "large=1000",
        ]
    )
    jobs = harness.make_jobs(config, "gpu")
    kinds = [j.kind for j in jobs]
    assert str(out) == "x" and "timing" not in kinds and kinds.count("memory") == 4 and kinds.count("retrieval") == 2
    assert {j.table_rows for j in jobs if j.kind == "memory"} == {1000}
    default, _ = harness.parse(["--out", "x"])
    timing = [j for j in harness.make_jobs(default, "cpu") if j.kind == "timing"]
    assert [(j.preset, j.repeat) for j in timing] == [("oss-mini", 0), ("large", 0), ("oss-mini", 1), ("large", 1)]
    assert timing[1].table_rows == 100_000 and all(s[0] == 1 for _, shapes in timing[1].grid for s in shapes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timing[0].calls = 1


def test_bench_config_rejects_what_cannot_run():
    with pytest.raises(ValueError, match="go together"):
        harness.BenchConfig(checkpoint="ckpt")
    with pytest.raises(ValueError, match="unknown grid"):
        harness.BenchConfig(grid="huge")
    settings = harness.BenchConfig(checkpoint="ckpt", sequences=toy_seqs(), preset_calls={"large": 5}).settings()
    assert settings["sequences"] == "EngagementSequences (in memory)" and json.dumps(settings)


def test_each_job_runs_in_a_fresh_worker_and_failures_stay_with_their_job():
    results = list(run_jobs([ProbeJob(), ProbeJob("fail"), ProbeJob(), ProbeJob("die"), ProbeJob()]))
    logs = [log for _, _, log in results]
    pids = [records[0]["pid"] for _, records, _ in results if records]
    assert len(pids) == 3 and len(set(pids)) == 3 and os.getpid() not in pids
    assert results[0][1][0]["value"] == 0.5 and results[0][1][0]["ids"] == [0, 1]  # plain JSON types
    assert "broken configuration" in logs[1]["error"] and "died" in logs[3]["error"]
    assert [bool(log["error"]) for log in logs] == [False, True, False, True, False]


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "x_reco.bench",
        "--out",
        str(tmp_path),
        "--presets",
        "tiny",
        "--calls",
        "3",
        "--users",
        "4",
        "--quality-users",
        "8",
        "--quality-candidates",
        "16",
        "--no-retrieval",
        "--repeats",
        "2",
        "--source-cache",
        str(tmp_path / "src"),
    ]
    subprocess.run(cmd, check=True)
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert raw["schema_version"] == 1 and raw["metadata"]["versions"]["jax"]
    assert not any(log["error"] for log in raw["jobs"]) and [log["kind"] for log in raw["jobs"]].count("timing") == 2
    outputs = {"raw.json", "table.md", "latency_vs_candidates.png", "latency_vs_history.png"}
    assert {p.name for p in tmp_path.iterdir()} >= outputs


def test_headline_is_flat_and_numeric(timing_records):
    meta = {"device_label": "test", "device_kind": "cpu", "backend": "cpu"}
    raw = {"metadata": meta, "records": timing_records, "repeat_flags": report.repeat_flags(timing_records)}
    head = report.headline(raw)
    assert head["device"] == "test" and len(head["source_param_digests"]) == 1
    assert isinstance(head["tiny/split/B2/S11/N5/p50"], float) and head["tiny/cached/B2/S11/N5/candidates_per_s"] > 0


def test_trained_quality_users_come_from_a_path_or_the_loaded_value(tmp_path):
    seqs = toy_seqs()
    seqs.to_npz(tmp_path / "toy.npz")
    from_path = QualityJob.trained("ckpt", tmp_path / "toy.npz", users=5, candidates=7)
    from_value = QualityJob.trained("ckpt", seqs, users=5, candidates=7)
    assert from_path.sequences == str(tmp_path / "toy.npz") and from_value.sequences is None
    for a, b in zip(dataclasses.astuple(from_path.batch), dataclasses.astuple(from_value.batch), strict=True):
        assert np.array_equal(a, b)
    assert from_value.batch.batch_size == 5 and from_value.hash_spec == seqs.hash_spec
    # the candidates are scored as the ranker serves them on that partition: its objective's weights
    assert from_path.objective == from_value.objective == seqs.partition
    # calibration requests (train split, other than the judged ones) exist only for a -cal variant
    assert QualityJob.trained("ckpt", seqs, users=5, candidates=7, variants=("w8+t8",)).calibration_batch is None
    cal = QualityJob.trained("ckpt", seqs, users=5, candidates=7, variants=("w8+t8-cal",)).calibration_batch
    assert cal is not None and cal.num_candidates == 7 and 0 < cal.batch_size <= QualityJob.calibration_users


@pytest.mark.slow  # ~11 s; the serving_model asset test runs QualityJob.trained on a trained checkpoint
def test_quality_on_a_trained_checkpoint_rehashes_trains_and_gates(tmp_path):
    """The checkpoint quality path: re-hash sequences to fewer rows, train, score every variant vs ref-f32."""
    toy_seqs().to_npz(tmp_path / "toy.npz")
    checkpoint = train_quality_checkpoint(tmp_path / "toy.npz", tmp_path / "q", preset="tiny", vocab_size=101, steps=4)
    job = QualityJob.trained(
        checkpoint,
        tmp_path / "q" / "sequences.npz",
        users=6,
        candidates=9,
        users_per_call=3,
        variants=("split", "w8+t8"),
    )
    records = run_quality(job)
    assert [r["variant"] for r in records] == ["split", "w8+t8"] and all(r["trained"] for r in records)
    assert len({r["source_param_digest"] for r in records}) == 1 and records[0]["param_version"]
    split, quant = records[0]["quality"], records[1]["quality"]
    assert split["label"] == quant["label"] == "trained" and quant["gates"]["applied"]  # trained weights are gated
    assert 0 < split["logits"]["max_abs"] < quant["logits"]["max_abs"]  # bf16 compute, then int8 on top of it
    assert records[1]["bytes_ratio_vs_f32"] < 0.6 and records[0]["bytes_ratio_vs_f32"] == 1.0
    partition = EngagementSequences.from_npz(tmp_path / "toy.npz").partition
    assert {r["score_weights"] for r in records} == {objective_weights(partition).name}
