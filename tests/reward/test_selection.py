"""Selection mechanisms of reward spec §4: δ = 0 is argsort top-10, the greedy bonus spreads
topics, softmax tends to top-1 as T → 0 and to the pool mean as T → ∞, and the local covariance
is the derivative that motivates predictor C3."""

import numpy as np
import pytest

from x_reco.reward.selection import (
    DELTAS,
    TEMPERATURES,
    greedy_sets,
    set_utilities,
    softmax_local_cov,
    softmax_utilities,
    upper_tail_cov,
)

M, H = 97, 3


@pytest.fixture()
def pool():
    rng = np.random.default_rng(7)
    scores = rng.normal(0.0, 1.0, (5, M))
    topics = rng.integers(0, 6, M)
    u = rng.normal(0.0, 1.0, (H, M))
    return scores, topics, u


def test_delta_zero_is_argsort_top10(pool):
    scores, topics, u = pool
    sets = greedy_sets(scores, topics, (0.0,))[:, 0]
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(sets, expected)
    np.testing.assert_allclose(set_utilities(sets[:, None], u)[:, 0], u[:, expected].sum(-1).T)


def test_ties_break_by_pool_order():
    scores = np.zeros((1, 13))
    np.testing.assert_array_equal(greedy_sets(scores, np.zeros(13, int), (0.0, 0.5))[0, :, :], [np.arange(10)] * 2)


def test_delta_one_covers_topics_before_repeating(pool):
    scores, topics, _ = pool
    picks = greedy_sets(scores, topics, (1.0,))[:, 0]
    for row in picks:
        assert len(set(topics[row[:6]])) == 6  # 6 topics: one of each before any repeat


def test_greedy_matches_a_plain_loop(pool):
    scores, topics, _ = pool
    delta = 0.35
    for b in range(scores.shape[0]):
        chosen, counts = [], np.zeros(6)
        for _ in range(10):
            adj = [
                (1 - delta) * scores[b, c] + delta / (counts[topics[c]] + 1) if c not in chosen else -np.inf
                for c in range(M)
            ]
            c = int(np.argmax(adj))
            chosen.append(c)
            counts[topics[c]] += 1
        np.testing.assert_array_equal(greedy_sets(scores[b : b + 1], topics, (delta,))[0, 0], chosen)


def test_softmax_limits(pool):
    scores, _, u = pool
    cold, hot = softmax_utilities(scores, u, (1e-4, 1e6))[:, 0], softmax_utilities(scores, u, (1e-4, 1e6))[:, 1]
    np.testing.assert_allclose(cold, u[:, np.argmax(scores, axis=1)].T, atol=1e-6)
    np.testing.assert_allclose(hot, np.broadcast_to(u.mean(axis=1), hot.shape), atol=1e-5)
    with pytest.raises(ValueError):
        softmax_utilities(scores, u, (0.0,))


def test_local_covariance_is_the_temperature_derivative(pool):
    scores, _, u = pool
    beta, h = 1.0 / 0.7, 1e-5
    e = lambda b: softmax_utilities(scores * b, u, (1.0,))[:, 0]  # noqa: E731  E_{π ∝ exp(b s)}[U]
    numeric = (e(beta + h) - e(beta - h)) / (2 * h)
    np.testing.assert_allclose(softmax_local_cov(scores, u, temperature=0.7), numeric, rtol=1e-5, atol=1e-8)


def test_upper_tail_covariance(pool):
    scores, _, u = pool
    n = int(np.ceil(0.05 * M))
    top = np.argsort(-scores[0])[:n]
    expected = [np.cov(scores[0, top], u[h, top], bias=True)[0, 1] for h in range(H)]
    np.testing.assert_allclose(upper_tail_cov(scores, u)[0], expected)


def test_grids_are_the_spec_grids():
    assert len(DELTAS) == 21 and DELTAS[0] == 0.0 and DELTAS[-1] == 1.0
    assert TEMPERATURES == (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
