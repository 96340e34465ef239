"""One training per run directory: an exclusive lock file holding the trainer's pid.

The lock is an ``flock`` on ``<run_dir>/train.lock``: the kernel releases it when the holder exits,
however it exits, so a lock file left by a killed run (a dead pid) is simply taken over. Two runs
writing the same Orbax directory would both crash inside Orbax; the second gets ``RunLockedError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "train.lock"


class RunLockedError(RuntimeError):
    """Another live process is training into this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run directory's lock (created with its parents) while the block runs; yields the lock path.

    Raises RunLockedError ``already training: <run_dir> (pid N)`` when another process holds it.
    """
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = _acquire(path, run_dir)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiter holding the old file sees it is gone
        os.close(fd)


def _acquire(path: Path, run_dir: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(f"already training: {run_dir} (pid {holder})") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder released and removed the file between our open and flock: retry
