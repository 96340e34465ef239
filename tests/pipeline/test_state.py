"""The serving state as of t (spec §4, §7, §11 step 2, §12; §18 items 8 and 12): history equals the
training sequences' ``_history``; no read uses an event, follow, block, mute, subscription or keyword
at or after t, nor a post created after t; follows open and close at t; the served log's window,
cap and ancestors; CoreData failures; engagement counts; VF levels; real-partition fallbacks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from x_reco.common.actions import ACTIONS
from x_reco.data.events import EVENT_COLUMNS, build_events
from x_reco.data.examples import SequenceConfig
from x_reco.data.registry import dataset_spec
from x_reco.data.sequences import build_sequences
from x_reco.data.synthetic import WorldConfig, generate_world_tables
from x_reco.data.tables import RawTables
from x_reco.pipeline.rules import SERVED_HISTORY_MAX, SERVED_HISTORY_WINDOW_S
from x_reco.pipeline.state import ServedLog, ServingTables, TableState, UnknownUserError
from x_reco.pipeline.types import Candidates, FeedRequest, Query

S = 8


@pytest.fixture(scope="module")
def world():
    raw = generate_world_tables(WorldConfig.tiny())
    events = build_events(raw)
    seq = build_sequences(events, raw.items, "synthetic", SequenceConfig(history_len=S, candidate_len=4))
    return raw, events, seq


def _state(raw, events, seq, deleted_at=None) -> TableState:
    tables = ServingTables.from_raw(raw, events)
    return TableState(tables, seq.catalogue, dataset_spec(raw.partition).observed_mask, S, deleted_at=deleted_at)


@pytest.fixture(scope="module")
def state(world):
    return _state(*world)


# -- hand-made synthetic-shaped tables --------------------------------------------------------------
def _events(rows: list[tuple]) -> pd.DataFrame:
    """Events from (user, item, author, ts, surface, {action: 1}) rows, in EVENT_COLUMNS."""
    out = []
    for i, (user, item, author, ts, surface, acts) in enumerate(rows):
        row = {"user_id": user, "item_id": item, "author_id": author, "ts": ts, "src_row": i, "surface": surface}
        row |= {"request_key": f"v{i}", **{a: int(acts.get(a, 0)) for a in ACTIONS}}
        out.append(row | {"dwell_seconds": 1.0, "exposed": 1, "split": "train"})
    frame = pd.DataFrame(out)[list(EVENT_COLUMNS)]
    frame[list(ACTIONS)] = frame[list(ACTIONS)].astype(np.int8)
    frame["surface"] = frame["surface"].astype(np.int8)
    return frame.sort_values(["user_id", "ts", "src_row"], kind="mergesort").reset_index(drop=True)


def hand_tables() -> ServingTables:
    """p1 original (a1, 100, video), p2 reply to p1 (paywalled), p3 retweet of p1 by a3, p4 quote of
    p1 (safety row missing), p5 created at 300, p6 (deleted in tests that pass ``deleted_at``)."""
    items = pd.DataFrame(
        {
            "item_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "author_id": ["a1", "a2", "a3", "a2", "a1", "a3"],
            "created_ts": [100, 150, 160, 170, 300, 120],
            "media_type": ["video", "text", "video", "text", "text", "text"],
        }
    )
    n = None
    links = pd.DataFrame(
        [
            ("p1", "original", n, n, n, n, n, n, n),
            ("p2", "reply", "p1", "a1", "p1", n, n, n, n),
            ("p3", "retweet", n, n, n, "p1", "a1", n, n),
            ("p4", "quote", n, n, n, n, n, "p1", "a1"),
            ("p5", "original", n, n, n, n, n, n, n),
            ("p6", "original", n, n, n, n, n, n, n),
        ],
        columns=["post_id", "kind", "in_reply_to_post_id", "in_reply_to_user_id", "conversation_id"]
        + ["retweeted_post_id", "retweeted_user_id", "quoted_post_id", "quoted_user_id"],
    )
    social = {
        "follows": pd.DataFrame(
            {
                "user_id": ["u1", "u1", "u2", "u1"],
                "author_id": ["a1", "a2", "a1", "a3"],
                "since_ts": [50, 100, 150, 300],
                "until_ts": pd.array([None, 200, None, 250], dtype="Int64"),  # u1->a3 closes before it opens
            }
        ),
        "post_text": pd.DataFrame(
            {"post_id": ["p1", "p2", "p3", "p4", "p5", "p6"], "text": ["hi", "re", "hi", "q", "x", None]}
        ),
        "post_links": links,
        "post_media": pd.DataFrame({"post_id": ["p1", "p3"], "video_duration_ms": [12_000, 12_000]}),
        "post_paywall": pd.DataFrame({"post_id": ["p2"], "subscription_author_id": ["a2"]}),
        "subscriptions": pd.DataFrame({"user_id": ["u1"], "author_id": ["a2"], "since_ts": [140]}),
        "post_safety": pd.DataFrame(
            {
                "post_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
                "level": ["none", "drop_recs", "drop_all", "none", "none", "none"],
                "missing": [False, False, False, True, False, False],
            }
        ),
        "muted_keywords": pd.DataFrame({"user_id": ["u1", "u1"], "keyword": ["hello", "#tag"], "since_ts": [110, 90]}),
        "author_blocks": pd.DataFrame({"author_id": ["a3"], "user_id": ["u1"], "since_ts": [100]}),
        "user_blocks": pd.DataFrame(
            {"user_id": ["u1", "u1"], "author_id": ["a3", "a2"], "ts": [120, 130], "kind": ["block", "mute"]}
        ),
    }
    events = _events(
        [
            ("u1", "p1", "a1", 110, 0, {"favorite": 1}),
            ("u1", "p1", "a1", 120, 2, {"click": 1}),  # explore: not a home view
            ("u1", "p2", "a2", 160, 1, {}),  # not engaged
            ("u2", "p1", "a1", 130, 0, {"favorite": 1}),
        ]
    )
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "created_ts": [10, 20, 30]})
    return ServingTables("synthetic", items, events, users, social)


def make_state(tables: ServingTables | None = None, deleted_at=None, history_len: int = 4) -> TableState:
    tables = tables or hand_tables()
    cfg = SequenceConfig(history_len=history_len, candidate_len=2)
    seq = build_sequences(tables.events, tables.items, tables.partition, cfg)
    mask = dataset_spec(tables.partition).observed_mask
    return TableState(tables, seq.catalogue, mask, history_len, deleted_at=deleted_at)


def assert_query_equal(a: Query, b: Query) -> None:
    for f in dataclasses.fields(Query):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "history":
            for g in dataclasses.fields(x):
                np.testing.assert_array_equal(getattr(x, g.name), getattr(y, g.name), err_msg=g.name)
        else:
            assert x == y, f.name


# -- history (§4, §18 item 8) ---------------------------------------------------------------------
def test_history_equals_sequences_history_for_every_example(world, state):
    _, _, seq = world
    h = seq.history
    for e in range(seq.num_examples):
        user = str(seq.catalogue.user_ids[seq.examples.user_idx[e]])
        got = state.history_at(user, int(seq.examples.request_ts[e]))
        assert got.length == h.length[e]
        for name in ("item_idx", "author_idx", "ts", "surface", "actions"):
            np.testing.assert_array_equal(getattr(got, name), getattr(h, name)[e], err_msg=f"example {e} {name}")
    assert (h.length == S).any() and (h.length == 0).any()  # truncation and empty histories both exercised


def _movielens(ratings: list[tuple[str, str, int, float]]) -> tuple[RawTables, pd.DataFrame]:
    inter = pd.DataFrame(ratings, columns=["user_id", "item_id", "ts", "rating"])
    inter["src_row"] = np.arange(len(inter), dtype=np.int64)
    items = pd.DataFrame({"item_id": sorted(set(inter["item_id"]) | {"m9"}), "title": "t"})
    raw = RawTables("movielens-100k", inter, items, pd.DataFrame({"user_id": sorted(set(inter["user_id"]))}))
    return raw, build_events(raw)


def test_history_equals_sequences_history_per_event_movielens():
    raw, events = _movielens(
        [("1", "m1", 10, 5), ("1", "m2", 20, 1), ("1", "m3", 30, 4), ("2", "m1", 15, 3), ("1", "m4", 40, 2)]
    )
    seq = build_sequences(events, raw.items, raw.partition, SequenceConfig(history_len=2, candidate_len=3))
    st = TableState(ServingTables.from_raw(raw, events), seq.catalogue, dataset_spec(raw.partition).observed_mask, 2)
    for e in range(seq.num_examples):
        got = st.history_at(str(seq.catalogue.user_ids[seq.examples.user_idx[e]]), int(seq.examples.request_ts[e]))
        assert got.length == seq.history.length[e]
        np.testing.assert_array_equal(got.item_idx, seq.history.item_idx[e])
        np.testing.assert_array_equal(got.actions, seq.history.actions[e])


def test_history_excludes_same_second_events():
    """Leak rule over positions: a rating in the request's own second is not history (``ts < t``)."""
    raw, events = _movielens([("1", "m1", 10, 5), ("1", "m2", 20, 5), ("1", "m3", 20, 5)])
    seq = build_sequences(events, raw.items, raw.partition, SequenceConfig(history_len=4, candidate_len=1))
    st = TableState(ServingTables.from_raw(raw, events), seq.catalogue, dataset_spec(raw.partition).observed_mask, 4)
    assert st.history_at("1", 20).length == 1
    assert st.history_at("1", 21).length == 3


