"""The whole pipeline on the tiny synthetic world and a MovieLens-shaped toy (§18 items 8, 10-13, 15):
explanations reconcile with the scores, counterfactuals cost no model call, the served log keeps
posts from repeating, nothing after t changes a feed at t, and the OON-only profile."""

import dataclasses
import functools
import json

import numpy as np
import pandas as pd
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg, toy_raw
from x_reco.configs.weights import WeightSet
from x_reco.data.events import build_events
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.synthetic import WorldConfig, generate_world_tables
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever
from x_reco.pipeline.explain import TERMINAL_STATES, fate_ledger
from x_reco.pipeline.feed import OON_ONLY_FILTERS, FeedOptions, FeedPipeline
from x_reco.pipeline.rules import MAX_POST_AGE
from x_reco.pipeline.scoring import candidate_weights, offset_score
from x_reco.pipeline.state import UnknownUserError
from x_reco.pipeline.store import ServingData
from x_reco.training.config import model_config_for

SEQ = SequenceConfig(history_len=8, candidate_len=4, vocab_size=1009)


@functools.cache
def _synthetic():
    raw = generate_world_tables(WorldConfig.tiny())
    events = build_events(raw)
    seqs = build_sequences(events, raw.items, "synthetic", SEQ)
    return raw, events, seqs


@functools.cache
def _models(partition="synthetic"):
    seqs = _synthetic()[2] if partition == "synthetic" else _movielens()[2]
    config = model_config_for(tiny_cfg(), seqs)
    return PhoenixRetriever(config, rngs=nnx.Rngs(1)), PhoenixRanker(config, rngs=nnx.Rngs(2))


def _data(raw, events, seqs) -> ServingData:
    return ServingData(raw.partition, raw.items, raw.users, events, dict(raw.extra), raw.manifest, seqs, None, {})


def _pipeline(data=None, **options) -> FeedPipeline:
    """The tiny world's pipeline; the f32 ranker unless a test asks for a variant (the semantics under
    test do not depend on it, and the INT8 variant compiles slower; tests/test_assets_serving.py and
    tests/test_feed_cli.py serve the default w8+t8)."""
    options.setdefault("variant", "f32")
    data = data or _data(*_synthetic())
    retriever, ranker = _models()
    return FeedPipeline(data, retriever, ranker, FeedOptions(**options), {"retriever": "r0", "ranker": "k0"})


def _requests(n=12, seed=0):
    """Seeded (user, t) pairs at the starts of real visits in the second half of the world."""
    _, events, _ = _synthetic()
    starts = events.groupby("request_key").agg(user_id=("user_id", "first"), ts=("ts", "min"))
    starts = starts[starts["ts"] > starts["ts"].median()].sort_values(["ts", "user_id"])
    pick = np.random.default_rng(seed).choice(len(starts), size=n, replace=False)
    return [(str(u), int(t)) for u, t in starts.iloc[np.sort(pick)].itertuples(index=False)]


@pytest.fixture(scope="module")
def feeds():
    pipe = _pipeline()
    return pipe, [pipe.serve(pipe.request(u, t)) for u, t in _requests()]


def test_every_retrieved_candidate_has_exactly_one_terminal_state(feeds):
    _, results = feeds
    assert any(len(r.served) for r in results)
    for result in results:
        ledger = fate_ledger(result)  # raises on a second or a missing state
        assert sorted(ledger) == list(range(len(result.retrieved)))
        assert {e["state"] for e in ledger.values()} <= set(TERMINAL_STATES)
        served = [e["position"] for e in ledger.values() if e["state"] == "served"]
        assert sorted(served) == list(range(len(result.served)))
        for stat in result.trace:
            assert stat.n_in == stat.n_kept + stat.n_removed


def test_scores_reconcile_with_weights_and_probabilities(feeds):
    pipe, results = feeds
    for result in results:
        served, q = result.served, result.query
        w = candidate_weights(served, q, pipe.weights, pipe.rules)
        c = (w * np.nan_to_num(served.probs)).sum(axis=1)  # Σ_s w_s(i) p_s, recomputed
        p, n, t = pipe.weights.pnt(pipe.rules)
        np.testing.assert_allclose(offset_score(c, p, n, t), served["weighted_score"], rtol=0, atol=1e-12)
        pre = np.where(served["cold_start_boosted"], served["pre_diversity_score"], served["weighted_score"])
        np.testing.assert_array_equal(pre, served["pre_diversity_score"])
        want = pre * served["diversity_multiplier"] * served["oon_multiplier"]
        np.testing.assert_allclose(served["score"], want, rtol=0, atol=1e-12)
        assert np.all(np.diff(served["score"]) <= 0)  # served in score order (post-selection keeps order)


