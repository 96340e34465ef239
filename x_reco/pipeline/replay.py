"""Closed-loop replay (candidate-pipeline spec §15.4, §16 ``closed_loop_replay``): the feed pipeline
replaces the synthetic world's composer for the world's last N days, per weight set.

Each user is simulated alone, as the world simulates them (``exposure.simulate`` with a feed policy):
the world's own composer before the replay start, the pipeline from then on. A pipeline visit is one
request through the stages of ``FeedPipeline.serve``, answered from a ``ReplayState`` (the partition's
tables before the start, the replay's own impressions, follows, blocks and mutes after); the user sees
the first ``feed_length`` served posts (the rest are served, not seen), a page 2 follows at t + 60 s
(or when page 1 ends, if later) with p 0.3 (power users) / 0.1, and the world's engagement model
samples what the user does.
Engagement noise is the world's per-user stream (common random numbers across weight sets); ``seed``
draws the user sample and the page-2 coins. Checkpoints stay frozen and nothing is trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS, NEGATIVE_ACTIONS
from x_reco.common.plotting import figure_png, subplots
from x_reco.data.synthetic.calibration import calibrate
from x_reco.data.synthetic.config import ARCHETYPES, CLOCK_START_TS, TOPICS, WorldConfig
from x_reco.data.synthetic.entities import DAY_S, make_authors, make_posts, make_users
from x_reco.data.synthetic.exposure import OPEN, FeedPolicy, Visit, simulate
from x_reco.data.synthetic.targets import LATENT_ACTIONS
from x_reco.data.synthetic.world import make_ids, seed_children
from x_reco.pipeline import hydrators as H
from x_reco.pipeline.explain import gini
from x_reco.pipeline.feed import FeedPipeline, ServedLogSideEffect
from x_reco.pipeline.framework import CandidatePipeline
from x_reco.pipeline.rules import DEFAULT_RULES, rule_set
from x_reco.pipeline.state import ServedLog, TableState
from x_reco.pipeline.types import FeedRequest, History, Query
from x_reco.reward.stakeholders import SYNTHETIC_ALPHAS, alpha_weights

WORLD_POLICY = "world"  # a weight-set name that keeps the world's own composer (the control, a baseline)
PAGE2_DELAY_S = 60
PAGE2_PROB, POWER_USER_PAGE2_PROB = 0.1, 0.3
UTILITIES = tuple(f"utility_{k}" for k in SYNTHETIC_ALPHAS)
METRICS = ("author_gini", "small_author_share", "in_network_share", "negative_rate", "follow_drift", *UTILITIES)
_NEG = np.array([ACTIONS.index(a) for a in NEGATIVE_ACTIONS])
_BLOCK, _MUTE = ACTIONS.index("block_author"), ACTIONS.index("mute_author")
_POWER = ARCHETYPES.index("power_user")


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """A replay: the world's last ``days`` days per weight set (``"world"``: the world's composer),
    ``feed_length`` seen posts per page (None: the world's), ``users`` sampled with ``seed`` (None: all)."""

    days: int = 3
    seed: int = 0
    weight_sets: tuple[str, ...] = ("published",)
    rules: str = DEFAULT_RULES
    feed_length: int | None = None
    users: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "weight_sets", tuple(self.weight_sets))
        rule_set(self.rules)
        if self.days < 1 or not self.weight_sets or len(set(self.weight_sets)) != len(self.weight_sets):
            raise ValueError(f"need days >= 1 and distinct weight sets, got {self.days}, {self.weight_sets}")
        for name in ("feed_length", "users"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """Tables ``replay_metrics`` (weight_set, day, day_start_ts, impressions, requests, METRICS),
    ``replay_impressions`` (what the users saw from the start on, with the truth utilities) and
    ``replay_served`` (every served post; ``seen`` false past ``feed_length``); figure ``replay_metrics``
    (PNG: a panel per metric, a line per weight set over the replay days)."""

    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes]


