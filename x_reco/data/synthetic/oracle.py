"""The synthetic world's own engagement model as a function of (user, post, follow, position), for
diagnostics only (candidate-pipeline spec §15.3): true stakeholder utility of a served feed.

Truth boundary: nothing in training reads this module; it rebuilds the world's latent state (archetypes,
tastes, offsets, post topics and qualities) from the manifest, which only diagnostic assets may read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from x_reco.data.synthetic.config import ARCHETYPES, TOPICS, WorldConfig
from x_reco.data.synthetic.engagement import (
    Exposures,
    _probit_of_logit,  # the generator's own functions, so the oracle cannot drift from the world
    _truth_probs,
    personal_offsets,
)
from x_reco.data.synthetic.entities import Posts, Users, make_authors, make_posts, make_users
from x_reco.data.synthetic.targets import DISCRETE, LATENT_ACTIONS, P_DM_GIVEN_SHARE, taste_anchors
from x_reco.data.synthetic.world import make_ids, seed_children

PROB_COLUMNS: tuple[str, ...] = (*DISCRETE, "dwell_time")  # the columns of ``probs`` (truth_impressions p_*)
_DWELL = LATENT_ACTIONS.index("dwell")


def base_logits_from_manifest(calibration: Mapping[str, Any]) -> np.ndarray:
    """``manifest['calibration']['base_logits']`` (archetype -> topic -> latent action) as the generator's
    [archetype, topic, 16] float64 array (JSON floats round-trip exactly)."""
    nested = calibration["base_logits"]
    return np.array([[[float(nested[a][t][x]) for x in LATENT_ACTIONS] for t in TOPICS] for a in ARCHETYPES])


@dataclasses.dataclass(frozen=True)
class WorldOracle:
    """π̃(action | user, post, followed, position): the pre-rule truth probabilities of one impression."""

    config: WorldConfig
    users: Users
    posts: Posts
    base_logits: np.ndarray  # [archetype, topic, 16], the calibrated c_a
    user_index: Mapping[str, int]
    post_index: Mapping[str, int]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> WorldOracle:
        """Rebuild users and posts from the manifest's config and root seed without simulating; the base
        logits come from its calibration block (what ``calibrate`` returned for this seed)."""
        config = WorldConfig.from_dict(manifest["config"])
        recorded = manifest.get("seeds", {}).get("root", config.seed)
        if recorded != config.seed:
            raise ValueError(f"manifest seeds.root {recorded} differs from config.seed {config.seed}")
        seeds = seed_children(config.seed)  # fresh children: spawn below is their first, as in generate_world
        authors = make_authors(config, np.random.default_rng(seeds["authors"]))
        users = make_users(config, np.random.default_rng(seeds["users"]), authors)
        posts = make_posts(seeds["posts"].spawn(config.num_days), authors)
        user_ids = make_ids("u", config.num_users, 4)
        post_ids = make_ids("p", len(posts.author), 6)
        return cls(
            config,
            users,
            posts,
            base_logits_from_manifest(manifest["calibration"]),
            {str(u): i for i, u in enumerate(user_ids)},
            {str(p): i for i, p in enumerate(post_ids)},
        )

    def _indices(self, ids, index: Mapping[str, int], kind: str) -> np.ndarray:
        out = np.array([index.get(str(x), -1) for x in ids], dtype=np.int64)
        if (out < 0).any():
            bad = [str(x) for x, i in zip(ids, out, strict=True) if i < 0][:5]
            raise KeyError(f"unknown {kind} ids {bad} (not in this world)")
        return out

    def exposures(self, user_ids, post_ids, followed, positions) -> Exposures:
        """The generator's per-impression inputs (``engagement.Exposures``) of N impressions."""
        u = self._indices(user_ids, self.user_index, "user")
        p = self._indices(post_ids, self.post_index, "post")
        arch, topic = self.users.archetype[u], self.posts.topic[p]
        return Exposures(
            archetype=arch,
            topic=topic,
            b_u=self.users.b_u[u],
            taste_dev=self.users.theta[u, topic] - taste_anchors()[arch, topic],
            quality=self.posts.quality[p],
            followed=np.asarray(followed, dtype=bool).reshape(len(u)),
            position=np.asarray(positions, dtype=np.int64).reshape(len(u)),
            media=self.posts.media[p],
            is_quote=self.posts.is_quote[p],
        )

    def probs(self, user_ids, post_ids, followed, positions) -> np.ndarray:
        """float64 [N, 19] π̃ in ``PROB_COLUMNS`` order (DISCRETE actions, then dwell_time), exactly as the
        world computes them for an impression (``engagement._truth_probs``).

        Args:
          user_ids, post_ids: [N] public ids (``u0001``, ``p000001``).
          followed: bool [N], the user follows the post's author at the impression.
          positions: int [N], the slot in the feed (0-based; positives lose 0.03 a slot).
        """
        exp = self.exposures(user_ids, post_ids, followed, positions)
        logits = self.base_logits[exp.archetype, exp.topic] + personal_offsets(exp)
        z_dwell = _probit_of_logit(logits)[:, _DWELL]
        cfg = self.config
        return _truth_probs(logits, z_dwell, exp, P_DM_GIVEN_SHARE, cfg.dwell_short_s, cfg.dwell_long_s)
