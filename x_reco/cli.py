"""The `x-reco` command line: fetch datasets, build sequences, train models (with progress bars)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from x_reco.data.registry import DEFAULT_PARTITION, PARTITIONS


def _cmd_fetch(args) -> int:
    from x_reco.data.fetch import fetch

    paths = fetch(args.partition, args.dest)
    print(json.dumps({"partition": args.partition, "files": [str(p) for p in paths]}, indent=2, default=str))
    return 0


def build_partition_sequences(
    partition: str, source: str | None, history_len: int = 32, candidate_len: int = 16, synthetic_size: str = "small"
):
    """load -> events -> sequences for one partition, outside Dagster (notebooks, GPU machines)."""
    from x_reco.data.events import build_events
    from x_reco.data.registry import dataset_spec, load_raw
    from x_reco.data.sequences import SequenceConfig, build_sequences

    synthetic = {"size": synthetic_size} if dataset_spec(partition).generated else None
    raw = load_raw(partition, source, synthetic_config=synthetic)
    events = build_events(raw)
    cfg = SequenceConfig(history_len=history_len, candidate_len=candidate_len)
    return build_sequences(events, raw.items, partition, cfg)


def _cmd_sequences(args) -> int:
    from x_reco.data.summary import sequences_summary

    t0 = time.perf_counter()
    seqs = build_partition_sequences(
        args.dataset, args.source, args.history_len, args.candidate_len, args.synthetic_size
    )
    out = Path(args.out)
    seqs.to_npz(out)
    stats = sequences_summary(seqs) | {"seconds": round(time.perf_counter() - t0, 2), "path": str(out)}
    print(json.dumps(stats, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="x-reco", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="download a dataset's official archives (needs network)")
    p.add_argument("partition")
    p.add_argument("dest")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("sequences", help="build engagement sequences for a dataset into an .npz")
    p.add_argument("--dataset", default=DEFAULT_PARTITION, choices=PARTITIONS)
    p.add_argument("--source", default=None, help="archive or directory (default: the partition's default)")
    p.add_argument("--history-len", type=int, default=32)
    p.add_argument("--candidate-len", type=int, default=16)
    p.add_argument("--synthetic-size", default="small")
    p.add_argument("--out", default="sequences.npz")
    p.set_defaults(func=_cmd_sequences)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
