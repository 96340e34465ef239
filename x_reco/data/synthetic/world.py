"""`generate_world`: one seed -> public tables, truth tables and a manifest (datasets spec §9)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

import x_reco
from x_reco.data.synthetic.calibration import Calibration, calibrate
from x_reco.data.synthetic.config import (
    ARCHETYPES,
    CLOCK_START_TS,
    MEDIA_TYPES,
    TOPICS,
    WorldConfig,
)
from x_reco.data.synthetic.entities import (
    DAY_S,
    Authors,
    Posts,
    Users,
    largest_remainder,
    make_authors,
    make_posts,
    make_users,
)
from x_reco.data.synthetic.exposure import OPEN, simulate
from x_reco.data.synthetic.social import generate_social
from x_reco.data.synthetic.targets import DISCRETE

# Positional: a new child is appended, never inserted, so earlier children keep their spawn keys.
SEED_CHILDREN = ("users", "authors", "posts", "exposure", "engagement", "calibration", "social")
TRUTH_TABLES = ("truth_users", "truth_authors", "truth_posts", "truth_impressions")
IMPRESSION_COLUMNS = (
    "impression_id",
    "user_id",
    "post_id",
    "visit_id",
    "ts",
    "surface",
    "position",
    *DISCRETE,
    "dwell_seconds",
    "dwell_time",
)


@dataclasses.dataclass(frozen=True)
class World:
    """Public tables (no topic or archetype), truth tables (diagnostics only), the manifest and the
    §14 social tables (public; only the candidate pipeline reads them)."""

    users: pd.DataFrame  # user_id, created_ts
    authors: pd.DataFrame  # author_id
    posts: pd.DataFrame  # post_id, author_id, created_ts, media_type, is_quote
    impressions: pd.DataFrame  # IMPRESSION_COLUMNS, sorted by (ts, user_id, position)
    follows: pd.DataFrame  # user_id, author_id, since_ts, until_ts (<NA> while active)
    truth_users: pd.DataFrame  # user_id, archetype, theta_<topic>, b_u, visit_rate
    truth_authors: pd.DataFrame  # author_id, topic, q_a, post_rate
    truth_posts: pd.DataFrame  # post_id, topic, q_p
    truth_impressions: pd.DataFrame  # impression_id, followed, p_<action> (pre-rule π̃)
    manifest: dict[str, Any]
    # SOCIAL_TABLES (candidate-pipeline spec §14), drawn after the simulation; no training input.
    social: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)


def seed_children(seed: int) -> dict[str, np.random.SeedSequence]:
    """The named children of SeedSequence(seed); SEED_CHILDREN's order is part of the format."""
    return dict(zip(SEED_CHILDREN, np.random.SeedSequence(seed).spawn(len(SEED_CHILDREN)), strict=True))


def make_ids(prefix: str, n: int, width: int) -> np.ndarray:
    """1-based zero-padded string ids ("u0001"); wider when n needs it, so they sort as numbers."""
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def split_cutoffs(config: WorldConfig) -> tuple[int, int]:
    """(train_end_ts, val_end_ts): visits starting before the first are train, etc. (§12)."""
    train, val, _ = (int(d) for d in largest_remainder(config.num_days, config.split))
    return CLOCK_START_TS + train * DAY_S, CLOCK_START_TS + (train + val) * DAY_S


def generate_world(config: WorldConfig | None = None) -> World:
    """Generate the whole world from `config.seed`; the same config gives byte-identical tables."""
    config = config if config is not None else WorldConfig.default()
    seeds = seed_children(config.seed)
    authors = make_authors(config, np.random.default_rng(seeds["authors"]))
    users = make_users(config, np.random.default_rng(seeds["users"]), authors)
    posts = make_posts(seeds["posts"].spawn(config.num_days), authors)
    calibration = calibrate(config, np.random.default_rng(seeds["calibration"]))
    imp, fol = simulate(config, users, authors, posts, calibration.base_logits, seeds["exposure"], seeds["engagement"])
    ids = {
        "user": make_ids("u", config.num_users, 4),
        "author": make_ids("a", config.num_authors, 3),
        "post": make_ids("p", len(posts.author), 6),
    }
    impressions, truth_impressions = _impression_tables(imp, ids)
    tables = {
        "users": pd.DataFrame({"user_id": ids["user"], "created_ts": users.created_ts}),
        "authors": pd.DataFrame({"author_id": ids["author"]}),
        "posts": _posts_table(posts, ids),
        "impressions": impressions,
        "follows": _follows_table(fol, ids),
        "truth_users": _truth_users(users, ids),
        "truth_authors": _truth_authors(authors, ids),
        "truth_posts": pd.DataFrame(
            {"post_id": ids["post"], "topic": np.array(TOPICS, dtype=object)[posts.topic], "q_p": posts.quality}
        ),
        "truth_impressions": truth_impressions,
    }
    world = World(**tables, manifest={})
    social = generate_social(world, config, seeds["social"])
    return dataclasses.replace(world, social=social, manifest=_manifest(config, seeds, calibration, tables | social))


