"""The models group as Dagster runs it: retriever and ranker train from the engagement sequences and
the raw manifest (the synthetic world's recency window; missing, it is an error), their blocking
checks pass, the candidate index covers the catalogue, evaluation restores both checkpoints and
reproduces their logged validation metrics, and the champion moves exactly when the audit passed.
Called directly, `model_evaluation` promotes trained toy models into an empty root, keeps a better
champion, fails the replay check when the logged metrics differ and `beats_popularity` for an
untrained retriever on the synthetic world, and in none of those cases moves the champion record
(publish after the audit)."""

import json

import dagster as dg
import numpy as np
import pytest
from flax import nnx

from assets import data as data_assets
from assets import models
from assets.common import DATASETS, NPZ
from resources import NpzIOManager, StorageResource
from resources.io_managers import read_frame
from tests.dagster_resources import tmp_resources
from tests.training.helpers import PARTITION, toy_seqs
from x_reco.data.examples import EngagementSequences
from x_reco.eval.champion import champion_path, read_champion
from x_reco.eval.report import replay_validation
from x_reco.models.checkpoint import restore_checkpoint, save_checkpoint
from x_reco.models.retriever import PhoenixRetriever

TINY = json.dumps(
    {
        "model_overrides": {
            "emb_size": 16,
            "key_size": 8,
            "num_layers": 1,
            "num_q_heads": 2,
            "num_kv_heads": 1,
            "compute_dtype": "float32",
        },
        "batch_size": 32,
        "warmup_steps": 2,
        "checkpoint_every": 0,
    }
)
MODELS = [
    data_assets.raw_tables,
    data_assets.engagement_events,
    data_assets.engagement_sequences,
    models.retriever_checkpoint,
    models.ranker_checkpoint,
    models.candidate_index,
    models.model_evaluation,
]


@pytest.fixture(scope="module")
def run(models_run):
    """The session's models-group run (tests/conftest.py): small synthetic world, 12 training steps."""
    return models_run


@pytest.fixture(scope="module")
def toy(toy_model_records):
    """model_evaluation's inputs for toy models that beat popularity (whole catalogue: no window)."""
    return {**toy_model_records, "engagement_sequences": toy_seqs(), "raw_manifest": {}}


@pytest.fixture(scope="module")
def inputs(run):
    """The upstream values model_evaluation received, read back from the run's IO managers."""
    tmp, _ = run
    record = lambda name: json.loads((tmp / "records" / name / "synthetic.json").read_text())  # noqa: E731
    seqs = EngagementSequences.from_npz(str(tmp / "arrays" / "engagement_sequences" / "synthetic.npz"))
    return {
        "retriever_checkpoint": record("retriever_checkpoint"),
        "ranker_checkpoint": record("ranker_checkpoint"),
        "engagement_sequences": seqs,
        "raw_manifest": record("raw_manifest"),
    }


def _evaluate(root, partition="synthetic", **inputs):
    """Call the asset as a function; its Output (None when a blocking check failed: nothing is
    published) and check results by name."""
    context = dg.build_asset_context(partition_key=partition)
    events = []
    try:
        events.extend(models.model_evaluation(context, storage=StorageResource(root=str(root)), **inputs))
    except dg.Failure:
        pass
    outputs = [e for e in events if isinstance(e, dg.Output)]
    return (outputs[0] if outputs else None), {e.check_name: e for e in events if isinstance(e, dg.AssetCheckResult)}


