"""Quality job of the benchmark: every serving variant against ``ref-f32`` on the same source params (spec §5.6).

Quality runs on a trained checkpoint (``QualityJob.trained``: the users are cut from its engagement
sequences in the parent) when one is given, else on the random-init benchmark source of a preset,
labelled "random-init, not gated".
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np

from x_reco.bench.quality_metrics import VacuousReference, quality_block
from x_reco.bench.timing import VariantSpec, build_variant, variant_spec
from x_reco.bench.workload import bench_config, bench_source, synthetic_user_batch
from x_reco.common.types import RecsysBatch
from x_reco.data.examples import EngagementSequences
from x_reco.eval.ranker import objective_weights
from x_reco.features.hashing import HashSpec
from x_reco.inference.calibrate import CALIBRATION_USERS, calibration_requests, input_moments
from x_reco.inference.engine import aot_compile, make_score_fn, memory_analysis, to_device
from x_reco.inference.params import ServingModel, bytes_by_dtype, serving_model, total_bytes
from x_reco.inference.requests import checkpoint_users
from x_reco.models.checkpoint import restore_checkpoint

# w8+t8 computes in bf16 (the accelerator path); w8+t8-f32 is the same int8 state computed in f32, as a
# feed serves it on a CPU (the trained configs compute in f32); -cal rounds the weights calibrated.
QUALITY_VARIANTS = ("dense", "split", "bf16w", "w8", "t8", "w8+t8", "w8+t8-f32", "w8+t8-cal", "w8+t8-cal-f32")


@dataclasses.dataclass(frozen=True)
class QualityJob:
    """Quality blocks of ``variants`` vs ref-f32: on the random-init source of ``preset`` (synthetic users),
    or on a trained ``checkpoint`` with ``batch`` (host numpy, every candidate valid) hashed by ``hash_spec``."""

    kind: ClassVar[str] = "quality"
    preset: str | None = "oss-mini"
    users: int = 200
    candidates: int = 1000
    variants: tuple[str | VariantSpec, ...] = QUALITY_VARIANTS
    users_per_call: int = 8
    seed: int = 0
    table_rows: int | None = None
    source_cache: str | None = None
    checkpoint: str | None = None
    hash_spec: HashSpec | None = None
    batch: RecsysBatch | None = None
    sequences: str | None = None  # where the trained users came from, for the record
    objective: str | None = None  # the partition whose objective weights score candidates (None: published)
    calibration_users: int = CALIBRATION_USERS  # requests (not the judged ones) the -cal variants round against
    calibration_batch: RecsysBatch | None = None  # a trained job's calibration requests (train split)
    moments: Mapping[str, np.ndarray] | None = None  # calibration already computed (the served ranker's)

    def __post_init__(self):
        if self.checkpoint is None and self.preset is None:
            raise ValueError("a quality job needs a preset or a checkpoint")
        if self.checkpoint is not None and (self.hash_spec is None or self.batch is None):
            raise ValueError("a checkpoint quality job needs hash_spec and batch (use QualityJob.trained)")

    @classmethod
    def trained(
        cls,
        checkpoint: str | Path,
        sequences: EngagementSequences | str | Path,
        *,
        users: int = 200,
        candidates: int = 1000,
        seed: int = 0,
        **kwargs,
    ) -> QualityJob:
        """A checkpoint job whose users (one per distinct user, ``checkpoint_users``) come from ``sequences``,
        an ``EngagementSequences`` value or its ``.npz`` path, scored by the weighted score the ranker
        serves on that partition (``eval.ranker.objective_weights``: the published weights where every
        action is observed, only the observed heads elsewhere)."""
        label = None if isinstance(sequences, EngagementSequences) else str(sequences)
        seqs = sequences if isinstance(sequences, EngagementSequences) else EngagementSequences.from_npz(sequences)
        batch = checkpoint_users(seqs, users, candidates, seed=seed)
        calibration = None  # built only where a -cal variant will round against it
        if kwargs.get("moments") is None and any(_spec(v).calibrated for v in kwargs.get("variants", cls.variants)):
            n_cal = kwargs.get("calibration_users", cls.calibration_users)
            calibration = calibration_requests(seqs, n_cal, candidates, seed=seed + 1)
        return cls(
            preset=None,
            users=users,
            candidates=candidates,
            seed=seed,
            checkpoint=str(checkpoint),
            hash_spec=seqs.hash_spec,
            batch=batch,
            sequences=label,
            calibration_batch=calibration,
            **{"objective": seqs.partition, **kwargs},
        )

    def run(self) -> list[dict]:
        return run_quality(self)


def _spec(variant: str | VariantSpec) -> VariantSpec:
    return variant if isinstance(variant, VariantSpec) else variant_spec(variant)


def _rows(batch: RecsysBatch, start: int, stop: int) -> RecsysBatch:
    return jax.tree.map(lambda x: np.asarray(x)[start:stop], batch)


def score_users(sm: ServingModel, spec, batch: RecsysBatch, users_per_call: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Logits [U, N, A] and weighted scores [U, N] of every user, in fixed-size calls (one compile)."""
    u = batch.batch_size
    pad = -u % users_per_call
    if pad:
        batch = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]), batch)
    fn = make_score_fn(sm, "dense" if spec.path == "dense" else "split")
    params = to_device(sm.params)
    compiled, _ = aot_compile(fn, params, _rows(batch, 0, users_per_call), precision=spec.precision)
    logits, scores = [], []
    for start in range(0, u + pad, users_per_call):
        out = compiled(params, jax.device_put(_rows(batch, start, start + users_per_call)))
        logits.append(np.asarray(out.logits_bca))
        scores.append(np.asarray(out.score_bc))
    return np.concatenate(logits)[:u], np.concatenate(scores)[:u], memory_analysis(compiled) or {}


