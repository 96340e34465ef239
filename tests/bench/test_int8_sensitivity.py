"""The fake-quant probe's group-0 formats are the production w8 / t8 formats."""

import numpy as np
import pytest

from x_reco.bench.int8_sensitivity import BF16, CALIBRATED, fake_quant_table, fake_quant_weight, parse_spec
from x_reco.inference.quantize import quantize_table, quantize_weight
from x_reco.layers.quant import dense


def test_group_zero_is_the_w8_and_t8_formats_and_smaller_groups_err_less():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 24)).astype(np.float32) * np.exp(rng.standard_normal(64))[:, None]
    t = rng.standard_normal((50, 64)).astype(np.float32) * np.exp(rng.standard_normal(64))[None, :]
    t[0] = 0
    np.testing.assert_allclose(fake_quant_weight(w), np.asarray(dense(quantize_weight(w))), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fake_quant_table(t), np.asarray(dense(quantize_table(t))), rtol=1e-6, atol=1e-7)
    assert np.abs(fake_quant_weight(w, 16) - w).mean() < np.abs(fake_quant_weight(w) - w).mean()
    assert np.abs(fake_quant_table(t, 16) - t).mean() < np.abs(fake_quant_table(t) - t).mean()
    assert parse_spec("32,f,tables/post|layers/0") == (32, -1, ("tables/post", "layers/0"))
    with pytest.raises(ValueError, match="expected W,T"):
        parse_spec("32")
    assert parse_spec("c,0") == (CALIBRATED, 0, ())  # the w8-cal rounding of the weights
    assert parse_spec("b,b") == (BF16, BF16, ())
    with pytest.raises(ValueError, match="not the tables"):
        parse_spec("0,c")
