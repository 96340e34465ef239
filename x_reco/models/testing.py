"""Seeded random valid RecsysBatch builders for tests and benchmarks (host-side numpy)."""

from __future__ import annotations

import numpy as np

from x_reco.common.types import RecsysBatch, RecsysEmbeddings
from x_reco.configs.phoenix import PhoenixConfig


def default_lengths(batch_size: int, max_len: int, rng: np.random.Generator, *, min_len: int = 0) -> np.ndarray:
    """Row 0 full, row 1 empty (or ``min_len``), further rows random in [min_len, max_len]."""
    lengths = rng.integers(min_len, max_len + 1, size=batch_size)
    lengths[0] = max_len
    if batch_size > 1:
        lengths[1] = min_len
    return lengths.astype(np.int32)


def random_batch(
    config: PhoenixConfig,
    batch_size: int = 3,
    *,
    history_len: int | None = None,
    candidate_len: int | None = None,
    history_lengths: np.ndarray | None = None,
    candidate_lengths: np.ndarray | None = None,
    action_rate: float = 0.3,
    seed: int = 0,
) -> RecsysBatch:
    """A valid random batch: hashes in [1, V-1], padding (all zeros) at the end of each row.

    Default history lengths: row 0 full, row 1 empty, others random. Default candidate lengths:
    row 0 full, row 1 a single candidate, others random in [1, C]. About one valid history slot in
    five carries no action at all. Arrays are numpy (int32 / float32); ``jax.device_put`` the result to move it.
    """
    rng = np.random.default_rng(seed)
    b = batch_size
    s = config.history_len if history_len is None else history_len
    c = config.candidate_len if candidate_len is None else candidate_len
    if history_lengths is None:
        history_lengths = default_lengths(b, s, rng)
    if candidate_lengths is None:
        candidate_lengths = default_lengths(b, c, rng, min_len=min(1, c))
    h_len, c_len = np.asarray(history_lengths, np.int32), np.asarray(candidate_lengths, np.int32)
    hist_valid = np.arange(s)[None, :] < h_len[:, None]
    cand_valid = np.arange(c)[None, :] < c_len[:, None]

    def hashes(shape, vocab, valid):
        return (rng.integers(1, vocab, size=shape) * valid[..., None]).astype(np.int32)

    def surfaces(valid):
        return (rng.integers(0, config.product_surface_vocab_size, valid.shape) * valid).astype(np.int32)

    engaged = (rng.random((b, s)) < 0.8) & hist_valid  # about 1 in 5 valid slots carries no action
    actions = (rng.random((b, s, config.num_history_actions)) < action_rate) * engaged[..., None]
    return RecsysBatch(
        user_hashes=rng.integers(1, config.user_vocab_size, size=(b, config.num_user_hashes)).astype(np.int32),
        history_post_hashes=hashes((b, s, config.num_post_hashes), config.post_vocab_size, hist_valid),
        history_author_hashes=hashes((b, s, config.num_author_hashes), config.author_vocab_size, hist_valid),
        history_actions=actions.astype(np.float32),
        history_product_surface=surfaces(hist_valid),
        candidate_post_hashes=hashes((b, c, config.num_post_hashes), config.post_vocab_size, cand_valid),
        candidate_author_hashes=hashes((b, c, config.num_author_hashes), config.author_vocab_size, cand_valid),
        candidate_product_surface=surfaces(cand_valid),
    )


def random_embeddings(config: PhoenixConfig, batch: RecsysBatch, *, seed: int = 0) -> RecsysEmbeddings:
    """Random f32 N(0, 1) embeddings shaped for ``batch`` (zero at padded hashes, like a table gather)."""
    rng = np.random.default_rng(seed)

    def emb(hashes):
        hashes = np.asarray(hashes)
        x = rng.standard_normal(hashes.shape + (config.emb_size,)).astype(np.float32)
        return x * (hashes != 0)[..., None]

    return RecsysEmbeddings(
        user=emb(batch.user_hashes),
        history_post=emb(batch.history_post_hashes),
        history_author=emb(batch.history_author_hashes),
        candidate_post=emb(batch.candidate_post_hashes),
        candidate_author=emb(batch.candidate_author_hashes),
    )
