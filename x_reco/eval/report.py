"""The evaluation bundle of a trained pair of models, and the replay of their logged validation metrics.

``evaluate_models`` is what the Dagster ``model_evaluation`` asset and ``python -m x_reco.training.run``
both report: the retriever and the popularity baseline over the full catalogue, the ranker's AUC /
log-loss and the two-stage retrieve-then-rank metric. ``replay_validation`` re-evaluates restored
models on the validation split so that a checkpoint which does not reproduce what training logged
fails a check instead of being served.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pandas as pd

from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.champion import PRIMARY_METRIC
from x_reco.eval.ranker import evaluate_ranker, two_stage
from x_reco.eval.retrieval import evaluate_popularity, evaluate_retrieval
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever

REPLAY_TOLERANCE = 1e-4  # max |replayed - logged| of any validation metric; the replay is deterministic
COMPARE_KEYS = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "masked_hr@10", "masked_ndcg@10")


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """Metrics by model name (``retriever``, ``popularity``, ``ranker``, ``two_stage``[_<weights>]) on
    one split, for the models that were evaluated."""

    results: dict[str, dict[str, float]]
    split: Split = Split.TEST
    catalogue_window_s: float | None = None

    def primary(self, model: str = "retriever", metric: str = PRIMARY_METRIC) -> float:
        """``metric`` of ``model``; NaN when that model was not evaluated."""
        return float(self.results.get(model, {}).get(metric, math.nan))

    @property
    def beats_popularity(self) -> bool:
        """The retriever's primary metric is strictly above the popularity baseline's."""
        return self.primary("retriever") > self.primary("popularity")

    def table(self) -> pd.DataFrame:
        """Long table: one (model, metric, value) row per metric."""
        rows = [(m, k, float(v)) for m, d in self.results.items() for k, v in d.items()]
        return pd.DataFrame(rows, columns=["model", "metric", "value"])

    def numeric(self) -> dict[str, float]:
        """``<model>_<metric>`` of every finite ranking / AUC / loss metric (for dashboards)."""
        return {
            f"{m}_{k}": float(v)
            for m, d in self.results.items()
            for k, v in d.items()
            if isinstance(v, float) and math.isfinite(v) and ("@" in k or "auc" in k or k == "loss")
        }

    def comparison(self, keys: tuple[str, ...] = COMPARE_KEYS) -> dict[str, dict[str, float]]:
        """Retriever next to popularity on ``keys`` (the metric bar chart's groups)."""
        return {
            m: {k: self.results[m].get(k, math.nan) for k in keys}
            for m in ("retriever", "popularity")
            if m in self.results
        }


def require_examples(seqs: EngagementSequences, splits: tuple[Split, ...] = (Split.VAL, Split.TEST)) -> None:
    """ValueError when a split the evaluation needs has no examples."""
    for split in splits:
        if not len(seqs.rows(split)):
            raise ValueError(
                f"{seqs.partition}: the {split.label} split has no examples; "
                "generate more days (synthetic) or check the split rule"
            )


def evaluate_models(
    seqs: EngagementSequences,
    retriever: PhoenixRetriever | None = None,
    ranker: PhoenixRanker | None = None,
    *,
    split: Split | str = Split.TEST,
    catalogue_window_s: float | None = None,
    two_stage_weights: Mapping[str, object] | None = None,
) -> ModelEvaluation:
    """Evaluate whichever of the two models is given, the popularity baseline with the retriever,
    and the two-stage pipeline when both are.

    Args:
      catalogue_window_s: the feed's catalogue (recent posts of that many seconds) for retrieval;
        None ranks against every item.
      two_stage_weights: {result name: ``WeightSet``} of the two-stage re-ranking; default
        ``{"two_stage": None}`` (the published weights).
    """
    split = Split.parse(split)
    results: dict[str, dict[str, float]] = {}
    if retriever is not None:
        results["retriever"] = evaluate_retrieval(retriever, seqs, split, catalogue_window_s=catalogue_window_s)
        results["popularity"] = evaluate_popularity(seqs, split, catalogue_window_s=catalogue_window_s)
    if ranker is not None:
        results["ranker"] = evaluate_ranker(ranker, seqs, split)
    if retriever is not None and ranker is not None:
        for name, weights in (two_stage_weights or {"two_stage": None}).items():
            results[name] = two_stage(
                retriever, ranker, seqs, split, weights=weights, catalogue_window_s=catalogue_window_s
            )
    return ModelEvaluation(results, split, catalogue_window_s)


def replay_validation(
    seqs: EngagementSequences,
    retriever: PhoenixRetriever | None = None,
    ranker: PhoenixRanker | None = None,
    *,
    retriever_window_s: float | None = None,
) -> dict[str, dict[str, float]]:
    """Validation metrics of the given models, computed as training logged them (the retriever over
    the catalogue window it trained with, ``TrainConfig.negative_window_s``)."""
    out = {}
    if retriever is not None:
        out["retriever"] = evaluate_retrieval(retriever, seqs, Split.VAL, catalogue_window_s=retriever_window_s)
    if ranker is not None:
        out["ranker"] = evaluate_ranker(ranker, seqs, Split.VAL)
    return out


def replay_differences(
    replayed: Mapping[str, Mapping[str, float]], logged: Mapping[str, Mapping[str, float | None]]
) -> dict[str, float]:
    """Max |replayed - logged| per model over the metrics both have as finite numbers.

    A model with nothing to compare gets ``inf``: an empty comparison is a failure, not a pass.
    """
    out = {}
    for kind, replay in replayed.items():
        log = {k: v for k, v in logged.get(kind, {}).items() if v is not None and math.isfinite(v)}
        common = [k for k in log if k in replay and math.isfinite(replay[k])]
        out[kind] = max((abs(replay[k] - log[k]) for k in common), default=math.inf)
    return out


def replay_reproduces(differences: Mapping[str, float], tolerance: float = REPLAY_TOLERANCE) -> bool:
    """Every model's replay is within ``tolerance`` of its log (and there is at least one model)."""
    return bool(differences) and all(d <= tolerance for d in differences.values())
