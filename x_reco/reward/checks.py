"""What the research assets' blocking checks assert: labels follow utilities, BT models converge,
analyses are complete. Plain tables in, numbers out."""

from __future__ import annotations

import numpy as np
import pandas as pd


def label_agreement(pairs: pd.DataFrame, item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame) -> float:
    """Share of ``pairs`` whose ``preferred`` item wins on utility difference plus the pair's noise.

    Recomputed from the tables alone (features ``f_*`` · weights ``w_*`` in float64), independently
    of how the pairs were drawn: 1.0 for correct labels; 0.0 when there are no pairs.
    """
    fcols = sorted(c for c in item_features.columns if c.startswith("f_"))
    wcols = sorted(c for c in stakeholder_weights.columns if c.startswith("w_"))
    x = item_features.set_index("item_id")[fcols]
    w = stakeholder_weights.set_index("stakeholder")[wcols]
    ok = []
    for name, g in pairs.groupby("stakeholder"):
        util = pd.Series(x.to_numpy(np.float64) @ w.loc[name].to_numpy(np.float64), index=x.index)
        d = util.loc[g["item_1"]].to_numpy() - util.loc[g["item_2"]].to_numpy() + g["noise"].to_numpy()
        ok.append(np.where(d > 0, g["item_1"], g["item_2"]) == g["preferred"].to_numpy())
    return float(np.concatenate(ok).mean()) if ok else 0.0


def heldout_share(pairs: pd.DataFrame) -> float:
    """Share of pairs in the held-out split (0.2 by the protocol)."""
    return float((pairs["split"] == "heldout").mean()) if len(pairs) else float("nan")


def bt_convergence(runs: pd.DataFrame) -> dict[str, float | bool]:
    """``passed`` when every run's final loss is finite and its held-out accuracy above chance."""
    finite = bool(len(runs) and np.isfinite(runs["final_loss"].to_numpy(np.float64)).all())
    above = bool(len(runs) and (runs["heldout_acc"] > 0.5).all())
    return {
        "passed": finite and above,
        "finite_losses": finite,
        "all_above_chance": above,
        "mean_heldout_accuracy": float(runs["heldout_acc"].mean()),
        "min_heldout_accuracy": float(runs["heldout_acc"].min()),
    }


def empty_tables(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Names of the analysis tables without rows (a complete analysis has none)."""
    return [k for k, v in tables.items() if v.empty]


def audit_thresholds(audit: pd.DataFrame) -> pd.DataFrame:
    """The threshold rows x*(α_s) of the audit table."""
    return audit[audit["kind"] == "threshold"] if "kind" in audit.columns else audit.head(0)
