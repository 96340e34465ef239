"""The tables of the ``served_feeds`` asset (candidate-pipeline spec §16): a seeded sample of requests,
served in order, flattened into ``served_feed_items``, ``feed_ledger`` and ``feed_stage_stats``, and
the summary numbers and funnel plot of its metadata.

Every table has a fixed column order and dtypes (``*_COLUMNS``), also when no feed was served, and
rows in request order (user, t, page) then position / retrieved row / trace step. Everything but
``feed_stage_stats``' latencies reproduces bit for bit from the sample's seed.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.plotting import figure_png, subplots
from x_reco.pipeline.explain import fate_ledger, gini
from x_reco.pipeline.feed import FeedPipeline
from x_reco.pipeline.framework import FeedResult
from x_reco.pipeline.rules import RESULT_SIZE
from x_reco.pipeline.types import FeedRequest

PAGE2_DELAY_S = 60  # §16: a bottom request follows each top request after a minute
FILTER_STAGES = ("filter", "post_selection_filter")

ITEM_COLUMNS: dict[str, str] = {
    "request_id": "object",
    "user_id": "object",
    "t": "int64",
    "page": "int64",
    "position": "int64",
    "post_id": "object",
    "author_id": "object",
    "in_network": "bool",
    "retrieval_sources": "object",  # '+'-joined source names
    "score": "float64",
    "weighted_score": "float64",
    "diversity_k": "int64",
    "diversity_multiplier": "float64",
    "oon_multiplier": "float64",
    "cold_start_boosted": "bool",
    "weight_set": "object",  # repr of the WeightSet: name@sync_date
    "rules": "object",
    "ranker": "object",  # the checkpoints' param_version
    "retriever": "object",
    "variant": "object",  # the ranker's serving variant (x_reco.inference.quantize)
    "top_contributions": "object",  # JSON [[signal, w·p], ...], the top 3 by |w·p| (§15.1)
    # JSON of the top-3 history events behind the post (§15.5: position, post_id, actions, delta,
    # share); "" when the feed was served without attribution
    "attribution": "object",
}
LEDGER_COLUMNS: dict[str, str] = {
    "request_id": "object",
    "user_id": "object",
    "t": "int64",
    "page": "int64",
    "row": "int64",  # position in the request's retrieved list
    "post_id": "object",
    "state": "object",  # explain.TERMINAL_STATES
    "stage": "object",  # where the candidate stopped ("" when served)
    "filter": "object",  # the removing filter ("" unless removed or dropped post-selection)
    "reason": "object",  # JSON of the filter's reason ("" when none)
    "rank": "int64",  # pool rank of not_selected / truncated candidates, else -1
    "position": "int64",  # served position, else -1
    "gap_to_cutoff": "float64",  # not_selected: the selector's last kept score minus this one
    "flags": "object",  # '+'-joined (unscored, filter_failed_open, ...)
}
STAGE_COLUMNS: dict[str, str] = {
    "request_id": "object",
    "step": "int64",  # position in the request's trace
    "stage": "object",
    "component": "object",
    "enabled": "bool",
    "n_in": "int64",
    "n_kept": "int64",
    "n_removed": "int64",
    "error": "object",  # "" when none
    "latency_us": "float64",
    "offset_us": "float64",
}
TABLES = {"served_feed_items": ITEM_COLUMNS, "feed_ledger": LEDGER_COLUMNS, "feed_stage_stats": STAGE_COLUMNS}
_STOP_STAGE = {"dropped_post_selection": "post_selection_filter", "not_selected": "selector", "truncated": "truncate"}


def sample_requests(
    pipeline: FeedPipeline,
    num_users: int = 100,
    requests_per_user: int = 3,
    seed: int = 0,
    page2: bool | None = None,
) -> list[FeedRequest]:
    """The §16 sample: ``num_users`` users drawn (``default_rng([seed, crc32(partition)])``) from those
    with test-split requests, each at their first ``requests_per_user`` test request times
    (``state.request_time``, as ``x-reco feed --visit K``), each followed by a page 2 at t + 60 s when
    ``page2`` (default: on partitions with the social tables).

    Order: by user, then t, then page. ``serve_all`` serves in this order, so every request finds the
    user's earlier requests in the served log (§12), as a user scrolling through time would.
    """
    if num_users < 0 or requests_per_user < 0:
        raise ValueError(f"num_users and requests_per_user must be >= 0, got {num_users}, {requests_per_user}")
    page2 = pipeline.social if page2 is None else page2
    events = pipeline.data.events
    users = np.unique(events.loc[events["split"].astype(str) == "test", "user_id"].astype(str).to_numpy())
    rng = np.random.default_rng([seed, zlib.crc32(pipeline.partition.encode())])
    chosen = np.sort(users[rng.choice(len(users), size=min(num_users, len(users)), replace=False)])
    out = []
    for user in chosen:
        for t in _test_times(pipeline, str(user), requests_per_user):
            out.append(pipeline.request(str(user), t))
            if page2:
                out.append(pipeline.request(str(user), t + PAGE2_DELAY_S, page=2))
    return sorted(out, key=lambda r: (r.user_id, r.t, r.page))


def _test_times(pipeline: FeedPipeline, user: str, k: int) -> list[int]:
    """The user's first ``k`` test-split request times (fewer if they have fewer)."""
    times = []
    for visit in range(k):
        try:
            times.append(pipeline.state.request_time(user, visit))
        except ValueError:  # no such visit: the user has fewer test requests
            break
    return times


