"""Ranker evaluation: held-out per-event rows get never-interacted sampled negatives (labels zero,
hashes from the catalogue); per-action AUC / log-loss cover observed actions only; the two-stage
metric with a constant re-ranking score reduces to the retriever's own masked ranking."""

from types import MappingProxyType

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.common.actions import ACTION_INDEX
from x_reco.configs.weights import WeightSet
from x_reco.data.examples import Split
from x_reco.data.registry import DEFAULT_PARTITION, TUNING_PARTITION, dataset_spec
from x_reco.eval.heldout import interacted, with_sampled_negatives
from x_reco.eval.metrics import auc, log_loss
from x_reco.eval.ranker import RETRIEVAL_WEIGHT_GRID, evaluate_ranker, objective_weights, ranker_logits, two_stage
from x_reco.eval.retrieval import evaluate_retrieval
from x_reco.models import PhoenixRanker, PhoenixRetriever, two_stage_score
from x_reco.training.config import model_config_for


@pytest.fixture(scope="module")
def models():
    mcfg = model_config_for(tiny_cfg(), toy_seqs())
    return PhoenixRetriever(mcfg, rngs=nnx.Rngs(params=1)), PhoenixRanker(mcfg, rngs=nnx.Rngs(params=2))


def test_sampled_negatives_are_unseen_and_unlabelled():
    seqs = toy_seqs()
    held = with_sampled_negatives(seqs, Split.TEST, seed=5)
    assert (held.examples.split == Split.TEST).all() and held.num_examples == 48
    cand, sampled = held.candidates.item_idx, held.candidates.sampled
    assert (cand >= 0).all() and sampled.sum(axis=1).tolist() == [4] * 48
    seen = interacted(seqs)
    users = np.broadcast_to(held.examples.user_idx[:, None], cand.shape)
    assert not seen.contains(users[sampled], cand[sampled]).any()
    assert (held.candidates.actions[sampled] == 0).all()
    assert np.array_equal(held.candidates.post_hashes, seqs.catalogue.post_hashes[cand])
    again = with_sampled_negatives(seqs, Split.TEST, seed=5)
    assert np.array_equal(again.candidates.item_idx, cand)
    assert (seqs.candidates.item_idx[seqs.rows(Split.TEST)][:, 1:] == -1).all()  # the input is not mutated


def test_per_action_metrics_match_logits(models):
    _, ranker = models
    seqs = toy_seqs()
    m = evaluate_ranker(ranker, seqs, Split.TEST, seed=0, batch_size=16)
    held = with_sampled_negatives(seqs, Split.TEST, seed=0)
    logits, y, cmask, _ = ranker_logits(ranker, held, np.arange(48), 16)
    a = ACTION_INDEX["favorite"]
    np.testing.assert_allclose(m["favorite_auc"], auc(y[..., a][cmask], logits[..., a][cmask]))
    np.testing.assert_allclose(m["favorite_log_loss"], log_loss(y[..., a][cmask], logits[..., a][cmask]), rtol=1e-6)
    assert {"click_auc", "dwell_auc", "not_interested_auc", "mean_auc", "loss"} <= set(m)
    assert "reply_auc" not in m and 0.0 <= m["mean_auc"] <= 1.0
    assert "favorite_auc_real" in m and "click_auc_real" not in m  # watched items are all clicks


def test_two_stage_with_constant_weights_is_retrieval_order(models):
    retriever, ranker = models
    seqs = toy_seqs()
    n = seqs.num_items
    zero = WeightSet("zero", "0", MappingProxyType({}))
    flat = two_stage(retriever, ranker, seqs, Split.TEST, num_retrieved=n, weights=zero)
    ret = evaluate_retrieval(retriever, seqs, Split.TEST, batch_size=32)
    assert flat[f"recall@{n}"] == 1.0
    np.testing.assert_allclose(flat["two_stage_ndcg@10"], ret["masked_ndcg@10"], rtol=1e-6)
    np.testing.assert_allclose(flat["retrieval_hr@10"], ret["masked_hr@10"], rtol=1e-6)
    published = two_stage(retriever, ranker, seqs, Split.TEST, num_retrieved=20)
    assert 0.0 <= published["two_stage_ndcg@10"] <= 1.0 and published["recall@20"] <= 1.0


