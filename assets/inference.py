"""Inference group: latency, throughput, memory and INT8 quality of the compiled serving paths."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, image
from resources import StorageResource
from x_reco.bench.harness import PRESET_S, BenchConfig, run_benchmark
from x_reco.common.atomic import atomic_dir
from x_reco.data.examples import EngagementSequences


class BenchmarkConfig(dg.Config):
    """Benchmark grid (x_reco.bench): `reduced` runs in minutes on a 2-core CPU, `issue`
    holds the inference issue's rows, `full` the spec grid. Empty `presets` = oss-mini only."""

    grid: str = "issue"
    presets: list[str] = []
    repeats: int = pydantic.Field(2, ge=1)
    calls: int = pydantic.Field(100, ge=1)
    users: int = pydantic.Field(200, ge=1)
    retrieval: bool = False  # the 1M-item retrieval rows take minutes on a CPU: `make bench` has them
    trained_quality: bool = True

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        unknown = sorted(set(self.presets) - set(PRESET_S))
        if unknown:
            raise ValueError(f"presets={self.presets}: unknown {unknown}; expected some of {sorted(PRESET_S)}")
        bench_config(self, None, None)  # BenchConfig checks the grid
        return self


def bench_config(config: BenchmarkConfig, checkpoint: str | None, sequences: EngagementSequences | None) -> BenchConfig:
    """The library's benchmark config; with a checkpoint, quality also runs on its trained weights."""
    return BenchConfig(
        grid=config.grid,
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


@dg.asset(
    partitions_def=DATASETS,
    group_name="inference",
    io_manager_key=DUCKDB,
    pool="duckdb",
    kinds={"jax", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "repeats_consistent",
            asset="inference_benchmark",
            blocking=False,
            description="p50s of the two process repeats within 10 %",
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
    options = bench_config(
        config, ranker_checkpoint["path"] if trained else None, engagement_sequences if trained else None
    )
    context.log.info(f"run_benchmark: {options.settings()}")
    dest = storage.path("bench", context.partition_key)
    with atomic_dir(dest) as out:
        raw = run_benchmark(options, out)
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
    yield dg.AssetCheckResult(passed=not flagged, metadata={"flagged": json.dumps(flagged, default=str)[:2000]})
