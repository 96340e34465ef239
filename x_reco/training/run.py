"""Command line: train and evaluate Phoenix models on one dataset partition, print metrics as JSON.

    python -m x_reco.training.run --dataset movielens-100k --model retriever
    python -m x_reco.training.run --dataset movielens-100k --model both --out runs/ml100k
    python -m x_reco.training.run --model retriever --set num_steps=200 --set model_overrides.emb_size=32

Defaults are the partition's ``default_train_config``, as in Dagster: the configs tuned for
MovieLens-100K on a 2-core CPU (``presets.TUNED``) on real datasets; on ``synthetic`` the demo budget,
time-aware negatives and evaluation over the world's recency window. ``--set`` overrides TrainConfig
fields (``model_overrides.<field>`` for model fields). Sequences use the default ``SequenceConfig``
(S=32, C=16). Test-split metrics are printed; ``--out`` keeps checkpoints, plots and
``metrics.json`` (a temporary directory otherwise).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.registry import TUNING_PARTITION
from x_reco.training.config import TrainConfig
from x_reco.training.presets import catalogue_window_s, default_train_config


def load_sequences(dataset: str, source: str | Path | None = None) -> tuple[EngagementSequences, float | None]:
    """Engagement sequences of a partition (files at ``source``, see ``load_raw``), default
    SequenceConfig, and the partition's catalogue window (``presets.catalogue_window_s``)."""
    from x_reco.data.events import build_events
    from x_reco.data.registry import load_raw
    from x_reco.data.sequences import build_sequences

    raw = load_raw(dataset, source)
    return build_sequences(build_events(raw), raw.items, dataset), catalogue_window_s(raw.manifest)


def _parse_set(pairs: list[str], base: dict[str, Any]) -> dict[str, Any]:
    out = {**base, "model_overrides": dict(base.get("model_overrides", {}))}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key.startswith("model_overrides."):
            out["model_overrides"][key.split(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def _summary(result) -> dict[str, Any]:
    return {
        "steps": result.step, "selected_step": result.selected_step, "final_loss": float(np.mean(result.losses[-20:])),
        "train_time_s": round(result.train_time_s, 1), "wall_time_s": round(result.wall_time_s, 1),
        "examples_per_s": round(result.examples_per_s, 1), "checkpoint": result.checkpoint_path,
        "score_spread": result.score_spread, "val": result.val_metrics,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=TUNING_PARTITION)
    ap.add_argument("--source", default=None, help="dataset files (default: the bundled / generated copy)")
    ap.add_argument("--model", choices=("retriever", "ranker", "both"), default="retriever")
    ap.add_argument("--out", type=Path, default=None, help="run directory (kept); default: a temporary one")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    ap.add_argument("--ranker-set", action="append", default=[], metavar="KEY=VALUE", help="ranker-only override")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from x_reco.configs.weights import WeightSet
    from x_reco.eval import evaluate_popularity, evaluate_ranker, evaluate_retrieval, two_stage
    from x_reco.eval.plots import loss_curve_png, metric_bars_png
    from x_reco.training.loop import train_ranker, train_retriever
    from x_reco.training.progress import TqdmProgress

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="x-reco-run-"))
    t0 = time.perf_counter()
    seqs, window = load_sequences(args.dataset, args.source)
    report: dict[str, Any] = {"dataset": args.dataset, "data_s": round(time.perf_counter() - t0, 1),
                              "catalogue_window_s": window}  # fmt: skip
    results = {}
    for kind in ("retriever", "ranker"):
        if args.model not in (kind, "both"):
            continue
        overrides = args.set + (args.ranker_set if kind == "ranker" else [])
        base = default_train_config(args.dataset, kind, catalogue_window_s=window).to_dict()
        cfg = TrainConfig.from_dict(_parse_set(overrides, base))
        train = train_retriever if kind == "retriever" else train_ranker
        with TqdmProgress(kind, disable=args.no_progress, file=sys.stderr, mininterval=2.0) as bar:
            results[kind] = train(seqs, cfg, out_dir / kind, progress=bar)
        report[kind] = {"config": cfg.to_dict(), "training": _summary(results[kind])}
        (out_dir / f"{kind}_loss.png").write_bytes(loss_curve_png(results[kind].losses, f"{kind} loss"))
    if "retriever" in results:
        ret = evaluate_retrieval(results["retriever"].model, seqs, Split.TEST, catalogue_window_s=window)
        pop = evaluate_popularity(seqs, Split.TEST, catalogue_window_s=window)
        report["retriever"]["test"], report["popularity_test"] = ret, pop
        keys = ["masked_hr@10", "masked_ndcg@10", "masked_mrr@10", "masked_hr@20", "masked_ndcg@20", "hr@10", "ndcg@10"]
        (out_dir / "retrieval_metrics.png").write_bytes(metric_bars_png({"retriever": ret, "popularity": pop}, keys))
    if "ranker" in results:
        report["ranker"]["test"] = evaluate_ranker(results["ranker"].model, seqs, Split.TEST)
    if len(results) == 2:
        models = (results["retriever"].model, results["ranker"].model)
        click_only = WeightSet("click-only", "diagnostic", MappingProxyType({"click": 1.0}))
        for name, weights in (("", WeightSet.published()), ("_engagement_only", WeightSet.engagement_only()),
                              ("_click_only", click_only)):  # fmt: skip
            report[f"two_stage{name}_test"] = two_stage(*models, seqs, Split.TEST, weights=weights,
                                                        catalogue_window_s=window)  # fmt: skip
    report["total_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
