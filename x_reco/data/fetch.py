"""Opt-in download of the official dataset files: complete, checksum-verified and written atomically.

A body is streamed into a temporary sibling (``common.atomic``) and renamed onto its file name only
when it is complete: as long as the ``Content-Length`` the server announced (or, for a chunked
response, ended by its last chunk) and, when a digest is pinned, with that digest. A short body
raises ``IncompleteDownloadError``; the partial bytes never take the file's name and their digest is
never written to ``<partition>.sha256.json``, the digests to pin.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.request
from pathlib import Path

from x_reco.common.atomic import atomic_file, write_json
from x_reco.data.archive import file_digests
from x_reco.data.errors import ChecksumMismatchError, XRecoDataError
from x_reco.data.registry import Download, dataset_spec

_CHUNK = 1 << 20
_RETRY = "the partial file was discarded; run `x-reco fetch` again"


class IncompleteDownloadError(XRecoDataError):
    """A download that is, or cannot be shown not to be, shorter than the file the server has."""

    def __init__(self, url: str, detail: str):
        self.url, self.detail = url, detail
        super().__init__(f"{url}: {detail}")


def _expected_length(url: str, headers, pinned: bool) -> int | None:
    """The announced body length; None for a chunked body (its framing shows where it ends) or a pinned one."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return None
    value = headers.get("Content-Length")
    if value is None and pinned:  # the pinned digest shows whether it is whole
        return None
    if value is None:
        raise IncompleteDownloadError(
            url,
            "cannot tell whether the download is complete: the server sent no Content-Length and no sha256 is"
            " pinned (set Download.sha256 in x_reco/data/registry.py)",
        )
    if not value.strip().isdigit():
        raise IncompleteDownloadError(url, f"cannot tell whether the download is complete: Content-Length {value!r}")
    return int(value)


def _stream(url: str, body, out) -> tuple[str, int]:
    """Copy ``body`` into ``out``; returns (sha256, bytes). A chunked body cut short raises."""
    hasher, received = hashlib.sha256(), 0
    try:
        while chunk := body.read(_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            received += len(chunk)
    except http.client.IncompleteRead as err:  # a chunked body cut before its last chunk
        got = received + len(err.partial)
        detail = f"the connection closed after {got} bytes of a chunked body"
        raise IncompleteDownloadError(url, f"incomplete download: {detail}; {_RETRY}") from err
    return hasher.hexdigest(), received


def download(item: Download, dest_dir: str | Path, *, timeout: float = 60.0) -> tuple[Path, str]:
    """Stream ``item.url`` into ``dest_dir/item.filename``; returns (path, sha256).

    A file already there with the pinned digest is kept. The body is hashed while it is written to a
    temporary sibling, which replaces the destination only if it is complete and its digest matches.
    """
    dest = Path(dest_dir) / item.filename
    if dest.is_file() and item.sha256 is not None:
        if file_digests(dest)["sha256"] == item.sha256:
            return dest, item.sha256
    with atomic_file(dest) as out, urllib.request.urlopen(item.url, timeout=timeout) as body:
        expected = _expected_length(item.url, body.headers, item.sha256 is not None)
        actual, received = _stream(item.url, body, out)
        if expected is not None and received != expected:
            detail = f"received {received} of {expected} bytes (Content-Length)"
            raise IncompleteDownloadError(item.url, f"incomplete download: {detail}; {_RETRY}")
        if item.sha256 is not None and actual != item.sha256:
            raise ChecksumMismatchError(item.url, "sha256", item.sha256, actual)
    return dest, actual


def fetch(partition: str, dest_dir: str | Path, *, downloads: tuple[Download, ...] | None = None) -> dict[str, str]:
    """Download a partition's files into ``dest_dir``; never called at import or by tests.

    Writes ``<partition>.sha256.json`` beside them (the digests to pin) and returns it as a dict; it is
    written only once every file is complete, so a failed run leaves an earlier record as it was.
    """
    if downloads is None:
        downloads = dataset_spec(partition).downloads
        if not downloads:
            raise ValueError(f"nothing to fetch for {partition!r}: it has no downloads")
    digests = {}
    for item in downloads:
        _, digests[item.filename] = download(item, dest_dir)
    write_json(Path(dest_dir) / f"{partition}.sha256.json", digests)
    return digests