# -- the leak rule (§4 MUST, §18 item 8) -----------------------------------------------------------
def _requests(raw, events, n=200, seed=0) -> list[tuple[str, int]]:
    """Random (user, t): half at a timestamp some table holds (strictness at t), half uniform."""
    rng = np.random.default_rng(seed)
    social = raw.extra
    stamps = np.concatenate(
        [
            events["ts"].to_numpy(),
            social["follows"]["since_ts"].to_numpy(),
            social["follows"]["until_ts"].dropna().to_numpy(np.int64),
            social["user_blocks"]["ts"].to_numpy(),
            social["muted_keywords"]["since_ts"].to_numpy(),
            social["subscriptions"]["since_ts"].to_numpy(),
        ]
    )
    lo, hi = int(events["ts"].min()) - 86_400, int(events["ts"].max()) + 86_400
    users = raw.users["user_id"].to_numpy()
    out = []
    for i in range(n):
        t = int(rng.choice(stamps)) + int(rng.integers(0, 2)) if i % 2 else int(rng.integers(lo, hi))
        out.append((str(rng.choice(users)), t))
    return out


def test_query_fields_recomputed_from_frames_before_t(world, state):
    raw, events, seq = world
    s, eng = raw.extra, events[list(ACTIONS)].to_numpy().any(axis=1)
    for user, t in _requests(raw, events):
        q = state.query(FeedRequest("synthetic", user, t))
        mine = (events["user_id"] == user) & (events["ts"] < t)
        hist = events[mine & eng].tail(S)
        assert q.history.length == len(hist) and q.cold_user == (len(hist) == 0)
        assert list(seq.catalogue.item_ids[q.history.item_idx[: len(hist)]]) == list(hist["item_id"])
        assert (q.history.ts[: q.history.length] < t).all()
        assert q.seen_ids == set(events.loc[mine & (events["exposed"] == 1), "item_id"])
        f = s["follows"][(s["follows"]["user_id"] == user) & (s["follows"]["since_ts"] < t)]
        assert q.followed_ids == set(f.loc[f["until_ts"].isna() | (f["until_ts"] >= t), "author_id"])
        b = s["user_blocks"][(s["user_blocks"]["user_id"] == user) & (s["user_blocks"]["ts"] < t)]
        assert q.blocked_ids == set(b.loc[b["kind"] == "block", "author_id"])
        assert q.muted_ids == set(b.loc[b["kind"] == "mute", "author_id"])
        sub = s["subscriptions"]
        assert q.subscribed_ids == set(sub.loc[(sub["user_id"] == user) & (sub["since_ts"] < t), "author_id"])
        kw = s["muted_keywords"]
        assert set(q.muted_keywords) == set(kw.loc[(kw["user_id"] == user) & (kw["since_ts"] < t), "keyword"])
        created = raw.users.set_index("user_id")["created_ts"]
        assert q.account_created_ts == created[user] and q.follower_count == 0 and not q.mutual_follow_ids