# -- the serving state of a replay (§4 ``ReplayState``) ------------------------------------------------
class ReplayState:
    """§4's serving state of a replay: ``base`` before ``start``, the replay's own events from then on.

    Per-viewer reads merge the two: history, seen posts, blocks and mutes (``record``) and the follow
    edges the simulation holds (``set_follows``). Subscriptions and author blocks stay as of ``start``
    (replayed follows and replies draw no new ones); muted keywords, posts and other users' aggregates
    (follower, view and like counts) are the world's at t. Every read keeps the leak rule (before t).
    """

    def __init__(self, base: TableState, start: int, observed_mask: np.ndarray):
        self.base, self.start = base, int(start)
        self._mask = np.asarray(observed_mask).astype(bool)
        cat = base.catalogue
        self._items, self._authors = pd.Index(cat.item_ids.astype(str)), pd.Index(cat.author_ids.astype(str))
        self._events: dict[str, list[dict[str, np.ndarray]]] = {}
        self._follows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._hidden: dict[str, dict[str, tuple[int, str]]] = {}  # user -> author -> (ts, "block" | "mute")

    def __getattr__(self, name: str) -> Any:  # post reads, the catalogue, users: the world's
        return getattr(self.base, name)

    def record(self, user_id: str, post_ids, author_ids, ts, surface: int, actions) -> None:
        """One page's impressions (``actions`` int8 [n, 19]); rows before ``start`` are the base's."""
        keep = np.asarray(ts, np.int64) >= self.start
        if not keep.any():
            return
        post, author = np.asarray(post_ids, str)[keep], np.asarray(author_ids, str)[keep]
        ts, raw = np.asarray(ts, np.int64)[keep], np.asarray(actions, np.int8)[keep]
        acts = raw * self._mask.astype(np.int8)  # build_events zeroes what the partition never observes
        rows = {"post": post, "item": self._items.get_indexer(post), "author": self._authors.get_indexer(author)}
        rows |= {"ts": ts, "surface": np.full(len(ts), surface, np.int8), "actions": acts}
        self._events.setdefault(user_id, []).append(rows | {"engaged": acts.any(axis=1)})
        # §14 user_blocks: the first block_author / mute_author per (user, author).
        hidden = self._hidden.setdefault(user_id, {})
        before = self.base.social_fields(user_id, self.start)
        before = before["blocked_ids"] | before["muted_ids"]
        for j in np.flatnonzero(raw[:, _BLOCK] | raw[:, _MUTE]):
            if author[j] not in hidden and author[j] not in before:
                hidden[author[j]] = (int(ts[j]), "block" if raw[j, _BLOCK] else "mute")

    def set_follows(self, user_id: str, author_ids, since, until) -> None:
        """The user's whole follow edge list (``until`` OPEN while followed): it replaces the base's."""
        self._follows[user_id] = (np.asarray(author_ids, str), np.asarray(since, np.int64), np.asarray(until, np.int64))

    def _rows(self, user_id: str, t: int) -> dict[str, np.ndarray] | None:
        parts = self._events.get(user_id)
        if not parts:
            return None
        rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return {k: v[rows["ts"] < t] for k, v in rows.items()}

    def history_at(self, user_id: str, t: int) -> History:
        h = self.base.history_at(user_id, min(t, self.start))
        rows = self._rows(user_id, t)
        if rows is None or not rows["engaged"].any():
            return h
        e, n0, s = rows["engaged"], h.length, self.base.history_len
        cols = {
            "item_idx": (h.item_idx, rows["item"], -1),
            "author_idx": (h.author_idx, rows["author"], -1),
            "ts": (h.ts, rows["ts"], 0),
            "surface": (h.surface, rows["surface"], 0),
            "actions": (h.actions, rows["actions"], 0),
        }
        n = min(n0 + int(e.sum()), s)
        out = {}
        for name, (old, new, fill) in cols.items():
            merged = np.concatenate([old[:n0], new[e].astype(old.dtype)])[-n:]
            out[name] = np.full_like(old, fill)
            out[name][:n] = merged
        return History(length=n, **out)

    def history_fields(self, user_id: str, t: int) -> dict[str, Any]:
        history = self.history_at(user_id, t)
        return {"user_idx": self.base.user_idx(user_id), "history": history, "cold_user": history.length == 0}

    def seen_ids(self, user_id: str, t: int) -> frozenset[str]:
        rows = self._rows(user_id, t)
        seen = self.base.seen_ids(user_id, min(t, self.start))
        return seen if rows is None else seen | frozenset(rows["post"].tolist())

    def followed_ids(self, user_id: str, t: int) -> frozenset[str]:
        if user_id not in self._follows:
            return self.base.followed_ids(user_id, min(t, self.start))
        author, since, until = self._follows[user_id]
        return frozenset(author[(since < t) & ((until == OPEN) | (until >= t))].tolist())

    def social_fields(self, user_id: str, t: int) -> dict[str, Any]:
        fields = self.base.social_fields(user_id, min(t, self.start))
        hidden = [(a, kind) for a, (ts, kind) in self._hidden.get(user_id, {}).items() if ts < t]
        fields["blocked_ids"] |= frozenset(a for a, kind in hidden if kind == "block")
        fields["muted_ids"] |= frozenset(a for a, kind in hidden if kind == "mute")
        fields["followed_ids"] = self.followed_ids(user_id, t)
        fields["muted_keywords"] = self.base.social_fields(user_id, t)["muted_keywords"]
        return fields

    def author_blocks_viewer(self, author_ids, viewer: str, t: int) -> np.ndarray:
        return self.base.author_blocks_viewer(author_ids, viewer, min(t, self.start))

    def query(self, request: FeedRequest, served_log: ServedLog | None = None) -> Query:
        """Every §4 field of ``request``, as ``TableState.query`` gives them."""
        user, t = request.user_id, request.t
        fields = self.history_fields(user, t) | self.social_fields(user, t) | self.base.profile_fields(user, t)
        fields["seen_ids"] = self.seen_ids(user, t)
        fields["served_ids"] = served_log.served_ids(user, t) if served_log is not None else frozenset()
        return Query(request, **fields)


