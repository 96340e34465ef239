"""Optimizer contract (phoenix spec §13): hash tables train alongside params, weight decay never
touches norm scales or tables, and table row 0 (padding) stays exactly zero through AdamW or
row-wise Adagrad steps."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.layers.embed import gather_rows
from x_reco.models import PhoenixRetriever
from x_reco.models.testing import random_batch
from x_reco.training.optim import TRAINABLE, learning_rate_schedule, make_optimizer, param_labels


def model():
    return PhoenixRetriever(PhoenixConfig.tiny(compute_dtype="float32"), rngs=nnx.Rngs(params=0))


def test_labels_split_tables_norms_and_matrices():
    labels = nnx.to_flat_state(param_labels(nnx.as_pure(nnx.state(model(), TRAINABLE))))
    by_path = {"/".join(map(str, p)): v for p, v in labels}
    assert by_path["tables/post"] == "table" and by_path["tables/user"] == "table"
    assert by_path["layers/0/norm_pre_attn/scale"] == "no_decay"
    assert by_path["layers/1/attn/wq"] == "decay" and by_path["cand_tower/w1"] == "decay"


def test_schedule_warmup_then_cosine_to_end_fraction():
    sched = learning_rate_schedule(tiny_cfg(learning_rate=1e-2, warmup_steps=2, num_steps=12, end_lr_fraction=0.1))
    assert float(sched(0)) == 0.0 and np.isclose(float(sched(2)), 1e-2)
    assert np.isclose(float(sched(12)), 1e-3)


@pytest.mark.parametrize("table_optimizer", ["adamw", "rowwise_adagrad"])
def test_tables_train_row0_stays_zero_and_no_decay_on_tables(table_optimizer):
    m = model()
    opt = make_optimizer(m, tiny_cfg(weight_decay=0.5, warmup_steps=0, table_optimizer=table_optimizer))
    b = random_batch(m.config, 4, seed=1)
    before = {k: np.asarray(getattr(m.tables, k)[...]) for k in ("user", "post", "author")}
    w = jnp.arange(m.config.emb_size, dtype=jnp.float32)

    @nnx.jit
    def step(m, opt):
        def loss(m):  # candidate tower + user-table gather: no trunk, so the compile stays small
            return jnp.sum(m.encode_candidates(b) * w) + jnp.sum(gather_rows(m.tables.user[...], b.user_hashes) * w)

        opt.update(m, nnx.grad(loss, argnums=nnx.DiffState(0, TRAINABLE))(m))

    for _ in range(3):
        step(m, opt)
    for name, hashes in (("post", b.candidate_post_hashes), ("user", b.user_hashes)):
        table, used = np.asarray(getattr(m.tables, name)[...]), np.unique(np.asarray(hashes))
        assert np.array_equal(table[0], np.zeros_like(table[0])), name
        assert not np.allclose(table[used[used > 0]], before[name][used[used > 0]]), name  # touched rows trained
        untouched = np.setdiff1d(np.arange(1, table.shape[0]), used)
        assert np.array_equal(table[untouched], before[name][untouched]), name  # no decay on untouched rows
