"""The single Dagster entry point of x-reco: every asset, check, job, schedule and resource."""

import dagster as dg

from assets import data as data_assets
from assets import inference as inference_assets
from assets import models as model_assets
from assets import replay as replay_assets
from assets import research as research_assets
from assets import serving as serving_assets
from assets import stream as stream_assets
from jobs import JOBS, SCHEDULES, SENSORS
from jobs.preflight import preflight_executor
from resources import DatasetSourcesResource, DuckDBFrameIOManager, JsonIOManager, NpzIOManager, StorageResource


def build_resources() -> dict:
    """Resources on the embedded default (local files under the storage root)."""
    return {
        "storage": StorageResource(),
        "sources": DatasetSourcesResource(),
        "duckdb_io_manager": DuckDBFrameIOManager(),
        "npz_io_manager": NpzIOManager(),
        "io_manager": JsonIOManager(),
    }


defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [stream_assets, data_assets, inference_assets, model_assets, research_assets, serving_assets, replay_assets]
    ),
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=build_resources(),
    executor=preflight_executor,  # the run config of every step is validated before the first starts
)
