"""Evaluation of the Phoenix models: full-catalogue retrieval, ranker AUC / log-loss, two-stage NDCG."""

from x_reco.eval.metrics import auc, log_loss, ranking_metrics, target_ranks
from x_reco.eval.plots import loss_curve_png, metric_bars_png
from x_reco.eval.ranker import evaluate_ranker, two_stage
from x_reco.eval.retrieval import evaluate_popularity, evaluate_retrieval

__all__ = [
    "auc",
    "evaluate_popularity",
    "evaluate_ranker",
    "evaluate_retrieval",
    "log_loss",
    "loss_curve_png",
    "metric_bars_png",
    "ranking_metrics",
    "target_ranks",
    "two_stage",
]