def _perturbed(raw, events, t_p: int) -> tuple[RawTables, pd.DataFrame]:
    """Every table gains rows at t_p or later: events of every user, follows, blocks, mutes,
    subscriptions, keywords, author blocks, and a post created at t_p."""
    users, authors = raw.users["user_id"].to_numpy(), raw.extra["authors"]["author_id"].to_numpy()
    item, author = raw.items["item_id"].iloc[0], raw.items["author_id"].iloc[0]
    add = events.iloc[: len(users)].copy()
    add["user_id"], add["item_id"], add["author_id"] = users, item, author
    add["ts"], add["src_row"] = t_p + np.arange(len(users)), 10**9 + np.arange(len(users))
    add[list(ACTIONS)], add["exposed"], add["surface"] = np.int8(1), np.int8(1), np.int8(0)
    events2 = pd.concat([events, add], ignore_index=True).sort_values(["user_id", "ts", "src_row"], kind="mergesort")
    pairs = pd.DataFrame({"user_id": np.repeat(users, 2), "author_id": np.tile(authors[:2], len(users))})
    extra = dict(raw.extra)

    def grow(name: str, **cols) -> None:
        extra[name] = pd.concat([raw.extra[name], pairs.assign(**cols)], ignore_index=True)

    grow("follows", since_ts=t_p, until_ts=pd.array([None] * len(pairs), dtype="Int64"))
    grow("user_blocks", ts=t_p, kind=np.where(np.arange(len(pairs)) % 2, "block", "mute"))
    grow("subscriptions", since_ts=t_p + 5)
    extra["muted_keywords"] = pd.concat(
        [raw.extra["muted_keywords"], pairs.assign(keyword="leak", since_ts=t_p).drop(columns="author_id")]
    )
    extra["author_blocks"] = pd.concat([raw.extra["author_blocks"], pairs.assign(since_ts=t_p)], ignore_index=True)
    new_post = {"item_id": "p_new", "author_id": author, "created_ts": t_p, "media_type": "text", "is_quote": False}
    items = pd.concat([raw.items, pd.DataFrame([new_post])], ignore_index=True)
    extra["post_text"] = pd.concat([raw.extra["post_text"], pd.DataFrame({"post_id": ["p_new"], "text": ["new"]})])
    return dataclasses.replace(raw, items=items, extra=extra), events2


