"""Shared pieces of the asset layer: the dataset partitions, metadata helpers and write-audit-publish."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dagster as dg

from resources import NamedPartitions
from x_reco.common.plotting import png_markdown
from x_reco.data.quality import SuiteResult
from x_reco.data.registry import PARTITIONS
from x_reco.data.synthetic.stream import DAY_KEYS

# NamedPartitions: an unknown key on the command line is one line naming the valid ones.
DATASETS = NamedPartitions(list(PARTITIONS))
# The simulated days of the streamed world (ISO dates of its clock). Static, not daily: simulated days
# are not wall-clock days, and a static mapping sends every day to the one streamed dataset partition.
WORLD_DAYS = NamedPartitions(list(DAY_KEYS))
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


def publish_after_audit(
    context: dg.AssetExecutionContext, outputs: Sequence[dg.Output], checks: Sequence[dg.AssetCheckResult]
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Write-audit-publish for one asset step: the checks are computed on the in-memory outputs
    before anything is written. When every ERROR-severity check passes, yield the outputs (in the
    given order: put a manifest last, so that it is published after its tables) and then the checks.
    When one fails, yield the checks marked ``published: False`` and raise ``dg.Failure``: no IO
    manager runs, so the previous version of every output (tables and manifest) stays in place, the
    run is red and nothing downstream runs. Several DuckDB outputs are published in one transaction
    (``resources.io_managers``: the manager writes them all when the last arrives), so a step that
    dies between two of them leaves every table at its previous version.

    A blocking check that only ran after its Output would be too late: Dagster stops downstream
    steps but does not un-publish what the IO manager already wrote."""
    failed = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    if not failed:
        yield from _one_duckdb_transaction(context, outputs)
        yield from checks
        return
    for c in checks:
        yield c.with_metadata({**c.metadata, "published": False})
    kept = ", ".join(sorted(_output_asset_names(context, outputs)))
    labels = "; ".join(_check_label(context, c) for c in failed)
    raise dg.Failure(
        description=f"blocking check failed, nothing was published ({kept} keep their previous version): {labels}",
        metadata={"failed_checks": len(failed), "kept": kept},
        allow_retries=False,
    )


def _one_duckdb_transaction(context, outputs: Sequence[dg.Output]) -> list[dg.Output]:
    """Number the step's DuckDB outputs k of n (output metadata ``transaction_part(s)``) when there
    are several, so that the DuckDB IO manager publishes them together at the n-th."""
    try:
        defs = context.op_def.output_dict
    except Exception:  # a direct call with build_asset_context() has no op definition
        return list(outputs)
    duck = [o.output_name for o in outputs if o.output_name in defs and defs[o.output_name].io_manager_key == DUCKDB]
    if len(duck) < 2:
        return list(outputs)
    part = {name: k for k, name in enumerate(duck, start=1)}
    return [
        o.with_metadata({**o.metadata, "transaction_part": part[o.output_name], "transaction_parts": len(duck)})
        if o.output_name in part
        else o
        for o in outputs
    ]


def _output_asset_names(context, outputs: Sequence[dg.Output]) -> list[str]:
    names = []
    for out in outputs:
        try:
            names.append(context.asset_key_for_output(out.output_name).path[-1])
        except Exception:  # a direct call with a bare context knows no output keys
            names.append(out.output_name)
    return names


def _check_label(context, result: dg.AssetCheckResult) -> str:
    """``asset.check`` (with the check's description) even when the result leaves the names to its only spec."""
    asset, name = result.asset_key, result.check_name
    if asset is None or name is None:
        specs = list(getattr(context.assets_def, "check_specs", []) if _has_assets_def(context) else [])
        spec = next((s for s in specs if name in (None, s.name) and asset in (None, s.asset_key)), None)
        asset, name = (spec.asset_key, spec.name) if spec else (asset, name)
    where = asset.to_user_string() if asset is not None else "asset"
    return f"{where}.{name or 'check'}" + (f" ({result.description})" if result.description else "")


def _has_assets_def(context) -> bool:
    try:
        return context.assets_def is not None
    except Exception:  # a direct call with build_asset_context() has no assets definition
        return False
