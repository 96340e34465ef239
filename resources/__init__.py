"""Dagster resources of x-reco: storage root, dataset partitions and sources, and IO managers."""

from resources.io_managers import DuckDBFrameIOManager, JsonIOManager, NpzIOManager
from resources.storage import (
    DatasetSourcesResource,
    NamedPartitions,
    StorageResource,
    UnknownPartitionError,
    unknown_partition_message,
)

__all__ = [
    "DatasetSourcesResource",
    "DuckDBFrameIOManager",
    "JsonIOManager",
    "NamedPartitions",
    "NpzIOManager",
    "StorageResource",
    "UnknownPartitionError",
    "unknown_partition_message",
]
