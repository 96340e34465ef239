"""The served_feeds tables (candidate-pipeline spec §16): a seeded, ordered sample of test-split requests
(with a page 2 on synthetic), one ledger row per retrieved candidate, balanced stage stats, fixed
columns and dtypes also when nothing was served, and summary numbers that agree with the tables.

The tiny world's five days split 4 / 1 / 0 (train / val / test), so these tests serve its val days
relabelled as test: the sample reads the split, nothing else does.
"""

import functools
import json

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.test_feed import _data, _pipeline, _synthetic
from x_reco.pipeline.rules import RESULT_SIZE
from x_reco.pipeline.served import (
    ITEM_COLUMNS,
    LEDGER_COLUMNS,
    PAGE2_DELAY_S,
    STAGE_COLUMNS,
    TABLES,
    feed_frames,
    feed_summary,
    funnel_png,
    gini,
    removal_funnel,
    sample_requests,
    serve_all,
)


@functools.cache
def served_world():
    """(pipeline, requests, results, frames) on the tiny world with its val days as test days; shared
    with test_audit.py (read only: serving again would change the served log)."""
    raw, events, seqs = _synthetic()
    events = events.assign(split=events["split"].replace({"val": "test"}))
    pipe = _pipeline(_data(raw, events, seqs))
    requests = sample_requests(pipe, num_users=5, requests_per_user=2)
    progress = []
    results = serve_all(pipe, requests, progress=lambda i, n: progress.append((i, n)))
    assert progress == [(i + 1, len(requests)) for i in range(len(requests))]
    return pipe, requests, results, feed_frames(pipe, results)


@pytest.fixture(scope="module")
def world():
    return served_world()


def test_sample_is_seeded_ordered_and_at_the_users_test_request_times(world):
    pipe, requests, _, _ = world
    assert requests == sample_requests(pipe, num_users=5, requests_per_user=2)
    assert requests != sample_requests(pipe, num_users=5, requests_per_user=2, seed=1)
    assert requests == sorted(requests, key=lambda r: (r.user_id, r.t, r.page))
    events = pipe.data.events
    test_users = set(events.loc[events["split"] == "test", "user_id"])
    users = sorted({r.user_id for r in requests})
    assert len(users) == 5 and set(users) <= test_users
    for user in users:
        top = [r for r in requests if r.user_id == user and r.page == 1]
        assert [r.t for r in top] == [pipe.state.request_time(user, k) for k in range(len(top))]
        assert 1 <= len(top) <= 2
        bottom = [r.t for r in requests if r.user_id == user and r.page == 2]
        assert bottom == [r.t + PAGE2_DELAY_S for r in top]  # synthetic: a page 2 after each page 1
    no_page2 = sample_requests(pipe, num_users=5, requests_per_user=2, page2=False)
    assert no_page2 == [r for r in requests if r.page == 1]
    everyone = sample_requests(pipe, num_users=10_000, requests_per_user=1, page2=False)
    assert {r.user_id for r in everyone} == test_users


def test_one_ledger_row_per_retrieved_candidate(world):
    _, _, results, frames = world
    ledger, items = frames["feed_ledger"], frames["served_feed_items"]
    assert len(ledger) == sum(len(r.retrieved) for r in results)
    for result in results:
        rid = result.query.request.request_id
        mine = ledger[ledger["request_id"] == rid]
        assert mine["row"].tolist() == list(range(len(result.retrieved)))
        assert mine["post_id"].tolist() == list(result.retrieved["post_id"])
        served = mine[mine["state"] == "served"].sort_values("position")
        assert served["post_id"].tolist() == list(result.served["post_id"])
        assert items.loc[items["request_id"] == rid, "post_id"].tolist() == list(result.served["post_id"])
    removed = ledger[ledger["state"].isin(["removed", "dropped_post_selection"])]
    assert (removed["filter"] != "").all() and all(json.loads(r)["rule"] for r in removed["reason"])
    assert (ledger.loc[ledger["state"] == "not_selected", "rank"] >= 0).all()


