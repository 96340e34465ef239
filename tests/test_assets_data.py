"""The data group as Dagster runs it: a real materialization of MovieLens-100K (from the RecBole
wheel) with tmp-dir resources passes every blocking check and reports the published counts, the
source manifest is an asset stored by the JSON IO manager (no side file), and a failed check blocks
the downstream asset."""

import json

import dagster as dg
import numpy as np
import pytest

from assets import data as data_assets
from assets.data import RAW_SOCIAL_TABLES
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources
from x_reco.data.synthetic import SOCIAL_TABLES, generate_world_tables


def _resources(tmp_path):
    return tmp_resources(tmp_path)


DATA_ASSETS = [data_assets.raw_tables, data_assets.engagement_events, data_assets.engagement_sequences]


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ml100k")
    result = dg.materialize(DATA_ASSETS, resources=_resources(tmp), partition_key="movielens-100k")
    return tmp, result


def test_materialize_movielens_100k(ml100k):
    tmp, result = ml100k
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6 and all(c.passed for c in checks), [c.description for c in checks if not c.passed]
    mats = {
        e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    manifest = json.loads((tmp / "records" / "raw_manifest" / "movielens-100k.json").read_text())
    assert manifest["source_format"] == "recbole" and mats["raw_manifest"]["keys"].value == len(manifest)
    assert not (tmp / "manifests").exists()
    assert mats["raw_interactions"]["rows"].value == 100_000
    assert mats["raw_interactions"]["users"].value == 943
    assert mats["raw_items"]["rows"].value == 1_682
    assert mats["item_features"]["pool"].value == 1_305  # datasets spec §8
    assert mats["item_features"]["dims"].value == 19
    assert mats["engagement_events"]["split_test"].value == 943
    assert mats["engagement_sequences"]["examples"].value == 100_000
    assert "raw_social" not in mats  # only the synthetic world has the §14 social tables
    assert "data:image/png;base64" in mats["engagement_sequences"]["history_plot"].value
    assert len(read_frame(str(tmp / "warehouse.duckdb"), "movielens_100k", "raw_interactions")) == 100_000
    with np.load(tmp / "arrays" / "engagement_sequences" / "movielens-100k.npz", allow_pickle=False) as z:
        assert z["hist_post_hashes"].shape == (100_000, 32, 2)
        assert (z["split"] == 2).sum() == 943


def test_failed_check_blocks_downstream(tmp_path, monkeypatch):
    """Corrupt the events table: its blocking check fails, the events are not published (write-audit-publish)
    and sequences are not materialized."""
    from x_reco.data import events as events_mod

    real = events_mod.build_events

    def broken(raw):
        ev = real(raw)
        ev.loc[ev.index[:3], "block_author"] = 1  # an action MovieLens never observes
        return ev

    monkeypatch.setattr(data_assets, "build_events", broken)
    result = dg.materialize(
        DATA_ASSETS, resources=_resources(tmp_path), partition_key="movielens-100k", raise_on_error=False
    )
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.path[-1] for c in failed] == ["engagement_events"]
    assert "unobserved_zero" in failed[0].metadata["failed"].value
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "engagement_events" not in materialized and "engagement_sequences" not in materialized


def test_raw_social_stores_every_social_table_of_the_synthetic_world(tmp_path):
    """raw_social writes <schema>.raw_social__<name> for each §14 table, with per-table row counts."""
    result = dg.materialize(
        [data_assets.raw_tables],
        resources=_resources(tmp_path),
        partition_key="synthetic",
        run_config={"ops": {"raw_tables": {"config": {"synthetic_size": "tiny"}}}},
    )
    assert result.success
    meta = {
        e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }["raw_social"]
    expected = generate_world_tables({"size": "tiny"}).extra
    assert meta["table_count"].value == len(RAW_SOCIAL_TABLES) == len(meta["tables"].value.split(", "))
    assert set(SOCIAL_TABLES) | {"follows", "authors"} == set(RAW_SOCIAL_TABLES)
    assert meta["rows"].value == sum(len(expected[name]) for name in RAW_SOCIAL_TABLES)
    for name in RAW_SOCIAL_TABLES:
        assert meta[f"rows_{name}"].value == len(expected[name]), name
        stored = read_frame(str(tmp_path / "warehouse.duckdb"), "synthetic", f"raw_social__{name}")
        assert list(stored.columns) == list(expected[name].columns) and len(stored) == len(expected[name]), name
    links = read_frame(str(tmp_path / "warehouse.duckdb"), "synthetic", "raw_social__post_links")
    assert links["conversation_id"].isna().sum() == expected["post_links"]["conversation_id"].isna().sum()
