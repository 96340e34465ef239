"""Training loops of the Phoenix ranker and retriever: jitted data-parallel steps, Orbax resume, eval.

``train_ranker`` / ``train_retriever`` take engagement sequences (``EngagementSequences``), a
``TrainConfig`` and a run directory. Under the directory: ``train/`` holds the resumable checkpoints
(``resume.py``) and ``model/`` the exported model (``checkpoint.save_checkpoint``). Calling again with
the same directory and config resumes from the latest checkpoint and, on CPU, reproduces the loss
curve of an uninterrupted run bit for bit. One process trains a directory at a time (``lock.run_lock``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.data.batches import retrieval_batch, training_times
from x_reco.data.examples import EngagementSequences, Split
from x_reco.eval.ranker import RETRIEVAL_WEIGHT_GRID, evaluate_ranker, two_stage
from x_reco.eval.retrieval import evaluate_retrieval
from x_reco.features.hashing import HashSpec
from x_reco.models import losses
from x_reco.models.checkpoint import restore_checkpoint, save_checkpoint
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever
from x_reco.models.trunk import Dropouts
from x_reco.training.config import TrainConfig, model_config_for
from x_reco.training.data import step_chunk
from x_reco.training.hard_negatives import HardNegativeBatches
from x_reco.training.lock import run_lock
from x_reco.training.optim import SPARSE, learning_rate_schedule, make_optimizer
from x_reco.training.resume import TrainCheckpoints
from x_reco.training.step import (
    ParamAverage,
    SparseTables,
    data_parallel,
    evaluated_model,
    make_sparse_train_step,
    make_train_step,
    replicate,
    shard_batch,
)

MODEL_DIR = "model"
BEST_DIR = "best"  # validation-best model so far (``TrainConfig.select_best``)
DEFAULT_SELECTION_METRIC = {"ranker": "mean_auc", "retriever": "masked_ndcg@10"}
Progress = Callable[[int, int, float, float, float], None]


@dataclasses.dataclass
class TrainResult:
    """What a training call returns; ``model`` is the trained model (not serialized by ``to_dict``)."""

    model_kind: str
    losses: list[float]  # one per step, from step 1 (resumed runs include the earlier steps)
    val_metrics: dict[str, float]
    eval_history: list[dict[str, float | None]]  # {"step", **val metrics} (NaN stored as None)
    score_spread: list[dict[str, float]]  # score std across candidates at init and after each restore
    wall_time_s: float  # this call, compile, eval and checkpoints included
    train_time_s: float  # this call's step loop
    examples_per_s: float  # this call's steady-state training throughput (first, compiling step excluded)
    checkpoint_path: str  # the exported model (``checkpoint.restore_checkpoint`` reads it)
    step: int
    resumed_from: int | None
    selected_step: int | None = None  # the exported model's step (``select_best``; else ``step``)
    model: nnx.Module | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}


@dataclasses.dataclass(frozen=True)
class _Task:
    kind: str
    model_cls: type[nnx.Module]
    pool_size: int
    make_batch: Callable[[np.ndarray, int], Any]  # (positions into the pool, global step) -> batch
    loss: tuple  # (name in _LOSSES, *static params)
    consts: Any
    evaluate: Callable[[nnx.Module], dict[str, float]]


def train_ranker(
    seqs: EngagementSequences,
    cfg: TrainConfig,
    ckpt_dir: str | Path,
    progress: Progress | None = None,
    retriever: PhoenixRetriever | None = None,
) -> TrainResult:
    """Train a ``PhoenixRanker`` on the train split with multi-action BCE; validate on the val split.

    Validation is ``evaluate_ranker`` (per-action AUC, log loss, calibration against sampled
    negatives) and, given the retriever, the two stages the ranker serves in
    (``eval.ranker.two_stage`` on val: ``two_stage_ranker_ndcg@10`` in the ranker's own order,
    ``two_stage_ndcg@10`` blended with the retriever's score at the val-best ``retrieval_weight`` of
    ``RETRIEVAL_WEIGHT_GRID``, beside ``retrieval_ndcg@10`` on the same candidates), which
    ``selection_metric`` can select on. The exported model's ``val_metrics`` keep the
    ``retrieval_weight`` of its evaluation: the weight it serves with (``eval.ranker.retrieval_weight_of``).

    Args:
      seqs: engagement sequences (``build_sequences`` output).
      cfg: the run's config. ckpt_dir: run directory (resumed if it holds checkpoints of this config).
      progress: optional ``progress(step, total, loss, examples_per_s, eta_s)`` called every step.
      retriever: the trained retriever whose top ``cfg.hard_negative_pool`` items are the hard
        negatives (required when that is > 0 or ``selection_metric`` is a ``two_stage_`` metric).
    """
    rows = seqs.rows(Split.TRAIN)
    b, mask_negatives = cfg.batch_size, cfg.mask_sampled_negative_actions
    make_batch = lambda pos, step: (seqs.batch(rows[pos], b), seqs.labels(rows[pos], b, mask_negatives))  # noqa: E731
    if retriever is None and cfg.needs_retriever:
        raise ValueError(
            f"hard_negative_pool={cfg.hard_negative_pool}, selection_metric={cfg.selection_metric!r} "
            "needs the trained retriever (retriever=...)"
        )
    if cfg.hard_negative_pool:
        make_batch = HardNegativeBatches(seqs, rows, cfg, retriever)

    def evaluate(model: PhoenixRanker) -> dict[str, float]:
        val = evaluate_ranker(model, seqs, Split.VAL, seed=cfg.seed, batch_size=cfg.eval_batch_size)
        if retriever is not None:
            two = two_stage(
                retriever,
                model,
                seqs,
                Split.VAL,
                catalogue_window_s=cfg.negative_window_s,
                retrieval_weights=RETRIEVAL_WEIGHT_GRID,
            )
            val.update(two)
        return val

    task = _Task("ranker", PhoenixRanker, len(rows), make_batch, ("ranker_bce", cfg.listwise_weight), None, evaluate)
    return _fit(task, seqs, cfg, ckpt_dir, progress)


def train_retriever(
    seqs: EngagementSequences, cfg: TrainConfig, ckpt_dir: str | Path, progress: Progress | None = None
) -> TrainResult:
    """Train a ``PhoenixRetriever`` two-tower model on the train split's (example, engaged item) pairs.

    Full softmax over the catalogue (candidate tower recomputed for every item each step) when
    ``cfg.use_full_softmax(N)``, else in-batch negatives with logQ correction. With
    ``cfg.negative_window_s`` both are time-aware: a pair's negatives are the items a feed could
    serve at its request time. Validation is leave-one-out ranking on the val split over the full
    catalogue (or that windowed one). Arguments as ``train_ranker``.
    """
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    num_items = seqs.num_items
    b, window_s, causal = cfg.batch_size, cfg.negative_window_s, cfg.retrieval_positions == "all"
    if window_s is None:
        request, created, window, history_times = None, None, None, None
    else:
        request, created, window, history_times = training_times(seqs, window_s)
    # the causal objective and the repeat term score every catalogue item (in-batch negatives have no history)
    repeat = model_config_for(cfg, seqs).repeat_logit
    needs_full = [name for name, on in (("retrieval_positions='all'", causal), ("repeat_logit", repeat)) if on]
    if cfg.use_full_softmax(num_items):
        loss = ("causal_softmax" if causal else "full_softmax", cfg.temperature, window, _rates(cfg))
        consts = (seqs.catalogue.post_hashes.astype(np.int32), seqs.catalogue.author_hashes.astype(np.int32), created)
    elif needs_full:
        raise ValueError(
            f"{' and '.join(needs_full)} trains with the full softmax, but the catalogue has {num_items} items "
            f"> full_softmax_max_items={cfg.full_softmax_max_items}; raise it or set retrieval_loss='full'"
        )
    else:
        loss = ("sampled_softmax", cfg.temperature, window, _rates(cfg))
        consts = (losses.item_log_q(items, num_items, b), created)
    evaluate = functools.partial(
        evaluate_retrieval, seqs=seqs, split=Split.VAL, batch_size=cfg.eval_batch_size, catalogue_window_s=window_s
    )
    task = _Task(
        "retriever",
        PhoenixRetriever,
        len(rows),
        lambda pos, step: _with_dropout(
            retrieval_batch(seqs, rows[pos], items[pos], b, request, causal, history_times), cfg, step
        ),
        loss,
        consts,
        evaluate,
    )
    return _fit(task, seqs, cfg, ckpt_dir, progress)


# -- model-level losses: loss(model, batch, consts, *params) -> (loss, score spread) ---------------
# The spread (std of scores across a row's candidates, phoenix spec §12 row 21) is recorded at the
# first step of every call, i.e. for the freshly initialised or restored parameters.
def _ranker_bce(model: PhoenixRanker, batch, consts, listwise_weight: float = 0.0):
    del consts
    rb, labels = batch
    out = model(rb)
    args = (out.logits_bca, labels.candidate_actions, labels.candidate_mask, labels.label_mask)
    loss = losses.ranker_bce(*args)
    if listwise_weight:
        loss = loss + listwise_weight * losses.listwise_softmax(*args)
    return loss, jnp.mean(jnp.std(out.logits_bca, axis=1))


def _rates(cfg: TrainConfig) -> tuple[float, float]:
    return (cfg.dropout, cfg.residual_dropout)


def _with_dropout(rb, cfg: TrainConfig, step: int):
    """``rb`` with each row's dropout seed, a pure function of (seed, step, row), when the run uses dropout."""
    if not any(_rates(cfg)):
        return rb
    seeds = np.random.default_rng([cfg.seed, 0xD0, step]).integers(0, 2**32, size=rb.item_b.shape[0], dtype=np.uint32)
    return rb.replace(dropout_seed_b=seeds)


