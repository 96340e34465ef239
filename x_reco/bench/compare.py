"""Before/after latency of two source trees, interleaved in one run: ``python -m x_reco.bench.compare``.

Each round runs the same timing job (one configuration grid, fresh process) first in the ``--before``
tree (e.g. a git worktree of an older commit; ``python -m BEFORE_WORKER JOB.json OUT.json`` there) and
then in this one (a ``TimingJob`` in a fresh worker process), so both see the same machine state; the
table reports the median over rounds of each process's p50 (and p99), per variant. The default
``--before-worker`` is where trees before ``x_reco/bench/`` kept their worker; for a tree that has
``x_reco/bench/`` pass ``--before-worker x_reco.bench.timing``.

    git worktree add /tmp/before <commit>
    python -m x_reco.bench.compare --before /tmp/before --out bench_out/compare
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from x_reco.bench.jobs import run_isolated
from x_reco.bench.timing import TimingJob

BEFORE_WORKER = "x_reco.inference.bench_worker"  # the older trees' worker module (JOB.json OUT.json)
VARIANTS = ("dense", "split", "cached", "w8+t8")


def timing_job(preset: str, shape: tuple[int, int, int], calls: int, users: int, source_cache: str) -> dict:
    """The timing job both trees run, in the JSON form older trees' workers read (``TimingJob.from_dict``)."""
    grid = {v: [list(shape)] for v in VARIANTS}
    return {
        "kind": "timing",
        "preset": preset,
        "repeat": 0,
        "grid": grid,
        "variants": list(VARIANTS),
        "calls": calls,
        "warmup": 3,
        "users": users,
        "pipelined": 0,
        "seed": 0,
        "accounting_samples": 3,
        "table_rows": None,
        "source_cache": source_cache,
    }


def run_before(tree: Path, module: str, job: dict, folder: Path, tag: str) -> list[dict]:
    """Run ``module job out`` with ``tree`` first on the import path, in a fresh interpreter."""
    job_path, out_path = folder / f"{tag}.job.json", folder / f"{tag}.out.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", module, str(job_path), str(out_path)], env=env, cwd=str(tree), check=True)
    return json.loads(out_path.read_text())


def summary_table(rows: dict[str, dict[str, list[dict]]]) -> str:
    """Markdown: per variant, median over rounds of per-process p50 / p99 before and after, and the ratio."""
    lines = [
        "| variant | before p50 ms | after p50 ms | after / before | before p99 ms | after p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        before = [r for r in rows["before"].get(variant, [])]
        after = [r for r in rows["after"].get(variant, [])]
        if not before or not after:
            continue
        b50, a50 = statistics.median(r["p50"] for r in before), statistics.median(r["p50"] for r in after)
        b99, a99 = statistics.median(r["p99"] for r in before), statistics.median(r["p99"] for r in after)
        lines.append(f"| {variant} | {b50:.2f} | {a50:.2f} | {a50 / b50:.3f} | {b99:.2f} | {a99:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.compare", description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the older source tree (a git worktree)")
    p.add_argument("--before-worker", default=BEFORE_WORKER, help="timing worker module in the older tree")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="oss-mini")
    p.add_argument("--shape", nargs=3, type=int, default=[1, 127, 500], metavar=("B", "S", "N"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--users", type=int, default=200)
    args = p.parse_args(argv)
    out = Path(args.out).resolve()  # the before side runs with the older tree as its working directory
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, list[dict]]] = {"before": {}, "after": {}}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for side in ("before", "after"):
            job = timing_job(args.preset, tuple(args.shape), args.calls, args.users, str(out / f"sources-{side}"))
            if side == "before":
                records = run_before(Path(args.before).resolve(), args.before_worker, job, out, f"{side}-{r}")
            else:
                records = run_isolated(TimingJob.from_dict(job))
            for rec in records:
                stats = {k: rec[k] for k in ("p50", "p90", "p99", "compile_s")}
                rows[side].setdefault(rec["variant"], []).append(stats)
            print(f"[round {r}] {side} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    table = summary_table(rows)
    raw = {
        "command": [sys.executable, "-m", "x_reco.bench.compare", *(argv or sys.argv[1:])],
        "settings": vars(args),
        "rows": rows,
        "wall_s": time.perf_counter() - t0,
    }
    (out / "compare.json").write_text(json.dumps(raw, indent=1))
    (out / "compare.md").write_text(table)
    print(table)
    return raw


if __name__ == "__main__":
    main()
