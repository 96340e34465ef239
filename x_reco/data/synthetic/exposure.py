"""The recommender in the loop (datasets spec §9.3): visits, feeds, engagement and graph updates.

Each visit's feed comes from a ``FeedPolicy`` (candidate-pipeline spec §15.4 hook); the default is the
world's own composer (``compose_feed``), which leaves every table byte-identical.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from x_reco.data.synthetic.config import CLOCK_START_TS, SURFACES, WorldConfig
from x_reco.data.synthetic.engagement import Engagement, Exposures, draw_noise, sample_engagement
from x_reco.data.synthetic.entities import DAY_S, Authors, Posts, Users
from x_reco.data.synthetic.targets import DISCRETE, P_DM_GIVEN_SHARE, taste_anchors

WAKE_S, SLEEP_S = 7 * 3600, 23 * 3600
QUALITY_WEIGHT = 0.3
_FOLLOW, _BLOCK, _MUTE = (DISCRETE.index(a) for a in ("follow_author", "block_author", "mute_author"))
_ANCHORS = taste_anchors()


@dataclasses.dataclass
class Log:
    """Column lists filled visit by visit, concatenated once at the end."""

    columns: dict[str, list] = dataclasses.field(default_factory=dict)

    def add(self, **arrays) -> None:
        for name, values in arrays.items():
            self.columns.setdefault(name, []).append(values)

    def arrays(self, empty: dict[str, tuple]) -> dict[str, np.ndarray]:
        """Concatenated columns; `empty` gives (dtype, trailing shape) for a log with no rows."""
        return {
            name: np.concatenate(self.columns[name]) if self.columns.get(name) else np.zeros((0, *shape), dtype)
            for name, (dtype, shape) in empty.items()
        }


IMPRESSION_FIELDS = {
    "user": (np.int64, ()),
    "post": (np.int64, ()),
    "visit_ts": (np.int64, ()),
    "ts": (np.int64, ()),
    "surface": (np.int8, ()),
    "position": (np.int16, ()),
    "actions": (np.int8, (len(DISCRETE),)),
    "dwell_seconds": (np.float32, ()),
    "dwell_time": (np.int8, ()),
    "probs": (np.float32, (len(DISCRETE) + 1,)),
    "followed": (bool, ()),
}
FOLLOW_FIELDS = {
    "user": (np.int64, ()),
    "author": (np.int64, ()),
    "since_ts": (np.int64, ()),
    "until_ts": (np.int64, ()),
}
OPEN = -1  # until_ts of a follow that is still active


@dataclasses.dataclass
class _UserState:
    """One user's mutable graph: followed and hidden (blocked or muted) authors, seen posts."""

    followed: np.ndarray  # bool [A]
    hidden: np.ndarray  # bool [A]
    seen: np.ndarray  # bool [P]
    since: dict[int, int]  # author -> since_ts of the open follow
    closed: list[tuple[int, int, int]]  # (author, since_ts, until_ts)


def visit_times(config: WorldConfig, rate: float, rng: np.random.Generator):
    """Sorted visit start times and surfaces: Poisson(rate) per day, uniform in waking hours."""
    counts = rng.poisson(rate, config.num_days)
    day = np.repeat(np.arange(config.num_days), counts)
    starts = CLOCK_START_TS + day * DAY_S + rng.integers(WAKE_S, SLEEP_S, len(day))
    surfaces = rng.choice(len(SURFACES), size=len(day), p=config.surface_probs)
    return np.sort(starts), surfaces


def compose_feed(
    rng,
    eligible: np.ndarray,
    in_network: np.ndarray,
    log_weight: np.ndarray,
    author: np.ndarray,
    feed_length: int,
    n_in: int,
) -> np.ndarray:
    """Post indices of one feed, in position order.

    Followed authors' posts are drawn uniformly, the rest ∝ exp(log_weight), all without
    replacement (Gumbel-top-k) and at most one post per author so that a block or mute inside
    the visit can never precede another post of the same author. Slots one side cannot fill go
    to the other.
    """
    keys = np.where(in_network, 0.0, log_weight) + rng.gumbel(size=len(eligible))
    order = np.argsort(-keys, kind="stable")
    _, first = np.unique(author[order], return_index=True)
    best = order[np.sort(first)]  # one post per author, best key first
    inside, outside = best[in_network[best]], best[~in_network[best]]
    take_in = min(n_in, len(inside))
    take_out = min(feed_length - take_in, len(outside))
    take_in = min(feed_length - take_out, len(inside))
    chosen = np.concatenate([inside[:take_in], outside[:take_out]])
    return eligible[chosen[rng.permutation(len(chosen))]]