def _dropout(rb, rates: tuple[float, float]) -> Dropouts | None:
    return Dropouts(rb.dropout_seed_b, *rates) if any(rates) else None


def _full_softmax(
    model: PhoenixRetriever, rb, consts, temperature: float, window: int | None, rates: tuple[float, float] = (0.0, 0.0)
):
    post_nh, author_nh, created_n = consts
    h_bpd, valid_bp = model.user_sequence(rb.batch, dropout=_dropout(rb, rates))
    items_nd, user_bd = model.encode_items(post_nh, author_nh), model.pool_user(h_bpd, valid_bp)
    eligible = None if window is None else losses.eligible_in_window(rb.request_b, created_n, window)
    repeats = model.history_repeats(rb.batch, post_nh)
    loss = losses.full_softmax_loss(user_bd, items_nd, rb.item_b, rb.row_mask_b, temperature, eligible, repeats)
    return loss, jnp.mean(jnp.std(user_bd @ items_nd.T, axis=1))


def _causal_softmax(
    model: PhoenixRetriever, rb, consts, temperature: float, window: int | None, rates: tuple[float, float] = (0.0, 0.0)
):
    """Every valid prefix position predicts its next item (``batches.next_items``) against the catalogue."""
    post_nh, author_nh, created_n = consts
    items_nd = model.encode_items(post_nh, author_nh)
    users_bpd, valid_bp = model.prefix_users(rb.batch, dropout=_dropout(rb, rates))
    b, p, d = users_bpd.shape
    target_bp = rb.next_item_bp
    keep_bp = valid_bp & (target_bp >= 0) & rb.row_mask_b[:, None]
    eligible = None
    if window is not None:
        eligible = losses.eligible_in_window(rb.next_request_bp.reshape(-1), created_n, window)
    repeats = model.history_repeats(rb.batch, post_nh, prefix=True)
    loss = losses.full_softmax_loss(
        users_bpd.reshape(b * p, d),
        items_nd,
        jnp.maximum(target_bp, 0).reshape(-1),
        keep_bp.reshape(-1),
        temperature,
        eligible,
        None if repeats is None else repeats.reshape(b * p, -1),
    )
    return loss, jnp.mean(jnp.std(users_bpd[:, 0] @ items_nd.T, axis=1))


