"""The feed-policy hook of the world's simulator (candidate-pipeline spec §15.4): with the default policy
(the world's composer) the tables stay byte-identical to the digests pinned before the hook existed; a
user simulated alone gets exactly their rows of the full run; another policy's feeds are what the world
shows, it sees the user's live state, and its follow-up pages continue the visit."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from tests.data.test_synthetic_social import PINNED, table_digest
from x_reco.data.synthetic import WorldConfig
from x_reco.data.synthetic.calibration import calibrate
from x_reco.data.synthetic.entities import make_authors, make_posts, make_users
from x_reco.data.synthetic.exposure import WORLD_COMPOSER, FeedPolicy, Visit, simulate
from x_reco.data.synthetic.world import _follows_table, _impression_tables, make_ids, seed_children

CONFIG = WorldConfig.tiny()


@functools.cache
def _inputs():
    seeds = seed_children(CONFIG.seed)
    authors = make_authors(CONFIG, np.random.default_rng(seeds["authors"]))
    users = make_users(CONFIG, np.random.default_rng(seeds["users"]), authors)
    posts = make_posts(seeds["posts"].spawn(CONFIG.num_days), authors)
    base_logits = calibrate(CONFIG, np.random.default_rng(seeds["calibration"])).base_logits
    return users, authors, posts, base_logits


def _run(policy=WORLD_COMPOSER, only=None):
    users, authors, posts, base_logits = _inputs()
    seeds = seed_children(CONFIG.seed)  # fresh: simulate spawns children of these
    args = (CONFIG, users, authors, posts, base_logits, seeds["exposure"], seeds["engagement"])
    return simulate(*args, policy=policy, only=only)


def _ids():
    return {
        "user": make_ids("u", CONFIG.num_users, 4),
        "author": make_ids("a", CONFIG.num_authors, 3),
        "post": make_ids("p", len(_inputs()[2].author), 6),
    }


@pytest.fixture(scope="module")
def world_run():
    return _run()


def test_default_policy_keeps_the_tables_byte_identical(world_run):
    imp, fol = world_run
    impressions, truth = _impression_tables(imp, _ids())
    assert table_digest(impressions) == PINNED["tiny"]["impressions"]
    assert table_digest(truth) == PINNED["tiny"]["truth_impressions"]
    assert table_digest(_follows_table(fol, _ids())) == PINNED["tiny"]["follows"]
    again, _ = _run(FeedPolicy())  # an explicit composer instance is the same policy
    for name, values in imp.items():
        assert values.tobytes() == again[name].tobytes(), name


def test_a_user_simulated_alone_gets_exactly_their_rows(world_run):
    imp, fol = world_run
    only = np.array([7, 3, 41])
    sub, sub_fol = _run(only=only)
    for table, part in ((imp, sub), (fol, sub_fol)):
        keep = np.isin(table["user"], only)
        order = np.argsort(table["user"][keep], kind="stable")
        for name, values in part.items():
            np.testing.assert_array_equal(values, table[name][keep][order], err_msg=name)


class _Newest(FeedPolicy):
    """Newest eligible posts first, authors may repeat; asks for one follow-up page 60 s later."""

    def __init__(self):
        self.visits: list[tuple[Visit, np.ndarray]] = []

    def __call__(self, visit: Visit) -> np.ndarray:
        seen, hidden = visit.state.seen.copy(), visit.state.hidden.copy()
        assert not seen[visit.window].any() and not hidden[visit.world.post_author[visit.window]].any()
        feed = visit.window[::-1][: visit.world.config.feed_length]
        self.visits.append((visit, feed))
        return feed

    def observe(self, visit, feed, engagement, ts):
        assert visit.state.seen[feed].all()  # the world updated the state before observing
        return visit.t + 60 if visit.page == 1 else None


def test_a_policy_chooses_the_feeds_and_pages_continue_the_visit(world_run):
    policy = _Newest()
    imp, fol = _run(policy, only=np.arange(12))
    assert len(policy.visits) and any(v.page == 2 for v, _ in policy.visits)
    rows = pd.DataFrame({k: imp[k] for k in ("user", "post", "visit_ts", "ts", "position")})
    shown = rows.groupby(["user", "visit_ts"], sort=False)["post"].apply(list)
    for visit, feed in policy.visits:
        if len(feed):
            assert shown[(visit.user, visit.t)] == list(feed)
    # Page 2 starts after page 1 ended and at least 60 s after it started; positions continue.
    by_user = {}
    for visit, feed in policy.visits:
        by_user.setdefault(visit.user, []).append((visit, feed))
    for visits in by_user.values():
        for (first, feed1), (second, feed2) in zip(visits, visits[1:], strict=False):
            if second.page == 2 and len(feed1):
                end = rows[(rows["user"] == first.user) & (rows["visit_ts"] == first.t)]["ts"].max()
                assert second.t >= max(first.t + 60, end + 1)
                assert second.first_position == len(feed1)
                got = rows[(rows["user"] == second.user) & (rows["visit_ts"] == second.t)]["position"]
                assert list(got) == list(range(len(feed1), len(feed1) + len(feed2)))
    # Each user sees a post at most once, and the feeds are not the composer's.
    assert not rows.duplicated(["user", "post"]).any()
    world = world_run[0]
    keep = world["user"] < 12
    assert len(rows) != keep.sum() or not np.array_equal(rows["post"].to_numpy(), world["post"][keep])
