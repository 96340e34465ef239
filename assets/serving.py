"""Serving group: the optimized model that serves, the feeds it serves, and who those feeds favour.

``ranker_calibration`` stores the input moments the champion ranker's int8 weights are rounded against
(train-split requests; ``x_reco.inference.calibrate``); ``serving_model`` records which variant of the
champion ranker serves (INT8 weights and tables by default, rounded against that calibration) with its
bytes and its agreement with the f32 checkpoint, computed as the feed computes it; ``served_feeds`` serves a seeded
sample of test-split requests through the same ``FeedPipeline`` as ``x-reco feed`` and re-audits them;
``feed_stakeholder_audit`` re-ranks the same requests under every weight set from one model call per
request (spec candidate-pipeline.md §15.3, §16). ``closed_loop_replay`` (``assets/replay.py``) builds
its pipeline with ``serving_pipeline`` too.
"""

import math
import time

import dagster as dg
import numpy as np
import pandas as pd
import pydantic

from assets.common import DATASETS, DUCKDB, NPZ, frame_markdown, image, publish_after_audit
from resources import StorageResource
from x_reco.bench.quality import QualityJob
from x_reco.bench.timing import served_spec
from x_reco.configs.weights import KNOWN_NAMES, WeightSet
from x_reco.data.examples import EngagementSequences
from x_reco.data.registry import dataset_spec
from x_reco.data.synthetic.oracle import WorldOracle
from x_reco.eval.champion import champion_path, read_champion
from x_reco.inference.calibrate import (
    CALIBRATION_CANDIDATES,
    CALIBRATION_SEED,
    CALIBRATION_USERS,
    CalibrationError,
    checkpoint_calibration,
    moments_from_arrays,
    moments_to_arrays,
    rounding_error_ratio,
)
from x_reco.inference.quantize import VARIANT_BUILDERS
from x_reco.models.checkpoint import read_metadata
from x_reco.pipeline.audit import reaudit, reaudit_summary
from x_reco.pipeline.feed import build_pipeline
from x_reco.pipeline.reconcile import reconcile
from x_reco.pipeline.rules import DEFAULT_RULES, rule_set
from x_reco.pipeline.served import feed_frames, feed_summary, funnel_png, sample_requests, serve_all
from x_reco.pipeline.stakeholder_audit import bt_weight_sets, stakeholder_audit
from x_reco.pipeline.types import FeedRequest

SERVING = "serving"


def _md(df: pd.DataFrame, max_rows: int = 40) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_markdown(df, max_rows))


def _champion(storage: StorageResource, partition: str) -> dict:
    record = read_champion(champion_path(storage.path(), partition))
    if record is None:
        raise dg.Failure(
            f"{partition} has no champion models yet: materialize model_evaluation first "
            f"(`dg launch --job models_job --partition {partition}`)"
        )
    return record


def _progress(context, what: str):
    """A ``progress(i, n)`` callback logging step counts and an ETA at most every 5 s."""
    start = time.perf_counter()
    last = [start]  # the first line after 5 s: the first request compiles

    def log(i: int, n: int) -> None:
        now = time.perf_counter()
        if i < n and now - last[0] < 5.0:
            return
        last[0] = now
        rate = i / max(now - start, 1e-9)
        eta = f"{(n - i) / rate:,.0f}s" if rate > 0 and math.isfinite(rate) else "?"
        context.log.info(f"{what} {i}/{n} ({rate:,.1f}/s) ETA {eta}")

    return log


# -- ranker_calibration -------------------------------------------------------------------------


class RankerCalibrationConfig(dg.Config):
    """The train-split requests the champion ranker's int8 weights are rounded against."""

    users: int = pydantic.Field(
        CALIBRATION_USERS, ge=1, description="train-split requests, one per user (never a held-out one)"
    )
    candidates: int = pydantic.Field(CALIBRATION_CANDIDATES, ge=1, description="random catalogue items per request")
    seed: int = pydantic.Field(CALIBRATION_SEED, ge=0, description="seed of the candidate draw")