def _sampled_softmax(
    model: PhoenixRetriever, rb, consts, temperature: float, window: int | None, rates: tuple[float, float] = (0.0, 0.0)
):
    log_q_n, created_n = consts
    h_bpd, valid_bp = model.user_sequence(rb.batch, dropout=_dropout(rb, rates))
    positive_bd, user_bd = model.encode_candidates(rb.batch)[:, 0], model.pool_user(h_bpd, valid_bp)
    eligible = None if window is None else losses.eligible_in_window(rb.request_b, created_n[rb.item_b], window)
    loss = losses.sampled_softmax_loss(
        user_bd, positive_bd, rb.item_b, log_q_n[rb.item_b], rb.row_mask_b, temperature, eligible
    )
    return loss, jnp.mean(jnp.std(user_bd @ positive_bd.T, axis=1))


_LOSSES = {
    "ranker_bce": _ranker_bce,
    "full_softmax": _full_softmax,
    "causal_softmax": _causal_softmax,
    "sampled_softmax": _sampled_softmax,
}


# -- which hashes each loss gathers, for the sparse table update (step.SparseTables) ------------
def _recsys_ids(rb: RecsysBatch) -> dict[str, jax.Array]:
    cat = lambda a, b: jnp.concatenate([a.reshape(-1), b.reshape(-1)])  # noqa: E731
    return {
        "user": rb.user_hashes.reshape(-1),
        "post": cat(rb.history_post_hashes, rb.candidate_post_hashes),
        "author": cat(rb.history_author_hashes, rb.candidate_author_hashes),
    }