# -- the world under a policy -------------------------------------------------------------------------
_INPUTS: dict[WorldConfig, tuple] = {}


def world_inputs(config: WorldConfig, manifest: Mapping[str, Any] | None = None) -> tuple:
    """(users, authors, posts, base_logits) exactly as ``generate_world(config)`` draws them; the base
    logits come from the world's ``manifest`` when given (its calibration, exact in JSON), else are
    recalibrated (seconds). The last two worlds are kept."""
    if config not in _INPUTS:
        seeds = seed_children(config.seed)
        authors = make_authors(config, np.random.default_rng(seeds["authors"]))
        users = make_users(config, np.random.default_rng(seeds["users"]), authors)
        posts = make_posts(seeds["posts"].spawn(config.num_days), authors)
        logits = (manifest or {}).get("calibration", {}).get("base_logits")
        if logits is not None:
            base_logits = np.array([[[logits[a][t][n] for n in LATENT_ACTIONS] for t in TOPICS] for a in ARCHETYPES])
        else:
            base_logits = calibrate(config, np.random.default_rng(seeds["calibration"])).base_logits
        while len(_INPUTS) >= 2:
            _INPUTS.pop(next(iter(_INPUTS)))
        _INPUTS[config] = (users, authors, posts, base_logits)
    return _INPUTS[config]


def world_ids(config: WorldConfig) -> dict[str, np.ndarray]:
    """The public ids by index: ``user``, ``author``, ``post`` (as ``generate_world`` names them)."""
    posts = world_inputs(config)[2]
    return {
        "user": make_ids("u", config.num_users, 4),
        "author": make_ids("a", config.num_authors, 3),
        "post": make_ids("p", len(posts.author), 6),
    }


def simulate_world(config: WorldConfig, policy: FeedPolicy, only: np.ndarray | None = None):
    """``exposure.simulate`` of the world ``config`` under ``policy``: (impression, follow) columns."""
    seeds = seed_children(config.seed)
    users, authors, posts, base_logits = world_inputs(config)
    return simulate(config, users, authors, posts, base_logits, seeds["exposure"], seeds["engagement"], policy, only)


