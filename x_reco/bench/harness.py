"""Inference benchmark (inference spec §5): ``python -m x_reco.inference.bench --out DIR [--full] ...``.

Every configuration runs in separate worker processes (``bench_worker.py``), twice by default, so
run-to-run differences show; the parent never touches the accelerator. Outputs under ``--out``:
``raw.json`` (schema_version, metadata, every record), ``table.md``, ``latency_vs_candidates.png``,
``latency_vs_history.png``. Grids: ``reduced`` (default; < 10 min on a 2-core CPU), ``issue`` (the
rows the inference issue asks for), ``full`` (the spec §5.2 grid; ``--full``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from x_reco.inference import bench_report

SCHEMA_VERSION = 1
ROOT = Path(__file__).resolve().parents[2]
PRESET_S = {"oss-mini": 127, "large": 512, "tiny": 11, "reference-mini": 32}
OTHER = ("chunked-64", "cached", "bf16w", "w8", "w8+t8")


def _grid(rows: dict[str, list[tuple[int, int, int]]]) -> dict[str, list[list[int]]]:
    return {v: [list(x) for x in shapes] for v, shapes in rows.items()}


def grid_for(preset: str, grid: str) -> dict[str, list[list[int]]]:
    """Variant -> [(B, S, N)] for one preset."""
    s = PRESET_S.get(preset, 127)
    if grid == "full":
        ns, ss, bs = (64, 128, 256, 500, 1024, 2048, 4096), (128, 256, 512, 1024), (1, 16, 64)
        main = [(b, si, n) for b in bs for si in ss for n in ns]
        sub = [(b, si, n) for b in bs for si in (128, 512) for n in (64, 500, 2048)]
        return _grid({"ref-f32": [(1, s, 500)], "dense": main, "split": main, "chunked-256": sub,
                      **{v: sub for v in OTHER}})  # fmt: skip
    if grid == "issue":
        n = 500 if preset != "large" else 2048
        rows = {v: [(1, s, n)] for v in ("dense", "split", "cached", "w8+t8")}
        if preset != "large":
            rows.update({v: [(1, s, n)] for v in ("ref-f32", "chunked-64", "bf16w", "w8")})
        rows["split"] += [(16, s, 500), (64, s, 500)] if preset != "large" else [(16, s, 500)]
        return _grid(rows)
    if preset == "large":  # reduced CPU grid: one short-history point per path
        return _grid({"dense": [(1, 128, 64)], "split": [(1, 128, 64)]})
    rows = {"ref-f32": [(1, s, 500)], "dense": [(1, s, 64), (1, s, 500)],
            "split": [(1, s, 64), (1, s, 500), (1, s, 2048), (16, s, 64), (1, 512, 64)],
            **{v: [(1, s, 500)] for v in OTHER}}  # fmt: skip
    rows["dense"].append((1, 512, 64))
    return _grid(rows)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m x_reco.inference.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--full", action="store_true", help="the spec §5.2 grid (same as --grid full)")
    p.add_argument("--grid", choices=("reduced", "issue", "full"), default="reduced")
    p.add_argument("--presets", nargs="+", default=["oss-mini", "large"])
    p.add_argument("--device-label", default=None)
    p.add_argument("--repeats", type=int, default=2, help="separate processes per configuration")
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--pipelined", type=int, default=None, help="back-to-back calls (default 200 on GPU, 0 on CPU)")
    p.add_argument("--preset-calls", nargs="*", default=[], metavar="PRESET=CALLS",
                   help="override --calls/--users for a preset (e.g. large=10 on CPU)")  # fmt: skip
    p.add_argument("--table-rows", nargs="*", default=None, metavar="PRESET=ROWS",
                   help="hash-table rows per preset (default: full on GPU; large=100000 on CPU)")  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="trained ranker checkpoint (restore_checkpoint)")
    p.add_argument("--sequences", default=None, help="engagement sequences .npz for --checkpoint")
    p.add_argument("--quality-users", type=int, default=200)
    p.add_argument("--quality-candidates", type=int, default=1000)
    p.add_argument("--no-quality", action="store_true")
    p.add_argument("--no-retrieval", action="store_true")
    p.add_argument("--no-timing", action="store_true", help="skip the latency grid (memory, quality, retrieval only)")
    p.add_argument("--corpus-sizes", nargs="*", type=int, default=None)
    p.add_argument("--retrieval-batch", nargs="*", type=int, default=None, help="default 1 on CPU, 1 16 on GPU")
    p.add_argument("--corpus-formats", nargs="*", default=None, help="bf16 / int8 (f32 always runs as the exact reference)")
    p.add_argument("--source-cache", default=None, help="folder for generated benchmark sources")
    p.add_argument("--jobs-dir", default=None, help="folder for per-job JSON (default OUT/jobs)")
    p.add_argument("--memory-presets", nargs="*", default=["large"], help="presets with fresh-process GPU peak probes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.full:
        args.grid = "full"
    if bool(args.checkpoint) != bool(args.sequences):
        p.error("--checkpoint and --sequences go together")
    return args


def _kv(items: list[str] | None) -> dict[str, int]:
    return {k: int(v) for k, v in (i.split("=", 1) for i in (items or []))}


def make_jobs(args: argparse.Namespace, backend: str) -> list[dict]:
    """Worker jobs: metadata, then timing (per preset x repeat), memory probes (GPU), quality, retrieval."""
    gpu = backend == "gpu"
    rows = {"large": 100_000} if not gpu and args.table_rows is None else {}
    rows.update(_kv(args.table_rows))
    calls = _kv(args.preset_calls)
    common = {"seed": args.seed, "warmup": args.warmup, "source_cache": args.source_cache}
    pipelined = args.pipelined if args.pipelined is not None else (200 if gpu else 0)
    jobs: list[dict] = [{"kind": "metadata", "device_label": args.device_label}]
    for repeat in range(0 if args.no_timing else args.repeats):
        for preset in args.presets:
            n_calls = calls.get(preset, args.calls)
            grid = grid_for(preset, args.grid)
            if not gpu and preset == "large":  # batched `large` rows take minutes per call on a small CPU
                grid = {v: [x for x in shapes if x[0] == 1] for v, shapes in grid.items()}
            jobs.append({**common, "kind": "timing", "preset": preset, "repeat": repeat, "grid": grid,
                         "variants": list(grid), "calls": n_calls, "pipelined": pipelined,
                         "users": min(args.users, max(n_calls + args.warmup + 1, 1)) if preset in calls else args.users,
                         "accounting_samples": 3 if preset in calls else 50, "table_rows": rows.get(preset)})  # fmt: skip
    if gpu:
        for preset in [p for p in args.presets if p in args.memory_presets]:
            shape = [1, PRESET_S.get(preset, 127), 2048 if preset == "large" else 500]
            for variant in ("split", "bf16w", "w8", "w8+t8"):
                jobs.append({**common, "kind": "memory", "preset": preset, "variant": variant, "shape": shape,
                             "table_rows": rows.get(preset)})  # fmt: skip
    if not args.no_quality:
        quality = {**common, "kind": "quality", "users": args.quality_users, "candidates": args.quality_candidates}
        if "oss-mini" in args.presets:
            jobs.append({**quality, "preset": "oss-mini", "table_rows": rows.get("oss-mini")})
        if args.checkpoint:
            jobs.append({**quality, "preset": None, "checkpoint": args.checkpoint, "sequences": args.sequences})
    if not args.no_retrieval:
        reduced_cpu = args.grid == "reduced" and not gpu  # bf16 matmuls are emulated (slow) on CPU
        batch = args.retrieval_batch or ([1] if not gpu else [1, 16])
        sizes = args.corpus_sizes or {"full": [537_000, 1_000_000, 4_000_000], "issue": [537_000, 1_000_000]}.get(
            args.grid, [1_000_000])
        for repeat in range(args.repeats):
            jobs.append({**common, "kind": "retrieval", "preset": "oss-mini", "repeat": repeat, "corpus_sizes": sizes,
                         "formats": args.corpus_formats or (["int8"] if reduced_cpu else ["bf16", "int8"]),
                         "batch": batch, "k": 1000, "users": 200,
                         "calls": args.calls, "pipelined": pipelined, "table_rows": rows.get("oss-mini")})  # fmt: skip
    return jobs


def run_job(job: dict, folder: Path, index: int) -> tuple[list[dict], dict]:
    """Run one job in a fresh interpreter; returns (records, job log)."""
    folder.mkdir(parents=True, exist_ok=True)
    job_path, out_path = folder / f"job_{index:03d}.json", folder / f"out_{index:03d}.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "x_reco.inference.bench_worker", str(job_path), str(out_path)],
                          env=env, cwd=str(ROOT))  # fmt: skip
    log = {"index": index, "kind": job["kind"], "preset": job.get("preset"), "repeat": job.get("repeat"),
           "variant": job.get("variant"), "returncode": proc.returncode, "wall_s": time.perf_counter() - t0}  # fmt: skip
    if proc.returncode != 0 or not out_path.exists():
        print(f"job {index} ({job['kind']}) failed with code {proc.returncode}", file=sys.stderr)
        return [], log
    return json.loads(out_path.read_text()), log


def _backend() -> str:
    """The worker's default backend, asked in a throw-away process (the parent never claims the device)."""
    code = "import jax; print(jax.default_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else "cpu"