def test_rows_at_or_after_t_change_nothing(world, state):
    raw, events, seq = world
    t_p = int(np.median(events["ts"]))
    raw2, events2 = _perturbed(raw, events, t_p)
    state2 = _state(raw2, events2, seq)
    posts = raw.items["item_id"].to_numpy()
    authors = raw.extra["authors"]["author_id"].to_numpy()
    for user, t in _requests(raw, events, seed=1):
        t = min(t, t_p)
        assert_query_equal(
            state.query(FeedRequest("synthetic", user, t)), state2.query(FeedRequest("synthetic", user, t))
        )
        for name in ("view_count_on_home", "fav_count"):
            np.testing.assert_array_equal(
                state.engagement_counts(posts, t)[name], state2.engagement_counts(posts, t)[name]
            )
        np.testing.assert_array_equal(state.author_followers(authors, t), state2.author_followers(authors, t))
        np.testing.assert_array_equal(
            state.author_blocks_viewer(authors, user, t), state2.author_blocks_viewer(authors, user, t)
        )
    assert state2.core_data(["p_new"], t_p - 1)["author_id"][0] == ""
    assert state2.core_data(["p_new"], t_p)["text"][0] == "new"  # created_ts <= t is visible
    q_after = state2.query(FeedRequest("synthetic", str(raw.users["user_id"].iloc[0]), t_p + 10**6))
    assert "leak" in q_after.muted_keywords and q_after.followed_ids >= set(authors[:2])  # the rows are read later


