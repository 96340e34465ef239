"""Users, authors and posts of the synthetic world with their latent state (datasets spec §9.2)."""

from __future__ import annotations

import dataclasses

import numpy as np

from x_reco.data.synthetic.config import (
    ARCHETYPE_SHARES,
    CLOCK_START_TS,
    MEDIA_PROBS,
    QUOTE_PROB,
    TOPIC_SHARES,
    TOPICS,
    WorldConfig,
)
from x_reco.data.synthetic.targets import taste_anchors

DAY_S = 86_400
TASTE_SD, B_U_SD, QUALITY_SD = 0.15, 0.5, 0.5
VISIT_FACTOR_SD, POST_RATE_SD = 0.4, 0.5
MIN_FOLLOWS, MAX_FOLLOWS = 5, 30
OWN_TOPIC_PROB = 0.9


@dataclasses.dataclass(frozen=True)
class Authors:
    """Per-author arrays [A]: home topic index, quality q_a, mean posts per day."""

    topic: np.ndarray
    quality: np.ndarray
    post_rate: np.ndarray


@dataclasses.dataclass(frozen=True)
class Users:
    """Per-user arrays [U] (theta is [U, topics]); initial follow edges [E] as (user, author)."""

    archetype: np.ndarray
    theta: np.ndarray
    b_u: np.ndarray
    visit_rate: np.ndarray
    created_ts: np.ndarray
    follow_user: np.ndarray
    follow_author: np.ndarray


@dataclasses.dataclass(frozen=True)
class Posts:
    """Per-post arrays [P], sorted by created_ts (ties in day, author, draw order)."""

    author: np.ndarray
    topic: np.ndarray
    quality: np.ndarray
    created_ts: np.ndarray
    media: np.ndarray
    is_quote: np.ndarray


def largest_remainder(total: int, shares) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `shares`; ties go to the earlier share."""
    exact = total * np.asarray(shares, dtype=float)
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _mean_one_lognormal(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    """LogNormal factors with mean 1, so configured rates stay the population means."""
    return np.exp(rng.normal(-0.5 * sd**2, sd, n))


def make_authors(config: WorldConfig, rng: np.random.Generator) -> Authors:
    counts = largest_remainder(config.num_authors, TOPIC_SHARES)
    # Shuffled so that author ids carry no topic information.
    topic = rng.permutation(np.repeat(np.arange(len(TOPICS)), counts))
    quality = rng.normal(0.0, QUALITY_SD, config.num_authors)
    rate = config.posts_per_author_day * _mean_one_lognormal(rng, POST_RATE_SD, config.num_authors)
    return Authors(topic, _center_by_topic(quality, rate, topic), rate)


def _center_by_topic(quality: np.ndarray, rate: np.ndarray, topic: np.ndarray) -> np.ndarray:
    """Shift q_a so each topic's posts have mean quality 0.

    With 10-20 authors a topic, the sample mean of q_a is a world-wide random effect of ±0.15
    logits that the per-(archetype, topic) calibration cannot see; centring keeps §9.5 rates
    true in every seed while q_a keeps its spread.
    """
    centred = quality.copy()
    for t in np.unique(topic):
        mine = topic == t
        centred[mine] -= np.average(quality[mine], weights=rate[mine])
    return centred


def make_users(config: WorldConfig, rng: np.random.Generator, authors: Authors) -> Users:
    """Archetypes, tastes, offsets and visit rates first, so they never depend on the authors."""
    n = config.num_users
    counts = largest_remainder(n, ARCHETYPE_SHARES)
    archetype = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    anchors = taste_anchors()[archetype]
    theta = np.clip(anchors + rng.normal(0.0, TASTE_SD, anchors.shape), -1.0, 1.0)
    b_u = rng.normal(0.0, B_U_SD, n)
    factor = _mean_one_lognormal(rng, VISIT_FACTOR_SD, n)
    rates = np.asarray(config.visits_per_day)[archetype] * factor
    created = CLOCK_START_TS - rng.integers(DAY_S, 730 * DAY_S, n)
    f_user, f_author = _initial_follows(rng, theta, authors.topic)
    return Users(archetype, theta, b_u, rates, created.astype(np.int64), f_user, f_author)


def _initial_follows(rng, theta: np.ndarray, author_topic: np.ndarray):
    """5-30 follows per user (at most half the authors), ∝ exp(2 θ[topic]) without replacement."""
    num_users, num_authors = theta.shape[0], len(author_topic)
    k = np.minimum(rng.integers(MIN_FOLLOWS, MAX_FOLLOWS + 1, num_users), num_authors // 2)
    # Gumbel-top-k: the k largest of logit + Gumbel noise are a weighted draw without replacement.
    keys = 2.0 * theta[:, author_topic] + rng.gumbel(size=(num_users, num_authors))
    order = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(num_authors)[None, :] < k[:, None]
    users = np.repeat(np.arange(num_users), k)
    return users, order[take]


def make_posts(day_seeds, authors: Authors) -> Posts:
    """Posts day by day, each day from its own seed child, so early days survive a longer run."""
    days = [_posts_of_day(d, np.random.default_rng(s), authors) for d, s in enumerate(day_seeds)]
    cols = {f.name: np.concatenate([getattr(p, f.name) for p in days]) for f in dataclasses.fields(Posts)}
    order = np.argsort(cols["created_ts"], kind="stable")
    return Posts(**{k: v[order] for k, v in cols.items()})


def _posts_of_day(day: int, rng: np.random.Generator, authors: Authors) -> Posts:
    author = np.repeat(np.arange(len(authors.topic)), rng.poisson(authors.post_rate))
    n = len(author)
    own = rng.random(n) < OWN_TOPIC_PROB
    topic = np.where(own, authors.topic[author], rng.integers(0, len(TOPICS), n))
    created = CLOCK_START_TS + day * DAY_S + rng.integers(0, DAY_S, n)
    return Posts(
        author=author,
        topic=topic,
        quality=authors.quality[author] + rng.normal(0.0, QUALITY_SD, n),
        created_ts=created.astype(np.int64),
        media=rng.choice(len(MEDIA_PROBS), size=n, p=MEDIA_PROBS),
        is_quote=rng.random(n) < QUOTE_PROB,
    )
