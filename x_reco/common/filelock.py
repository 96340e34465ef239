"""Inter-process file locks: ``file_lock(path)`` holds an ``flock`` on ``path`` while a block runs.

DuckDB admits one read-write process per database file, or any number of read-only ones; a second
opener fails at once (``Conflicting lock is held``). Every x-reco opener of the warehouse therefore
takes ``<database>.lock`` first (``database_lock``): exclusive around a read-write connection, shared
around a read-only one, held only while the connection is open, so an opener waits its turn instead
of failing, and no step holds anything while it computes. The kernel drops an ``flock`` when its holder
exits however it exits, so a killed holder never leaves a stale lock; the lock file itself stays.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

WARN_AFTER_S = 5.0


def lock_path(database: str | Path) -> Path:
    """The lock file of a DuckDB database: ``<database>.lock`` beside it."""
    return Path(f"{database}.lock")


def _open(path: Path) -> int | None:
    """A descriptor to lock, creating the file; read-only if the folder is not writable; None if absent there."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # a read-only folder without a lock file: nobody can be writing beside us


@contextlib.contextmanager
def file_lock(
    path: str | Path,
    *,
    shared: bool = False,
    warn_after_s: float = WARN_AFTER_S,
    log: Callable[[str], None] | None = None,
) -> Iterator[float]:
    """Hold an exclusive (or ``shared``) ``flock`` on ``path`` while the block runs; yields the seconds waited.

    Waits as long as another process holds a conflicting lock; after ``warn_after_s`` of waiting, and
    then every minute, ``log`` gets a line naming the lock and the time waited.
    """
    path = Path(path)
    fd = _open(path)
    if fd is None:
        yield 0.0
        return
    try:
        waited = _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, path, warn_after_s, log)
        yield waited
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, mode: int, path: Path, warn_after_s: float, log: Callable[[str], None] | None) -> float:
    t0 = time.monotonic()
    next_warning, pause = warn_after_s, 0.01
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            waited = time.monotonic() - t0
            if log is not None and waited >= warn_after_s:
                log(f"got {path} after waiting {waited:,.1f}s")
            return waited
        except BlockingIOError:
            pass
        waited = time.monotonic() - t0
        if log is not None and waited >= next_warning:
            kind = "shared" if mode == fcntl.LOCK_SH else "exclusive"
            log(f"waiting {waited:,.0f}s for the {kind} lock {path}: another process has the DuckDB file open")
            next_warning = waited + 60.0
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def database_lock(
    database: str | Path, *, read_only: bool = False, log: Callable[[str], None] | None = None
) -> contextlib.AbstractContextManager[float]:
    """``file_lock`` on ``<database>.lock``: shared for a read-only connection, else exclusive."""
    if not read_only:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return file_lock(lock_path(database), shared=read_only, log=log)
