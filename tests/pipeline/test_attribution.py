"""History attribution (§15.5, §18 item 10 last clause): the cached leave-one-out call equals the model
rescoring each history without the event from scratch, on a real FeedPipeline (f32 and the served
w8+t8 variant); padding cannot be removed; an empty history has no deltas and costs no call; top-3
order and shares; deterministic; the prefix cache is read, never written.

Tolerance: 1e-6 per probability. The brief's "Δ within 1e-6" cannot hold in score units in f32: c
weighs probabilities by up to |w| = 234 (report), so one f32 ulp of a probability near 0.5 (6e-8)
is already 1.4e-5 of c; measured, the dense reference and the cached call differ by ≤ 7.2e-7 per
probability (w8+t8; 5.4e-7 f32) and by up to 1.6e-4 in c, against |Δ| up to 100 on the untrained
tiny models. So Δ is checked to 2e-6 · Σ_s |w_s(i)| (both of its terms within 1e-6 per probability).
"""

import dataclasses

import jax
import numpy as np
import pytest

from tests.pipeline.test_feed import _pipeline, _requests
from x_reco.inference.engine import make_score_fn
from x_reco.pipeline.attribution import Attribution, leave_one_out, without_event
from x_reco.pipeline.phoenix import request_batch
from x_reco.pipeline.render import render_feed
from x_reco.pipeline.scoring import candidate_weights
from x_reco.pipeline.types import History

PROB_TOL = 1e-6


@pytest.fixture(scope="module")
def served():
    """The default (w8+t8) pipeline and one served feed of a viewer with 8 history events."""
    pipe = _pipeline(variant="w8+t8")
    u, t = _requests(n=4, seed=3)[1]
    result = pipe.serve(pipe.request(u, t))
    assert result.query.history.length == 8 and len(result.served) == 35
    return pipe, result


@pytest.fixture(scope="module")
def f32(served):
    """The f32 pipeline (the checkpoint as trained) and the same feed; its cache never saw this viewer."""
    return _pipeline(variant="f32"), served[1]


def _items(pipe, result):
    s = result.served
    return pipe.catalogue.items_of([r if r is not None else p for r, p in zip(s["retweeted_post_id"], s["post_id"])])


def _uncached_probs(pipe, result) -> np.ndarray:
    """The reference: the serving model's dense path, no cache, on one hashed batch whose rows are
    H \\ e for every event e, then H itself -> f64 [L + 1, n, A]."""
    q, items = result.query, _items(pipe, result)
    queries = [dataclasses.replace(q, history=without_event(q.history, e)) for e in range(q.history.length)] + [q]
    rows = [request_batch(pipe.catalogue, x, items, 64) for x in queries]
    batch = jax.tree.map(lambda *a: np.concatenate(a), *rows)
    out = jax.jit(make_score_fn(pipe.scorer.sm, "dense"))(pipe.scorer._params, batch)
    return np.asarray(out.probs_bca, np.float64)[:, : len(items)]


@pytest.mark.parametrize("variant", ["w8+t8", "f32"])
def test_deltas_equal_an_uncached_rescoring_without_the_event(variant, request):
    pipe, result = request.getfixturevalue("served" if variant == "w8+t8" else "f32")
    assert pipe.ranker_model.variant == variant
    calls = pipe.scorer.calls
    attr = pipe.attribute(result)
    # the served pipeline's cache holds H since serving; the f32 one encodes it in the same single call
    assert (attr.prefix, attr.ranker_calls, pipe.scorer.calls - calls) == (
        "cached" if variant == "w8+t8" else "encoded",
        1,
        1,
    )
    probs, _ = leave_one_out(pipe.scorer).probabilities(result.query, _items(pipe, result))
    ref = _uncached_probs(pipe, result)
    assert np.abs(probs - ref).max() <= PROB_TOL
    w = candidate_weights(result.served, result.query, pipe.weights, pipe.rules)
    cols = [pipe.scorer.columns[s] for s in pipe.rules.signals]
    x = np.stack([ref[:, :, c] if c is not None else np.zeros(ref.shape[:2]) for c in cols], axis=-1)
    c_ref = np.einsum("ein,in->ei", x, w)
    bound = 2 * PROB_TOL * np.abs(w).sum(axis=1)[:, None]  # [n, 1]
    assert attr.deltas.shape == (len(result.served), result.query.history.length)
    assert (np.abs(attr.deltas - (c_ref[-1][None] - c_ref[:-1]).T) <= bound).all()
    assert np.abs(attr.deltas).max() > 100 * bound.max()  # the events matter far beyond the tolerance
    if variant == "w8+t8":  # c(post | H) of the same call is the combined score the feed served
        ranked = pipe._rank(result, pipe.weights)
        row = {int(r): i for i, r in enumerate(result.scored["row"])}
        served_c = ranked.combined[[row[int(r)] for r in result.served["row"]]]
        assert (np.abs(attr.combined - served_c) <= bound[:, 0]).all()


