"""The deterministic synthetic Twitter-like world (`synthetic` partition, datasets spec §9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS
from x_reco.data.synthetic.config import WorldConfig
from x_reco.data.synthetic.social import SOCIAL_TABLES, Vocabulary, generate_social, topic_vocabulary
from x_reco.data.synthetic.world import TRUTH_TABLES, World, generate_world
from x_reco.data.tables import INTERACTION_COLUMNS, RawTables

__all__ = [
    "WorldConfig",
    "World",
    "generate_world",
    "generate_world_tables",
    "resolve_config",
    "INTERACTION_EXTRA_COLUMNS",
    "SOCIAL_TABLES",
    "Vocabulary",
    "generate_social",
    "topic_vocabulary",
]

# Columns the synthetic interactions carry beyond INTERACTION_COLUMNS; dwell_time is the 19th
# action (binarised long dwell), the raw seconds travel in dwell_seconds.
INTERACTION_EXTRA_COLUMNS = (
    "author_id",
    "visit_id",
    "surface",
    "position",
    *ACTIONS[:18],
    "dwell_seconds",
    "dwell_time",
)


def resolve_config(config: WorldConfig | Mapping[str, Any] | None) -> WorldConfig:
    """None -> the `small` world (the demo default); a mapping -> WorldConfig.from_dict."""
    if config is None:
        return WorldConfig.small()
    if isinstance(config, WorldConfig):
        return config
    if isinstance(config, Mapping):
        return WorldConfig.from_dict(config)
    raise TypeError(f"expected WorldConfig, a mapping or None, got {type(config).__name__}")


def generate_world_tables(config: WorldConfig | Mapping[str, Any] | None = None) -> RawTables:
    """Generate the world and map it to the canonical raw tables of the `synthetic` partition.

    interactions: every impression (engaged or not), with INTERACTION_COLUMNS then
    INTERACTION_EXTRA_COLUMNS, rows in (ts, user_id, position) order and src_row = that row
    number (rating NaN, label <NA>, src_file "impressions"); items = posts; users;
    extra = {"authors", "follows"} and the SOCIAL_TABLES (candidate-pipeline spec §14, which only the
    candidate pipeline reads); truth = the four truth tables; manifest = the world's.
    """
    world = generate_world(resolve_config(config))
    return RawTables(
        partition="synthetic",
        interactions=_interactions(world),
        items=world.posts.rename(columns={"post_id": "item_id"}),
        users=world.users.copy(),
        extra={"authors": world.authors.copy(), "follows": world.follows.copy(), **world.social},
        truth={name.removeprefix("truth_"): getattr(world, name) for name in TRUTH_TABLES},
        manifest=world.manifest,
    )


def _interactions(world: World) -> pd.DataFrame:
    imp = world.impressions
    n = len(imp)
    author = world.posts.set_index("post_id")["author_id"]
    table = {
        "user_id": imp["user_id"],
        "item_id": imp["post_id"],
        "ts": imp["ts"],
        "rating": np.full(n, np.nan),
        "label": pd.arrays.IntegerArray(np.zeros(n, np.int8), np.ones(n, bool)),
        "impression_id": imp["impression_id"],
        "src_file": np.full(n, "impressions", dtype=object),
        "src_row": np.arange(n, dtype=np.int64),
        "author_id": author.reindex(imp["post_id"]).to_numpy(),
    }
    table.update({c: imp[c] for c in INTERACTION_EXTRA_COLUMNS if c != "author_id"})
    frame = pd.DataFrame(table)
    assert tuple(frame.columns) == INTERACTION_COLUMNS + INTERACTION_EXTRA_COLUMNS
    return frame
