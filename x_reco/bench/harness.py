"""Inference benchmark (inference spec §5): ``run_benchmark(BenchConfig(...), out)``, or ``python -m x_reco.bench``.

Every job (metadata; timing per preset and repeat; GPU memory probes; quality; retrieval) runs in a
fresh worker process (``x_reco.bench.jobs``), timing twice by default so run-to-run differences show;
the parent never touches the accelerator. Outputs under ``out``: ``raw.json`` (schema_version,
metadata, every record), ``table.md``, ``latency_vs_candidates.png``, ``latency_vs_history.png``.
Grids: ``demo`` (the Dagster asset's default: the four serving paths at (B, S, N) = (1, S, 256), trained
INT8 quality only, with the smaller calls and users of ``GRID_SETTINGS``; about a minute on a 2-core CPU), ``reduced``
(the CLI's default; < 10 min on a 2-core CPU), ``issue`` (the rows the inference issue asks for),
``full`` (the spec §5.2 grid; ``--full``). ``run_benchmark(..., progress=...)`` reports each finished
configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tqdm.auto import tqdm

from x_reco.bench import report
from x_reco.bench.jobs import Job, run_jobs
from x_reco.bench.metadata import MetadataJob
from x_reco.bench.quality import QualityJob
from x_reco.bench.retrieval import RetrievalJob
from x_reco.bench.timing import MemoryJob, TimingJob
from x_reco.data.examples import EngagementSequences

SCHEMA_VERSION = 1
PRESET_S = {"oss-mini": 127, "large": 512, "tiny": 11, "reference-mini": 32}
OTHER = ("chunked-64", "cached", "bf16w", "w8", "w8+t8")
GRIDS = ("demo", "reduced", "issue", "full")
DEMO_VARIANTS = ("dense", "split", "cached", "w8+t8")
# What a grid changes in BenchConfig's defaults (``BenchConfig.for_grid``): the demo times fewer calls
# and users (its records say "protocol": not ok), and scores INT8 quality on the trained ranker only.
GRID_SETTINGS: dict[str, dict] = {
    "demo": {
        "calls": 20,
        "users": 16,
        "quality_users": 32,
        "quality_candidates": 256,
        "quality_variants": ("w8+t8", "w8+t8-f32", "w8+t8-cal", "w8+t8-cal-f32"),
        "preset_quality": False,
    }
}
Progress = Callable[[int, int, str, float], None]  # (done, total, label, elapsed_s)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures. ``parse`` builds it from the CLI, the Dagster asset from its config.

    ``preset_calls`` overrides ``calls`` (and caps ``users``) per preset; ``table_rows`` sets hash-table
    rows per preset (default: full on GPU, ``large`` = 100,000 on CPU). ``checkpoint`` (a
    ``restore_checkpoint`` directory) adds a quality job on trained weights whose users come from
    ``sequences``: an ``EngagementSequences`` value or its ``.npz`` path. ``pipelined`` defaults to 200
    back-to-back calls on GPU and 0 on CPU; ``retrieval_batch`` to 1 on CPU and 1, 16 on GPU.
    ``quality_variants`` (default: every ``QUALITY_VARIANTS``) are scored against ref-f32; ``preset_quality``
    also scores them on the random-init ``oss-mini`` source (the trained job needs ``checkpoint``).
    """

    grid: str = "reduced"
    presets: tuple[str, ...] = ("oss-mini", "large")
    device_label: str | None = None
    repeats: int = 2
    calls: int = 100
    warmup: int = 3
    users: int = 200
    pipelined: int | None = None
    preset_calls: Mapping[str, int] = dataclasses.field(default_factory=dict)
    table_rows: Mapping[str, int] | None = None
    checkpoint: str | None = None
    sequences: EngagementSequences | str | None = None
    quality_users: int = 200
    quality_candidates: int = 1000
    quality_variants: tuple[str, ...] | None = None
    preset_quality: bool = True
    quality: bool = True
    retrieval: bool = True
    timing: bool = True
    corpus_sizes: tuple[int, ...] | None = None
    retrieval_batch: tuple[int, ...] | None = None
    corpus_formats: tuple[str, ...] | None = None
    source_cache: str | None = None
    memory_presets: tuple[str, ...] = ("large",)
    seed: int = 0

    def __post_init__(self):
        if self.grid not in GRIDS:
            raise ValueError(f"unknown grid {self.grid!r}; known: {GRIDS}")
        if (self.checkpoint is None) != (self.sequences is None):
            raise ValueError("checkpoint and sequences go together")
        if self.repeats < 1 or self.calls < 1:
            raise ValueError(f"repeats ({self.repeats}) and calls ({self.calls}) must be >= 1")

    @classmethod
    def for_grid(cls, grid: str, **fields) -> BenchConfig:
        """``grid`` with its ``GRID_SETTINGS``; ``fields`` given as None take the grid's (or the class's) default."""
        given = {k: v for k, v in fields.items() if v is not None}
        return cls(grid=grid, **{**GRID_SETTINGS.get(grid, {}), **given})

    def settings(self) -> dict:
        """JSON-able settings for ``raw.json`` (in-memory sequences are named, not copied)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.sequences, EngagementSequences):
            out["sequences"] = "EngagementSequences (in memory)"
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items()}


def _grid(rows: dict[str, list[tuple[int, int, int]]]) -> dict[str, list[list[int]]]:
    return {v: [list(x) for x in shapes] for v, shapes in rows.items()}


def grid_for(preset: str, grid: str) -> dict[str, list[list[int]]]:
    """Variant -> [(B, S, N)] for one preset."""
    s = PRESET_S.get(preset, 127)
    if grid == "full":
        ns, ss, bs = (64, 128, 256, 500, 1024, 2048, 4096), (128, 256, 512, 1024), (1, 16, 64)
        main = [(b, si, n) for b in bs for si in ss for n in ns]
        sub = [(b, si, n) for b in bs for si in (128, 512) for n in (64, 500, 2048)]
        return _grid(
            {"ref-f32": [(1, s, 500)], "dense": main, "split": main, "chunked-256": sub, **{v: sub for v in OTHER}}
        )
    if grid == "issue":
        n = 500 if preset != "large" else 2048
        rows = {v: [(1, s, n)] for v in ("dense", "split", "cached", "w8+t8")}
        if preset != "large":
            rows.update({v: [(1, s, n)] for v in ("ref-f32", "chunked-64", "bf16w", "w8")})
        rows["split"] += [(16, s, 500), (64, s, 500)] if preset != "large" else [(16, s, 500)]
        return _grid(rows)
    if grid == "demo":  # the Dagster asset's default: one point per serving path, ~1 min on 2 CPU cores
        return _grid({v: [(1, 128 if preset == "large" else s, 256)] for v in DEMO_VARIANTS})
    if preset == "large":  # reduced CPU grid: one short-history point per path
        return _grid({"dense": [(1, 128, 64)], "split": [(1, 128, 64)]})
    rows = {
        "ref-f32": [(1, s, 500)],
        "dense": [(1, s, 64), (1, s, 500)],
        "split": [(1, s, 64), (1, s, 500), (1, s, 2048), (16, s, 64), (1, 512, 64)],
        **{v: [(1, s, 500)] for v in OTHER},
    }
    rows["dense"].append((1, 512, 64))
    return _grid(rows)


def parse(argv: list[str] | None = None) -> tuple[BenchConfig, Path]:
    """The CLI's ``BenchConfig`` and output folder."""
    p = argparse.ArgumentParser(prog="python -m x_reco.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--full", action="store_true", help="the spec §5.2 grid (same as --grid full)")
    p.add_argument("--grid", choices=GRIDS, default="reduced")
    p.add_argument("--presets", nargs="+", default=["oss-mini", "large"])
    p.add_argument("--device-label", default=None)
    p.add_argument("--repeats", type=int, default=2, help="separate processes per configuration")
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--pipelined", type=int, default=None, help="back-to-back calls (default 200 on GPU, 0 on CPU)")
    p.add_argument(
        "--preset-calls",
        nargs="*",
        default=[],
        metavar="PRESET=CALLS",
        help="override --calls/--users for a preset (e.g. large=10 on CPU)",
    )
    p.add_argument(
        "--table-rows",
        nargs="*",
        default=None,
        metavar="PRESET=ROWS",
        help="hash-table rows per preset (default: full on GPU; large=100000 on CPU)",
    )
    p.add_argument("--checkpoint", default=None, help="trained ranker checkpoint (restore_checkpoint)")
    p.add_argument("--sequences", default=None, help="engagement sequences .npz for --checkpoint")
    p.add_argument("--quality-users", type=int, default=200)
    p.add_argument("--quality-candidates", type=int, default=1000)
    p.add_argument("--quality-variants", nargs="+", default=None, help="variants scored against ref-f32 (default: all)")
    p.add_argument("--no-quality", action="store_true")
    p.add_argument("--no-retrieval", action="store_true")
    p.add_argument("--no-timing", action="store_true", help="skip the latency grid (memory, quality, retrieval only)")
    p.add_argument("--corpus-sizes", nargs="*", type=int, default=None)
    p.add_argument("--retrieval-batch", nargs="*", type=int, default=None, help="default 1 on CPU, 1 16 on GPU")
    p.add_argument("--corpus-formats", nargs="*", default=None, help="bf16 / int8 (f32 always runs as the reference)")
    p.add_argument("--source-cache", default=None, help="folder for generated benchmark sources")
    p.add_argument("--memory-presets", nargs="*", default=["large"], help="presets with fresh-process GPU peak probes")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if bool(a.checkpoint) != bool(a.sequences):
        p.error("--checkpoint and --sequences go together")
    tup = lambda x: None if x is None else tuple(x)  # noqa: E731
    config = BenchConfig(
        grid="full" if a.full else a.grid,
        presets=tuple(a.presets),
        device_label=a.device_label,
        repeats=a.repeats,
        calls=a.calls,
        warmup=a.warmup,
        users=a.users,
        pipelined=a.pipelined,
        preset_calls=_kv(a.preset_calls),
        table_rows=None if a.table_rows is None else _kv(a.table_rows),
        checkpoint=a.checkpoint,
        sequences=a.sequences,
        quality_users=a.quality_users,
        quality_candidates=a.quality_candidates,
        quality_variants=tup(a.quality_variants),
        quality=not a.no_quality,
        retrieval=not a.no_retrieval,
        timing=not a.no_timing,
        corpus_sizes=tup(a.corpus_sizes),
        retrieval_batch=tup(a.retrieval_batch),
        corpus_formats=tup(a.corpus_formats),
        source_cache=a.source_cache,
        memory_presets=tuple(a.memory_presets),
        seed=a.seed,
    )
    return config, Path(a.out)


