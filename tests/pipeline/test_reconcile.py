"""§18 item 10: the explanations of served feeds reconcile with what was served, and a feed whose
served score, weighted score or stage counts were altered after the fact does not."""

import dataclasses

import numpy as np
import pytest

from tests.pipeline.test_feed import _pipeline, _requests
from x_reco.pipeline.framework import StageStats
from x_reco.pipeline.reconcile import reconcile


@pytest.fixture(scope="module", params=[0.0, 0.5], ids=["ranker", "blend"])
def served(request):
    """Feeds in the ranker's own order, and blended with the retriever's score (``retrieval_weight``)."""
    pipe = _pipeline(variant="f32", prefix_cache_slots=0, retrieval_weight=request.param)
    results = [pipe.serve(pipe.request(u, t)) for u, t in _requests(6)]
    return pipe, [r for r in results if len(r.served)]


def test_served_feeds_reconcile(served):
    pipe, results = served
    assert results
    for result in results:
        problems, counts = reconcile(pipe, result)
        assert problems == [], problems
        assert counts["served"] == len(result.served) and counts["retrieved"] == len(result.retrieved)


def _altered(result, column: str, relative: float):
    """``result`` with position 0's ``column`` moved by ``relative`` of itself, and by at least 1e-8
    (above the 1e-9 absolute tolerance of a small weighted score, e.g. a negative combined score's offset)."""
    served = result.served.copy()
    values = np.asarray(served[column], np.float64).copy()
    values[0] += max(abs(values[0]) * relative, 1e-8)
    served[column] = values
    return dataclasses.replace(result, served=served)


@pytest.mark.parametrize("column", ["score", "weighted_score", "oon_multiplier"])
def test_an_altered_served_column_is_caught(served, column):
    pipe, results = served
    problems, _ = reconcile(pipe, _altered(results[0], column, 1e-6))
    assert problems and "position 0" in problems[0]


def test_an_uncounted_candidate_is_caught(served):
    pipe, results = served
    result = results[0]
    stage = next(s for s in result.trace if s.enabled and s.n_in)
    bad = dataclasses.replace(stage, n_kept=stage.n_kept - 1)
    trace = [bad if s is stage else s for s in result.trace]
    assert isinstance(bad, StageStats)
    problems, _ = reconcile(pipe, dataclasses.replace(result, trace=trace))
    assert any("n_in" in p for p in problems)


def test_the_feed_says_which_order_it_serves(served):
    """The rendered feed names the retrieval weight and shows each post's u·v when it blends them in."""
    from x_reco.pipeline.render import render_feed

    pipe, results = served
    report = pipe.report(results[0])
    text = render_feed(report)
    assert report["retrieval_weight"] == pipe.retrieval_weight
    if pipe.retrieval_weight:
        assert "retrieval weight 0.50" in text and " u·v" in text
        assert all(np.isfinite(p["two_tower"]) for p in report["served"])
    else:
        assert "retrieval weight" not in text and " u·v" not in text
