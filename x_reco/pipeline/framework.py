"""The candidate-pipeline framework (spec §3.2-§3.4): stages, their order, errors and telemetry.

``CandidatePipeline.run(query)`` executes the ten stages of §3.2 over one request. Query hydrators,
sources and hydrators run concurrently on a thread pool and merge in declared order; filters and
scorers run in sequence. Failures follow upstream's fail-open semantics (§3.3) unless
``strict=True``, which raises ``PipelineError`` instead. Every component's work is recorded as a
``StageStats`` row (§3.4); the ``FeedResult`` carries what explanations need.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from x_reco.pipeline.rules import RESULT_SIZE, TOP_K_CANDIDATES_TO_SELECT
from x_reco.pipeline.types import Candidates, Component, FilterResult, PipelineError, Query

STAGES = (
    "query_hydrator",
    "source",
    "hydrator",
    "filter",
    "scorer",
    "selector",
    "post_selection_hydrator",
    "post_selection_filter",
    "truncate",
    "side_effect",
)


@dataclasses.dataclass
class StageStats:
    """One component's telemetry row (A ``StageStats``, O ``under_the_hood.rs``)."""

    stage: str
    component: str
    enabled: bool
    n_in: int
    n_kept: int
    n_removed: int
    latency_us: float
    offset_us: float  # start time relative to the request's start
    error: str | None = None

    @property
    def filter_rate(self) -> float:
        return self.n_removed / self.n_in if self.n_in else 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"filter_rate": self.filter_rate}


@dataclasses.dataclass
class Removal:
    """A candidate a filter removed: its row in ``retrieved``, where, and why."""

    row: int
    stage: str
    component: str
    reason: dict[str, Any]


@dataclasses.dataclass
class FeedResult:
    """Everything one request produced (§3.4)."""

    query: Query
    retrieved: Candidates  # sources' output, concatenated, with ``row`` = position
    removed: list[Removal]
    scored: Candidates  # the scorers' input after the pre-scoring filters, with scores
    selected: Candidates  # after post-selection filters, before truncation
    non_selected: Candidates  # not in the top K, plus the truncated tail
    served: Candidates
    trace: list[StageStats]
    flags: dict[int, set[str]]  # row -> flags (unscored, filter_failed_open, ...)
    debug: dict[str, Any] = dataclasses.field(default_factory=dict)  # per-source diagnostics (why-not)

    @property
    def served_ids(self) -> list[str]:
        return list(self.served["post_id"])


class _Clock:
    def __init__(self):
        self.start = time.perf_counter()

    def now_us(self) -> float:
        return (time.perf_counter() - self.start) * 1e6


def _timed(fn: Callable, *args) -> tuple[Any, BaseException | None, float, float]:
    t0 = time.perf_counter()
    try:
        out, err = fn(*args), None
    except Exception as exc:  # noqa: BLE001 - fail-open is the contract; strict mode re-raises
        out, err = None, exc
    return out, err, t0, (time.perf_counter() - t0) * 1e6