def impression_times(start: int, dwell_seconds: np.ndarray) -> np.ndarray:
    """Wall-clock second of each slot: one second per slot plus the dwell on earlier slots."""
    before = np.concatenate([[0.0], np.cumsum(dwell_seconds[:-1], dtype=np.float64)])
    return start + np.arange(len(dwell_seconds)) + np.floor(before).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _World:
    """Read-only inputs shared by every user's simulation."""

    config: WorldConfig
    users: Users
    authors: Authors
    posts: Posts
    base_logits: np.ndarray
    post_author: np.ndarray
    quality_weight: np.ndarray  # [P] 0.3 q_p


def _engage(world: _World, u: int, feed: np.ndarray, state: _UserState, rng, first_position: int = 0) -> tuple:
    posts, users = world.posts, world.users
    arch = users.archetype[u]
    topic = posts.topic[feed]
    followed = state.followed[world.post_author[feed]]
    exp = Exposures(
        archetype=np.full(len(feed), arch),
        topic=topic,
        b_u=np.full(len(feed), users.b_u[u]),
        taste_dev=users.theta[u, topic] - _ANCHORS[arch, topic],
        quality=posts.quality[feed],
        followed=followed,
        position=first_position + np.arange(len(feed)),
        media=posts.media[feed],
        is_quote=posts.is_quote[feed],
    )
    cfg = world.config
    eng = sample_engagement(
        exp, draw_noise(rng, len(feed)), world.base_logits, P_DM_GIVEN_SHARE, cfg.dwell_short_s, cfg.dwell_long_s
    )
    return eng, followed


def _update_graph(state: _UserState, authors: np.ndarray, actions: np.ndarray, ts: np.ndarray):
    """Follow, block and mute take effect before the user's next visit, in position order.

    A follow of an author already followed or hidden is ignored: the world's composer never shows an
    author twice per visit, but another policy may (§15.4), and a follow must not reopen an edge.
    """
    follow, hide = actions[:, _FOLLOW] > 0, (actions[:, _BLOCK] | actions[:, _MUTE]) > 0
    for j in np.flatnonzero(follow | hide):
        a = int(authors[j])
        if follow[j] and not (state.followed[a] or state.hidden[a]):
            state.followed[a] = True
            state.since[a] = int(ts[j])
        if hide[j]:
            state.hidden[a] = True
            if state.followed[a]:
                state.followed[a] = False
                state.closed.append((a, state.since.pop(a), int(ts[j])))


def _initial_state(world: _World, u: int) -> _UserState:
    users = world.users
    mine = users.follow_author[users.follow_user == u]
    followed = np.zeros(len(world.authors.topic), dtype=bool)
    followed[mine] = True
    since = {int(a): int(users.created_ts[u]) for a in mine}
    return _UserState(followed, np.zeros_like(followed), np.zeros(len(world.post_author), bool), since, [])


@dataclasses.dataclass(frozen=True)
class Visit:
    """What a feed policy knows when user ``user`` opens the app at ``t`` (§15.4 hook).

    ``window`` holds the post indices the world's composer may show: created in ``[t - recency, t)``,
    unseen, by an author the user has not hidden. ``state`` is the user's live graph (read it, never
    write it). ``page`` is 1 for a visit and 2, 3, ... for the follow-up pages a policy asks for;
    ``first_position`` is the feed position of the page's first post.
    """

    world: _World
    user: int
    t: int
    surface: int
    page: int
    first_position: int
    window: np.ndarray
    state: _UserState
    exp_rng: np.random.Generator
    log_weight: np.ndarray  # [P] the composer's out-of-network log-weights for this user
    n_in: int  # the composer's in-network slots


class FeedPolicy:
    """Chooses every visit's feed; this base class is the world's own composer (``compose_feed``).

    A policy returns the feed's post indices in position order (empty: the visit shows nothing).
    After the world sampled the engagement and updated the user's graph, ``observe`` sees the
    outcome and may ask for a follow-up page at a time (None: the visit ends).
    """

    def __call__(self, visit: Visit) -> np.ndarray:
        world, window = visit.world, visit.window
        authors = world.post_author[window]
        in_network = visit.state.followed[authors]
        n = world.config.feed_length
        return compose_feed(visit.exp_rng, window, in_network, visit.log_weight[window], authors, n, visit.n_in)

    def observe(self, visit: Visit, feed: np.ndarray, engagement: Engagement, ts: np.ndarray) -> int | None:
        return None


WORLD_COMPOSER = FeedPolicy()


