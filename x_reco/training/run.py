"""Command line: train and evaluate Phoenix models on one dataset partition, print metrics as JSON.

    python -m x_reco.training.run --dataset movielens-100k --model retriever
    python -m x_reco.training.run --dataset movielens-100k --model both --out runs/ml100k
    python -m x_reco.training.run --model retriever --set num_steps=200 --set model_overrides.emb_size=32

Defaults are the partition's ``default_train_config``, as in Dagster: the configs tuned for
MovieLens-100K on a 2-core CPU (``defaults.TUNED``) on real datasets; on ``synthetic`` the demo budget,
time-aware negatives and evaluation over the world's recency window. ``--set`` overrides TrainConfig
fields (``model_overrides.<field>`` for model fields); a bad key, type or range exits with status 2,
naming the field, the value and what is allowed, before any data is loaded. Sequences use the default
``SequenceConfig`` (S=32, C=16). Test-split metrics are printed; ``--out`` keeps checkpoints, plots and
``metrics.json`` (a temporary directory otherwise).

Evaluation is the Dagster ``model_evaluation`` asset's: with ``--model both`` the exported checkpoints
are restored, evaluated, and their logged validation metrics replayed (``x_reco.eval.checkpoints``);
``--champions ROOT`` also updates ``ROOT/champions/<dataset>.json`` when that audit passes and the new
models beat the champion (the file the Dagster asset updates when ROOT is its storage root).
Without it no champion changes: a CLI run is an experiment, not a release.
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

from x_reco.data.examples import EngagementSequences
from x_reco.data.registry import TUNING_PARTITION
from x_reco.training.config import TrainConfig
from x_reco.training.defaults import catalogue_window_s, default_train_config


def load_sequences(dataset: str, source: str | Path | None = None) -> tuple[EngagementSequences, float | None]:
    """Engagement sequences of a partition (files at ``source``, see ``load_raw``), default
    SequenceConfig, and the partition's catalogue window (``defaults.catalogue_window_s``)."""
    from x_reco.data.events import build_events
    from x_reco.data.registry import load_raw
    from x_reco.data.sequences import build_sequences

    raw = load_raw(dataset, source)
    return build_sequences(build_events(raw), raw.items, dataset), catalogue_window_s(raw.manifest)


_WORDS = {"true": True, "false": False, "none": None, "null": None}


