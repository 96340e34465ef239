"""Models group: Phoenix retriever and ranker checkpoints, the candidate index, and evaluation."""

import json
import math
import os
import time

import dagster as dg
import pydantic

from assets.common import DATASETS, DUCKDB, NPZ, frame_markdown, image, publish_after_audit
from resources import StorageResource
from resources.tags import WARM_START_TAG
from x_reco.data.examples import EngagementSequences
from x_reco.eval.champion import PRIMARY_METRIC, champion_path, prune_checkpoints, read_champion
from x_reco.eval.checkpoints import EvaluationOutcome, evaluate_checkpoints
from x_reco.eval.plots import loss_curve_png, metric_bars_png
from x_reco.eval.report import COMPARE_KEYS, REPLAY_TOLERANCE, two_stage_markdown
from x_reco.eval.retrieval import catalogue_index
from x_reco.models.checkpoint import restore_checkpoint
from x_reco.training.defaults import catalogue_window_s, check_overrides, default_train_config, overrides_from_json
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.progress import throttled
from x_reco.training.record import run_name, train_record


class ModelTrainConfig(dg.Config):
    """Overrides of the partition's default TrainConfig (x_reco.training.defaults); empty = default."""

    num_steps: int | None = pydantic.Field(
        None, description="Training steps; empty = the partition's budget (a third of it when warm-starting)"
    )
    seed: int = pydantic.Field(0, description="Seed of the initialization and the data order")
    overrides_json: str | None = pydantic.Field(
        None,
        description='TrainConfig fields as JSON, e.g. {"learning_rate": 0.002, "model_overrides": {"emb_size": 32}}',
    )
    warm_start: bool = pydantic.Field(
        False,
        description="Start from the partition's champion (retraining on new data); cold when there is none yet",
    )

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        if self.num_steps is not None and self.num_steps < 1:
            raise ValueError(f"num_steps={self.num_steps} must be >= 1, or empty for the partition's default")
        steps = {"num_steps": self.num_steps} if self.num_steps else {}
        check_overrides({"seed": self.seed, **overrides_from_json(self.overrides_json or ""), **steps})
        return self


def _train_config(
    config: ModelTrainConfig, partition: str, kind: str, window_s: float | None = None, init: str | None = None
):
    overrides = json.loads(config.overrides_json) if config.overrides_json else {}
    if config.num_steps is not None:
        overrides["num_steps"] = config.num_steps
    overrides.setdefault("seed", config.seed)
    return default_train_config(partition, kind, catalogue_window_s=window_s, init_checkpoint=init, **overrides)


def _warm_start_from(context, config: ModelTrainConfig, storage: StorageResource, kind: str) -> str | None:
    """The champion's checkpoint of ``kind`` when the run warm-starts and there is one."""
    if not (config.warm_start or context.run.tags.get(WARM_START_TAG) == "true"):
        return None
    champion = read_champion(champion_path(storage.path(), context.partition_key))
    if champion is None:
        context.log.info(f"warm_start: {context.partition_key} has no champion yet, the {kind} trains from scratch")
        return None
    return champion[kind]


def _log_progress(context, kind: str):
    def log(step, total, loss, examples_per_s, eta_s):
        eta = f"{eta_s:,.0f}s" if math.isfinite(eta_s) else "?"
        context.log.info(f"{kind} step {step}/{total} loss {loss:.4f} {examples_per_s:,.0f} examples/s ETA {eta}")

    return throttled(log, every_s=5.0)


def _retriever_of(context, cfg, inputs: dict) -> dict:
    """The trained retriever of the ranker's two stages: it validates on re-ranking that retriever's top
    items (``two_stage_*`` val metrics) and draws its hard negatives from them (``hard_negative_pool``)."""
    record = inputs["retriever_checkpoint"]
    if cfg.hard_negative_pool:
        context.log.info(f"ranker hard negatives: top {cfg.hard_negative_pool} unseen items of {record['path']}")
    return {"retriever": restore_checkpoint(record["path"])[0]}