def _posts_table(posts: Posts, ids) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "post_id": ids["post"],
            "author_id": ids["author"][posts.author],
            "created_ts": posts.created_ts,
            "media_type": np.array(MEDIA_TYPES, dtype=object)[posts.media],
            "is_quote": posts.is_quote,
        }
    )


def _impression_tables(imp: dict[str, np.ndarray], ids) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows sorted by (ts, user, position); impression and visit ids follow wall-clock order."""
    order = np.lexsort((imp["position"], imp["user"], imp["ts"]))
    imp = {k: v[order] for k, v in imp.items()}
    n, num_users = len(order), len(ids["user"])
    # Visits are numbered by (start time, user) across all users, never per user.
    _, visit = np.unique(imp["visit_ts"] * num_users + imp["user"], return_inverse=True)
    impression_id = make_ids("i", n, 7)
    public = {
        "impression_id": impression_id,
        "user_id": ids["user"][imp["user"]],
        "post_id": ids["post"][imp["post"]],
        "visit_id": make_ids("v", int(visit.max(initial=-1)) + 1, 7)[visit],
        "ts": imp["ts"],
        "surface": imp["surface"],
        "position": imp["position"],
    }
    public.update({name: imp["actions"][:, k] for k, name in enumerate(DISCRETE)})
    public.update(dwell_seconds=imp["dwell_seconds"], dwell_time=imp["dwell_time"])
    truth = {"impression_id": impression_id, "followed": imp["followed"]}
    truth.update({f"p_{name}": imp["probs"][:, k] for k, name in enumerate((*DISCRETE, "dwell_time"))})
    return pd.DataFrame(public), pd.DataFrame(truth)


def _follows_table(fol: dict[str, np.ndarray], ids) -> pd.DataFrame:
    order = np.lexsort((fol["author"], fol["user"], fol["since_ts"]))
    until = pd.array(fol["until_ts"][order], dtype="Int64")
    until[fol["until_ts"][order] == OPEN] = pd.NA
    return pd.DataFrame(
        {
            "user_id": ids["user"][fol["user"][order]],
            "author_id": ids["author"][fol["author"][order]],
            "since_ts": fol["since_ts"][order],
            "until_ts": until,
        }
    )


def _truth_users(users: Users, ids) -> pd.DataFrame:
    table = {"user_id": ids["user"], "archetype": np.array(ARCHETYPES, dtype=object)[users.archetype]}
    table.update({f"theta_{t}": users.theta[:, k] for k, t in enumerate(TOPICS)})
    table.update(b_u=users.b_u, visit_rate=users.visit_rate)
    return pd.DataFrame(table)


def _truth_authors(authors: Authors, ids) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "author_id": ids["author"],
            "topic": np.array(TOPICS, dtype=object)[authors.topic],
            "q_a": authors.quality,
            "post_rate": authors.post_rate,
        }
    )


def _manifest(config: WorldConfig, seeds, calibration: Calibration, tables) -> dict[str, Any]:
    train_end, val_end = split_cutoffs(config)
    imp = tables["impressions"]
    return {
        "partition": "synthetic",
        "generator": "x_reco.data.synthetic.generate_world",
        "x_reco_version": x_reco.__version__,
        "config": config.to_dict(),
        "seeds": {"root": config.seed, "children": {name: list(ss.spawn_key) for name, ss in seeds.items()}},
        "clock_start_ts": CLOCK_START_TS,
        "split_cutoffs": {"train_end_ts": train_end, "val_end_ts": val_end},
        "counts": {name: len(df) for name, df in tables.items()} | {"visits": int(imp["visit_id"].nunique())},
        "action_rates": {a: float(imp[a].mean()) if len(imp) else 0.0 for a in (*DISCRETE, "dwell_time")},
        "calibration": calibration.to_manifest(),
    }
