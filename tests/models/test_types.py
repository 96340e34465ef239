"""Batch pytrees and the host-side ``validate_batch`` / ``random_batch`` helpers (§3).

Guards: builders that pad at the start or leave holes in the history (RoPE positions then move),
wrong dtypes reaching jit, and test batches that never exercise empty or full histories.
"""

import jax
import numpy as np
import pytest

from tests.models.helpers import edit, pad_history, tiny
from x_reco.common.types import RecsysBatch, history_lengths, validate_batch
from x_reco.configs import PhoenixConfig
from x_reco.models.testing import random_batch, random_embeddings


def test_random_batch_is_valid_with_empty_and_full_rows():
    cfg = tiny()
    b = random_batch(cfg, 5, seed=3)
    validate_batch(b, cfg)
    lengths = np.asarray(history_lengths(b))
    assert lengths[0] == 11 and lengths[1] == 0
    assert lengths.tolist() == (np.asarray(b.history_post_hashes)[:, :, 0] != 0).sum(1).tolist()
    pad = np.asarray(b.history_post_hashes)[:, :, 0] == 0
    for name in ("history_post_hashes", "history_author_hashes", "history_actions"):
        assert not np.asarray(getattr(b, name))[pad].any()
    assert not np.asarray(b.history_product_surface)[pad].any()
    valid = ~pad
    assert (np.asarray(b.history_actions)[valid].sum(-1) == 0).any()  # some slots carry no action
    assert jax.tree.structure(b) == jax.tree.structure(random_batch(cfg, 5, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(b), jax.tree.leaves(random_batch(cfg, 5, seed=3))))
    emb = random_embeddings(cfg, b)
    assert emb.history_post.shape == (5, 11, 3, 32) and not np.asarray(emb.history_post)[pad].any()


def test_random_batch_any_shape_for_big_presets():
    cfg = PhoenixConfig.oss_mini()
    b = random_batch(cfg, 2)
    validate_batch(b, cfg)
    assert b.history_post_hashes.shape == (2, 127, 2) and b.candidate_post_hashes.shape == (2, 64, 2)


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda b: pad_history(b, 2, left=True), "not a prefix"),
        (lambda b: edit(b, history_actions=np.asarray(b.history_actions) * 2), "outside {0, 1}"),
        (lambda b: edit(b, user_hashes=np.asarray(b.user_hashes) + 500), "user_hashes: values in"),
        (lambda b: edit(b, candidate_product_surface=np.asarray(b.candidate_product_surface, np.int64)), "dtype int64"),
        (
            lambda b: edit(b, candidate_author_hashes=np.asarray(b.candidate_author_hashes)[:, :2]),
            "candidate_author_hashes: shape",
        ),
    ],
)
def test_validate_batch_rejects(mutate, fragment):
    b = random_batch(tiny(), 3)
    with pytest.raises(ValueError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        validate_batch(mutate(b), tiny())


def test_batch_is_a_pytree():
    b = random_batch(tiny(), 3)
    assert isinstance(jax.tree.map(lambda x: x, b), RecsysBatch) and len(jax.tree.leaves(b)) == 8
    assert (b.batch_size, b.num_history, b.num_candidates) == (3, 11, 5)
