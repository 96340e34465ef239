"""Inference group: latency, throughput, memory and INT8 quality of the compiled serving paths."""

import json
from collections.abc import Mapping

import dagster as dg
import numpy as np
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, image
from resources import StorageResource
from resources.tags import BENCH_GRID_TAG
from x_reco.bench.harness import GRIDS, PRESET_S, BenchConfig, run_benchmark
from x_reco.common.atomic import atomic_dir
from x_reco.data.examples import EngagementSequences
from x_reco.training.progress import throttled

# A run tag naming the grid where the config leaves it unset: `bench_job` sets it, because `dg launch`
# sends an empty run config that replaces a job's default config (tags are kept).
DEFAULT_GRID = "demo"


class BenchmarkConfig(dg.Config):
    """Benchmark grid and protocol (x_reco.bench). The full grids (`issue`, `full`) run in `bench_job`
    and `make bench`; `make demo` runs the `demo` grid in about a minute on a 2-core CPU."""

    grid: str | None = pydantic.Field(
        None,
        description=f"one of {list(GRIDS)}: `demo` the four serving paths at one point each (about 1 min on a "
        "2-core CPU), `reduced` minutes, `issue` the inference issue's rows, `full` the spec §5.2 grid; "
        f"unset: the run's `{BENCH_GRID_TAG}` tag (bench_job: issue), else {DEFAULT_GRID}",
    )
    presets: list[str] | None = pydantic.Field(
        None, description=f"model presets to time, some of {sorted(PRESET_S)}; unset: oss-mini only"
    )
    repeats: int = pydantic.Field(
        2, ge=1, description="separate worker processes per configuration (repeats_consistent compares two)"
    )
    calls: int | None = pydantic.Field(
        None, ge=1, description="timed calls per configuration; unset: the grid's default (demo 20, others 100)"
    )
    users: int | None = pydantic.Field(
        None, ge=1, description="distinct seeded users the timed calls cycle through; unset: the grid's default"
    )
    retrieval: bool = pydantic.Field(
        False, description="also time retrieval over 1M-item corpora (minutes on a CPU; `make bench` has them)"
    )
    trained_quality: bool = pydantic.Field(
        True, description="score INT8 quality against f32 on this partition's trained ranker and users"
    )

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        unknown = sorted(set(self.presets or []) - set(PRESET_S))
        if unknown:
            raise ValueError(f"presets={self.presets}: unknown {unknown}; expected some of {sorted(PRESET_S)}")
        bench_config(self, self.grid or DEFAULT_GRID, None, None)  # BenchConfig checks the grid
        return self


def bench_grid(config: BenchmarkConfig, tags: Mapping[str, str]) -> str:
    """The grid a run benchmarks: the config's, else the run's ``BENCH_GRID_TAG``, else ``DEFAULT_GRID``."""
    return config.grid or tags.get(BENCH_GRID_TAG, DEFAULT_GRID)


def bench_config(
    config: BenchmarkConfig, grid: str, checkpoint: str | None, sequences: EngagementSequences | None
) -> BenchConfig:
    """The library's benchmark config of ``grid`` (its settings where a field is unset); with a
    checkpoint, quality also runs on its trained weights."""
    return BenchConfig.for_grid(
        grid,
        presets=tuple(config.presets or ["oss-mini"]),
        repeats=config.repeats,
        calls=config.calls,
        users=config.users,
        retrieval=config.retrieval,
        checkpoint=checkpoint,
        sequences=sequences,
    )


def timing_frame(raw: dict) -> pd.DataFrame:
    """One row per timed configuration and process repeat."""
    keys = (
        "preset",
        "mode",
        "variant",
        "B",
        "S",
        "N",
        "repeat",
        "p50",
        "p90",
        "p99",
        "mean",
        "std",
        "pipelined_ms",
        "compile_s",
        "candidates_per_s",
        "host_ms",
        "end_to_end_p50_ms",
        "source_param_digest",
    )
    rows = [
        {k: r.get(k) for k in keys} | {"host_ms": (r.get("host_ms") or {}).get("p50")}
        for r in raw["records"]
        if r.get("kind", "timing") == "timing"
    ]
    frame = pd.DataFrame(rows, columns=list(keys)).rename(
        columns={"p50": "p50_ms", "p90": "p90_ms", "p99": "p99_ms", "mean": "mean_ms", "std": "std_ms"}
    )
    for col in frame.columns[3:-1]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _log_progress(context: dg.AssetExecutionContext):
    """``benchmark k/n <label> … ETA …`` at most every 10 s (and for the last configuration)."""

    def log(done: int, total: int, label: str, elapsed_s: float, eta_s: float) -> None:
        context.log.info(f"benchmark {done}/{total} {label}, {elapsed_s:,.0f}s elapsed, ETA {eta_s:,.0f}s")

    forward = throttled(log, every_s=10.0)
    return lambda done, total, label, elapsed_s: forward(
        done, total, label, elapsed_s, elapsed_s / max(done, 1) * (total - done)
    )


@dg.asset(
    partitions_def=DATASETS,
    group_name="inference",
    io_manager_key=DUCKDB,
    kinds={"jax", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "repeats_consistent",
            asset="inference_benchmark",
            blocking=False,
            description="p50s of the two process repeats within 10 % (a warning: on a shared machine timing "
            "noise alone can exceed it)",
        )
    ],
)
def inference_benchmark(
    context: dg.AssetExecutionContext,
    config: BenchmarkConfig,
    storage: StorageResource,
    ranker_checkpoint: dict,
    engagement_sequences: EngagementSequences,
):
    """Compiled-vs-compiled latency of dense / split / cached / bf16 / w8 / w8+t8 serving paths, with
    INT8 quality measured on this partition's trained ranker."""
    trained = config.trained_quality
    grid = bench_grid(config, context.run.tags)
    options = bench_config(
        config, grid, ranker_checkpoint["path"] if trained else None, engagement_sequences if trained else None
    )
    context.log.info(f"run_benchmark: {options.settings()}")
    dest = storage.path("bench", context.partition_key)
    with atomic_dir(dest) as out:
        raw = run_benchmark(options, out, progress=_log_progress(context))
    frame = timing_frame(raw)
    meta = raw.get("metadata", {})
    flags = raw.get("repeat_flags", [])
    yield dg.Output(
        frame,
        metadata={
            "raw_json": dg.MetadataValue.path(str(dest / "raw.json")),
            "device": str(meta.get("device_kind", meta.get("backend_detected", ""))),
            "configurations": len(frame),
            "results_table": dg.MetadataValue.md((dest / "table.md").read_text()),
            **{
                f"p50_ms_{r.variant}_B{r.B}_N{r.N}": float(r.p50_ms)
                for r in frame.itertuples()
                if r.preset == (config.presets or ["oss-mini"])[0] and r.repeat == 0 and np.isfinite(r.p50_ms)
            },
            **{
                name.removesuffix(".png"): image((dest / name).read_bytes(), name)
                for name in ("latency_vs_candidates.png", "latency_vs_history.png")
                if (dest / name).exists()
            },
        },
    )
    flagged = [f for f in flags if f.get("flagged")]
    yield dg.AssetCheckResult(
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": json.dumps(flagged, default=str)[:2000]},
    )