def serve_all(
    pipeline: FeedPipeline, requests: Sequence[FeedRequest], progress: Callable[[int, int], None] | None = None
) -> list[FeedResult]:
    """Serve ``requests`` in order (the served log sees each earlier one); ``progress(done, total)``
    after each (Dagster logs an ETA from it)."""
    results = []
    for i, request in enumerate(requests):
        results.append(pipeline.serve(request))
        if progress is not None:
            progress(i + 1, len(requests))
    return results


def _json(value: Any) -> str:
    """Sorted-key JSON with numpy scalars and tuples as plain values (stable across runs)."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        raise TypeError(f"not JSON serializable: {type(v).__name__}")

    return json.dumps(value, sort_keys=True, default=plain)


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """Rows as a frame with exactly ``columns`` in order and their dtypes (also for no rows)."""
    data = {c: pd.Series([r[c] for r in rows], dtype=object) for c in columns}
    return pd.DataFrame(data, columns=list(columns)).astype(columns)


def _item_rows(pipeline: FeedPipeline, result: FeedResult, attribution=None) -> list[dict[str, Any]]:
    report = pipeline.report(result, attribution=attribution)  # the CLI's view: one definition of every field
    base = {k: report[k] for k in ("request_id", "user_id", "t", "page", "rules")}
    base |= {"weight_set": report["weights"], "variant": report["ranker_variant"]}
    base |= {k: pipeline.versions.get(k, "") for k in ("ranker", "retriever")}
    rows = []
    for p in report["served"]:
        rows.append(
            base
            | {k: p[k] for k in ("position", "post_id", "author_id", "diversity_k", "cold_start_boosted")}
            | {k: p[k] for k in ("diversity_multiplier", "oon_multiplier")}
            | {
                "in_network": p["network"] == "IN",
                "retrieval_sources": "+".join(p["sources"]),
                "score": _float(p["score"]),
                "weighted_score": _float(p["weighted"]),
                "top_contributions": _json(p["top_contributions"]),
                "attribution": _json(p["attribution"]) if "attribution" in p else "",
            }
        )
    return rows


def _float(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _ledger_rows(result: FeedResult) -> list[dict[str, Any]]:
    q = result.query
    base = {"request_id": q.request.request_id, "user_id": q.user_id, "t": q.t, "page": q.request.page}
    rows = []
    for row, e in sorted(fate_ledger(result).items()):
        rows.append(
            base
            | {
                "row": row,
                "post_id": e["post_id"],
                "state": e["state"],
                "stage": e.get("stage") or _STOP_STAGE.get(e["state"], ""),
                "filter": e.get("filter", ""),
                "reason": _json(e["reason"]) if e.get("reason") is not None else "",
                "rank": e.get("rank", -1),
                "position": e.get("position", -1),
                "gap_to_cutoff": _float(e.get("gap_to_cutoff")),
                "flags": "+".join(e["flags"]),
            }
        )
    return rows


def _stage_rows(result: FeedResult) -> list[dict[str, Any]]:
    rid = result.query.request.request_id
    return [
        {"request_id": rid, "step": i, **{k: getattr(s, k) for k in STAGE_COLUMNS if k not in ("request_id", "step")}}
        | {"error": s.error or ""}
        for i, s in enumerate(result.trace)
    ]


def feed_frames(
    pipeline: FeedPipeline, results: Sequence[FeedResult], attributions: Mapping[str, Any] | None = None
) -> dict[str, pd.DataFrame]:
    """``served_feed_items`` (one row per served post), ``feed_ledger`` (one row per retrieved
    candidate: its terminal state, §15.1) and ``feed_stage_stats`` (one row per ``StageStats``, §3.4).

    Requests are ordered by (user, t, page) whatever the order of ``results``. ``attributions`` maps a
    request id to its ``FeedPipeline.attribute`` result (§15.5), written to the ``attribution`` column.
    """
    ordered = sorted(results, key=lambda r: (r.query.user_id, r.query.t, r.query.request.page))
    items, ledger, stages = [], [], []
    for result in ordered:
        items += _item_rows(pipeline, result, (attributions or {}).get(result.query.request.request_id))
        ledger += _ledger_rows(result)
        stages += _stage_rows(result)
    return {
        "served_feed_items": _frame(items, ITEM_COLUMNS),
        "feed_ledger": _frame(ledger, LEDGER_COLUMNS),
        "feed_stage_stats": _frame(stages, STAGE_COLUMNS),
    }


def removal_funnel(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Removed candidates per filter in pipeline order (pre-scoring, then post-selection), summed
    over requests from the stage stats: columns ``stage, filter, removed, per_request``."""
    stats = frames["feed_stage_stats"]
    f = stats[stats["stage"].isin(FILTER_STAGES)]
    n = max(stats["request_id"].nunique(), 1)
    out = f.groupby(["stage", "component"], sort=False)["n_removed"].sum().reset_index()
    out = out.rename(columns={"component": "filter", "n_removed": "removed"})
    out["stage"] = pd.Categorical(out["stage"], FILTER_STAGES)
    out = out.sort_values("stage", kind="stable").reset_index(drop=True)
    out["stage"] = out["stage"].astype(str)
    out["per_request"] = out["removed"] / n
    return out.astype({"stage": object, "filter": object, "removed": "int64", "per_request": "float64"})


