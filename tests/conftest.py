"""Session fixtures shared by test modules."""

import json

import dagster as dg
import pytest

from tests.dagster_resources import tmp_resources


@pytest.fixture(scope="session")
def champion_root(tmp_path_factory):
    """A storage root that real Dagster runs wrote on the small synthetic world: data, 8-step tiny
    retriever and ranker, candidate index, stakeholder utilities and smoke BT models, and the champion
    record naming the two checkpoints (what ``model_evaluation`` writes once its checks pass)."""
    from assets import data as data_assets
    from assets import models, research
    from tests.test_assets_models import TINY
    from x_reco.eval.champion import champion_path, promote_champion

    tmp = tmp_path_factory.mktemp("champion")
    train = {"config": {"num_steps": 8, "overrides_json": TINY}}
    result = dg.materialize(
        [
            data_assets.raw_tables,
            data_assets.engagement_events,
            data_assets.engagement_sequences,
            models.retriever_checkpoint,
            models.ranker_checkpoint,
            models.candidate_index,
            research.stakeholder_utilities,
            research.bt_reward_models,
        ],
        resources=tmp_resources(tmp),
        partition_key="synthetic",
        run_config={
            "ops": {
                "raw_tables": {"config": {"synthetic_size": "small"}},
                "retriever_checkpoint": train,
                "ranker_checkpoint": train,
                "bt_reward_models": {"config": {"protocols": ["corrected"]}},
            }
        },
    )
    assert result.success
    record = lambda n: json.loads((tmp / "records" / n / "synthetic.json").read_text())  # noqa: E731
    promote_champion(
        champion_path(tmp, "synthetic"),
        0.5,
        record("retriever_checkpoint")["path"],
        record("ranker_checkpoint")["path"],
    )
    return tmp