def _checkpoint_asset(kind: str):
    name = f"{kind}_checkpoint"
    trainer = train_retriever if kind == "retriever" else train_ranker
    ins = {"engagement_sequences": dg.AssetIn(), "raw_manifest": dg.AssetIn()}
    if kind == "ranker":  # trained on the candidates it will rank: the retriever's top items
        ins["retriever_checkpoint"] = dg.AssetIn()

    @dg.asset(
        name=name,
        partitions_def=DATASETS,
        group_name="models",
        kinds={"jax", "orbax"},
        ins=ins,
        check_specs=[
            dg.AssetCheckSpec("finite_losses", asset=name, blocking=True, description="every training loss is finite")
        ],
        description=f"Trained Phoenix {kind} (Orbax directory; the output is a small JSON record)",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: ModelTrainConfig,
        storage: StorageResource,
        engagement_sequences: EngagementSequences,
        raw_manifest: dict,
        **upstream,
    ):
        partition = context.partition_key
        init = _warm_start_from(context, config, storage, kind)
        cfg = _train_config(config, partition, kind, catalogue_window_s(raw_manifest), init)
        run_dir = storage.path("checkpoints", partition, kind, run_name(cfg, engagement_sequences))
        start = f"warm start from the champion {init}" if init else "from scratch"
        context.log.info(f"{kind} on {partition}: {cfg.num_steps} steps {start}, preset {cfg.preset}, dir {run_dir}")
        extra = _retriever_of(context, cfg, upstream) if kind == "ranker" else {}
        result = trainer(engagement_sequences, cfg, run_dir, progress=_log_progress(context, kind), **extra)
        reused = result.resumed_from is not None and result.resumed_from >= cfg.num_steps
        if reused:
            context.log.info(
                f"REUSED: {run_dir} already holds this config trained on this data ({result.step} steps); "
                "0 steps ran. Change the config or seed to train again."
            )
        os.utime(run_dir)  # the newest runs survive checkpoint retention (model_evaluation's keep_last_runs)
        record = train_record(kind, partition, cfg, engagement_sequences, result)
        record |= {"reused": reused, "warm_start_from": init}
        output = dg.Output(
            record,
            metadata={
                "reused_checkpoint": reused,
                "steps_run": 0 if reused else result.step - (result.resumed_from or 0),
                "warm_start_from": init or "",
                "checkpoint_path": dg.MetadataValue.path(record["path"]),
                "step": record["step"],
                "selected_step": record["selected_step"],
                "final_loss": record["final_loss"],
                "train_time_s": record["train_time_s"],
                "examples_per_s": record["examples_per_s"],
                "config_digest": record["config_digest"],
                "loss_curve": image(loss_curve_png(result.losses, f"{partition} {kind} loss"), "loss curve"),
                **{f"val_{k}": v for k, v in record["val_metrics"].items() if v is not None},
            },
        )
        check = dg.AssetCheckResult(passed=record["losses_finite"], metadata={"final_loss": record["final_loss"]})
        yield from publish_after_audit(context, [output], [check])

    return _asset


retriever_checkpoint = _checkpoint_asset("retriever")
ranker_checkpoint = _checkpoint_asset("ranker")


@dg.asset(
    partitions_def=DATASETS,
    group_name="models",
    io_manager_key=NPZ,
    kinds={"jax", "numpy"},
    deps=["model_evaluation"],
)
def candidate_index(
    context: dg.AssetExecutionContext, storage: StorageResource, engagement_sequences: EngagementSequences
):
    """Unit corpus embeddings of every catalogue item from the champion retriever's candidate tower
    (after model_evaluation decided the champion: what serving retrieves with)."""
    champion = read_champion(champion_path(storage.path(), context.partition_key))
    if champion is None:
        raise dg.Failure(f"{context.partition_key} has no champion: model_evaluation promotes one when its checks pass")
    model, meta = restore_checkpoint(champion["retriever"])
    t0 = time.perf_counter()
    index = catalogue_index(model, engagement_sequences, param_version=str(meta.get("param_version", "")))
    return dg.Output(
        index,
        metadata={
            "champion_retriever": dg.MetadataValue.path(champion["retriever"]),
            "items": len(index["vectors"]),
            "dim": int(index["vectors"].shape[1]),
            "seconds": time.perf_counter() - t0,
            "param_version": str(index["param_version"]),
        },
    )


class EvaluationConfig(dg.Config):
    """Checkpoint retention after the champion decision."""

    keep_last_runs: int = pydantic.Field(
        3, ge=1, description="Training runs kept per model kind besides the champion and the one before it"
    )