def stage_latency(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """p50 / p99 wall time (ms) per stage over requests, and the whole request (``total``): a stage's
    time is from its first enabled component's start to its last one's end (components of one stage
    may run concurrently)."""
    s = frames["feed_stage_stats"]
    s = s[s["enabled"]].assign(end_us=s["offset_us"] + s["latency_us"])
    per = s.groupby(["request_id", "stage"], sort=False).agg(start=("offset_us", "min"), end=("end_us", "max"))
    per = per.reset_index().assign(ms=lambda d: (d["end"] - d["start"]) / 1e3)
    total = s.groupby("request_id")["end_us"].max().rename("ms").reset_index().assign(stage="total")
    total["ms"] /= 1e3
    rows = []
    for stage, g in pd.concat([per[["stage", "ms"]], total[["stage", "ms"]]]).groupby("stage", sort=False):
        ms = g["ms"].to_numpy()
        rows.append({"stage": stage, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))})
    return pd.DataFrame(rows, columns=["stage", "p50_ms", "p99_ms"])


def feed_summary(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Asset metadata (§16): requests, mean feed length, share of full feeds (``RESULT_SIZE``),
    in-network share, author Gini of exposure, the removal funnel and per-stage latency tables, and
    the versions served (empty strings when nothing was served)."""
    items, stats = frames["served_feed_items"], frames["feed_stage_stats"]
    requests = pd.Index(stats["request_id"].unique())
    lengths = items.groupby("request_id").size().reindex(requests, fill_value=0)
    versions = {
        k: ",".join(sorted(items[k].unique())) for k in ("weight_set", "rules", "ranker", "retriever", "variant")
    }
    return {
        "requests": int(len(requests)),
        "served_posts": int(len(items)),
        "mean_feed_length": float(lengths.mean()) if len(lengths) else 0.0,
        "full_feed_share": float((lengths == RESULT_SIZE).mean()) if len(lengths) else 0.0,
        "in_network_share": float(items["in_network"].mean()) if len(items) else 0.0,
        "author_gini": gini(items["author_id"].value_counts().to_numpy()),
        "removal_funnel": removal_funnel(frames),
        "stage_latency_ms": stage_latency(frames),
        **versions,
    }


def funnel_png(frames: dict[str, pd.DataFrame]) -> bytes:
    """Horizontal bars: candidates removed per filter, pipeline order top to bottom."""
    funnel = removal_funnel(frames)
    fig, ax = subplots(figsize=(6.4, 1.6 + 0.3 * len(funnel)))
    y = np.arange(len(funnel))
    ax.barh(y, funnel["removed"].to_numpy(), color=np.where(funnel["stage"] == "filter", "C0", "C1"))
    ax.set_yticks(y, funnel["filter"].tolist(), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"candidates removed ({frames['feed_stage_stats']['request_id'].nunique()} requests)")
    ax.set_title("removal funnel (blue: pre-scoring, orange: post-selection)")
    return figure_png(fig)