def test_why_not_answers_removed_not_selected_and_never_retrieved(feeds):
    pipe, results = feeds
    result = max(results, key=lambda r: len(r.non_selected))
    removed = result.retrieved["post_id"][result.removed[0].row]
    assert pipe.why_not(result, removed)["state"] in ("removed", "served", "not_selected", "truncated")
    lost = result.non_selected["post_id"][-1]
    assert pipe.why_not(result, lost)["state"] in ("not_selected", "truncated")
    old = str(result.retrieved["post_id"][0])
    retrieved = set(result.retrieved["post_id"])
    never = next(p for p in pipe.catalogue.item_ids if p not in retrieved and p != old)
    answer = pipe.why_not(result, str(never))
    assert answer["state"] == "never_retrieved" and answer["reasons"]
    assert pipe.why_not(result, "p-nope")["reasons"][-1].startswith("not in the candidate index")


def test_three_weight_sets_cost_no_model_call(feeds):
    pipe, results = feeds
    result = max(results, key=lambda r: len(r.scored))
    calls = pipe.scorer.calls
    diff = pipe.rescore(result, ["sync-2026-08-12", "engagement-only", "stakeholder:society"])
    assert pipe.scorer.calls == calls
    assert set(diff) == {"sync-2026-08-12@2026-08-12", "engagement-only@2026-09-24", "stakeholder:society@alpha=4.0"}
    same = pipe.rescore(result, ["published"])["sync-2026-09-24@2026-09-24"]
    assert same["served"] == list(result.served["post_id"]) and same["jaccard@35"] == 1.0 and same["rbo"] == 1.0
    for d in diff.values():
        assert 0 <= d["jaccard@35"] <= 1 and -1 <= d["kendall_tau"] <= 1
        assert len(d["entering"]) == len(d["leaving"]) or len(d["served"]) != len(result.served)


def test_served_log_keeps_posts_from_repeating_for_ten_minutes():
    pipe = _pipeline()
    user, t = _requests(1, seed=3)[0]
    first = pipe.serve(pipe.request(user, t))
    second = pipe.serve(pipe.request(user, t + 60))
    related = lambda r: {x for ids in r.served.related_ids() for x in ids}  # noqa: E731
    assert len(first.served) and not related(first) & related(second)
    assert second.query.served_ids >= set(first.served["post_id"])
    later = pipe.serve(pipe.request(user, t + 60 + 601))
    assert not later.query.served_ids & set(first.served["post_id"])  # outside the 10-minute window


def _before(raw, events, cut: int):
    """The public tables as they stood at ``cut``: every row at or after it gone, open-ended rows reopened."""
    social = dict(raw.extra)
    social["follows"] = social["follows"][social["follows"]["since_ts"] < cut].copy()
    until = social["follows"]["until_ts"]
    social["follows"]["until_ts"] = until.where(until.isna() | (until < cut), pd.NA)
    for name, col in (
        ("post_events", "ts"),
        ("user_blocks", "ts"),
        ("author_blocks", "since_ts"),
        ("muted_keywords", "since_ts"),
        ("subscriptions", "since_ts"),
    ):
        social[name] = social[name][social[name][col] < cut]
    raw = dataclasses.replace(raw, items=raw.items[raw.items["created_ts"] <= cut], extra=social)
    return raw, events[events["ts"] < cut]


def test_nothing_at_or_after_t_changes_the_feed_at_t():
    raw, events, seqs = _synthetic()
    full = _pipeline()
    for user, t in _requests(3, seed=5):
        cut_raw, cut_events = _before(raw, events, t)
        past = _pipeline(_data(cut_raw, cut_events, seqs))
        a = full.report(full.serve(full.request(user, t)), ledger=True)
        b = past.report(past.serve(past.request(user, t)), ledger=True)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        created = full.serve(full.request(user, t)).retrieved["created_ts"]
        assert (created <= t).all() and (created >= t - MAX_POST_AGE).all()


def test_reports_are_reproducible_across_pipelines():
    user, t = _requests(1, seed=7)[0]
    a, b = _pipeline(), _pipeline()
    ra, rb = (p.report(p.serve(p.request(user, t)), ledger=True) for p in (a, b))
    assert json.dumps(ra, sort_keys=True) == json.dumps(rb, sort_keys=True)
    assert ra["weights"] == "sync-2026-09-24@2026-09-24" and ra["rules"] == "aug-2026"
    assert ra["absent_signals"] and "cont_dwell_time" in ra["absent_signals"]


def test_cold_users_are_scored_from_the_user_token_or_get_upstream_behaviour():
    raw, events, seqs = _synthetic()
    user, t = str(events["user_id"].iloc[0]), int(events["ts"].min())
    scored = _pipeline().serve(_pipeline().request(user, t))
    assert scored.query.cold_user and scored.query.history.length == 0
    upstream = _pipeline(empty_history="upstream").serve(_pipeline().request(user, t))
    assert not any(s.enabled for s in upstream.trace if s.component == "PhoenixSource")
    assert np.isnan(upstream.scored.probs).all()


