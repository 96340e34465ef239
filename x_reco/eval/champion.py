"""The champion record of a dataset: the models that serve, replaced only by better ones.

One JSON file per dataset partition (``<root>/champions/<partition>.json``), written atomically::

    {"metric_name": "masked_ndcg@10", "metric": 0.31, "retriever": "<checkpoint dir>",
     "ranker": "<checkpoint dir>", "promoted_at": 1700000000.0, "evaluated_on": {...}}

Each promotion pushes the champion it replaces onto ``<partition>.history.json`` (newest last), so
that ``rollback_champion`` restores it in one step. ``prune_checkpoints`` deletes the training runs
that are neither the champion, nor a recent earlier champion, nor among the newest runs.
"""

from __future__ import annotations

import json
import math
import shutil
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


def history_path(path: str | Path) -> Path:
    """The earlier champions of the record at ``path`` (newest last)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.history.json")


def champion_history(path: str | Path) -> list[dict[str, Any]]:
    """The champions that ``path``'s current one replaced, oldest first."""
    hist = history_path(path)
    return json.loads(hist.read_text()) if hist.exists() else []


def promote_champion(
    path: str | Path,
    metric: float,
    retriever: str,
    ranker: str,
    *,
    metric_name: str = PRIMARY_METRIC,
    now: float | None = None,
    champion_metric: float | None = None,
    evaluated_on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make (``retriever``, ``ranker``) the champion if ``metric`` beats the current one.

    Args:
      path: the champion JSON file (``champion_path``); replaced atomically on promotion.
      metric: the candidates' ``metric_name`` on the test split.
      retriever, ranker: checkpoint directories of the candidate models.
      champion_metric: the current champion's ``metric_name`` measured on the same evaluation as
        ``metric`` (the comparison uses it instead of the score recorded at its own promotion, which
        came from another test day when the data moved on); None: the recorded score.
      evaluated_on: what the evaluation was (e.g. the data digest and clock), stored in the record.
    Returns the champion record after the decision, with ``promoted`` (bool) added, and
    ``champion_metric`` when it was given.
    """
    current = read_champion(path)
    judged = current if current is None or champion_metric is None else {**current, "metric": champion_metric}
    measured = {} if champion_metric is None else {"champion_metric": float(champion_metric)}
    if not beats_champion(metric, judged, metric_name):
        return {"promoted": False, **(current or {"metric": float("nan")}), **measured}
    record = {
        "metric_name": metric_name,
        "metric": float(metric),
        "retriever": str(retriever),
        "ranker": str(ranker),
        "promoted_at": time.time() if now is None else now,
        "evaluated_on": dict(evaluated_on or {}),
    }
    if current is not None:
        write_json(history_path(path), [*champion_history(path), current])
    write_json(path, record)
    return {"promoted": True, **record, **measured}


def rollback_champion(path: str | Path) -> dict[str, Any]:
    """Restore the champion that the current one replaced; the current one is dropped.

    Raises ValueError when there is no earlier champion, or its checkpoints are gone (pruned).
    """
    history = champion_history(path)
    if not history:
        raise ValueError(f"{path}: no earlier champion to roll back to")
    previous = history[-1]
    missing = [previous[k] for k in ("retriever", "ranker") if not Path(previous[k]).exists()]
    if missing:
        raise ValueError(f"{path}: the earlier champion's checkpoints were deleted: {missing}")
    write_json(path, {**previous, "rolled_back_at": time.time()})
    write_json(history_path(path), history[:-1])
    return previous


def prune_checkpoints(runs_dirs: list[str | Path], path: str | Path, keep_last: int) -> list[Path]:
    """Delete the training runs under ``runs_dirs`` (one directory per run, the model in ``model/``)
    that are not the champion's, not one of the ``keep_last`` newest earlier champions' (what a
    rollback restores) and not among the ``keep_last`` newest runs of their directory.

    Returns the deleted run directories.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last={keep_last} must be >= 1")
    records = [r for r in [read_champion(path), *champion_history(path)[::-1][:keep_last]] if r]
    keep = {Path(r[k]).resolve().parent for r in records for k in ("retriever", "ranker")}
    deleted = []
    for runs in map(Path, runs_dirs):
        if not runs.is_dir():
            continue
        dirs = sorted((d for d in runs.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
        for run in dirs[keep_last:]:
            if run.resolve() not in keep:
                shutil.rmtree(run)
                deleted.append(run)
    return deleted
