"""The evaluation bundle of a trained pair of models, and the replay of their logged validation metrics.

``evaluate_models`` is what the Dagster ``model_evaluation`` asset and ``python -m x_reco.training.run``
both report: the retriever and the popularity baseline over the full catalogue, the ranker's AUC /
log-loss and the two-stage retrieve-then-rank metric, with a bootstrap interval over users for the
retrieval metrics. ``protocol_rows`` / ``protocol_markdown`` put the two protocols (unmasked: full
ranking over every item; masked: the user's earlier items removed) of the retriever and popularity
side by side, for one run or as mean ± sd over seeds; ``two_stage_markdown`` the two stages against
the retriever alone. ``replay_validation`` re-evaluates restored models on the validation split so
that a checkpoint which does not reproduce what training logged fails a check instead of being served.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.bootstrap import Bootstrap
from x_reco.eval.champion import PRIMARY_METRIC
from x_reco.eval.ranker import evaluate_ranker, two_stage
from x_reco.eval.retrieval import evaluate_popularity, evaluate_retrieval
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever

REPLAY_TOLERANCE = 1e-4  # max |replayed - logged| of any validation metric; the replay is deterministic
DEFAULT_BOOTSTRAP = Bootstrap()  # 1,000 user resamples, 95 %, seed 0
PROTOCOLS = (("unmasked", ""), ("masked", "masked_"))  # (name, metric key prefix)
PROTOCOL_METRICS = (("HR@10", "hr@10"), ("NDCG@10", "ndcg@10"))  # (column, metric key)
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

    def protocol_markdown(self, level: float = DEFAULT_BOOTSTRAP.level) -> str:
        """Markdown table of both protocols for the retriever and popularity (``protocol_markdown``)."""
        return protocol_markdown(protocol_rows([self.results]), level)


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
    retrieval_weight: float = 0.0,
    bootstrap: Bootstrap | None = DEFAULT_BOOTSTRAP,
) -> ModelEvaluation:
    """Evaluate whichever of the two models is given, the popularity baseline with the retriever,
    and the two-stage pipeline when both are.

    Args:
      catalogue_window_s: the feed's catalogue (recent posts of that many seconds) for retrieval;
        None ranks against every item.
      two_stage_weights: {result name: ``WeightSet``} of the two-stage re-ranking; default
        ``{"two_stage": None}`` (the partition's objective, ``ranker.objective_weights``).
      retrieval_weight: the ranker's blend with the retriever's score in the two stages under the
        partition's objective (``ranker.retrieval_weight_of`` its checkpoint); the other weight sets,
        diagnostics of the ranker's heads, re-rank in the ranker's own order.
      bootstrap: the interval over users of the retriever's and popularity's HR@10 / NDCG@10 (the
        same resamples for both); None computes none.
    """
    split = Split.parse(split)
    results: dict[str, dict[str, float]] = {}
    if retriever is not None:
        window = catalogue_window_s
        results["retriever"] = evaluate_retrieval(
            retriever, seqs, split, catalogue_window_s=window, bootstrap=bootstrap
        )
        results["popularity"] = evaluate_popularity(seqs, split, catalogue_window_s=window, bootstrap=bootstrap)
    if ranker is not None:
        results["ranker"] = evaluate_ranker(ranker, seqs, split)
    if retriever is not None and ranker is not None:
        for name, weights in (two_stage_weights or {"two_stage": None}).items():
            blend = (retrieval_weight if weights is None else 0.0,)
            results[name] = two_stage(
                retriever,
                ranker,
                seqs,
                split,
                weights=weights,
                catalogue_window_s=catalogue_window_s,
                retrieval_weights=blend,
            )
    return ModelEvaluation(results, split, catalogue_window_s)


def protocol_rows(
    runs: Sequence[Mapping[str, Mapping[str, float]]], models: tuple[str, ...] = ("retriever", "popularity")
) -> list[dict[str, object]]:
    """One row per (protocol, model) over ``runs`` (``ModelEvaluation.results`` of each seed).

    Each row has ``protocol``, ``model``, ``runs`` and, per metric key ``k`` of ``PROTOCOL_METRICS``,
    ``k`` (mean over runs), ``k_sd`` (sample sd, ddof=1; NaN with one run) and ``k_ci_low`` /
    ``k_ci_high`` (mean of the runs' bootstrap bounds; NaN where a run has none). Models absent
    from a run are skipped.
    """
    rows = []
    for protocol, prefix in PROTOCOLS:
        for model in models:
            found = [r[model] for r in runs if model in r]
            if not found:
                continue
            row: dict[str, object] = {"protocol": protocol, "model": model, "runs": len(found)}
            for _, key in PROTOCOL_METRICS:
                values = np.array([m.get(prefix + key, math.nan) for m in found], np.float64)
                row[key] = float(values.mean())
                row[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
                for bound in ("ci_low", "ci_high"):
                    row[f"{key}_{bound}"] = float(np.mean([m.get(f"{prefix}{key}_{bound}", math.nan) for m in found]))
            rows.append(row)
    return rows


def _cell(row: Mapping[str, object], key: str, digits: int) -> str:
    text = f"{row[key]:.{digits}f}"
    if int(row["runs"]) > 1:
        text += f" ± {row[f'{key}_sd']:.{digits}f}"
    low, high = row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def protocol_markdown(rows: Sequence[Mapping[str, object]], level: float = DEFAULT_BOOTSTRAP.level, digits=3) -> str:
    """``protocol_rows`` as a markdown table: ``mean [low, high]`` for one run, ``mean ± sd [low, high]``
    (the mean bootstrap bounds) over several."""
    ci = f"[{level * 100:g} % CI]"
    head = ["protocol", "model", *(f"{name} {ci}" for name, _ in PROTOCOL_METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["protocol"]), str(row["model"]), *(_cell(row, key, digits) for _, key in PROTOCOL_METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def two_stage_markdown(runs: Sequence[Mapping[str, Mapping[str, float]]], seeds: Sequence[int] | None = None) -> str:
    """The two stages of each run (``results["two_stage"]``, the partition's objective) as a markdown
    table: NDCG@10 of the retriever alone on its top candidates, the ranker's own order, and the served
    order at the ranker's retrieval weight, the served order's gain over the retriever, and with
    several runs their mean; "" when no run has two stages."""
    found = [(i, r["two_stage"]) for i, r in enumerate(runs) if "two_stage" in r]
    if not found:
        return ""
    head = "| seed | retriever alone | ranker alone | served (retrieval weight) | served vs retriever |"
    lines = [head, "|---|---|---|---|---|"]
    cols = ("retrieval_ndcg@10", "two_stage_ranker_ndcg@10", "two_stage_ndcg@10")
    for i, m in found:
        name = str(seeds[i]) if seeds else "-"
        gain = m["two_stage_ndcg@10"] / m["retrieval_ndcg@10"] - 1
        served = f"{m['two_stage_ndcg@10']:.4f} ({m['retrieval_weight']:.2f})"
        lines.append(f"| {name} | {m[cols[0]]:.4f} | {m[cols[1]]:.4f} | {served} | {gain * 100:+.1f} % |")
    if len(found) > 1:
        mean = {c: float(np.mean([m[c] for _, m in found])) for c in cols}
        gain = mean["two_stage_ndcg@10"] / mean["retrieval_ndcg@10"] - 1
        lines.append(
            f"| mean | {mean[cols[0]]:.4f} | {mean[cols[1]]:.4f} | {mean[cols[2]]:.4f} | {gain * 100:+.1f} % |"
        )
    return "\n".join(lines)


def replay_validation(
    seqs: EngagementSequences,
    retriever: PhoenixRetriever | None = None,
    ranker: PhoenixRanker | None = None,
    *,
    retriever_window_s: float | None = None,
    ranker_seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Validation metrics of the given models, computed as training logged them (the retriever over
    the catalogue window it trained with, ``TrainConfig.negative_window_s``; the ranker against the
    sampled negatives of its run's seed, ``TrainConfig.seed``)."""
    out = {}
    if retriever is not None:
        out["retriever"] = evaluate_retrieval(retriever, seqs, Split.VAL, catalogue_window_s=retriever_window_s)
    if ranker is not None:
        out["ranker"] = evaluate_ranker(ranker, seqs, Split.VAL, seed=ranker_seed)
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