def test_bad_requests_get_clear_errors():
    pipe = _pipeline()
    with pytest.raises(UnknownUserError, match="u9999"):
        pipe.request("u9999")
    user, t = _requests(1)[0]
    with pytest.raises(ValueError, match="outside the synthetic data"):
        pipe.request(user, 10)
    with pytest.raises(ValueError, match="unknown rule set"):
        FeedOptions(rules="dec-2026")
    with pytest.raises(ValueError, match="unknown weight set"):
        _pipeline(weights="nope")


@functools.cache
def _movielens():
    raw = toy_raw()
    events = build_events(raw)
    return raw, events, build_sequences(events, raw.items, raw.partition, SEQ)


def test_oon_only_profile_for_partitions_without_a_social_graph():
    raw, events, seqs = _movielens()
    retriever, ranker = _models("movielens-100k")
    data = ServingData(raw.partition, raw.items, raw.users, events, {}, raw.manifest, seqs, None, {})
    pipe = FeedPipeline(data, retriever, ranker, FeedOptions(), {"retriever": "r", "ranker": "k"})
    user = str(events["user_id"].iloc[0])
    t = int(events[events["user_id"] == user]["ts"].max())
    result = pipe.serve(pipe.request(user, t))
    enabled = {(s.stage, s.component) for s in result.trace if s.enabled}
    assert ("source", "PhoenixSource") in enabled and all(c != "ThunderSource" for _, c in enabled)
    assert {c for st, c in enabled if st == "filter"} <= OON_ONLY_FILTERS
    assert ("post_selection_filter", "VFFilter") not in enabled
    assert (result.scored["diversity_multiplier"] == 1).all()  # diversity off
    assert (result.scored["in_network"] == 0).all()
    masked = pipe.unobserved_signals
    assert "reply" in masked and "favorite" not in masked
    assert all(pipe.weights.weight(s) == 0 for s in masked)
    assert pipe.report(result)["masked_weights"] == list(masked)
    seen = set(events[(events["user_id"] == user) & (events["ts"] < t)]["item_id"])
    assert not seen & set(result.served["post_id"])  # rated items are seen
    assert len(result.served) == min(35, len(result.selected))
    assert WeightSet.published().weight("reply") == 5.0  # the registry's set is not changed by masking


def test_the_feed_serves_int8_rounded_against_the_stored_calibration_of_its_own_ranker():
    """rounding="auto" serves calibrated int8 where ranker_calibration of this champion ranker is stored,
    round-to-nearest otherwise; "calibrated" refuses a missing or another ranker's calibration."""
    from x_reco.inference.calibrate import calibrate, moments_to_arrays
    from x_reco.inference.params import leaf_paths
    from x_reco.pipeline.store import ServingDataError

    raw, events, seqs = _synthetic()
    plain = _pipeline(variant="w8+t8", prefix_cache_slots=0)
    assert plain.ranker_model.rounding == "nearest"  # nothing stored: auto rounds to nearest
    with pytest.raises(ServingDataError, match="materialize ranker_calibration"):
        _pipeline(variant="w8+t8", rounding="calibrated")
    moments, n = calibrate(plain.source_model, seqs, users=8, candidates=16)
    stored = dataclasses.replace(_data(raw, events, seqs), calibration=moments_to_arrays(moments, "k0", n))
    pipe = _pipeline(stored, variant="w8+t8", rounding="calibrated", prefix_cache_slots=0)
    assert pipe.ranker_model.rounding == "calibrated" and _pipeline(stored, variant="w8+t8").ranker_model.rounding == (
        "calibrated"
    )
    q = lambda m: {k: np.asarray(v) for k, v in leaf_paths(m.ranker_model.state) if k.endswith("/q")}  # noqa: E731
    ints, nearest = q(pipe), q(plain)
    assert ints.keys() == nearest.keys()  # the same format...
    assert any(not np.array_equal(ints[k], nearest[k]) for k in ints)  # ...another rounding
    user, t = _requests(1)[0]
    report = pipe.report(pipe.serve(pipe.request(user, t)))
    assert report["ranker_variant"] == "w8+t8" and report["ranker_rounding"] == "calibrated"
    other = dataclasses.replace(stored, calibration=moments_to_arrays(moments, "another-ranker", n))
    assert _pipeline(other, variant="w8+t8").ranker_model.rounding == "nearest"
    with pytest.raises(ServingDataError, match="another ranker's calibration"):
        _pipeline(other, variant="w8+t8", rounding="calibrated")
    assert _pipeline(stored, variant="f32").ranker_model.rounding is None