def test_models_group_materializes(run):
    tmp, result = run
    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    for key in [
        ("retriever_checkpoint", "finite_losses"),
        ("ranker_checkpoint", "finite_losses"),
        ("model_evaluation", "restore_reproduces_validation"),
    ]:
        assert checks[key].passed, key
    beats = checks[("model_evaluation", "beats_popularity")]
    assert beats.passed == (beats.metadata["retriever"].value > beats.metadata["popularity"].value)
    assert beats.severity == dg.AssetCheckSeverity.ERROR and beats.metadata["catalogue"].value == "time window"
    meta = {
        e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    # Publish after the audit: the blocking check decides the run and the champion together.
    champion = read_champion(champion_path(tmp, "synthetic"))
    assert result.success == beats.passed == ("model_evaluation" in meta)
    assert (champion is not None) == beats.passed
    assert not beats.passed or meta["model_evaluation"]["champion_promoted"].value
    assert meta["retriever_checkpoint"]["step"].value == 12
    assert meta["raw_manifest"]["keys"].value > 0
    (retriever_meta,) = (tmp / "checkpoints" / "synthetic" / "retriever").glob("*/model/metadata.json")
    window = json.loads(retriever_meta.read_text())["extra"]["train_config"]["negative_window_s"]
    assert window == 48 * 3600  # time-aware negatives: the window came through the raw_manifest edge
    assert "data:image/png;base64" in meta["ranker_checkpoint"]["loss_curve"].value
    if beats.passed:  # a failed blocking check publishes no table (write-audit-publish)
        assert meta["model_evaluation"]["retriever_masked_ndcg@10"].value == beats.metadata["retriever"].value
    index = tmp / "arrays" / "candidate_index" / "synthetic.npz"
    assert index.exists() == beats.passed  # the champion's index, built once model_evaluation decided
    if beats.passed:
        with np.load(index, allow_pickle=False) as z:
            vecs = z["vectors"]
            assert vecs.shape[0] == len(z["item_ids"])
            assert np.allclose(np.linalg.norm(vecs[z["mask"]], axis=1), 1.0, atol=1e-5)
    if beats.passed:
        table = read_frame(str(tmp / "warehouse.duckdb"), "synthetic", "model_evaluation")
        assert {"retriever", "popularity", "ranker", "two_stage"} <= set(table["model"])


def test_missing_manifest_is_an_error_not_a_default(run, tmp_path):
    """With the sequences stored but no raw_manifest, training fails to load its input instead of
    silently training over the whole catalogue (what the side file's missing-means-{} did)."""
    resources = tmp_resources(tmp_path) | {"npz_io_manager": NpzIOManager(base_dir=str(run[0] / "arrays"))}
    upstream = [
        dg.AssetSpec("engagement_sequences", partitions_def=DATASETS).with_io_manager_key(NPZ),
        dg.AssetSpec("raw_manifest", partitions_def=DATASETS),
    ]
    result = dg.materialize(
        [models.retriever_checkpoint, *upstream],
        resources=resources,
        partition_key="synthetic",
        raise_on_error=False,
        selection=[models.retriever_checkpoint],
    )
    assert not result.success and not result.get_asset_materialization_events()
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "raw_manifest" in str(failure.event_specific_data.error)


def test_direct_call_promotes_into_an_empty_root(toy, tmp_path):
    output, checks = _evaluate(tmp_path, PARTITION, **toy)
    assert checks["beats_popularity"].passed and checks["restore_reproduces_validation"].passed
    assert checks["beats_popularity"].metadata["catalogue"].value == "full"
    assert output.metadata["champion_promoted"].value is True
    assert set(output.value["model"]) == {"retriever", "popularity", "ranker", "two_stage"}
    assert read_champion(champion_path(tmp_path, PARTITION))["retriever"] == toy["retriever_checkpoint"]["path"]


def test_champion_not_promoted_when_worse(toy, tmp_path):
    path = champion_path(tmp_path, PARTITION)
    path.parent.mkdir(parents=True)
    better = {
        "metric_name": models.PRIMARY_METRIC,
        "metric": 1.0,
        "retriever": "old",
        "ranker": "old",
        "promoted_at": 0.0,
    }
    path.write_text(json.dumps(better))
    output, checks = _evaluate(tmp_path, PARTITION, **toy)
    assert checks["beats_popularity"].passed  # a good model, just not better than the champion
    assert output.metadata["champion_promoted"].value is False and read_champion(path) == better


def test_replay_mismatch_fails_and_publishes_nothing(toy, tmp_path):
    ranker = dict(toy["ranker_checkpoint"])
    ranker["val_metrics"] = {k: (v + 0.01 if v is not None else v) for k, v in ranker["val_metrics"].items()}
    output, checks = _evaluate(tmp_path, PARTITION, **{**toy, "ranker_checkpoint": ranker})
    assert checks["beats_popularity"].passed
    replay = checks["restore_reproduces_validation"]
    assert not replay.passed and replay.metadata["max_abs_diff_ranker"].value == pytest.approx(0.01, abs=1e-4)
    assert replay.metadata["max_abs_diff_retriever"].value <= 1e-4
    assert output is None and replay.metadata["published"].value is False
    assert not champion_path(tmp_path, PARTITION).exists()


def test_untrained_retriever_fails_beats_popularity(inputs, tmp_path):
    """A fresh retriever with truthfully logged validation metrics: the replay passes, the model
    loses to popularity, the blocking check fails and the champion stays absent."""
    trained, meta = restore_checkpoint(inputs["retriever_checkpoint"]["path"])
    fresh = PhoenixRetriever(trained.config, rngs=nnx.Rngs(params=123))
    window = meta["extra"]["train_config"]["negative_window_s"]
    val = replay_validation(inputs["engagement_sequences"], fresh, retriever_window_s=window)["retriever"]
    logged = {k: (float(v) if np.isfinite(v) else None) for k, v in val.items()}
    path = tmp_path / "untrained"
    save_checkpoint(path, fresh, extra={"val_metrics": logged, "train_config": meta["extra"]["train_config"]})
    record = {**inputs["retriever_checkpoint"], "path": str(path), "val_metrics": logged}
    output, checks = _evaluate(tmp_path, **{**inputs, "retriever_checkpoint": record})
    beats = checks["beats_popularity"]
    assert not beats.passed and beats.metadata["retriever"].value < beats.metadata["popularity"].value
    assert checks["restore_reproduces_validation"].passed
    assert output is None and beats.metadata["published"].value is False
    assert not champion_path(tmp_path, "synthetic").exists()


def test_a_rerun_with_the_same_config_reuses_the_checkpoint_and_says_so(run):
    tmp, _ = run
    saved = json.dumps({**json.loads(TINY), "checkpoint_every": 6})  # a finished run leaves its checkpoint
    train = {"config": {"num_steps": 6, "overrides_json": saved}}

    def rerun():
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            MODELS,
            selection=["retriever_checkpoint"],
            partition_key="synthetic",
            resources=tmp_resources(tmp),
            instance=instance,
            run_config={"ops": {"retriever_checkpoint": train}},
        )
        (event,) = result.get_asset_materialization_events()
        logs = [e.user_message for e in instance.all_logs(result.run_id) if "REUSED" in e.user_message]
        return event.event_specific_data.materialization.metadata, logs

    first, logs = rerun()
    assert first["reused_checkpoint"].value is False and first["steps_run"].value == 6 and not logs
    again, logs = rerun()
    assert again["reused_checkpoint"].value is True and again["steps_run"].value == 0
    assert logs and "0 steps ran" in logs[0]


