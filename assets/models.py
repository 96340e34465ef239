"""Models group: Phoenix retriever and ranker checkpoints, the candidate index, and evaluation."""

import json
import math
import time

import dagster as dg
import numpy as np
import pandas as pd

from assets.common import DATASETS, DUCKDB, NPZ, frame_markdown, image, read_manifest
from resources import StorageResource
from x_reco.common.atomic import write_json
from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.plots import loss_curve_png, metric_bars_png
from x_reco.eval.ranker import evaluate_ranker, two_stage
from x_reco.eval.retrieval import evaluate_popularity, evaluate_retrieval, item_vectors
from x_reco.models.checkpoint import restore_checkpoint
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.presets import catalogue_window_s, config_digest, data_digest, default_train_config
from x_reco.training.progress import throttled

PRIMARY_METRIC = "masked_ndcg@10"  # retrieval, test split, full catalogue (synthetic: the feed window)


class ModelTrainConfig(dg.Config):
    """Overrides of the partition's default TrainConfig (x_reco.training.presets); empty = default."""

    num_steps: int = 0
    seed: int = 0
    overrides_json: str = ""  # e.g. '{"learning_rate": 0.002, "model_overrides": {"emb_size": 32}}'


def _train_config(config: ModelTrainConfig, partition: str, kind: str, window_s: float | None = None):
    overrides = json.loads(config.overrides_json) if config.overrides_json else {}
    if config.num_steps > 0:
        overrides["num_steps"] = config.num_steps
    overrides.setdefault("seed", config.seed)
    return default_train_config(partition, kind, catalogue_window_s=window_s, **overrides)


def _log_progress(context, kind: str):
    def log(step, total, loss, examples_per_s, eta_s):
        eta = f"{eta_s:,.0f}s" if math.isfinite(eta_s) else "?"
        context.log.info(f"{kind} step {step}/{total} loss {loss:.4f} "
                         f"{examples_per_s:,.0f} examples/s ETA {eta}")
    return throttled(log, every_s=5.0)


def _train(context, storage: StorageResource, config: ModelTrainConfig, seqs: EngagementSequences, kind: str):
    partition = context.partition_key
    cfg = _train_config(config, partition, kind, _catalogue_window_s(storage, partition))
    run_dir = storage.path("checkpoints", partition, kind, f"{config_digest(cfg)}-{data_digest(seqs)}")
    trainer = train_retriever if kind == "retriever" else train_ranker
    context.log.info(f"training {kind} on {partition}: {cfg.num_steps} steps, preset {cfg.preset}, dir {run_dir}")
    result = trainer(seqs, cfg, run_dir, progress=_log_progress(context, kind))
    losses = np.asarray(result.losses, dtype=np.float64)
    record = {
        "kind": kind, "partition": partition, "path": result.checkpoint_path, "step": result.step,
        "selected_step": result.selected_step,
        "config_digest": config_digest(cfg), "data_digest": data_digest(seqs),
        "val_metrics": {k: (None if not math.isfinite(v) else v) for k, v in result.val_metrics.items()},
        "final_loss": float(losses[-1]) if len(losses) else None,
        "wall_time_s": result.wall_time_s, "examples_per_s": result.examples_per_s,
    }
    numeric = {f"val_{k}": float(v) for k, v in result.val_metrics.items() if math.isfinite(v)}
    metadata = {
        "checkpoint_path": dg.MetadataValue.path(result.checkpoint_path), "step": result.step,
        "selected_step": result.selected_step,
        "final_loss": record["final_loss"], "train_time_s": result.train_time_s,
        "examples_per_s": result.examples_per_s, "config_digest": record["config_digest"],
        "loss_curve": image(loss_curve_png(result.losses, f"{partition} {kind} loss"), "loss curve"),
        **numeric,
    }
    finite = bool(len(losses) and np.isfinite(losses).all())
    return record, metadata, finite


def _checkpoint_asset(kind: str):
    name = f"{kind}_checkpoint"

    @dg.asset(name=name, partitions_def=DATASETS, group_name="models", kinds={"jax", "orbax"},
              ins={"engagement_sequences": dg.AssetIn()},
              check_specs=[dg.AssetCheckSpec("finite_losses", asset=name, blocking=True,
                                             description="every training loss is finite")],
              description=f"Trained Phoenix {kind} (Orbax directory; the output is a small JSON record)")
    def _asset(context: dg.AssetExecutionContext, config: ModelTrainConfig, storage: StorageResource,
               engagement_sequences: EngagementSequences):
        record, metadata, finite = _train(context, storage, config, engagement_sequences, kind)
        yield dg.Output(record, metadata=metadata)
        yield dg.AssetCheckResult(passed=finite, metadata={"final_loss": record["final_loss"]})

    return _asset


retriever_checkpoint = _checkpoint_asset("retriever")
ranker_checkpoint = _checkpoint_asset("ranker")


@dg.asset(partitions_def=DATASETS, group_name="models", io_manager_key=NPZ, kinds={"jax", "numpy"})
def candidate_index(context: dg.AssetExecutionContext, retriever_checkpoint: dict,
                    engagement_sequences: EngagementSequences):
    """Unit corpus embeddings of every catalogue item from the retriever's candidate tower."""
    model, meta = restore_checkpoint(retriever_checkpoint["path"])
    t0 = time.perf_counter()
    vectors = item_vectors(model, engagement_sequences)
    catalogue = engagement_sequences.catalogue
    valid = catalogue.post_hashes[:, 0] != 0
    return dg.Output(
        {"item_ids": catalogue.item_ids, "vectors": vectors.astype(np.float32), "mask": valid,
         "param_version": np.asarray(str(meta.get("param_version", "")))},
        metadata={"items": len(vectors), "dim": int(vectors.shape[1]), "seconds": time.perf_counter() - t0,
                  "param_version": str(meta.get("param_version", ""))})


