"""The 19 Phoenix action columns, their valence, and masks over them.

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


def action_mask(names: tuple[str, ...]) -> np.ndarray:
    """int8 [19] mask with 1 at the named action columns (e.g. the ones a dataset observes)."""
    mask = np.zeros(NUM_ACTIONS, dtype=np.int8)
    for name in names:
        mask[ACTION_INDEX[name]] = 1
    return mask
