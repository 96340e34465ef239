"""evaluate_checkpoints, the function behind the model_evaluation asset and the CLI: it restores both
checkpoints, replays their logged validation metrics and writes the champion only after that audit
passes and only for better models (write-audit-publish). A failed replay or a better champion leave
the record untouched; a model that loses to popularity is tested on the synthetic world, where
popularity is a strong baseline (tests/test_assets_models.py)."""

import json

import pytest

from tests.training.helpers import PARTITION, toy_seqs
from x_reco.eval.champion import champion_path, read_champion
from x_reco.eval.checkpoints import evaluate_checkpoints


@pytest.fixture(scope="module")
def records(toy_model_records):
    return toy_model_records


def _evaluate(records, champion_file=None, **kwargs):
    return evaluate_checkpoints(
        toy_seqs(),
        records["retriever_checkpoint"]["path"],
        records["ranker_checkpoint"]["path"],
        champion_file=champion_file,
        **kwargs,
    )


def test_trained_models_pass_the_audit_and_are_promoted(records, tmp_path):
    path = champion_path(tmp_path, PARTITION)
    outcome = _evaluate(records, path)
    ev = outcome.evaluation
    assert outcome.beats_popularity and ev.primary("retriever") > ev.primary("popularity") + 0.1
    assert max(outcome.replay_differences.values()) <= 1e-4 and outcome.audit_passed
    assert {"retriever", "popularity", "ranker", "two_stage"} == set(ev.results)
    assert outcome.champion["promoted"] and read_champion(path)["metric"] == ev.primary("retriever")
    assert read_champion(path)["ranker"] == records["ranker_checkpoint"]["path"]
    again = _evaluate(records, path)  # equal is not better
    assert not again.champion["promoted"] and again.champion["promoted_at"] == outcome.champion["promoted_at"]


def test_no_champion_file_changes_nothing(records, tmp_path):
    outcome = _evaluate(records)
    assert outcome.champion is None and outcome.audit_passed and not list(tmp_path.iterdir())


def test_better_champion_stays(records, tmp_path):
    path = champion_path(tmp_path, PARTITION)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {"metric_name": "masked_ndcg@10", "metric": 1.0, "retriever": "a", "ranker": "a", "promoted_at": 0.0}
        )
    )
    before = path.read_text()
    outcome = _evaluate(records, path)
    assert outcome.audit_passed and not outcome.champion["promoted"] and path.read_text() == before


def test_replay_mismatch_is_not_published(records, tmp_path):
    logged = {kind: records[f"{kind}_checkpoint"]["val_metrics"] for kind in ("retriever", "ranker")}
    logged["retriever"] = {k: (v + 0.02 if v is not None else v) for k, v in logged["retriever"].items()}
    path = champion_path(tmp_path, PARTITION)
    outcome = _evaluate(records, path, logged_val=logged)
    assert outcome.replay_differences["retriever"] == pytest.approx(0.02, abs=1e-4)
    assert outcome.replay_differences["ranker"] <= 1e-4
    assert outcome.beats_popularity and not outcome.replay_reproduces and not outcome.audit_passed
    assert not outcome.champion["promoted"] and not path.exists()


def test_a_ranker_of_another_seed_replays_its_own_validation(records, tmp_path):
    """The ranker's logged validation drew its sampled negatives with its run's seed; the replay must
    draw the same ones, or every ranker trained with seed != 0 fails the audit."""
    from tests.eval.helpers import RANKER_CFG
    from x_reco.training.loop import train_ranker

    ranker = train_ranker(toy_seqs(), RANKER_CFG.replace(seed=3), tmp_path / "ranker_seed3")
    outcome = evaluate_checkpoints(toy_seqs(), records["retriever_checkpoint"]["path"], ranker.checkpoint_path)
    assert outcome.replay_differences["ranker"] <= 1e-4 and outcome.replay_reproduces
