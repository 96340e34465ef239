"""Metric definitions, against hand values and brute force: 0-based ranks with index tie-breaking and
masking, HR/NDCG/MRR@k for one held-out item, AUC with tied scores, stable log-loss."""

import itertools

import numpy as np

from x_reco.eval.metrics import auc, log_loss, ranking_metrics, target_ranks


def test_target_ranks_ties_and_mask():
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.7], [1.0, 1.0, 1.0, 0.0, 2.0]])
    target = np.array([3, 1])
    assert target_ranks(scores, target).tolist() == [3, 2]  # row 0: 0.9, 0.7, 0.5@2 (lower index wins)
    mask = np.array([[False, True, False, False, False], [False, False, False, False, True]])
    assert target_ranks(scores, target, mask).tolist() == [2, 1]


def test_ranking_metrics_hand_values():
    m = ranking_metrics(np.array([0, 1, 9, 10, 25]), (10, 20))
    assert m["hr@10"] == 3 / 5 and m["hr@20"] == 4 / 5
    np.testing.assert_allclose(m["ndcg@10"], (1 + 1 / np.log2(3) + 1 / np.log2(11)) / 5)
    np.testing.assert_allclose(m["mrr@10"], (1 + 1 / 2 + 1 / 10) / 5)
    np.testing.assert_allclose(m["mrr@20"], (1 + 1 / 2 + 1 / 10 + 1 / 11) / 5)


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties
    np.testing.assert_allclose(auc(y, s), brute_auc(y, s), rtol=1e-12)
    assert auc(y, y) == 1.0 and auc(y, -y) == 0.0
    assert np.isnan(auc(np.ones(5), np.arange(5)))


def test_log_loss_stable_for_large_logits():
    y, x = np.array([1.0, 0.0, 1.0, 0.0]), np.array([800.0, -800.0, 0.0, 2.0])
    want = (0.0 + 0.0 + np.log(2) + (2 + np.log1p(np.exp(-2)))) / 4
    np.testing.assert_allclose(log_loss(y, x), want)


def test_calibration_error_is_zero_when_calibrated_and_the_gap_when_not():
    from x_reco.eval.metrics import calibration_error

    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 200_000)
    y = rng.random(p.size) < p
    logit = np.log(p / (1 - p))
    assert calibration_error(y, logit) < 0.005
    assert abs(calibration_error(y, logit + np.log(4.0)) - np.mean(1 / (1 + np.exp(-logit - np.log(4.0))) - p)) < 0.01
    assert np.isnan(calibration_error(np.zeros(0), np.zeros(0)))
