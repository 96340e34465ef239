"""Loss formulas of phoenix spec §13, against plain numpy: ranker BCE counts only real candidates
and observed actions and divides by the number of real candidates; retrieval softmax is a true
full-catalogue CE, and the in-batch variant subtracts log q and masks accidental hits."""

import numpy as np
import pytest

from x_reco.models import losses

RNG = np.random.default_rng(0)


def np_bce(x, y):
    return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))


def np_ce(logits, label):
    m = logits.max()
    return np.log(np.exp(logits - m).sum()) + m - logits[label]


def test_ranker_bce_formula_with_masks_and_weights():
    b, c, a = 3, 5, 7
    x = RNG.normal(size=(b, c, a)).astype(np.float32)
    y = (RNG.random((b, c, a)) < 0.3).astype(np.float32)
    m = RNG.random((b, c)) < 0.7
    lm = (RNG.random((b, a)) < 0.6).astype(np.float32)
    w = RNG.random(a).astype(np.float32)
    want = (np_bce(x, y) * m[..., None] * lm[:, None, :] * w).sum() / max(m.sum(), 1)
    got = losses.ranker_bce(x, y, m, lm, w)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # padded candidates and unobserved columns do not move the loss
    x2 = np.where(m[..., None] & (lm[:, None, :] > 0), x, 99.0).astype(np.float32)
    np.testing.assert_allclose(float(losses.ranker_bce(x2, y, m, lm, w)), want, rtol=1e-5)
    assert float(losses.ranker_bce(x, y, np.zeros((b, c), bool), lm)) == 0.0  # no candidates: finite 0


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_full_softmax_is_catalogue_cross_entropy():
    u, items = unit(RNG.normal(size=(4, 6))), unit(RNG.normal(size=(11, 6)))
    t = np.array([0, 3, 10, 3])
    rows = np.array([True, True, True, False])
    tau = 0.05
    want = np.mean([np_ce(u[i] @ items.T / tau, t[i]) for i in range(3)])
    got = losses.full_softmax_loss(u.astype(np.float32), items.astype(np.float32), t, rows, tau)
    np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_sampled_softmax_logq_and_accidental_hits():
    b, d, tau = 5, 6, 0.1
    u, c = unit(RNG.normal(size=(b, d))), unit(RNG.normal(size=(b, d)))
    item = np.array([4, 7, 4, 2, 9])  # rows 0 and 2 share an item: accidental hits
    c[2] = c[0]
    log_q = np.log(np.array([0.5, 0.1, 0.5, 0.2, 0.05]))
    rows = np.array([True, True, True, True, False])
    logits = u @ c.T / tau - log_q[None, :]
    want = []
    for i in range(4):
        keep = [j for j in range(b) if rows[j] and (j == i or item[j] != item[i])]
        want.append(np_ce(logits[i, keep], keep.index(i)))
    f32 = np.float32
    got = losses.sampled_softmax_loss(u.astype(f32), c.astype(f32), item, log_q.astype(f32), rows, tau)
    np.testing.assert_allclose(float(got), np.mean(want), rtol=1e-4)


def test_time_aware_full_softmax_uses_only_eligible_negatives():
    u, items = unit(RNG.normal(size=(3, 6))), unit(RNG.normal(size=(9, 6)))
    t, rows, tau = np.array([2, 5, 8]), np.ones(3, bool), 0.1
    created, request, window = np.arange(9) * 10, np.array([40, 60, 50]), 25
    eligible = np.asarray(losses.eligible_in_window(request, created, window))
    assert eligible[0].tolist() == [c in (20, 30, 40) for c in created]  # [request - window, request]
    want = []
    for i in range(3):
        keep = sorted(set(np.flatnonzero(eligible[i])) | {t[i]})  # the positive (here outside: row 2) stays
        want.append(np_ce(u[i] @ items[keep].T / tau, keep.index(t[i])))
    got = losses.full_softmax_loss(u.astype(np.float32), items.astype(np.float32), t, rows, tau, eligible)
    np.testing.assert_allclose(float(got), np.mean(want), rtol=1e-4)
    everything = losses.full_softmax_loss(u.astype(np.float32), items.astype(np.float32), t, rows, tau)
    assert float(got) < float(everything)  # fewer negatives, smaller loss


