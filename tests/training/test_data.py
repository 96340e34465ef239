"""Batch builders: retrieval pairs carry their positive as the only candidate; the step-to-rows map
is a pure function of (seed, step) that covers each epoch exactly once; ranker labels observe the
dataset's columns, and optionally not the negative actions of sampled candidates."""

import numpy as np

from x_reco.common.actions import ACTION_INDEX
from x_reco.eval.heldout import ineligible_mask
from x_reco.training.data import (
    make_labels, make_retrieval_batch, retrieval_pairs, split_rows, step_chunk, training_times,
)  # fmt: skip
from x_reco.training.losses import eligible_in_window
from tests.training.helpers import toy_seqs


def test_step_chunks_cover_each_epoch_once_and_depend_only_on_step():
    n, b = 37, 8  # 5 steps per epoch, the last one short
    epoch0 = np.concatenate([step_chunk(n, b, 3, s) for s in range(5)])
    assert sorted(epoch0) == list(range(n))
    assert np.array_equal(step_chunk(n, b, 3, 7), step_chunk(n, b, 3, 7))
    assert not np.array_equal(np.concatenate([step_chunk(n, b, 3, s) for s in range(5, 10)]), epoch0)


def test_retrieval_batch_holds_positive_as_only_candidate():
    seqs = toy_seqs()
    rows, items = retrieval_pairs(seqs, "train")
    rb = make_retrieval_batch(seqs, rows[:5], items[:5], 8)
    assert rb.batch.candidate_post_hashes.shape == (8, 1, 2)
    assert np.array_equal(rb.batch.candidate_post_hashes[:5, 0], seqs["item_post_hashes"][items[:5]])
    assert (rb.batch.candidate_post_hashes[5:] == 0).all() and rb.row_mask_b.tolist() == [True] * 5 + [False] * 3
    assert np.array_equal(rb.batch.user_hashes[:5], seqs["user_hashes"][rows[:5]])


def test_label_mask_optionally_drops_negative_actions_of_sampled_candidates():
    seqs = toy_seqs()
    rows = split_rows(seqs, "train")[:6]
    plain, masked = make_labels(seqs, rows, 8), make_labels(seqs, rows, 8, mask_sampled_negative_actions=True)
    assert plain.label_mask.shape == (8, 5, 19)
    ni, fav = ACTION_INDEX["not_interested"], ACTION_INDEX["favorite"]
    sampled = seqs["cand_sampled"][rows]
    assert (plain.label_mask[:6, :, ni] == 1).all()
    assert np.array_equal(masked.label_mask[:6, :, ni], (~sampled).astype(np.float32))
    assert (masked.label_mask[:6, :, fav] == 1).all() and sampled.any() and (~sampled).any()


def test_int32_training_times_give_the_evaluation_eligibility():
    seqs = toy_seqs()
    rng = np.random.default_rng(0)
    t = seqs["request_ts"]
    created = rng.integers(t.min() - 400, t.max() + 400, size=len(seqs["item_ids"]))
    created[:3] = [0, 2**40, t.min()]  # unknown (0), far future, exactly the first request
    seqs["item_created_ts"] = created
    for window_s in (1.0, 250.5, 1e6):
        request, created32, window = training_times(seqs, window_s)
        assert request.dtype == created32.dtype == np.int32
        rows = np.arange(len(t))
        got = np.asarray(eligible_in_window(request, created32, window))
        assert np.array_equal(got, ~ineligible_mask(seqs, rows, window_s))
        assert 0 < got.sum() < got.size


def test_retrieval_batch_carries_request_times():
    seqs = toy_seqs()
    rows, items = retrieval_pairs(seqs, "train")
    request, _, _ = training_times(seqs, 100.0)
    rb = make_retrieval_batch(seqs, rows[:5], items[:5], 8, request)
    assert rb.request_b.tolist() == request[rows[:5]].tolist() + [0, 0, 0]
    assert (make_retrieval_batch(seqs, rows[:5], items[:5], 8).request_b == 0).all()