class ReplayPolicy(FeedPolicy):
    """The world's composer before ``start``; from then on ``serve(visit) -> post ids in position order``
    (None: the composer throughout) cut to ``feed_length``, with page-2 requests. Every impression,
    follow, block and mute is written to ``state`` (if any) before the user's next request."""

    def __init__(self, world: WorldConfig, start: int, state=None, serve=None, feed_length=None, seed: int = 0):
        self.start, self.state, self.serve, self.seed = int(start), state, serve, seed
        self.feed_length = feed_length or world.feed_length
        self.ids = world_ids(world)
        self.post_index = {str(p): i for i, p in enumerate(self.ids["post"])}
        self.pages: dict[tuple[int, int], int] = {}  # (user, request t) -> page
        self._coins: dict[int, np.random.Generator] = {}

    def _served(self, visit: Visit) -> bool:
        return self.serve is not None and visit.t >= self.start

    def __call__(self, visit: Visit) -> np.ndarray:
        self.pages[(visit.user, visit.t)] = visit.page
        if not self._served(visit):
            return super().__call__(visit)
        if self.state is not None:
            s = visit.state
            edges = s.closed + [(a, since, OPEN) for a, since in s.since.items()]
            a, since, until = (np.array([e[k] for e in edges], np.int64) for k in range(3))
            self.state.set_follows(self.ids["user"][visit.user], self.ids["author"][a], since, until)
        served = self.serve(visit)[: self.feed_length]
        return np.array([self.post_index[str(p)] for p in served], dtype=np.int64)

    def observe(self, visit: Visit, feed: np.ndarray, engagement, ts: np.ndarray) -> int | None:
        if self.state is not None:
            actions = np.concatenate([engagement.actions, engagement.dwell_time[:, None]], axis=1)
            author = self.ids["author"][visit.world.post_author[feed]]
            self.state.record(self.ids["user"][visit.user], self.ids["post"][feed], author, ts, visit.surface, actions)
        if not self._served(visit) or visit.page != 1:
            return None
        coins = self._coins.setdefault(visit.user, np.random.default_rng([self.seed, visit.user]))
        p = POWER_USER_PAGE2_PROB if visit.world.users.archetype[visit.user] == _POWER else PAGE2_PROB
        return visit.t + PAGE2_DELAY_S if coins.random() < p else None


def replay_pipeline(pipe: FeedPipeline, state: ReplayState, log: ServedLog, weights: str) -> CandidatePipeline:
    """``pipe``'s stages over ``state`` and a fresh served ``log``, ranking under ``weights`` (§15.4)."""
    p, w = pipe.pipeline, pipe._weights(weights)
    return CandidatePipeline(
        query_hydrators=H.query_hydrators(state, log),
        sources=p.sources,
        hydrators=H.candidate_hydrators(state),
        filters=p.filters,
        scorers=(p.scorers[0], pipe.ranking_scorer(w)),
        post_selection_hydrators=H.post_selection_hydrators(state) if pipe.social else (),
        post_selection_filters=p.post_selection_filters,
        side_effects=(ServedLogSideEffect(log, repr(w), pipe.rules.name, pipe.versions),),
        top_k=p.top_k,
        result_size=p.result_size,
        strict=p.strict,
    )


def _run(pipe: FeedPipeline, world: WorldConfig, start: int, name: str, config: ReplayConfig, only, tick=None) -> dict:
    """One weight set's replay: impressions, follow edges, pages and the served log."""
    if name == WORLD_POLICY:
        policy = ReplayPolicy(world, start, feed_length=config.feed_length, seed=config.seed)
        imp, fol = simulate_world(world, policy, only)
        return {"imp": imp, "fol": fol, "pages": policy.pages, "served": pd.DataFrame()}
    if pipe.scorer.cache is not None:
        pipe.scorer.cache.flush()  # every run starts from the same (empty) prefix cache: the same floats
    state, log = ReplayState(pipe.state, start, pipe.catalogue.observed_mask), ServedLog()
    stages = replay_pipeline(pipe, state, log, name)
    user_ids = world_ids(world)["user"]
    served = [0]

    def serve(visit: Visit) -> list[str]:
        request = FeedRequest(pipe.partition, str(user_ids[visit.user]), visit.t, visit.page, visit.surface)
        out = list(stages.run(Query(request)).served["post_id"])
        served[0] += 1
        if tick is not None:
            tick(served[0])
        return out

    policy = ReplayPolicy(world, start, state, serve, config.feed_length, config.seed)
    try:
        imp, fol = simulate_world(world, policy, only)
    finally:
        stages.close()
    return {"imp": imp, "fol": fol, "pages": policy.pages, "served": log.to_frame()}


