"""Orbax save/restore of Phoenix models with JSON metadata (config, HashSpec, param_version).

Layout of a checkpoint directory (written to a temporary sibling, then renamed into place; a
save killed half-way leaves a hidden ``.<dir>.*.tmp`` that the next save of ``<dir>`` sweeps, see
``common.atomic``)::

    <dir>/state/          Orbax StandardCheckpointer tree of ``nnx.state(model)`` (params + tables)
    <dir>/metadata.json   model_kind, config, hash_spec, action names, position mode, step,
                          seeds, param_version (sha256 digest of the state), extra
Restore builds the model with ``nnx.eval_shape`` (nothing allocated), restores into that abstract
state, and checks the digest. No pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

from x_reco.common.atomic import atomic_dir
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.features.hashing import HashSpec
from x_reco.models.params import param_digest
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever

MODEL_KINDS: dict[str, type[nnx.Module]] = {"ranker": PhoenixRanker, "retriever": PhoenixRetriever}
METADATA_FILE = "metadata.json"
STATE_DIR = "state"


def _model_kind(model: nnx.Module) -> str:
    for kind, cls in MODEL_KINDS.items():
        if isinstance(model, cls):
            return kind
    raise ValueError(f"cannot checkpoint {type(model).__name__}; expected one of {sorted(MODEL_KINDS)}")


def save_checkpoint(
    directory: str | Path,
    model: PhoenixRanker | PhoenixRetriever,
    *,
    step: int = 0,
    seeds: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Atomically write ``model`` (params and hash tables) to ``directory``; returns the metadata as stored."""
    config: PhoenixConfig = model.config
    state = nnx.state(model)
    metadata = {
        "model_kind": _model_kind(model),
        "config": config.to_dict(),
        "config_digest": config.digest(),
        "hash_spec": config.hash_spec.to_dict(),
        "history_action_names": list(config.history_action_names),
        "output_action_names": list(config.output_action_names),
        "candidate_position_mode": config.candidate_position_mode,
        "step": int(step),
        "seeds": dict(seeds or {}),
        "param_version": param_digest(state),
        "extra": dict(extra or {}),
    }
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    with atomic_dir(directory) as tmp:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(Path(tmp).absolute() / STATE_DIR, state)
        checkpointer.wait_until_finished()
        (Path(tmp) / METADATA_FILE).write_text(text)
    return json.loads(text)


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata JSON."""
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {METADATA_FILE} in {directory}; not an x-reco checkpoint")
    return json.loads(path.read_text())


def restore_checkpoint(
    directory: str | Path,
    *,
    hash_spec: HashSpec | None = None,
    config: PhoenixConfig | None = None,
) -> tuple[PhoenixRanker | PhoenixRetriever, dict[str, Any]]:
    """Restore a model and its metadata.

    Args:
      directory: a directory written by ``save_checkpoint``.
      hash_spec: if given, must equal the checkpoint's HashSpec (ValueError otherwise): trained
        tables mean something only under the hash functions that produced them.
      config: if given, must equal the checkpoint's config (ValueError otherwise).
    """
    metadata = read_metadata(directory)
    saved_config = PhoenixConfig.from_dict(metadata["config"])
    if hash_spec is not None:
        hash_spec.check_compatible(saved_config.hash_spec, where=f"between data and checkpoint {directory}")
    if config is not None and config != saved_config:
        raise ValueError(f"config mismatch with checkpoint {directory}: {config.digest()} != {saved_config.digest()}")
    cls = MODEL_KINDS[metadata["model_kind"]]
    abstract = nnx.eval_shape(lambda: cls(saved_config, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    state = ocp.StandardCheckpointer().restore(Path(directory).absolute() / STATE_DIR, abstract_state)
    if param_digest(state) != metadata["param_version"]:
        raise ValueError(f"checkpoint {directory}: restored state digest does not match param_version")
    return nnx.merge(graphdef, state), metadata
