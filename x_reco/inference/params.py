"""Serving parameters: a Phoenix model split into its graph and its state, the digests and byte accounting.

A ``ServingModel`` is the training model itself, held as ``nnx.split`` parts: ``graphdef`` (the module
structure, static) and ``state`` (its variables; paths as in phoenix spec §10, e.g.
``layers/0/attn/wq``, ``tables/post``). A serving variant (``quantize.py``) is a pure function of the
f32 state that swaps values for their bf16 / ``QWeight`` / ``QTable`` form; ``nnx.merge`` of the same
graph with that state runs the same layer code (``x_reco.layers.quant`` dispatches on the value).
Every variant carries its f32 ``source_param_digest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct, traverse_util

from x_reco.configs.phoenix import PhoenixConfig
from x_reco.configs.weights import WeightSet
from x_reco.layers.quant import QTable, QWeight
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever

MODEL_CLASSES = {"ranker": PhoenixRanker, "retriever": PhoenixRetriever}


@struct.dataclass
class ServingParams:
    """What a compiled request function takes as its first argument: the model state and score weights [A]."""

    state: nnx.State
    score_weights: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """One Phoenix model for serving: graph, (possibly quantized) state, and the facts cache keys need.

    ``variant`` names the weight/table format ("f32", "bf16w", "w8", "t8", "w8+t8") and ``rounding`` how
    its int8 weights were rounded (None without w8); ``compute_dtype``
    is the trunk's matmul dtype (the graph's config); ``param_version`` / ``table_version`` key the
    prefix cache; ``score_weights`` [A] is the ranker's weighted-score vector.
    """

    config: PhoenixConfig
    graphdef: Any
    state: nnx.State
    kind: str  # "ranker" | "retriever"
    variant: str
    source_param_digest: str
    param_version: str
    table_version: str
    score_weights: np.ndarray | None = None
    quantized: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    rounding: str | None = None  # w8 variants: "nearest" or "calibrated" (``quantize.quantize_w8``)

    @property
    def compute_dtype(self) -> str:
        return jnp.dtype(self.config.dtype).name

    @property
    def cd(self):
        """Compute dtype as a jnp dtype."""
        return jnp.dtype(self.config.dtype)

    @property
    def params(self) -> ServingParams:
        return ServingParams(self.state, self.score_weights)

    def module(self, state: nnx.State | None = None):
        """The Phoenix module over ``state`` (default this model's); call inside jit with traced state."""
        return nnx.merge(self.graphdef, self.state if state is None else state)

    def replace(self, **changes: Any) -> ServingModel:
        return dataclasses.replace(self, **changes)

    def with_compute_dtype(self, dtype: str) -> ServingModel:
        """The same state on a graph whose layers compute in ``dtype``."""
        config = self.config.replace(compute_dtype=jnp.dtype(dtype).name)
        return self.replace(config=config, graphdef=graphdef_for(self.kind, config))


def graphdef_for(kind: str, config: PhoenixConfig):
    """The module graph of a ``kind`` model with ``config`` (abstract init: no arrays are allocated)."""
    abstract = nnx.eval_shape(lambda: MODEL_CLASSES[kind](config, rngs=nnx.Rngs(0)))
    return nnx.graphdef(abstract)


def abstract_state(kind: str, config: PhoenixConfig) -> nnx.State:
    """ShapeDtypeStruct state of a ``kind`` model (its variable types and paths)."""
    return nnx.state(nnx.eval_shape(lambda: MODEL_CLASSES[kind](config, rngs=nnx.Rngs(0))))


def path_str(path: tuple) -> str:
    return "/".join(map(str, path))


def map_state(state: nnx.State, fn) -> nnx.State:
    """A new state with ``fn(path, value)`` for every variable (``path`` joined with "/")."""
    flat = [(p, v.replace(fn(path_str(p), v.get_value()))) for p, v in nnx.to_flat_state(state)]
    return nnx.from_flat_state(flat)


def state_from_arrays(template: nnx.State, arrays: dict[str, Any]) -> nnx.State:
    """``template``'s variables (types, paths) with values from ``{path: array}``; every path is required."""
    missing = {path_str(p) for p, _ in nnx.to_flat_state(template)} - set(arrays)
    if missing:
        raise ValueError(f"state arrays are missing {sorted(missing)}")
    return map_state(template, lambda path, _: arrays[path])


def leaf_paths(tree) -> list[tuple[str, Any]]:
    """``(path, array)`` in path order for a state, ``ServingParams`` or plain nested dict.

    Quantized values expand to ``path/q`` and ``path/scale``; the score weights are ``score_weights``.
    """
    if isinstance(tree, ServingParams):
        out = leaf_paths(tree.state)
        return sorted(out + ([("score_weights", tree.score_weights)] if tree.score_weights is not None else []))
    pure = nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree
    out = []
    for keys, value in traverse_util.flatten_dict(pure).items():
        path = path_str(keys)
        if isinstance(value, (QWeight, QTable)):
            out += [(f"{path}/q", value.q), (f"{path}/scale", value.scale)]
        else:
            out.append((path, value))
    return sorted(out, key=lambda kv: kv[0])


def _leaf_digest(path: str, leaf) -> bytes:
    arr = np.ascontiguousarray(np.asarray(leaf))
    h = hashlib.sha256(f"{path}|{arr.dtype}|{arr.shape}|".encode())
    h.update(memoryview(arr).cast("B"))
    return h.digest()


def digests(params) -> tuple[str, str]:
    """(source digest over every leaf, table digest over ``tables/*`` only), 16-hex sha256 each.

    sha256 over the per-leaf sha256 (path, dtype, shape, bytes) in path order: one pass over the bytes.
    """
    whole, tables = hashlib.sha256(), hashlib.sha256()
    for path, leaf in leaf_paths(params):
        d = _leaf_digest(path, leaf)
        whole.update(d)
        if path.startswith("tables/"):
            tables.update(d)
    return whole.hexdigest()[:16], tables.hexdigest()[:16]


def from_state(
    kind: str,
    config: PhoenixConfig,
    state: nnx.State,
    *,
    param_version: str | None = None,
    weight_set: WeightSet | None = None,
    graphdef: Any = None,
    digest: tuple[str, str] | None = None,
) -> ServingModel:
    """The f32 source ``ServingModel`` of a ``kind`` model's state (``digest`` skips re-hashing a known one)."""
    weights = None
    if kind == "ranker":
        weights = np.asarray((weight_set or WeightSet.published()).vector(config.output_action_names), np.float32)
    source, tables = digest or digests(ServingParams(state, weights))
    return ServingModel(
        config=config,
        graphdef=graphdef if graphdef is not None else graphdef_for(kind, config),
        state=state,
        kind=kind,
        variant="f32",
        source_param_digest=source,
        param_version=param_version or source,
        table_version=tables,
        score_weights=weights,
    )


def serving_model(
    model: PhoenixRanker | PhoenixRetriever,
    *,
    param_version: str | None = None,
    weight_set: WeightSet | None = None,
    compute_dtype: str | None = None,
) -> ServingModel:
    """The f32 source ``ServingModel`` of a trained (or fresh) Phoenix model; no arrays are copied.

    Args:
      model: ``PhoenixRanker`` or ``PhoenixRetriever``.
      param_version: cache key version (a checkpoint's ``param_version``); default the source digest.
      weight_set: weights of the weighted score (default ``published``); ranker only.
      compute_dtype: trunk compute dtype (default the model config's).
    """
    kind = "ranker" if isinstance(model, PhoenixRanker) else "retriever"
    graphdef, state = nnx.split(model)
    sm = from_state(kind, model.config, state, param_version=param_version, weight_set=weight_set, graphdef=graphdef)
    return sm.with_compute_dtype(compute_dtype) if compute_dtype else sm


def bytes_by_dtype(params) -> dict[str, dict[str, int]]:
    """Resident bytes grouped by dtype: ``{"weights": {dtype: bytes}, "tables": {dtype: bytes}}``."""
    out: dict[str, dict[str, int]] = {"weights": {}, "tables": {}}
    for path, leaf in leaf_paths(params):
        group = out["tables" if path.startswith("tables/") else "weights"]
        dt = str(jnp.dtype(leaf.dtype))
        group[dt] = group.get(dt, 0) + int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize
    return out


def total_bytes(params) -> int:
    return sum(sum(g.values()) for g in bytes_by_dtype(params).values())
