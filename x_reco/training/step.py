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
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from x_reco.training.optim import TRAINABLE

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


LossFn = Callable[[nnx.Module, Any, Any], tuple[jax.Array, jax.Array]]


def make_train_step(graphdef: nnx.GraphDef, loss_fn: LossFn, dp: DataParallel):
    """``step(state, batch, consts) -> (state, loss, aux)``.

    Args:
      graphdef: graph of ``(model, optimizer)`` from ``nnx.split``.
      loss_fn: ``loss_fn(model, batch, consts) -> (scalar loss, aux)``, evaluated at the parameters
        before the update; ``batch`` leaves are data-sharded, ``consts`` (e.g. the catalogue's item
        hashes) replicated.
      dp: the mesh and shardings.
    """

    def step(state, batch, consts):
        model, optimizer = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, TRAINABLE), has_aux=True)
        (loss, aux), grads = grad_fn(model, batch, consts)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss, aux

    return jax.jit(
        step,
        in_shardings=(dp.replicated, dp.data, dp.replicated),
        out_shardings=(dp.replicated, dp.replicated, dp.replicated),
        donate_argnums=0,
    )
