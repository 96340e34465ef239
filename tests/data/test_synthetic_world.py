"""The synthetic world is deterministic, leak-free and obeys its structural rules (§9, S4, S9, S10).

Guards the reference's pitfalls (§9.7): timestamps from a per-user counter, dropped impressions,
truth columns in public tables, blocked authors reappearing, posts shown twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time

import numpy as np
import pandas as pd
import pytest

from x_reco.common.actions import ACTIONS
from x_reco.data.synthetic import (
    INTERACTION_EXTRA_COLUMNS,
    SOCIAL_TABLES,
    WorldConfig,
    generate_world,
    generate_world_tables,
    resolve_config,
)
from x_reco.data.synthetic.checks import structural_violations
from x_reco.data.synthetic.config import ARCHETYPES, CLOCK_START_TS
from x_reco.data.synthetic.entities import make_authors, make_users
from x_reco.data.synthetic.world import IMPRESSION_COLUMNS, seed_children, split_cutoffs
from x_reco.data.tables import INTERACTION_COLUMNS

PUBLIC_TABLES = ("users", "authors", "posts", "impressions", "follows")
TRUTH_TABLES = ("truth_users", "truth_authors", "truth_posts", "truth_impressions")
POST_COLUMNS = ["author_id", "created_ts", "media_type", "is_quote"]
TRUTH_ONLY = {"archetype", "topic", "b_u", "q_a", "q_p", "visit_rate", "post_rate", "followed"}


@pytest.fixture(scope="module")
def tiny():
    return generate_world(WorldConfig.tiny())


def table_digest(df: pd.DataFrame) -> str:
    """Hash of values, dtypes, column names and Parquet bytes."""
    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    h.update(repr(list(zip(df.columns, map(str, df.dtypes), strict=True))).encode())
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    h.update(buf.getvalue())
    return h.hexdigest()


def world_digests(world) -> dict[str, str]:
    digests = {name: table_digest(getattr(world, name)) for name in PUBLIC_TABLES + TRUTH_TABLES}
    manifest = json.dumps(world.manifest, sort_keys=True).encode()
    digests["manifest"] = hashlib.sha256(manifest).hexdigest()
    return digests


def test_same_config_is_byte_identical(tiny):
    assert world_digests(generate_world(WorldConfig.tiny())) == world_digests(tiny)


def test_other_seed_gives_other_users_and_authors():
    worlds = []
    for seed in (0, 1):
        seeds = seed_children(seed)
        authors = make_authors(WorldConfig.tiny(), np.random.default_rng(seeds["authors"]))
        users = make_users(WorldConfig.tiny(), np.random.default_rng(seeds["users"]), authors)
        worlds.append((authors.quality, users.theta))
    assert not np.allclose(worlds[0][0], worlds[1][0])
    assert not np.allclose(worlds[0][1], worlds[1][1])


def test_changing_num_days_does_not_reshuffle_users_authors_or_early_posts(tiny):
    short = generate_world(dataclasses.replace(WorldConfig.tiny(), num_days=3))
    for name in ("users", "truth_users", "authors", "truth_authors"):
        pd.testing.assert_frame_equal(getattr(short, name), getattr(tiny, name))
    # Posts come day by day from their own seed children, so the first three days are kept.
    pd.testing.assert_frame_equal(short.posts, tiny.posts.iloc[: len(short.posts)])
    later = tiny.posts["created_ts"].iloc[len(short.posts) :]
    assert len(later) > 0 and (later >= CLOCK_START_TS + 3 * 86_400).all()


def test_public_tables_have_exactly_the_spec_columns(tiny):
    assert list(tiny.users.columns) == ["user_id", "created_ts"]
    assert list(tiny.authors.columns) == ["author_id"]
    assert list(tiny.posts.columns) == ["post_id", *POST_COLUMNS]
    assert list(tiny.follows.columns) == ["user_id", "author_id", "since_ts", "until_ts"]
    assert tuple(tiny.impressions.columns) == IMPRESSION_COLUMNS
    assert IMPRESSION_COLUMNS[7:25] == ACTIONS[:18]
    assert IMPRESSION_COLUMNS[25:] == ("dwell_seconds", "dwell_time")


def test_no_truth_column_in_public_tables(tiny):
    for name in PUBLIC_TABLES:
        cols = set(getattr(tiny, name).columns)
        assert not cols & TRUTH_ONLY, name
        assert not {c for c in cols if c.startswith(("theta_", "p_"))}, name
    assert {"archetype"} <= set(tiny.truth_users.columns)
    assert {"topic", "q_p"} <= set(tiny.truth_posts.columns)


def test_ids_are_strings_and_unique(tiny):
    assert tiny.users["user_id"].iloc[0] == "u0001"
    assert tiny.authors["author_id"].iloc[0] == "a001"
    assert tiny.posts["post_id"].iloc[0] == "p000001"
    for name, col in (
        ("users", "user_id"),
        ("authors", "author_id"),
        ("posts", "post_id"),
        ("impressions", "impression_id"),
    ):
        ids = getattr(tiny, name)[col]
        assert ids.map(type).eq(str).all() and ids.is_unique


def test_every_structural_rule_holds_on_every_impression(tiny):
    cfg = WorldConfig.tiny()
    counts = structural_violations(tiny.impressions, tiny.posts, tiny.follows, cfg.dwell_short_s, cfg.dwell_long_s)
    assert counts == dict.fromkeys(counts, 0)
    assert len(counts) >= 14


def test_rule_checker_catches_each_kind_of_violation(tiny):
    cfg = WorldConfig.tiny()
    imp = tiny.impressions.copy()
    photo = set(tiny.posts.loc[tiny.posts["media_type"] == "photo", "post_id"])
    row = imp.index[(imp["dwell"] == 0) & ~imp["post_id"].isin(photo)][0]
    imp.loc[row, ["favorite", "photo_expand", "share_via_dm", "block_author"]] = 1
    imp = pd.concat([imp, imp.iloc[[0]]], ignore_index=True)  # the same post shown twice
    counts = structural_violations(imp, tiny.posts, tiny.follows, cfg.dwell_short_s, cfg.dwell_long_s)
    for rule in (
        "positive_without_dwell",
        "positive_with_negative",
        "photo_expand_not_photo",
        "share_subtype_without_share",
        "repeated_post",
    ):
        assert counts[rule] >= 1, rule


def test_blocked_or_muted_authors_never_reappear(tiny):
    imp = tiny.impressions.merge(tiny.posts[["post_id", "author_id"]], on="post_id")
    hidden = imp[(imp["block_author"] == 1) | (imp["mute_author"] == 1)]
    assert len(hidden) > 0, "the tiny world should contain at least one block or mute"
    first = hidden.groupby(["user_id", "author_id"])["ts"].min().rename("hidden_ts")
    later = imp.join(first, on=["user_id", "author_id"]).query("ts > hidden_ts")
    assert later.empty
    # A block or mute also ends the follow.
    follows = tiny.follows.merge(first.reset_index(), on=["user_id", "author_id"])
    assert (follows["until_ts"].notna() | (follows["since_ts"] > follows["hidden_ts"])).all()


def test_posts_are_never_shown_twice_and_always_before_they_expire(tiny):
    imp = tiny.impressions.merge(tiny.posts[["post_id", "created_ts"]], on="post_id")
    assert not imp.duplicated(["user_id", "post_id"]).any()
    visit_start = imp.groupby("visit_id")["ts"].transform("min")
    age = visit_start - imp["created_ts"]
    assert (age > 0).all() and (age <= WorldConfig.tiny().recency_hours * 3600).all()


def test_timestamps_are_interleaved_wall_clock(tiny):
    imp = tiny.impressions
    assert imp["ts"].is_monotonic_increasing
    # A per-user counter would visit users one after the other: here users alternate constantly.
    switches = int((imp["user_id"] != imp["user_id"].shift()).sum())
    assert switches > 5 * imp["user_id"].nunique()
    day = (imp["ts"] - imp["ts"].min()) // 86_400
    assert imp.groupby(day)["user_id"].nunique().min() > 10
    # Visit ids follow wall-clock order across users.
    first_ts = imp.groupby("visit_id")["ts"].min()
    assert first_ts.sort_index().is_monotonic_increasing


def test_visits_are_feeds_of_distinct_authors(tiny):
    imp = tiny.impressions.merge(tiny.posts[["post_id", "author_id"]], on="post_id")
    visits = imp.groupby("visit_id")
    assert (visits["user_id"].nunique() == 1).all() and (visits["surface"].nunique() == 1).all()
    assert (visits["position"].max() + 1 == visits.size()).all()
    assert (visits.size() <= WorldConfig.tiny().feed_length).all()
    assert not imp.duplicated(["visit_id", "author_id"]).any()
    assert set(imp["surface"].unique()) <= {0, 1, 2}


def test_follow_actions_become_follow_edges(tiny):
    imp = tiny.impressions.merge(tiny.posts[["post_id", "author_id"]], on="post_id")
    follows = imp.loc[imp["follow_author"] == 1, ["user_id", "author_id", "ts"]]
    assert len(follows) > 0
    edges = follows.merge(
        tiny.follows, left_on=["user_id", "author_id", "ts"], right_on=["user_id", "author_id", "since_ts"]
    )
    assert len(edges) == len(follows)
    assert not tiny.follows.duplicated(["user_id", "author_id"]).any()


def test_manifest_records_config_seeds_and_calibration(tiny):
    m = tiny.manifest
    assert WorldConfig.from_dict(m["config"]) == WorldConfig.tiny()
    assert set(m["seeds"]["children"]) == {
        "users",
        "authors",
        "posts",
        "exposure",
        "engagement",
        "calibration",
        "social",
    }
    cal = m["calibration"]
    assert len(cal["thresholds"]) == 6 and all(len(v) == 6 for v in cal["thresholds"].values())
    assert cal["max_abs_error"] <= WorldConfig.tiny().calibration_tol
    assert m["split_cutoffs"]["train_end_ts"] == split_cutoffs(WorldConfig.tiny())[0]
    json.dumps(m)  # JSON-ready


def test_generate_world_tables_maps_to_the_canonical_raw_tables(tiny):
    raw = generate_world_tables({"size": "tiny"})
    inter = raw.interactions
    assert raw.partition == "synthetic"
    assert tuple(inter.columns) == INTERACTION_COLUMNS + INTERACTION_EXTRA_COLUMNS
    assert INTERACTION_EXTRA_COLUMNS[-1] == ACTIONS[18] == "dwell_time"
    assert len(inter) == len(tiny.impressions)  # every impression, engaged or not
    assert (inter["src_row"].to_numpy() == np.arange(len(inter))).all()
    assert inter["rating"].isna().all() and inter["label"].isna().all()
    assert str(inter["label"].dtype) == "Int8" and (inter["src_file"] == "impressions").all()
    assert inter[["ts", "user_id", "position"]].equals(
        inter.sort_values(["ts", "user_id", "position"])[["ts", "user_id", "position"]]
    )
    assert (inter["item_id"] == tiny.impressions["post_id"]).all()
    assert list(raw.items.columns) == ["item_id", *POST_COLUMNS]
    assert list(raw.users.columns) == ["user_id", "created_ts"]
    assert set(raw.extra) == {"authors", "follows", *SOCIAL_TABLES}  # §14 tables: tests/data/test_synthetic_social.py
    assert set(raw.truth) == {"users", "authors", "posts", "impressions"}
    assert raw.manifest["config"] == tiny.manifest["config"]


def test_config_sizes_and_overrides():
    assert resolve_config(None) == WorldConfig.small()
    assert WorldConfig.default() == WorldConfig()
    tiny = WorldConfig.tiny()
    assert (tiny.seed, tiny.num_users, tiny.num_authors, tiny.num_days) == (0, 60, 12, 5)
    sizes = [WorldConfig.large(), WorldConfig.default(), WorldConfig.small(), tiny]
    assert [c.num_users for c in sizes] == sorted((c.num_users for c in sizes), reverse=True)
    cfg = WorldConfig.from_dict({"size": "tiny", "num_days": 7, "split": [0.6, 0.2, 0.2]})
    assert cfg.num_days == 7 and cfg.split == (0.6, 0.2, 0.2) and cfg.num_users == 60
    rates = dict(zip(ARCHETYPES, (1, 2, 3, 4, 5, 6), strict=True))
    assert WorldConfig.from_dict({"visits_per_day": rates}).visits_per_day == (1, 2, 3, 4, 5, 6)
    assert WorldConfig.from_dict(WorldConfig.small().to_dict()) == WorldConfig.small()


@pytest.mark.parametrize(
    "bad",
    [
        {"num_userz": 3},
        {"size": "huge"},
        {"num_users": 0},
        {"surface_probs": [0.5, 0.5, 0.5]},
        {"split": [0.9, 0.1]},
        {"dwell_short_s": 20.0},
        {"in_network_share": 1.5},
        {"visits_per_day": {"lurker": 1.0}},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        WorldConfig.from_dict(bad)


def test_small_world_has_demo_size():
    assert len(generate_world(WorldConfig.small()).impressions) > 10_000


@pytest.mark.slow
def test_small_world_stays_demo_fast():
    """Wall-clock claim (a few seconds on two idle cores): slow suite only, a loaded machine is not a failure."""
    start = time.perf_counter()
    generate_world(WorldConfig.small())
    assert time.perf_counter() - start < 30.0


def test_structural_rules_suite_names_broken_rules():
    """The S4 check used by the raw_interactions asset passes on a generated world and names the
    rule a corrupted row breaks."""
    from x_reco.data import quality
    from x_reco.data.registry import load_raw

    raw = load_raw("synthetic", synthetic_config={"size": "tiny"})
    assert quality.structural_rules_result(raw).success
    raw.interactions.loc[raw.interactions.index[:3], ["favorite", "block_author"]] = 1
    result = quality.structural_rules_result(raw)
    assert not result.success
    assert any("positive_with_negative" in f for f in result.failed)