def _kv(items: list[str] | None) -> dict[str, int]:
    return {k: int(v) for k, v in (i.split("=", 1) for i in (items or []))}


def _timing_jobs(config: BenchConfig, gpu: bool, rows: Mapping[str, int], pipelined: int) -> list[TimingJob]:
    calls = config.preset_calls
    jobs = []
    for repeat in range(config.repeats if config.timing else 0):
        for preset in config.presets:
            n_calls = calls.get(preset, config.calls)
            grid = grid_for(preset, config.grid)
            if not gpu and preset == "large":  # batched `large` rows take minutes per call on a small CPU
                grid = {v: [x for x in shapes if x[0] == 1] for v, shapes in grid.items()}
            users = min(config.users, max(n_calls + config.warmup + 1, 1)) if preset in calls else config.users
            jobs.append(
                TimingJob(
                    preset,
                    grid,
                    repeat=repeat,
                    calls=n_calls,
                    warmup=config.warmup,
                    users=users,
                    pipelined=pipelined,
                    accounting_samples=3 if preset in calls else 50,
                    seed=config.seed,
                    table_rows=rows.get(preset),
                    source_cache=config.source_cache,
                )
            )
    return jobs


def _quality_jobs(config: BenchConfig, rows: Mapping[str, int]) -> list[QualityJob]:
    common = {"users": config.quality_users, "candidates": config.quality_candidates, "seed": config.seed}
    if config.quality_variants is not None:
        common["variants"] = tuple(config.quality_variants)
    jobs = []
    if "oss-mini" in config.presets and config.preset_quality:
        jobs.append(
            QualityJob(preset="oss-mini", table_rows=rows.get("oss-mini"), source_cache=config.source_cache, **common)
        )
    if config.checkpoint:
        jobs.append(QualityJob.trained(config.checkpoint, config.sequences, **common))
    return jobs


