"""Serving parameters: one f32 source pytree taken from a Phoenix model, its digests and byte accounting.

Layout of ``ServingModel.params`` (plain dicts and lists; paths as in phoenix spec §10)::

    tables/{user,post,author}        [V, D] (or QTable after t8)
    embed/{user_proj,history_proj,candidate_proj,action_proj,surface_table}
    layers/<i>/{norm_pre_attn,norm_post_attn,norm_pre_ffn,norm_post_ffn}     [D]
    layers/<i>/attn/{wq,wk,wv,wo}   layers/<i>/ffn/{w_gate,w_up,w_down}      (or QWeight after w8)
    final_norm [D], head/unembed [D, A]          (ranker only)
    cand_tower/{w1,w2}                            (retrieval only)
    score_weights [A]                             (ranker only: the weighted-score vector)

Every variant (``quantize.py``) is a pure function of this f32 source and carries its
``source_param_digest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from x_reco.configs.phoenix import PhoenixConfig
from x_reco.pipeline.weights import WeightSet

_LAYER_NORMS = ("norm_pre_attn", "norm_post_attn", "norm_pre_ffn", "norm_post_ffn")


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """A parameter pytree plus the static facts every compiled path and cache key needs.

    ``variant`` names the weight/table format ("f32", "bf16w", "w8", "t8", "w8+t8"); ``compute_dtype``
    is the trunk's matmul dtype; ``param_version`` / ``table_version`` key the prefix cache.
    """

    config: PhoenixConfig
    params: dict
    kind: str  # "ranker" | "retrieval"
    variant: str
    compute_dtype: str
    source_param_digest: str
    param_version: str
    table_version: str
    quantized: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()

    @property
    def cd(self):
        """Compute dtype as a jnp dtype."""
        return jnp.dtype(self.compute_dtype)

    def replace(self, **changes: Any) -> ServingModel:
        return dataclasses.replace(self, **changes)

    def with_compute_dtype(self, dtype: str) -> ServingModel:
        return self.replace(compute_dtype=jnp.dtype(dtype).name)


def _value(var) -> Any:
    return var[...]


def extract_params(model) -> dict:
    """The parameter pytree of a ``PhoenixRanker`` or ``PhoenixRetrieval`` (arrays, no copies)."""
    embed = model.embed
    params: dict = {
        "tables": {name: _value(getattr(model.tables, name)) for name in ("user", "post", "author")},
        "embed": {
            "user_proj": _value(embed.user_proj),
            "history_proj": _value(embed.history_proj),
            "action_proj": _value(embed.action_proj),
            "surface_table": _value(embed.surface_table),
        },
        "layers": [
            {
                **{n: _value(getattr(layer, n).scale) for n in _LAYER_NORMS},
                "attn": {w: _value(getattr(layer.attn, w)) for w in ("wq", "wk", "wv", "wo")},
                "ffn": {w: _value(getattr(layer.ffn, w)) for w in ("w_gate", "w_up", "w_down")},
            }
            for layer in model.layers
        ],
    }
    if embed.candidate_proj is not None:
        params["embed"]["candidate_proj"] = _value(embed.candidate_proj)
    if hasattr(model, "head"):
        params["final_norm"] = _value(model.final_norm.scale)
        params["head"] = {"unembed": _value(model.head.unembed)}
    if hasattr(model, "cand_tower"):
        params["cand_tower"] = {"w1": _value(model.cand_tower.w1), "w2": _value(model.cand_tower.w2)}
    return params


def leaf_paths(params) -> list[tuple[str, Any]]:
    """``(path, leaf)`` in path order; paths joined with "/" (QWeight leaves end in /q and /scale)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for path, leaf in flat:
        parts = []
        for key in path:
            name = getattr(key, "key", getattr(key, "idx", getattr(key, "name", None)))
            parts.append(str(name))
        out.append(("/".join(parts), leaf))
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


def serving_model(
    model,
    *,
    param_version: str | None = None,
    params: dict | None = None,
    weight_set: WeightSet | None = None,
    compute_dtype: str | None = None,
) -> ServingModel:
    """The f32 source ``ServingModel`` of a Phoenix model.

    Args:
      model: ``PhoenixRanker`` or ``PhoenixRetrieval`` (its config gives shapes and semantics).
      param_version: cache key version (a checkpoint's ``param_version``); default the source digest.
      params: an already extracted pytree (e.g. host numpy arrays built elsewhere) instead of ``model``'s.
      weight_set: weights of the weighted score (default ``published``); ranker only.
      compute_dtype: trunk compute dtype (default the config's).
    """
    config: PhoenixConfig = model.config
    kind = "ranker" if hasattr(model, "head") else "retrieval"
    params = dict(extract_params(model) if params is None else params)
    if kind == "ranker":
        weights = (weight_set or WeightSet.published()).vector(config.output_action_names)
        params["score_weights"] = np.asarray(weights, np.float32)
    source, tables = digests(params)
    return ServingModel(
        config=config, params=params, kind=kind, variant="f32",
        compute_dtype=jnp.dtype(compute_dtype or config.compute_dtype).name,
        source_param_digest=source, param_version=param_version or source, table_version=tables,
    )  # fmt: skip


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
