"""Opt-in download of the official dataset files, checksum-verified and written atomically."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from x_reco.common.atomic import atomic_file, write_json
from x_reco.data.archive import file_digests
from x_reco.data.errors import ChecksumMismatchError
from x_reco.data.registry import Download, dataset_spec

_CHUNK = 1 << 20


def download(item: Download, dest_dir: str | Path, *, timeout: float = 60.0) -> tuple[Path, str]:
    """Stream ``item.url`` into ``dest_dir/item.filename``; returns (path, sha256).

    A file already there with the pinned digest is kept. The body is hashed while it is
    written to a temporary sibling, which replaces the destination only if the digest matches.
    """
    dest = Path(dest_dir) / item.filename
    if dest.is_file() and item.sha256 is not None:
        if file_digests(dest)["sha256"] == item.sha256:
            return dest, item.sha256
    hasher = hashlib.sha256()
    with atomic_file(dest) as out, urllib.request.urlopen(item.url, timeout=timeout) as body:
        while chunk := body.read(_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
        actual = hasher.hexdigest()
        if item.sha256 is not None and actual != item.sha256:
            raise ChecksumMismatchError(item.url, "sha256", item.sha256, actual)
    return dest, actual


def fetch(partition: str, dest_dir: str | Path, *, downloads: tuple[Download, ...] | None = None) -> dict[str, str]:
    """Download a partition's files into ``dest_dir``; never called at import or by tests.

    Writes ``<partition>.sha256.json`` beside them (the digests to pin) and returns it as a dict.
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