def _recsys_remap(rb: RecsysBatch, f) -> RecsysBatch:
    return rb.replace(
        user_hashes=f("user", rb.user_hashes),
        history_post_hashes=f("post", rb.history_post_hashes),
        candidate_post_hashes=f("post", rb.candidate_post_hashes),
        history_author_hashes=f("author", rb.history_author_hashes),
        candidate_author_hashes=f("author", rb.candidate_author_hashes),
    )


def _full_softmax_ids(rb, consts):
    ids = _recsys_ids(rb.batch)
    ids["post"] = jnp.concatenate([ids["post"], consts[0].reshape(-1)])
    ids["author"] = jnp.concatenate([ids["author"], consts[1].reshape(-1)])
    return ids


_FULL_SOFTMAX_TABLES = SparseTables(
    _full_softmax_ids,
    lambda b, c, f: (b.replace(batch=_recsys_remap(b.batch, f)), (f("post", c[0]), f("author", c[1]), c[2])),
)
_SPARSE_TABLES = {
    "ranker_bce": SparseTables(lambda b, c: _recsys_ids(b[0]), lambda b, c, f: ((_recsys_remap(b[0], f), b[1]), c)),
    "full_softmax": _FULL_SOFTMAX_TABLES,
    "causal_softmax": _FULL_SOFTMAX_TABLES,
    "sampled_softmax": SparseTables(
        lambda b, c: _recsys_ids(b.batch), lambda b, c, f: (b.replace(batch=_recsys_remap(b.batch, f)), c)
    ),
}


@dataclasses.dataclass(frozen=True, eq=False)
class _NotInKey:
    """Carries a value through ``functools.lru_cache`` without taking part in the key."""

    value: Any

    def __eq__(self, other) -> bool:
        return isinstance(other, _NotInKey)

    def __hash__(self) -> int:
        return 0


def _train_step(graphdef, task: _Task, cfg: TrainConfig, model_config, dp):
    """The jitted step, reused across calls with the same configs (graphdefs differ only in optax closures)."""
    return _cached_train_step(task.loss, cfg.to_json(), model_config.to_json(), dp, _NotInKey((graphdef, cfg)))


@functools.lru_cache(maxsize=4)
def _cached_train_step(loss: tuple, cfg_json: str, model_json: str, dp, carried: _NotInKey):
    graphdef, cfg = carried.value
    name, *params = loss
    loss_fn = functools.partial(lambda f, p, m, b, c: f(m, b, c, *p), _LOSSES[name], tuple(params))
    if cfg.table_optimizer == SPARSE:
        table_lr = learning_rate_schedule(cfg, cfg.table_learning_rate)
        return make_sparse_train_step(graphdef, loss_fn, dp, _SPARSE_TABLES[name], table_lr, cfg.clip_norm)
    return make_train_step(graphdef, loss_fn, dp)


def _build(task: _Task, model_config, cfg: TrainConfig, warm_start: bool = False) -> tuple[nnx.Module, ...]:
    """``(model, optimizer)``, plus the ``ParamAverage`` with ``cfg.ema_decay``; with ``warm_start`` the
    model (and so the average) starts from ``cfg.init_checkpoint``."""
    model = task.model_cls(model_config, rngs=nnx.Rngs(params=cfg.seed))
    if warm_start:
        _warm_start(model, cfg.init_checkpoint, task)
    average = (ParamAverage(model, cfg.ema_decay),) if cfg.ema_decay else ()
    return (model, make_optimizer(model, cfg), *average)


def _warm_start(model: nnx.Module, path: str, task: _Task) -> None:
    """Copy the parameters of the exported model at ``path`` into ``model`` (same kind and shapes)."""
    source, _ = restore_checkpoint(path)
    if not isinstance(source, task.model_cls):
        raise ValueError(f"init_checkpoint {path} is a {type(source).__name__}, this run trains a {task.kind}")
    want = jax.tree.map(lambda a: (a.shape, a.dtype), nnx.state(model, nnx.Param))
    have = jax.tree.map(lambda a: (a.shape, a.dtype), nnx.state(source, nnx.Param))
    if want != have:
        raise ValueError(f"init_checkpoint {path} has other parameter shapes than this run's {task.kind} config")
    nnx.update(model, nnx.state(source, nnx.Param))


