"""The bootstrap interval over users: it contains the point metric, is bit-for-bit reproducible from
its seed, narrows as users grow, resamples a user's targets together (a target-level bootstrap
would understate the spread of a metric whose targets cluster by user), and reaches the retrieval
metrics of both protocols without changing any metric that existed before it."""

import numpy as np
import pytest

from tests.training.helpers import toy_seqs
from x_reco.data.examples import Split
from x_reco.eval.bootstrap import Bootstrap, bootstrap_interval, bootstrap_means, user_totals
from x_reco.eval.heldout import seen_mask
from x_reco.eval.metrics import per_target_metrics, target_ranks
from x_reco.eval.retrieval import INTERVAL_METRICS, evaluate_popularity, rank_targets


def _hits(num_users: int, rate: float = 0.2, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """One target per user: [U, 2] (hit, ndcg-like value) and the users."""
    rng = np.random.default_rng(seed)
    hit = (rng.random(num_users) < rate).astype(np.float64)
    return np.stack([hit, hit * rng.random(num_users)], axis=1), np.arange(num_users)


def test_interval_contains_the_mean_and_is_reproducible():
    values, users = _hits(301)
    low, high = bootstrap_interval(values, users, Bootstrap(resamples=500, seed=3))
    assert low.shape == high.shape == (2,)
    assert (low < values.mean(axis=0)).all() and (values.mean(axis=0) < high).all()
    again = bootstrap_interval(values, users, Bootstrap(resamples=500, seed=3))
    assert low.tobytes() == again[0].tobytes() and high.tobytes() == again[1].tobytes()
    other = bootstrap_interval(values, users, Bootstrap(resamples=500, seed=4))
    assert not np.array_equal(np.concatenate([low, high]), np.concatenate(other))


def test_chunked_resamples_are_the_same_draws(monkeypatch):
    """Chunking bounds memory only: fewer draws per chunk give the same resample means."""
    import x_reco.eval.bootstrap as bootstrap

    values, users = _hits(97)
    whole = bootstrap_means(values, users, Bootstrap(resamples=50, seed=1))
    monkeypatch.setattr(bootstrap, "_MAX_DRAWS", 97 * 7)
    chunked = bootstrap_means(values, users, Bootstrap(resamples=50, seed=1))
    assert chunked.shape == (50, 2)
    # the generator's stream is consumed in the same order, so the chunks are the same draws (the
    # matrix products may sum in another order: equal to rounding)
    np.testing.assert_allclose(whole, chunked, rtol=1e-12)


def test_interval_narrows_with_more_users():
    widths = []
    for num_users in (101, 1009, 10007):
        low, high = bootstrap_interval(*_hits(num_users), Bootstrap(resamples=400))
        widths.append(float(high[0] - low[0]))
    assert widths[0] > 2 * widths[1] > 4 * widths[2] > 0  # ~1/sqrt(U): ~3.2x per step


def test_a_users_targets_are_resampled_together():
    # user 0: one target, a hit; user 1: three targets, all misses. Resampling the two users gives
    # only the target-weighted means 1 (user 0 twice), 1/4 (one each) and 0 (user 1 twice).
    values, users = np.array([1.0, 0.0, 0.0, 0.0]), np.array([5, 9, 9, 9])
    sums, counts = user_totals(values, users)
    assert sums[:, 0].tolist() == [1.0, 0.0] and counts.tolist() == [1.0, 3.0]
    means = bootstrap_means(values, users, Bootstrap(resamples=200))
    assert set(np.unique(means).tolist()) == {0.0, 0.25, 1.0}


def test_clustered_targets_widen_the_interval_over_users():
    """Ten identical targets per user: the user-level interval is ~sqrt(10) wider than the one that
    the same values would get as independent users."""
    hit_u, _ = _hits(200, rate=0.3)
    values = np.repeat(hit_u[:, 0], 10)
    by_user = bootstrap_interval(values, np.repeat(np.arange(200), 10), Bootstrap(resamples=400))
    by_target = bootstrap_interval(values, np.arange(len(values)), Bootstrap(resamples=400))
    assert (by_user[1] - by_user[0])[0] > 2.5 * (by_target[1] - by_target[0])[0]


def test_empty_and_invalid():
    low, high = bootstrap_interval(np.zeros((0, 2)), np.zeros(0, int))
    assert np.isnan(low).all() and np.isnan(high).all()
    with pytest.raises(ValueError, match="resamples"):
        Bootstrap(resamples=1)
    with pytest.raises(ValueError, match="level"):
        Bootstrap(level=1.0)


def test_rank_targets_reports_intervals_of_both_protocols_and_keeps_the_rest():
    seqs = toy_seqs()
    plain = evaluate_popularity(seqs, Split.TEST)
    boot = evaluate_popularity(seqs, Split.TEST, bootstrap=Bootstrap(resamples=300))
    assert {k: boot[k] for k in plain} == plain  # every existing metric, unchanged
    assert boot["num_users"] == len(np.unique(seqs.examples.user_idx[seqs.retrieval_pairs(Split.TEST)[0]]))
    for prefix in ("", "masked_"):
        for metric in INTERVAL_METRICS:
            key = prefix + metric
            assert boot[f"{key}_ci_low"] <= plain[key] <= boot[f"{key}_ci_high"], key


def test_rank_targets_interval_is_the_users_metric_interval():
    """Each protocol's interval is ``bootstrap_interval`` over the targets' users of its own ranks."""
    seqs = toy_seqs()
    rows, targets = seqs.retrieval_pairs(Split.TEST)
    seen = seen_mask(seqs, Split.TEST, rows)
    seen[np.arange(len(rows)), targets] = False
    favourite = seen.astype(np.float64)  # a scorer that puts every seen item first: masking matters

    def score_rows(r):
        return favourite[np.searchsorted(rows, r)]

    boot = Bootstrap(resamples=300, seed=5)
    got = rank_targets(seqs, Split.TEST, score_rows, bootstrap=boot)
    assert got["masked_hr@10"] > got["hr@10"]
    for prefix, ranks in (("", target_ranks(favourite, targets)), ("masked_", target_ranks(favourite, targets, seen))):
        per = per_target_metrics(ranks, (10,))
        low, high = bootstrap_interval(np.stack([per["hr@10"], per["ndcg@10"]], 1), seqs.examples.user_idx[rows], boot)
        assert got[f"{prefix}hr@10_ci_low"] == low[0] and got[f"{prefix}ndcg@10_ci_high"] == high[1], prefix
        assert got[f"{prefix}hr@10_ci_low"] <= got[f"{prefix}hr@10"] <= got[f"{prefix}hr@10_ci_high"], prefix