def _protocol(args: argparse.Namespace, record: dict) -> dict:
    problems = []
    if len(record.get("times_ms", [])) < 100:
        problems.append(f"{len(record.get('times_ms', []))} timed calls < 100")
    if args.warmup < 3:
        problems.append("warm-up < 3")
    if record.get("users", 0) < 200:
        problems.append(f"{record.get('users')} users < 200")
    if args.repeats < 2:
        problems.append("single process")
    return {"ok": not problems, "problems": problems}


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    backend = _backend()
    jobs = make_jobs(args, backend)
    records, logs, metadata = [], [], {}
    for i, job in enumerate(jobs):
        recs, log = run_job(job, Path(args.jobs_dir) if args.jobs_dir else out / "jobs", i)
        logs.append(log)
        if job["kind"] == "metadata":
            metadata = recs[0] if recs else {}
        else:
            records += recs
        partial = {"schema_version": SCHEMA_VERSION, "partial": True, "metadata": metadata, "jobs": logs, "records": records}
        (out / "raw.json").write_text(json.dumps(partial, default=str))  # survives an interrupted run
    for r in records:
        if r.get("kind", "timing") in ("timing", "retrieval"):
            r["protocol"] = _protocol(args, r)
    timing = [r for r in records if r.get("kind", "timing") == "timing"]
    raw = {
        "schema_version": SCHEMA_VERSION,
        "metadata": {**metadata, "command": [sys.executable, "-m", "x_reco.inference.bench", *(argv or sys.argv[1:])],
                     "settings": vars(args), "backend_detected": backend, "wall_s": time.perf_counter() - t0,
                     "bucket_scheme": {"S": [128, 256, 512, 1024], "N": "next power of two >= 64", "B": "exact"},
                     "table_rows_note": "tables of a preset listed in settings.table_rows use fewer rows than the "
                     "preset (CPU memory); per-call compute changes only in the gathers"},  # fmt: skip
        "jobs": logs,
        "records": records,
        "repeat_flags": bench_report.repeat_flags(timing),
        "caching_accounting": bench_report.caching_accounting(timing),
    }
    (out / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    table = bench_report.table_md(raw)
    (out / "table.md").write_text(table)
    plots = bench_report.plots(raw, out)
    raw["paths"] = {"raw_json": str(out / "raw.json"), "table_md": str(out / "table.md"), "plots": plots}
    print(table)
    return raw


def run_benchmark(
    out: str | Path,
    *,
    grid: str = "reduced",
    presets: tuple[str, ...] = ("oss-mini", "large"),
    device_label: str | None = None,
    repeats: int = 2,
    calls: int = 100,
    checkpoint: str | None = None,
    sequences: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> dict:
    """Library entry point (e.g. for the Dagster ``inference_benchmark`` asset): run the benchmark.

    Returns the raw dict written to ``out/raw.json`` plus ``raw["paths"]`` (raw.json, table.md, plots)
    and ``raw["headline"]`` (``bench_report.headline``: flat numeric p50/p90/p99 per configuration,
    device, digests). ``extra_args`` are further CLI flags (e.g. ``("--preset-calls", "large=10")``).
    """
    argv = ["--out", str(out), "--grid", grid, "--presets", *presets, "--repeats", str(repeats), "--calls", str(calls)]
    if device_label:
        argv += ["--device-label", device_label]
    if checkpoint:
        argv += ["--checkpoint", str(checkpoint), "--sequences", str(sequences)]
    raw = main(argv + list(extra_args))
    raw["headline"] = bench_report.headline(raw)
    return raw


if __name__ == "__main__":
    main()