# -- follows, blocks, keywords at t -----------------------------------------------------------------
def test_follows_open_and_close_at_t():
    st = make_state()
    assert st.followed_ids("u1", 50) == set()  # since_ts < t is strict
    assert st.followed_ids("u1", 51) == {"a1"}
    assert st.followed_ids("u1", 101) == {"a1", "a2"}
    assert st.followed_ids("u1", 200) == {"a1", "a2"}  # until_ts >= t still open
    assert st.followed_ids("u1", 201) == {"a1"}
    assert st.followed_ids("u1", 10**6) == {"a1"}  # the row closing before it opens is never open
    np.testing.assert_array_equal(st.author_followers(["a1", "a2", "a3", "zz"], 151), [2, 1, 0, 0])
    np.testing.assert_array_equal(st.author_followers(["a1", "a2", "a3"], 201), [2, 0, 0])
    np.testing.assert_array_equal(st.author_followers(["a1", "a2", "a3"], 301), [2, 0, 0])


def test_social_fields_at_t():
    st = make_state()
    q = st.query(FeedRequest("synthetic", "u1", 121))
    assert q.blocked_ids == {"a3"} and q.muted_ids == set() and q.subscribed_ids == set()
    assert q.muted_keywords == ("#tag", "hello")  # by since_ts
    q = st.query(FeedRequest("synthetic", "u1", 141))
    assert q.muted_ids == {"a2"} and q.subscribed_ids == {"a2"}
    assert q.account_created_ts == 10 and q.follower_count == 0
    assert q.seen_ids == {"p1"} and q.history.length == 2 and not q.cold_user
    u3 = st.query(FeedRequest("synthetic", "u3", 500))
    assert u3.cold_user and u3.user_idx == -1 and u3.history.length == 0  # known user, no events


def test_unknown_user_error_names_partition_and_valid_ids():
    st = make_state()
    with pytest.raises(UnknownUserError) as info:
        st.query(FeedRequest("synthetic", "u999", 100))
    msg = str(info.value)
    assert "'u999'" in msg and "'synthetic'" in msg and "u1" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


# -- candidate-side reads (§7, §11) -----------------------------------------------------------------
def test_core_data_failures_unknown_deleted_future():
    st = make_state(deleted_at={"p6": 200})
    cd = st.core_data(["p1", "nope", "p5", "p5", "p6", "p6"], 199)
    assert list(cd["author_id"]) == ["a1", "", "", "", "a3", "a3"] and cd["text"][1] == ""
    st_t = [199, 199, 299, 300, 199, 200]
    got = [st.core_data([p], t)["author_id"][0] for p, t in zip(["p1", "nope", "p5", "p5", "p6", "p6"], st_t)]
    assert got == ["a1", "", "", "a1", "a3", ""]  # created_ts <= t visible; deleted at <= t fails
    assert st.core_data(["p6"], 150)["text"][0] == ""  # a None text is empty


def test_core_data_links_ancestors_retweets():
    st = make_state()
    cd = st.core_data(["p2", "p3", "p4", "p1"], 1000)
    assert list(cd["author_id"]) == ["a2", "a3", "a2", "a1"]  # a retweet keeps the retweeter
    assert cd["ancestors"][0] == ("p1",) and cd["conversation_author_id"][0] == "a1"
    assert cd["retweeted_post_id"][1] == "p1" and cd["retweeted_user_id"][1] == "a1"
    assert list(st.quote(["p4", "p1"])[0]) == ["p1", None] and list(cd["is_reply"]) == [True, False, False, False]
    assert list(cd["is_retweet"]) == [False, True, False, False] and cd["ancestors"][3] == ()
    assert list(cd["created_ts"]) == [150, 160, 170, 100]
    np.testing.assert_array_equal(st.video_duration(["p1", "p2"]), [12_000, np.nan])
    np.testing.assert_array_equal(st.quoted_video_duration(["p4", "p2"]), [12_000, np.nan])
    assert list(st.subscription_author(["p1", "p2"])) == [None, "a2"]


def test_engagement_counts_home_surfaces_before_t():
    st = make_state()
    c = st.engagement_counts(["p1", "p2", "zz"], 130)
    assert list(c["view_count_on_home"]) == [1, 0, 0]  # u2's view at 130 is not before t; explore never
    assert list(c["fav_count"]) == [1, 0, 0]
    c = st.engagement_counts(["p1", "p2"], 10**6)
    assert list(c["view_count_on_home"]) == [2, 1] and list(c["fav_count"]) == [2, 0]


