"""Opt-in download of the official dataset files, checksum-verified and written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.request
from pathlib import Path

from x_reco.common.atomic import atomic_file, write_json
from x_reco.data.archive import file_digests
from x_reco.data.errors import ChecksumMismatchError
from x_reco.data.movielens import ML_100K_SHA256, ML_1M_SHA256

_CHUNK = 1 << 20
_HF_AMAZON = "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main"
_MIND_BLOB = "https://mind201910small.blob.core.windows.net/release"


@dataclasses.dataclass(frozen=True)
class Download:
    """One file to fetch; ``sha256`` is the pinned digest (None: record it on first download)."""

    url: str
    filename: str
    sha256: str | None = None


DOWNLOADS: dict[str, tuple[Download, ...]] = {
    "movielens-100k": (Download("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                                "ml-100k.zip", ML_100K_SHA256),),
    "movielens-1m": (Download("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                              "ml-1m.zip", ML_1M_SHA256),),
    # the original blob links are unreliable; pass ``downloads=`` to use a mirror
    "mind-small": (Download(f"{_MIND_BLOB}/MINDsmall_train.zip", "MINDsmall_train.zip"),
                   Download(f"{_MIND_BLOB}/MINDsmall_dev.zip", "MINDsmall_dev.zip")),
    "amazon-kindle": (
        Download(f"{_HF_AMAZON}/benchmark/5core/rating_only/Kindle_Store.csv",
                 "Kindle_Store.csv"),
        Download(f"{_HF_AMAZON}/raw/meta_categories/meta_Kindle_Store.jsonl.gz",
                 "meta_Kindle_Store.jsonl.gz"),
    ),
}


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


def fetch(partition: str, dest_dir: str | Path, *,
          downloads: tuple[Download, ...] | None = None) -> dict[str, str]:
    """Download a partition's files into ``dest_dir``; never called at import or by tests.

    Writes ``<partition>.sha256.json`` beside them (the digests to pin) and returns it as a dict.
    """
    if downloads is None:
        if partition not in DOWNLOADS:
            raise ValueError(f"nothing to fetch for {partition!r}; one of {sorted(DOWNLOADS)}")
        downloads = DOWNLOADS[partition]
    digests = {}
    for item in downloads:
        _, digests[item.filename] = download(item, dest_dir)
    write_json(Path(dest_dir) / f"{partition}.sha256.json", digests)
    return digests
