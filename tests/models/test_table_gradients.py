"""Hash-table row 0 is padding (§12 row 23, §4): zero at init, zero gradient through the ranker and
retrieval losses, and still zero after an optimizer step.

Guards: padding slots silently training row 0 into a shared "missing id" embedding.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from tests.models.helpers import batch, ranker, retrieval
from x_reco.layers import HashTable


def ranker_loss(model, b, labels):
    out = model(b)
    bce = optax.sigmoid_binary_cross_entropy(out.logits_bca, labels)
    m = out.candidate_mask_bc[..., None].astype(jnp.float32)
    return jnp.sum(bce * m) / jnp.maximum(jnp.sum(out.candidate_mask_bc), 1)


def retrieval_loss(model, b, labels):
    del labels
    u = model.encode_user(b)
    c = model.encode_candidates(b)[:, 0]  # each row's first candidate is its positive
    return optax.softmax_cross_entropy_with_integer_labels((u @ c.T) / 0.05, jnp.arange(u.shape[0])).mean()


@pytest.mark.parametrize("which", ["ranker", "retriever"])
def test_row0_zero_gradient_and_stays_zero(which):
    model = ranker() if which == "ranker" else retrieval()
    loss_fn = ranker_loss if which == "ranker" else retrieval_loss
    model = nnx.clone(model)
    b = batch()
    assert (np.asarray(b.candidate_post_hashes)[:, :, 0] == 0).any()  # padding present
    labels = jnp.asarray(np.random.default_rng(0).integers(0, 2, (3, 5, 19)), jnp.float32)

    @nnx.jit
    def step(model, opt_state):
        grads = nnx.grad(loss_fn, argnums=nnx.DiffState(0, HashTable))(model, b, labels)
        tables = nnx.state(model, HashTable)
        updates, opt_state = tx.update(grads, opt_state, tables)
        nnx.update(model, optax.apply_updates(tables, updates))
        return grads, opt_state

    tx = optax.adam(1e-2)
    grads, _ = step(model, tx.init(nnx.state(model, HashTable)))
    for name in ("user", "post", "author"):
        g = np.asarray(grads["tables"][name][...])
        assert np.array_equal(g[0], np.zeros_like(g[0])), name
        assert np.abs(g[1:]).max() > 0, name  # non-vacuous: real rows do get gradient
        table = np.asarray(getattr(model.tables, name)[...])
        assert np.array_equal(table[0], np.zeros_like(table[0])), name
