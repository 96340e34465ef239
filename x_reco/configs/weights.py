"""Named, versioned weight sets for the weighted multi-action score (candidate-pipeline spec §4)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np

from x_reco.common.actions import ACTIONS

# xAI's published home-mixer weights (param.rs, Aug-Sep 2026 sync). Keys are x-reco action names;
# `not_dwelled` and continuous `dwell_time` seconds belong to the 22-signal head only.
_PUBLISHED = {
    "favorite": 0.5,
    "reply": 5.0,
    "repost": 1.0,
    "photo_expand": 0.05,
    "click": 0.4,
    "profile_click": 0.0,
    "vqv": 0.0,
    "share": 2.0,
    "share_via_dm": 5.0,
    "share_via_copy_link": 20.0,
    "dwell": 0.05,
    "quote": 5.0,
    "quoted_click": 0.05,
    "follow_author": 4.0,
    "not_interested": -43.2,
    "block_author": -31.2,
    "mute_author": -58.8,
    "report": -234.0,
    "not_dwelled": -0.02,
    "dwell_time_seconds": 0.004,
}


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """A named, versioned mapping action -> weight; actions the head lacks contribute nothing."""

    name: str
    version: str
    weights: MappingProxyType

    def vector(self, action_names: tuple[str, ...] = ACTIONS) -> np.ndarray:
        """Weights aligned with a head's action columns (f32 [A])."""
        return np.array([self.weights.get(a, 0.0) for a in action_names], dtype=np.float32)

    @classmethod
    def published(cls) -> WeightSet:
        return cls("published", "2026-09", MappingProxyType(dict(_PUBLISHED)))

    @classmethod
    def engagement_only(cls) -> WeightSet:
        """The published weights with every negative weight removed."""
        return cls("engagement-only", "2026-09", MappingProxyType({a: w for a, w in _PUBLISHED.items() if w >= 0}))

    @classmethod
    def named(cls, name: str) -> WeightSet:
        table = {"published": cls.published, "engagement-only": cls.engagement_only}
        if name not in table:
            raise ValueError(f"unknown weight set {name!r}; known: {sorted(table)}")
        return table[name]()
