"""The evaluation bundle and the replay comparison: the popularity check is strict, the long table
and the dashboard numbers cover every finite metric, and a replay with nothing to compare fails."""

import math

import pytest

from x_reco.data.examples import Split
from x_reco.eval.report import ModelEvaluation, replay_differences, replay_reproduces, require_examples


def _evaluation(ours: float, base: float) -> ModelEvaluation:
    return ModelEvaluation(
        {
            "retriever": {"masked_ndcg@10": ours, "hr@10": 0.5, "num_targets": 7.0},
            "popularity": {"masked_ndcg@10": base, "hr@10": math.nan},
            "ranker": {"click_auc": 0.7, "loss": 0.3},
        }
    )


def test_beats_popularity_is_strict():
    assert _evaluation(0.3, 0.2).beats_popularity
    assert not _evaluation(0.2, 0.2).beats_popularity and not _evaluation(0.1, 0.2).beats_popularity
    assert not _evaluation(math.nan, 0.2).beats_popularity
    assert not ModelEvaluation({"ranker": {"loss": 0.1}}).beats_popularity  # no retriever: nothing won


def test_table_numeric_and_comparison():
    ev = _evaluation(0.3, 0.2)
    table = ev.table()
    assert list(table.columns) == ["model", "metric", "value"] and len(table) == 7
    assert ev.numeric() == {
        "retriever_masked_ndcg@10": 0.3,
        "retriever_hr@10": 0.5,
        "popularity_masked_ndcg@10": 0.2,
        "ranker_click_auc": 0.7,
        "ranker_loss": 0.3,
    }
    cmp = ev.comparison(("hr@10", "mrr@10"))
    assert cmp["retriever"]["hr@10"] == 0.5 and math.isnan(cmp["popularity"]["mrr@10"]) and "ranker" not in cmp


def test_replay_differences():
    replayed = {"retriever": {"hr@10": 0.5, "ndcg@10": 0.30005, "extra": 1.0}, "ranker": {"click_auc": 0.7}}
    logged = {"retriever": {"hr@10": 0.5, "ndcg@10": 0.3, "gone": None}, "ranker": {"click_auc": 0.8}}
    diffs = replay_differences(replayed, logged)
    assert diffs["retriever"] == pytest.approx(5e-5) and diffs["ranker"] == pytest.approx(0.1)
    assert not replay_reproduces(diffs) and replay_reproduces({"retriever": diffs["retriever"]})
    empty = replay_differences({"ranker": {"click_auc": 0.7}}, {"ranker": {"click_auc": None}})
    assert empty == {"ranker": math.inf} and not replay_reproduces(empty)
    assert not replay_reproduces({})


def test_require_examples_names_the_empty_split():
    from tests.training.helpers import toy_seqs

    seqs = toy_seqs()
    require_examples(seqs, (Split.VAL, Split.TEST))
    with pytest.raises(ValueError, match="test split has no examples"):
        require_examples(seqs.take(seqs.rows(Split.TRAIN)), (Split.TEST,))
