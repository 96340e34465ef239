"""Serving variants derived from one f32 source state by pure functions: bf16w, w8, t8 and their mix.

The variants are values the training layers accept (``x_reco.layers.quant``), so every variant runs
the one Phoenix model:

* ``w8``: per-output-channel symmetric int8 for W [in, out]: ``s_o = max_i |W_io| / 127`` (1 for an
  all-zero column), ``q = clip(round(W / s), -127, 127)``. Inside the jitted call
  ``y = (x @ q.astype(cd)) * s``: only the int8 arrays stay resident.
* ``t8``: row-wise int8 hash tables, ``s_r = max_d |T_rd| / 127`` (f32 per row); rows are dequantized
  after the gather; row 0 (padding) stays exactly zero.
* ``bf16w``: the same weights as ``w8`` stored in bf16 (no per-call cast).

``w8`` rounds to nearest by default. Given calibration (``x_reco.inference.calibrate``: the second
moment ``H = E[x x^T]`` of each weight's inputs on calibration requests), it rounds with error
compensation instead (GPTQ, Frantar et al. 2022, arXiv:2210.17323): the input rows of W are rounded one
at a time, largest ``H_ii`` first, and each row's rounding error is spread over the rows not yet rounded
so that ``E||x (W - W_q)||^2`` is minimized rather than ``||W - W_q||^2``. The format, the scales and the
serving code are the same as round-to-nearest; only which int8 value each entry gets differs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from x_reco.inference.params import ServingModel, leaf_paths, map_state
from x_reco.layers.quant import QTable, QWeight

# Every >=2-D parameter outside this list is quantized by ``quantize_w8`` (and cast by ``to_bf16``).
W8_EXCLUDED: dict[str, str] = {
    "tables/*": "hash tables: row-wise int8 by quantize_tables_t8 (t8), not per-channel w8",
    "embed/action_proj": "tiny [A_in, D] action projection",
    "embed/surface_table": "tiny [Vs, D] product-surface table",
    "head/unembed": "unembedding, ~0.04% of params; kept f32 for logit quality",
    "cand_tower/*": "retrieval candidate tower runs offline (corpus building), not on the request path",
}
TABLE_CHUNK_ROWS = 1 << 17


# -- conversions (pure functions of the source) ------------------------------------------------------
@jax.jit
def _w8(w: jax.Array) -> tuple[jax.Array, jax.Array]:
    w = w.astype(jnp.float32)
    amax = jnp.max(jnp.abs(w), axis=0)
    scale = jnp.where(amax > 0, amax / 127.0, 1.0)
    q = jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8)
    return q, scale


@jax.jit
def _t8_rows(t: jax.Array) -> tuple[jax.Array, jax.Array]:
    t = t.astype(jnp.float32)
    amax = jnp.max(jnp.abs(t), axis=1)
    scale = jnp.where(amax > 0, amax / 127.0, 1.0)
    q = jnp.clip(jnp.round(t / scale[:, None]), -127, 127).astype(jnp.int8)
    return q, scale


def quantize_weight(w, hessian: np.ndarray | None = None, damp: float = 0.01) -> QWeight:
    """Per-output-channel symmetric int8 of W [in, out]: round to nearest, or with ``hessian`` (H [in, in],
    the inputs' second moment) the error-compensating rounding of the module docstring, same scales.
    ``damp`` adds that fraction of mean(diag H) to the diagonal (GPTQ's dampening)."""
    q, scale = _w8(jnp.asarray(w))
    if hessian is None:
        return QWeight(q, scale)
    return QWeight(jnp.asarray(gptq_int8(np.asarray(w), np.asarray(scale), hessian, damp)), scale)


def gptq_int8(w: np.ndarray, scale: np.ndarray, hessian: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """int8 [in, out] of W [in, out] at per-column ``scale`` [out], minimizing ``tr((W - W_q)^T H (W - W_q))``
    greedily row by row (largest ``H_ii`` first) with the remaining rows updated by the inverse Hessian."""
    n = w.shape[0]
    if hessian.shape != (n, n):
        raise ValueError(f"hessian shape {hessian.shape} does not match the weight's {n} input rows")
    w = np.asarray(w, np.float64).copy()
    h = np.array(hessian, np.float64)
    dead = np.diag(h) <= 0  # inputs never seen: their rows round to nearest, uncompensated
    h[dead, dead] = 1.0
    order = np.argsort(-np.diag(h), kind="stable")
    w, h = w[order], h[np.ix_(order, order)]
    h[np.diag_indices(n)] += damp * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper Cholesky factor of H^-1
    q = np.empty(w.shape, np.int8)
    for i in range(n):
        q[i] = np.clip(np.round(w[i] / scale), -127, 127)
        err = (w[i] - q[i] * scale) / u[i, i]
        w[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    out = np.empty_like(q)
    out[order] = q
    return out


def quantize_table(table, chunk_rows: int = TABLE_CHUNK_ROWS) -> QTable:
    """Row-wise int8 of a [V, D] table, in row chunks so a large table never needs a second f32 copy."""
    table = np.asarray(table) if not isinstance(table, jax.Array) else table
    v, d = table.shape
    q = np.empty((v, d), np.int8)
    scale = np.empty((v,), np.float32)
    for start in range(0, v, chunk_rows):
        qc, sc = _t8_rows(jnp.asarray(table[start : start + chunk_rows]))
        q[start : start + chunk_rows], scale[start : start + chunk_rows] = np.asarray(qc), np.asarray(sc)
    q[0], scale[0] = 0, 1.0  # padding row: exactly zero after dequantization
    return QTable(q, scale)


def excluded_reason(path: str) -> str | None:
    """Why ``path`` stays unquantized under w8 (None if it is in scope)."""
    for pattern, reason in W8_EXCLUDED.items():
        if fnmatch.fnmatch(path, pattern):
            return reason
    return None


def w8_scope(params) -> tuple[list[str], list[tuple[str, str]]]:
    """(paths quantized by w8, [(path, reason)] excluded) over every >=2-D leaf; 1-D leaves are norms/weights."""
    quantized, excluded = [], []
    for path, leaf in leaf_paths(params):
        if len(leaf.shape) < 2:
            continue
        reason = excluded_reason(path)
        (excluded.append((path, reason)) if reason else quantized.append(path))
    return quantized, excluded


def _check_source(sm: ServingModel, what: str, forbid: str) -> None:
    if forbid in sm.variant.split("+"):
        raise ValueError(f"{what}: variant {sm.variant!r} already has {forbid}")


def _name(sm: ServingModel, part: str) -> str:
    parts = [p for p in sm.variant.split("+") if p != "f32"] + [part]
    order = ("bf16w", "w8", "t8")
    return "+".join(sorted(parts, key=order.index))


def to_bf16(sm: ServingModel) -> ServingModel:
    """``bf16w``: every weight in the w8 scope stored in bf16 (pre-cast once; tables untouched)."""
    _check_source(sm, "to_bf16", "w8")
    quantized, excluded = w8_scope(sm.state)
    scope = set(quantized)
    state = map_state(sm.state, lambda path, w: jnp.asarray(w).astype(jnp.bfloat16) if path in scope else w)
    return sm.replace(state=state, variant=_name(sm, "bf16w"), quantized=tuple(quantized), excluded=tuple(excluded))


def quantize_w8(sm: ServingModel, calibration: Mapping[str, np.ndarray] | None = None) -> ServingModel:
    """``w8``: per-output-channel int8 for every >=2-D weight outside ``W8_EXCLUDED``; with
    ``calibration`` ({path: H}, ``calibrate.input_moments``) error-compensating rounding for each path in it."""
    _check_source(sm, "quantize_w8", "bf16w")
    quantized, excluded = w8_scope(sm.state)
    scope = set(quantized)
    cal = calibration or {}
    if cal and not scope <= set(cal):
        raise ValueError(f"calibration lacks the inputs of {sorted(scope - set(cal))}")
    shapes = dict(leaf_paths(sm.state))
    wrong = {p: cal[p].shape for p in scope & set(cal) if cal[p].shape != (shapes[p].shape[0],) * 2}
    if wrong:
        raise ValueError(f"calibration moments do not match the weights' input sizes: {wrong}")
    state = map_state(sm.state, lambda path, w: quantize_weight(w, cal.get(path)) if path in scope else w)
    return sm.replace(
        state=state,
        variant=_name(sm, "w8"),
        quantized=tuple(quantized),
        excluded=tuple(excluded),
        rounding="calibrated" if cal else "nearest",
    )


def quantize_tables_t8(sm: ServingModel) -> ServingModel:
    """``t8``: row-wise int8 hash tables (dequantized after the gather; row 0 stays zero)."""
    _check_source(sm, "quantize_tables_t8", "t8")
    state = map_state(sm.state, lambda path, t: quantize_table(t) if path.startswith("tables/") else t)
    return sm.replace(state=state, variant=_name(sm, "t8"))


# Each builder takes the f32 source and the w8 calibration ({path: H} or None: round to nearest).
VARIANT_BUILDERS = {
    "f32": lambda sm, cal: sm,
    "bf16w": lambda sm, cal: to_bf16(sm),
    "w8": lambda sm, cal: quantize_w8(sm, cal),
    "t8": lambda sm, cal: quantize_tables_t8(sm),
    "w8+t8": lambda sm, cal: quantize_w8(quantize_tables_t8(sm), cal),
}


def make_variant(source: ServingModel, name: str, calibration: Mapping[str, np.ndarray] | None = None) -> ServingModel:
    """The named weight/table format of ``source`` ("f32", "bf16w", "w8", "t8", "w8+t8"); ``calibration``
    makes the w8 rounding error-compensating (``quantize_w8``); it is an error for a format without w8."""
    if name not in VARIANT_BUILDERS:
        raise ValueError(f"unknown variant {name!r}; expected one of {sorted(VARIANT_BUILDERS)}")
    if source.variant != "f32":
        raise ValueError(f"variants derive from the f32 source, got {source.variant!r}")
    if calibration is not None and "w8" not in name.split("+"):
        raise ValueError(f"calibration applies to w8 rounding; variant {name!r} has no w8")
    return VARIANT_BUILDERS[name](source, calibration)