def test_an_encoded_prefix_equals_the_cached_one_and_the_cache_is_never_written(served):
    pipe, result = served
    cached = pipe.attribute(result)
    cache = pipe.scorer.cache
    cache.flush()  # H's prefix is gone: the call encodes it, and writes nothing back
    before = cache.summary()
    encoded = pipe.attribute(result)
    assert (cached.prefix, encoded.prefix, encoded.ranker_calls) == ("cached", "encoded", 1)
    assert cache.summary() == before and not cache.entries
    np.testing.assert_allclose(encoded.deltas, cached.deltas, rtol=0, atol=1e-9)
    again = pipe.attribute(result)  # deterministic, bit for bit
    assert np.array_equal(again.deltas, encoded.deltas) and again.top() == encoded.top()


def test_only_real_events_can_be_removed_and_the_rest_is_compacted(served):
    pipe, result = served
    h = result.query.history
    for e in (h.length, len(h.item_idx), -1):
        with pytest.raises(ValueError, match="not a valid history slot"):
            without_event(h, e)
    out = without_event(h, 1)
    assert out.length == h.length - 1 and out.item_idx.shape == h.item_idx.shape
    assert list(out.item_idx[: out.length]) == [h.item_idx[0], *h.item_idx[2 : h.length]]
    assert out.item_idx[-1] == -1 and out.ts[-1] == 0 and not out.actions[-1].any()
    np.testing.assert_array_equal(out.actions[1 : out.length], h.actions[2 : h.length])


def test_an_empty_history_has_no_deltas_and_costs_no_call(served):
    pipe, result = served
    h = result.query.history
    empty = History(0, h.item_idx * 0 - 1, h.author_idx * 0 - 1, h.ts * 0, h.surface * 0, h.actions * 0)
    cold = dataclasses.replace(result, query=dataclasses.replace(result.query, history=empty))
    calls = pipe.scorer.calls
    attr = pipe.attribute(cold)
    assert attr.deltas.shape == (len(result.served), 0) and attr.ranker_calls == 0 and pipe.scorer.calls == calls
    report = pipe.report(cold, attribution=attr)
    assert all(p["attribution"] == [] for p in report["served"])


def test_top_events_order_by_absolute_delta_with_shares():
    deltas = np.array([[0.5, -2.0, 0.0, 2.0, 1.0], [0.0] * 5])
    events = tuple(f"p{i}" for i in range(5))
    actions = (("favorite",), ("reply",), (), ("favorite", "reply"), ("repost",))
    attr = Attribution(("a", "b"), events, actions, np.zeros(2), deltas, 1, "cached")
    first, zero = attr.top()
    assert [(e.position, e.post_id, e.actions, e.delta) for e in first] == [
        (1, "p1", ("reply",), -2.0),  # |−2| ties |2|: the older event first
        (3, "p3", ("favorite", "reply"), 2.0),
        (4, "p4", ("repost",), 1.0),
    ]
    np.testing.assert_allclose([e.share for e in first], [2 / 5.5, 2 / 5.5, 1 / 5.5])
    assert sum(e.share for e in attr.top(5)[0]) == pytest.approx(1.0)
    assert [e.share for e in zero] == [0.0, 0.0, 0.0]
    assert attr.as_report()[0][0] == {
        "position": 1,
        "post_id": "p1",
        "actions": ["reply"],
        "delta": -2.0,
        "share": 2 / 5.5,
    }


def test_the_report_lists_attribution_only_when_given_it(served):
    pipe, result = served
    plain = pipe.report(result)
    attr = pipe.attribute(result, top=2)
    report = pipe.report(result, attribution=attr)
    assert all("attribution" not in p for p in plain["served"])
    assert [len(p["attribution"]) for p in report["served"]] == [min(2, result.query.history.length)] * len(
        result.served
    )
    assert {k: v for k, v in report.items() if k != "served"} == {k: v for k, v in plain.items() if k != "served"}
    text = render_feed(report | {"attribution_cost": {"ms": 1.0, "ranker_calls": 1, "prefix": "cached"}}, timings=True)
    first = report["served"][0]["attribution"][0]
    assert f"{'+'.join(first['actions'])} {first['post_id']} (slot {first['position']})" in text
    assert text.count("because: ") == len(result.served) and "1 ranker call(s), prefix cached" in text
    with pytest.raises(ValueError, match="another feed"):
        pipe.report(result, attribution=dataclasses.replace(attr, post_ids=attr.post_ids[::-1]))
