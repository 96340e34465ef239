"""Jitted data-parallel train step: state replicated, batch sharded on the ``data`` mesh axis.

The step takes the whole ``(model, optimizer)`` state as an argument (split once outside the loop,
merged inside jit) and returns the new state and the loss, so checkpointing and resuming only deal
with one pytree. On one device the shardings are trivial; on N devices XLA inserts the gradient
all-reduce, and the loss is the same global mean (up to summation order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from x_reco.layers.embed import HashTable
from x_reco.training.optim import TABLE_NAMES, TRAINABLE, sparse_table_update

DATA_AXIS = "data"


class DataParallel(NamedTuple):
    """A 1-D mesh over local devices with its two shardings."""

    mesh: Mesh
    replicated: NamedSharding
    data: NamedSharding

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size


def data_parallel(devices: list | None = None) -> DataParallel:
    """Mesh over ``devices`` (default: every local device) on one axis named ``data``."""
    devices = jax.local_devices() if devices is None else devices
    mesh = Mesh(np.asarray(devices), (DATA_AXIS,))
    return DataParallel(mesh, NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def shard_batch(batch: Any, dp: DataParallel) -> Any:
    """Put a host pytree whose leaves lead with the batch axis onto the mesh, split along that axis."""
    return jax.device_put(batch, dp.data)


def replicate(tree: Any, dp: DataParallel) -> Any:
    return jax.device_put(tree, dp.replicated)


def _jit_step(step, dp: DataParallel):
    """``step(state, batch, consts)`` jitted with the state replicated (and donated), the batch sharded."""
    return jax.jit(
        step,
        in_shardings=(dp.replicated, dp.data, dp.replicated),
        out_shardings=(dp.replicated, dp.replicated, dp.replicated),
        donate_argnums=0,
    )


class AverageCount(nnx.Variable):
    """Number of updates a ``ParamAverage`` has taken (drives its warm-up decay)."""


class ParamAverage(nnx.Module):
    """Exponential moving average of a model's trainable parameters (``TrainConfig.ema_decay``).

    ``model`` is a copy of the trained model whose parameters are the average: it is evaluated and
    exported like the trained one. After n updates the decay is ``min(decay, (1 + n) / (10 + n))``,
    so the first updates follow the parameters closely instead of keeping the initialization.
    """

    def __init__(self, model: nnx.Module, decay: float):
        self.model = nnx.clone(model)  # the same buffers: copy them, the train step donates its state
        nnx.update(self.model, jax.tree.map(lambda x: jnp.array(x, copy=True), nnx.state(self.model)))
        self.decay = float(decay)
        self.count = AverageCount(jnp.zeros([], jnp.int32))

    def update(self, model: nnx.Module) -> None:
        n = self.count[...].astype(jnp.float32)
        d = jnp.minimum(self.decay, (1.0 + n) / (10.0 + n))
        mix = lambda a, p: (d * a.astype(jnp.float32) + (1.0 - d) * p.astype(jnp.float32)).astype(a.dtype)  # noqa: E731
        nnx.update(self.model, jax.tree.map(mix, nnx.state(self.model, TRAINABLE), nnx.state(model, TRAINABLE)))
        self.count[...] = self.count[...] + 1


def evaluated_model(parts: tuple) -> nnx.Module:
    """The model a ``(model, optimizer[, ParamAverage])`` state evaluates and exports: the average if kept."""
    return parts[2].model if len(parts) > 2 else parts[0]


LossFn = Callable[[nnx.Module, Any, Any], tuple[jax.Array, jax.Array]]


def make_train_step(graphdef: nnx.GraphDef, loss_fn: LossFn, dp: DataParallel):
    """``step(state, batch, consts) -> (state, loss, aux)``.

    Args:
      graphdef: graph of ``(model, optimizer)``, or ``(model, optimizer, ParamAverage)`` (updated after
        the optimizer), from ``nnx.split``.
      loss_fn: ``loss_fn(model, batch, consts) -> (scalar loss, aux)``, evaluated at the parameters
        before the update; ``batch`` leaves are data-sharded, ``consts`` (e.g. the catalogue's item
        hashes) replicated.
      dp: the mesh and shardings.
    """

    def step(state, batch, consts):
        model, optimizer, *average = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, TRAINABLE), has_aux=True)
        (loss, aux), grads = grad_fn(model, batch, consts)
        optimizer.update(model, grads)
        for avg in average:
            avg.update(model)
        return nnx.state((model, optimizer, *average)), loss, aux

    return _jit_step(step, dp)


class SparseTables(NamedTuple):
    """How one loss's batch uses the hash tables (for ``make_sparse_train_step``).

    ``ids(batch, consts) -> {table: int32 array}``: every hash the loss gathers, per table name.
    ``remap(batch, consts, f) -> (batch, consts)``: the same inputs with each hash array ``x`` of
    table ``t`` replaced by ``f(t, x)``.
    """

    ids: Callable[[Any, Any], dict[str, jax.Array]]
    remap: Callable[[Any, Any, Callable[[str, jax.Array], jax.Array]], tuple[Any, Any]]


def make_sparse_train_step(
    graphdef: nnx.GraphDef, loss_fn: LossFn, dp: DataParallel, tables: SparseTables, table_lr, clip_norm: float
):
    """``step(state, batch, consts) -> (state, loss, aux)`` for a ``(model, SparseOptimizer[, ParamAverage])`` state.

    Per table, the step takes the distinct rows the batch gathers (always including padding row 0,
    so remapped id 0 still means padding), gathers them into a compact [K, D] table, remaps the
    batch's hashes to compact ids and differentiates the loss w.r.t. the dense params and the compact
    rows: duplicate ids are summed by the gather's transpose. Gradients are clipped jointly (the
    untouched rows' gradient is zero, so this is ``clip_by_global_norm`` of the dense gradient);
    params take AdamW, touched rows row-wise Adagrad (``optim.sparse_table_update``).
    """

    def step(state, batch, consts):
        model, optimizer, *average = nnx.merge(graphdef, state)
        full = {name: getattr(model.tables, name)[...] for name in TABLE_NAMES}
        uniq = {}
        for name, ids in tables.ids(batch, consts).items():
            flat = jnp.concatenate([jnp.zeros(1, jnp.int32), ids.reshape(-1).astype(jnp.int32)])
            uniq[name] = jnp.unique(flat, size=flat.size, fill_value=full[name].shape[0])
        batch_c, consts_c = tables.remap(batch, consts, lambda t, x: jnp.searchsorted(uniq[t], x).astype(jnp.int32))
        for name, rows in uniq.items():
            getattr(model.tables, name).set_value(full[name].at[rows].get(mode="fill", fill_value=0))
        gd, params, compact, rest = nnx.split(model, nnx.Param, HashTable, ...)

        def loss_of(params, compact):
            return loss_fn(nnx.merge(gd, params, compact, rest), batch_c, consts_c)

        (loss, aux), (g_params, g_tables) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(params, compact)
        (g_params, g_tables), _ = optax.clip_by_global_norm(clip_norm).update((g_params, g_tables), optax.EmptyState())
        lr = table_lr(optimizer.table_step[...])
        for name, rows in uniq.items():
            acc = getattr(optimizer, f"acc_{name}")
            new_table, acc[...] = sparse_table_update(full[name], acc[...], rows, g_tables["tables"][name][...], lr)
            getattr(model.tables, name).set_value(new_table)
        optimizer.table_step[...] = optimizer.table_step[...] + 1
        optimizer.dense.update(model, g_params)
        for avg in average:
            avg.update(model)
        return nnx.state((model, optimizer, *average)), loss, aux

    return _jit_step(step, dp)
