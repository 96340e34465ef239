"""Dagster resources of x-reco: storage root, dataset sources and IO managers."""

from resources.io_managers import DuckDBFrameIOManager, JsonIOManager, NpzIOManager
from resources.storage import DatasetSourcesResource, StorageResource

__all__ = ["DatasetSourcesResource", "DuckDBFrameIOManager", "JsonIOManager", "NpzIOManager", "StorageResource"]
