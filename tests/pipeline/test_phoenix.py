"""Phoenix in the pipeline (§18 items 2-4): the scorer's probabilities are the trained model's on the
same hashed batch, a candidate's probabilities do not depend on the others, and retrieval is exact
brute force over the candidate index inside the recency window."""

import dataclasses
import functools

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg
from x_reco.configs.weights import WeightSet
from x_reco.data.events import build_events
from x_reco.data.examples import Split
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.synthetic import WorldConfig, generate_world_tables
from x_reco.eval.ranker import ranker_logits, two_stage_rankings
from x_reco.eval.retrieval import catalogue_index, user_vectors
from x_reco.inference.params import serving_model
from x_reco.models.ranker import PhoenixRanker, two_stage_score
from x_reco.models.retriever import PhoenixRetriever
from x_reco.pipeline.framework import selection_order
from x_reco.pipeline.phoenix import PhoenixScorer, PhoenixSource, ServingCatalogue
from x_reco.pipeline.rules import AUG_2026, JAN_2026, MAX_POST_AGE
from x_reco.pipeline.scoring import RankingScorer
from x_reco.pipeline.types import Candidates, FeedRequest, History, Query
from x_reco.training.config import model_config_for


@functools.cache
def _world():
    raw = generate_world_tables(WorldConfig.tiny())
    seqs = build_sequences(
        build_events(raw), raw.items, "synthetic", SequenceConfig(history_len=8, candidate_len=4, vocab_size=1009)
    )
    return raw, seqs


@functools.cache
def _models(position_mode="shared"):
    _, seqs = _world()
    config = model_config_for(tiny_cfg(), seqs)
    config = dataclasses.replace(config, candidate_position_mode=position_mode)
    return PhoenixRetriever(config, rngs=nnx.Rngs(1)), PhoenixRanker(config, rngs=nnx.Rngs(2))


def _rows(seqs):
    """Requests with some history, from the last ones (the tiny world has no test days)."""
    return np.flatnonzero(seqs.history.length > 0)[::-1]


def _query(seqs, row, surface=None) -> Query:
    h = seqs.history
    history = History(int(h.length[row]), h.item_idx[row], h.author_idx[row], h.ts[row], h.surface[row], h.actions[row])
    user = str(seqs.catalogue.user_ids[seqs.examples.user_idx[row]])
    t = int(seqs.examples.request_ts[row])
    s = int(seqs.examples.surface[row]) if surface is None else surface
    return Query(FeedRequest("synthetic", user, t, surface=s), history=history, cold_user=history.length == 0)


def _scorer(position_mode="shared"):
    _, seqs = _world()
    _, ranker = _models(position_mode)
    return PhoenixScorer(serving_model(ranker), ServingCatalogue.from_sequences(seqs), AUG_2026.signals)


def test_probabilities_equal_the_trained_models_on_the_same_batch():
    _, seqs = _world()
    _, ranker = _models()
    scorer = _scorer()
    rows = _rows(seqs)[:20]
    logits, *_ = ranker_logits(ranker, seqs, rows)
    for r, row in enumerate(rows):
        items = seqs.candidates.item_idx[row]
        valid = items >= 0
        got = scorer.probabilities(_query(seqs, row), seqs.catalogue.item_ids[items[valid]])
        want = 1 / (1 + np.exp(-logits[r][valid].astype(np.float64)))
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_signals_follow_the_head_columns():
    names = _models()[1].config.output_action_names
    scorer = _scorer()
    cols = scorer.columns
    assert cols["retweet"] == names.index("repost")
    assert cols["cont_dwell_time"] is None and cols["video_open"] is None  # a19: no seconds head
    _, seqs = _world()
    q = _query(seqs, _rows(seqs)[0])
    cands = Candidates({"post_id": seqs.catalogue.item_ids[:5].astype(object)})
    out = scorer.score(q, cands)
    assert out.signal_names == AUG_2026.signals
    assert np.isnan(out.probs[:, AUG_2026.signals.index("cont_dwell_time")]).all()
    assert np.isfinite(out.probs[:, AUG_2026.signals.index("favorite")]).all()


def test_isolation_alone_among_many_shuffled_and_chunked():
    _, seqs = _world()
    scorer = _scorer()
    q = _query(seqs, _rows(seqs)[3])
    ids = seqs.catalogue.item_ids
    rng = np.random.default_rng(0)
    many = rng.choice(ids, size=min(1000, len(ids)), replace=False)
    target = many[7]
    alone = scorer.probabilities(q, [target])[0]
    among = scorer.probabilities(q, many)
    shuffled = rng.permutation(len(many))
    again = scorer.probabilities(q, many[shuffled])
    np.testing.assert_allclose(among[7], alone, atol=1e-6)
    np.testing.assert_allclose(again[np.argsort(shuffled)], among, atol=1e-6)
    assert scorer.calls == 3  # one model call per list, whatever its length (chunked inside)


def test_unknown_posts_stay_unscored():
    _, seqs = _world()
    scorer = _scorer()
    probs = scorer.probabilities(_query(seqs, 0), [seqs.catalogue.item_ids[0], "p-not-in-catalogue"])
    assert np.isfinite(probs[0]).all() and np.isnan(probs[1]).all()