def closed_loop_replay(
    pipeline: FeedPipeline | Callable[[str], FeedPipeline],
    world: WorldConfig | Mapping[str, Any] | None = None,
    config: ReplayConfig = ReplayConfig(),
    progress: Callable[[str, int, int, int], None] | None = None,
) -> ReplayResult:
    """Replay the world's last ``config.days`` days with the pipeline as its feed, per weight set.

    Args:
      pipeline: the synthetic partition's ``FeedPipeline`` (its rules must be ``config.rules``), or a
        factory ``rules -> FeedPipeline``.
      world: the world's ``WorldConfig``, raw manifest or config dict (default: the manifest the
        pipeline was built from); it must be the world the pipeline's tables come from.
      config: days, seed, weight sets, rules, feed length, user sample.
      progress: ``progress(weight_set, sets_done, sets_total, requests_served)``, called after every
        pipeline request and once when each weight set is done (logs with step counts and an ETA).
    """
    pipe = pipeline if isinstance(pipeline, FeedPipeline) else pipeline(config.rules)
    if pipe.rules.name != config.rules:
        raise ValueError(f"the pipeline runs rules {pipe.rules.name!r}, the replay asks for {config.rules!r}")
    world_cfg = _world_config(pipe, world)
    if config.days >= world_cfg.num_days:
        raise ValueError(f"days={config.days} leaves no day before the replay in a {world_cfg.num_days}-day world")
    world_inputs(world_cfg, pipe.data.manifest)  # the pipeline's manifest is this world's (checked above)
    start = CLOCK_START_TS + (world_cfg.num_days - config.days) * DAY_S
    only = np.arange(world_cfg.num_users)
    if config.users is not None and config.users < world_cfg.num_users:
        only = np.sort(np.random.default_rng(config.seed).choice(world_cfg.num_users, config.users, replace=False))
    runs = {}
    for i, name in enumerate(config.weight_sets):
        tick = (lambda n, name=name, i=i: progress(name, i, len(config.weight_sets), n)) if progress else None
        runs[name] = _run(pipe, world_cfg, start, name, config, only, tick)
        if progress is not None:
            progress(name, i + 1, len(config.weight_sets), -1)
    tables = _tables(runs, pipe, world_cfg, start, config, only)
    return ReplayResult(tables, {"replay_metrics": metrics_png(tables["replay_metrics"])})


def _world_config(pipe: FeedPipeline, world) -> WorldConfig:
    manifest = pipe.data.manifest or {}
    built = WorldConfig.from_dict(manifest["config"]) if "config" in manifest else None
    if world is None:
        if built is None:
            raise ValueError(f"the {pipe.partition} pipeline's manifest names no world config; pass the world")
        return built
    cfg = world if isinstance(world, WorldConfig) else WorldConfig.from_dict(world.get("config", world))
    if built is not None and cfg != built:
        raise ValueError(f"the replay world {cfg} is not the world of the pipeline's tables ({built})")
    return cfg