@dg.asset(
    partitions_def=DATASETS,
    group_name=SERVING,
    io_manager_key=NPZ,
    deps=["model_evaluation"],
    kinds={"jax", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            "covers_the_int8_weights",
            asset="ranker_calibration",
            blocking=True,
            description="a finite second moment of the right size for every weight the w8 format quantizes",
        ),
        dg.AssetCheckSpec(
            "lowers_output_error",
            asset="ranker_calibration",
            description="calibrated rounding lowers E||x(W - W_q)||^2 below round-to-nearest on most weights",
        ),
    ],
)
def ranker_calibration(
    context: dg.AssetExecutionContext,
    config: RankerCalibrationConfig,
    storage: StorageResource,
    engagement_sequences: EngagementSequences,
):
    """Second moments E[x x^T] of the inputs of every int8 weight of the champion ranker, on train-split
    requests: what its w8 rounding minimizes the output error against (GPTQ, arXiv:2210.17323). Computed
    once per champion (seconds); the feed loads them to build the variant it serves."""
    partition = context.partition_key
    champion = _champion(storage, partition)
    t0 = time.perf_counter()
    source, moments, requests = checkpoint_calibration(
        champion["ranker"], engagement_sequences, config.users, config.candidates, config.seed
    )
    seconds = time.perf_counter() - t0
    arrays = moments_to_arrays(moments, source.param_version, requests)
    problems, ratios = [], {}
    try:  # what the feed will load, rounded once: missing or wrongly sized moments raise here
        ratios = rounding_error_ratio(source, moments_from_arrays(arrays, "ranker_calibration", source.param_version))
    except (CalibrationError, ValueError) as err:
        problems.append(str(err))
    median = float(np.median(list(ratios.values()))) if ratios else float("nan")
    context.log.info(f"calibrated {len(moments)} weights on {requests} requests in {seconds:.1f}s")
    output = dg.Output(
        arrays,
        metadata={
            "param_version": source.param_version,
            "weights": len(moments),
            "requests": requests,
            "candidates": config.candidates,
            "seconds": seconds,
            "output_error_ratio_median": median,
            "output_error_ratio": _md(
                pd.DataFrame({"weight": list(ratios), "calibrated / nearest": list(ratios.values())})
            ),
        },
    )
    checks = [
        dg.AssetCheckResult(
            check_name="covers_the_int8_weights",
            passed=not problems,
            metadata={"problems": "; ".join(problems) or "none"},
        ),
        dg.AssetCheckResult(
            check_name="lowers_output_error",
            passed=bool(ratios) and median < 1.0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"output_error_ratio_median": median},
        ),
    ]
    yield from publish_after_audit(context, [output], checks)


# -- serving_model ------------------------------------------------------------------------------


class ServingModelConfig(dg.Config):
    """The ranker format that serves, and the held-out sample its agreement with f32 is measured on."""

    variant: str = pydantic.Field(
        "w8+t8",
        description=f"ranker format that serves, one of {sorted(VARIANT_BUILDERS)} (w8+t8: INT8 weights and tables)",
    )
    rounding: str = pydantic.Field(
        "calibrated",
        description="w8 rounding: calibrated (against ranker_calibration) or nearest; ignored without w8",
    )
    agreement_users: int = pydantic.Field(
        64, ge=1, description="held-out users on which the served variant's ranking is compared with f32"
    )
    agreement_candidates: int = pydantic.Field(
        1000, ge=1, description="candidates per agreement user (the §5.6 top-10@1000 gate needs 1000)"
    )
    seed: int = pydantic.Field(0, ge=0, description="seed of the agreement sample")

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        if self.variant not in VARIANT_BUILDERS:
            raise ValueError(f"variant={self.variant!r} must be one of {sorted(VARIANT_BUILDERS)}")
        if self.rounding not in ("calibrated", "nearest"):
            raise ValueError(f"rounding={self.rounding!r} must be 'calibrated' or 'nearest'")
        return self