@dg.asset(
    partitions_def=DATASETS,
    group_name="models",
    io_manager_key=DUCKDB,
    kinds={"jax", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "beats_popularity",
            asset="model_evaluation",
            blocking=True,
            description=f"retriever {PRIMARY_METRIC} above the popularity baseline",
        ),
        dg.AssetCheckSpec(
            "restore_reproduces_validation",
            asset="model_evaluation",
            blocking=True,
            description="restored checkpoints reproduce the logged validation metrics",
        ),
    ],
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    storage: StorageResource,
    retriever_checkpoint: dict,
    ranker_checkpoint: dict,
    engagement_sequences: EngagementSequences,
    raw_manifest: dict,
):
    """Test-split metrics of both models, the popularity baseline and the two-stage pipeline; when both
    checks pass, the dataset's champion record moves to these models if they beat the champion on this
    same test split (re-evaluated: on streamed data the test day moved on). Then the training runs
    that are neither the champion, the one before it, nor among the newest are deleted."""
    window = catalogue_window_s(raw_manifest)
    context.log.info(f"catalogue: {'posts of the last %.0f h' % (window / 3600) if window else 'every item'}")
    champion_file = champion_path(storage.path(), context.partition_key)
    outcome = evaluate_checkpoints(
        engagement_sequences,
        retriever_checkpoint["path"],
        ranker_checkpoint["path"],
        catalogue_window_s=window,
        logged_val={"retriever": retriever_checkpoint["val_metrics"], "ranker": ranker_checkpoint["val_metrics"]},
        champion_file=champion_file,
        evaluated_on={"data_digest": retriever_checkpoint["data_digest"], "clock": raw_manifest.get("clock")},
    )
    decision, candidate = outcome.champion, outcome.evaluation.primary("retriever")
    today = decision.get("champion_metric")  # None: no champion, or it could not be re-evaluated
    against = (
        f"the champion's {today:.4f} on this test day"
        if today is not None
        else "no champion re-evaluated on this test day (none yet, or its recorded score)"
    )
    verdict = "PROMOTED" if decision["promoted"] else ("kept" if outcome.audit_passed else "kept (audit failed)")
    context.log.info(f"champion {verdict}: candidate {PRIMARY_METRIC} {candidate:.4f} against {against}")
    if outcome.audit_passed:
        runs = [storage.path("checkpoints", context.partition_key, kind) for kind in ("retriever", "ranker")]
        for run in prune_checkpoints(runs, champion_file, config.keep_last_runs):
            context.log.info(f"retention: deleted {run}")
    table = outcome.evaluation.table()
    output = dg.Output(table, metadata=_evaluation_metadata(outcome, table))
    evaluation = outcome.evaluation
    beats = dg.AssetCheckResult(
        check_name="beats_popularity",
        passed=outcome.beats_popularity,
        metadata={
            "retriever": evaluation.primary("retriever"),
            "popularity": evaluation.primary("popularity"),
            "catalogue": "time window" if window else "full",
        },
    )
    replay = dg.AssetCheckResult(
        check_name="restore_reproduces_validation",
        passed=outcome.replay_reproduces,
        metadata={
            "tolerance": REPLAY_TOLERANCE,
            **{f"max_abs_diff_{k}": v for k, v in outcome.replay_differences.items()},
        },
    )
    yield from publish_after_audit(context, [output], [beats, replay])


def _evaluation_metadata(outcome: EvaluationOutcome, table) -> dict:
    champion = outcome.champion
    return {
        **outcome.evaluation.numeric(),
        "champion_promoted": champion["promoted"],
        **({"champion_metric": champion["metric"]} if math.isfinite(champion["metric"]) else {}),
        **({"champion_metric_same_split": champion["champion_metric"]} if "champion_metric" in champion else {}),
        **({"champion_retriever": dg.MetadataValue.path(champion["retriever"])} if "retriever" in champion else {}),
        "metrics": dg.MetadataValue.md(frame_markdown(table, max_rows=120)),
        "protocols": dg.MetadataValue.md(outcome.evaluation.protocol_markdown()),
        **(
            {"two_stage": dg.MetadataValue.md(stages)}
            if (stages := two_stage_markdown([outcome.evaluation.results]))
            else {}
        ),
        "retrieval_plot": image(
            metric_bars_png(outcome.evaluation.comparison(), list(COMPARE_KEYS), "test split, full catalogue"),
            "retrieval metrics",
        ),
    }
