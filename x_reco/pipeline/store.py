"""What a feed is served from, read from a storage root that ``make demo`` (or any Dagster run) wrote.

``load_serving_data(root, partition)`` reads the partition's public tables from the DuckDB warehouse
(read-only, under the shared ``<warehouse>.lock`` of ``x_reco.common.filelock``, so a read waits for a
Dagster step's write instead of failing), its engagement sequences and candidate index (.npz), its raw
manifest, and the champion record naming the checkpoints (``x_reco.common.layout`` has every path).
Errors name what is missing and how to produce it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.filelock import database_lock
from x_reco.common.layout import array_path, record_path, schema_for, warehouse_path
from x_reco.data.examples import EngagementSequences
from x_reco.data.registry import dataset_spec
from x_reco.eval.champion import champion_path, read_champion

SOCIAL_ASSET = "raw_social"
_LOG = logging.getLogger(__name__)


class ServingDataError(RuntimeError):
    """The storage root lacks something serving needs (the message says what and how to make it)."""


class CheckpointMismatchError(ServingDataError):
    """A champion checkpoint does not match the partition's data (hash spec, catalogue)."""


@dataclasses.dataclass
class ServingData:
    """The public tables, arrays and champion record of one partition."""

    partition: str
    items: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame
    social: dict[str, pd.DataFrame]
    manifest: dict[str, Any]
    sequences: EngagementSequences
    index: dict[str, np.ndarray] | None  # candidate_index arrays, None: build from the retriever
    champion: dict[str, Any]
    root: str = ""
    calibration: dict[str, np.ndarray] | None = None  # ranker_calibration arrays (w8 rounding), None: none stored
    calibration_file: str = ""  # where they were read from, for errors


def _demo_hint(partition: str) -> str:
    return f"run `make demo` (the default partition) or `dg launch --job demo_job --partition {partition}` first"


def _read_tables(root: Path, partition: str) -> dict[str, pd.DataFrame]:
    import duckdb

    db = warehouse_path(root)
    if not db.exists():
        raise ServingDataError(f"no warehouse at {db}: {_demo_hint(partition)}")
    schema = schema_for(partition)
    with database_lock(db, read_only=True, log=_LOG.warning):
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.IOException as exc:
            raise ServingDataError(
                f"cannot open {db} read-only ({exc}); is a process outside x-reco writing it?"
            ) from exc
        try:
            return _select_tables(con, db, schema, partition)
        finally:
            con.close()


def _select_tables(con, db: Path, schema: str, partition: str) -> dict[str, pd.DataFrame]:
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
    }
    need = ("raw_items", "raw_users", "engagement_events")
    missing = [n for n in need if n not in names]
    if missing:
        raise ServingDataError(f"{db} has no tables {missing} in schema {schema!r}: {_demo_hint(partition)}")
    out = {n: con.execute(f'SELECT * FROM "{schema}"."{n}"').df() for n in need}
    prefix = f"{SOCIAL_ASSET}__"
    out["social"] = {
        n.removeprefix(prefix): con.execute(f'SELECT * FROM "{schema}"."{n}"').df()
        for n in sorted(names)
        if n.startswith(prefix)
    }
    return out


def _object_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """DuckDB gives NaN for SQL NULL in string columns; the pipeline's absent link is None."""
    frame = frame.copy()
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def load_serving_data(root: str | Path, partition: str) -> ServingData:
    """Everything ``x-reco feed`` serves ``partition`` from, under storage ``root``."""
    dataset_spec(partition)  # unknown partition: ValueError naming the known ones
    root = Path(root)
    champion = read_champion(champion_path(root, partition))
    if champion is None:
        raise ServingDataError(
            f"no champion for {partition} under {root} (champions/{partition}.json): {_demo_hint(partition)}; "
            "a model becomes champion when model_evaluation's blocking checks pass"
        )
    seq_path = array_path(root, "engagement_sequences", partition)
    if not seq_path.exists():
        raise ServingDataError(f"no engagement sequences at {seq_path}: {_demo_hint(partition)}")
    manifest_path = record_path(root, "raw_manifest", partition)
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    index_path = array_path(root, "candidate_index", partition)
    index = None
    if index_path.exists():
        with np.load(index_path, allow_pickle=False) as z:
            index = {k: z[k] for k in z.files}
    calibration_path = array_path(root, "ranker_calibration", partition)
    calibration = None
    if calibration_path.exists():
        with np.load(calibration_path, allow_pickle=False) as z:
            calibration = {k: z[k] for k in z.files}
    tables = _read_tables(root, partition)
    return ServingData(
        partition=partition,
        items=_object_ids(tables["raw_items"]),
        users=tables["raw_users"],
        events=tables["engagement_events"],
        social={k: _object_ids(v) for k, v in tables["social"].items()},
        manifest=manifest,
        sequences=EngagementSequences.from_npz(seq_path),
        index=index,
        champion=champion,
        root=str(root),
        calibration=calibration,
        calibration_file=str(calibration_path),
    )
