"""Small matplotlib helpers that return PNG bytes, drawn on the Agg canvas without pyplot's global
backend or figure registry."""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True):
    """``(figure, axes)`` as ``pyplot.subplots`` returns them, on its own Agg canvas."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render ``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "plot") -> str:
    """Markdown image with the PNG inlined as base64 (how Dagster metadata shows pictures)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def bar_png(labels, values, title: str, xlabel: str = "", ylabel: str = "", log: bool = False) -> bytes:
    fig, ax = subplots(figsize=(6, 3))
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(values)), labels, rotation=70, fontsize=7)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    return figure_png(fig)


def hist_png(values, bins: int, title: str, xlabel: str) -> bytes:
    fig, ax = subplots(figsize=(5, 3))
    ax.hist(values, bins=bins)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return figure_png(fig)