def simulate_user(
    world: _World, u: int, exp_rng, eng_rng, log: Log, follows: Log, policy: FeedPolicy = WORLD_COMPOSER
) -> None:
    """Every visit of user u, appended to `log`; the user's follow edges go to `follows`.

    ``policy`` chooses each feed (default: the world's composer, whose output is the world's tables).
    """
    cfg, posts = world.config, world.posts
    state = _initial_state(world, u)
    theta_weight = cfg.personalization * world.users.theta[u, posts.topic]
    log_weight = theta_weight + world.quality_weight
    n_in = int(round(cfg.in_network_share * cfg.feed_length))
    recency = int(round(cfg.recency_hours * 3600))
    starts, surfaces = visit_times(cfg, world.users.visit_rate[u], exp_rng)
    free_at = np.iinfo(np.int64).min
    for start, surface in zip(starts, surfaces, strict=True):
        page: tuple[int, int, int] | None = (max(int(start), free_at), 1, 0)  # a visit starts after the last ended
        while page is not None:
            t, number, first = page
            lo, hi = np.searchsorted(posts.created_ts, [t - recency, t])
            window = np.arange(lo, hi)
            window = window[~state.seen[lo:hi] & ~state.hidden[world.post_author[lo:hi]]]
            visit = Visit(world, u, t, int(surface), number, first, window, state, exp_rng, log_weight, n_in)
            feed = np.asarray(policy(visit), dtype=np.int64)
            if len(feed) == 0:
                break
            eng, followed = _engage(world, u, feed, state, eng_rng, first)
            ts = impression_times(t, eng.dwell_seconds)
            _record(log, u, feed, t, ts, surface, eng, followed, first)
            state.seen[feed] = True
            _update_graph(state, world.post_author[feed], eng.actions, ts)
            free_at = int(ts[-1]) + 1
            follow_up = policy.observe(visit, feed, eng, ts)
            page = None if follow_up is None else (max(int(follow_up), free_at), number + 1, first + len(feed))
    _record_follows(follows, u, state)


def _record(log: Log, u, feed, t, ts, surface, eng: Engagement, followed, first_position: int = 0) -> None:
    n = len(feed)
    log.add(
        user=np.full(n, u),
        post=feed,
        visit_ts=np.full(n, t),
        ts=ts,
        surface=np.full(n, surface, np.int8),
        position=np.arange(first_position, first_position + n, dtype=np.int16),
        actions=eng.actions,
        dwell_seconds=eng.dwell_seconds,
        dwell_time=eng.dwell_time,
        probs=eng.probs.astype(np.float32),
        followed=followed,
    )


def _record_follows(follows: Log, u: int, state: _UserState) -> None:
    edges = state.closed + [(a, s, OPEN) for a, s in state.since.items()]
    if edges:
        a, s, e = (np.array(col, dtype=np.int64) for col in zip(*edges, strict=True))
        follows.add(user=np.full(len(a), u), author=a, since_ts=s, until_ts=e)


def simulate(
    config: WorldConfig,
    users: Users,
    authors: Authors,
    posts: Posts,
    base_logits: np.ndarray,
    exposure_seed,
    engagement_seed,
    policy: FeedPolicy = WORLD_COMPOSER,
    only: np.ndarray | None = None,
):
    """Run every user (or the user indices in ``only``, ascending); returns (impression columns,
    follow columns) as dicts of arrays.

    Users never influence each other, so each is simulated alone, visit after visit, drawing from
    child u of the exposure and engagement seed sequences; within a visit all work is numpy. A user
    simulated alone (``only``) gets exactly the rows the full run gives them. ``policy`` composes
    every feed (§15.4; default: the world's composer).
    """
    world = make_world(config, users, authors, posts, base_logits)
    exposure_children = exposure_seed.spawn(config.num_users)
    engagement_children = engagement_seed.spawn(config.num_users)
    log, follows = Log(), Log()
    for u in range(config.num_users) if only is None else np.unique(np.asarray(only, dtype=np.int64)):
        simulate_user(
            world,
            int(u),
            np.random.default_rng(exposure_children[u]),
            np.random.default_rng(engagement_children[u]),
            log,
            follows,
            policy,
        )
    return log.arrays(IMPRESSION_FIELDS), follows.arrays(FOLLOW_FIELDS)


def make_world(config: WorldConfig, users: Users, authors: Authors, posts: Posts, base_logits: np.ndarray) -> _World:
    """The read-only inputs every user's simulation shares (what a ``Visit`` carries as ``world``)."""
    return _World(config, users, authors, posts, base_logits, posts.author, QUALITY_WEIGHT * posts.quality)
