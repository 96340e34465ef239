"""Data-quality checks of the synthetic world's structural rules (datasets spec §9.4.4, §13 S4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from x_reco.data.synthetic.targets import (
    CANCELLED_BY_NEGATIVE,
    DISCRETE,
    GATING_NEGATIVES,
    NEGATIVE,
)

_MEDIA_RULES = {"photo_expand": "photo", "vqv": "video"}


def _any(frame: pd.DataFrame, columns) -> np.ndarray:
    return frame[list(columns)].to_numpy().any(axis=1)


def _action_rules(imp: pd.DataFrame, media: np.ndarray, is_quote: np.ndarray) -> dict[str, np.ndarray]:
    """Per-impression violation masks of the rules that need only the row and its post."""
    positives = [a for a in DISCRETE if a not in NEGATIVE and a != "dwell"]
    negative = _any(imp, GATING_NEGATIVES)
    rules = {
        "binary_actions": ~imp[list(DISCRETE) + ["dwell_time"]].isin([0, 1]).to_numpy().all(axis=1),
        "positive_without_dwell": (imp["dwell"].to_numpy() == 0) & _any(imp, positives),
        "positive_with_negative": negative & _any(imp, CANCELLED_BY_NEGATIVE),
        "share_subtype_without_share": _any(imp, ["share_via_dm", "share_via_copy_link"])
        & (imp["share"].to_numpy() == 0),
        "quoted_click_not_quote": (imp["quoted_click"].to_numpy() == 1) & ~is_quote,
        "follow_and_block": (imp["follow_author"].to_numpy() == 1) & (imp["block_author"].to_numpy() == 1),
    }
    for action, kind in _MEDIA_RULES.items():
        rules[f"{action}_not_{kind}"] = (imp[action].to_numpy() == 1) & (media != kind)
    return rules


def _graph_rules(imp: pd.DataFrame, follows: pd.DataFrame) -> dict[str, int]:
    """Hidden authors never reshown, follows only when not following, every follow recorded."""
    hide = imp[(imp["block_author"] == 1) | (imp["mute_author"] == 1)]
    first_hide = hide.groupby(["user_id", "author_id"])["ts"].min().rename("hidden_ts")
    joined = imp.join(first_hide, on=["user_id", "author_id"])
    follow = imp.loc[imp["follow_author"] == 1, ["user_id", "author_id", "ts"]]
    edges = follow.merge(follows, on=["user_id", "author_id"], how="left")
    active = (edges["since_ts"] < edges["ts"]) & (
        edges["until_ts"].isna() | (edges["until_ts"].fillna(0) >= edges["ts"])
    )
    recorded = edges["since_ts"] == edges["ts"]
    recorded_per_follow = recorded.groupby([edges["user_id"], edges["author_id"], edges["ts"]]).any()
    return {
        "shown_after_hide": int((joined["ts"] > joined["hidden_ts"]).sum()),
        "follow_while_following": int(active.sum()),
        "follow_not_recorded": int((~recorded_per_follow).sum()),
        "repeated_post": int(imp.duplicated(["user_id", "post_id"]).sum()),
    }


def structural_violations(
    impressions: pd.DataFrame, posts: pd.DataFrame, follows: pd.DataFrame, dwell_short_s: float, dwell_long_s: float
) -> dict[str, int]:
    """Count rows breaking each structural rule; every count is 0 for a valid world.

    Args:
      impressions: the public impressions table (or interactions with `item_id` for `post_id`).
      posts: public posts (`post_id` or `item_id`, author_id, media_type, is_quote).
      follows: user_id, author_id, since_ts, until_ts (<NA> while active).
      dwell_short_s, dwell_long_s: the config's label thresholds.
    """
    imp = impressions.rename(columns={"item_id": "post_id"})
    post = posts.rename(columns={"item_id": "post_id"}).set_index("post_id")
    meta = post.loc[imp["post_id"].to_numpy()]
    imp = imp.assign(author_id=meta["author_id"].to_numpy())
    rules = _action_rules(imp, meta["media_type"].to_numpy(), meta["is_quote"].to_numpy(bool))
    counts = {name: int(mask.sum()) for name, mask in rules.items()}
    seconds = imp["dwell_seconds"].to_numpy(np.float64)
    counts["dwell_label"] = int(((seconds >= dwell_short_s) != (imp["dwell"] == 1)).sum())
    counts["dwell_time_label"] = int(((seconds >= dwell_long_s) != (imp["dwell_time"] == 1)).sum())
    counts.update(_graph_rules(imp, follows))
    return counts
