"""Shared pieces of the asset layer: the dataset partitions and metadata helpers."""

from __future__ import annotations

import dagster as dg

from x_reco.common.plotting import png_markdown
from x_reco.data.quality import SuiteResult
from x_reco.data.registry import PARTITIONS

DATASETS = dg.StaticPartitionsDefinition(list(PARTITIONS))
DUCKDB = "duckdb_io_manager"
NPZ = "npz_io_manager"


def image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(png_markdown(png, alt))


def check_result(result: SuiteResult, asset_key: str | None = None, check_name: str = "gx_suite"):
    """Turn a GX suite outcome into a blocking-check result that names every failed expectation."""
    metadata = {
        "suite": result.suite,
        "evaluated": result.evaluated,
        "failed_count": len(result.failed),
        "rows": result.n_rows,
        "failed": dg.MetadataValue.md("\n".join(f"- {f}" for f in result.failed) or "none"),
    }
    return dg.AssetCheckResult(
        passed=result.success,
        check_name=check_name,
        asset_key=asset_key,
        metadata=metadata,
        description=result.summary(),
        severity=dg.AssetCheckSeverity.ERROR,
    )


def frame_markdown(df, max_rows: int = 40) -> str:
    """A DataFrame as a markdown table (floats to 3 decimals), for asset metadata."""
    text = df.head(max_rows).to_markdown(index=False, floatfmt=".3f")
    return text + (f"\n\n({len(df) - max_rows} more rows in the table)" if len(df) > max_rows else "")
