"""Jobs and schedules: materialize groups of assets per dataset partition."""

import dagster as dg

from assets.common import DATASETS

data_job = dg.define_asset_job(
    "data_job",
    selection=dg.AssetSelection.groups("data"),
    partitions_def=DATASETS,
    description="Raw tables, events and engagement sequences for one dataset partition.",
)

demo_job = dg.define_asset_job(
    "demo_job",
    selection=dg.AssetSelection.all(),
    partitions_def=DATASETS,
    description="Everything, for one dataset partition (what `make demo` runs on `synthetic`).",
)

JOBS = [data_job, demo_job]
SCHEDULES: list = []