def test_evaluation_reports_both_protocols_with_intervals_and_popularity(toy, tmp_path):
    """Issue 10 item 1: the retriever and popularity, unmasked and masked, each HR@10 / NDCG@10 with a
    bootstrap interval over users that holds the point value, in the metadata and its markdown table."""
    output, _ = _evaluate(tmp_path, PARTITION, **toy)
    meta = output.metadata
    for model in ("retriever", "popularity"):
        for prefix in ("", "masked_"):
            for metric in ("hr@10", "ndcg@10"):
                key = f"{model}_{prefix}{metric}"
                low, high = meta[f"{key}_ci_low"].value, meta[f"{key}_ci_high"].value
                assert low <= meta[key].value <= high and low < high, key
    table = meta["protocols"].value
    assert table.splitlines()[0] == "| protocol | model | HR@10 [95 % CI] | NDCG@10 [95 % CI] |"
    assert [line.split(" | ")[:2] for line in table.splitlines()[2:]] == [
        ["| unmasked", "retriever"],
        ["| unmasked", "popularity"],
        ["| masked", "retriever"],
        ["| masked", "popularity"],
    ]
    value = meta["retriever_masked_ndcg@10"].value
    ci = (meta["retriever_masked_ndcg@10_ci_low"].value, meta["retriever_masked_ndcg@10_ci_high"].value)
    assert f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" in table.splitlines()[4]
    frame = output.value
    assert {"ndcg@10_ci_low", "masked_hr@10_ci_high", "num_users"} <= set(
        frame.loc[frame.model == "popularity", "metric"]
    )
