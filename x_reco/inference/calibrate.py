"""Calibration for error-compensating int8 rounding: the second moment of every quantized weight's inputs.

``input_moments(source, batch)`` runs the f32 model once, eagerly, on calibration requests with each
weight in the ``w8`` scope swapped for an ``Observed`` value (``x_reco.layers.quant``) and returns
``{path: H}``, ``H = E[x x^T]`` [in, in] over every row the weight multiplied. ``quantize_w8(sm, H)``
rounds against it. Calibration requests must not be the requests the variant is then judged on.

``calibrate(source, seqs)`` is what serving uses: the moments of ``CALIBRATION_USERS`` train-split
requests of a partition (never a held-out one). They take seconds to compute, so the ``ranker_calibration``
asset computes them once per champion ranker and stores them as plain arrays (``moments_to_arrays``);
a feed loads them back with ``moments_from_arrays``, which refuses moments of another ranker.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.data.examples import EngagementSequences, Split
from x_reco.inference.params import ServingModel, leaf_paths, map_state, serving_model
from x_reco.inference.quantize import quantize_w8, w8_scope
from x_reco.inference.requests import checkpoint_users
from x_reco.layers.quant import Observed
from x_reco.models.checkpoint import restore_checkpoint
from x_reco.models.ranker import PhoenixRanker

CALIBRATION_USERS = 64  # train-split requests (one per user) the served ranker's w8 rounding is calibrated on
CALIBRATION_CANDIDATES = 1000  # random catalogue items per calibration request
CALIBRATION_SEED = 1  # the judged requests of a quality job use seed 0
MOMENT_PREFIX = "H:"  # stored array names: "param_version" and "H:<weight path>"


class CalibrationError(ValueError):
    """Stored calibration moments that cannot be used (the message names the file and the field)."""


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


def calibration_requests(
    sequences: EngagementSequences,
    users: int = CALIBRATION_USERS,
    candidates: int = CALIBRATION_CANDIDATES,
    seed: int = CALIBRATION_SEED,
) -> RecsysBatch:
    """The requests a trained ranker is calibrated on: up to ``users`` train-split requests of
    ``sequences`` (one per user, ``checkpoint_users``), each with ``candidates`` catalogue items drawn
    with ``seed``. Serving (``calibrate``) and the bench's trained quality job both build them here."""
    return checkpoint_users(sequences, users, candidates, seed=seed, split=Split.TRAIN)


def calibrate(
    source: ServingModel,
    sequences: EngagementSequences,
    users: int = CALIBRATION_USERS,
    candidates: int = CALIBRATION_CANDIDATES,
    seed: int = CALIBRATION_SEED,
    users_per_call: int = 8,
) -> tuple[dict[str, np.ndarray], int]:
    """``input_moments`` of ``source`` on up to ``users`` train-split requests of ``sequences`` (one per
    user, ``checkpoint_users``), each with ``candidates`` catalogue items drawn with ``seed``; and how
    many requests that was."""
    requests = calibration_requests(sequences, users, candidates, seed)
    return input_moments(source, requests, users_per_call), requests.batch_size


def checkpoint_calibration(
    checkpoint: str | Path,
    sequences: EngagementSequences,
    users: int = CALIBRATION_USERS,
    candidates: int = CALIBRATION_CANDIDATES,
    seed: int = CALIBRATION_SEED,
) -> tuple[ServingModel, dict[str, np.ndarray], int]:
    """The f32 serving source of an exported ranker and its ``calibrate`` moments on ``sequences``
    (with their number of requests)."""
    model, meta = restore_checkpoint(checkpoint, hash_spec=sequences.hash_spec)
    if not isinstance(model, PhoenixRanker):
        raise ValueError(f"{checkpoint} is a {type(model).__name__}; calibration is for the ranker's w8 weights")
    with jax.default_device(jax.devices("cpu")[0]):
        source = serving_model(model, param_version=str(meta.get("param_version", "")))
    return source, *calibrate(source, sequences, users, candidates, seed)


def rounding_error_ratio(source: ServingModel, moments: dict[str, np.ndarray]) -> dict[str, float]:
    """Per w8 weight, ``E||x (W - W_q)||^2`` on the calibration inputs of calibrated rounding over that of
    round-to-nearest (below 1: the calibration lowers the output error it is meant to lower). Builds the
    calibrated w8 state once, so moments that miss a weight or have the wrong size raise ValueError."""
    weights = dict(leaf_paths(source.state))
    rounded = [dict(leaf_paths(quantize_w8(source, cal).state)) for cal in (moments, None)]
    out = {}
    for path in sorted(moments):
        w, h = np.asarray(weights[path], np.float64), moments[path]
        errs = []
        for leaves in rounded:
            d = w - np.asarray(leaves[f"{path}/q"], np.float64) * np.asarray(leaves[f"{path}/scale"], np.float64)
            errs.append(float(np.einsum("io,ij,jo->", d, h, d)))
        out[path] = errs[0] / errs[1] if errs[1] > 0 else 1.0
    return out


def moments_to_arrays(moments: dict[str, np.ndarray], param_version: str, requests: int) -> dict[str, np.ndarray]:
    """The moments of the ranker ``param_version``, computed on ``requests`` requests, as plain arrays
    (an ``.npz`` without pickle)."""
    return {
        "param_version": np.asarray(str(param_version)),
        "requests": np.asarray(int(requests)),
        **{MOMENT_PREFIX + path: np.asarray(h, np.float64) for path, h in sorted(moments.items())},
    }


def moments_from_arrays(
    arrays: dict[str, np.ndarray], where: str, param_version: str | None = None
) -> dict[str, np.ndarray]:
    """``{path: H}`` back from ``moments_to_arrays`` output read from ``where`` (a file name, for errors);
    with ``param_version``, refuses moments computed on another ranker."""
    if "param_version" not in arrays:
        raise CalibrationError(f"{where}: no 'param_version' array; not a ranker calibration")
    got = str(np.asarray(arrays["param_version"]))
    if param_version is not None and got != str(param_version):
        raise CalibrationError(
            f"{where}: param_version {got!r} is another ranker's calibration (this ranker is {param_version!r}); "
            "rematerialize ranker_calibration"
        )
    moments = {}
    for key, h in arrays.items():
        if key in ("param_version", "requests"):
            continue
        if not key.startswith(MOMENT_PREFIX):
            raise CalibrationError(
                f"{where}: unexpected array {key!r} (expected 'param_version', 'requests' and {MOMENT_PREFIX}<path>)"
            )
        h = np.asarray(h)
        if h.ndim != 2 or h.shape[0] != h.shape[1]:
            raise CalibrationError(f"{where}: {key} has shape {h.shape}, expected a square [in, in] moment")
        if not np.all(np.isfinite(h)):
            raise CalibrationError(f"{where}: {key} has non-finite entries")
        if np.any(np.diag(h) < 0):
            raise CalibrationError(f"{where}: {key} has a negative diagonal entry (not a second moment)")
        moments[key.removeprefix(MOMENT_PREFIX)] = h.astype(np.float64)
    if not moments:
        raise CalibrationError(f"{where}: no moments ({MOMENT_PREFIX}<path> arrays)")
    return moments
