"""Ground truth of the synthetic world as one diagnostic table (never read by training)."""

from __future__ import annotations

import pandas as pd

from x_reco.data.tables import RawTables


def truth_table(raw: RawTables) -> pd.DataFrame:
    """Per-impression truth joined with user and post truth; a one-column empty frame otherwise."""
    if not raw.truth:
        return pd.DataFrame({"note": pd.Series([], dtype=str)})
    impressions = raw.truth.get("impressions")
    if impressions is None:
        return pd.concat(raw.truth.values(), keys=list(raw.truth), names=["table"]).reset_index(level=0)
    out = impressions
    for name, key in (("users", "user_id"), ("posts", "post_id")):
        table = raw.truth.get(name)
        if table is not None and key in out.columns and key in table.columns:
            out = out.merge(table, on=key, how="left", suffixes=("", f"_{name}"))
    return out
