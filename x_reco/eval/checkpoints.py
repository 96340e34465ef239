"""Evaluate trained checkpoints, audit them, then (only then) promote them to champion.

The one function behind both the Dagster ``model_evaluation`` asset and ``python -m
x_reco.training.run --champions DIR``: restore the exported checkpoints, evaluate them on the test
split (``x_reco.eval.report``), replay their logged validation metrics, and write the champion record
only when the audit passed (the retriever beats popularity, the replay reproduces) and the new
models beat the current champion (write-audit-publish: a failed audit publishes nothing). The
champion is judged on the same evaluation as the candidates: its retriever is re-evaluated on this
test split, since the score it was promoted with came from an earlier test day when data moves on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.champion import PRIMARY_METRIC, promote_champion, read_champion
from x_reco.eval.ranker import retrieval_weight_of
from x_reco.eval.report import (
    ModelEvaluation,
    evaluate_models,
    replay_differences,
    replay_reproduces,
    replay_validation,
    require_examples,
)
from x_reco.eval.retrieval import evaluate_retrieval
from x_reco.models.checkpoint import restore_checkpoint

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvaluationOutcome:
    """Test metrics, replay differences (max |replayed - logged| per model) and the champion after
    the decision (``promoted`` says whether these models became it; None: no champion file asked)."""

    evaluation: ModelEvaluation
    replay_differences: dict[str, float]
    champion: dict[str, Any] | None

    @property
    def beats_popularity(self) -> bool:
        return self.evaluation.beats_popularity

    @property
    def replay_reproduces(self) -> bool:
        return replay_reproduces(self.replay_differences)

    @property
    def audit_passed(self) -> bool:
        """What promotion requires: both blocking checks of the ``model_evaluation`` asset."""
        return self.beats_popularity and self.replay_reproduces


def evaluate_checkpoints(
    seqs: EngagementSequences,
    retriever_path: str | Path,
    ranker_path: str | Path,
    *,
    catalogue_window_s: float | None = None,
    logged_val: Mapping[str, Mapping[str, float | None]] | None = None,
    champion_file: str | Path | None = None,
    two_stage_weights: Mapping[str, object] | None = None,
    evaluated_on: Mapping[str, Any] | None = None,
) -> EvaluationOutcome:
    """Evaluate, audit and maybe promote the checkpoints at ``retriever_path`` and ``ranker_path``.

    Args:
      seqs: the sequences the models trained on (val and test splits must be non-empty).
      catalogue_window_s: the feed's catalogue for test retrieval (``defaults.catalogue_window_s``).
      logged_val: {"retriever": metrics, "ranker": metrics} the replay must reproduce; default the
        ``val_metrics`` each checkpoint's metadata logged.
      champion_file: the champion record to update (``champion.champion_path``); None leaves every
        champion alone.
      evaluated_on: a description of this evaluation (data digest, clock) kept in a new champion's record.
    """
    require_examples(seqs, (Split.VAL, Split.TEST))
    retriever, retriever_meta = restore_checkpoint(retriever_path)
    ranker, ranker_meta = restore_checkpoint(ranker_path)
    evaluation = evaluate_models(
        seqs,
        retriever,
        ranker,
        catalogue_window_s=catalogue_window_s,
        two_stage_weights=two_stage_weights,
        retrieval_weight=retrieval_weight_of(ranker_meta),
    )
    trained_window = retriever_meta["extra"]["train_config"].get("negative_window_s")  # the logged val catalogue
    ranker_seed = int(ranker_meta["extra"].get("train_config", {}).get("seed", 0))  # its val negatives' seed
    replayed = replay_validation(seqs, retriever, ranker, retriever_window_s=trained_window, ranker_seed=ranker_seed)
    if logged_val is None:
        logged_val = {
            kind: meta["extra"]["val_metrics"]
            for kind, meta in (("retriever", retriever_meta), ("ranker", ranker_meta))
        }
    outcome = EvaluationOutcome(evaluation, replay_differences(replayed, logged_val), None)
    if champion_file is None:
        return outcome
    if not outcome.audit_passed:
        current = read_champion(champion_file)
        return dataclasses.replace(outcome, champion={"promoted": False, **(current or {"metric": math.nan})})
    champion = promote_champion(
        champion_file,
        evaluation.primary("retriever", PRIMARY_METRIC),
        str(retriever_path),
        str(ranker_path),
        champion_metric=champion_on_split(seqs, read_champion(champion_file), retriever_path, catalogue_window_s),
        evaluated_on=evaluated_on,
    )
    return dataclasses.replace(outcome, champion=champion)


def champion_on_split(
    seqs: EngagementSequences,
    champion: Mapping[str, Any] | None,
    candidate_retriever: str | Path,
    catalogue_window_s: float | None,
) -> float | None:
    """The champion retriever's ``PRIMARY_METRIC`` on ``seqs``' test split; None when there is no
    champion, it is the candidate itself, or its checkpoint no longer restores against this data
    (then its recorded score is what the candidate must beat)."""
    if champion is None or Path(champion["retriever"]).resolve() == Path(candidate_retriever).resolve():
        return None
    try:
        model, _ = restore_checkpoint(champion["retriever"])
        metrics = evaluate_retrieval(model, seqs, Split.TEST, catalogue_window_s=catalogue_window_s)
    except (OSError, ValueError) as exc:  # pruned, or trained on another HashSpec
        log.warning(
            "champion retriever %s not re-evaluated (%s); its recorded score stands", champion["retriever"], exc
        )
        return None
    return float(metrics[PRIMARY_METRIC])
