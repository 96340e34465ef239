"""Resumable training checkpoints: model + optimizer state and the run's JSON record, via Orbax.

Layout under ``<ckpt_dir>/train/``: one Orbax step directory per saved step (``CheckpointManager``,
last ``keep`` kept), each holding ``state`` (``nnx.state((model, optimizer))``) and ``meta`` (JSON:
step, loss curve so far, eval history, train and model config, hash spec, seeds). Orbax writes a
step into a temporary directory and renames it when complete, so a run killed mid-save leaves the
previous step as the latest. The exported inference model is separate (``checkpoint.save_checkpoint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

TRAIN_DIR = "train"


class TrainCheckpoints:
    """Save / find / restore the resumable state of one run directory."""

    def __init__(self, ckpt_dir: str | Path, keep: int):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, cleanup_tmp_directories=True, create=True
        )
        self.directory = Path(ckpt_dir).absolute() / TRAIN_DIR
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Write ``state`` and ``meta`` as step ``step`` (synchronous; atomic rename when done)."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int, abstract_state: Any, sharding: jax.sharding.Sharding) -> tuple[Any, dict[str, Any]]:
        """Restore step ``step`` into the structure of ``abstract_state`` (from ``nnx.eval_shape``)."""
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
        restored = self._manager.restore(step, args=args)
        return restored.state, dict(restored.meta)

    def close(self) -> None:
        self._manager.close()