@dg.asset(
    partitions_def=DATASETS,
    group_name=SERVING,
    deps=["model_evaluation"],
    kinds={"jax"},
    check_specs=[
        dg.AssetCheckSpec(
            "agrees_with_f32",
            asset="serving_model",
            blocking=True,
            description="the served variant ranks held-out candidates like the f32 checkpoint (§5.6 gates)",
        )
    ],
)
def serving_model(
    context: dg.AssetExecutionContext,
    config: ServingModelConfig,
    storage: StorageResource,
    engagement_sequences: EngagementSequences,
    ranker_calibration: dict,
):
    """The optimized variant of the champion ranker that serving runs: its bytes by dtype, digests and
    agreement with the f32 checkpoint on held-out users, computed as the feed computes it (the
    checkpoint's compute dtype, the stored calibration). A small JSON record; the variant itself is a
    pure function of the checkpoint and ``ranker_calibration``, rebuilt where it serves."""

    partition = context.partition_key
    champion = _champion(storage, partition)
    rounding = config.rounding if "w8" in config.variant.split("+") else None
    moments, requests = None, 0
    if rounding == "calibrated":
        version = str(read_metadata(champion["ranker"]).get("param_version", ""))
        try:
            moments = moments_from_arrays(ranker_calibration, "ranker_calibration", version)
        except CalibrationError as err:
            raise dg.Failure(f"{partition}: {err}") from None
        requests = int(ranker_calibration["requests"])
    job = QualityJob.trained(
        champion["ranker"],
        engagement_sequences,
        users=config.agreement_users,
        candidates=config.agreement_candidates,
        seed=config.seed,
        variants=(served_spec(config.variant, rounding),),
        moments=moments,
        calibration_users=requests,
    )
    (quality,) = job.run()
    block = quality["quality"]
    record = {
        "partition": partition,
        "variant": config.variant,
        "rounding": rounding,
        "calibration_requests": requests,
        "ranker_checkpoint": champion["ranker"],
        "retriever_checkpoint": champion["retriever"],
        "ranker_param_version": quality["param_version"],
        "source_param_digest": quality["source_param_digest"],
        "config_digest": quality["config_digest"],
        "bytes_by_dtype": quality["param_bytes"],
        "bytes_total": quality["bytes_total"],
        "bytes_ratio_vs_f32": quality["bytes_ratio_vs_f32"],
        "quantized": quality["quantized"],
        "agreement": _agreement(block),
    }
    bytes_rows = [
        {"group": g, "dtype": dt, "bytes": b}
        for g, by in sorted(quality["param_bytes"].items())
        for dt, b in sorted(by.items())
    ]
    agreement = record["agreement"]
    output = dg.Output(
        record,
        metadata={
            "variant": config.variant,
            "rounding": str(rounding),
            "ranker_param_version": record["ranker_param_version"],
            "source_param_digest": record["source_param_digest"],
            "bytes_total": record["bytes_total"],
            "bytes_ratio_vs_f32": record["bytes_ratio_vs_f32"],
            "bytes_by_dtype": _md(pd.DataFrame(bytes_rows)),
            **{f"agreement_{k}": v for k, v in agreement.items() if isinstance(v, int | float)},
        },
    )
    gates = block.get("gates", {}).get("checks", {}) if "aborted" not in block else {}
    passed = "aborted" not in block and all(v is not False for v in gates.values())
    check = dg.AssetCheckResult(
        passed=passed,
        metadata={
            **{f"gate_{k}": str(v) for k, v in gates.items()},
            **({"aborted": block["aborted"]} if "aborted" in block else {}),
        },
    )
    yield from publish_after_audit(context, [output], [check])


def _agreement(block: dict) -> dict:
    if "aborted" in block:
        return {"aborted": block["aborted"]}
    top = {k.replace("/", "_"): v["overlap"] for k, v in block["topk"].items() if k.startswith("weighted@")}
    return {
        "users": block["users"],
        "candidates": block["candidates"],
        "prob_max_abs_diff": block["probs"]["max_abs"],
        "prob_mean_abs_diff": block["probs"]["mean_abs"],
        "kendall_tau_weighted_median": block["kendall_tau"]["weighted"]["median"],
        **{f"top_overlap_{k}": v for k, v in sorted(top.items())},
    }


