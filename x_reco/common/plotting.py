"""Small matplotlib helpers that return PNG bytes (Agg backend; no display needed)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure_png(fig, dpi: int = 110) -> bytes:
    """Render and close ``fig``; return PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "plot") -> str:
    """Markdown image with the PNG inlined as base64 (how Dagster metadata shows pictures)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def bar_png(labels, values, title: str, xlabel: str = "", ylabel: str = "", log: bool = False) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(values)), labels, rotation=70, fontsize=7)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    return figure_png(fig)


def hist_png(values, bins: int, title: str, xlabel: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(values, bins=bins)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return figure_png(fig)
