"""A small trained ranker for benchmark quality runs: re-hash engagement sequences to fewer table rows, train.

``python -m x_reco.bench.trained --sequences NPZ --out DIR`` writes ``DIR/sequences.npz`` (the same
examples, ids re-hashed with the same family, salt and namespace but ``--vocab-size`` rows per table)
and ``DIR/run/model`` (a ``restore_checkpoint`` directory). With 10,000 rows an ``oss-mini`` checkpoint
is about 19 MB, small enough to travel to a GPU machine; the full 100,000-row tables are 150 MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from x_reco.data.examples import EngagementSequences
from x_reco.training.config import TrainConfig
from x_reco.training.loop import train_ranker


def train_quality_checkpoint(
    sequences: str | Path,
    out: str | Path,
    *,
    preset: str = "oss-mini",
    vocab_size: int = 10_000,
    steps: int = 1000,
    seed: int = 0,
) -> Path:
    """Re-hash ``sequences`` and train a ranker on them; returns the checkpoint directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seqs = EngagementSequences.from_npz(sequences)
    seqs = seqs.rehash(dataclasses.replace(seqs.hash_spec, vocab_sizes=(vocab_size,) * 3))
    seqs.to_npz(out / "sequences.npz")
    cfg = TrainConfig(
        preset=preset, num_steps=steps, batch_size=64, warmup_steps=max(1, min(100, steps // 10)), seed=seed
    )
    result = train_ranker(seqs, cfg, out / "run")
    (out / "train_result.json").write_text(
        json.dumps({k: v for k, v in result.to_dict().items() if k != "losses"}, default=str, indent=1)
    )
    return Path(result.checkpoint_path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.trained", description=__doc__.splitlines()[0])
    p.add_argument("--sequences", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="oss-mini")
    p.add_argument("--vocab-size", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    path = train_quality_checkpoint(
        a.sequences, a.out, preset=a.preset, vocab_size=a.vocab_size, steps=a.steps, seed=a.seed
    )
    print(path)


if __name__ == "__main__":
    main()