def _parse_set(pairs: list[str], base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``--set KEY=VALUE`` overrides; a value is a Python literal (``5``, ``2e-3``, ``None``,
    ``False``; also ``true``/``false``/``none``), else a string. TrainConfig checks keys, types and ranges."""
    out = {**base, "model_overrides": dict(base.get("model_overrides", {}))}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. num_steps=200")
        key, raw = key.strip(), raw.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = _WORDS.get(raw.lower(), raw)
        if key.startswith("model_overrides."):
            out["model_overrides"][key.split(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def train_configs(args: argparse.Namespace, window: float | None) -> dict[str, TrainConfig]:
    """The TrainConfig of each model ``args`` train: the partition's defaults with ``--set`` (and, for the
    ranker, ``--ranker-set``) overrides. ValueError names the field, the value and what is allowed."""
    configs = {}
    for kind in ("retriever", "ranker"):
        if args.model in (kind, "both"):
            overrides = args.set + (args.ranker_set if kind == "ranker" else [])
            base = default_train_config(args.dataset, kind, catalogue_window_s=window).to_dict()
            configs[kind] = TrainConfig.from_dict(_parse_set(overrides, base))
    return configs


def _summary(result) -> dict[str, Any]:
    return {
        "steps": result.step,
        "selected_step": result.selected_step,
        "final_loss": float(np.mean(result.losses[-20:])),
        "train_time_s": round(result.train_time_s, 1),
        "wall_time_s": round(result.wall_time_s, 1),
        "examples_per_s": round(result.examples_per_s, 1),
        "checkpoint": result.checkpoint_path,
        "score_spread": result.score_spread,
        "val": result.val_metrics,
    }


def _two_stage_weights() -> dict[str, Any]:
    from x_reco.configs.weights import WeightSet

    click_only = WeightSet("click-only", "diagnostic", MappingProxyType({"click": 1.0}))
    return {
        "two_stage": WeightSet.published(),
        "two_stage_engagement_only": WeightSet.engagement_only(),
        "two_stage_click_only": click_only,
    }


def _evaluate(results: dict, seqs: EngagementSequences, window: float | None, champion_file: Path | None):
    """Test metrics from the library functions the Dagster ``model_evaluation`` asset calls: with both
    models, ``evaluate_checkpoints`` on the exported checkpoints (replay audit, champion promotion
    when ``champion_file`` is given); with one, ``evaluate_models`` on it. Returns the evaluation and
    the audit summary."""
    from x_reco.eval.checkpoints import evaluate_checkpoints
    from x_reco.eval.report import evaluate_models

    if len(results) < 2:
        model = lambda kind: results[kind].model if kind in results else None  # noqa: E731
        return evaluate_models(seqs, model("retriever"), model("ranker"), catalogue_window_s=window), {}
    outcome = evaluate_checkpoints(
        seqs,
        results["retriever"].checkpoint_path,
        results["ranker"].checkpoint_path,
        catalogue_window_s=window,
        champion_file=champion_file,
        two_stage_weights=_two_stage_weights(),
    )
    audit = {
        "beats_popularity": outcome.beats_popularity,
        "replay_max_abs_diff": outcome.replay_differences,
        "replay_reproduces": outcome.replay_reproduces,
    }
    return outcome.evaluation, audit | ({"champion": outcome.champion} if champion_file else {})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=TUNING_PARTITION)
    ap.add_argument("--source", default=None, help="dataset files (default: the bundled / generated copy)")
    ap.add_argument("--model", choices=("retriever", "ranker", "both"), default="retriever")
    ap.add_argument("--out", type=Path, default=None, help="run directory (kept); default: a temporary one")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    ap.add_argument("--ranker-set", action="append", default=[], metavar="KEY=VALUE", help="ranker-only override")
    ap.add_argument(
        "--champions",
        type=Path,
        default=None,
        metavar="ROOT",
        help="storage root whose champions/<dataset>.json to update (needs --model both)",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.champions and args.model != "both":
        ap.error("--champions needs --model both (a champion is a retriever and a ranker)")
    try:  # every config before any work (the data's catalogue window is only known after loading it)
        train_configs(args, window=None)
    except ValueError as exc:
        ap.error(str(exc))

    from x_reco.eval.champion import champion_path
    from x_reco.eval.plots import loss_curve_png, metric_bars_png
    from x_reco.training.loop import train_ranker, train_retriever
    from x_reco.training.progress import TqdmProgress

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="x-reco-run-"))
    t0 = time.perf_counter()
    seqs, window = load_sequences(args.dataset, args.source)
    report: dict[str, Any] = {
        "dataset": args.dataset,
        "data_s": round(time.perf_counter() - t0, 1),
        "catalogue_window_s": window,
    }
    results = {}
    for kind, cfg in train_configs(args, window).items():
        train = train_retriever if kind == "retriever" else train_ranker
        with TqdmProgress(kind, disable=args.no_progress, file=sys.stderr, mininterval=2.0) as bar:
            results[kind] = train(seqs, cfg, out_dir / kind, progress=bar)
        report[kind] = {"config": cfg.to_dict(), "training": _summary(results[kind])}
        (out_dir / f"{kind}_loss.png").write_bytes(loss_curve_png(results[kind].losses, f"{kind} loss"))
    champion_file = champion_path(args.champions, args.dataset) if args.champions else None
    evaluation, audit = _evaluate(results, seqs, window, champion_file)
    for kind in results:
        report[kind]["test"] = evaluation.results[kind]
    if "popularity" in evaluation.results:
        report["popularity_test"] = evaluation.results["popularity"]
        keys = ["masked_hr@10", "masked_ndcg@10", "masked_mrr@10", "masked_hr@20", "masked_ndcg@20", "hr@10", "ndcg@10"]
        (out_dir / "retrieval_metrics.png").write_bytes(metric_bars_png(evaluation.comparison(tuple(keys)), keys))
    report.update({f"{name}_test": v for name, v in evaluation.results.items() if name.startswith("two_stage")})
    if audit:
        report["audit"] = audit
    report["total_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
