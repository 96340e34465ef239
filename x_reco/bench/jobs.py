"""Benchmark jobs, each run in a fresh spawned worker process.

Separate processes per configuration are part of the protocol (spec §5.3: repeats in separate processes
show run-to-run differences); ``spawn`` keeps the parent from ever initializing the accelerator, so
every worker sees the whole device. A job is a frozen dataclass with ``kind`` and ``run() -> records``
(``TimingJob``, ``MemoryJob``, ``QualityJob``, ``RetrievalJob``, ``MetadataJob``); records come back as
plain JSON types, exactly what ``raw.json`` stores. The worker imports only the job's own module.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ClassVar, Protocol

import numpy as np


class Job(Protocol):
    """A picklable benchmark job: ``run()`` returns its records (dicts) in the worker process."""

    kind: ClassVar[str]

    def run(self) -> list[dict]: ...


def execute(job: Job) -> list[dict]:
    """Run ``job`` in this process; its records with numpy scalars and arrays made plain."""
    return json.loads(json.dumps(job.run(), default=_plain))


def _plain(x):
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serializable: {type(x)}")


def _pool() -> ProcessPoolExecutor:
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1)


def job_log(job: Job, index: int, wall_s: float, error: str | None) -> dict:
    return {
        "index": index,
        "kind": job.kind,
        "preset": getattr(job, "preset", None),
        "repeat": getattr(job, "repeat", None),
        "variant": getattr(job, "variant", None),
        "error": error,
        "wall_s": wall_s,
    }


def run_jobs(jobs: Iterable[Job]) -> Iterator[tuple[Job, list[dict], dict]]:
    """Run each job in a fresh worker process, one after the other; yields (job, records, log).

    A job that raises or whose process dies yields no records and its error in the log; the next job
    runs anyway (a dead worker breaks the pool, so a new one is started).
    """
    pool = _pool()
    try:
        for index, job in enumerate(jobs):
            t0, records, error = time.perf_counter(), [], None
            try:
                records = pool.submit(execute, job).result()
            except BrokenProcessPool as err:
                error = f"worker process died: {err}"
                pool.shutdown(wait=True)
                pool = _pool()
            except Exception as err:  # noqa: BLE001 - one failed configuration must not end the run
                error = f"{type(err).__name__}: {err}"
            if error:
                print(f"job {index} ({job.kind}) failed: {error}", file=sys.stderr, flush=True)
            yield job, records, job_log(job, index, time.perf_counter() - t0, error)
    finally:
        pool.shutdown(wait=True)


def run_isolated(job: Job) -> list[dict]:
    """One job in a fresh worker process; raises if it fails."""
    with _pool() as pool:
        return pool.submit(execute, job).result()
