"""The research assets' checks as library functions: pair labels agree with utilities (a flipped
pair is caught), BT convergence needs finite losses and above-chance accuracy, empty tables and the
audit's threshold rows are found."""

import numpy as np
import pandas as pd
import pytest

from x_reco import reward as R
from x_reco.data.item_features import synthetic_content_pool
from x_reco.reward import checks


@pytest.fixture(scope="module")
def pairs():
    feats = synthetic_content_pool()
    weights = R.stakeholder_utilities(None, feats, R.StakeholderConfig.smoke()).tables["stakeholder_weights"]
    table = R.preference_pairs(feats, weights, R.PairsConfig.smoke()).tables["preference_pairs"]
    return table, feats, weights


def test_label_agreement_detects_a_flipped_pair(pairs):
    table, feats, weights = pairs
    assert checks.label_agreement(table, feats, weights) == 1.0
    bad = table.copy()
    bad.loc[0, ["preferred", "rejected"]] = bad.loc[0, ["rejected", "preferred"]].to_numpy()
    assert checks.label_agreement(bad, feats, weights) == pytest.approx(1 - 1 / len(table))
    assert checks.label_agreement(table.head(0), feats, weights) == 0.0
    assert checks.heldout_share(table) == pytest.approx(0.2)


def test_bt_convergence():
    runs = pd.DataFrame({"final_loss": [0.5, 0.4], "heldout_acc": [0.8, 0.6]})
    ok = checks.bt_convergence(runs)
    assert ok["passed"] and ok["min_heldout_accuracy"] == 0.6 and ok["mean_heldout_accuracy"] == pytest.approx(0.7)
    assert not checks.bt_convergence(runs.assign(final_loss=[0.5, np.nan]))["passed"]
    chance = checks.bt_convergence(runs.assign(heldout_acc=[0.8, 0.5]))
    assert not chance["passed"] and chance["finite_losses"] and not chance["all_above_chance"]


def test_empty_tables_and_thresholds():
    assert checks.empty_tables({"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame({"x": []})}) == ["b"]
    audit = R.audit_toolkit(R.AuditConfig.smoke()).tables["audit"]
    assert set(checks.audit_thresholds(audit)["kind"]) == {"threshold"}
    assert checks.audit_thresholds(pd.DataFrame({"x": [1]})).empty