@dg.asset(partitions_def=DATASETS, group_name="models", io_manager_key=DUCKDB, pool="duckdb",
          kinds={"jax", "duckdb"},
          check_specs=[
              dg.AssetCheckSpec("beats_popularity", asset="model_evaluation", blocking=True,
                                description=f"retriever {PRIMARY_METRIC} above the popularity baseline"),
              dg.AssetCheckSpec("restore_reproduces_validation", asset="model_evaluation", blocking=True,
                                description="restored checkpoints reproduce the logged validation metrics"),
          ])
def model_evaluation(context: dg.AssetExecutionContext, storage: StorageResource, retriever_checkpoint: dict,
                     ranker_checkpoint: dict, engagement_sequences: EngagementSequences):
    """Test-split metrics of both models, the popularity baseline and the two-stage pipeline; updates
    the dataset's champion record when the new retriever beats it."""
    seqs = engagement_sequences
    for split in (Split.VAL, Split.TEST):
        if not len(seqs.rows(split)):
            raise ValueError(f"{context.partition_key}: the {split.label} split has no examples; "
                             "generate more days (synthetic) or check the split rule")
    retriever, retriever_meta = restore_checkpoint(retriever_checkpoint["path"])
    ranker, _ = restore_checkpoint(ranker_checkpoint["path"])
    window = _catalogue_window_s(storage, context.partition_key)
    context.log.info(f"catalogue: {'posts of the last %.0f h' % (window / 3600) if window else 'every item'}")
    results = {
        "retriever": evaluate_retrieval(retriever, seqs, Split.TEST, catalogue_window_s=window),
        "popularity": evaluate_popularity(seqs, Split.TEST, catalogue_window_s=window),
        "ranker": evaluate_ranker(ranker, seqs, Split.TEST),
        "two_stage": two_stage(retriever, ranker, seqs, Split.TEST, catalogue_window_s=window),
    }
    trained_window = retriever_meta["extra"]["train_config"].get("negative_window_s")  # the logged val catalogue
    replay = {"retriever": evaluate_retrieval(retriever, seqs, Split.VAL, catalogue_window_s=trained_window),
              "ranker": evaluate_ranker(ranker, seqs, Split.VAL)}
    table = pd.DataFrame([(m, k, float(v)) for m, d in results.items() for k, v in d.items()],
                         columns=["model", "metric", "value"])
    champion = _update_champion(storage, context.partition_key, retriever_checkpoint, ranker_checkpoint, results)
    yield dg.Output(table, metadata=_evaluation_metadata(results, table, champion))
    ours, base = results["retriever"][PRIMARY_METRIC], results["popularity"][PRIMARY_METRIC]
    yield dg.AssetCheckResult(check_name="beats_popularity", passed=bool(ours > base),
                              metadata={"retriever": ours, "popularity": base,
                                        "catalogue": "time window" if window else "full"})
    diffs = _replay_differences(replay, retriever_checkpoint, ranker_checkpoint)
    yield dg.AssetCheckResult(check_name="restore_reproduces_validation", passed=bool(max(diffs.values(), default=0) <= 1e-4),
                              metadata={f"max_abs_diff_{k}": v for k, v in diffs.items()})


def _catalogue_window_s(storage: StorageResource, partition: str) -> float | None:
    """A feed's catalogue is its recent posts: the partition manifest's recency window, if any."""
    return catalogue_window_s(read_manifest(storage.path("manifests", partition, "raw.json")))


def _replay_differences(replay: dict, retriever_rec: dict, ranker_rec: dict) -> dict[str, float]:
    out = {}
    for kind, rec in (("retriever", retriever_rec), ("ranker", ranker_rec)):
        logged = {k: v for k, v in rec["val_metrics"].items() if v is not None}
        common = [k for k in logged if k in replay[kind] and math.isfinite(replay[kind][k])]
        out[kind] = max((abs(replay[kind][k] - logged[k]) for k in common), default=float("nan"))
        if not common:
            out[kind] = float("inf")  # nothing to compare is a failure, not a pass
    return out


def _update_champion(storage: StorageResource, partition: str, retriever_rec: dict, ranker_rec: dict,
                     results: dict) -> dict:
    """The champion becomes the new models only when their primary test metric beats it."""
    path = storage.path("champions", f"{partition}.json")
    current = json.loads(path.read_text()) if path.exists() else None
    score = float(results["retriever"][PRIMARY_METRIC])
    promoted = current is None or score > float(current["metric"])
    if promoted:
        current = {"metric_name": PRIMARY_METRIC, "metric": score, "retriever": retriever_rec["path"],
                   "ranker": ranker_rec["path"], "promoted_at": time.time()}
        write_json(path, current)
    return {"promoted": promoted, **current}


def _evaluation_metadata(results: dict, table: pd.DataFrame, champion: dict) -> dict:
    keys = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "masked_hr@10", "masked_ndcg@10"]
    compare = {m: {k: results[m].get(k, float("nan")) for k in keys} for m in ("retriever", "popularity")}
    numeric = {f"{m}_{k}": float(v) for m, d in results.items() for k, v in d.items()
               if isinstance(v, float) and math.isfinite(v) and ("@" in k or "auc" in k or k == "loss")}
    return {
        **numeric,
        "champion_promoted": champion["promoted"], "champion_metric": champion["metric"],
        "metrics": dg.MetadataValue.md(frame_markdown(table, max_rows=80)),
        "retrieval_plot": image(metric_bars_png(compare, keys, "test split, full catalogue"), "retrieval metrics"),
    }