def test_engagement_counts_match_frames(world, state):
    raw, events, _ = world
    rng = np.random.default_rng(2)
    posts = raw.items["item_id"].to_numpy()
    for t in rng.integers(events["ts"].min(), events["ts"].max(), 20):
        got = state.engagement_counts(posts, int(t))
        before = events[events["ts"] < t]
        home = before[before["surface"].isin([0, 1])].groupby("item_id").size()
        fav = before[before["favorite"] == 1].groupby("item_id").size()
        np.testing.assert_array_equal(got["view_count_on_home"], home.reindex(posts).fillna(0).to_numpy(int))
        np.testing.assert_array_equal(got["fav_count"], fav.reindex(posts).fillna(0).to_numpy(int))


def test_author_blocks_viewer_at_t():
    st = make_state()
    assert list(st.author_blocks_viewer(["a3", "a1", None], "u1", 100)) == [False, False, False]
    assert list(st.author_blocks_viewer(["a3", "a1", None], "u1", 101)) == [True, False, False]
    assert not st.author_blocks_viewer(["a3"], "u2", 10**6).any()


def test_vf_verdict_levels():
    st = make_state(deleted_at={"p6": 200})
    posts = ["p1", "p2", "p3", "p4", "p6", "zz"]
    assert list(st.vf_verdict(posts, [1] * 6, 199)) == [None, None, "drop", "miss", None, "miss"]
    assert list(st.vf_verdict(posts, [0] * 6, 199)) == [None, "drop", "drop", "miss", None, "miss"]
    assert list(st.vf_verdict(posts, [-1] * 6, 200)) == [None, "drop", "drop", "miss", "deleted", "miss"]


def test_vf_verdict_on_world(world, state):
    raw, _, _ = world
    safety = raw.extra["post_safety"]
    for level, inn, want in (("drop_all", 1, "drop"), ("drop_recs", 1, None), ("drop_recs", 0, "drop")):
        posts = safety.loc[safety["level"] == level, "post_id"].to_numpy()
        assert len(posts) and (state.vf_verdict(posts, np.full(len(posts), inn), 2**40) == want).all()


# -- the served log (§12, §18 item 12) ---------------------------------------------------------------
def _row(t: int, post: str, user: str = "u1", **kw) -> dict:
    return {"request_id": f"r{t}", "t": t, "user_id": user, "post_id": post} | kw


def test_served_ids_window_is_half_open():
    log = ServedLog()
    t = 10_000
    log.extend(
        [
            _row(t - SERVED_HISTORY_WINDOW_S - 1, "old"),
            _row(t - SERVED_HISTORY_WINDOW_S, "edge", source_post_id="src"),
            _row(t - 1, "recent"),
            _row(t, "now"),
            _row(t - 5, "other", user="u2"),
        ]
    )
    assert log.served_ids("u1", t) == {"edge", "src", "recent"}
    assert log.served_ids("u2", t) == {"other"} and log.served_ids("u9", t) == set()


def test_served_ids_newest_hundred():
    log = ServedLog()
    t = 10_000
    log.extend(_row(t - 300 + i, f"p{i:03d}") for i in range(SERVED_HISTORY_MAX + 20))
    assert log.served_ids("u1", t) == {f"p{i:03d}" for i in range(20, SERVED_HISTORY_MAX + 20)}


def test_record_writes_posts_then_ancestors():
    log = ServedLog()
    req = FeedRequest("synthetic", "u1", 5_000)
    served = Candidates(
        {
            "post_id": ["p2", "p3"],
            "ancestors": [("p1", "p0"), ()],
            "retweeted_post_id": [None, "p9"],
            "served_type": ["in_network", "oon_retrieval"],
            "score": [2.0, 1.0],
        },
        signal_names=("favorite",),
        probs=np.array([[0.5], [np.nan]]),
    )
    log.record(req, served, weight_set="sync-2026-09-24", rules="aug-2026", versions={"ranker": "v7"})
    frame = log.to_frame()
    assert list(frame["post_id"]) == ["p2", "p1", "p0", "p3"]
    assert list(frame["is_ancestor"]) == [False, True, True, False]
    assert list(frame["position"]) == [0, 0, 0, 1] and set(frame["request_id"]) == {req.request_id}
    assert frame["p_favorite"].iloc[0] == 0.5 and frame["ranker_version"].iloc[3] == "v7"
    assert log.served_ids("u1", 5_001) == {"p2", "p1", "p0", "p3", "p9"}
    assert log.served_ids("u1", 5_000) == set()  # rows before t only
    with pytest.raises(ValueError, match="lacks"):
        log.append({"t": 1, "user_id": "u1"})


