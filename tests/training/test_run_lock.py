"""Issue 12, item 5: one training per run directory. Past bug: two trainings into the same folder both
crashed inside Orbax; now the second fails at once with ``already training: <dir> (pid N)``, the lock
goes when its holder exits (however it exits), and a lock file left by a dead process is taken over."""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.training.lock import LOCK_FILE, RunLockedError, run_lock

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """import sys, time
from x_reco.training.lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold(path, pid: int) -> int:
    """A lock held by this process through its own file description, as another trainer holds it."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{pid}\n".encode())
    return fd


def test_second_trainer_gets_a_clear_error(tmp_path):
    fd = _hold(tmp_path, 424242)
    try:
        with pytest.raises(RunLockedError, match=rf"^already training: {tmp_path} \(pid 424242\)$"):
            with run_lock(tmp_path):
                pass
    finally:
        os.close(fd)
    with run_lock(tmp_path) as path:  # the holder is gone: free again
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_lock_file_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999999\n")  # no process holds it
    with run_lock(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"


def test_lock_is_released_when_training_raises(tmp_path):
    with pytest.raises(KeyError):
        with run_lock(tmp_path / "new" / "run"):
            raise KeyError("boom")
    with run_lock(tmp_path / "new" / "run"):
        pass


def test_two_processes_and_a_killed_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"\(pid {holder.pid}\)"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_FILE).read_text() == f"{holder.pid}\n"  # left behind by the killed holder
    with run_lock(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"


def test_training_into_a_locked_directory_fails_before_any_work(tmp_path):
    from x_reco.training.loop import train_retriever

    fd = _hold(tmp_path, 31337)
    try:
        with pytest.raises(RunLockedError, match=r"already training: .* \(pid 31337\)"):
            train_retriever(toy_seqs(), tiny_cfg(), tmp_path)
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]  # no Orbax directory was started
