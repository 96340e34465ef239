"""Runs clean up after themselves (issue 12, case 7): stale temporaries are swept, temp names are per run.

Past bugs: an export killed inside ``atomic_dir`` / ``atomic_file`` left a hidden ``.model.*.tmp``
(or ``.<name>.*.tmp``) beside its destination forever; a kill between the two renames of
``atomic_dir`` left the previous version under ``.<name>.old-<pid>`` and no destination; and two
benchmark set-ups sharing the source cache wrote the same fixed ``<entity>.tmp.npy`` name, so the
second rename raised ``FileNotFoundError``. Now every write first sweeps the temporaries of its
destination whose owner process is gone (a live writer's are kept), a stale ``.old`` comes back when
the destination is missing, and every temporary name is unique to its writer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from x_reco.common.atomic import _HOST, STALE_AFTER_S, atomic_dir, atomic_file, clean_stale_temps

ROOT = Path(__file__).resolve().parents[2]


def _killed_writer(dest: Path, kind: str) -> None:
    """Run a process that dies by SIGKILL inside ``atomic_<kind>(dest)``, after writing some bytes."""
    body = {
        "dir": "with atomic_dir(dest) as tmp:\n    (tmp / 'part').write_bytes(b'x' * 100)\n    die()",
        "file": "with atomic_file(dest) as fh:\n    fh.write(b'x' * 100); fh.flush()\n    die()",
    }[kind]
    script = (
        textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from x_reco.common.atomic import atomic_dir, atomic_file
        dest = Path(sys.argv[1])
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
    """)
        + body
    )
    proc = subprocess.run([sys.executable, "-c", script, str(dest)], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_killed_write_leftover_is_swept_by_the_next_write(tmp_path, kind):
    dest = tmp_path / "model"
    _killed_writer(dest, kind)
    (leftover,) = _hidden(tmp_path)
    assert leftover.startswith(".model.") and leftover.endswith(".tmp") and not dest.exists()
    writer = atomic_dir(dest) if kind == "dir" else atomic_file(dest)
    with writer as out:
        (out / "ok").write_text("new") if kind == "dir" else out.write(b"new")
    assert _hidden(tmp_path) == [] and dest.exists()


def test_kill_between_the_renames_brings_the_previous_version_back(tmp_path):
    dest = tmp_path / "model"
    old = tmp_path / f".model.{_dead_pid()}-{_HOST}.abc123_x.old"
    old.mkdir()
    (old / "metadata.json").write_text("previous")
    assert clean_stale_temps(dest) == []
    assert (dest / "metadata.json").read_text() == "previous" and _hidden(tmp_path) == []


def test_stale_old_beside_an_existing_destination_is_removed(tmp_path):
    dest = tmp_path / "model"
    dest.mkdir()
    old = tmp_path / f".model.{_dead_pid()}-{_HOST}.abc123_x.old"
    old.mkdir()
    assert clean_stale_temps(dest) == [old] and _hidden(tmp_path) == []


def test_live_writers_and_other_names_are_kept(tmp_path):
    dest = tmp_path / "model"
    keep = [
        f".model.{os.getpid()}-{_HOST}.mine_1.tmp",  # this process is writing it
        f".model.{os.getppid()}-{_HOST}.parent.tmp",  # a live process on this host
        f".model.{_dead_pid()}-0badc0de.other.tmp",  # another host, fresh: its pid means nothing here
        ".model.legacy1.tmp",  # older name without an owner, fresh
        ".model.notes",  # not a temporary
        f".modelx.{_dead_pid()}-{_HOST}.abc.tmp",  # another destination's
        f".model.1.{_dead_pid()}-{_HOST}.abc.tmp",  # the destination "model.1"'s
    ]
    for name in keep:
        (tmp_path / name).write_text("x")
    assert clean_stale_temps(dest) == []
    assert _hidden(tmp_path) == sorted(keep)


def test_unowned_leftovers_go_once_older_than_a_day(tmp_path):
    names = [".model.legacy1.tmp", f".model.{_dead_pid()}-0badc0de.other.tmp", ".model.old-1234567"]
    long_ago = time.time() - STALE_AFTER_S - 60
    (tmp_path / "model").write_text("current")
    for name in names:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (long_ago, long_ago))
    assert sorted(p.name for p in clean_stale_temps(tmp_path / "model")) == sorted(names)
    assert _hidden(tmp_path) == []


def test_failed_swap_puts_the_previous_version_back(tmp_path, monkeypatch):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "v").write_text("1")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new version moving in
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), atomic_dir(dest) as tmp:
        (tmp / "v").write_text("2")
    assert (dest / "v").read_text() == "1" and _hidden(tmp_path) == []


def test_killed_checkpoint_export_is_swept_by_the_next_save(tmp_path):
    from tests.models.helpers import ranker
    from x_reco.models.checkpoint import read_metadata, save_checkpoint

    _killed_writer(tmp_path / "model", "dir")
    assert len(_hidden(tmp_path)) == 1
    save_checkpoint(tmp_path / "model", ranker(), step=3)
    assert read_metadata(tmp_path / "model")["step"] == 3 and _hidden(tmp_path) == []


# -- benchmark source cache: per-writer temp names, atomic publish -----------------------------------
def test_two_benchmark_setups_building_one_table_both_succeed(tmp_path, monkeypatch):
    """Both writers reach the publishing rename together; with a shared temp name the second one failed."""
    from x_reco.bench import workload

    barrier, real_replace = threading.Barrier(2, timeout=10), os.replace

    def replace(src, dst):
        if Path(dst).name == "user.npy":
            barrier.wait()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    path, results, errors = tmp_path / "user.npy", [], []

    def setup():
        try:
            results.append(np.asarray(workload._table(path, 37, 5, 0.1, 0, "user")))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=setup) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], np.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user.npy"]


def test_killed_benchmark_table_leftover_is_swept(tmp_path):
    from x_reco.bench import workload

    leftover = tmp_path / f".user.npy.{_dead_pid()}-{_HOST}.abc123_x.tmp"
    leftover.write_bytes(b"half a table")
    workload._table(tmp_path / "user.npy", 11, 3, 0.1, 0, "user")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user.npy"]