# -- real partitions (§13) ---------------------------------------------------------------------------
def test_movielens_fallbacks():
    raw, events = _movielens([("1", "m1", 10, 5), ("1", "m2", 20, 1), ("2", "m3", 15, 4)])
    tables = ServingTables.from_raw(raw, events)
    assert tables.social == {}
    seq = build_sequences(events, raw.items, raw.partition, SequenceConfig(history_len=2, candidate_len=1))
    st = TableState(tables, seq.catalogue, dataset_spec(raw.partition).observed_mask, 2)
    cd = st.core_data(["m1", "m3", "nope", "m9"], 16)
    assert list(cd["author_id"]) == ["movielens-100k:no_author"] * 2 + ["", "movielens-100k:no_author"]
    assert list(cd["text"]) == ["m1", "m3", "", "m9"] and cd["ancestors"][0] == () and cd["conversation_id"][0] is None
    assert st.core_data(["m2"], 19)["text"][0] == ""  # first rated after t: not yet in the catalogue
    q = st.query(FeedRequest("movielens-100k", "1", 21))
    # every rating before t is an item the user has seen (per-event data has no impressions)
    assert q.history.length == 2 and q.followed_ids == set() and q.seen_ids == {"m1", "m2"}
    assert q.account_created_ts is None
    assert np.isnan(st.video_duration(["m1"])).all() and list(st.subscription_author(["m1"])) == [None]
    assert not st.author_blocks_viewer(["movielens-100k:no_author"], "1", 21).any()
    assert list(st.vf_verdict(["m1"], [0], 21)) == [None]


def test_amazon_store_is_the_author():
    inter = pd.DataFrame({"user_id": ["1", "1"], "item_id": ["b1", "b2"], "ts": [10, 20], "rating": [5.0, 4.0]})
    inter["src_row"] = np.arange(2)
    items = pd.DataFrame({"item_id": ["b1", "b2"], "store": ["Acme", None]})
    raw = RawTables("amazon-kindle", inter, items, pd.DataFrame({"user_id": ["1"]}))
    events = build_events(raw)
    seq = build_sequences(events, items, raw.partition, SequenceConfig(history_len=2, candidate_len=1))
    st = TableState(ServingTables.from_raw(raw, events), seq.catalogue, dataset_spec(raw.partition).observed_mask, 2)
    assert list(st.core_data(["b1", "b2"], 30)["author_id"]) == ["Acme", "b2"]  # unknown store -> item id


def test_request_time_is_the_kth_test_split_request(world, state):
    _, _, seq = world
    test = seq.rows("test")
    users = seq.catalogue.user_ids[seq.examples.user_idx[test]]
    for user in np.unique(users)[:10]:
        want = np.unique(seq.examples.request_ts[test][users == user])
        got = [state.request_time(str(user), k) for k in range(len(want))]
        assert got == list(want) and state.default_request_time(str(user)) == want[0]
        with pytest.raises(ValueError, match="test-split request"):
            state.request_time(str(user), len(want))
    with pytest.raises(UnknownUserError):
        state.request_time("nobody")
    raw, events = _movielens([("1", "m1", 10, 5), ("1", "m2", 20, 1), ("1", "m3", 30, 4)])
    ml = build_sequences(events, raw.items, raw.partition, SequenceConfig(history_len=2, candidate_len=1))
    st = TableState(ServingTables.from_raw(raw, events), ml.catalogue, dataset_spec(raw.partition).observed_mask, 2)
    assert st.default_request_time("1") == 30  # leave-last-out: the last rating is the test request
