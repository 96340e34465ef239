"""The 19 Phoenix action columns, their valence, and per-partition observed masks.

Axis legend used throughout x-reco (tensor names carry their axes, e.g. ``logits_bca``):
B batch, S history slots, C candidates per row (N in inference code), T = 1+S+C tokens,
P = 1+S prefix length, D model width, H query heads, K kv heads (in tensor names), F feed-forward
width, A actions, V vocabulary / hash-table rows.
"""

from __future__ import annotations

import numpy as np

ACTIONS: tuple[str, ...] = (
    "favorite",
    "reply",
    "repost",
    "photo_expand",
    "click",
    "profile_click",
    "vqv",
    "share",
    "share_via_dm",
    "share_via_copy_link",
    "dwell",
    "quote",
    "quoted_click",
    "follow_author",
    "not_interested",
    "block_author",
    "mute_author",
    "report",
    "dwell_time",
)
NUM_ACTIONS = len(ACTIONS)
ACTION_INDEX = {name: i for i, name in enumerate(ACTIONS)}
DISCRETE_ACTIONS = ACTIONS[:18]

POSITIVE_ACTIONS = ("favorite", "reply", "repost", "share", "follow_author")
NEGATIVE_ACTIONS = ("not_interested", "block_author", "mute_author", "report")

PARTITIONS: tuple[str, ...] = (
    "synthetic",
    "movielens-100k",
    "movielens-1m",
    "mind-small",
    "amazon-kindle",
)

_OBSERVED: dict[str, tuple[str, ...]] = {
    "synthetic": ACTIONS,
    "movielens-100k": ("favorite", "click", "dwell", "not_interested"),
    "movielens-1m": ("favorite", "click", "dwell", "not_interested"),
    "mind-small": ("click",),
    "amazon-kindle": ("favorite", "click", "not_interested"),
}


def observed_mask(partition: str) -> np.ndarray:
    """Return the int8 [19] mask of action columns a partition actually observes."""
    if partition not in _OBSERVED:
        raise ValueError(f"unknown partition {partition!r}; expected one of {PARTITIONS}")
    mask = np.zeros(NUM_ACTIONS, dtype=np.int8)
    for name in _OBSERVED[partition]:
        mask[ACTION_INDEX[name]] = 1
    return mask
