"""Engagement rates match the §9.5 targets and carry the intended correlations (spec §9.4-9.5).

Protects against the reference's independent actions (favorite co-occurring with block), dead
label columns, and calibration that drifts once the structural rules cancel actions. The full
per-cell test needs the default world (slow); the default suite checks the directional
properties on a medium world and the calibration machinery on Monte Carlo samples.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest
from scipy import special

from x_reco.common.actions import ACTIONS
from x_reco.data.synthetic import WorldConfig, generate_world
from x_reco.data.synthetic.calibration import bisect_base_logits, calibrate, follow_share
from x_reco.data.synthetic.config import ARCHETYPES, TOPICS
from x_reco.data.synthetic.engagement import (
    Exposures,
    draw_noise,
    firing_keys,
    latent_scores,
    personal_offsets,
    sample_engagement,
)
from x_reco.data.synthetic.exposure import compose_feed
from x_reco.data.synthetic.targets import DISCRETE, LATENT_ACTIONS, P_DM_GIVEN_SHARE, target_rates

CROSS = (("political_L", "politics_R"), ("political_R", "politics_L"))
HOME = {"political_L": "politics_L", "political_R": "politics_R"}
CHECKED = ("favorite", "repost", "reply", "click", "dwell", "block_author")


def labelled(world) -> pd.DataFrame:
    """Impressions with the truth archetype and topic (diagnostics only)."""
    return world.impressions.merge(world.truth_users[["user_id", "archetype"]], on="user_id").merge(
        world.truth_posts[["post_id", "topic"]], on="post_id"
    )


def cell(imp: pd.DataFrame, archetype: str, topic: str) -> pd.DataFrame:
    return imp[(imp["archetype"] == archetype) & (imp["topic"] == topic)]


@pytest.fixture(scope="module")
def medium():
    """Default model with personalization = 1 on 300 users, 40 authors, 12 days (~5 s)."""
    cfg = dataclasses.replace(WorldConfig.default(), num_users=300, num_authors=40, num_days=12)
    return labelled(generate_world(cfg))


def assert_directional_properties(imp: pd.DataFrame, cross_block_floor: float) -> None:
    """The §9.5 properties that must hold whatever the exposure policy."""
    assert imp.loc[imp["archetype"] == "lurker", "repost"].mean() < 0.05
    assert imp.loc[imp["archetype"] == "power_user", "repost"].mean() > 0.30
    for arch, topic in CROSS:
        hostile = cell(imp, arch, topic)
        home = cell(imp, arch, HOME[arch])
        assert hostile["block_author"].mean() > cross_block_floor, (arch, topic)
        assert hostile["block_author"].mean() > 10 * home["block_author"].mean()
    repost = imp["repost"].mean()
    assert imp.loc[imp["favorite"] == 1, "repost"].mean() > 2 * repost
    outrage = cell(imp, "political_L", "politics_R")
    assert np.corrcoef(outrage["reply"], outrage["block_author"])[0, 1] > 0
    assert not ((imp["favorite"] == 1) & ((imp["block_author"] == 1) | (imp["report"] == 1))).any()


def test_directional_properties_on_a_medium_world(medium):
    # Medium cells hold ~800 cross-political exposures: a looser floor than the slow test's .20.
    assert_directional_properties(medium, cross_block_floor=0.15)


def test_every_action_fires_in_a_medium_world(medium):
    rates = medium[list(ACTIONS)].mean()
    assert (rates > 0).all(), rates[rates == 0]


def test_positive_actions_correlate_with_long_dwell(medium):
    long_dwell = medium["dwell_time"]
    assert long_dwell[medium["favorite"] == 1].mean() > 2 * long_dwell.mean()
    assert np.corrcoef(medium["not_interested"], medium["mute_author"])[0, 1] > 0


@pytest.mark.slow
def test_calibration_targets_on_the_default_world_without_personalization():
    """§9.5: default config, personalization = 0, cells with >= 2,000 exposures."""
    start = time.perf_counter()
    imp = labelled(generate_world(dataclasses.replace(WorldConfig.default(), personalization=0.0)))
    print(f"default world (personalization 0) generated in {time.perf_counter() - start:.1f} s")
    targets = target_rates()
    misses = []
    for (arch, topic), group in imp.groupby(["archetype", "topic"]):
        if len(group) < 2_000:
            continue
        for action in CHECKED:
            target = targets[ARCHETYPES.index(arch), TOPICS.index(topic), DISCRETE.index(action)]
            rate = group[action].mean()
            if abs(rate - target) > max(0.03, 0.25 * target):
                misses.append((arch, topic, action, target, round(rate, 4), len(group)))
    assert not misses
    assert imp.groupby(["archetype", "topic"]).size().min() >= 2_000
    assert_directional_properties(imp, cross_block_floor=0.20)


def _exposures(n: int, rng: np.random.Generator, **overrides) -> Exposures:
    fields = dict(
        archetype=rng.integers(0, 6, n),
        topic=rng.integers(0, 6, n),
        b_u=rng.normal(0, 0.5, n),
        taste_dev=rng.normal(0, 0.15, n),
        quality=rng.normal(0, 0.7, n),
        followed=rng.random(n) < 0.5,
        position=rng.integers(0, 10, n),
        media=rng.integers(0, 4, n),
        is_quote=rng.random(n) < 0.1,
    )
    fields.update(overrides)
    return Exposures(**fields)


def test_threshold_view_equals_calibration_key_view():
    """The generator tests L > Φ⁻¹(1 - π̃); calibration tests c > logit Φ(-L) - o: same fires."""
    rng = np.random.default_rng(3)
    exp, noise = _exposures(5_003, rng), draw_noise(rng, 5_003)
    base = rng.normal(-1.0, 1.5, (6, 6, len(LATENT_ACTIONS)))
    keys = firing_keys(exp, noise)
    by_keys = base[exp.archetype, exp.topic] > keys
    logits = base[exp.archetype, exp.topic] + personal_offsets(exp)
    by_threshold = latent_scores(exp, noise) > -special.ndtri(special.expit(logits))
    assert (by_keys != by_threshold).mean() < 1e-4


def test_latent_marginals_equal_the_personalised_rates():
    """Before the rules, each action fires with probability sigmoid(c + o) (§9.4.2)."""
    rng = np.random.default_rng(5)
    n = 200_003
    zeros = np.zeros(n)
    exp = _exposures(
        n,
        rng,
        b_u=zeros,
        taste_dev=zeros,
        quality=zeros,
        followed=np.zeros(n, bool),
        position=np.zeros(n, int),
        media=np.zeros(n, int),
    )
    probs = np.linspace(0.01, 0.7, len(LATENT_ACTIONS))
    base = np.broadcast_to(np.log(probs / (1 - probs)), (6, 6, len(probs)))
    fires = base[exp.archetype, exp.topic] > firing_keys(exp, draw_noise(rng, n))
    np.testing.assert_allclose(fires.mean(axis=0), probs, atol=0.004)


def test_bisection_hits_targets_under_gates_and_forcing():
    rng = np.random.default_rng(7)
    keys = rng.normal(size=(20_011, 3))
    gate = rng.random((20_011, 3)) < [1.0, 0.6, 0.9]
    force = np.zeros_like(gate)
    force[:, 2] = rng.random(20_011) < 0.1
    targets = np.array([0.3, 0.5, 0.4])
    base = bisect_base_logits(keys, gate, force, np.full(3, 20_011.0), targets, tol=1e-3)
    rates = (((keys < base) & gate) | force).mean(axis=0)
    np.testing.assert_allclose(rates, targets, atol=1e-3)


@pytest.fixture(scope="module")
def tiny_calibration():
    return calibrate(WorldConfig.tiny(), np.random.default_rng(11))


def test_calibrated_post_rule_rates_match_targets_on_the_monte_carlo_sample(tiny_calibration):
    cal = tiny_calibration
    latent = [DISCRETE.index(a) for a in LATENT_ACTIONS]
    err = np.abs(cal.mc_rates - cal.effective_targets)[..., latent]
    assert err.max() <= WorldConfig.tiny().calibration_tol
    # Only infeasible targets are moved (e.g. favorite .70 above dwell .60), and only downwards.
    moved = cal.effective_targets < cal.targets - 1e-12
    assert moved.sum() <= 12
    assert (cal.targets[moved] - cal.effective_targets[moved] < 0.2).all()
    assert np.all((follow_share(WorldConfig.tiny()) >= 0) & (follow_share(WorldConfig.tiny()) <= 1))


def test_engagement_of_a_hostile_post_is_outrage(tiny_calibration):
    """On cross-political posts replies come with blocks (§9.4.2 "outrage engagement")."""
    rng = np.random.default_rng(13)
    n = 100_003
    cal = tiny_calibration
    arch, topic = ARCHETYPES.index("political_L"), TOPICS.index("politics_R")
    exp = _exposures(n, rng, archetype=np.full(n, arch), topic=np.full(n, topic))
    eng = sample_engagement(exp, draw_noise(rng, n), cal.base_logits, P_DM_GIVEN_SHARE, 2.0, 10.0)
    reply = eng.actions[:, DISCRETE.index("reply")]
    block = eng.actions[:, DISCRETE.index("block_author")]
    assert np.corrcoef(reply, block)[0, 1] > 0.03
    assert block[reply == 1].mean() > block.mean()


def test_feed_composition_respects_shares_weights_and_authors():
    rng = np.random.default_rng(19)
    n = 400
    eligible = np.arange(1_000, 1_000 + n)
    author = rng.integers(0, 40, n)
    in_network = author < 10
    log_weight = np.where(np.arange(n) % 2 == 0, 5.0, -5.0)  # even slots are far more attractive
    picks = [compose_feed(rng, eligible, in_network, log_weight, author, 10, 5) for _ in range(200)]
    for feed in picks:
        local = feed - 1_000
        assert len(feed) == 10 and len(set(author[local])) == 10
        assert in_network[local].sum() == 5
    out = np.concatenate([p - 1_000 for p in picks])
    out = out[~in_network[out]]
    assert (out % 2 == 0).mean() > 0.95  # out-of-network follows the weights
    # Too few followed posts: the other side fills the feed.
    feed = compose_feed(rng, eligible, author < 2, log_weight, author, 10, 5)
    assert len(feed) == 10 and (author[feed - 1_000] < 2).sum() <= 2
