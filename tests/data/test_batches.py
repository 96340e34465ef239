"""Batch builders (x_reco/data/batches.py), the one place batches are cut: retrieval pairs carry their
positive as the only candidate; ranker labels observe the dataset's columns, and optionally not the
negative actions of sampled candidates; int32 training times give the evaluation's eligibility; and
every batch equals the one the three former copies built (training's make_batch, evaluation's
two-stage re-rank batch, the benchmark's checkpoint users), re-implemented here on the flat arrays."""

import numpy as np
import pytest

from tests.training.helpers import toy_seqs, with_catalogue
from x_reco.common.actions import ACTION_INDEX
from x_reco.data.batches import next_items, retrieval_batch, training_times
from x_reco.data.examples import Split
from x_reco.eval.heldout import ineligible_mask
from x_reco.inference.requests import checkpoint_users
from x_reco.models.losses import eligible_in_window

FIELDS = (
    "user_hashes",
    "history_post_hashes",
    "history_author_hashes",
    "history_actions",
    "history_product_surface",
    "candidate_post_hashes",
    "candidate_author_hashes",
    "candidate_product_surface",
)


def _reference_batch(a: dict, rows, batch_size=None) -> dict:
    """training.data.make_batch before the typed sequences, on the flat arrays."""
    pad = 0 if batch_size is None else batch_size - len(rows)

    def take(name, dtype):
        arr = a[name][rows].astype(dtype)
        return np.concatenate([arr, np.zeros((pad,) + arr.shape[1:], dtype)]) if pad else arr

    return {
        "user_hashes": take("user_hashes", np.int32),
        "history_post_hashes": take("hist_post_hashes", np.int32),
        "history_author_hashes": take("hist_author_hashes", np.int32),
        "history_actions": take("hist_actions", np.float32),
        "history_product_surface": take("hist_surface", np.int32),
        "candidate_post_hashes": take("cand_post_hashes", np.int32),
        "candidate_author_hashes": take("cand_author_hashes", np.int32),
        "candidate_product_surface": np.broadcast_to(
            take("surface", np.int32)[:, None], (len(rows) + pad, a["cand_post_hashes"].shape[1])
        ).copy(),
    }


def _reference_catalogue_batch(a: dict, rows, top_bk, batch_size) -> dict:
    """eval.ranker._weighted_scores' batch before the typed sequences: catalogue items as candidates."""
    out = _reference_batch(a, rows, batch_size)
    items = np.zeros((batch_size, top_bk.shape[1]), np.int64)
    items[: len(rows)] = top_bk
    valid = (np.arange(batch_size) < len(rows))[:, None, None]
    out["candidate_post_hashes"] = (a["item_post_hashes"][items] * valid).astype(np.int32)
    out["candidate_author_hashes"] = (a["item_author_hashes"][items] * valid).astype(np.int32)
    out["candidate_product_surface"] = np.repeat(out["candidate_product_surface"][:, :1], top_bk.shape[1], axis=1)
    return out


def _assert_batch_equal(batch, ref: dict):
    for name in FIELDS:
        got = np.asarray(getattr(batch, name))
        assert got.dtype == ref[name].dtype and np.array_equal(got, ref[name]), name


@pytest.mark.parametrize("batch_size", [None, 13])
def test_example_batch_equals_the_former_make_batch(batch_size):
    seqs = toy_seqs()
    rows = seqs.rows(Split.TRAIN)[3:11]
    _assert_batch_equal(seqs.batch(rows, batch_size), _reference_batch(seqs.to_arrays(), rows, batch_size))
    with pytest.raises(ValueError, match="do not fit"):
        seqs.batch(rows, 7)


def test_catalogue_batch_equals_the_former_rerank_batch():
    seqs = toy_seqs()
    rows = seqs.rows(Split.TEST)[:5]
    top = np.random.default_rng(0).integers(0, seqs.num_items, size=(5, 11))
    _assert_batch_equal(seqs.catalogue_batch(rows, top, 8), _reference_catalogue_batch(seqs.to_arrays(), rows, top, 8))


def test_checkpoint_users_equal_the_former_benchmark_batch():
    seqs = toy_seqs()
    a = seqs.to_arrays()
    got = checkpoint_users(seqs, n_users=7, n_candidates=13, seed=3)
    order = np.lexsort((a["request_ts"], a["split"] == 2))[::-1]
    _, first = np.unique(a["user_idx"][order], return_index=True)
    rows = np.sort(order[first])[:7]
    rng = np.random.default_rng(3)
    pick = np.stack([rng.choice(seqs.num_items, 13, replace=False) for _ in rows])
    ref = _reference_catalogue_batch(a, rows, pick, len(rows))
    ref["history_actions"] = (a["hist_actions"][rows] != 0).astype(np.float32)  # the benchmark's binarisation
    _assert_batch_equal(got, ref)


def test_retrieval_batch_holds_positive_as_only_candidate():
    seqs = toy_seqs()
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    rb = retrieval_batch(seqs, rows[:5], items[:5], 8)
    assert rb.batch.candidate_post_hashes.shape == (8, 1, 2)
    assert np.array_equal(rb.batch.candidate_post_hashes[:5, 0], seqs.catalogue.post_hashes[items[:5]])
    assert (rb.batch.candidate_post_hashes[5:] == 0).all() and rb.row_mask_b.tolist() == [True] * 5 + [False] * 3
    assert np.array_equal(rb.batch.user_hashes[:5], seqs.examples.user_hashes[rows[:5]])
    assert rb.item_b.tolist() == items[:5].tolist() + [0, 0, 0]


