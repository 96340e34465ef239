"""The reward entry points the Dagster assets call: plain DataFrames + a config in, the §10 tables
and PNG figures out; smoke presets stay within N <= 200 and 2 seeds; both protocols run on the
synthetic partition; the deviation register lists D1-D10 and C1-C10 (and so does the doc)."""

import pathlib
import time

import numpy as np
import pytest

from x_reco import reward as R
from x_reco.data.item_features import synthetic_content_pool

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic():
    feats = synthetic_content_pool()
    out = R.stakeholder_utilities(None, feats, R.StakeholderConfig.smoke())
    return feats, out.tables["stakeholder_weights"], out.tables["raw_cosines"]


def test_smoke_presets_are_small():
    for cfg in (R.DirectionConfig.smoke(), R.DirectionConfig.smoke("corrected")):
        assert max(cfg.n_large, cfg.n_cosine, *cfg.curve_ns) <= 200
        assert len(cfg.seeds) == len(cfg.cos_seeds) == len(cfg.curve_seeds) == 2
    for cfg in (R.LabelsConfig.smoke(), R.BTConfig.smoke(), R.PairsConfig.smoke()):
        assert cfg.n_pairs <= 200 and len(cfg.seeds) == 2
    assert max(R.BudgetConfig.smoke().ns) <= 200 and len(R.BudgetConfig.smoke().seeds) == 2
    assert R.DirectionConfig.corrected().seeds == tuple(42 + 100 * i for i in range(20))
    with pytest.raises(ValueError, match="protocol"):
        R.DirectionConfig(protocol="preprint")


def test_stakeholders_pairs_and_models(synthetic):
    feats, weights, geometry = synthetic
    assert weights["stakeholder"].tolist() == ["user", "platform", "society"]
    assert geometry["raw_cos"].round(4).tolist() == [0.8927, 0.8427, 0.5096]
    pairs = R.preference_pairs(feats, weights, R.PairsConfig.smoke()).tables["preference_pairs"]
    assert len(pairs) == 3 * 2 * 200 and (pairs["split"] == "heldout").sum() == 3 * 2 * 40
    models = R.bt_reward_models(feats, weights, R.BTConfig.smoke()).tables
    runs = models["bt_runs"]
    assert set(runs["loss"]) == {"bt", "margin_m0.5", "calibrated_leaky_l1"}
    assert runs["heldout_acc"].min() > 0.6 and runs["heldout_acc"].mean() > 0.85 and len(runs) == 3 * 3 * 2
    assert {"raw_cos", "trained_cos", "trained_cos_sd", "cov_pool", "corr_pool", "disagreement"} <= set(
        models["cosines"].columns
    )


@pytest.mark.parametrize("protocol", ["parity", "corrected"])
def test_goodhart_direction_smoke(synthetic, protocol):
    feats, weights, _ = synthetic
    cfg = R.DirectionConfig.smoke(protocol)
    out = R.goodhart_direction(feats, weights, cfg)
    pairs, summary = out.tables["direction_pairs"], out.tables["direction_summary"]
    n_mech = 2 + len(cfg.temperatures)
    assert len(pairs) == 6 * n_mech * len(cfg.modes) * len(cfg.scales)
    assert set(pairs["mode"]) == set(cfg.modes) and set(pairs["scale"]) == set(cfg.scales)
    assert {"U_small", "U_large", "ci_lo", "ci_hi", "inconclusive", "match_cov_softmax_local"} <= set(pairs.columns)
    if protocol == "parity":
        assert not pairs["inconclusive"].any()  # C6 only in the corrected protocol
    assert set(summary["unit"]) == {"ordered", "unordered"} and summary["wilson_lo"].le(summary["wilson_hi"]).all()
    assert set(out.tables["temperature_sweep"]["temperature"]) == set(cfg.temperatures)
    curves = out.tables["goodhart_curves"]
    assert set(curves["sweep"]) == {"n", "sigma"} and (curves.loc[curves["n_pairs"] == 25, "pct_change"] == 0).all()
    assert {"goodhart_curves_synthetic_user.png", "direction_scatter_softmax_T1.png", "temperature_sweep.png"} <= set(
        out.figures
    )
    assert all(png.startswith(PNG) for png in out.figures.values())


