"""Closed-loop replay (§15.4, §18 item 12, second half): with the world's own composer the replay
reproduces the world's impressions byte for byte, and its ReplayState then answers every per-viewer
read exactly as the partition's tables do; a 3-day replay on tiny is deterministic per seed; the loop
closes (the user sees the first feed_length served posts, page 2 follows, blocks, seen posts and
follows of earlier visits reach the next request); the pipeline object itself is left untouched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tests.data.test_synthetic_social import PINNED, table_digest
from tests.pipeline.test_feed import _pipeline, _synthetic
from x_reco.common.actions import ACTIONS
from x_reco.data.synthetic import WorldConfig
from x_reco.data.synthetic.config import CLOCK_START_TS
from x_reco.data.synthetic.entities import DAY_S
from x_reco.data.synthetic.world import _follows_table, _impression_tables
from x_reco.pipeline.replay import (
    METRICS,
    ReplayConfig,
    ReplayPolicy,
    ReplayState,
    _follow_drift,
    closed_loop_replay,
    gini,
    simulate_world,
    world_ids,
    world_inputs,
)
from x_reco.pipeline.types import FeedRequest

TINY = WorldConfig.tiny()
DAYS = 3
START = CLOCK_START_TS + (TINY.num_days - DAYS) * DAY_S
CONFIG = ReplayConfig(days=DAYS, seed=0, weight_sets=("published", "world"), users=6)


@pytest.fixture(scope="module")
def pipe():
    return _pipeline()


@pytest.fixture(scope="module")
def world_replay(pipe):
    """The whole tiny world replayed by its own composer, every event written to a ReplayState."""
    world_inputs(TINY, pipe.data.manifest)  # the calibration from the manifest: the control proves it exact
    state = ReplayState(pipe.state, START, pipe.catalogue.observed_mask)
    imp, fol = simulate_world(TINY, ReplayPolicy(TINY, START, state))
    ids = world_ids(TINY)
    for u in np.unique(fol["user"]):
        mine = fol["user"] == u
        state.set_follows(
            ids["user"][u], ids["author"][fol["author"][mine]], fol["since_ts"][mine], fol["until_ts"][mine]
        )
    return state, imp, fol


@pytest.fixture(scope="module")
def replays(pipe):
    served_before = len(pipe.served_log)
    first = closed_loop_replay(pipe, None, CONFIG)
    again = closed_loop_replay(pipe, TINY, CONFIG)
    other = closed_loop_replay(pipe, TINY, dataclasses.replace(CONFIG, seed=1, weight_sets=("published",)))
    assert len(pipe.served_log) == served_before  # the replay keeps its own served log
    return first, again, other


def test_the_world_composer_reproduces_the_world_byte_for_byte(world_replay):
    _, imp, fol = world_replay
    impressions, truth = _impression_tables(imp, world_ids(TINY))
    assert table_digest(impressions) == PINNED["tiny"]["impressions"]
    assert table_digest(truth) == PINNED["tiny"]["truth_impressions"]
    assert table_digest(_follows_table(fol, world_ids(TINY))) == PINNED["tiny"]["follows"]


def test_replay_state_answers_like_the_tables_when_the_world_replays_itself(pipe, world_replay):
    state = world_replay[0]
    _, events, _ = _synthetic()
    rng = np.random.default_rng(3)
    users = rng.choice(events["user_id"].unique(), 25, replace=False)
    times = rng.integers(START - DAY_S, CLOCK_START_TS + TINY.num_days * DAY_S, len(users))
    for user, t in zip(users, times, strict=True):
        request = FeedRequest("synthetic", str(user), int(t))
        want, got = pipe.state.query(request), state.query(request)
        for name in ("length", "item_idx", "author_idx", "ts", "surface", "actions"):
            np.testing.assert_array_equal(getattr(got.history, name), getattr(want.history, name), err_msg=name)
        for field in ("seen_ids", "followed_ids", "blocked_ids", "muted_ids", "muted_keywords", "cold_user"):
            assert getattr(got, field) == getattr(want, field), (field, user, t)
    assert any(state._hidden.values()) and any(state._events.values())  # the overlay was exercised


def test_world_policy_tables_are_the_worlds_impressions(replays):
    imps = replays[0].tables["replay_impressions"]
    raw = _synthetic()[0].interactions
    mine = imps[imps["weight_set"] == "world"]
    want = raw[(raw["ts"] >= START) & raw["user_id"].isin(mine["user_id"].unique())]
    cols = ["user_id", "ts", "position", *ACTIONS]
    pd.testing.assert_frame_equal(mine[cols].reset_index(drop=True), want[cols].reset_index(drop=True))
    assert list(mine["post_id"]) == list(want["item_id"])


def test_a_three_day_replay_is_deterministic_per_seed(replays):
    first, again, other = replays
    for name, table in first.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name])
    a, b = (r.tables["replay_served"] for r in (first, other))
    assert not a[a["weight_set"] == "published"].reset_index(drop=True).equals(b.reset_index(drop=True))
    metrics = first.tables["replay_metrics"]
    assert len(metrics) == len(CONFIG.weight_sets) * DAYS and list(metrics["day"][:DAYS]) == list(range(DAYS))
    shares = metrics[["author_gini", "small_author_share", "in_network_share", "negative_rate", "follow_drift"]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert set(first.figures) == {"replay_metrics"} and first.figures["replay_metrics"].startswith(b"\x89PNG")
    assert set(METRICS) <= set(metrics.columns)


def test_the_loop_closes(replays):
    tables = replays[0].tables
    imps = tables["replay_impressions"]
    imps = imps[imps["weight_set"] == "published"]
    served = tables["replay_served"]
    # The user sees the first feed_length served posts of each request, in order; the rest are served-not-seen.
    seen = served[served["seen"]].groupby(["user_id", "t", "page"], sort=False)["post_id"].apply(list)
    shown = imps.groupby(["user_id", "request_ts", "page"], sort=False)["post_id"].apply(list)
    assert shown.to_dict() == {k: v for k, v in seen.to_dict().items() if k in shown.index}
    assert (served["position"] >= TINY.feed_length).any() and not served["seen"].all()
    # Page 2 follows page 1 after at least 60 s, with later positions.
    page2 = imps[imps["page"] == 2]
    assert len(page2) and (page2["position"] >= TINY.feed_length).all()
    # Seen posts of earlier visits (before the replay and during it) are never shown again.
    raw = _synthetic()[0].interactions
    before = raw[raw["ts"] < START][["user_id", "item_id"]].rename(columns={"item_id": "post_id"})
    assert not imps.duplicated(["user_id", "post_id"]).any()
    assert not imps.merge(before, on=["user_id", "post_id"]).shape[0]
    # A block or mute removes the author from every later request.
    hides = imps[(imps["block_author"] == 1) | (imps["mute_author"] == 1)]
    for row in hides.itertuples():
        later = imps[(imps["user_id"] == row.user_id) & (imps["request_ts"] > row.ts)]
        assert row.author_id not in set(later["author_id"])
    # A follow makes the author in-network at every later request (unless the user hides them).
    follows = imps[imps["follow_author"] == 1]
    assert len(follows)
    hidden = set(zip(hides["user_id"], hides["author_id"], strict=True))
    for row in follows.itertuples():
        if (row.user_id, row.author_id) not in hidden:
            later = imps[(imps["user_id"] == row.user_id) & (imps["request_ts"] > row.ts)]
            assert later[later["author_id"] == row.author_id]["in_network"].all()


def test_bad_replays_get_clear_errors(pipe):
    with pytest.raises(ValueError, match="days"):
        closed_loop_replay(pipe, None, ReplayConfig(days=TINY.num_days))
    with pytest.raises(ValueError, match="rules"):
        closed_loop_replay(pipe, None, ReplayConfig(rules="jan-2026"))
    with pytest.raises(ValueError, match="not the world"):
        closed_loop_replay(pipe, WorldConfig.small(), CONFIG)
    with pytest.raises(ValueError, match="distinct"):
        ReplayConfig(weight_sets=("published", "published"))


def test_gini_and_follow_drift():
    assert gini(np.full(7, 3)) == 0.0 and gini(np.zeros(5)) == 0.0
    assert gini(np.eye(1, 11)[0]) == pytest.approx(10 / 11)
    # user 0 follows authors 1 and 2 at start, only 1 at t (distance 1/2); user 1 follows nobody (0).
    fol = {
        k: np.array(v) for k, v in (("user", [0, 0]), ("author", [1, 2]), ("since_ts", [0, 0]), ("until_ts", [-1, 5]))
    }
    assert _follow_drift(fol, np.array([0, 1]), 1, 10, 3) == pytest.approx(0.25)


@pytest.mark.slow
def test_every_user_three_weight_sets():
    result = closed_loop_replay(_pipeline(), None, ReplayConfig(weight_sets=("published", "engagement-only", "world")))
    metrics = result.tables["replay_metrics"]
    assert len(metrics) == 9 and (metrics["impressions"] > 0).all()
