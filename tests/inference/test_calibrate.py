"""Error-compensating int8 rounding (GPTQ) of the w8 weights against calibration inputs.

It is the same format as round-to-nearest (same scales, int8 in [-127, 127], the same serving code);
with an identity second moment it *is* round-to-nearest; on correlated inputs it lowers the output
error it minimizes; and a calibrated variant of the tiny ranker scores closer to f32 than the nearest
rounding does, on requests other than the ones it was calibrated on.
"""

import jax
import numpy as np
import pytest

from tests.inference.helpers import source, tiny
from x_reco.inference.calibrate import input_moments
from x_reco.inference.engine import make_score_fn
from x_reco.inference.quantize import gptq_int8, make_variant, quantize_w8, quantize_weight, w8_scope
from x_reco.layers.quant import Observed, QWeight, dense, linear
from x_reco.models.testing import random_batch


def _correlated(n_rows=512, d_in=32, d_out=16, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d_in, d_in)) * np.linspace(3.0, 0.1, d_in)[:, None]  # correlated, uneven inputs
    x = rng.standard_normal((n_rows, d_in)) @ mix
    w = rng.standard_normal((d_in, d_out)).astype(np.float32)
    return x, w


def test_identity_second_moment_is_round_to_nearest():
    _, w = _correlated()
    nearest = quantize_weight(w)
    compensated = quantize_weight(w, np.eye(w.shape[0]), damp=0.0)
    assert np.array_equal(np.asarray(compensated.q), np.asarray(nearest.q))
    assert np.array_equal(np.asarray(compensated.scale), np.asarray(nearest.scale))


def test_compensated_rounding_lowers_the_output_error_at_the_same_scales():
    x, w = _correlated()
    h = x.T @ x / len(x)
    nearest, compensated = quantize_weight(w), quantize_weight(w, h)
    assert np.array_equal(np.asarray(compensated.scale), np.asarray(nearest.scale))
    q = np.asarray(compensated.q)
    assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= 127
    err = {k: np.linalg.norm(x @ (np.asarray(dense(v)) - w)) for k, v in (("nearest", nearest), ("gptq", compensated))}
    assert err["gptq"] < 0.8 * err["nearest"], err
    # it trades weight error for output error: the weights themselves move further than nearest rounding
    assert np.linalg.norm(np.asarray(dense(compensated)) - w) > np.linalg.norm(np.asarray(dense(nearest)) - w)


def test_inputs_never_seen_round_to_nearest_and_bad_shapes_are_refused():
    x, w = _correlated()
    x[:, 5] = 0.0  # input 5 never fires: its row has nothing to compensate for or with
    h = x.T @ x / len(x)
    scale = np.asarray(quantize_weight(w).scale)
    q = gptq_int8(w, scale, h)
    assert np.array_equal(q[5], np.asarray(quantize_weight(w).q)[5])
    with pytest.raises(ValueError, match="does not match"):
        gptq_int8(w, scale, h[:-1, :-1])


