"""Optimizer of a Phoenix training run: clipped AdamW with warmup-cosine schedule (phoenix spec §13).

Weight decay applies to matrices only: never to norm scales (1-D) nor to the hash tables. Tables are
``HashTable`` variables, not ``nnx.Param``, so the optimizer is built with ``wrt=TRAINABLE``. Their
row 0 (padding) gets an exactly-zero gradient and no decay, so AdamW or row-wise Adagrad leave it 0.

``table_optimizer="sparse_rowwise_adagrad"`` is the large-table option (spec §13): a
``SparseOptimizer`` whose dense part sees ``nnx.Param`` only, plus one row-wise Adagrad accumulator
per table row. The train step (``step.make_sparse_train_step``) differentiates w.r.t. the rows a
batch gathers and updates only those (``sparse_table_update``); no [V, D] gradient or moment exists.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from x_reco.layers.embed import HashTable
from x_reco.training.config import TrainConfig

TRAINABLE = nnx.Any(nnx.Param, HashTable)
TABLES_KEY = "tables"


def _top_key(path) -> str:
    return str(getattr(path[0], "key", path[0])) if path else ""


def param_labels(params: Any) -> Any:
    """ "table" for hash tables, "decay" for matrices, "no_decay" for vectors (norm scales)."""

    def label(path, leaf):
        if _top_key(path) == TABLES_KEY:
            return "table"
        return "decay" if jnp.ndim(leaf) >= 2 else "no_decay"

    return jax.tree_util.tree_map_with_path(label, params)


def learning_rate_schedule(cfg: TrainConfig, peak: float | None = None) -> optax.Schedule:
    """Linear warmup from 0 to ``peak`` then cosine decay to ``end_lr_fraction * peak`` at ``num_steps``."""
    peak = cfg.learning_rate if peak is None else peak
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=cfg.warmup_steps,
        decay_steps=cfg.num_steps,
        end_value=peak * cfg.end_lr_fraction,
    )


INITIAL_ACCUMULATOR = 0.1
ADAGRAD_EPS = 1e-10


def adagrad_rows(grad_kd: jax.Array, acc_k: jax.Array, lr, eps: float = ADAGRAD_EPS) -> tuple[jax.Array, jax.Array]:
    """One row-wise Adagrad step on K rows: ``acc += mean_d(g^2)``; update ``-lr g / sqrt(acc)``.

    Returns (update [K, D], new accumulator [K]); a row with zero gradient gets a zero update.
    """
    acc_k = acc_k + jnp.mean(jnp.square(grad_kd), axis=-1)
    return -lr * grad_kd * jax.lax.rsqrt(acc_k + eps)[:, None], acc_k


class RowwiseAdagradState(NamedTuple):
    accumulator: Any  # one f32 accumulator per table row: [V] per table


def rowwise_adagrad(
    learning_rate: optax.ScalarOrSchedule, initial_accumulator: float = INITIAL_ACCUMULATOR, eps: float = ADAGRAD_EPS
):
    """Row-wise Adagrad for [V, D] tables: one accumulator per row, ``acc += mean_d(g^2)``.

    Rows without gradient (every untouched row, and row 0 always) get no update.
    """

    def init_fn(params):
        acc = jax.tree.map(lambda p: jnp.full(p.shape[:1], initial_accumulator, jnp.float32), params)
        return optax.ScaleByScheduleState(jnp.zeros([], jnp.int32)), RowwiseAdagradState(acc)

    def update_fn(updates, state, params=None):
        del params
        count_state, acc_state = state
        lr = learning_rate(count_state.count) if callable(learning_rate) else learning_rate
        grads, treedef = jax.tree.flatten(updates)
        steps = [adagrad_rows(g, a, lr, eps) for g, a in zip(grads, treedef.flatten_up_to(acc_state.accumulator))]
        updates, acc = treedef.unflatten([u for u, _ in steps]), treedef.unflatten([a for _, a in steps])
        return updates, (optax.ScaleByScheduleState(optax.safe_increment(count_state.count)), RowwiseAdagradState(acc))

    return optax.GradientTransformation(init_fn, update_fn)


_ADAM = dict(b1=0.9, b2=0.999, eps=1e-8)


def _dense_tx(cfg: TrainConfig) -> dict[str, optax.GradientTransformation]:
    """AdamW for the "decay" (matrices) and "no_decay" (norm scales) labels of ``param_labels``."""
    dense_lr = learning_rate_schedule(cfg)
    return {
        "decay": optax.adamw(dense_lr, weight_decay=cfg.weight_decay, **_ADAM),
        "no_decay": optax.adamw(dense_lr, weight_decay=0.0, **_ADAM),
    }


def make_tx(cfg: TrainConfig) -> optax.GradientTransformation:
    """clip_by_global_norm -> {AdamW with decay on matrices | AdamW, no decay | table optimizer}."""
    if cfg.table_optimizer == SPARSE:
        raise ValueError("sparse_rowwise_adagrad has no single optax transform; use make_optimizer")
    table_lr = learning_rate_schedule(cfg, cfg.table_learning_rate)
    if cfg.table_optimizer == "rowwise_adagrad":
        table_tx = rowwise_adagrad(table_lr)
    else:
        table_tx = optax.adamw(table_lr, weight_decay=0.0, **_ADAM)
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.multi_transform({**_dense_tx(cfg), "table": table_tx}, param_labels),
    )


SPARSE = "sparse_rowwise_adagrad"
TABLE_NAMES = ("user", "post", "author")


class RowAccumulator(nnx.Variable):
    """Row-wise Adagrad accumulator [V] of one hash table (optimizer state, never trained)."""


class TableStep(nnx.Variable):
    """Number of sparse table updates so far (drives the table learning-rate schedule)."""


class SparseOptimizer(nnx.Module):
    """Dense AdamW over ``nnx.Param`` (no clipping: the step clips jointly with the table rows) and
    the row-wise Adagrad state of the three hash tables."""

    def __init__(self, model: nnx.Module, cfg: TrainConfig):
        self.dense = nnx.Optimizer(model, optax.multi_transform(_dense_tx(cfg), param_labels), wrt=nnx.Param)
        for name in TABLE_NAMES:
            rows = getattr(model.tables, name)[...].shape[0]
            setattr(self, f"acc_{name}", RowAccumulator(jnp.full((rows,), INITIAL_ACCUMULATOR, jnp.float32)))
        self.table_step = TableStep(jnp.zeros([], jnp.int32))


def sparse_table_update(
    table_vd: jax.Array, acc_v: jax.Array, rows_k: jax.Array, grad_kd: jax.Array, lr: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Row-wise Adagrad on rows ``rows_k`` only: ``acc += mean_d(g^2)``, ``row -= lr g / sqrt(acc)``.

    ``rows_k`` holds distinct row ids; entries >= V (padding of a fixed-size unique) are dropped. The
    same arithmetic as ``rowwise_adagrad`` on the dense gradient, whose other rows are zero.
    """
    acc_k = acc_v.at[rows_k].get(mode="fill", fill_value=INITIAL_ACCUMULATOR)
    delta_kd, acc_k = adagrad_rows(grad_kd, acc_k, lr, ADAGRAD_EPS)
    return table_vd.at[rows_k].add(delta_kd, mode="drop"), acc_v.at[rows_k].set(acc_k, mode="drop")


def make_optimizer(model: nnx.Module, cfg: TrainConfig) -> nnx.Optimizer | SparseOptimizer:
    """``nnx.Optimizer`` over params and hash tables, or a ``SparseOptimizer`` (``table_optimizer``)."""
    if cfg.table_optimizer == SPARSE:
        return SparseOptimizer(model, cfg)
    return nnx.Optimizer(model, make_tx(cfg), wrt=TRAINABLE)
