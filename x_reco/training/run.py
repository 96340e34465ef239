"""Command line: train and evaluate Phoenix models on one dataset partition, print metrics as JSON.

    python -m x_reco.training.run --dataset movielens-100k --model retriever
    python -m x_reco.training.run --dataset movielens-100k --model both --out runs/ml100k
    python -m x_reco.training.run --model retriever --set num_steps=200 --set model_overrides.emb_size=32
    python -m x_reco.training.run --dataset movielens-100k --model both --seeds 0,1,2 --out ml100k.md

Defaults are the partition's ``default_train_config``, as in Dagster: the configs tuned for
MovieLens-100K on a 2-core CPU (``defaults.TUNED``) on real datasets; on ``synthetic`` the demo budget,
time-aware negatives and evaluation over the world's recency window. ``--set`` overrides TrainConfig
fields (``model_overrides.<field>`` for model fields); a bad key, type or range exits with status 2,
naming the field, the value and what is allowed, before any data is loaded. Sequences use the default
``SequenceConfig`` (S=32, C=16; ``--history-len`` sets S). Test-split metrics are printed; ``--out``
keeps checkpoints, plots and ``metrics.json`` (a temporary directory otherwise).

Evaluation is the Dagster ``model_evaluation`` asset's: with ``--model both`` the exported checkpoints
are restored, evaluated, and their logged validation metrics replayed (``x_reco.eval.checkpoints``);
``--champions ROOT`` also updates ``ROOT/champions/<dataset>.json`` when that audit passes and the new
models beat the champion (the file the Dagster asset updates when ROOT is its storage root).
Without it no champion changes: a CLI run is an experiment, not a release.

Retrieval is reported in both protocols (unmasked: full ranking over every item, RecBole's; masked:
the user's earlier items removed), retriever beside popularity, each with a 95 % bootstrap interval
over users (``x_reco.eval.bootstrap``). ``--seeds 0,1,2`` trains and evaluates once per seed
(``--set seed=N``; runs under ``OUT/seed_N``) and prints the table of mean ± sd (ddof=1) over the
seeds with the mean interval. The table is also written to ``--out`` when it names a ``.md`` file
(the runs then go to a temporary directory), else to ``OUT/protocols.md``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
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


def load_sequences(
    dataset: str, source: str | Path | None = None, history_len: int | None = None
) -> tuple[EngagementSequences, float | None]:
    """Engagement sequences of a partition (files at ``source``, see ``load_raw``), the default
    SequenceConfig (``history_len`` replaces its S), and the partition's catalogue window
    (``defaults.catalogue_window_s``)."""
    from x_reco.data.events import build_events
    from x_reco.data.registry import load_raw
    from x_reco.data.sequences import SequenceConfig, build_sequences

    raw = load_raw(dataset, source)
    cfg = SequenceConfig() if history_len is None else SequenceConfig(history_len=history_len)
    return build_sequences(build_events(raw), raw.items, dataset, cfg), catalogue_window_s(raw.manifest)


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
    ranker = configs.get("ranker")
    if ranker is not None and ranker.needs_retriever and "retriever" not in configs:
        raise ValueError(
            f"the {args.dataset} ranker trains on the retriever's hard negatives or selects on the two stages"
            f" (hard_negative_pool={ranker.hard_negative_pool}, selection_metric={ranker.selection_metric!r}):"
            " use --model both, or --ranker-set hard_negative_pool=0 --ranker-set selection_metric=mean_auc"
        )
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
        "two_stage": None,  # the partition's objective (``eval.ranker.objective_weights``)
        "two_stage_published": WeightSet.published(),
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


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; ValueError on anything but distinct non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: expected distinct non-negative integers, e.g. 0,1,2")
    return seeds


def run_models(
    args: argparse.Namespace,
    seqs: EngagementSequences,
    window: float | None,
    out_dir: Path,
    report: dict[str, Any],
    champion_file: Path | None = None,
):
    """Train the models ``args`` name on ``seqs`` (their ``--set``, seed included), evaluate them as
    the Dagster asset does, write loss curves, the metric bars and ``metrics.json`` under ``out_dir``.
    Returns (``report`` completed with training and test metrics, the ``ModelEvaluation``)."""
    from x_reco.eval.plots import loss_curve_png, metric_bars_png
    from x_reco.training.loop import train_ranker, train_retriever
    from x_reco.training.progress import TqdmProgress

    t0 = time.perf_counter()
    results = {}
    for kind, cfg in train_configs(args, window).items():
        train = train_retriever if kind == "retriever" else train_ranker
        # a ranker on hard negatives draws them from the retriever trained just before it
        extra = {"retriever": results["retriever"].model} if kind == "ranker" and "retriever" in results else {}
        with TqdmProgress(kind, disable=args.no_progress, file=sys.stderr, mininterval=2.0) as bar:
            results[kind] = train(seqs, cfg, out_dir / kind, progress=bar, **extra)
        report[kind] = {"config": cfg.to_dict(), "training": _summary(results[kind])}
        (out_dir / f"{kind}_loss.png").write_bytes(loss_curve_png(results[kind].losses, f"{kind} loss"))
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
    report["total_s"] = round(report.get("data_s", 0.0) + time.perf_counter() - t0, 1)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report, evaluation


def protocols_document(dataset: str, seeds: list[int] | None, runs: list[dict], command: str) -> str:
    """The markdown of a run's protocol table: what it is, the command that made it, the table."""
    from x_reco.eval.report import DEFAULT_BOOTSTRAP, protocol_markdown, protocol_rows, two_stage_markdown

    boot = DEFAULT_BOOTSTRAP
    users = int(next((r[m]["num_users"] for r in runs for m in r if "num_users" in r[m]), 0))
    over = f"mean ± sd (ddof=1) over seeds {', '.join(map(str, seeds))}; " if seeds and len(seeds) > 1 else ""
    caption = (
        f"{dataset}, test split: {over}[{boot.level * 100:g} % percentile bootstrap interval over "
        f"{users} users, {boot.resamples} resamples{', mean over the seeds' if over else ''}]"
    )
    text = f"`{command}`\n\n{caption}\n\n{protocol_markdown(protocol_rows(runs), boot.level)}"
    stages = two_stage_markdown(runs, seeds)
    if stages:
        text += (
            f"\n\n{dataset}, test split, two stages: NDCG@10 of the held-out target among the retriever's "
            f"top 200 unseen items, re-ranked\n\n{stages}"
        )
    return text


