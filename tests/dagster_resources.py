"""Dagster resources over a temporary storage root, shared by the asset tests."""

from resources import DatasetSourcesResource, DuckDBFrameIOManager, JsonIOManager, NpzIOManager, StorageResource


def tmp_resources(root) -> dict:
    """Every resource the definitions use, writing under ``root`` (DuckDB at root/warehouse.duckdb)."""
    return {
        "storage": StorageResource(root=str(root)),
        "sources": DatasetSourcesResource(),
        "duckdb_io_manager": DuckDBFrameIOManager(database=str(root / "warehouse.duckdb")),
        "npz_io_manager": NpzIOManager(base_dir=str(root / "arrays")),
        "io_manager": JsonIOManager(base_dir=str(root / "records")),
    }