class CandidatePipeline:
    """The stages of one pipeline configuration (§3.2), run by ``run(query)``.

    Args:
      query_hydrators: each ``hydrate(query) -> {field: value}``, run concurrently; then
        ``dependent_query_hydrators`` the same way on the merged query.
      sources: ``get_candidates(query) -> Candidates``, concatenated in this order.
      hydrators, post_selection_hydrators: ``hydrate(query, cands) -> {column: array}``.
      filters, post_selection_filters: ``filter(query, cands) -> FilterResult``.
      scorers: ``score(query, cands) -> Candidates`` (same length and order).
      side_effects: ``run(query, result)``; errors are logged, the response is unchanged.
      strict: raise ``PipelineError`` where upstream fails open.
    """

    def __init__(
        self,
        *,
        query_hydrators: Sequence[Component] = (),
        dependent_query_hydrators: Sequence[Component] = (),
        sources: Sequence[Component] = (),
        hydrators: Sequence[Component] = (),
        filters: Sequence[Component] = (),
        scorers: Sequence[Component] = (),
        post_selection_hydrators: Sequence[Component] = (),
        post_selection_filters: Sequence[Component] = (),
        side_effects: Sequence[Component] = (),
        top_k: int = TOP_K_CANDIDATES_TO_SELECT,
        result_size: int = RESULT_SIZE,
        strict: bool = False,
        max_workers: int = 4,
    ):
        self.query_hydrators = tuple(query_hydrators)
        self.dependent_query_hydrators = tuple(dependent_query_hydrators)
        self.sources = tuple(sources)
        self.hydrators = tuple(hydrators)
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.post_selection_hydrators = tuple(post_selection_hydrators)
        self.post_selection_filters = tuple(post_selection_filters)
        self.side_effects = tuple(side_effects)
        self.top_k, self.result_size, self.strict = top_k, result_size, strict
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="x-reco-feed")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- stage helpers -------------------------------------------------------------------------

    def _parallel(self, components, call) -> list[tuple[Component, bool, Any, BaseException | None, float, float]]:
        """Run ``call(c)`` for every enabled component concurrently; results in declared order."""
        futures = []
        for c in components:
            futures.append((c, self._pool.submit(_timed, call, c)))
        out = []
        for c, fut in futures:
            value, err, t0, us = fut.result()
            out.append((c, value, err, t0, us))
        return out

    def _fail(self, stage: str, component: Component, err: BaseException) -> str:
        if self.strict:
            raise PipelineError(stage, component.name, err) from err
        return f"{type(err).__name__}: {err}"

    def _stat(self, trace, clock, stage, comp, enabled, n_in, n_kept, t0, us, error=None):
        offset = (t0 - clock.start) * 1e6
        trace.append(StageStats(stage, comp.name, enabled, n_in, n_kept, n_in - n_kept, us, offset, error))

    # -- the run -------------------------------------------------------------------------------

    def run(self, query: Query) -> FeedResult:
        clock, trace = _Clock(), []
        flags: dict[int, set[str]] = {}
        query = self._hydrate_query(query, self.query_hydrators, clock, trace)
        query = self._hydrate_query(query, self.dependent_query_hydrators, clock, trace)
        retrieved = self._retrieve(query, clock, trace)
        cands = self._hydrate(query, retrieved, self.hydrators, "hydrator", clock, trace)
        cands, removed = self._filter(query, cands, self.filters, "filter", clock, trace, flags)
        result = self._finish(query, cands, self.scorers, clock, trace, flags)
        result.retrieved, result.removed = retrieved, removed + result.removed
        scored = result.scored
        no_probs = np.isnan(scored.probs).all(axis=1) if scored.probs.shape[1] else np.ones(len(scored), bool)
        for row in np.asarray(scored["row"])[~np.isfinite(scored["score"]) | no_probs]:
            flags.setdefault(int(row), set()).add("unscored")
        for comp in self.sources:
            debug_for = getattr(comp, "debug_for", None)
            diag = debug_for(query.request.request_id) if debug_for else None
            if diag is not None:
                result.debug[comp.name] = diag
        for effect in self.side_effects:
            if not effect.enabled(query):
                continue
            _, err, t0, us = _timed(effect.run, query, result)
            error = None if err is None else self._fail("side_effect", effect, err)
            n = len(result.served)
            self._stat(trace, clock, "side_effect", effect, True, n, n, t0, us, error)
        return result

    def _finish(self, query, cands, scorers, clock, trace, flags) -> FeedResult:
        """Stages 5-9 over the filtered ``cands``: score, select, post-selection hydrate and filter, truncate."""
        scored = self._score(query, cands, scorers, clock, trace)
        selected, non_selected = self._select(scored, clock, trace)
        cutoff = float(selected["score"][-1]) if len(selected) else float("nan")  # the bar the rest missed
        selected = self._hydrate(
            query, selected, self.post_selection_hydrators, "post_selection_hydrator", clock, trace
        )
        selected, removed = self._filter(
            query, selected, self.post_selection_filters, "post_selection_filter", clock, trace, flags
        )
        t0 = time.perf_counter()
        served = selected.take(np.arange(min(self.result_size, len(selected))))
        tail = selected.take(np.arange(len(served), len(selected)))
        us = (time.perf_counter() - t0) * 1e6
        trace.append(
            StageStats(
                "truncate", "Truncate", True, len(selected), len(served), len(tail), us, (t0 - clock.start) * 1e6
            )
        )
        result = FeedResult(
            query=query,
            retrieved=cands,
            removed=removed,
            scored=scored,
            selected=selected,
            non_selected=Candidates.concat([non_selected, tail]) if len(tail) else non_selected,
            served=served,
            trace=trace,
            flags=flags,
        )
        result.debug["truncated_rows"] = [int(r) for r in tail["row"]]
        result.debug["cutoff_score"] = cutoff
        return result

    def rerank(self, query: Query, cands: Candidates, scorers: Sequence[Component]) -> FeedResult:
        """Stages 5-9 again over already filtered (and Phoenix-scored) candidates with other scorers:
        what counterfactual weight sets reuse, so they cost no model call (§15.2)."""
        return self._finish(query, cands, scorers, _Clock(), [], {})

    def _hydrate_query(self, query: Query, components, clock, trace) -> Query:
        enabled = [c for c in components if c.enabled(query)]
        for c in components:
            if c not in enabled:
                trace.append(StageStats("query_hydrator", c.name, False, 0, 0, 0, 0.0, clock.now_us()))
        updates = {}
        for comp, value, err, t0, us in self._parallel(enabled, lambda c: c.hydrate(query)):
            error = None
            if err is not None:
                error = self._fail("query_hydrator", comp, err)
            else:
                updates.update(value)
            self._stat(trace, clock, "query_hydrator", comp, True, 0, 0, t0, us, error)
        return dataclasses.replace(query, **updates) if updates else query

    def _retrieve(self, query: Query, clock, trace) -> Candidates:
        enabled = [c for c in self.sources if c.enabled(query)]
        parts = []
        for c in self.sources:
            if c not in enabled:
                trace.append(StageStats("source", c.name, False, 0, 0, 0, 0.0, clock.now_us()))
        for comp, value, err, t0, us in self._parallel(enabled, lambda c: c.get_candidates(query)):
            error = None
            if err is not None:
                error = self._fail("source", comp, err)
            else:
                parts.append(value)
            n = 0 if value is None else len(value)
            self._stat(trace, clock, "source", comp, True, n, n, t0, us, error)
        retrieved = Candidates.concat(parts) if parts else Candidates()
        retrieved["row"] = np.arange(len(retrieved))
        return retrieved

    def _hydrate(self, query, cands: Candidates, components, stage, clock, trace) -> Candidates:
        enabled = [c for c in components if c.enabled(query)]
        out = cands.copy()
        for c in components:
            if c not in enabled:
                trace.append(StageStats(stage, c.name, False, len(cands), len(cands), 0, 0.0, clock.now_us()))
        for comp, value, err, t0, us in self._parallel(enabled, lambda c: c.hydrate(query, cands)):
            error = None
            if err is None:
                bad = [k for k, v in value.items() if len(v) != len(cands)]
                if bad:
                    err = ValueError(f"hydrated columns {bad} do not have {len(cands)} rows")
            if err is not None:
                error = self._fail(stage, comp, err)  # whole result skipped
            else:
                for k, v in value.items():
                    out[k] = v
            self._stat(trace, clock, stage, comp, True, len(cands), len(cands), t0, us, error)
        return out

    def _filter(self, query, cands: Candidates, components, stage, clock, trace, flags):
        removed: list[Removal] = []
        for comp in components:
            if not comp.enabled(query):
                trace.append(StageStats(stage, comp.name, False, len(cands), len(cands), 0, 0.0, clock.now_us()))
                continue
            backup = cands.copy()
            result, err, t0, us = _timed(comp.filter, query, cands)
            error = None
            if err is None and (not isinstance(result, FilterResult) or len(result.keep) != len(cands)):
                err = ValueError(f"filter returned {type(result).__name__} of the wrong length")
            if err is not None:
                error = self._fail(stage, comp, err)
                cands = backup  # input restored, all kept, flagged
                for row in cands["row"]:
                    flags.setdefault(int(row), set()).add("filter_failed_open")
                self._stat(trace, clock, stage, comp, True, len(cands), len(cands), t0, us, error)
                continue
            keep = np.asarray(result.keep, bool)
            for i in np.flatnonzero(~keep):
                reason = result.reasons[i] or {"rule": comp.name}
                removed.append(Removal(int(cands["row"][i]), stage, comp.name, dict(reason)))
            self._stat(trace, clock, stage, comp, True, len(cands), int(keep.sum()), t0, us, None)
            cands = cands.take(keep)
        return cands, removed

    def _score(self, query, cands: Candidates, scorers, clock, trace) -> Candidates:
        for comp in scorers:
            if not comp.enabled(query):
                trace.append(StageStats("scorer", comp.name, False, len(cands), len(cands), 0, 0.0, clock.now_us()))
                continue
            out, err, t0, us = _timed(comp.score, query, cands)
            error = None
            if err is None and (not isinstance(out, Candidates) or len(out) != len(cands)):
                err = ValueError("scorer changed the number of candidates")
            if err is not None:
                error = self._fail("scorer", comp, err)  # scores stay None
            else:
                cands = out
            self._stat(trace, clock, "scorer", comp, True, len(cands), len(cands), t0, us, error)
        return cands

    def _select(self, cands: Candidates, clock, trace) -> tuple[Candidates, Candidates]:
        t0 = time.perf_counter()
        order = selection_order(cands["score"])
        cands = cands.take(order)
        cands["pool_rank"] = np.arange(len(cands))
        k = min(self.top_k, len(cands))
        selected, rest = cands.take(np.arange(k)), cands.take(np.arange(k, len(cands)))
        us = (time.perf_counter() - t0) * 1e6
        trace.append(StageStats("selector", "TopKScoreSelector", True, len(cands), k, len(rest), us, 0.0))
        trace[-1].offset_us = (t0 - clock.start) * 1e6
        return selected, rest


def selection_order(score: np.ndarray) -> np.ndarray:
    """Stable sort by score desc with None/NaN as -inf (A ``selector.rs``)."""
    key = np.where(np.isfinite(score), score, -np.inf)
    return np.argsort(-key, kind="stable")
