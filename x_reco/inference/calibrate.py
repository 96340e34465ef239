"""Calibration for error-compensating int8 rounding: the second moment of every quantized weight's inputs.

``input_moments(source, batch)`` runs the f32 model once, eagerly, on calibration requests with each
weight in the ``w8`` scope swapped for an ``Observed`` value (``x_reco.layers.quant``) and returns
``{path: H}``, ``H = E[x x^T]`` [in, in] over every row the weight multiplied. ``quantize_w8(sm, H)``
rounds against it. Calibration requests must not be the requests the variant is then judged on.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.inference.params import ServingModel, map_state
from x_reco.inference.quantize import w8_scope
from x_reco.layers.quant import Observed


def input_moments(source: ServingModel, batch: RecsysBatch, users_per_call: int = 8) -> dict[str, np.ndarray]:
    """``{path: E[x x^T]}`` (f64) for every weight in the ``w8`` scope of the f32 ``source``, over the
    inputs each one multiplies when the model scores ``batch`` (numpy, in ``users_per_call`` chunks)."""
    if source.variant != "f32":
        raise ValueError(f"calibration runs the f32 source, got variant {source.variant!r}")
    scope = set(w8_scope(source.state)[0])
    observed: dict[str, Observed] = {}

    def observe(path, w):
        if path not in scope:
            return w
        observed[path] = Observed(np.asarray(w, np.float32))
        return observed[path]

    model = nnx.merge(source.graphdef, map_state(source.state, observe))
    with jax.default_device(jax.devices("cpu")[0]):
        for start in range(0, batch.batch_size, users_per_call):
            model(jax.tree.map(lambda x: np.asarray(x)[start : start + users_per_call], batch))
    missing = sorted(p for p, o in observed.items() if o.rows == 0)
    if missing:
        raise ValueError(f"calibration requests never reached {missing}")
    return {path: o.xtx / o.rows for path, o in sorted(observed.items())}
