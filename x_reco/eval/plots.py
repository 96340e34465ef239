"""Training and evaluation plots as PNG bytes (loss curves, metric bars)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from x_reco.common.plotting import figure_png, subplots


def loss_curve_png(losses: Sequence[float], title: str = "training loss", smooth: int = 50) -> bytes:
    """Per-step loss with a trailing moving average over ``smooth`` steps."""
    y = np.asarray(losses, dtype=np.float64)
    fig, ax = subplots(figsize=(6, 3))
    ax.plot(np.arange(1, len(y) + 1), y, lw=0.6, alpha=0.4, label="per step")
    if len(y) >= 2:
        w = max(1, min(smooth, len(y) // 5 or 1))
        ma = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(y) + 1), ma, lw=1.5, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return figure_png(fig)


def metric_bars_png(groups: Mapping[str, Mapping[str, float]], metrics: Sequence[str], title: str = "") -> bytes:
    """Grouped bars: one group per metric, one bar per series (e.g. model vs popularity)."""
    fig, ax = subplots(figsize=(1.2 + 0.9 * len(metrics) * max(1, len(groups)) / 2, 3))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(metrics))
    for i, (name, values) in enumerate(groups.items()):
        ax.bar(x + i * width, [float(values.get(m, np.nan)) for m in metrics], width, label=name)
    ax.set_xticks(x + width * (len(groups) - 1) / 2, metrics, rotation=30, fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return figure_png(fig)
