"""Figures of the Goodhart analyses (reward spec §10), returned as 150-dpi PNG bytes (Agg backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from x_reco.common.plotting import figure_png, subplots

DPI = 150


def goodhart_curves_png(
    curves: pd.DataFrame, dataset: str, target: str, mode: str = "parity", scale: str = "raw"
) -> bytes:
    """Hidden-stakeholder δ-sweep utility vs N (log-x) as % change from the smallest N, one line
    per hidden stakeholder with a ±1 sd band over seeds; legend carries the trained cosines."""
    c = curves[
        (curves["sweep"] == "n") & (curves["target"] == target) & (curves["mode"] == mode) & (curves["scale"] == scale)
    ]
    fig, ax = subplots(figsize=(6.4, 4.0))
    for hidden, g in c.groupby("hidden", sort=False):
        g = g.sort_values("n_pairs")
        base = abs(g["mean"].iloc[0]) or 1.0
        band = 100.0 * g["sd"].fillna(0.0) / base
        label = f"{hidden} (trained cos {g['trained_cos'].iloc[0]:+.2f})"
        (line,) = ax.plot(g["n_pairs"], g["pct_change"], marker="o", label=label)
        ax.fill_between(
            g["n_pairs"], g["pct_change"] - band, g["pct_change"] + band, color=line.get_color(), alpha=0.15
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("preference pairs N")
    ax.set_ylabel("hidden utility, % change from smallest N")
    ax.set_title(f"{dataset}: target {target} (δ sweep, {mode}, {scale})")
    ax.legend(fontsize=7)
    return figure_png(fig, dpi=DPI)


def direction_scatter_png(
    pairs: pd.DataFrame, mechanism: str, mode: str = "parity", scale: str = "raw", strong: float = 0.2
) -> bytes:
    """Relative Δ hidden utility vs trained cosine (left) and vs pool covariance (right); colour by
    dataset, |cos| < ``strong`` shaded, mismatches (trained-cosine predictor) ringed."""
    p = pairs[
        (pairs["mechanism"] == mechanism)
        & (pairs["mode"] == mode)
        & (pairs["scale"] == scale)
        & (pairs["method"] == "A")
    ]
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for ax, xcol in zip(axes, ("trained_cos", "cov_pool")):
        for dataset, g in p.groupby("dataset", sort=False):
            y = np.clip(g["rel_change"], -3, 3)
            ax.scatter(g[xcol], y, s=22, label=dataset)
            miss = ~g["match_trained_cos"].to_numpy()
            ax.scatter(g[xcol][miss], y[miss], s=90, facecolors="none", edgecolors="red", lw=1.2)
        if xcol == "trained_cos":
            ax.axvspan(-strong, strong, color="grey", alpha=0.15)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_xlabel(xcol.replace("_", " "))
        ax.set_ylabel("relative Δ hidden utility (clipped to ±3)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"direction condition, {mechanism} ({mode}, {scale}); red rings = mismatch")
    return figure_png(fig, dpi=DPI)


def temperature_sweep_png(sweep: pd.DataFrame, mode: str = "parity", scale: str = "raw") -> bytes:
    """Strong-pair accuracy of the trained-cosine predictor vs softmax temperature, per dataset."""
    s = sweep[(sweep["mode"] == mode) & (sweep["scale"] == scale)]
    fig, ax = subplots(figsize=(6, 3.6))
    for dataset, g in s.groupby("dataset", sort=False):
        g = g.sort_values("temperature")
        ax.plot(g["temperature"], g["strong_matches"] / g["n_strong"].clip(lower=1), marker="o", label=dataset)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("softmax temperature T")
    ax.set_ylabel("strong-pair accuracy")
    ax.set_title(f"temperature sweep ({mode}, {scale})")
    ax.legend(fontsize=7)
    return figure_png(fig, dpi=DPI)


def data_budget_png(
    budget: pd.DataFrame, summary: pd.DataFrame, dataset: str, composite: str = "parity_div3", mode: str = "parity"
) -> bytes:
    """Recovery vs N per hidden stakeholder with the 0.5 / 0.8 lines and N50 markers."""
    b = budget[(budget["composite"] == composite) & (budget["mode"] == mode)]
    s = summary[(summary["composite"] == composite) & (summary["mode"] == mode)].set_index("hidden")
    fig, ax = subplots(figsize=(6, 4))
    for hidden, g in b.groupby("hidden", sort=False):
        g = g.sort_values("n_pairs")
        (line,) = ax.plot(g["n_pairs"], g["recovery"], marker="o", label=f"{hidden} (N50 {s.loc[hidden, 'n50_label']})")
        n50 = s.loc[hidden, "n50"]
        if np.isfinite(n50):
            ax.plot([n50], [0.5], marker="v", ms=9, color=line.get_color())
    for level in (0.5, 0.8):
        ax.axhline(level, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("preference pairs N of the hidden stakeholder")
    ax.set_ylabel("regret recovery")
    ax.set_title(f"{dataset}: data budget ({composite}, {mode})")
    ax.legend(fontsize=7)
    return figure_png(fig, dpi=DPI)


def audit_threshold_png(audit: pd.DataFrame) -> bytes:
    """cos(platform, society) vs the platform's negative-action weight, x* marked, scenarios shown."""
    sweep = audit[audit["kind"] == "sweep"].sort_values("x")
    scen = audit[audit["kind"] == "scenario"]
    x_star = float(sweep["threshold"].iloc[0])
    fig, ax = subplots(figsize=(6.4, 4))
    ax.plot(sweep["x"], sweep["cos_society"], label="platform (+1 pos, 0 neutral, x neg) vs society")
    ax.axvline(x_star, color="red", ls="--", label=f"x* = {x_star:.4f}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.scatter(scen["x"], scen["cos_society"], color="black", zorder=3, s=18)
    for r in scen.itertuples():
        ax.annotate(r.name, (r.x, r.cos_society), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("platform weight on the 4 negative actions (x)")
    ax.set_ylabel("cos(platform, society)")
    ax.set_title(f"audit threshold (society alpha = {sweep['alpha_s'].iloc[0]:g})")
    ax.legend(fontsize=7, loc="lower left")
    return figure_png(fig, dpi=DPI)
