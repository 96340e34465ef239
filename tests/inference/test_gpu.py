"""GPU checks (``pytest -m gpu`` on a CUDA machine): the serving paths stay exact under highest precision
on the accelerator, bf16 stays within tolerance, and measured peak device memory of ``w8`` does not
exceed ``bf16w`` (each variant in a fresh process, so no earlier allocation hides a dequantized copy).
"""

import jax
import numpy as np
import pytest

from tests.inference.helpers import BF16_PROB_TOL, F32_TOL, batch, logits, model_logits, source, valid_candidates
from x_reco.bench.jobs import run_isolated
from x_reco.bench.timing import MemoryJob
from x_reco.inference.cache import PrefixCache

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a CUDA device"),
]


def test_split_cached_and_dense_agree_on_gpu():
    b = batch(seed=31, b=6)
    ref, mask = model_logits(b), valid_candidates(b)
    assert np.abs(logits(b, path="split") - ref)[mask].max() <= F32_TOL
    cache = PrefixCache(source(), classes=(11,), slots=8, precision="highest")
    cache(b)
    assert np.abs(np.asarray(cache(b).logits_bca) - ref)[mask].max() <= F32_TOL
    dense = jax.nn.sigmoid(logits(b, path="dense", compute_dtype="bfloat16"))
    split = jax.nn.sigmoid(logits(b, path="split", compute_dtype="bfloat16"))
    assert np.abs(np.asarray(dense) - np.asarray(split))[mask].max() <= BF16_PROB_TOL


def _peak(tmp_path, variant: str) -> int:
    job = MemoryJob("large", variant, (1, 512, 256), table_rows=1000, source_cache=str(tmp_path / "src"))
    return run_isolated(job)[0]["after_call"]["peak_bytes_in_use"]  # a fresh worker process per variant


def test_w8_peak_device_memory_not_above_bf16w(tmp_path):
    # large trunk (26 M params) with 1,000-row tables: the weights dominate, so a dequantized copy would show
    assert _peak(tmp_path, "w8") <= _peak(tmp_path, "bf16w")
