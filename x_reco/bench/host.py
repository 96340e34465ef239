"""Host-side request assembly, batched vs the per-row reference, side by side in one process.

``python -m x_reco.bench.host [--preset oss-mini] [--batches 1 16 64] [--out FILE.json]``
times ``RequestAssembler.assemble`` (each entity's ids of the whole batch hashed in one call) against
``assemble_per_row`` on the same synthetic requests (S=127, N=500 by default), checks the two batches
are identical, and prints a markdown table (p50 / p90 ms over ``--calls`` calls, alternating order).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from x_reco.bench.timing import bucket_for
from x_reco.bench.workload import bench_config, synthetic_requests
from x_reco.common.atomic import write_json
from x_reco.inference.requests import RequestAssembler


def measure(preset: str, batch: int, history: int, candidates: int, calls: int, seed: int = 0) -> dict:
    cfg = bench_config(preset)
    reqs = synthetic_requests(cfg, batch, history, candidates, seed=seed)
    bucket = bucket_for(batch, history, candidates)
    asm = RequestAssembler(cfg.hash_spec, cfg.num_history_actions)
    batched, reference = asm.assemble(reqs, bucket, reuse=False), asm.assemble_per_row(reqs, bucket)
    identical = all(
        np.array_equal(getattr(batched, f.name), getattr(reference, f.name)) for f in dataclasses.fields(batched)
    )
    times = {"batched": [], "per_row": []}
    for i in range(calls):
        order = ("batched", "per_row") if i % 2 == 0 else ("per_row", "batched")
        for name in order:
            t0 = time.perf_counter()
            asm.assemble(reqs, bucket) if name == "batched" else asm.assemble_per_row(reqs, bucket)
            times[name].append((time.perf_counter() - t0) * 1e3)
    stats = {k: {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90))} for k, v in times.items()}
    return {
        "preset": preset,
        "B": batch,
        "S": history,
        "N": candidates,
        "calls": calls,
        "identical": identical,
        "ms": stats,
        "speedup_p50": stats["per_row"]["p50"] / stats["batched"]["p50"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| preset | B | S | N | per-row p50 / p90 ms | batched p50 / p90 ms | speed-up (p50) | identical |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pr, ba = r["ms"]["per_row"], r["ms"]["batched"]
        lines.append(
            f"| {r['preset']} | {r['B']} | {r['S']} | {r['N']} | {pr['p50']:.3f} / {pr['p90']:.3f} | "
            f"{ba['p50']:.3f} / {ba['p90']:.3f} | {r['speedup_p50']:.1f}x | {r['identical']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.host", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="oss-mini")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16, 64])
    p.add_argument("--history", type=int, default=127)
    p.add_argument("--candidates", type=int, default=500)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the raw results")
    a = p.parse_args(argv)
    rows = [measure(a.preset, b, a.history, a.candidates, a.calls) for b in a.batches]
    print(table(rows), end="")
    if a.out:
        write_json(a.out, {"rows": rows})
    if not all(r["identical"] for r in rows):
        raise SystemExit("batched assembly differs from the per-row reference")
    return rows


if __name__ == "__main__":
    main()
