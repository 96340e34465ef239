"""Subprocess entry for the multi-device and SIGKILL tests: train the toy retriever, print progress.

``python -m tests.training.toy_run <ckpt_dir> [--stop-at N] [--sleep-after N]`` prints one JSON line
per step: {"step", "loss", "devices"}. ``--stop-at`` exits after that step; ``--sleep-after`` slows
steps past N so a parent can kill the process mid-run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax

from tests.training.helpers import toy_seqs
from tests.training.test_loop import CFG
from x_reco.training.loop import train_retriever


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt_dir")
    ap.add_argument("--stop-at", type=int, default=0)
    ap.add_argument("--sleep-after", type=int, default=0)
    args = ap.parse_args(argv)
    devices = jax.device_count()

    def progress(step, total, loss, examples_per_s, eta_s):
        print(json.dumps({"step": step, "loss": loss, "devices": devices}), flush=True)
        if args.sleep_after and step > args.sleep_after:
            time.sleep(0.2)
        if step == args.stop_at:
            sys.exit(0)

    train_retriever(toy_seqs(), CFG, args.ckpt_dir, progress=progress)


if __name__ == "__main__":
    main(sys.argv[1:])