def test_retrieval_pairs_are_engaged_real_candidates():
    seqs = toy_seqs()
    rows, items = seqs.retrieval_pairs("train")
    assert (seqs.examples.split[rows] == Split.TRAIN).all() and len(rows) > 0
    c = seqs.candidates
    for r, item in zip(rows[:50], items[:50]):
        slot = int(np.flatnonzero(c.item_idx[r] == item)[0])
        assert not c.sampled[r, slot] and c.actions[r, slot, ACTION_INDEX["click"]] == 1


def test_label_mask_optionally_drops_negative_actions_of_sampled_candidates():
    seqs = toy_seqs()
    rows = seqs.rows(Split.TRAIN)[:6]
    plain, masked = seqs.labels(rows, 8), seqs.labels(rows, 8, mask_sampled_negative_actions=True)
    assert plain.label_mask.shape == (8, 5, 19)
    ni, fav = ACTION_INDEX["not_interested"], ACTION_INDEX["favorite"]
    sampled = seqs.candidates.sampled[rows]
    assert (plain.label_mask[:6, :, ni] == 1).all()
    assert np.array_equal(masked.label_mask[:6, :, ni], (~sampled).astype(np.float32))
    assert (masked.label_mask[:6, :, fav] == 1).all() and sampled.any() and (~sampled).any()
    assert plain.row_mask.tolist() == [True] * 6 + [False] * 2 and not plain.candidate_mask[6:].any()
    assert np.array_equal(plain.candidate_actions[:6], seqs.candidates.actions[rows].astype(np.float32))


def test_int32_training_times_give_the_evaluation_eligibility():
    seqs = toy_seqs()
    rng = np.random.default_rng(0)
    t = seqs.examples.request_ts
    created = rng.integers(t.min() - 400, t.max() + 400, size=seqs.num_items)
    created[:3] = [0, 2**40, t.min()]  # unknown (0), far future, exactly the first request
    seqs = with_catalogue(seqs, item_created_ts=created)
    for window_s in (1.0, 250.5, 1e6):
        request, created32, window, _ = training_times(seqs, window_s)
        assert request.dtype == created32.dtype == np.int32
        rows = np.arange(len(t))
        got = np.asarray(eligible_in_window(request, created32, window))
        assert np.array_equal(got, ~ineligible_mask(seqs, rows, window_s))
        assert 0 < got.sum() < got.size


def test_retrieval_batch_carries_request_times():
    seqs = toy_seqs()
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    request, _, _, _ = training_times(seqs, 100.0)
    rb = retrieval_batch(seqs, rows[:5], items[:5], 8, request)
    assert rb.request_b.tolist() == request[rows[:5]].tolist() + [0, 0, 0]
    assert (retrieval_batch(seqs, rows[:5], items[:5], 8).request_b == 0).all()


def test_next_items_never_feed_a_position_its_own_target():
    """Position p sees history slots < p and predicts slot p (or the pair's item after the last slot)."""
    seqs = toy_seqs()
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    item, slot = next_items(seqs, rows, items)
    h = seqs.history
    s = h.item_idx.shape[1]
    length = h.length[rows]
    assert item.shape == slot.shape == (len(rows), s + 1) and (length == s).any() and (length == 0).any()
    for r in range(len(rows)):
        n = length[r]
        assert item[r, :n].tolist() == h.item_idx[rows[r], :n].tolist() and item[r, n] == items[r]
        assert (item[r, n + 1 :] == -1).all() and (slot[r, n + 1 :] == -1).all()
        assert slot[r, : n + 1].tolist() == list(range(n)) + [s]
        # the event predicted at position p is later than every event position p sees
        ts = np.append(h.ts[rows[r], :n], seqs.examples.request_ts[rows[r]])
        for p in range(n + 1):
            assert (h.ts[rows[r], :p] <= ts[p]).all()
            assert item[r, p] not in h.item_idx[rows[r], :p]  # MovieLens: an item is rated once


def test_causal_batch_times_each_prediction_at_its_event():
    seqs = toy_seqs()
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    request, _, _, history = training_times(seqs, 100.0)
    rb = retrieval_batch(seqs, rows[:5], items[:5], 8, request, causal=True, history_times=history)
    _, slot = next_items(seqs, rows[:5], items[:5])
    for r in range(5):
        n = seqs.history.length[rows[r]]
        assert rb.next_request_bp[r, n] == request[rows[r]]
        assert rb.next_request_bp[r, :n].tolist() == history[rows[r], :n].tolist()
        assert (slot[r, :n] < seqs.history.item_idx.shape[1]).all()
    assert (rb.next_item_bp[5:] == -1).all() and retrieval_batch(seqs, rows[:5], items[:5], 8).next_item_bp is None
    lo = min(seqs.examples.request_ts.min(), seqs.history.ts[seqs.history.length > 0, 0].min())
    valid = np.arange(history.shape[1])[None, :] < seqs.history.length[:, None]
    assert np.array_equal(history[valid], (seqs.history.ts[valid] - lo).astype(np.int32))
