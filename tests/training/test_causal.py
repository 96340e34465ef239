"""The causal retrieval objective (``retrieval_positions="all"``): every prefix position predicts the
item that comes next, and its loss is the old single-position loss of the request cut there."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.data.batches import RetrievalBatch, retrieval_batch
from x_reco.data.examples import Split
from x_reco.models.retriever import PhoenixRetriever
from x_reco.training.config import model_config_for
from x_reco.training.loop import _causal_softmax, _full_softmax, train_retriever

TAU = 0.05
_causal = nnx.jit(lambda m, rb, c: _causal_softmax(m, rb, c, TAU, None)[0])
_single = nnx.jit(lambda m, rb, c: _full_softmax(m, rb, c, TAU, None)[0])


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "repeat_logit"])
def setup(request):
    """The retriever, and the same with a learned repeat term set away from 0 (so that it counts)."""
    seqs = toy_seqs()
    config = dataclasses.replace(model_config_for(tiny_cfg(), seqs), repeat_logit=request.param)
    model = PhoenixRetriever(config, rngs=nnx.Rngs(params=3))
    if request.param:
        model.repeat_logit.set_value(jnp.asarray(-0.7, jnp.float32))
    consts = (seqs.catalogue.post_hashes.astype(np.int32), seqs.catalogue.author_hashes.astype(np.int32), None)
    return seqs, model, consts


def _cut(rb: RetrievalBatch, row: int, p: int, target: int) -> dict:
    """Row ``row`` of ``rb`` with history slots >= p removed, predicting ``target``."""
    post = np.array(rb.batch.history_post_hashes[row])
    post[p:] = 0
    return {"post": post, "row": row, "target": target}


def _single_position_batch(rb: RetrievalBatch, cuts: list[dict]) -> RetrievalBatch:
    rows = np.array([c["row"] for c in cuts])
    batch = rb.batch.replace(
        **{f: np.asarray(getattr(rb.batch, f))[rows] for f in rb.batch.__dataclass_fields__},
    ).replace(history_post_hashes=np.stack([c["post"] for c in cuts]))
    n = len(cuts)
    return RetrievalBatch(
        batch, np.array([c["target"] for c in cuts], np.int32), np.ones(n, bool), np.zeros(n, np.int32)
    )


def test_one_position_sequence_gives_the_old_loss(setup):
    seqs, model, consts = setup
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    empty = seqs.history.length[rows] == 0
    assert empty.sum() >= 4
    rb = retrieval_batch(seqs, rows[empty][:8], items[empty][:8], 8, causal=True)
    old = retrieval_batch(seqs, rows[empty][:8], items[empty][:8], 8)
    assert float(_causal(model, rb, consts)) == pytest.approx(float(_single(model, old, consts)), rel=1e-6)


def test_causal_loss_is_the_mean_single_position_loss_of_every_cut_request(setup):
    """Each position's term is the old loss of the request cut before the item it predicts: no
    position sees its target or anything after it (a leak would change the per-position terms). With
    the repeat term, position p marks the items of the history slots before p, as the cut request does."""
    seqs, model, consts = setup
    rows, items = seqs.retrieval_pairs(Split.TRAIN)
    pick = np.flatnonzero(seqs.history.length[rows] >= 3)[:6]
    rb = retrieval_batch(seqs, rows[pick], items[pick], 8, causal=True)
    cuts = []
    for r in range(len(pick)):
        length = int(seqs.history.length[rows[pick[r]]])
        for p in range(length + 1):
            target = int(rb.next_item_bp[r, p])
            assert target == (items[pick[r]] if p == length else seqs.history.item_idx[rows[pick[r]], p])
            cuts.append(_cut(rb, r, p, target))
    expected = float(_single(model, _single_position_batch(rb, cuts), consts))
    assert float(_causal(model, rb, consts)) == pytest.approx(expected, rel=1e-5)
    # the equality is sharp: editing one history slot changes the loss
    post = np.array(rb.batch.history_post_hashes)
    post[0, 1] = post[0, 2]
    leaked = rb.replace(batch=rb.batch.replace(history_post_hashes=post))
    assert float(_causal(model, leaked, consts)) != pytest.approx(expected, rel=1e-5)


def test_causal_training_learns_and_needs_the_full_softmax(tmp_path):
    seqs = toy_seqs()
    cfg = tiny_cfg(num_steps=30, checkpoint_every=0, learning_rate=1e-2, warmup_steps=3, retrieval_positions="all")
    result = train_retriever(seqs, cfg, tmp_path / "causal")
    assert np.isfinite(result.losses).all() and np.mean(result.losses[-5:]) < np.mean(result.losses[:5]) - 0.5
    with pytest.raises(ValueError, match="full softmax"):
        tiny_cfg(retrieval_positions="all", retrieval_loss="sampled")
    with pytest.raises(ValueError, match="full softmax"):
        train_retriever(seqs, cfg.replace(full_softmax_max_items=10), tmp_path / "big")


def test_the_repeat_term_marks_history_items_and_is_learned(tmp_path):
    from x_reco.eval.retrieval import item_vectors, user_scores, user_vectors
    from x_reco.models.checkpoint import restore_checkpoint

    seqs = toy_seqs()
    cfg = tiny_cfg(
        num_steps=30,
        checkpoint_every=0,
        learning_rate=1e-2,
        warmup_steps=3,
        retrieval_positions="all",
        model_overrides={"repeat_logit": True},
    )
    result = train_retriever(seqs, cfg, tmp_path / "repeat")
    r = float(result.model.repeat_logit.get_value())
    assert r != 0.0  # trained by the softmax like every other parameter
    restored, _ = restore_checkpoint(result.checkpoint_path)
    assert float(restored.repeat_logit.get_value()) == r
    rows, _ = seqs.retrieval_pairs(Split.TEST)
    items = item_vectors(result.model, seqs)
    got = user_scores(result.model, seqs, rows, items, batch_size=16)
    hist = seqs.history.item_idx[rows]
    marked = np.zeros((len(rows), seqs.num_items))
    for i, h in enumerate(hist):
        marked[i, h[h >= 0]] = 1.0
    assert marked.sum() > 0
    want = user_vectors(result.model, seqs, rows, 16) @ items.T + r * marked
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = PhoenixRetriever(model_config_for(tiny_cfg(), seqs), rngs=nnx.Rngs(0))
    assert plain.history_repeats(seqs.batch(rows[:4], 4), seqs.catalogue.post_hashes) is None  # off by default
    with pytest.raises(ValueError, match="repeat_logit trains with the full softmax"):
        train_retriever(seqs, cfg.replace(retrieval_positions="last", retrieval_loss="sampled"), tmp_path / "s")