def test_reference_mode_is_refused_beyond_one_chunk():
    _, seqs = _world()
    scorer = _scorer("reference")
    q = _query(seqs, 0)
    ids = seqs.catalogue.item_ids
    scorer.probabilities(q, ids[: scorer.chunk])  # one chunk is exact
    with pytest.raises(ValueError, match="reference"):
        scorer.probabilities(q, ids[: scorer.chunk + 1])


def test_retrieval_is_brute_force_inside_the_window():
    _, seqs = _world()
    retriever, _ = _models()
    index = catalogue_index(retriever, seqs)
    cat = ServingCatalogue.from_sequences(seqs)
    source = PhoenixSource(retriever, cat, index["vectors"], index["mask"], MAX_POST_AGE, max_results=50)
    created = cat.item_created_ts
    for row in _rows(seqs)[:10]:
        q = _query(seqs, row)
        got = source.get_candidates(q)
        user = user_vectors(retriever, seqs, np.array([row]))[0]  # the evaluation path, from the example row
        inside = (created <= q.t) & (created >= q.t - MAX_POST_AGE) & index["mask"]
        brute = np.where(inside, index["vectors"] @ user, -np.inf)
        k = min(50, int(inside.sum()))
        want = np.lexsort((np.arange(len(brute)), -brute))[:k]
        assert list(got["post_id"]) == list(cat.item_ids[want])  # recall 1.0, same order
        assert ((got["created_ts"] <= q.t) & (got["created_ts"] >= q.t - MAX_POST_AGE)).all()
        assert list(got["retrieval_rank"]) == list(range(k))


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_scored_order_equals_the_two_stage_evaluation(weight):
    """§18.2: with Thunder, filters, cold start and diversity off, the same k retrieved items come out
    of PhoenixScorer + RankingScorer in two_stage's order (offset and a constant OON factor are
    monotone), up to ties within 1e-6; with a retrieval weight, in the order of the same blend of the
    ranker's score and the retriever's u·v, which the scorer computes for every candidate."""
    _, seqs = _world()
    retriever, ranker = _models()
    cat = ServingCatalogue.from_sequences(seqs)
    index = catalogue_index(retriever, seqs)
    source = PhoenixSource(retriever, cat, index["vectors"], index["mask"], MAX_POST_AGE)
    scorer = PhoenixScorer(serving_model(ranker), cat, AUG_2026.signals, retrieval=source if weight else None)
    ranking = RankingScorer(WeightSet.published(), JAN_2026, diversity=False, retrieval_weight=weight)
    checked = differs = 0
    for rows, _, top, weighted, retrieved in two_stage_rankings(
        retriever, ranker, seqs, Split.VAL, num_retrieved=40, catalogue_window_s=MAX_POST_AGE
    ):
        want = two_stage_score(weighted, retrieved, weight)
        for r, row in enumerate(rows[:8]):
            assert np.isfinite(retrieved[r]).all()  # a full list: serving never sees the eval's fillers
            q = _query(seqs, row)
            cands = Candidates({"post_id": seqs.catalogue.item_ids[top[r]].astype(object), "in_network": [0] * 40})
            scored = ranking.score(q, scorer.score(q, cands))
            order = selection_order(scored["score"])
            assert np.all(np.diff(want[r][order]) <= 1e-6)
            if weight:
                np.testing.assert_allclose(scored["two_tower_score"], retrieved[r], rtol=1e-5, atol=1e-6)
                differs += not np.array_equal(order, selection_order(weighted[r]))
            else:
                assert np.isnan(scored["two_tower_score"]).all()  # no retrieval weight, no second score
            checked += 1
        break
    assert checked == 8
    assert (differs > 0) == bool(weight)  # the blend does reorder the ranker's list


def test_prefix_cache_gives_the_same_probabilities_and_never_compiles_after_warmup():
    """A user's requests through the prefix cache (hits, appends, misses, any candidate count up to the
    warmed largest) score as the plain chunked path and compile nothing after ``warmup``."""
    _, seqs = _world()
    _, ranker = _models()
    cat = ServingCatalogue.from_sequences(seqs)
    plain = PhoenixScorer(serving_model(ranker), cat, AUG_2026.signals)
    cached = PhoenixScorer(serving_model(ranker), cat, AUG_2026.signals, cache_slots=8, warm_candidates=(64, 300))
    user = seqs.examples.user_idx[_rows(seqs)[0]]
    rows = np.flatnonzero(seqs.examples.user_idx == user)[:6]  # one user's requests, history growing
    ids = cat.item_ids
    for k, row in enumerate(rows):
        q = _query(seqs, row)
        n = (10, 70, 200, 10, 300, 64)[k]
        for _ in range(2):  # the second is a hit
            np.testing.assert_allclose(cached.probabilities(q, ids[:n]), plain.probabilities(q, ids[:n]), atol=1e-5)
    stats = cached.cache.stats
    assert stats.hits >= len(rows) and stats.late_compiles == 0  # compiled in warmup only