def make_jobs(config: BenchConfig, backend: str) -> list[Job]:
    """Worker jobs after the metadata: timing (per repeat x preset), memory probes (GPU), quality, retrieval."""
    gpu = backend == "gpu"
    rows = {"large": 100_000} if not gpu and config.table_rows is None else {}
    rows.update(config.table_rows or {})
    pipelined = config.pipelined if config.pipelined is not None else (200 if gpu else 0)
    jobs: list[Job] = [*_timing_jobs(config, gpu, rows, pipelined)]
    if gpu:
        for preset in [p for p in config.presets if p in config.memory_presets]:
            shape = (1, PRESET_S.get(preset, 127), 2048 if preset == "large" else 500)
            jobs += [
                MemoryJob(
                    preset,
                    variant,
                    shape,
                    seed=config.seed,
                    table_rows=rows.get(preset),
                    source_cache=config.source_cache,
                )
                for variant in ("split", "bf16w", "w8", "w8+t8")
            ]
    if config.quality:
        jobs += _quality_jobs(config, rows)
    if config.retrieval:
        reduced_cpu = config.grid == "reduced" and not gpu  # bf16 matmuls are emulated (slow) on CPU
        sizes = config.corpus_sizes or {"full": (537_000, 1_000_000, 4_000_000), "issue": (537_000, 1_000_000)}.get(
            config.grid, (1_000_000,)
        )
        formats = config.corpus_formats or (("int8",) if reduced_cpu else ("bf16", "int8"))
        jobs += [
            RetrievalJob(
                "oss-mini",
                corpus_sizes=tuple(sizes),
                formats=formats,
                repeat=repeat,
                batch=config.retrieval_batch or ((1,) if not gpu else (1, 16)),
                calls=config.calls,
                warmup=config.warmup,
                pipelined=pipelined,
                seed=config.seed,
                table_rows=rows.get("oss-mini"),
                source_cache=config.source_cache,
            )
            for repeat in range(config.repeats)
        ]
    return jobs


