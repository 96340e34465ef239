"""The research group as Dagster runs it on `synthetic` (smoke scale): every reward asset
materializes, its blocking checks pass, figures are embedded, both protocols and the deviation
register are present; the pair-label check detects a wrong label."""

import dagster as dg
import numpy as np
import pytest

from assets import data as data_assets
from assets import research
from tests.dagster_resources import tmp_resources
from resources.io_managers import read_frame

RESEARCH = [research.stakeholder_utilities, research.preference_pairs, research.bt_reward_models,
            research.goodhart_direction, research.labels_not_loss, research.data_budget, research.audit_toolkit]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("research")
    resources = tmp_resources(tmp)
    result = dg.materialize([data_assets.raw_tables, *RESEARCH], resources=resources, partition_key="synthetic",
                            run_config={"ops": {"raw_tables": {"config": {"synthetic_preset": "tiny"}}}})
    return tmp, result


def test_research_group_materializes_with_checks(run):
    tmp, result = run
    assert result.success
    checks = {(c.asset_key.path[-1], c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    for key in [("bt_reward_models", "converged"), ("preference_pairs", "labels_consistent"),
                ("goodhart_direction", "complete"), ("labels_not_loss", "complete"), ("data_budget", "complete")]:
        assert checks[key], key
    meta = {e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["bt_reward_models"]["min_heldout_accuracy"].value > 0.5
    assert any("data:image/png;base64" in str(v.value) for k, v in meta["goodhart_direction"].items()
               if k.endswith("goodhart_curves_synthetic_user"))
    db = str(tmp / "warehouse.duckdb")
    pairs = read_frame(db, "synthetic", "goodhart_direction__direction_pairs")
    assert set(pairs["protocol"]) == {"preprint", "corrected"}
    assert len(read_frame(db, "synthetic", "goodhart_direction__deviations")) >= 10
    audit = read_frame(db, "synthetic", "audit_toolkit__audit")
    x_star = audit.loc[(audit["kind"] == "threshold") & np.isclose(audit["alpha_s"], 4.0), "threshold"]
    assert np.isclose(x_star, 5 / 16).all() and len(x_star) >= 1  # computed, not the fork's 0.15


def test_label_check_detects_a_flipped_pair(run):
    tmp, _ = run
    db = str(tmp / "warehouse.duckdb")
    pairs = read_frame(db, "synthetic", "preference_pairs")
    feats = read_frame(db, "synthetic", "item_features")
    weights = read_frame(db, "synthetic", "stakeholder_utilities__stakeholder_weights")
    assert research._label_agreement(pairs, feats, weights) == 1.0
    bad = pairs.copy()
    bad.loc[0, ["preferred", "rejected"]] = bad.loc[0, ["rejected", "preferred"]].to_numpy()
    assert research._label_agreement(bad, feats, weights) < 1.0
