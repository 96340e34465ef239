"""Serving paths equal the committed model (inference spec §5.7); they run its own methods on its state:
split == dense on padded histories and padded candidates, chunked == one pass for c in {1, 7, 64}, S and N
bucket padding change nothing, jitted/AOT == eager; and the split candidate pass never forms the N x N block.

Guards the fork's pitfalls: optimized paths compared against a differently initialized module, and
"split" attention that still materializes the candidate x candidate block.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.inference.helpers import (
    BF16_PROB_TOL,
    F32_TOL,
    batch,
    logits,
    model_logits,
    pad,
    ranker,
    source,
    valid_candidates,
)
from x_reco.inference.engine import aot_compile, make_score_fn


def _masked_max(a, b, mask):
    return float(np.abs(a - b)[mask].max())


def test_split_and_dense_equal_the_model_on_padded_rows():
    b = batch(seed=1, b=5)  # row 0 full history, row 1 empty, others random; candidates padded per row
    ref, mask = model_logits(b), valid_candidates(b)
    assert (~mask).any() and (np.asarray(b.history_post_hashes)[:, :, 0] == 0).any()  # padding exercised
    assert _masked_max(logits(b, path="dense"), ref, mask) <= F32_TOL
    assert _masked_max(logits(b, path="split"), ref, mask) <= F32_TOL


def test_split_equals_dense_on_every_row_with_a_valid_key():
    b = batch(seed=2, b=5)
    dense, split = logits(b, path="dense"), logits(b, path="split")
    assert np.abs(dense - split).max() <= F32_TOL  # padded candidates too (the user token is always valid)


@pytest.mark.parametrize("mode", ["shared", "reference"])
def test_split_equals_model_in_both_position_modes(mode):
    b = batch(seed=3)
    ref = model_logits(b, mode)
    assert _masked_max(logits(b, path="split", mode=mode), ref, valid_candidates(b)) <= F32_TOL


def test_bf16_split_within_tolerance_of_bf16_dense():
    b = batch(seed=4, b=5)
    dense = jax.nn.sigmoid(logits(b, path="dense", compute_dtype="bfloat16"))
    split = jax.nn.sigmoid(logits(b, path="split", compute_dtype="bfloat16"))
    assert _masked_max(np.asarray(dense), np.asarray(split), valid_candidates(b)) <= BF16_PROB_TOL


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_equals_one_pass(chunk):
    b = batch(seed=5, b=3, candidate_len=13)
    one = logits(b, path="split")
    assert np.abs(logits(b, path="chunked", chunk=chunk) - one).max() <= F32_TOL


def test_chunked_reference_mode_passes_slot_offsets():
    b = batch(seed=6, b=3, candidate_len=9)
    ref = model_logits(b, "reference")
    got = logits(b, path="chunked", chunk=4, mode="reference")
    assert _masked_max(got, ref, valid_candidates(b)) <= F32_TOL


def test_bucket_padding_of_history_and_candidates_changes_nothing():
    b = batch(seed=7, b=4)
    base = logits(b, path="split")
    padded = logits(pad(b, history=6, candidates=8), path="split")
    c = b.num_candidates
    assert np.abs(padded[:, :c] - base).max() <= F32_TOL


def test_aot_compiled_equals_eager_model():
    b = batch(seed=8, b=2)
    sm = source()
    compiled, seconds = aot_compile(make_score_fn(sm, "split"), sm.params, b, precision="highest")
    eager = np.asarray(ranker()(jax.tree.map(jnp.asarray, b)).logits_bca)
    got = np.asarray(compiled(sm.params, b).logits_bca)
    assert seconds > 0 and _masked_max(got, eager, valid_candidates(b)) <= F32_TOL


def test_split_candidate_pass_never_forms_the_n_by_n_block():
    sm = source()
    n = 37  # prime, distinct from every other axis (P = 12, D = 32, A = 19, heads 4/2, dk 8)
    b = batch(seed=9, b=2, candidate_len=n)
    split, dense = make_score_fn(sm, "split"), make_score_fn(sm, "dense")

    def shapes(fn):
        jaxpr = jax.make_jaxpr(fn)(sm.params, b)
        return [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars if hasattr(v.aval, "shape")]

    def has_nn(shape_list, size):
        return any(list(s).count(size) >= 2 for s in shape_list)

    assert has_nn(shapes(dense), 12 + n)  # the dense path does form the (P+N)^2 block: the probe works
    assert not has_nn(shapes(split), n)