def test_observed_weight_records_the_second_moment_and_computes_in_f32():
    x, w = _correlated(n_rows=20)
    obs = Observed(w)
    y = linear(x.reshape(4, 5, -1).astype(np.float32), obs, np.float32)
    np.testing.assert_allclose(np.asarray(y).reshape(20, -1), x.astype(np.float32) @ w, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(obs.xtx, x.T @ x, rtol=1e-5)
    assert obs.rows == 20


def _scores(sm, b):
    return np.asarray(jax.jit(make_score_fn(sm, "split"))(sm.params, b).score_bc)


@pytest.fixture(scope="module")
def moments():
    """Second moments of the tiny ranker's matmul inputs on 16 random requests (one eager call)."""
    batch = random_batch(tiny(), 16, candidate_len=64, candidate_lengths=np.full(16, 64), seed=3)
    return input_moments(source(), batch, users_per_call=16)


def test_calibrated_w8_scores_closer_to_f32_on_other_requests(moments):
    cfg, src, h = tiny(), source(), moments
    judged = random_batch(cfg, 16, candidate_len=64, candidate_lengths=np.full(16, 64), seed=4)
    assert set(h) == set(w8_scope(src.state)[0])
    for path, m in h.items():
        assert np.allclose(m, m.T) and np.linalg.eigvalsh(m).min() > -1e-6, path
    ref = _scores(src, judged)
    variants = {name: make_variant(src, "w8+t8", cal) for name, cal in (("nearest", None), ("calibrated", h))}
    err = {name: np.abs(_scores(sm, judged) - ref).mean() for name, sm in variants.items()}
    assert 0 < err["calibrated"] < err["nearest"], err
    # one format: the same variant name, quantized paths and scales; only the int8 values differ
    near, cal = (variants[k] for k in ("nearest", "calibrated"))
    assert cal.variant == near.variant == "w8+t8" and cal.quantized == near.quantized
    wq = [sm.state["layers"][0]["attn"]["wq"].get_value() for sm in (near, cal)]
    assert np.array_equal(wq[0].scale, wq[1].scale) and not np.array_equal(wq[0].q, wq[1].q)


def test_calibration_is_refused_where_it_cannot_apply(moments):
    src, h = source(), moments
    with pytest.raises(ValueError, match="has no w8"):
        make_variant(src, "t8", h)
    with pytest.raises(ValueError, match="lacks the inputs"):
        quantize_w8(src, dict(list(h.items())[:1]))
    with pytest.raises(ValueError, match="f32 source"):
        input_moments(make_variant(src, "w8"), random_batch(tiny(), 2, seed=5))
    assert isinstance(make_variant(src, "w8", h).state["layers"][0]["attn"]["wq"].get_value(), QWeight)


def test_stored_moments_round_trip_and_bad_ones_are_named():
    from x_reco.inference.calibrate import CalibrationError, moments_from_arrays, moments_to_arrays

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6))
    moments = {"a/w": x.T @ x / 64, "b/w": np.eye(3)}
    arrays = moments_to_arrays(moments, "v1", requests=64)
    back = moments_from_arrays(arrays, "cal.npz", "v1")
    assert back.keys() == moments.keys() and all(np.array_equal(back[k], moments[k]) for k in moments)
    with pytest.raises(CalibrationError, match=r"cal.npz: param_version 'v1' is another ranker's"):
        moments_from_arrays(arrays, "cal.npz", "v2")
    bad = {**arrays, "H:b/w": np.ones((3, 2))}
    with pytest.raises(CalibrationError, match=r"cal.npz: H:b/w has shape \(3, 2\)"):
        moments_from_arrays(bad, "cal.npz")
    bad = {**arrays, "H:b/w": np.full((3, 3), np.nan)}
    with pytest.raises(CalibrationError, match="H:b/w has non-finite"):
        moments_from_arrays(bad, "cal.npz")
    with pytest.raises(CalibrationError, match="no 'param_version'"):
        moments_from_arrays({"H:b/w": np.eye(3)}, "cal.npz")


def test_a_variant_records_its_rounding_and_refuses_moments_of_other_sizes(moments):
    src = source()
    assert make_variant(src, "w8+t8").rounding == "nearest"
    assert make_variant(src, "w8+t8", moments).rounding == "calibrated"
    assert make_variant(src, "t8").rounding is None and src.rounding is None
    path = sorted(moments)[0]
    with pytest.raises(ValueError, match=f"do not match the weights' input sizes: {{'{path}'"):
        quantize_w8(src, {**moments, path: np.eye(moments[path].shape[0] + 1)})


def test_the_rounding_error_ratio_is_below_one_and_refuses_moments_that_miss_a_weight(moments):
    from x_reco.inference.calibrate import rounding_error_ratio

    src = source()
    ratios = rounding_error_ratio(src, moments)
    assert ratios.keys() == moments.keys()
    assert np.median(list(ratios.values())) < 1.0 and all(np.isfinite(list(ratios.values())))
    with pytest.raises(ValueError, match="calibration lacks the inputs of"):
        rounding_error_ratio(src, dict(list(moments.items())[1:]))
