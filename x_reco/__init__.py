"""x-reco: an open, runnable, measurable Phoenix recommender (library layer; never imports dagster)."""

__version__ = "0.1.0"
