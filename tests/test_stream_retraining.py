"""Three simulated days end to end, as Dagster runs them (issue 11), on the demo's small world with
the demo's training budget (minutes: `make test-slow`): days arrive (``world_day``; what automation
asks for after a day is tests/test_stream.py's), the data group reads the world
at the clock (the test day is the newest day), the first models become champion on day 8, a
warm-started retrain on day 9 is promoted only if it beats the champion re-evaluated on that same
day, a deliberately worse model on day 10 is not promoted, the candidate index is the champion's,
retention keeps the champion and the newest runs, and a rollback is one call."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from assets import stream as stream_assets
from resources.tags import WARM_START_TAG
from tests.dagster_resources import tmp_resources
from tests.test_assets_models import MODELS  # data, both models, evaluation, the champion's index
from x_reco.data.synthetic.stream import day_key
from x_reco.eval.champion import champion_history, champion_path, read_champion, rollback_champion

PARTITION = "synthetic"
WORLD = {"synthetic_size": "small"}
pytestmark = pytest.mark.slow


def _arrive(instance, day: int):
    result = dg.materialize(
        [stream_assets.world_day],
        partition_key=day_key(day),
        instance=instance,
        run_config={"ops": {"world_day": {"config": WORLD}}},
    )
    assert result.success
    return result


def _models_run(instance, root, train: dict, tags=None):
    """Data at the clock, both models, evaluation and the candidate index, like retrain_job."""
    config = {"config": train}
    return dg.materialize(
        MODELS,
        partition_key=PARTITION,
        instance=instance,
        resources=tmp_resources(root),
        raise_on_error=False,
        tags=tags or {},
        run_config={
            "ops": {
                "raw_tables": {"config": WORLD},
                "retriever_checkpoint": config,
                "ranker_checkpoint": config,
                "model_evaluation": {"config": {"keep_last_runs": 1}},
            }
        },
    )


def _meta(result, name):
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == name]
    return event.event_specific_data.materialization.metadata


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """Days 1-8 arrive, then cold models (day 8 is the test day); day 9, a warm-started retrain; day
    10, a deliberately worse model (2 steps at a learning rate of 1e-7, from scratch)."""
    root = tmp_path_factory.mktemp("stream")
    instance = dg.DagsterInstance.ephemeral()
    for day in range(1, 9):
        _arrive(instance, day)
    first = _models_run(instance, root, {})
    champions = [read_champion(champion_path(root, PARTITION))]
    _arrive(instance, 9)
    # retrain_job's tag: warm start from the champion, a third of the steps of the cold run
    warm = _models_run(instance, root, {}, tags={WARM_START_TAG: "true"})
    champions.append(read_champion(champion_path(root, PARTITION)))
    _arrive(instance, 10)
    worse = _models_run(instance, root, {"num_steps": 2, "overrides_json": _worse(), "seed": 7})
    champions.append(read_champion(champion_path(root, PARTITION)))
    return {"root": root, "runs": [first, warm, worse], "champions": champions}


def _worse() -> str:
    return json.dumps({"learning_rate": 1e-7, "table_learning_rate": 1e-7, "warmup_steps": 0, "eval_every": 1})


def test_the_first_models_become_champion_on_day_8(stream):
    first = stream["runs"][0]
    assert first.success, [c.description for c in first.get_asset_check_evaluations() if not c.passed]
    raw = _meta(first, "raw_manifest")["summary"].value
    assert (
        raw["clock"]["day_key"] == day_key(8)
        and raw["split_cutoffs"]["val_end_ts"] == raw["clock"]["until_ts"] - 86_400
    )
    assert _meta(first, "model_evaluation")["champion_promoted"].value
    assert stream["champions"][0]["retriever"] == _meta(first, "retriever_checkpoint")["checkpoint_path"].value


def test_the_warm_start_is_promoted_only_if_it_beats_the_champion_on_the_same_day(stream):
    warm = stream["runs"][1]
    assert warm.success
    ckpt = _meta(warm, "retriever_checkpoint")
    assert ckpt["warm_start_from"].value == stream["champions"][0]["retriever"] and ckpt["steps_run"].value == 100
    evaluation = _meta(warm, "model_evaluation")
    assert _meta(warm, "raw_manifest")["summary"].value["clock"]["day"] == 9
    candidate = evaluation["retriever_masked_ndcg@10"].value
    champion_today = evaluation["champion_metric_same_split"].value
    promoted = evaluation["champion_promoted"].value
    assert promoted == (candidate > champion_today)
    expected = ckpt["checkpoint_path"].value if promoted else stream["champions"][0]["retriever"]
    assert stream["champions"][1]["retriever"] == expected


def test_a_worse_model_is_not_promoted_and_serving_keeps_the_champion(stream):
    worse = stream["runs"][2]
    assert stream["champions"][2] == stream["champions"][1]
    (beats,) = [c for c in worse.get_asset_check_evaluations() if c.check_name == "beats_popularity"]
    assert not beats.passed and not worse.success  # blocking: nothing published, no candidate_index run
    assert not [e for e in worse.get_asset_materialization_events() if e.asset_key.path[-1] == "candidate_index"]
    root = stream["root"]
    with np.load(root / "arrays" / "candidate_index" / f"{PARTITION}.npz", allow_pickle=False) as z:
        version = str(z["param_version"])
    meta = json.loads((Path(stream["champions"][2]["retriever"]) / "metadata.json").read_text())
    assert version == str(meta.get("param_version", ""))


def test_retention_and_rollback(stream):
    root = stream["root"]
    champion = stream["champions"][2]
    runs = sorted(p.name for p in (root / "checkpoints" / PARTITION / "retriever").iterdir())
    history = champion_history(champion_path(root, PARTITION))
    kept = {Path(r["retriever"]).parent.name for r in [champion, *history[-1:]]}
    assert kept <= set(runs) and len(runs) <= len(kept) + 1  # keep_last_runs=1
    if champion_history(champion_path(root, PARTITION)):
        previous = champion_history(champion_path(root, PARTITION))[-1]
        assert rollback_champion(champion_path(root, PARTITION))["retriever"] == previous["retriever"]
        assert read_champion(champion_path(root, PARTITION))["retriever"] == previous["retriever"]
