"""The champion record of a dataset: the models that serve, replaced only by better ones.

One JSON file per dataset partition (``<root>/champions/<partition>.json``), written atomically::

    {"metric_name": "masked_ndcg@10", "metric": 0.31, "retriever": "<checkpoint dir>",
     "ranker": "<checkpoint dir>", "promoted_at": 1700000000.0}
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from x_reco.common.atomic import write_json

# Retrieval, test split, masked full catalogue (synthetic: the feed's recency window).
PRIMARY_METRIC = "masked_ndcg@10"


def champion_path(root: str | Path, partition: str) -> Path:
    """Where the champion record of ``partition`` lives under a storage root."""
    return Path(root) / "champions" / f"{partition}.json"


def read_champion(path: str | Path) -> dict[str, Any] | None:
    """The current champion record, or None when the dataset has none yet."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def beats_champion(metric: float, current: dict[str, Any] | None, metric_name: str = PRIMARY_METRIC) -> bool:
    """A finite ``metric`` beats no champion, a champion judged by another metric, or a lower score."""
    if not math.isfinite(metric):
        return False
    if current is None or current.get("metric_name") != metric_name:
        return True
    return metric > float(current["metric"])


def promote_champion(
    path: str | Path,
    metric: float,
    retriever: str,
    ranker: str,
    *,
    metric_name: str = PRIMARY_METRIC,
    now: float | None = None,
) -> dict[str, Any]:
    """Make (``retriever``, ``ranker``) the champion if ``metric`` beats the current one.

    Args:
      path: the champion JSON file (``champion_path``); replaced atomically on promotion.
      metric: the candidates' ``metric_name`` on the test split.
      retriever, ranker: checkpoint directories of the candidate models.
    Returns the champion record after the decision, with ``promoted`` (bool) added.
    """
    current = read_champion(path)
    if not beats_champion(metric, current, metric_name):
        return {"promoted": False, **current} if current else {"promoted": False, "metric": float("nan")}
    record = {
        "metric_name": metric_name,
        "metric": float(metric),
        "retriever": str(retriever),
        "ranker": str(ranker),
        "promoted_at": time.time() if now is None else now,
    }
    write_json(path, record)
    return {"promoted": True, **record}
