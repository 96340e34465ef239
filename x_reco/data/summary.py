"""Summary statistics of events and sequences, for asset metadata and reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS
from x_reco.common.plotting import bar_png, hist_png
from x_reco.data.examples import EngagementSequences, Split


def events_summary(events: pd.DataFrame) -> dict:
    """Counts, per-action totals and split sizes of an events table."""
    counts = events[list(ACTIONS)].sum().astype(int)
    return {
        "rows": int(len(events)),
        "users": int(events["user_id"].nunique()),
        "items": int(events["item_id"].nunique()),
        "actions": {a: int(counts[a]) for a in ACTIONS},
        "splits": {k: int(v) for k, v in events["split"].value_counts().items()},
    }


def actions_markdown(actions: dict[str, int]) -> str:
    frame = pd.DataFrame({"action": list(actions), "count": list(actions.values())})
    return frame.to_markdown(index=False, intfmt=",")


def actions_png(actions: dict[str, int], title: str) -> bytes:
    return bar_png(list(actions), [max(v, 0.5) for v in actions.values()], title, ylabel="events", log=True)


def sequences_summary(seqs: EngagementSequences) -> dict:
    """Example counts per split, history-length quantiles and candidate statistics."""
    hist_len = seqs.history.length
    n_cand = (seqs.candidates.post_hashes[:, :, 0] != 0).sum(axis=1)
    q = np.quantile(hist_len, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]) if len(hist_len) else np.zeros(6)
    return {
        "examples": int(len(hist_len)),
        **{f"{split.label}_examples": int((seqs.examples.split == split).sum()) for split in Split},
        "users": int(len(seqs.catalogue.user_ids)),
        "catalogue_items": seqs.num_items,
        "history_len_quantiles": {k: float(v) for k, v in zip(("min", "p25", "p50", "p75", "p90", "max"), q)},
        "empty_history_share": float((hist_len == 0).mean()) if len(hist_len) else 0.0,
        "mean_candidates": float(n_cand.mean()) if len(n_cand) else 0.0,
        "sampled_candidate_share": float(seqs.candidates.sampled.mean()) if len(n_cand) else 0.0,
    }


def history_png(seqs: EngagementSequences, title: str) -> bytes:
    return hist_png(seqs.history.length, bins=min(seqs.history_len + 1, 40), title=title, xlabel="valid history length")