def test_time_aware_sampled_softmax_drops_ineligible_columns():
    b, d, tau = 4, 6, 0.1
    u, c = unit(RNG.normal(size=(b, d))), unit(RNG.normal(size=(b, d)))
    item, log_q, rows = np.array([1, 2, 3, 4]), np.log(np.full(b, 0.25)), np.ones(b, bool)
    eligible = np.array([[1, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)  # diagonal ignored
    logits = u @ c.T / tau - log_q[None, :]
    want = []
    for i in range(b):
        keep = [j for j in range(b) if j == i or eligible[i, j]]
        want.append(np_ce(logits[i, keep], keep.index(i)))
    f32 = np.float32
    got = losses.sampled_softmax_loss(u.astype(f32), c.astype(f32), item, log_q.astype(f32), rows, tau, eligible)
    np.testing.assert_allclose(float(got), np.mean(want), rtol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 64])
def test_item_log_q_increases_with_frequency(batch_size):
    lq = losses.item_log_q(np.array([0, 0, 0, 1, 2, 2]), 4, batch_size)
    assert lq.shape == (4,) and np.all(lq <= 0)
    assert lq[0] > lq[2] > lq[1] >= lq[3]  # item 3 never seen: floor of one pseudo-count


def test_ranker_bce_per_candidate_label_mask_equals_broadcast_row_mask():
    b, c, a = 2, 3, 5
    x, y = RNG.normal(size=(b, c, a)), (RNG.random((b, c, a)) < 0.5).astype(np.float32)
    m, lm = np.ones((b, c), bool), (RNG.random((b, a)) < 0.5).astype(np.float32)
    per_cand = np.broadcast_to(lm[:, None, :], (b, c, a)).copy()
    broadcast, per_row = losses.ranker_bce(x, y, m, per_cand), losses.ranker_bce(x, y, m, lm)
    np.testing.assert_allclose(float(broadcast), float(per_row), rtol=1e-6)
    per_cand[0, 1] = 0  # dropping one candidate's labels removes exactly its terms
    want = (np_bce(x, y) * per_cand).sum() / (b * c)
    np.testing.assert_allclose(float(losses.ranker_bce(x, y, m, per_cand)), want, rtol=1e-5)


def test_listwise_softmax_formula_over_real_candidates_of_observed_actions():
    b, c, a = 4, 6, 3
    x = RNG.normal(size=(b, c, a)).astype(np.float32)
    y = (RNG.random((b, c, a)) < 0.3).astype(np.float32)
    m = RNG.random((b, c)) < 0.8
    lm = (RNG.random((b, a)) < 0.7).astype(np.float32)
    terms = []
    for i in range(b):
        for k in range(a):
            pos = y[i, :, k] * m[i]
            if pos.sum() == 0 or lm[i, k] == 0:
                continue
            real = np.flatnonzero(m[i])
            z = x[i, real, k]
            logp = z - (np.log(np.exp(z - z.max()).sum()) + z.max())
            terms.append(-(pos[real] * logp).sum() / pos.sum())
    got = losses.listwise_softmax(x, y, m, lm)
    np.testing.assert_allclose(float(got), np.mean(terms), rtol=1e-5)
    # padded candidates do not take part in the softmax, whatever their logits
    x2 = np.where(m[..., None], x, 50.0).astype(np.float32)
    np.testing.assert_allclose(float(losses.listwise_softmax(x2, y, m, lm)), np.mean(terms), rtol=1e-5)
    assert float(losses.listwise_softmax(x, np.zeros_like(y), m, lm)) == 0.0  # no positive: finite 0