def _source(job: QualityJob) -> tuple[ServingModel, RecsysBatch, dict]:
    if job.checkpoint:
        model, meta = restore_checkpoint(job.checkpoint, hash_spec=job.hash_spec)
        weights = objective_weights(job.objective) if job.objective else None
        with jax.default_device(jax.devices("cpu")[0]):
            source = serving_model(model, param_version=meta["param_version"], weight_set=weights)
        source = source.replace(state=jax.tree.map(np.asarray, source.state))
        info = {
            "trained": True,
            "checkpoint": job.checkpoint,
            "sequences": job.sequences,
            "step": meta.get("step"),
            "param_version": meta.get("param_version"),
            "score_weights": (weights.name if weights else "published"),
        }
        return source, job.batch, info
    cfg = bench_config(job.preset, job.table_rows)
    source = bench_source(cfg, root=job.source_cache)
    batch = synthetic_user_batch(cfg, job.users, cfg.history_len, job.candidates, seed=job.seed)
    return source, batch, {"trained": False, "preset": job.preset}


def _calibration_batch(job: QualityJob, source: ServingModel) -> RecsysBatch:
    """Requests the ``-cal`` variants round against: a trained job's train-split requests, else seeded
    synthetic users other than the judged ones (seed + 1)."""
    if job.calibration_batch is not None:
        return job.calibration_batch
    if job.checkpoint:
        raise ValueError("a checkpoint quality job with -cal variants needs calibration requests (QualityJob.trained)")
    cfg = source.config
    return synthetic_user_batch(cfg, job.calibration_users, cfg.history_len, job.candidates, seed=job.seed + 1)


def run_quality(job: QualityJob) -> list[dict]:
    """Quality blocks of every variant against ref-f32 on the same source params and users."""
    source, batch, info = _source(job)
    ref_spec = variant_spec("ref-f32")
    ref_logits, ref_score, _ = score_users(build_variant(source, ref_spec), ref_spec, batch, job.users_per_call)
    f32_bytes = total_bytes(source.params)
    calibration, n_calibration = None, 0
    specs = [_spec(v) for v in job.variants]
    if job.moments is not None:
        calibration, n_calibration = dict(job.moments), job.calibration_users
    elif any(spec.calibrated for spec in specs):
        t0 = time.perf_counter()
        requests = _calibration_batch(job, source)
        calibration, n_calibration = input_moments(source, requests, job.users_per_call), requests.batch_size
        print(f"[quality] calibration: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    records = []
    for spec in specs:
        name = spec.name
        sm = build_variant(source, spec, calibration)
        t0 = time.perf_counter()
        logits, score, mem = score_users(sm, spec, batch, job.users_per_call)
        try:
            block = quality_block(
                ref_logits, logits, ref_score, score, sm.config.output_action_names, trained=info["trained"]
            )
        except VacuousReference as err:
            block = {"aborted": str(err)}
        print(f"[quality] {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        records.append(
            {
                "kind": "quality",
                "variant": name,
                "format": sm.variant,
                **info,
                "source_param_digest": sm.source_param_digest,
                "config_digest": sm.config.digest(),
                "S": batch.num_history,
                "N": batch.num_candidates,
                "quality": block,
                "param_bytes": bytes_by_dtype(sm.params),
                "bytes_total": total_bytes(sm.params),
                "bytes_ratio_vs_f32": total_bytes(sm.params) / f32_bytes,
                "memory_analysis": mem,
                "quantized": list(sm.quantized),
                "rounding": "calibrated" if spec.calibrated else "nearest",
                "calibration_users": n_calibration if spec.calibrated else 0,
                "excluded": [list(e) for e in sm.excluded],
            }
        )
    return records