# -- served_feeds -------------------------------------------------------------------------------


class ServedFeedsConfig(dg.Config):
    """A seeded sample of users at their first test-split request times (+ a page 2 on synthetic)."""

    num_users: int = pydantic.Field(100, ge=1, description="users sampled from the test split")
    requests_per_user: int = pydantic.Field(3, ge=1, description="feed requests served per sampled user")
    seed: int = pydantic.Field(0, ge=0, description="seed of the user sample and of the page-2 coins")
    rules: str = pydantic.Field(DEFAULT_RULES, description="rule set of the candidate pipeline (filters, diversity)")
    weights: str = pydantic.Field(
        "published", description="weight set that scores the served feeds (a name from x_reco.configs.weights)"
    )
    attribute: bool = pydantic.Field(
        True,
        description="also attribute each served post to its top-3 history events (§15.5; one more model call "
        "per request)",
    )

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        rule_set(self.rules)
        WeightSet.named(self.weights)
        return self


def serving_pipeline(storage: StorageResource, partition: str, record: dict, rules: str, weights: str):
    """The partition's FeedPipeline with the variant ``serving_model`` recorded; refuses a champion that
    changed since (the feeds would not come from the recorded model)."""

    pipeline = build_pipeline(
        partition,
        str(storage.path()),
        rules=rules,
        weights=weights,
        variant=record["variant"],
        rounding=record.get("rounding") or "nearest",
    )
    if pipeline.versions.get("ranker") != record["ranker_param_version"]:
        raise dg.Failure(
            f"the champion ranker of {partition} is {pipeline.versions.get('ranker')}, serving_model recorded "
            f"{record['ranker_param_version']}: rematerialize serving_model"
        )
    return pipeline


@dg.asset(
    partitions_def=DATASETS,
    group_name=SERVING,
    io_manager_key=DUCKDB,
    deps=["candidate_index", "engagement_events", "raw_interactions", "raw_social"],
    kinds={"jax", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "filters_reaudit",
            asset="served_feeds",
            blocking=True,
            description="every served post re-checked against every filter by independent code: no violation",
        ),
        dg.AssetCheckSpec(
            "explanations_reconcile",
            asset="served_feeds",
            blocking=True,
            description="one terminal state per candidate, n_in = kept + removed, Σ w·p = c, score identities",
        ),
        dg.AssetCheckSpec(
            "feed_length", asset="served_feeds", description="most feeds are full (min(result size, eligible))"
        ),
    ],
)
def served_feeds(
    context: dg.AssetExecutionContext,
    config: ServedFeedsConfig,
    storage: StorageResource,
    serving_model: dict,
):
    """Feeds for a seeded sample of users at their test-split request times, served by the champion
    checkpoints through the pipeline ``x-reco feed`` runs; tables ``served_feed_items``,
    ``feed_ledger`` and ``feed_stage_stats``."""

    partition = context.partition_key
    pipeline = serving_pipeline(storage, partition, serving_model, config.rules, config.weights)
    requests = sample_requests(pipeline, config.num_users, config.requests_per_user, config.seed)
    context.log.info(f"serving {len(requests)} requests of {partition} ({serving_model['variant']} ranker)")
    results = serve_all(pipeline, requests, progress=_progress(context, "request"))
    attributions = {}
    if config.attribute:
        log = _progress(context, "attribution")
        for i, r in enumerate(results):
            if len(r.served):
                attributions[r.query.request.request_id] = pipeline.attribute(r)
            log(i + 1, len(results))
    frames = {"feed_requests": request_table(requests), **feed_frames(pipeline, results, attributions)}
    summary = feed_summary(frames)
    violations = reaudit(frames["served_feed_items"], pipeline.data, pipeline.rules, pipeline.window_s)
    problems, counts = [], {}
    for r in results:
        p, c = reconcile(pipeline, r)
        problems += p
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    output = dg.Output(frames, metadata=_served_metadata(summary, frames, pipeline, funnel_png(frames)))
    reaudited = dg.AssetCheckResult(
        check_name="filters_reaudit",
        passed=len(violations) == 0,
        metadata={
            "served_posts": len(frames["served_feed_items"]),
            "violations": len(violations),
            **{f"violations_{k}": v for k, v in reaudit_summary(violations).items()},
            **({"examples": _md(violations.head(20))} if len(violations) else {}),
        },
    )
    reconciled = dg.AssetCheckResult(
        check_name="explanations_reconcile",
        passed=not problems,
        metadata={
            "requests": len(results),
            "problems": len(problems),
            **{f"ledger_{k}": v for k, v in sorted(counts.items())},
            **({"examples": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]))} if problems else {}),
        },
    )
    full = float(summary.get("full_feed_share", float("nan")))
    length = dg.AssetCheckResult(
        check_name="feed_length",
        passed=bool(full >= 0.5),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"full_feed_share": full, "mean_length": float(summary.get("mean_feed_length", float("nan")))},
    )
    yield from publish_after_audit(context, [output], [reaudited, reconciled, length])


