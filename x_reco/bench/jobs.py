"""Benchmark jobs, each run in a fresh spawned worker process.

Separate processes per configuration are part of the protocol (spec §5.3: repeats in separate processes
show run-to-run differences); ``spawn`` keeps the parent from ever initializing the accelerator, so
every worker sees the whole device. A job is a frozen dataclass with ``kind`` and ``run() -> records``
(``TimingJob``, ``MemoryJob``, ``QualityJob``, ``RetrievalJob``, ``MetadataJob``); records come back as
plain JSON types, exactly what ``raw.json`` stores. The worker imports only the job's own module.
A worker announces each finished configuration with ``report(label)``; ``run_jobs`` hands the labels to
its ``on_report`` callback while the job still runs (the parent's progress log).
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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


_REPORTS = None  # in a worker: the queue ``report`` writes to (set by the pool's initializer)


def _init_worker(reports) -> None:
    global _REPORTS
    _REPORTS = reports


def report(label: str) -> None:
    """Announce a finished configuration to the parent's ``run_jobs(on_report=...)``; a no-op elsewhere."""
    if _REPORTS is not None:
        _REPORTS.put(label)


def _pool(reports=None) -> ProcessPoolExecutor:
    """A one-process pool for one job. (One pool with ``max_tasks_per_child=1`` spawned a replacement
    worker after every job, the last one for nothing: measured 10 s at the end of a demo run, 2 cores.)"""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=_init_worker, initargs=(reports,))


def _result(future, reports, on_report: Callable[[Job, str], None] | None, job: Job) -> list[dict]:
    """The future's records; meanwhile every label the worker reports goes to ``on_report``."""
    while on_report is not None and not future.done():
        wait([future], timeout=0.5, return_when=FIRST_COMPLETED)
        while True:
            try:
                on_report(job, reports.get_nowait())
            except queue.Empty:
                break
    return future.result()


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


def run_jobs(
    jobs: Iterable[Job], on_report: Callable[[Job, str], None] | None = None
) -> Iterator[tuple[Job, list[dict], dict]]:
    """Run each job in a fresh worker process, one after the other; yields (job, records, log).

    A job that raises or whose process dies yields no records and its error in the log; the next job
    runs anyway (each job has its own one-process pool). ``on_report(job, label)`` is
    called in this process for each ``report(label)`` of the running job's worker, as it comes (a
    label still in flight when the job ends may be dropped: count finished work from the records).
    """
    reports = multiprocessing.get_context("spawn").Queue() if on_report is not None else None
    try:
        for index, job in enumerate(jobs):
            t0, records, error = time.perf_counter(), [], None
            pool = _pool(reports)
            try:
                records = _result(pool.submit(execute, job), reports, on_report, job)
            except BrokenProcessPool as err:
                error = f"worker process died: {err}"
            except Exception as err:  # noqa: BLE001 - one failed configuration must not end the run
                error = f"{type(err).__name__}: {err}"
            finally:
                pool.shutdown(wait=True)
            if error:
                print(f"job {index} ({job.kind}) failed: {error}", file=sys.stderr, flush=True)
            yield job, records, job_log(job, index, time.perf_counter() - t0, error)
    finally:
        if reports is not None:
            reports.close()


def run_isolated(job: Job) -> list[dict]:
    """One job in a fresh worker process; raises if it fails."""
    with _pool() as pool:
        return pool.submit(execute, job).result()
