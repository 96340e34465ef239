"""The `x-reco` command line: fetch datasets, build sequences, serve and explain a For You feed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from x_reco.data.registry import DEFAULT_PARTITION, PARTITIONS


def _cmd_fetch(args) -> int:
    from x_reco.data.errors import XRecoDataError
    from x_reco.data.fetch import fetch

    try:
        paths = fetch(args.partition, args.dest)
    except XRecoDataError as exc:  # a short download, a bad archive: the message says what and what to do
        print(f"x-reco fetch: {exc}", file=sys.stderr)
        return 1
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


EXIT_BAD_ARGS, EXIT_CHECKPOINT, EXIT_STRICT = 2, 3, 4


def _cmd_feed(args) -> int:
    """``x-reco feed``: exit 0; 2 bad arguments or unknown user; 3 checkpoint or data; 4 PipelineError."""
    from x_reco.common.layout import default_root
    from x_reco.pipeline.feed import build_pipeline
    from x_reco.pipeline.render import render_compare, render_feed, render_why
    from x_reco.pipeline.state import UnknownUserError
    from x_reco.pipeline.store import ServingDataError
    from x_reco.pipeline.types import PipelineError

    storage = args.storage or default_root()
    try:
        print(f"loading {args.dataset} from {storage} ...", file=sys.stderr)
        # One request: the prefix cache would only add compilations (it pays off across a user's requests).
        pipeline = build_pipeline(
            args.dataset,
            storage,
            rules=args.rules,
            weights=args.weights,
            strict=args.strict,
            prefix_cache_slots=0,
            variant=args.variant,
            rounding=args.rounding,
            retrieval_weight=args.retrieval_weight,
        )
    except ServingDataError as exc:
        print(f"x-reco feed: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    except ValueError as exc:  # unknown rule or weight set
        print(f"x-reco feed: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        t = args.at if args.at is not None else pipeline.state.request_time(args.user, visit=args.visit)
        result = pipeline.serve(pipeline.request(args.user, t, page=args.page))
        compare = pipeline.rescore(result, args.compare.split(",")) if args.compare else None
        attribution, attribute_s = None, 0.0
        if args.attribute:
            t0 = time.perf_counter()
            attribution = pipeline.attribute(result)
            attribute_s = time.perf_counter() - t0
    except (UnknownUserError, ValueError) as exc:
        print(f"x-reco feed: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except PipelineError as exc:
        print(f"x-reco feed: pipeline error under --strict: {exc}", file=sys.stderr)
        return EXIT_STRICT
    report = pipeline.report(result, timings=args.timings, ledger=args.ledger, attribution=attribution)
    if attribution is not None and args.timings:  # the cost of §15.5 (it includes compiling its call)
        report["attribution_cost"] = {
            "ms": attribute_s * 1e3,
            "ranker_calls": attribution.ranker_calls,
            "prefix": attribution.prefix,
        }
    why = {p: pipeline.why_not(result, p) for p in args.why or ()}
    if args.json:
        payload = report | ({"why": why} if why else {}) | ({"compare": compare} if compare else {})
        print(json.dumps(payload, sort_keys=True, indent=1, default=_json_default))
        return 0
    print(render_feed(report, timings=args.timings))
    for post_id, answer in why.items():
        print(render_why(post_id, answer))
    if compare:
        print(render_compare(compare))
    return 0


def _cmd_champion(args) -> int:
    """Show a dataset's champion and the ones it replaced; ``--rollback`` restores the previous one."""
    from x_reco.common.layout import default_root
    from x_reco.eval.champion import champion_history, champion_path, read_champion, rollback_champion

    path = champion_path(args.storage or default_root(), args.dataset)
    if args.rollback:
        try:
            rollback_champion(path)
        except ValueError as exc:
            print(f"x-reco champion: {exc}", file=sys.stderr)
            return 1
        print(f"rolled back: {path} is the previous champion again")
    current = read_champion(path)
    if current is None:
        print(f"{args.dataset} has no champion yet ({path}): model_evaluation promotes one when its checks pass")
        return 1
    history = champion_history(path)
    for label, record in [("champion", current), *[(f"before -{k}", r) for k, r in enumerate(history[::-1], 1)]]:
        print(
            f"{label:>10}  {record['metric_name']} {record['metric']:.4f}  retriever {record['retriever']}  "
            f"ranker {record['ranker']}"
        )
    return 0


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


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

    p = sub.add_parser("feed", help="serve one For You feed from the partition's champion checkpoints and explain it")
    p.add_argument("--dataset", default=DEFAULT_PARTITION, choices=PARTITIONS)
    p.add_argument("--user", required=True, help="user id, e.g. u0042")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", type=int, default=None, help="request time (s UTC); default: first test request")
    when.add_argument("--visit", type=int, default=0, help="the user's K-th test-split request (0-based)")
    p.add_argument("--page", type=int, default=1, help="page >= 2 is a bottom request")
    p.add_argument("--rules", default="aug-2026", help="rule set: aug-2026, may-2026 or jan-2026")
    p.add_argument("--weights", default="published", help="weight set name (published, sync-2026-08-12, ...)")
    p.add_argument(
        "--variant", default="w8+t8", help="ranker weight/table format: w8+t8 (served), f32 (as trained), w8, t8, bf16w"
    )
    p.add_argument(
        "--rounding",
        default="auto",
        choices=("auto", "calibrated", "nearest"),
        help="int8 weight rounding: calibrated against the stored ranker_calibration, nearest, or auto "
        "(calibrated where the champion ranker's calibration is stored)",
    )
    p.add_argument(
        "--retrieval-weight",
        type=float,
        default=None,
        metavar="B",
        help="blend of the ranker's score with the retriever's u·v in [0, 1] (default: the champion ranker's "
        "validation fit; 0 orders by the ranker alone)",
    )
    p.add_argument("--compare", default="", help="comma-separated weight sets to re-rank under (no model call)")
    p.add_argument("--why", nargs="*", default=[], metavar="POST_ID", help="why is (not) this post served")
    p.add_argument(
        "--attribute", action="store_true", help="leave-one-out: the history events each served post owes most to"
    )
    p.add_argument("--strict", action="store_true", help="raise where upstream fails open (exit 4)")
    p.add_argument("--json", action="store_true", help="machine-readable; byte-identical across reruns")
    p.add_argument("--timings", action="store_true", help="per-stage latencies (not byte-identical)")
    p.add_argument("--ledger", action="store_true", help="with --json: the fate of every retrieved candidate")
    p.add_argument("--storage", default="", help="storage root (default: $XRECO_DATA_ROOT, else ./data)")
    p.set_defaults(func=_cmd_feed)

    p = sub.add_parser("champion", help="show a dataset's champion models and history; --rollback restores the last")
    p.add_argument("--dataset", default=DEFAULT_PARTITION, choices=PARTITIONS)
    p.add_argument("--rollback", action="store_true", help="make the champion it replaced the champion again")
    p.add_argument("--storage", default="", help="storage root (default: $XRECO_DATA_ROOT, else ./data)")
    p.set_defaults(func=_cmd_champion)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