def _served_metadata(summary: dict, frames: dict, pipeline, funnel: bytes) -> dict:
    meta = {}
    for k, v in summary.items():
        if isinstance(v, pd.DataFrame):
            meta[k] = _md(v)
        elif isinstance(v, bool | int | float | str) and not (isinstance(v, float) and not math.isfinite(v)):
            meta[k] = v
    meta["removal_funnel_plot"] = image(funnel, "removals per filter")
    meta["versions"] = dg.MetadataValue.json(
        {
            "checkpoints": dict(sorted(pipeline.versions.items())),
            "variant": pipeline.ranker_model.variant,
            "rules": pipeline.rules.name,
            "weights": repr(pipeline.weights),
        }
    )
    return meta


# -- feed_stakeholder_audit ---------------------------------------------------------------------


class FeedAuditConfig(dg.Config):
    """Weight sets to re-rank under (empty: the partition's default list) and the bootstrap seed."""

    weight_sets: list[str] | None = pydantic.Field(
        None,
        description="weight sets to re-rank the served requests under; unset: the partition's default list "
        "(the syncs, engagement-only, and on a generated world its stakeholders and BT-learned sets)",
    )
    seed: int = pydantic.Field(0, ge=0, description="seed of the bootstrap")
    n_boot: int = pydantic.Field(1000, ge=1, description="bootstrap resamples of each confidence interval")

    @pydantic.model_validator(mode="after")
    def check_fields(self):
        """A bad field fails the run before any work, with the field, its value and what is allowed."""
        for name in self.weight_sets or []:
            WeightSet.named(name)
        return self


def default_weight_sets(partition: str, bt_sets: dict) -> list:
    """The syncs, engagement-only, and on synthetic the stakeholder and BT-learned sets (§16)."""
    names = [n for n in KNOWN_NAMES if n.startswith("sync-") or n in ("published", "engagement-only")]
    names = [n for n in names if n != "published"]  # `published` is the sync of 2026-09-24
    if dataset_spec(partition).generated:  # the world's action-space stakeholders (reward spec §1.3)
        names += [n for n in KNOWN_NAMES if n.startswith("stakeholder:")]
        return names + [bt_sets[k] for k in sorted(bt_sets)]
    return names


