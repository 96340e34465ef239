"""Retrieval evaluation is full-catalogue leave-one-out ranking: its HR@10 equals the fraction of
targets inside the model's own exact top-10 (``PhoenixRetriever.__call__``), per-row masking of seen
items only ever improves a target's rank, and the popularity baseline matches a brute-force count."""

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.data.examples import Split
from x_reco.eval.heldout import seen_mask
from x_reco.eval.retrieval import (
    evaluate_popularity,
    evaluate_retrieval,
    item_vectors,
    popularity_scores,
)
from x_reco.models import PhoenixRetriever
from x_reco.training.config import model_config_for


@pytest.fixture(scope="module")
def model():
    return PhoenixRetriever(model_config_for(tiny_cfg(), toy_seqs()), rngs=nnx.Rngs(params=3))


def test_hr10_equals_membership_in_exact_top10(model):
    seqs = toy_seqs()
    rows, targets = seqs.retrieval_pairs(Split.TEST)
    corpus = item_vectors(model, seqs)
    all_items = np.ones(len(corpus), bool)
    out = nnx.jit(lambda m, b, c, k: m(b, c, k, 10))(model, seqs.batch(rows), corpus, all_items)
    in_top = (np.asarray(out.top_k_indices) == targets[:, None]).any(axis=1)
    metrics = evaluate_retrieval(model, seqs, Split.TEST, batch_size=32)
    assert metrics["num_targets"] == len(rows) == 48
    np.testing.assert_allclose(metrics["hr@10"], in_top.mean())
    # masked: one row at a time through the model's own corpus mask
    seen = seen_mask(seqs, Split.TEST, rows)
    seen[np.arange(len(rows)), targets] = False
    top10 = nnx.jit(lambda m, b, c, mask: m(b, c, mask, 10).top_k_indices)
    hits = [
        targets[i] in np.asarray(top10(model, seqs.batch(rows[i : i + 1]), corpus, ~seen[i]))[0]
        for i in range(len(rows))
    ]
    np.testing.assert_allclose(metrics["masked_hr@10"], np.mean(hits))
    assert metrics["masked_hr@10"] > metrics["hr@10"]  # the toy users re-see their group: masking matters
    # seen_share@10: how much of that exact top 10 the user had already interacted with
    top = np.asarray(out.top_k_indices)
    share = np.mean([seen[i, top[i]].mean() for i in range(len(rows))])
    assert metrics["seen_share@10"] == pytest.approx(share) and 0 < share < 1


def test_masking_never_hurts_a_target(model):
    seqs = toy_seqs()
    m = evaluate_retrieval(model, seqs, Split.VAL, batch_size=32)
    for k in ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"):
        assert m[f"masked_{k}"] >= m[k]


def test_seen_mask_covers_earlier_splits_and_history():
    seqs = toy_seqs()
    rows, _ = seqs.retrieval_pairs(Split.TEST)
    mask = seen_mask(seqs, Split.TEST, rows)
    for i, r in enumerate(rows[:10]):
        ex, hist = seqs.examples, seqs.history
        u = ex.user_idx[r]
        earlier = (ex.user_idx == u) & (ex.split < 2)
        cands = seqs.candidates.item_idx[earlier][~seqs.candidates.sampled[earlier]]
        want = set(cands[cands >= 0]) | set(hist.item_idx[r][hist.item_idx[r] >= 0])
        assert set(np.flatnonzero(mask[i])) == want


def test_popularity_baseline_brute_force():
    seqs = toy_seqs()
    pop = popularity_scores(seqs)
    rows, targets = seqs.retrieval_pairs(Split.TEST)
    ranks = []
    for r, t in zip(rows, targets):
        order = sorted(range(len(pop)), key=lambda j: (-pop[j], j))
        ranks.append(order.index(t))
    got = evaluate_popularity(seqs, Split.TEST)
    np.testing.assert_allclose(got["hr@10"], np.mean(np.array(ranks) < 10))
    np.testing.assert_allclose(got["mrr@20"], np.mean([1 / (x + 1) if x < 20 else 0 for x in ranks]))


def test_catalogue_window_excludes_items_a_feed_could_not_serve():
    """Synthetic feeds serve recent posts: with a window, items created after the request or before
    the window never outrank the target; the target itself is never excluded."""
    from tests.data.test_sequences import _visit_raw
    from x_reco.data.events import build_events
    from x_reco.data.sequences import SequenceConfig, build_sequences
    from x_reco.eval.heldout import ineligible_mask
    from x_reco.eval.retrieval import rank_targets

    raw = _visit_raw()
    raw.items["created_ts"] = raw.interactions["ts"] - 3600
    seqs = build_sequences(build_events(raw), raw.items, "synthetic", SequenceConfig(history_len=4, candidate_len=5))
    rows = np.arange(seqs.num_examples)
    mask = ineligible_mask(seqs, rows, 2 * 3600.0)
    assert mask.any() and not mask.all()
    created, t = seqs.catalogue.item_created_ts, seqs.examples.request_ts
    assert (mask == ((created[None, :] > t[:, None]) | (created[None, :] < t[:, None] - 7200))).all()

    def oldest_first(r):  # the model loves stale posts that the feed no longer serves
        return np.broadcast_to(-created.astype(np.float64), (len(r), seqs.num_items))

    full = rank_targets(seqs, Split.TEST, oldest_first)
    windowed = rank_targets(seqs, Split.TEST, oldest_first, catalogue_window_s=2 * 3600.0)
    assert windowed["ndcg@10"] > full["ndcg@10"] and windowed["mrr@10"] > full["mrr@10"]
