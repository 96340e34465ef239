"""Where x-reco keeps its files, the dataset partitions, and where each partition's source files live."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click
import dagster as dg

from x_reco.common.layout import WAREHOUSE, default_root, local_dir
from x_reco.data.registry import dataset_spec


def unknown_partition_message(key: str, keys: Sequence[str]) -> str:
    """One line naming the bad key and the valid ones (a long list by its ends and its length)."""
    known = ", ".join(keys) if len(keys) <= 12 else f"{keys[0]} ... {keys[-1]} ({len(keys)} keys)"
    return f"unknown partition {key!r}; expected one of: {known}"


class UnknownPartitionError(click.ClickException, ValueError):
    """A partition key that is not in the partitions definition. As a ``ClickException`` it is
    printed by the ``dg`` and ``dagster`` CLIs as one line (``Error: <message>``, exit status 1)."""


class NamedPartitions(dg.StaticPartitionsDefinition):
    """Static partitions whose unknown key is reported in one line that names the valid keys.

    ``dg launch --partition`` (with ``--job`` or ``--assets``) and ``dagster asset materialize
    --partition`` call ``validate_partition_key`` before any run exists. Dagster's own error (1.13.27) names only the
    bad key and comes under a traceback (with ``--assets``, replaced by a ``DagsterInvalidSubsetError``
    that names no key list); this one is printed alone, with the keys.
    """

    def validate_partition_key(self, partition_key: str, context=None) -> None:
        if not self.has_partition_key(partition_key):
            raise UnknownPartitionError(unknown_partition_message(partition_key, self.get_partition_keys()))


class StorageResource(dg.ConfigurableResource):
    """The storage root: DuckDB warehouse, .npz arrays, Orbax checkpoints, manifests, benchmarks."""

    root: str = ""  # empty: $XRECO_DATA_ROOT, else the repository's data/ folder

    def path(self, *parts: str) -> Path:
        p = Path(local_dir(self.root, "storage.root") if self.root else default_root()).joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def warehouse(self) -> str:
        return str(self.path(WAREHOUSE))


class DatasetSourcesResource(dg.ConfigurableResource):
    """Local paths to each real dataset (archive or extracted directory). Nothing is downloaded.

    ``movielens_100k`` left empty means the copy inside the installed RecBole wheel.
    """

    movielens_100k: str = ""
    movielens_1m: str = ""
    mind_small: str = ""
    amazon_kindle: str = ""

    def source_for(self, partition: str) -> str | None:
        """This resource's path for ``partition``, else its record's environment variable, else None."""
        spec = dataset_spec(partition)
        if spec.generated:
            return None
        value = getattr(self, partition.replace("-", "_"), "")
        return value or os.environ.get(spec.source_env, "") or None
