"""``load_raw``: one entry point from a partition name (and source path) to its raw tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from x_reco.data.amazon import read_amazon_kindle
from x_reco.data.errors import MissingFileError
from x_reco.data.mind import read_mind_small
from x_reco.data.movielens import read_movielens_1m, read_movielens_100k
from x_reco.data.recbole import find_atomic_dir, read_recbole_raw
from x_reco.data.tables import RawTables

_READERS = {
    "movielens-100k": read_movielens_100k,
    "movielens-1m": read_movielens_1m,
    "mind-small": read_mind_small,
    "amazon-kindle": read_amazon_kindle,
}
PARTITIONS = ("synthetic", *_READERS)


def load_raw(partition: str, source: str | Path | None = None, *,
             synthetic_config: Any = None) -> RawTables:
    """Raw tables of ``partition``.

    Args:
      partition: one of ``PARTITIONS``.
      source: path to the partition's files (archive, folder or RecBole atomic folder);
        ``None`` is allowed for ``synthetic`` and for ``movielens-100k`` (RecBole wheel copy).
      synthetic_config: passed to the synthetic world generator.
    """
    if partition == "synthetic":
        if source is not None:
            raise ValueError("the synthetic partition is generated; it takes no source path")
        from x_reco.data.synthetic import generate_world_tables  # heavy, and only needed here

        if synthetic_config is None:
            return generate_world_tables()
        return generate_world_tables(synthetic_config)
    if partition not in _READERS:
        raise ValueError(f"unknown partition {partition!r}; expected one of {PARTITIONS}")
    if source is None:
        if partition == "movielens-100k":
            return read_movielens_100k()
        raise MissingFileError(f"<{partition} files>", None, "set the source path in config")
    if partition in ("mind-small", "amazon-kindle") and find_atomic_dir(source) is not None:
        return read_recbole_raw(partition, source)
    return _READERS[partition](source)


def partition_item_features(raw: RawTables):
    """Item features and reward pool of a partition (datasets spec §8).

    The synthetic partition's reward pool is the 500-item content pool (seed 42), not the world's
    posts: it is what the published Goodhart experiments used.
    """
    from x_reco.data.item_features import item_features, synthetic_content_pool

    if raw.partition == "synthetic":
        return synthetic_content_pool(n_items=500, seed=42)
    return item_features(raw)