def _protocol(config: BenchConfig, record: dict) -> dict:
    problems = []
    if len(record.get("times_ms", [])) < 100:
        problems.append(f"{len(record.get('times_ms', []))} timed calls < 100")
    if config.warmup < 3:
        problems.append("warm-up < 3")
    if record.get("users", 0) < 200:
        problems.append(f"{record.get('users')} users < 200")
    if config.repeats < 2:
        problems.append("single process")
    return {"ok": not problems, "problems": problems}


def _units(job: Job) -> int:
    """Configurations a job reports: each (variant, shape) of a timing job; one for any other job."""
    return sum(len(shapes) for _, shapes in job.grid) if isinstance(job, TimingJob) else 1


class _Tracker:
    """Feeds ``progress(done, total, label, elapsed_s)``: timing configurations as their worker reports
    them, the rest of a job's configurations (other kinds, labels lost in flight, failures) when it ends."""

    def __init__(self, jobs: list[Job], progress: Progress | None):
        self.progress, self.t0, self.done = progress, time.perf_counter(), 0
        self.left = {id(j): _units(j) for j in jobs}
        self.total = sum(self.left.values())

    def step(self, job: Job, label: str) -> None:
        if self.left[id(job)] > 0:
            self.left[id(job)] -= 1
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total, label, time.perf_counter() - self.t0)

    def finish(self, job: Job, log: dict) -> None:
        label = f"{job.kind} {getattr(job, 'preset', None) or ''}".strip() + (" failed" if log["error"] else "")
        while self.left[id(job)] > 0:
            self.step(job, label)