def test_two_stage_score_blends_per_request_z_scores():
    rng = np.random.default_rng(0)
    ranker, retrieval = rng.normal(3.0, 2.0, (4, 30)), rng.normal(0.2, 0.05, (4, 30))
    assert np.array_equal(two_stage_score(ranker, retrieval, 0.0), ranker)  # the ranker's own score
    order = lambda s: np.argsort(-s, axis=1, kind="stable")  # noqa: E731
    assert np.array_equal(order(two_stage_score(ranker, retrieval, 1.0)), order(retrieval))
    half = two_stage_score(ranker, retrieval, 0.5)
    z = lambda x: (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(half, 0.5 * z(ranker) + 0.5 * z(retrieval))
    # a request's scale does not matter: each request is standardized on its own
    np.testing.assert_allclose(two_stage_score(ranker * 7 + 1, retrieval / 3, 0.5), half, atol=1e-12)
    short = retrieval.copy()
    short[:, -3:] = -np.inf  # ineligible items that fill a short list go to the bottom of the retriever's part
    blended = two_stage_score(ranker, short, 0.5)
    assert np.isfinite(blended).all()
    assert np.array_equal(order(two_stage_score(ranker, short, 1.0))[:, :27], order(short)[:, :27])
    assert (two_stage_score(np.ones((2, 5)), np.ones((2, 5)), 0.3) == 0).all()  # no spread, no order
    with pytest.raises(ValueError, match="must be in"):
        two_stage_score(ranker, retrieval, 1.5)


def test_two_stage_fits_the_retrieval_weight_on_the_split_it_is_given(models):
    retriever, ranker = models
    seqs = toy_seqs()
    fit = two_stage(retriever, ranker, seqs, Split.VAL, num_retrieved=20, retrieval_weights=RETRIEVAL_WEIGHT_GRID)
    each = {
        b: two_stage(retriever, ranker, seqs, Split.VAL, num_retrieved=20, retrieval_weights=(b,))
        for b in RETRIEVAL_WEIGHT_GRID
    }
    best = max(each[b]["two_stage_ndcg@10"] for b in RETRIEVAL_WEIGHT_GRID)
    assert fit["two_stage_ndcg@10"] == best
    assert fit["retrieval_weight"] == min(b for b in RETRIEVAL_WEIGHT_GRID if each[b]["two_stage_ndcg@10"] == best)
    assert fit["two_stage_ranker_ndcg@10"] == each[0.0]["two_stage_ndcg@10"]  # b = 0: the ranker's own order
    alone = two_stage(retriever, ranker, seqs, Split.VAL, num_retrieved=20, retrieval_weights=(1.0,))
    np.testing.assert_allclose(alone["two_stage_ndcg@10"], alone["retrieval_ndcg@10"])  # b = 1: the retriever's
    assert max(RETRIEVAL_WEIGHT_GRID) == 0.9  # validation never switches the ranker (and its weight set) off
    with pytest.raises(ValueError, match="retrieval_weights is empty"):
        two_stage(retriever, ranker, seqs, Split.VAL, retrieval_weights=())


def test_each_dataset_ranks_by_the_published_weights_of_its_objective_heads():
    published = WeightSet.published()
    assert objective_weights(DEFAULT_PARTITION) is published  # the synthetic world observes every action
    ml = objective_weights(TUNING_PARTITION)
    objective = set(dataset_spec(TUNING_PARTITION).objective_actions)
    assert "not_interested" in dataset_spec(TUNING_PARTITION).observed_actions and "not_interested" not in objective
    for action, weight in ml.weights.items():
        assert weight == (published.weights[action] if action in objective else 0.0), action
    assert ml.weights["click"] > 0 and ml.name != published.name