def test_synthetic_null_case_labels(synthetic):
    """C4: parity keeps the reference's bug (unperturbed labels), corrected labels from w̃."""
    from x_reco.reward.direction import label_vector
    from x_reco.reward.pool import reward_pool

    feats, weights, _ = synthetic
    pool = reward_pool(feats, weights)
    np.testing.assert_array_equal(label_vector(pool, "user", 0.3, 42, "parity"), pool.stakeholders.primary["user"])
    assert not np.allclose(label_vector(pool, "user", 0.3, 42, "corrected"), pool.stakeholders.primary["user"])


@pytest.mark.parametrize("protocol", ["parity", "corrected"])
def test_labels_not_loss_and_data_budget_smoke(synthetic, protocol):
    feats, weights, _ = synthetic
    lnl = R.labels_not_loss(feats, weights, R.LabelsConfig.smoke(protocol)).tables
    summary = lnl["labels_not_loss"]
    assert summary["within_loss_cos"].between(0.8, 1.0).all()
    assert set(summary["calibration"]) == ({"leaky"} if protocol == "parity" else {"leaky", "labels"})
    assert "constrained_vs_bt" in summary and {"margin_within_family", "calibrated_vs_bt"} <= set(summary.columns)
    budget = R.data_budget(feats, weights, R.BudgetConfig.smoke(protocol))
    s = budget.tables["data_budget_summary"]
    assert len(s) == 3 * len(R.BudgetConfig.smoke(protocol).composites) * len(R.BudgetConfig.smoke(protocol).modes)
    b = budget.tables["data_budget"]
    assert (b.loc[b["n_pairs"] == 0, "recovery"] == 0).all()
    assert budget.figures["data_budget_synthetic.png"].startswith(PNG)
    med = R.budget_medians(s)
    assert set(med["statistic"]) == {"n50", "n80"} and {"median_finite", "median_censored"} <= set(med.columns)


def test_audit_toolkit():
    out = R.audit_toolkit(R.AuditConfig.smoke())
    audit = out.tables["audit"]
    assert audit.loc[audit["kind"] == "threshold", "threshold"].round(4).tolist() == [
        1.25,
        0.625,
        0.4167,
        0.3125,
        0.25,
        0.1562,
        0.125,
    ]
    assert "covariance" in audit.attrs["limitation"] and out.figures["audit_threshold.png"].startswith(PNG)


def test_deviation_register_and_doc():
    table = R.deviations_table({"D10": "pool 1,305"})
    ids = set(table["id"])
    expected = {f"D{i}" for i in range(1, 11)} | {f"C{i}" for i in range(1, 11)}
    assert expected <= ids and table.set_index("id").loc["D10", "measured_effect"] == "pool 1,305"
    with pytest.raises(ValueError):
        R.deviations_table({"D99": "x"})
    doc = (ROOT / "docs" / "deviations.md").read_text()
    assert R.deviations_markdown() in doc  # the doc is the rendered register, not a drifting copy


@pytest.mark.slow
def test_full_smoke_of_every_analysis_both_protocols_is_fast(synthetic):
    feats, weights, _ = synthetic
    start = time.perf_counter()
    for protocol in ("parity", "corrected"):
        R.bt_reward_models(feats, weights, R.BTConfig.smoke(protocol))
        R.goodhart_direction(feats, weights, R.DirectionConfig.smoke(protocol))
        R.labels_not_loss(feats, weights, R.LabelsConfig.smoke(protocol))
        R.data_budget(feats, weights, R.BudgetConfig.smoke(protocol))
    R.audit_toolkit(R.AuditConfig.smoke())
    assert time.perf_counter() - start < 300  # spec §11: within 5 minutes on 2 CPU cores
