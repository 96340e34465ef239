"""The canonical raw tables every reader returns (datasets spec §2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

INTERACTION_COLUMNS = (
    "user_id",  # str, the source's id
    "item_id",  # str
    "ts",  # int64 seconds UTC
    "rating",  # float64, NaN when the source has none
    "label",  # Int8 (nullable), MIND clicks
    "impression_id",  # str or None
    "src_file",  # str
    "src_row",  # int64, 0-based data-line number in src_file: the tie-breaker for equal ts
)


@dataclasses.dataclass
class RawTables:
    """Canonical tables of one dataset partition.

    ``interactions`` has at least ``INTERACTION_COLUMNS`` (extra per-dataset columns allowed, e.g.
    the synthetic world's action columns); ``items`` starts with ``item_id``; ``users`` with
    ``user_id``. ``extra`` holds dataset-specific public tables (synthetic ``follows``/``authors``,
    MIND ``behaviors``); ``truth`` holds ground truth (synthetic only), never read by training.
    ``manifest`` records source checksums, counts, config and seeds.
    """

    partition: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    extra: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    truth: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)