# -- metrics ------------------------------------------------------------------------------------------
def _follow_drift(fol: dict[str, np.ndarray], users: np.ndarray, start: int, t: int, num_authors: int) -> float:
    """Mean over ``users`` of the Jaccard distance between the follow set at ``start`` and at ``t``."""

    def edges(at):
        ok = (fol["since_ts"] < at) & ((fol["until_ts"] == OPEN) | (fol["until_ts"] >= at))
        return np.unique(fol["user"][ok] * num_authors + fol["author"][ok])

    a, b = edges(start), edges(t)
    size = int(users.max(initial=0)) + 1
    both = np.bincount(np.intersect1d(a, b) // num_authors, minlength=size)[users]
    either = np.bincount(np.union1d(a, b) // num_authors, minlength=size)[users]
    return float(np.mean(np.where(either > 0, 1.0 - both / np.maximum(either, 1), 0.0)))


def _impressions(run: dict, name: str, ids, post_author, start: int) -> pd.DataFrame:
    imp = run["imp"]
    keep = imp["ts"] >= start
    imp = {k: v[keep] for k, v in imp.items()}
    order = np.lexsort((imp["position"], imp["user"], imp["ts"]))
    imp = {k: v[order] for k, v in imp.items()}
    pages = [run["pages"][(int(u), int(t))] for u, t in zip(imp["user"], imp["visit_ts"], strict=True)]
    frame = {
        "weight_set": np.full(len(order), name, dtype=object),
        "user_id": ids["user"][imp["user"]],
        "post_id": ids["post"][imp["post"]],
        "author_id": ids["author"][post_author[imp["post"]]],
        "request_ts": imp["visit_ts"],
        "ts": imp["ts"],
        "page": np.asarray(pages, np.int16),
        "position": imp["position"],
        "in_network": imp["followed"],
    }
    frame |= {a: imp["actions"][:, k] for k, a in enumerate(ACTIONS[:18])} | {"dwell_time": imp["dwell_time"]}
    truth = imp["probs"][:, :18].astype(np.float64)
    frame |= {u: truth @ alpha_weights(a) for u, a in zip(UTILITIES, SYNTHETIC_ALPHAS.values(), strict=True)}
    return pd.DataFrame(frame)


def _tables(runs: dict, pipe: FeedPipeline, world: WorldConfig, start: int, config: ReplayConfig, only):
    ids, post_author = world_ids(world), world_inputs(world)[2].author
    followers = pipe.state.author_followers(ids["author"], start)
    small = np.zeros(world.num_authors, bool)
    small[np.lexsort((np.arange(world.num_authors), followers))[: world.num_authors // 2]] = True
    feed_length = config.feed_length or world.feed_length
    imps, rows, served = [], [], []
    for name, run in runs.items():
        frame = _impressions(run, name, ids, post_author, start)
        imps.append(frame)
        author = pd.Index(ids["author"]).get_indexer(frame["author_id"])
        day = (frame["ts"].to_numpy() - start) // DAY_S
        negative = frame[[ACTIONS[i] for i in _NEG]].to_numpy().any(axis=1)
        for d in range(config.days):
            m = day == d
            row = {"weight_set": name, "day": d, "day_start_ts": start + d * DAY_S, "impressions": int(m.sum())}
            row["requests"] = int(frame.loc[m, ["user_id", "request_ts"]].drop_duplicates().shape[0])
            row["author_gini"] = gini(np.bincount(author[m], minlength=world.num_authors))
            mean = (lambda x: float(x.mean())) if m.any() else (lambda x: float("nan"))
            row |= {"small_author_share": mean(small[author[m]]), "in_network_share": mean(frame["in_network"][m])}
            row["negative_rate"] = mean(negative[m])
            row["follow_drift"] = _follow_drift(run["fol"], only, start, start + (d + 1) * DAY_S, world.num_authors)
            row |= {u: mean(frame[u].to_numpy()[m]) for u in UTILITIES}
            rows.append(row)
        s = run["served"]
        if len(s):
            cols = [
                "request_id",
                "t",
                "user_id",
                "page",
                "position",
                "post_id",
                "served_type",
                "weighted_score",
                "score",
            ]
            s = s.loc[~s["is_ancestor"].astype(bool), cols].assign(weight_set=name)
            served.append(s.assign(seen=s["position"] < feed_length))
    served_frame = pd.concat(served, ignore_index=True) if served else pd.DataFrame()
    return {
        "replay_metrics": pd.DataFrame(rows),
        "replay_impressions": pd.concat(imps, ignore_index=True),
        "replay_served": served_frame,
    }


def metrics_png(metrics: pd.DataFrame) -> bytes:
    """One panel per metric: its value per replay day, a line per weight set."""
    fig, axes = subplots(2, (len(METRICS) + 1) // 2, figsize=(12.0, 5.6))
    for ax, metric in zip(axes.ravel(), METRICS, strict=False):
        for name, g in metrics.groupby("weight_set", sort=False):
            ax.plot(g["day"] + 1, g[metric], marker="o", label=name)
        ax.set_title(metric, fontsize=9)
        ax.set_xticks(np.arange(1, int(metrics["day"].max()) + 2))
        ax.set_xlabel("replay day", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(METRICS) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("closed-loop replay (§15.4)")
    return figure_png(fig)
