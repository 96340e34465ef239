"""Training cost of the tuned configs on this machine: steady-state examples/s (after the compiling
first step) and seconds per pass over the training split, next to the model's width and size.

``python -m x_reco.bench.training --out DIR [--dataset movielens-100k] [--steps 100]`` writes
``training_cost.json`` and ``training_cost.md``; ``make bench`` runs it. The runs are short (the
tuned config with ``--steps`` steps, no evaluation or checkpoints) in a temporary directory.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from x_reco.common.atomic import atomic_file, write_json
from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.registry import TUNING_PARTITION
from x_reco.training.config import TrainConfig
from x_reco.training.defaults import default_train_config
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.run import load_sequences

TRAINERS = {"retriever": train_retriever, "ranker": train_ranker}


def train_examples(seqs: EngagementSequences, kind: str) -> int:
    """Examples in one pass over the training split: (example, engaged item) pairs for the
    retriever, example rows for the ranker (what each trainer draws its batches from)."""
    return len(seqs.retrieval_pairs(Split.TRAIN)[0]) if kind == "retriever" else len(seqs.rows(Split.TRAIN))


def training_cost(seqs: EngagementSequences, configs: dict[str, TrainConfig]) -> list[dict[str, Any]]:
    """One short run per model kind of ``configs``; a row of throughput and model size per kind."""
    rows, models = [], {}
    for kind, cfg in configs.items():
        # a ranker on hard negatives draws them from the retriever trained just before (its pool is
        # built before the step loop, so it is not in examples/s)
        extra = {"retriever": models["retriever"]} if kind == "ranker" and cfg.needs_retriever else {}
        with tempfile.TemporaryDirectory() as tmp:
            result = TRAINERS[kind](seqs, cfg, tmp, **extra)
        models[kind] = result.model
        leaves = [x for x in jax.tree.leaves(nnx.state(result.model)) if np.issubdtype(x.dtype, np.floating)]
        n_weights = int(sum(np.prod(x.shape) for x in leaves))  # hash tables included
        per_s = float(result.examples_per_s)
        examples = train_examples(seqs, kind)
        model = result.model.config
        rows.append(
            {
                "kind": kind,
                "preset": cfg.preset,
                "emb_size": getattr(model, "emb_size", None),
                "num_layers": getattr(model, "num_layers", None),
                "weights": n_weights,
                "batch_size": cfg.batch_size,
                "steps": cfg.num_steps,
                "examples_per_s": per_s,
                "train_examples": examples,
                "s_per_pass": examples / per_s if per_s > 0 else float("nan"),
            }
        )
    return rows


def tuned_configs(dataset: str, steps: int, window_s: float | None) -> dict[str, TrainConfig]:
    """The partition's tuned configs, cut to ``steps`` steps without evaluation or checkpoints."""
    short = dict(
        num_steps=steps,
        warmup_steps=min(10, steps - 1),
        eval_every=0,
        select_best=False,
        early_stopping_patience=0,
        checkpoint_every=0,
    )
    return {kind: default_train_config(dataset, kind, catalogue_window_s=window_s, **short) for kind in TRAINERS}


def markdown(rows: list[dict[str, Any]], dataset: str, command: str) -> str:
    head = (
        "| model | preset | width (emb) | layers | weights (tables incl.) | batch | examples/s "
        "| train examples | s per pass |"
    )
    lines = [f"Training cost, {dataset} (`{command}`)", "", head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['preset']} | {r['emb_size']} | {r['num_layers']} | {r['weights']:,} | "
            f"{r['batch_size']} | {r['examples_per_s']:,.0f} | {r['train_examples']:,} | {r['s_per_pass']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m x_reco.bench.training", description=__doc__)
    parser.add_argument("--out", required=True, help="directory for training_cost.json and .md")
    parser.add_argument("--dataset", default=TUNING_PARTITION, help="default: the partition the configs were tuned on")
    parser.add_argument("--steps", type=int, default=100, help="steps per model (the first one compiles)")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error(f"--steps={args.steps} must be >= 3 (the first step compiles and is not timed)")
    seqs, window = load_sequences(args.dataset)
    rows = training_cost(seqs, tuned_configs(args.dataset, args.steps, window))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = f"python -m x_reco.bench.training --dataset {args.dataset} --steps {args.steps}"
    write_json(out / "training_cost.json", {"dataset": args.dataset, "command": command, "rows": rows})
    text = markdown(rows, args.dataset, command)
    with atomic_file(out / "training_cost.md", "w") as f:
        f.write(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
