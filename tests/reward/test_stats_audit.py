"""N50/N80 interpolation (reward spec §7 worked example), censored medians (C8), Wilson intervals,
and the audit toolkit's exact algebra and threshold (§8: must match to 3 decimals)."""

import math

import numpy as np
import pytest

from x_reco.reward.audit import (
    AuditConfig,
    closed_form_cos,
    platform_vector,
    run_audit,
    threshold,
    threshold_by_root,
)
from x_reco.reward.stakeholders import SYNTHETIC_ALPHAS, alpha_weights, cosine
from x_reco.reward.stats import censored_label, crossing_n, medians, wilson

NS = (25, 50, 100, 200, 500)


def test_n50_n80_worked_example_ml1m_platform():
    recovery = (0.316, 0.373, 0.548, 0.760, 0.927)
    assert crossing_n(NS, recovery, 0.5) == 86
    assert crossing_n(NS, recovery, 0.8) == 272


def test_crossing_before_the_first_point_and_never():
    # Amazon reader: regret 0.159 at N = 25 against regret(0) = 1.935 -> N50 = 14, N80 = 22
    r25 = 1 - 0.159 / 1.935
    assert crossing_n(NS, (r25, 0.95, 1.4, 1.4, 1.6), 0.5) == 14
    assert crossing_n(NS, (r25, 0.95, 1.4, 1.4, 1.6), 0.8) == 22
    never = crossing_n(NS, (0.1, 0.2, 0.3, 0.35, 0.45), 0.5)
    assert math.isinf(never) and censored_label(never, 500) == "> 500"


def test_medians_finite_only_and_censored():
    n50 = [math.inf, 45, 34, math.inf, 86, 69, 31, 22, 35, 33, 34, 14, 368, 447, 23, 19]  # spec §7 table
    m = medians(n50)
    assert m["median_finite"] == 34 and m["n_finite"] == 14
    assert m["median_censored"] == 34.5
    inf = math.inf
    n80 = [inf, 445, 136, inf, 272, 138, 55, 58, 139, 74, 166, 22, inf, inf, inf, inf]
    assert medians(n80)["median_finite"] == 137 and medians(n80)["median_censored"] == 219


def test_wilson_interval():
    lo, hi = wilson(29, 32)
    assert lo == pytest.approx(0.7578, abs=1e-3) and hi == pytest.approx(0.9676, abs=1e-3)
    assert wilson(6, 6)[1] == 1.0 and all(math.isnan(v) for v in wilson(0, 0))


@pytest.mark.parametrize(
    "x, nu, expected_society, expected_user",
    [
        (1.0, 1.0, -0.312, 0.079),  # pure engagement: all 18 weights +1
        (0.5, 1.0, -0.093, None),
        (-0.3, 0.0, 0.510, None),  # 2023 Phoenix
        (-0.1, 0.5, 0.294, None),
        (-0.3, 0.5, 0.428, None),
        (-1.0, 0.0, 0.843, None),  # user-aligned
        (-2.0, 0.0, 0.972, None),  # safety-first
        (0.0, 0.0, 0.269, None),  # what "alpha = 0" gives with nu = 0
    ],
)
def test_audit_scenarios_to_three_decimals(x, nu, expected_society, expected_user):
    p = platform_vector(x, nu)
    assert round(cosine(p, alpha_weights(4.0)), 3) == expected_society
    assert round(closed_form_cos(x, nu, 4.0), 3) == expected_society
    if expected_user is not None:
        assert round(cosine(p, alpha_weights(1.0)), 3) == expected_user


def test_threshold_closed_form_and_root_finding():
    expected = {1: 1.25, 2: 0.625, 3: 0.417, 4: 0.3125, 5: 0.25, 8: 0.156, 10: 0.125}
    for a, x_star in expected.items():
        assert round(threshold(a), 4 if a == 4 else 3) == x_star
        assert threshold_by_root(a) == pytest.approx(threshold(a), abs=1e-9)
        assert threshold_by_root(a, neutral=0.7) == pytest.approx(threshold(a), abs=1e-9)
    assert threshold(4.0) == 5 / 16


def test_alpha_family_raw_cosines():
    w = {k: alpha_weights(a) for k, a in SYNTHETIC_ALPHAS.items()}
    assert round(cosine(w["user"], w["platform"]), 4) == 0.8927
    assert round(cosine(w["user"], w["society"]), 4) == 0.8427
    assert round(cosine(w["platform"], w["society"]), 4) == 0.5096


def test_audit_table():
    audit = run_audit(AuditConfig.smoke())["audit"]
    assert set(audit["kind"]) == {"scenario", "sweep", "threshold"}
    sweep = audit[audit["kind"] == "sweep"].sort_values("x")
    sign_change = sweep["x"][np.diff(np.sign(sweep["cos_society"].to_numpy()), prepend=1) != 0]
    assert sign_change.min() == pytest.approx(0.5)  # first grid point past x* = 0.3125 (grid step 0.25)
    np.testing.assert_allclose(audit["cos_society"], audit["cos_society_closed_form"], atol=1e-7)
