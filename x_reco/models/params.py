"""Parameter accounting and the ``param_version`` digest used by checkpoints and inference caches."""

from __future__ import annotations

import hashlib

import jax
import numpy as np
from flax import nnx

from x_reco.layers.embed import HashTable


def count_params(model: nnx.Module) -> int:
    """Number of ``nnx.Param`` elements (hash tables excluded); works on ``nnx.eval_shape`` models."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def count_table_elements(model: nnx.Module) -> int:
    """Number of hash-table elements."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, HashTable)))


def param_digest(model_or_state) -> str:
    """sha256 (16 hex) over every variable in path order: path, dtype, shape and bytes."""
    state = nnx.state(model_or_state) if isinstance(model_or_state, nnx.Module) else model_or_state
    h = hashlib.sha256()
    for path, leaf in sorted(nnx.to_flat_state(state), key=lambda kv: tuple(map(str, kv[0]))):
        arr = np.asarray(leaf[...] if isinstance(leaf, nnx.Variable) else leaf)
        h.update(f"{'/'.join(map(str, path))}|{arr.dtype}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]