def _run_all(config: BenchConfig, out: Path, progress: Progress | None) -> tuple[dict, list[dict], list[dict], str]:
    """Metadata first (it names the backend the jobs are planned for), then every job; raw.json after each."""
    _, records, log = next(run_jobs([MetadataJob(config.device_label)]))
    metadata, logs, all_records = (records[0] if records else {}), [log], []
    backend = metadata.get("backend", "cpu")
    jobs = make_jobs(config, backend)
    tracker = _Tracker(jobs, progress)
    for job, records, log in run_jobs(jobs, on_report=tracker.step if progress is not None else None):
        tracker.finish(job, log)
        logs.append(log)
        all_records += records
        partial = {
            "schema_version": SCHEMA_VERSION,
            "partial": True,
            "metadata": metadata,
            "jobs": logs,
            "records": all_records,
        }
        (out / "raw.json").write_text(json.dumps(partial, default=str))  # survives an interrupted run
    return metadata, logs, all_records, backend


def run_benchmark(
    config: BenchConfig, out: str | Path, *, command: list[str] | None = None, progress: Progress | None = None
) -> dict:
    """Run the benchmark into ``out``; the one entry point of the CLI and the Dagster asset.

    ``progress(done, total, label, elapsed_s)`` is called after each timed configuration (and each
    quality, memory or retrieval job), in this process.

    Returns the dict written to ``out/raw.json`` plus ``raw["paths"]`` (raw.json, table.md, plots) and
    ``raw["headline"]`` (``report.headline``: flat numeric p50/p90/p99 per configuration, device, digests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    metadata, logs, records, backend = _run_all(config, out, progress)
    for r in records:
        if r.get("kind", "timing") in ("timing", "retrieval"):
            r["protocol"] = _protocol(config, r)
    timing = [r for r in records if r.get("kind", "timing") == "timing"]
    raw = {
        "schema_version": SCHEMA_VERSION,
        "metadata": {
            **metadata,
            "command": command,
            "settings": config.settings(),
            "backend_detected": backend,
            "wall_s": time.perf_counter() - t0,
            "bucket_scheme": {"S": [128, 256, 512, 1024], "N": "next power of two >= 64", "B": "exact"},
            "table_rows_note": "tables of a preset listed in settings.table_rows use fewer rows than the "
            "preset (CPU memory); per-call compute changes only in the gathers",
        },
        "jobs": logs,
        "records": records,
        "repeat_flags": report.repeat_flags(timing),
        "caching_accounting": report.caching_accounting(timing),
    }
    (out / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    (out / "table.md").write_text(report.table_md(raw))
    raw["paths"] = {
        "raw_json": str(out / "raw.json"),
        "table_md": str(out / "table.md"),
        "plots": report.plots(raw, out),
    }
    raw["headline"] = report.headline(raw)
    return raw


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    config, out = parse(argv)
    with tqdm(desc="benchmark", unit="config", file=sys.stderr) as bar:

        def progress(done: int, total: int, label: str, elapsed_s: float) -> None:
            bar.total = total
            bar.set_postfix_str(label, refresh=False)
            bar.update(done - bar.n)

        raw = run_benchmark(config, out, command=[sys.executable, "-m", "x_reco.bench", *argv], progress=progress)
    print((out / "table.md").read_text())
    return raw
