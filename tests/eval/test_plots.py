"""Plots come back as PNG bytes (the Dagster layer inlines them as metadata)."""

from x_reco.eval.plots import loss_curve_png, metric_bars_png

PNG = b"\x89PNG\r\n\x1a\n"


def test_loss_curve_and_metric_bars_are_png():
    assert loss_curve_png([3.0, 2.5, 2.0, 1.9, 1.7, 1.6]).startswith(PNG)
    assert loss_curve_png([1.0]).startswith(PNG)
    groups = {"retriever": {"hr@10": 0.1, "ndcg@10": 0.05}, "popularity": {"hr@10": 0.05}}
    bars = metric_bars_png(groups, ["hr@10", "ndcg@10"])
    assert bars.startswith(PNG)