def _new_record(task: _Task, seqs, cfg: TrainConfig, model_config) -> dict[str, Any]:
    return {
        "model_kind": task.kind,
        "step": 0,
        "losses": [],
        "eval_history": [],
        "score_spread": [],
        "train_config": json.loads(cfg.to_json()),
        "model_config": json.loads(model_config.to_json()),
        "hash_spec": seqs.hash_spec.to_dict(),
        "seeds": {"params": cfg.seed, "data_order": cfg.seed},
        "partition": seqs.partition,
        # bitwise GPU reproducibility needs --xla_gpu_deterministic_ops=true (phoenix spec §13)
        "platform": jax.default_backend(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _check_resumable(record: dict[str, Any], task: _Task, seqs, cfg: TrainConfig, ckpt_dir) -> None:
    """A run directory resumes only with the same model kind, config and data HashSpec."""
    saved = HashSpec.from_dict(record["hash_spec"])
    seqs.hash_spec.check_compatible(saved, where=f"between data and run {ckpt_dir}")
    if record["model_kind"] != task.kind:
        raise ValueError(f"run {ckpt_dir} holds a {record['model_kind']} run, not {task.kind}")
    if record["train_config"] != json.loads(cfg.to_json()):
        raise ValueError(f"run {ckpt_dir} was started with a different TrainConfig: {record['train_config']}")


def _fit(task: _Task, seqs, cfg: TrainConfig, ckpt_dir: str | Path, progress: Progress | None) -> TrainResult:
    with run_lock(ckpt_dir):  # a second trainer of this directory fails here, not inside Orbax
        return _fit_locked(task, seqs, cfg, ckpt_dir, progress)


def _fit_locked(task: _Task, seqs, cfg: TrainConfig, ckpt_dir: str | Path, progress: Progress | None) -> TrainResult:
    t_call = time.perf_counter()
    dp = data_parallel()
    if cfg.batch_size % dp.num_devices:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by {dp.num_devices} devices")
    if task.pool_size == 0:
        raise ValueError(f"no training examples for the {task.kind}")
    model_config = model_config_for(cfg, seqs)
    ckpts = TrainCheckpoints(ckpt_dir, cfg.keep_checkpoints)
    resumed_from = ckpts.latest_step()
    if resumed_from is None:
        graphdef, state = nnx.split(_build(task, model_config, cfg, warm_start=bool(cfg.init_checkpoint)))
        record = _new_record(task, seqs, cfg, model_config)
    else:
        graphdef, abstract = nnx.split(nnx.eval_shape(lambda: _build(task, model_config, cfg)))
        state, record = ckpts.restore(resumed_from, abstract, dp.replicated)
        _check_resumable(record, task, seqs, cfg, ckpt_dir)
    state = replicate(state, dp)
    step_fn = _train_step(graphdef, task, cfg, model_config, dp)
    consts = replicate(task.consts, dp)
    meter = _Meter(cfg.batch_size, cfg.num_steps, record["step"])
    last_step = record["step"] if record.get("stopped_early") else cfg.num_steps
    for step in range(record["step"], last_step):
        batch = shard_batch(task.make_batch(step_chunk(task.pool_size, cfg.batch_size, cfg.seed, step), step), dp)
        state, loss, spread = step_fn(state, batch, consts)
        record["losses"].append(float(loss))
        if step == meter.start_step:
            record["score_spread"].append({"step": step, "std_across_candidates": float(spread)})
        record["step"] = done = step + 1
        meter.tick(done)
        if progress is not None:
            progress(done, cfg.num_steps, record["losses"][-1], meter.examples_per_s, meter.eta_s(done))
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.num_steps:
            model = evaluated_model(nnx.merge(graphdef, state))
            val = task.evaluate(model)
            record["eval_history"].append({"step": done, **_jsonable(val)})
            if _beats_best(record, task, cfg, val):
                _save_best(record, task, cfg, model, val, done, ckpt_dir)
            record["stopped_early"] = _patience_spent(record, cfg)
        stop = record.get("stopped_early", False)
        if cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.num_steps or stop):
            ckpts.save(done, state, record)
        if stop:
            break
    train_time = meter.elapsed
    model = evaluated_model(nnx.merge(graphdef, state))
    val = task.evaluate(model)
    if not record["eval_history"] or record["eval_history"][-1]["step"] != record["step"]:
        record["eval_history"].append({"step": record["step"], **_jsonable(val)})
    ckpts.close()
    selected = record["step"]
    if cfg.select_best and record.get("best") and not _beats_best(record, task, cfg, val):  # an earlier step won
        selected = record["best"]["step"]
        model, meta = restore_checkpoint(Path(ckpt_dir) / BEST_DIR)
        val = {k: (float("nan") if v is None else v) for k, v in meta["extra"]["val_metrics"].items()}
    path = Path(ckpt_dir) / MODEL_DIR
    extra = {k: record[k] for k in ("train_config", "partition", "platform", "xla_flags")}
    extra.update(
        val_metrics=_jsonable(val), trained_steps=record["step"], stopped_early=bool(record.get("stopped_early"))
    )
    save_checkpoint(path, model, step=selected, seeds=record["seeds"], extra=extra)
    return TrainResult(
        model_kind=task.kind,
        losses=list(record["losses"]),
        val_metrics=val,
        eval_history=list(record["eval_history"]),
        score_spread=list(record["score_spread"]),
        wall_time_s=time.perf_counter() - t_call,
        train_time_s=train_time,
        examples_per_s=meter.examples_per_s,
        checkpoint_path=str(path),
        step=record["step"],
        resumed_from=resumed_from,
        model=model,
        selected_step=selected,
    )


def _selection_value(task: _Task, cfg: TrainConfig, val: dict[str, float]) -> tuple[str, float]:
    name = cfg.selection_metric or DEFAULT_SELECTION_METRIC[task.kind]
    if name not in val:
        raise ValueError(f"selection_metric {name!r} is not a validation metric of the {task.kind}: {sorted(val)}")
    return name, float(val[name])


def _beats_best(record, task: _Task, cfg: TrainConfig, val: dict[str, float]) -> bool:
    """With ``cfg.select_best``: ``val`` beats the best evaluation so far (``record["best"]``; ties
    keep the earlier step). The record travels through checkpoints, so a resumed run selects the same."""
    if not cfg.select_best:
        return False
    _, value = _selection_value(task, cfg, val)
    best = record.get("best")
    return bool(np.isfinite(value)) and (best is None or value > best["value"])


def _patience_spent(record, cfg: TrainConfig) -> bool:
    """``cfg.early_stopping_patience`` evaluations in a row came after the best one without beating it."""
    if not cfg.early_stopping_patience or not record.get("best"):
        return False
    since = [e for e in record["eval_history"] if e["step"] > record["best"]["step"]]
    return len(since) >= cfg.early_stopping_patience


def _save_best(record, task: _Task, cfg: TrainConfig, model, val: dict[str, float], step: int, ckpt_dir) -> None:
    """Keep ``model`` under ``BEST_DIR`` (atomic) and note it in the record."""
    name, value = _selection_value(task, cfg, val)
    extra = {"val_metrics": _jsonable(val), "train_config": record["train_config"]}
    save_checkpoint(Path(ckpt_dir) / BEST_DIR, model, step=step, seeds=record["seeds"], extra=extra)
    record["best"] = {"step": step, "metric": name, "value": value}


def _jsonable(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if np.isfinite(v) else None) for k, v in metrics.items()}


class _Meter:
    """Steady-state throughput: timing starts after this call's first (compiling) step."""

    def __init__(self, batch_size: int, total: int, start_step: int):
        self.batch_size, self.total, self.start_step = batch_size, total, start_step
        self.t0 = self.t_last = time.perf_counter()
        self.t_first: float | None = None
        self.steps_after_first = 0

    def tick(self, done: int) -> None:
        self.t_last = time.perf_counter()
        if self.t_first is None:
            self.t_first = self.t_last
        else:
            self.steps_after_first = done - self.start_step - 1

    @property
    def elapsed(self) -> float:
        return self.t_last - self.t0

    @property
    def examples_per_s(self) -> float:
        if not self.steps_after_first:
            return 0.0
        return self.steps_after_first * self.batch_size / max(self.t_last - self.t_first, 1e-9)

    def eta_s(self, done: int) -> float:
        rate = self.examples_per_s / self.batch_size
        return (self.total - done) / rate if rate > 0 else float("nan")