def test_stage_stats_balance_and_the_funnel_equals_the_ledger(world):
    _, results, frames = world[1:]
    stats, ledger = frames["feed_stage_stats"], frames["feed_ledger"]
    assert len(stats) == sum(len(r.trace) for r in results)
    assert (stats["n_in"] == stats["n_kept"] + stats["n_removed"]).all()
    funnel = removal_funnel(frames).set_index("filter")["removed"]
    gone = ledger[ledger["state"].isin(["removed", "dropped_post_selection"])]
    assert gone.groupby("filter").size().reindex(funnel.index, fill_value=0).to_dict() == funnel.to_dict()
    assert funnel.sum() > 0 and funnel.index[0] == "DropDuplicates" and funnel.index[-1] == "DedupConversation"


def test_columns_and_dtypes_are_fixed_also_without_results(world):
    pipe, _, _, frames = world
    empty = feed_frames(pipe, [])
    for name, columns in TABLES.items():
        assert list(frames[name].columns) == list(columns) == list(empty[name].columns)
        assert frames[name].dtypes.astype(str).to_dict() == columns == empty[name].dtypes.astype(str).to_dict()
        assert len(empty[name]) == 0
    assert (ITEM_COLUMNS["t"], LEDGER_COLUMNS["row"], STAGE_COLUMNS["enabled"]) == ("int64", "int64", "bool")
    summary = feed_summary(empty)
    assert summary["requests"] == 0 and summary["mean_feed_length"] == 0.0 and summary["weight_set"] == ""
    assert funnel_png(empty)[:8] == b"\x89PNG\r\n\x1a\n"


def test_items_are_the_cli_report_in_request_order_and_rebuild_identically(world):
    pipe, _, results, frames = world
    items = frames["served_feed_items"]
    keys = list(zip(items["user_id"], items["t"], items["page"], items["position"], strict=True))
    assert keys == sorted(keys) and items["page"].isin([1, 2]).all()
    result = max(results, key=lambda r: len(r.served))
    report = pipe.report(result)
    rows = items[items["request_id"] == report["request_id"]]
    assert [json.loads(c) for c in rows["top_contributions"]] == [p["top_contributions"] for p in report["served"]]
    np.testing.assert_array_equal(rows["score"], [p["score"] for p in report["served"]])
    assert rows["in_network"].tolist() == [p["network"] == "IN" for p in report["served"]]
    assert set(rows["weight_set"]) == {report["weights"]} and set(rows["variant"]) == {report["ranker_variant"]}
    assert set(rows["ranker"]) == {"k0"} and set(rows["retriever"]) == {"r0"}
    again = feed_frames(pipe, results[::-1])  # any input order gives the same tables
    for name in TABLES:
        timing = ["latency_us", "offset_us"] if name == "feed_stage_stats" else []
        pd.testing.assert_frame_equal(again[name].drop(columns=timing), frames[name].drop(columns=timing))


def test_summary_agrees_with_the_tables(world):
    frames = world[3]
    items, summary = frames["served_feed_items"], feed_summary(frames)
    lengths = (
        items.groupby("request_id").size().reindex(frames["feed_stage_stats"]["request_id"].unique(), fill_value=0)
    )
    assert summary["requests"] == len(world[1]) == len(lengths)
    assert summary["mean_feed_length"] == pytest.approx(lengths.mean())
    assert summary["full_feed_share"] == pytest.approx((lengths == RESULT_SIZE).mean())
    assert summary["in_network_share"] == pytest.approx(items["in_network"].mean())
    assert 0 < summary["in_network_share"] < 1
    assert 0 < summary["author_gini"] < 1
    latency = summary["stage_latency_ms"].set_index("stage")
    assert {"source", "filter", "scorer", "total"} <= set(latency.index)
    assert (latency["p99_ms"] >= latency["p50_ms"]).all()
    assert latency.loc["total", "p50_ms"] > latency.loc["selector", "p50_ms"] > 0
    assert summary["rules"] == "aug-2026" and summary["weight_set"] == "sync-2026-09-24@2026-09-24"
    assert funnel_png(frames)[:8] == b"\x89PNG\r\n\x1a\n"


def test_gini():
    assert gini([]) == 0.0 and gini([0, 0]) == 0.0 and gini([5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 9]) == pytest.approx(3 / 4)  # one holder of n: (n - 1) / n
    assert gini([1, 3]) == pytest.approx(0.25) == gini([3, 1])  # mean |x_i - x_j| / (2 mean)
    with pytest.raises(ValueError, match="non-negative"):
        gini([-1, 2])
