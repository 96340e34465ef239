"""The inference_benchmark asset runs the real benchmark harness (worker processes, compiled vs
compiled) on a tiny grid, stores one row per timed configuration, and attaches raw.json, the table
and the latency plots to its materialization, logs its progress per configuration, and reports
`repeats_consistent` as a warning (timing noise on a shared machine must not turn the group red)."""

import json

import dagster as dg
import pytest

from assets import data as data_assets
from assets import inference, models
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources
from tests.training.helpers import toy_seqs


@pytest.mark.slow  # ~28 s of worker processes; `make test-slow` (and `make demo` materializes the asset)
def test_inference_benchmark_asset_tiny_grid(tmp_path):
    (tmp_path / "records" / "ranker_checkpoint").mkdir(parents=True)
    (tmp_path / "records" / "ranker_checkpoint" / "synthetic.json").write_text(json.dumps({"path": "unused"}))
    (tmp_path / "arrays" / "engagement_sequences").mkdir(parents=True)
    toy_seqs().to_npz(tmp_path / "arrays" / "engagement_sequences" / "synthetic.npz")  # loaded, then unused
    resources = tmp_resources(tmp_path)
    config = {
        "grid": "demo",
        "presets": ["tiny"],
        "repeats": 1,
        "calls": 5,
        "users": 8,
        "retrieval": False,
        "trained_quality": False,
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [
            inference.inference_benchmark,
            models.ranker_checkpoint,
            models.retriever_checkpoint,  # an input of ranker_checkpoint (its hard negatives), unused here
            data_assets.engagement_sequences,
            data_assets.engagement_events,
            data_assets.raw_tables,
        ],
        selection=[inference.inference_benchmark],
        resources=resources,
        partition_key="synthetic",
        run_config={"ops": {"inference_benchmark": {"config": config}}},
        instance=instance,
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert (tmp_path / "bench" / "synthetic" / "raw.json").exists()
    assert "| preset |" in meta["results_table"].value
    frame = read_frame(str(tmp_path / "warehouse.duckdb"), "synthetic", "inference_benchmark")
    assert len(frame) >= 2 and (frame["p50_ms"] > 0).all()
    assert frame["source_param_digest"].nunique() == 1  # every variant from one source state
    assert set(frame["variant"]) == {"dense", "split", "cached", "w8+t8"}
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "repeats_consistent" and check.severity == dg.AssetCheckSeverity.WARN
    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("benchmark ")]
    assert logs and logs[-1].startswith(f"benchmark {len(frame)}/{len(frame)} ") and "ETA" in logs[-1]