def run_seeds(
    args: argparse.Namespace, seqs: EngagementSequences, window: float | None, seeds: list[int], out_dir: Path
) -> dict[str, Any]:
    """``run_models`` once per seed (``--set seed=N``, under ``out_dir/seed_N``); the reports and the
    protocol rows over the seeds (``report.protocol_rows``)."""
    from x_reco.eval.report import protocol_rows

    reports, runs = [], []
    for seed in seeds:
        seed_args = argparse.Namespace(**{**vars(args), "set": [*args.set, f"seed={seed}"]})
        seed_dir = out_dir / f"seed_{seed}"
        seed_dir.mkdir(parents=True, exist_ok=True)
        report, evaluation = run_models(seed_args, seqs, window, seed_dir, {"dataset": args.dataset, "seed": seed})
        reports.append(report)
        runs.append(evaluation.results)
    return {"dataset": args.dataset, "seeds": seeds, "runs": reports, "protocols": protocol_rows(runs), "results": runs}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=TUNING_PARTITION)
    ap.add_argument("--source", default=None, help="dataset files (default: the bundled / generated copy)")
    ap.add_argument("--model", choices=("retriever", "ranker", "both"), default="retriever")
    ap.add_argument("--history-len", type=int, default=None, help="history slots S (default: SequenceConfig's 32)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (kept; default: a temporary one), or FILE.md for the protocol table alone",
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    ap.add_argument("--ranker-set", action="append", default=[], metavar="KEY=VALUE", help="ranker-only override")
    ap.add_argument("--seeds", default=None, metavar="0,1,2", help="train and evaluate once per seed; mean ± sd")
    ap.add_argument(
        "--champions",
        type=Path,
        default=None,
        metavar="ROOT",
        help="storage root whose champions/<dataset>.json to update (needs --model both)",
    )
    ap.add_argument("--no-progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _parser()
    args = ap.parse_args(argv)
    if args.champions and args.model != "both":
        ap.error("--champions needs --model both (a champion is a retriever and a ranker)")
    if args.history_len is not None and args.history_len < 1:
        ap.error(f"--history-len={args.history_len} must be >= 1")
    if args.out is not None and args.out.suffix == ".md" and args.model == "ranker":
        ap.error("--out FILE.md is the retrieval protocol table: it needs --model retriever or both")
    try:  # every config before any work (the data's catalogue window is only known after loading it)
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        train_configs(args, window=None)
    except ValueError as exc:
        ap.error(str(exc))
    if seeds and (args.champions or any(p.partition("=")[0].strip() == "seed" for p in args.set)):
        ap.error("--seeds sets the seed of each run: it takes no --set seed=... and no --champions")

    from x_reco.common.atomic import atomic_file
    from x_reco.eval.champion import champion_path

    table_file = args.out if args.out is not None and args.out.suffix == ".md" else None
    out_dir = args.out if args.out is not None and table_file is None else Path(tempfile.mkdtemp(prefix="x-reco-run-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    table_file = table_file or out_dir / "protocols.md"
    command = "python -m x_reco.training.run " + shlex.join(argv)
    t0 = time.perf_counter()
    seqs, window = load_sequences(args.dataset, args.source, args.history_len)
    data_s = round(time.perf_counter() - t0, 1)
    if seeds:
        report = run_seeds(args, seqs, window, seeds, out_dir) | {"data_s": data_s}
        table = report["table"] = protocols_document(args.dataset, seeds, report.pop("results"), command)
        (out_dir / "seeds.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        text = table
    else:
        base = {"dataset": args.dataset, "data_s": data_s, "catalogue_window_s": window}
        champion_file = champion_path(args.champions, args.dataset) if args.champions else None
        report, evaluation = run_models(args, seqs, window, out_dir, base, champion_file)
        table = (
            protocols_document(args.dataset, None, [evaluation.results], command)
            if "popularity" in evaluation.results
            else None
        )
        text = json.dumps(report, indent=2, default=str)
    if table is not None:
        table_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(table_file, "w") as f:
            f.write(table)
    print(text)
    return report


if __name__ == "__main__":
    main()
