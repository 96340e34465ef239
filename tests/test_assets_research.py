"""The research group as Dagster runs it on `synthetic` (smoke scale): every reward asset
materializes, its blocking checks pass, figures are embedded, both protocols and the deviation
register are present; the audit is one unpartitioned table (schema `main`). Called directly, the
pairs asset's label check reads the library's agreement and fails on a flipped label."""

import dagster as dg
import numpy as np
import pytest

from assets import data as data_assets
from assets import research
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources

RESEARCH = [
    research.stakeholder_utilities,
    research.preference_pairs,
    research.bt_reward_models,
    research.goodhart_direction,
    research.labels_not_loss,
    research.data_budget,
    research.audit_toolkit,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("research")
    resources = tmp_resources(tmp)
    result = dg.materialize(
        [data_assets.raw_tables, *RESEARCH],
        resources=resources,
        partition_key="synthetic",
        run_config={"ops": {"raw_tables": {"config": {"synthetic_size": "tiny"}}}},
    )
    return tmp, result


def test_research_group_materializes_with_checks(run):
    tmp, result = run
    assert result.success
    checks = {(c.asset_key.path[-1], c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    for key in [
        ("bt_reward_models", "converged"),
        ("preference_pairs", "labels_consistent"),
        ("goodhart_direction", "complete"),
        ("labels_not_loss", "complete"),
        ("data_budget", "complete"),
    ]:
        assert checks[key], key
    meta = {
        e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["bt_reward_models"]["min_heldout_accuracy"].value > 0.5
    assert any(
        "data:image/png;base64" in str(v.value)
        for k, v in meta["goodhart_direction"].items()
        if k.endswith("goodhart_curves_synthetic_user")
    )
    db = str(tmp / "warehouse.duckdb")
    pairs = read_frame(db, "synthetic", "goodhart_direction__direction_pairs")
    assert set(pairs["protocol"]) == {"preprint", "corrected"}
    assert len(read_frame(db, "synthetic", "goodhart_direction__deviations")) >= 10
    audit = read_frame(db, "main", "audit_toolkit__audit")  # dataset-independent: not partitioned
    x_star = audit.loc[(audit["kind"] == "threshold") & np.isclose(audit["alpha_s"], 4.0), "threshold"]
    assert np.isclose(x_star, 5 / 16).all() and len(x_star) >= 1  # computed, not the fork's 0.15


def _upstream(tmp):
    db = str(tmp / "warehouse.duckdb")
    weights = read_frame(db, "synthetic", "stakeholder_utilities__stakeholder_weights")
    return read_frame(db, "synthetic", "item_features"), {"stakeholder_weights": weights}


def test_pairs_check_direct_call(run):
    features, utilities = _upstream(run[0])
    context = dg.build_asset_context(partition_key="synthetic")
    output, check = research.preference_pairs(context, item_features=features, stakeholder_utilities=utilities)
    assert check.passed and check.metadata["agreement"].value == 1.0
    assert output.metadata["pairs"].value == len(output.value) == 3 * 2 * 200  # smoke: 3 stakeholders x 2 seeds
    assert output.metadata["heldout_share"].value == 0.2


def test_pairs_check_fails_on_a_flipped_label(run, monkeypatch):
    features, utilities = _upstream(run[0])
    real = research.api.preference_pairs

    def flipped(*args, **kwargs):
        result = real(*args, **kwargs)
        table = result.tables["preference_pairs"]
        table.loc[0, ["preferred", "rejected"]] = table.loc[0, ["rejected", "preferred"]].to_numpy()
        return result

    monkeypatch.setattr(research.api, "preference_pairs", flipped)
    context = dg.build_asset_context(partition_key="synthetic")
    events = research.preference_pairs(context, item_features=features, stakeholder_utilities=utilities)
    check = next(events)  # the failed check comes first; the pairs are never published
    assert not check.passed and check.metadata["agreement"].value < 1.0
    with pytest.raises(dg.Failure, match="nothing was published"):
        next(events)


def test_audit_direct_call_needs_no_partition():
    output = research.audit_toolkit(dg.build_asset_context())
    assert output.metadata["rows"].value == len(output.value["audit"]) and len(output.value["deviations"]) >= 10
