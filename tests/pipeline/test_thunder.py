"""Thunder post store (candidate-pipeline spec §6, §18 item 7).

Contract: reads are pure time predicates over one immutable log, so two replays to t agree; a deleted
post never comes back (not even re-created), quote-deletes cascade, retention is ``t - created_ts <=
48 h`` and the future is invisible; §6.4's per-author caps, reply and self-retweet rules and §6.2's
video eligibility hold. Fixtures are hand-built frames in the §14 schemas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from x_reco.pipeline.rules import MAX_POST_AGE, MIN_VIDEO_DURATION_MS
from x_reco.pipeline.thunder import ThunderStore, ThunderWriter, tombstones

T0 = 1_000_000
H = 3600


class Log:
    """A hand-built world: posts with their links and media, and the event log (creates at created_ts)."""

    def __init__(self):
        self.posts, self.links, self.media, self.extra = [], [], [], []

    def post(self, pid, author, ts, *, reply_to=None, conv=None, rt=None, quote=None, media="text", video_ms=()):
        by_id = {p["post_id"]: p for p in self.posts}
        kind = "reply" if reply_to else "retweet" if rt else "quote" if quote else "original"
        parent_link = next((lk for lk in self.links if lk["post_id"] == reply_to), None)
        if reply_to and conv is None:
            conv = (parent_link or {}).get("conversation_id") or reply_to
        author_of = lambda p: by_id[p]["author_id"] if p in by_id else None  # noqa: E731
        self.posts.append(
            {"post_id": pid, "author_id": author, "created_ts": ts, "media_type": media, "is_quote": bool(quote)}
        )
        self.links.append(
            {
                "post_id": pid,
                "kind": kind,
                "in_reply_to_post_id": reply_to,
                "in_reply_to_user_id": author_of(reply_to) if reply_to else None,
                "conversation_id": conv,
                "retweeted_post_id": rt,
                "retweeted_user_id": author_of(rt) if rt else None,
                "quoted_post_id": quote,
                "quoted_user_id": author_of(quote) if quote else None,
            }
        )
        self.media += [{"post_id": pid, "video_duration_ms": ms} for ms in video_ms]
        return pid

    def event(self, kind, pid, ts):
        self.extra.append({"ts": ts, "kind": kind, "post_id": pid})

    def tables(self):
        posts = pd.DataFrame(self.posts).astype({"created_ts": np.int64})
        links = pd.DataFrame(self.links).astype(object).where(lambda d: d.notna(), None)
        media = pd.DataFrame(self.media, columns=["post_id", "video_duration_ms"]).astype(
            {"video_duration_ms": np.int64}
        )
        creates = [{"ts": p["created_ts"], "kind": "create", "post_id": p["post_id"]} for p in self.posts]
        events = pd.DataFrame(creates + self.extra).sort_values("ts", kind="stable").reset_index(drop=True)
        events["seq"] = np.arange(len(events), dtype=np.int64)
        return posts, links, media, events[["ts", "seq", "kind", "post_id"]].astype({"ts": np.int64})

    def store(self, **kwargs) -> ThunderStore:
        return ThunderStore.from_tables(*self.tables(), **kwargs)


def ids(cands) -> list[str]:
    return list(cands["post_id"])


def mixed_log() -> Log:
    """Originals, replies, retweets, quotes, deletes and a re-create across three authors over 3 days."""
    log = Log()
    for k in range(30):
        a = f"a{k % 3}"
        pid = log.post(f"p{k:03d}", a, T0 + k * 2 * H, media="video" if k % 4 == 0 else "text", video_ms=(12_000,))
        if k % 5 == 1:
            log.post(f"r{k:03d}", f"a{(k + 1) % 3}", T0 + k * 2 * H + 60, reply_to=pid)
        if k % 7 == 2:
            log.post(f"t{k:03d}", f"a{(k + 2) % 3}", T0 + k * 2 * H + 90, rt=pid, video_ms=(12_000,))
        if k % 6 == 3:
            log.post(f"q{k:03d}", f"a{(k + 1) % 3}", T0 + k * 2 * H + 120, quote=pid)
    log.event("delete", "p004", T0 + 9 * H)
    log.event("create", "p004", T0 + 10 * H)
    log.event("quote_delete", "p003", T0 + 11 * H)
    log.event("delete", "r011", T0 + 30 * H)
    return log


def test_two_builds_and_a_replay_are_equal_at_every_t():
    log = mixed_log()
    tables = log.tables()
    a, b = ThunderStore.from_tables(*tables), ThunderStore.from_tables(*tables)
    assert a == b and len(a) > 30
    events = tables[3]
    writer = ThunderWriter(*tables[:3])
    for cut in (T0 + 5 * H, T0 + 20 * H, T0 + 40 * H, T0 + 80 * H):
        writer.append(events[(events["ts"] > (writer.last_ts or 0)) & (events["ts"] <= cut)])
        snap = writer.snapshot()
        assert snap == ThunderStore.from_tables(*tables[:3], events[events["ts"] <= cut])
        for t in (cut - 3 * H, cut):  # a replay to t <= the last event reads what the full log reads
            got = snap.view(t).recent_posts(["a0", "a1", "a2"], "u1")
            want = a.view(t).recent_posts(["a0", "a1", "a2"], "u1")
            assert ids(got) == ids(want) and len(want) > 0
    assert writer.snapshot() == a


def test_writer_refuses_out_of_order_events():
    tables = mixed_log().tables()
    writer = ThunderWriter(*tables[:3])
    events = tables[3]
    writer.append(events.iloc[10:20])
    with pytest.raises(ValueError, match="out of ts order"):
        writer.append(events.iloc[:5])
    with pytest.raises(ValueError, match="out of ts order"):
        writer.append(events.iloc[[30, 25]])


def test_deleted_post_never_returned_even_when_recreated():
    log = Log()
    log.post("p1", "a1", T0)
    log.post("p2", "a1", T0 + 10)
    log.event("delete", "p1", T0 + H)
    log.event("create", "p1", T0 + 2 * H)  # re-ingested: ignored
    store = log.store()
    assert ids(store.recent_posts(["a1"], "u", T0 + H - 1)) == ["p2", "p1"]
    for t in (T0 + H, T0 + 2 * H, T0 + 3 * H):
        assert ids(store.recent_posts(["a1"], "u", t)) == ["p2"]
        assert store.status("p1", t) == "deleted"
    assert store.deleted_at("p1") == T0 + H and store.deleted_at("p2") is None
    assert list(store.is_live(["p1", "p2", "nope"], T0 + 3 * H)) == [False, True, False]


def test_a_create_after_its_tombstone_is_never_ingested():
    log = Log()
    log.post("p1", "a1", T0)
    log.event("delete", "p1", T0 - 5)  # the delete reaches the log before the create
    store = log.store(max_posting_list=1)
    log2 = Log()
    log2.post("p0", "a1", T0 - 10)
    log2.posts += log.posts[:1]
    log2.links += log.links[:1]
    log2.event("delete", "p1", T0 - 5)
    store2 = log2.store(max_posting_list=1)
    assert store.status("p1", T0 + 1) == "deleted" and not store.is_live(["p1"], T0 + 1)[0]
    assert ids(store2.recent_posts(["a1"], "u", T0 + 1)) == ["p0"]  # p1 took no slot in the capped list


def test_quote_delete_cascades_to_every_quoting_post():
    log = Log()
    log.post("q", "a1", T0)
    log.post("x1", "a2", T0 + 10, quote="q")
    log.post("x2", "a3", T0 + 20, quote="q")
    log.post("y", "a2", T0 + 30, quote="other")
    log.event("delete", "q", T0 + H)
    log.event("quote_delete", "q", T0 + H)
    posts, links, _, events = log.tables()
    created = dict(zip(posts["post_id"], posts["created_ts"], strict=True))
    assert tombstones(events, links, created) == {"q": T0 + H, "x1": T0 + H, "x2": T0 + H}
    store = log.store()
    assert ids(store.recent_posts(["a1", "a2", "a3"], "u", T0 + H)) == ["y"]
    assert ids(store.recent_posts(["a1", "a2", "a3"], "u", T0 + H - 1)) == ["y", "x2", "x1", "q"]


def test_delete_past_retention_is_ignored():
    log = Log()
    log.post("p1", "a1", T0)
    log.post("p2", "a1", T0 + 1)
    log.event("delete", "p1", T0 + MAX_POST_AGE + 1)  # past retention: ignored
    log.event("delete", "p2", T0 + 1 + MAX_POST_AGE)  # exactly at retention: applies
    posts, links, _, events = log.tables()
    created = dict(zip(posts["post_id"], posts["created_ts"], strict=True))
    assert tombstones(events, links, created) == {"p2": T0 + 1 + MAX_POST_AGE}
    store = log.store()
    assert store.deleted_at("p1") is None
    assert store.status("p1", T0 + MAX_POST_AGE + 1) == "expired"
    assert store.status("p2", T0 + MAX_POST_AGE + 1) == "deleted"


def test_retention_window_is_inclusive_and_the_future_invisible():
    log = Log()
    log.post("p1", "a1", T0)
    store = log.store()
    assert ids(store.recent_posts(["a1"], "u", T0 - 1)) == []
    assert store.status("p1", T0 - 1) == "not_created"
    assert ids(store.recent_posts(["a1"], "u", T0)) == ["p1"]
    assert ids(store.recent_posts(["a1"], "u", T0 + MAX_POST_AGE)) == ["p1"]  # exactly 48 h: kept
    assert ids(store.recent_posts(["a1"], "u", T0 + MAX_POST_AGE + 1)) == []
    assert store.status("p1", T0 + MAX_POST_AGE + 1) == "expired" and store.status("zz", T0) == "unknown"


def test_newest_first_with_post_id_descending_ties_and_candidate_fields():
    log = Log()
    log.post("p1", "a1", T0)
    log.post("p3", "a2", T0 + 5)
    log.post("p2", "a1", T0 + 5)
    log.post("p4", "a2", T0 + 2)
    log.post("rt", "a2", T0 + 6, rt="p1", video_ms=())
    got = log.store().recent_posts(["a1", "a2", "a2", "ghost"], "u", T0 + 10)
    assert ids(got) == ["rt", "p3", "p2", "p4", "p1"]
    assert list(got["created_ts"]) == [T0 + 6, T0 + 5, T0 + 5, T0 + 2, T0]
    rec = got.record(0)
    assert rec["served_type"] == "in_network" and rec["retrieval_sources"] == ("thunder",)
    assert rec["is_retweet"] and not rec["is_reply"] and rec["author_id"] == "a2"
    assert (rec["retweeted_post_id"], rec["retweeted_user_id"], rec["ancestors"]) == ("p1", "a1", ())


def test_caps_per_author_and_max_results():
    log = Log()
    for k in range(6):
        log.post(f"o{k}", "a1", T0 + k * 10)
        log.post(f"r{k}", "a1", T0 + k * 10 + 1, reply_to=f"o{k}")
    log.post("b0", "a2", T0 + 100)
    store = log.store(max_original_per_author=2, max_secondary_per_author=3)
    got = ids(store.recent_posts(["a1", "a2"], "u", T0 + 200))
    assert got == ["b0", "r5", "o5", "r4", "o4", "r3"]
    assert ids(store.recent_posts(["a1", "a2"], "u", T0 + 200, max_results=3)) == ["b0", "r5", "o5"]


def test_posting_list_cap_through_time_and_the_scan_limit():
    log = Log()
    for k in range(5):
        log.post(f"o{k}", "a1", T0 + k * 10)
    log.event("delete", "o4", T0 + 45)
    capped = log.store(max_posting_list=3)
    assert ids(capped.recent_posts(["a1"], "u", T0 + 25)) == ["o2", "o1", "o0"]
    assert ids(capped.recent_posts(["a1"], "u", T0 + 40)) == ["o4", "o3", "o2"]
    assert ids(capped.recent_posts(["a1"], "u", T0 + 50)) == ["o3", "o2"]  # the deleted o4 keeps its slot
    scan = log.store(max_scan_per_author=2)
    assert ids(scan.recent_posts(["a1"], "u", T0 + 50)) == ["o3"]  # scanned o4 (dead) and o3
    assert ids(scan.recent_posts(["a1"], "u", T0 + 50, exclude_post_ids=["o4", "o3"])) == ["o2", "o1"]


def reply_log() -> Log:
    log = Log()
    log.post("root", "a1", T0)
    log.post("r_root", "a2", T0 + 10, reply_to="root")  # parent original: kept
    log.post("mid", "a3", T0 + 20, reply_to="root")  # a3's reply in root's conversation
    log.post("r_mid", "a2", T0 + 30, reply_to="mid")  # reply to a reply of the root: kept iff a3 followed
    log.post("r_deep", "a2", T0 + 40, reply_to="r_mid")  # its parent replies to a reply: dropped
    log.post("rt", "a4", T0 + 5, rt="root")
    log.post("r_rt", "a2", T0 + 50, reply_to="rt", conv="rt")  # parent is a retweet: dropped
    log.post("r_ghost", "a2", T0 + 60, reply_to="ghost", conv="ghost")  # parent unknown to the store
    log.post("gone", "a1", T0 + 1)
    log.post("r_gone", "a2", T0 + 70, reply_to="gone")  # parent deleted before t
    log.event("delete", "gone", T0 + 80)
    return log


def test_reply_rules():
    store = reply_log().store()
    t = T0 + 100
    got = ids(store.recent_posts(["a2", "a3"], "u", t))
    assert [p for p in got if p.startswith("r_")] == ["r_mid", "r_root"]
    assert ids(store.recent_posts(["a2"], "u", t)) == ["r_root"]  # a3 not followed
    assert "r_gone" in ids(store.recent_posts(["a2"], "u", T0 + 79))  # parent still live
    expired = store.recent_posts(["a2", "a3"], "u", T0 + 10 + MAX_POST_AGE)  # root expired, r_root not
    assert "r_root" not in ids(expired)


def test_ancestors_and_links_as_spec_section_5():
    store = reply_log().store()
    got = store.recent_posts(["a2", "a3"], "u", T0 + 100)
    rec = {p: got.record(i) for i, p in enumerate(got["post_id"])}
    assert rec["r_root"]["ancestors"] == ("root",)
    assert rec["r_mid"]["ancestors"] == ("mid", "root")
    assert (rec["r_mid"]["in_reply_to_user_id"], rec["r_mid"]["conversation_id"]) == ("a3", "root")
    assert rec["mid"]["is_reply"] and rec["mid"]["retweeted_post_id"] is None


def test_self_retweet_of_the_viewer_is_dropped_and_excluded_ids_skipped():
    log = Log()
    log.post("mine", "viewer", T0)
    log.post("rt_mine", "a2", T0 + 10, rt="mine")
    log.post("o", "a2", T0 + 20)
    store = log.store()
    assert ids(store.recent_posts(["a2"], "viewer", T0 + 30)) == ["o"]
    assert ids(store.recent_posts(["a2"], "someone", T0 + 30)) == ["o", "rt_mine"]
    assert ids(store.recent_posts(["a2"], "someone", T0 + 30, exclude_post_ids=["o"])) == ["rt_mine"]


def test_video_eligibility():
    log = Log()
    ok = MIN_VIDEO_DURATION_MS
    log.post("v_ok", "a1", T0, media="video", video_ms=(ok,))
    log.post("v_short", "a1", T0 + 1, media="video", video_ms=(ok - 1,))
    log.post("v_two", "a1", T0 + 2, media="video", video_ms=(ok, ok))
    log.post("photo", "a1", T0 + 3, media="photo")
    log.post("v_reply", "a1", T0 + 4, reply_to="photo", media="video", video_ms=(ok,))
    log.post("rt_own", "a2", T0 + 5, rt="v_ok", media="video", video_ms=(ok,))
    log.post("rt_src", "a2", T0 + 6, rt="v_ok")  # no media row of its own: inherits the source's
    log.post("rt_reply", "a2", T0 + 7, rt="v_reply")
    store = log.store()
    eligible = {p: store.get(p).video_eligible for p in store.post_id}
    assert [p for p, e in eligible.items() if e] == ["rt_own", "rt_src", "v_ok"]
    assert store.get("v_reply").has_video and not store.get("v_reply").video_eligible
    assert list(store.video_posts("a2", T0 + 10)) == ["rt_src", "rt_own"]
    assert list(store.video_posts("a1", T0 + 10)) == ["v_ok"]
    assert list(store.video_posts("a1", T0 + MAX_POST_AGE + 1)) == [] and list(store.video_posts("zz", T0)) == []


def test_view_is_a_snapshot_at_t():
    log = mixed_log()
    store = log.store()
    t = T0 + 10 * H
    view = store.view(t)
    assert ids(view.recent_posts(["a0", "a1"], "u")) == ids(store.recent_posts(["a0", "a1"], "u", t))
    assert view.deleted_at("p004") == T0 + 9 * H and view.deleted_at("r011") is None  # deleted after t
    assert store.deleted_at("r011") == T0 + 30 * H
    assert view.status("p004") == "deleted" and view.is_live(["p000"])[0]


def test_bad_inputs_are_refused():
    posts, links, media, events = mixed_log().tables()
    with pytest.raises(ValueError, match="unknown values"):
        ThunderStore.from_tables(posts, links, media, events.assign(kind="undelete"))
    with pytest.raises(ValueError, match="positive"):
        ThunderStore.from_tables(posts, links, media, events, max_posting_list=0)
    with pytest.raises(ValueError, match="lacks columns"):
        ThunderStore.from_tables(posts.drop(columns="author_id"), links, media, events)