@dg.asset(
    partitions_def=DATASETS,
    group_name=SERVING,
    io_manager_key=DUCKDB,
    ins={
        "served_feeds": dg.AssetIn(),
        "serving_model": dg.AssetIn(),
        "stakeholder_utilities": dg.AssetIn(),
        "bt_reward_models": dg.AssetIn(),
        "raw_manifest": dg.AssetIn(),
    },
    kinds={"jax", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "reproduces_served_feeds",
            asset="feed_stakeholder_audit",
            blocking=True,
            description="re-serving the requests under `published` gives the stored feeds, one model call each",
        )
    ],
)
def feed_stakeholder_audit(
    context: dg.AssetExecutionContext,
    config: FeedAuditConfig,
    storage: StorageResource,
    served_feeds: dict,
    serving_model: dict,
    stakeholder_utilities: dict,
    bt_reward_models: dict,
    raw_manifest: dict,
):
    """The requests of ``served_feeds`` re-ranked under every weight set from one model call per request:
    predicted (and, on synthetic, true) utility per stakeholder, overlap with ``published``, in-network
    share, author Gini, negative-action rate and small-author share (§15.3).

    The true utility comes from ``WorldOracle``, the world's engagement model rebuilt from the raw
    manifest's seeds and calibration; the asset does not read ``world_truth``, so the graph keeps
    ground truth upstream of the diagnostics group only (tests/test_definitions.py)."""

    partition = context.partition_key
    items = served_feeds["served_feed_items"]
    rules = str(items["rules"].iloc[0]) if len(items) else DEFAULT_RULES
    pipeline = serving_pipeline(storage, partition, serving_model, rules, "published")
    requests = _stored_requests(pipeline, served_feeds)
    calls = pipeline.scorer.calls
    results = serve_all(pipeline, requests, progress=_progress(context, "request"))
    model_calls = pipeline.scorer.calls - calls
    mismatched = _compare_with_stored(results, items)
    world = dataset_spec(partition).generated  # a generated world has an engagement model to ask
    oracle = WorldOracle.from_manifest(raw_manifest) if world else None
    bt_sets = bt_weight_sets(bt_reward_models["bt_runs"]) if world else {}
    sets = list(config.weight_sets or []) or default_weight_sets(partition, bt_sets)
    sets = [bt_sets.get(s.removeprefix("bt:"), s) if isinstance(s, str) and s.startswith("bt:") else s for s in sets]
    audit = stakeholder_audit(
        pipeline,
        results,
        sets,
        stakeholder_utilities["stakeholder_weights"],
        oracle=oracle,
        seed=config.seed,
        n_boot=config.n_boot,
    )
    assert pipeline.scorer.calls - calls == model_calls, "re-ranking must not call the model"
    table = audit.tables["feed_weightset_audit"]
    figures = {k.removesuffix(".png").replace("/", "__"): image(v, k) for k, v in audit.figures.items()}
    output = dg.Output(
        audit.tables,
        metadata={
            "requests": len(results),
            "weight_sets": len(sets),
            "model_calls": model_calls,
            "audit": _md(table, max_rows=60),
            **figures,
        },
    )
    check = dg.AssetCheckResult(
        passed=not mismatched and model_calls == len(results),
        metadata={
            "requests": len(results),
            "model_calls": model_calls,
            "mismatched_requests": len(mismatched),
            **({"examples": ", ".join(mismatched[:10])} if mismatched else {}),
        },
    )
    yield from publish_after_audit(context, [output], [check])


def request_table(requests) -> pd.DataFrame:
    """The requests in the order they were served (the served log of §12 depends on it)."""
    return pd.DataFrame(
        {
            "order": np.arange(len(requests), dtype=np.int64),
            "request_id": [r.request_id for r in requests],
            "user_id": [r.user_id for r in requests],
            "t": np.array([r.t for r in requests], dtype=np.int64),
            "page": np.array([r.page for r in requests], dtype=np.int64),
        }
    )


def _stored_requests(pipeline, frames: dict) -> list:
    """Rebuild the stored requests, in serving order; refuses a request whose id does not rebuild."""

    out = []
    for row in frames["feed_requests"].sort_values("order").itertuples(index=False):
        req = FeedRequest(pipeline.partition, str(row.user_id), int(row.t), page=int(row.page))
        if req.request_id != row.request_id:
            raise dg.Failure(
                f"request {row.request_id} does not rebuild (got {req.request_id}): stored feeds are stale"
            )
        out.append(req)
    return out


def _compare_with_stored(results, items: pd.DataFrame) -> list[str]:
    stored = items.sort_values(["request_id", "position"]).groupby("request_id")["post_id"].apply(list).to_dict()
    bad = []
    for r in results:
        rid = r.query.request.request_id
        if [str(p) for p in r.served["post_id"]] != stored.get(rid, []):
            bad.append(rid)
    return bad
