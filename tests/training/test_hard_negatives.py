"""Hard negatives for the ranker: drawn from the retriever's top items, never an item the user
interacted with in the training split, refreshed every step, labelled all-zero with negative actions
unobserved."""

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg, toy_seqs, with_catalogue
from x_reco.common.actions import NEGATIVE_ACTIONS, action_mask
from x_reco.data.examples import Split
from x_reco.eval.heldout import interacted
from x_reco.eval.retrieval import item_vectors, user_vectors
from x_reco.models.retriever import PhoenixRetriever
from x_reco.training.config import model_config_for
from x_reco.training.hard_negatives import HardNegativeBatches, retriever_pools, sample_from_pools
from x_reco.training.loop import train_ranker


@pytest.fixture(scope="module")
def retriever():
    seqs = toy_seqs()
    return PhoenixRetriever(model_config_for(tiny_cfg(), seqs), rngs=nnx.Rngs(params=0))


def test_pools_are_the_retrievers_best_unseen_items(retriever):
    seqs = toy_seqs()
    rows = seqs.rows(Split.TRAIN)[:40]
    pools = retriever_pools(retriever, seqs, rows, 10)
    seen = interacted(seqs, Split.VAL).dense(seqs.examples.user_idx[rows])
    assert pools.shape == (40, 10) and not seen[np.arange(40)[:, None], pools].any()
    scores = user_vectors(retriever, seqs, rows) @ item_vectors(retriever, seqs).T
    scores[seen] = -np.inf
    expected = np.sort(scores, axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(np.take_along_axis(scores, pools, axis=1), expected, rtol=1e-6)
    # every user has seen some items: a pool as large as the catalogue ends in -1 (short pools)
    full = retriever_pools(retriever, seqs, rows, seqs.num_items)
    eligible = (~seen).sum(axis=1)
    assert np.array_equal((full >= 0).sum(axis=1), eligible) and (full[:, : eligible.min()] >= 0).all()
    assert not seen[np.arange(40)[:, None], np.maximum(full, 0)][full >= 0].any()


def test_sampling_draws_distinct_pool_items():
    pools = np.arange(60).reshape(3, 20)
    draws = sample_from_pools(pools, 20, np.random.default_rng(0))
    assert all(sorted(d) == sorted(p) for d, p in zip(draws, pools))
    with pytest.raises(ValueError, match="cannot draw 21"):
        sample_from_pools(pools, 21, np.random.default_rng(0))
    short = pools.copy()
    short[1, 5:] = -1  # five items only: every one drawn, then padding
    draws = sample_from_pools(short, 8, np.random.default_rng(1))
    assert sorted(draws[1][:5]) == list(range(20, 25)) and (draws[1][5:] == -1).all()
    assert (draws[[0, 2]] >= 0).all()


def test_no_positive_is_ever_sampled_as_a_negative(retriever):
    seqs = toy_seqs()
    rows = seqs.rows(Split.TRAIN)
    cfg = tiny_cfg(hard_negative_pool=12)
    batches = HardNegativeBatches(seqs, rows, cfg, retriever)
    users = interacted(seqs, Split.VAL)
    pos = np.arange(len(rows))
    drawn = []
    for step in range(5):
        items = batches.items(pos, step)
        sampled = seqs.candidates.sampled[rows]
        real = seqs.candidates.item_idx[rows]
        assert np.array_equal(items[~sampled], real[~sampled])  # the real events stay
        r, c = np.nonzero(sampled)
        assert not users.contains(seqs.examples.user_idx[rows[r]], items[r, c]).any()
        assert all(len(set(row[s])) == s.sum() for row, s in zip(items, sampled))  # distinct per row
        in_pool = np.array([items[i, j] in batches.pools[batches.pool_of[i]] for i, j in zip(r[:200], c[:200])])
        assert in_pool.all()
        drawn.append(items)
    assert not np.array_equal(drawn[0], drawn[1])  # fresh draws each step
    assert np.array_equal(batches.items(pos, 3), drawn[3])  # and a pure function of the step
    batch, labels = batches(pos[:8], 0)
    s8 = seqs.candidates.sampled[rows[:8]]
    assert (labels.candidate_actions[:8][s8] == 0).all()
    assert (labels.label_mask[:8][s8][:, action_mask(NEGATIVE_ACTIONS).astype(bool)] == 0).all()
    assert np.array_equal(np.asarray(batch.candidate_post_hashes[:8]), seqs.catalogue.post_hashes[drawn[0][:8]])


def test_ranker_trains_on_hard_negatives_and_needs_the_retriever(retriever, tmp_path):
    cfg = tiny_cfg(num_steps=6, checkpoint_every=0, hard_negative_pool=12)
    result = train_ranker(toy_seqs(), cfg, tmp_path / "hard", retriever=retriever)
    assert np.isfinite(result.losses).all()
    with pytest.raises(ValueError, match="needs the trained retriever"):
        train_ranker(toy_seqs(), cfg, tmp_path / "none")


def test_ranker_validates_and_selects_on_the_two_stages_it_serves_in(retriever, tmp_path):
    from x_reco.eval.ranker import RETRIEVAL_WEIGHT_GRID, retrieval_weight_of, two_stage
    from x_reco.models.checkpoint import read_metadata

    seqs = toy_seqs()
    cfg = tiny_cfg(num_steps=4, eval_every=2, select_best=True, selection_metric="two_stage_ndcg@10")
    result = train_ranker(seqs, cfg, tmp_path / "sel", retriever=retriever)
    history = [e["two_stage_ndcg@10"] for e in result.eval_history]
    assert len(history) == 2 and result.val_metrics["two_stage_ndcg@10"] == max(history)
    assert result.selected_step == 2 * (1 + int(np.argmax(history)))
    metadata = read_metadata(result.checkpoint_path)
    logged = metadata["extra"]["val_metrics"]
    weight = retrieval_weight_of(metadata)  # fit on val at the selected evaluation: the weight it serves with
    assert weight == logged["retrieval_weight"] and weight in RETRIEVAL_WEIGHT_GRID
    assert logged["two_stage_ndcg@10"] >= max(logged["two_stage_ranker_ndcg@10"], logged["retrieval_ndcg@10"]) - 1e-12
    replayed = two_stage(retriever, result.model, seqs, Split.VAL, retrieval_weights=(weight,))
    for key in ("two_stage_ndcg@10", "two_stage_ranker_ndcg@10", "retrieval_ndcg@10"):
        assert logged[key] == pytest.approx(replayed[key], abs=1e-9)
    by_ranker = train_ranker(
        seqs, cfg.replace(selection_metric="two_stage_ranker_ndcg@10"), tmp_path / "own", retriever=retriever
    )
    own = [e["two_stage_ranker_ndcg@10"] for e in by_ranker.eval_history]
    assert by_ranker.selected_step == 2 * (1 + int(np.argmax(own)))
    with pytest.raises(ValueError, match="needs the trained retriever"):
        train_ranker(seqs, cfg, tmp_path / "none")
    plain = train_ranker(seqs, cfg.replace(selection_metric=None, eval_every=0, select_best=False), tmp_path / "plain")
    assert "two_stage_ndcg@10" not in plain.val_metrics  # no retriever, no two stages
    assert retrieval_weight_of(read_metadata(plain.checkpoint_path)) == 0.0  # served in its own order


def test_appended_hard_negatives_for_examples_of_served_impressions(retriever):
    seqs = toy_seqs()
    first = seqs.examples.request_ts.min()
    created = np.where(np.arange(seqs.num_items) % 2, first, first + 10**9)  # odd items servable, even never
    seqs = with_catalogue(seqs, item_created_ts=created)
    rows = seqs.rows(Split.TRAIN)
    cfg = tiny_cfg(hard_negative_pool=12, hard_negative_count=3, negative_window_s=float(10**8))
    batches = HardNegativeBatches(seqs, rows, cfg, retriever)
    pos = np.arange(len(rows))
    items = batches.items(pos, 0)
    c = seqs.candidates.item_idx.shape[1]
    assert items.shape == (len(rows), c + 3)
    extra = items[:, c:]
    users = np.repeat(seqs.examples.user_idx[rows], 3)
    assert (extra >= 0).all() and not interacted(seqs, Split.VAL).contains(users, extra.reshape(-1)).any()
    assert (extra % 2 == 1).all()  # only items a feed could serve at the request time
    assert all(
        len(set(row[:c][seqs.candidates.sampled[r]].tolist() + row[c:].tolist()))
        == 3 + seqs.candidates.sampled[r].sum()
        for row, r in zip(items, rows)
    )  # refilled and appended draws are distinct within a row
    _, labels = batches(pos[:4], 0)
    assert labels.candidate_actions.shape[1] == c + 3 and (labels.candidate_actions[:4, c:] == 0).all()
    assert labels.candidate_mask[:4, c:].all() and not labels.candidate_mask[4:].any()
    assert (labels.label_mask[:4, c:][..., action_mask(NEGATIVE_ACTIONS).astype(bool)] == 0).all()
    assert (labels.label_mask[:4, c:][..., ~action_mask(NEGATIVE_ACTIONS).astype(bool)].sum(-1) > 0).all()


def test_a_short_pool_pads_with_unlabelled_empty_candidates(retriever):
    """Early in a world's life the recency window holds fewer items than the pool: the draws past them
    are padding (no hashes, masked out of the loss), never a repeated or an ineligible item."""
    seqs = toy_seqs()
    first = seqs.examples.request_ts.min()
    created = np.full(seqs.num_items, first + 10**9)
    created[[3, 5]] = first  # two servable items in the whole catalogue
    seqs = with_catalogue(seqs, item_created_ts=created)
    rows = seqs.rows(Split.TRAIN)
    cfg = tiny_cfg(hard_negative_pool=12, hard_negative_count=4, negative_window_s=float(10**8))
    batches = HardNegativeBatches(seqs, rows, cfg, retriever)
    c = seqs.candidates.item_idx.shape[1]
    pos = np.arange(8)
    extra = batches.items(pos, 0)[:, c:]
    assert set(extra[extra >= 0].tolist()) <= {3, 5} and ((extra >= 0).sum(axis=1) <= 2).all()
    assert (extra < 0).any()
    batch, labels = batches(pos, 0)
    empty = np.zeros(labels.candidate_mask.shape, bool)
    empty[:8, c:] = extra < 0
    assert not labels.candidate_mask[empty].any() and labels.candidate_mask[:8, c:][extra >= 0].all()
    assert (np.asarray(batch.candidate_post_hashes)[empty] == 0).all()


def test_a_listwise_term_adds_to_the_ranker_loss_on_the_same_batches(retriever, tmp_path):
    """listwise_weight adds the listwise softmax over each example's candidates to the BCE: the first
    step (same init, same batch) costs more with it, by a positive amount, and stays finite."""
    cfg = tiny_cfg(num_steps=1, warmup_steps=0, checkpoint_every=0, hard_negative_pool=12)
    plain = train_ranker(toy_seqs(), cfg, tmp_path / "bce", retriever=retriever)
    listwise = train_ranker(toy_seqs(), cfg.replace(listwise_weight=1.0), tmp_path / "lw", retriever=retriever)
    assert np.isfinite(listwise.losses).all()
    assert listwise.losses[0] > plain.losses[0] + 0.1  # a softmax over >= 2 candidates costs > 0
    with pytest.raises(ValueError, match="listwise_weight=-1"):
        cfg.replace(listwise_weight=-1.0)
