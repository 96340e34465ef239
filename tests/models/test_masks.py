"""Attention masks (§12 rows 1-2, §7) and candidate positions (§11.1).

Guards: the README's "bidirectional user+history" claim (the code and tests are causal; the user
token sees no history), candidates seeing each other, and position modes drifting.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.helpers import batch, edit, prefix_hidden, ranker
from x_reco.models.masks import (
    append_mask,
    candidate_positions,
    candidates_over_prefix_mask,
    causal_mask,
    prefix_mask,
    ranker_attention_mask,
    ranker_dense_mask,
    ranker_positions,
)

SPEC_6X6 = ["100000", "110000", "111000", "111100", "111010", "111001"]


def test_mask_t10_o5_structure():
    m = np.asarray(ranker_attention_mask(10, 5))
    assert m.shape == (1, 1, 10, 10)
    m = m[0, 0]
    assert np.array_equal(m[:5, :5], np.tril(np.ones((5, 5))))  # causal user + history
    assert np.array_equal(m[5:, :5], np.ones((5, 5)))  # candidates see the whole prefix
    assert np.array_equal(m[5:, 5:], np.eye(5))  # ... and only themselves among candidates
    assert np.array_equal(m[:5, 5:], np.zeros((5, 5)))  # prefix never sees candidates


def test_mask_exact_spec_example():
    m = np.asarray(ranker_attention_mask(6, 3))[0, 0]
    assert ["".join(str(int(v)) for v in row) for row in m] == SPEC_6X6


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_mask_dtype_preserved(dtype):
    assert ranker_attention_mask(10, 5, dtype).dtype == dtype


def test_mask_edge_offsets():
    assert np.array_equal(np.asarray(ranker_attention_mask(4, 3))[0, 0], np.tril(np.ones((4, 4))))
    want = np.eye(4)
    want[:, 0] = 1
    assert np.array_equal(np.asarray(ranker_attention_mask(4, 1))[0, 0], want)


def test_key_validity_and_split_masks_agree_with_dense():
    prefix_valid = jnp.asarray([[True, True, True, False], [False, False, False, False], [True, True, False, False]])
    cand_valid = jnp.asarray([[True, True, False], [True, False, False], [True, True, True]])
    dense = np.asarray(ranker_dense_mask(prefix_valid, cand_valid))
    assert dense.shape == (3, 1, 7, 7) and dense.dtype == bool
    assert not dense[:, :, :, 3].any() or not np.asarray(prefix_valid)[:, 3].any()  # padded keys never seen
    assert np.array_equal(dense[:, :, 4:], np.asarray(candidates_over_prefix_mask(prefix_valid, cand_valid)))
    assert np.array_equal(dense[:, :, :4, :4], np.asarray(prefix_mask(prefix_valid)))
    # appending the last two prefix tokens to a cached first two gives the same rows
    assert np.array_equal(np.asarray(append_mask(prefix_valid[:, :2], prefix_valid[:, 2:])), dense[:, :, 2:4, :4])
    assert np.array_equal(np.asarray(causal_mask(3))[0, 0], np.tril(np.ones((3, 3))))


def test_user_row_attends_to_no_history_slot_structurally():
    m = np.asarray(ranker_attention_mask(1 + 11 + 5, 12))[0, 0]
    assert m[0].tolist() == [1] + [0] * 16


def test_user_token_output_ignores_history_in_model():
    """Row 2 at model level: rewriting every history slot leaves the user token's trunk output unchanged."""
    model, b = ranker(), batch()
    rng = np.random.default_rng(7)
    other = edit(
        b,
        history_actions=1 - np.asarray(b.history_actions),
        history_product_surface=rng.integers(0, 7, np.shape(b.history_product_surface)),
    )

    h0, h1 = prefix_hidden(model, b), prefix_hidden(model, other)
    u0, u1 = h0[:, 0], h1[:, 0]
    assert np.array_equal(u0, u1)
    assert np.abs(h0 - h1).max() > 1e-3  # non-vacuous: history outputs did change


def test_candidate_positions_modes():
    valid = jnp.asarray([[True] * 4, [False] * 4, [True, True, False, False]])
    assert np.asarray(candidate_positions(valid, 3, "shared")).tolist() == [[5] * 3, [1] * 3, [3] * 3]
    assert np.asarray(candidate_positions(valid, 3, "reference")).tolist() == [[5, 6, 7]] * 3
    assert np.asarray(candidate_positions(valid, 2, "reference", slot_offset=3)).tolist() == [[8, 9]] * 3
    pos = np.asarray(ranker_positions(valid, 2, "shared"))
    assert pos.dtype == np.int32 and pos.tolist()[2] == [0, 1, 2, 3, 4, 3, 3]
    with pytest.raises(ValueError, match="'left'"):
        candidate_positions(valid, 3, "left")
