"""The framework's contract (§3.2-§3.4, §18 item 13): declared order, fail-open by default,
``strict=True`` raising ``PipelineError`` in every row, telemetry that adds up."""

import time

import numpy as np
import pytest

from x_reco.pipeline.framework import CandidatePipeline, selection_order
from x_reco.pipeline.types import Candidates, Component, FeedRequest, FilterResult, PipelineError, Query


def _cands(ids, source):
    return Candidates({"post_id": ids, "retrieval_sources": [(source,)] * len(ids), "created_ts": [1] * len(ids)})


class Source(Component):
    def __init__(self, label, ids, delay=0.0, fail=False):
        self.label, self.ids, self.delay, self.fail = label, ids, delay, fail

    @property
    def name(self):
        return self.label

    def get_candidates(self, query):
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("source down")
        return _cands(self.ids, self.label)


class Text(Component):
    def __init__(self, fail=False, short=False):
        self.fail, self.short = fail, short

    def hydrate(self, query, cands):
        if self.fail:
            raise RuntimeError("hydrator down")
        n = len(cands) - (1 if self.short else 0)
        return {"text": np.array([f"text of {p}" for p in cands["post_id"][:n]], dtype=object)}


class DropOdd(Component):
    def __init__(self, fail=False):
        self.fail = fail

    def filter(self, query, cands):
        if self.fail:
            raise RuntimeError("filter down")
        return FilterResult.from_reasons(
            [{"rule": "odd", "id": p} if int(p[1:]) % 2 else None for p in cands["post_id"]]
        )


class ScoreById(Component):
    def __init__(self, fail=False):
        self.fail = fail

    def score(self, query, cands):
        if self.fail:
            raise RuntimeError("scorer down")
        out = cands.copy()
        out["score"] = np.array([float(p[1:]) for p in cands["post_id"]])
        return out


class Counter(Component):
    def __init__(self, fail=False):
        self.fail, self.calls = fail, 0

    def run(self, query, result):
        self.calls += 1
        if self.fail:
            raise RuntimeError("log down")


QUERY = Query(FeedRequest("synthetic", "u0001", 100))


def _pipeline(**kw):
    parts = dict(
        sources=[Source("thunder", ["p2", "p4", "p1"], delay=0.02), Source("phoenix", ["p6", "p8", "p3"])],
        hydrators=[Text()],
        filters=[DropOdd()],
        scorers=[ScoreById()],
        top_k=2,
        result_size=1,
    )
    parts.update(kw)
    return CandidatePipeline(**parts)


def test_sources_concatenate_in_declared_order_even_when_the_first_is_slower():
    result = _pipeline().run(QUERY)
    assert list(result.retrieved["post_id"]) == ["p2", "p4", "p1", "p6", "p8", "p3"]
    assert list(result.retrieved["row"]) == list(range(6))
    assert list(result.scored["post_id"]) == ["p2", "p4", "p6", "p8"]
    assert list(result.selected["post_id"]) == ["p8", "p6"]  # top 2 by score
    assert list(result.served["post_id"]) == ["p8"]
    assert sorted(result.non_selected["post_id"]) == ["p2", "p4", "p6"]
    assert {r.reason["id"] for r in result.removed} == {"p1", "p3"}


def test_telemetry_adds_up_and_names_every_component():
    result = _pipeline().run(QUERY)
    for row in result.trace:
        assert row.n_in == row.n_kept + row.n_removed
        assert row.latency_us >= 0 and row.offset_us >= 0
    by = {(r.stage, r.component): r for r in result.trace}
    assert by[("filter", "DropOdd")].n_removed == 2
    assert by[("selector", "TopKScoreSelector")].n_kept == 2
    assert by[("truncate", "Truncate")].n_removed == 1


@pytest.mark.parametrize(
    ("kw", "stage"),
    [
        ({"sources": [Source("thunder", ["p2"], fail=True), Source("phoenix", ["p4"])]}, "source"),
        ({"hydrators": [Text(fail=True)]}, "hydrator"),
        ({"hydrators": [Text(short=True)]}, "hydrator"),
        ({"filters": [DropOdd(fail=True)]}, "filter"),
        ({"scorers": [ScoreById(fail=True)]}, "scorer"),
        ({"side_effects": [Counter(fail=True)]}, "side_effect"),
    ],
)
def test_fail_open_by_default_and_strict_raises(kw, stage):
    result = _pipeline(**kw).run(QUERY)  # serves, the error is traced
    errors = [r for r in result.trace if r.error]
    assert [r.stage for r in errors] == [stage]
    with pytest.raises(PipelineError) as info:
        _pipeline(strict=True, **kw).run(QUERY)
    assert info.value.stage == stage


def test_failure_semantics_per_stage():
    down = _pipeline(sources=[Source("thunder", ["p2"], fail=True), Source("phoenix", ["p4"])]).run(QUERY)
    assert list(down.retrieved["post_id"]) == ["p4"]  # the failed source contributes nothing
    skipped = _pipeline(hydrators=[Text(short=True)]).run(QUERY)
    assert set(skipped.retrieved["text"]) == {""}  # a wrong-length result is skipped whole
    restored = _pipeline(filters=[DropOdd(fail=True)]).run(QUERY)
    assert len(restored.scored) == 6  # input restored: all kept, flagged
    assert all("filter_failed_open" in restored.flags[r] for r in range(6))
    unscored = _pipeline(scorers=[ScoreById(fail=True)]).run(QUERY)
    assert np.isnan(unscored.scored["score"]).all()
    assert len(unscored.served) == 1  # None -> -inf in the selector, which may still fill the slate
    assert all("unscored" in unscored.flags[int(r)] for r in unscored.scored["row"])


def test_side_effect_runs_after_the_response_and_cannot_change_it():
    counter = Counter(fail=True)
    result = _pipeline(side_effects=[counter]).run(QUERY)
    assert counter.calls == 1 and list(result.served["post_id"]) == ["p8"]


def test_selection_order_is_stable_with_nan_last():
    order = selection_order(np.array([1.0, np.nan, 3.0, 1.0, -np.inf]))
    assert list(order) == [2, 0, 3, 1, 4]
