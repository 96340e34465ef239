"""Where x-reco keeps its files, and where each dataset partition's source files live."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from x_reco.common.layout import WAREHOUSE, default_root, local_dir
from x_reco.data.registry import dataset_spec


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
