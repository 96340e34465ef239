"""Atomic writes: build into a temporary sibling, fsync, then rename into place; stale temporaries are swept.

A temporary sibling of ``<dir>/<name>`` is ``<dir>/.<name>.<pid>-<host>.<random>.tmp`` (a file or a
directory); ``atomic_dir`` moves the replaced directory aside as the same name ending ``.old`` for the
moment of the swap. The pid and host (a crc32 of the host name) say who owns it: every write first
removes the siblings of the same name whose owner process is gone, so a killed export or download
leaves nothing behind after the next run. A leftover whose owner cannot be checked (another host on a
shared file system, or the older ``.<name>.<random>.tmp`` / ``.<name>.old-<pid>`` names) is removed once
it is older than ``STALE_AFTER_S``. A ``.old`` directory left while the destination is missing (killed
between the two renames) is renamed back, so the previous version returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STALE_AFTER_S = 24 * 3600  # leftovers whose owner cannot be checked: kept a day, then removed
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
_OWNED = re.compile(r"(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[a-z0-9_]+\.(?P<kind>tmp|old)")
_LEGACY = re.compile(r"[a-z0-9_]+\.tmp|(?P<old>old-\d+)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:  # another process swept it first
        return 0.0


def _owner(rest: str) -> tuple[bool, int | None, str | None] | None:
    """``(is_old, pid, host)`` parsed from a sibling's name after ``.<name>.``; None if not a temporary."""
    if m := _OWNED.fullmatch(rest):
        return m["kind"] == "old", int(m["pid"]), m["host"]
    if m := _LEGACY.fullmatch(rest):
        return (True, int(m["old"][4:]), _HOST) if m["old"] else (False, None, None)
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _stale_siblings(dest: Path) -> list[tuple[Path, bool]]:
    """``(path, is_old)`` for each leftover temporary of ``dest`` whose owner is gone, newest first."""
    prefix, now, found = f".{dest.name}.", time.time(), []
    with contextlib.suppress(FileNotFoundError), os.scandir(dest.parent) as entries:
        for entry in entries:
            owner = _owner(entry.name[len(prefix) :]) if entry.name.startswith(prefix) else None
            if owner is None:
                continue
            is_old, pid, host = owner
            path = Path(entry.path)
            if host == _HOST and pid is not None:
                stale = not _pid_alive(pid)
            else:  # the owner cannot be checked from here
                stale = now - _mtime(path) > STALE_AFTER_S
            if stale:
                found.append((path, is_old))
    return sorted(found, key=lambda item: _mtime(item[0]), reverse=True)


def clean_stale_temps(dest: str | os.PathLike) -> list[Path]:
    """Remove the temporaries a killed writer of ``dest`` left behind; returns the paths removed.

    If ``dest`` is missing and a stale ``.old`` copy of it is there (the writer died between moving
    the previous version aside and moving the new one in), the newest such copy is renamed back.
    """
    dest = Path(dest)
    removed = []
    for path, is_old in _stale_siblings(dest):
        if is_old and not dest.exists():
            with contextlib.suppress(OSError):  # on failure another sweeper restored it first: next sweep
                os.replace(path, dest)
            continue
        _remove(path)
        removed.append(path)
    return removed


def temp_sibling(dest: str | os.PathLike, *, directory: bool = False) -> Path:
    """Create (empty) and return a temporary file or directory beside ``dest``, owned by this process.

    Stale temporaries of ``dest`` are removed first. The caller renames it onto ``dest`` or removes it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest)
    prefix = f".{dest.name}.{os.getpid()}-{_HOST}."
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=dest.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Yield a handle to a temporary file that replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    tmp = temp_sibling(dest)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``dest`` as a whole if the block succeeds.

    On error the temporary directory is removed and an existing ``dest`` is left untouched.
    """
    dest = Path(dest)
    tmp, old = temp_sibling(dest, directory=True), None
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
        if dest.exists():
            old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not dest.exists():
            os.replace(old, dest)  # the swap failed half-way: put the previous version back
        raise


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON atomically."""
    with atomic_file(dest, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
