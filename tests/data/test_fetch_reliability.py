"""`x-reco fetch` never takes a short body for the file (issue 12, case 3).

Past bug: for a dataset with no pinned digest (MIND, Amazon) a connection cut before the announced
``Content-Length`` was accepted, the partial file took the archive's name, and its digest was written
to ``<partition>.sha256.json`` as the one to pin. Now the body must reach ``Content-Length`` (or the
last chunk of a chunked response, or the pinned digest); otherwise ``IncompleteDownloadError``, the
partial bytes never take the file's name, and the record of digests is not written. Served by a
local ``http.server`` in a thread: no network.
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading

import pytest

from x_reco.common.atomic import _HOST
from x_reco.data.fetch import IncompleteDownloadError, download, fetch
from x_reco.data.registry import Download

BODY = b"0123456789" * 10


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/full``: whole body; ``/short``: 10 bytes of an announced 100; ``/nolength``: no length, closed;
    ``/chunked``: whole chunked body; ``/chunked-cut``: one chunk, then closed without the last one."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path
        self.protocol_version = "HTTP/1.1" if path.startswith("/chunked") else "HTTP/1.0"
        self.send_response(200)
        if path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(BODY), BODY))
            if path == "/chunked":
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
            return
        if path != "/nolength":
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[:10] if path == "/short" else BODY)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_short_body_is_refused_and_nothing_takes_its_name(server, tmp_path):
    with pytest.raises(IncompleteDownloadError, match=r"/short: incomplete download: received 10 of 100 bytes"):
        fetch("x", tmp_path, downloads=(Download(f"{server}/short", "a.zip"),))
    assert list(tmp_path.iterdir()) == []  # no a.zip, no temporary, no x.sha256.json


def test_short_body_keeps_the_previous_file_and_record(server, tmp_path):
    (tmp_path / "a.zip").write_bytes(BODY)
    (tmp_path / "x.sha256.json").write_text('{"a.zip": "good"}\n')
    with pytest.raises(IncompleteDownloadError):
        fetch("x", tmp_path, downloads=(Download(f"{server}/short", "a.zip"),))
    assert (tmp_path / "a.zip").read_bytes() == BODY
    assert (tmp_path / "x.sha256.json").read_text() == '{"a.zip": "good"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "x.sha256.json"]


def test_one_short_file_records_no_digest_for_the_others(server, tmp_path):
    items = (Download(f"{server}/full", "a.zip"), Download(f"{server}/short", "b.zip"))
    with pytest.raises(IncompleteDownloadError, match=r"/short: incomplete download"):
        fetch("x", tmp_path, downloads=items)
    assert not (tmp_path / "x.sha256.json").exists() and not (tmp_path / "b.zip").exists()


def test_whole_bodies_are_recorded(server, tmp_path):
    items = (Download(f"{server}/full", "a.zip"), Download(f"{server}/chunked", "b.zip"))
    digest = hashlib.sha256(BODY).hexdigest()
    assert fetch("x", tmp_path, downloads=items) == {"a.zip": digest, "b.zip": digest}
    assert (tmp_path / "b.zip").read_bytes() == BODY


def test_body_without_length_needs_a_pinned_digest(server, tmp_path):
    with pytest.raises(
        IncompleteDownloadError, match="cannot tell whether the download is complete: the server sent no Content-Length"
    ):
        download(Download(f"{server}/nolength", "a.zip"), tmp_path)
    assert list(tmp_path.iterdir()) == []
    pinned = Download(f"{server}/nolength", "a.zip", hashlib.sha256(BODY).hexdigest())
    assert download(pinned, tmp_path)[0].read_bytes() == BODY


def test_cut_chunked_body_is_refused(server, tmp_path):
    with pytest.raises(
        IncompleteDownloadError, match="incomplete download: the connection closed after 100 bytes of a chunked body"
    ):
        download(Download(f"{server}/chunked-cut", "a.zip"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_killed_download_leftover_is_swept_by_the_next_fetch(server, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".a.zip.{dead.pid}-{_HOST}.k1ll3d.tmp"
    leftover.write_bytes(BODY[:10])
    fetch("x", tmp_path, downloads=(Download(f"{server}/full", "a.zip"),))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "x.sha256.json"]


def test_cli_prints_the_reason_not_a_traceback(server, tmp_path, monkeypatch, capsys):
    """`x-reco fetch` on a short body exits 1 with the one-line reason (the registry's download list is
    pointed at the local server; the download itself is real)."""
    import dataclasses

    from x_reco import cli
    from x_reco.data import fetch as fetch_module

    real = fetch_module.dataset_spec("mind-small")
    short = dataclasses.replace(real, downloads=(Download(f"{server}/short", "a.zip"),))
    monkeypatch.setattr(fetch_module, "dataset_spec", lambda name: short)
    code = cli.main(["fetch", "mind-small", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("x-reco fetch: ") and "received 10 of 100 bytes" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []
