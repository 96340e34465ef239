"""The models group as Dagster runs it: retriever and ranker train from the engagement sequences,
their blocking checks pass, the candidate index covers the catalogue, evaluation restores both
checkpoints and reproduces their logged validation metrics; the champion record only moves to a
model that beats it."""

import json

import dagster as dg
import numpy as np
import pytest

from assets import data as data_assets
from assets import models
from resources import StorageResource
from tests.dagster_resources import tmp_resources
from resources.io_managers import read_frame

TINY = json.dumps({
    "model_overrides": {"emb_size": 16, "key_size": 8, "num_layers": 1, "num_q_heads": 2, "num_kv_heads": 1,
                        "compute_dtype": "float32"},
    "batch_size": 32, "warmup_steps": 2, "checkpoint_every": 0,
})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    resources = tmp_resources(tmp)
    train = {"config": {"num_steps": 12, "overrides_json": TINY}}
    result = dg.materialize(
        [data_assets.raw_tables, data_assets.engagement_events, data_assets.engagement_sequences,
         models.retriever_checkpoint, models.ranker_checkpoint, models.candidate_index, models.model_evaluation],
        resources=resources, partition_key="synthetic", raise_on_error=False,
        run_config={"ops": {"raw_tables": {"config": {"synthetic_preset": "small"}},
                            "retriever_checkpoint": train, "ranker_checkpoint": train}})
    return tmp, result


def test_models_group_materializes(run):
    tmp, result = run
    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    for key in [("retriever_checkpoint", "finite_losses"), ("ranker_checkpoint", "finite_losses"),
                ("model_evaluation", "restore_reproduces_validation")]:
        assert checks[key].passed, key
    # The check says exactly whether the retriever beat popularity, and it blocks: a losing model
    # fails the run.
    beats = checks[("model_evaluation", "beats_popularity")]
    ours, base = beats.metadata["retriever"].value, beats.metadata["popularity"].value
    assert beats.passed == (ours > base) and beats.severity == dg.AssetCheckSeverity.ERROR
    assert beats.metadata["catalogue"].value == "time window"
    assert result.success == beats.passed
    meta = {e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["retriever_checkpoint"]["step"].value == 12
    (retriever_meta,) = (tmp / "checkpoints" / "synthetic" / "retriever").glob("*/model/metadata.json")
    window = json.loads(retriever_meta.read_text())["extra"]["train_config"]["negative_window_s"]
    assert window == 48 * 3600  # time-aware negatives: the synthetic world's recency window
    assert "data:image/png;base64" in meta["ranker_checkpoint"]["loss_curve"].value
    assert meta["model_evaluation"]["champion_promoted"].value is True
    with np.load(tmp / "arrays" / "candidate_index" / "synthetic.npz", allow_pickle=False) as z:
        vecs = z["vectors"]
        assert vecs.shape[0] == len(z["item_ids"])
        assert np.allclose(np.linalg.norm(vecs[z["mask"]], axis=1), 1.0, atol=1e-5)
    table = read_frame(str(tmp / "warehouse.duckdb"), "synthetic", "model_evaluation")
    assert {"retriever", "popularity", "ranker", "two_stage"} <= set(table["model"])
    assert (tmp / "champions" / "synthetic.json").exists()


def test_champion_only_moves_to_a_better_model(tmp_path):
    storage = StorageResource(root=str(tmp_path))
    rec = lambda name: {"path": name}  # noqa: E731

    def results(score):
        return {"retriever": {models.PRIMARY_METRIC: score}}

    assert models._update_champion(storage, "synthetic", rec("a"), rec("a"), results(0.2))["promoted"]
    worse = models._update_champion(storage, "synthetic", rec("b"), rec("b"), results(0.1))
    assert not worse["promoted"] and worse["retriever"] == "a"
    better = models._update_champion(storage, "synthetic", rec("c"), rec("c"), results(0.3))
    assert better["promoted"] and better["retriever"] == "c"
