"""Cached tiny models and jitted forwards shared by the Phoenix model tests (tiny preset, B=3)."""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.configs import PhoenixConfig
from x_reco.models import PhoenixRanker, PhoenixRetriever
from x_reco.models.masks import ranker_dense_mask, ranker_positions
from x_reco.models.testing import random_batch
from x_reco.models.trunk import run_layers

B = 3
F32_TOL = 1e-5
BF16_TOL = 1e-2


def tiny(mode: str = "shared", dtype: str = "float32", **kw) -> PhoenixConfig:
    return PhoenixConfig.tiny(candidate_position_mode=mode, compute_dtype=dtype, **kw)


@functools.cache
def ranker(mode: str = "shared", dtype: str = "float32", init: str = "xavier") -> PhoenixRanker:
    return PhoenixRanker(tiny(mode, dtype, init=init), rngs=nnx.Rngs(params=0))


@functools.cache
def retrieval(dtype: str = "float32") -> PhoenixRetriever:
    return PhoenixRetriever(tiny(dtype=dtype), rngs=nnx.Rngs(params=1))


def batch(seed: int = 0, **kw) -> RecsysBatch:
    return random_batch(tiny(), kw.pop("batch_size", B), seed=seed, **kw)


forward = nnx.jit(lambda m, b: m(b))  # RankerOutput
_logits_emb = nnx.jit(lambda m, b, e: m.forward_embeddings(b, e).logits_bca)
_user = nnx.jit(lambda m, b: m.encode_user(b))
_user_emb = nnx.jit(lambda m, b, e: m.encode_user(b, e))
_user_seq = nnx.jit(lambda m, b: m.user_sequence(b)[0])
_cands = nnx.jit(lambda m, b: m.encode_candidates(b))


def logits(model, b, emb=None) -> np.ndarray:
    """Jitted ranker logits [B, C, A] as f32 numpy."""
    return np.asarray(forward(model, b).logits_bca if emb is None else _logits_emb(model, b, emb))


@nnx.jit
def _prefix_hidden(model, b):
    t = model.tokens(b)
    h = jnp.concatenate([t.prefix_bpd, t.candidates_bcd], axis=1)
    pos = ranker_positions(t.prefix_valid_bp[:, 1:], t.candidates_bcd.shape[1], model.config.candidate_position_mode)
    h, _, _ = run_layers(model.layers, h, pos, ranker_dense_mask(t.prefix_valid_bp, t.candidate_valid_bc))
    return h[:, : t.prefix_bpd.shape[1]]


def prefix_hidden(model, b) -> np.ndarray:
    """Dense-path trunk outputs at the [user | history] positions, [B, P, D]."""
    return np.asarray(_prefix_hidden(model, b))


def user_rep(model, b, emb=None) -> np.ndarray:
    return np.asarray(_user(model, b) if emb is None else _user_emb(model, b, emb))


def user_seq(model, b) -> np.ndarray:
    return np.asarray(_user_seq(model, b))


def cand_reps(model, b) -> np.ndarray:
    return np.asarray(_cands(model, b))


def edit(b: RecsysBatch, **fields) -> RecsysBatch:
    """Copy of ``b`` with numpy fields replaced (values copied, never aliased)."""
    return dataclasses.replace(b, **{k: np.array(v) for k, v in fields.items()})


def take_rows(b: RecsysBatch, rows) -> RecsysBatch:
    return type(b)(**{f.name: np.asarray(getattr(b, f.name))[rows] for f in dataclasses.fields(b)})


def take_candidates(b: RecsysBatch, idx) -> RecsysBatch:
    """Keep / reorder candidate slots ``idx`` (list or slice) of every row."""
    return edit(
        b,
        candidate_post_hashes=np.asarray(b.candidate_post_hashes)[:, idx],
        candidate_author_hashes=np.asarray(b.candidate_author_hashes)[:, idx],
        candidate_product_surface=np.asarray(b.candidate_product_surface)[:, idx],
    )


def pad_history(b: RecsysBatch, extra: int, left: bool = False) -> RecsysBatch:
    """Add ``extra`` all-zero history slots at the end (or, to show it is wrong, at the start)."""

    def pad(x):
        x = np.asarray(x)
        width = [(0, 0)] * x.ndim
        width[1] = (extra, 0) if left else (0, extra)
        return np.pad(x, width)

    names = ("history_post_hashes", "history_author_hashes", "history_actions", "history_product_surface")
    return edit(b, **{n: pad(getattr(b, n)) for n in names})


def pad_candidates(b: RecsysBatch, extra: int) -> RecsysBatch:
    names = ("candidate_post_hashes", "candidate_author_hashes", "candidate_product_surface")

    def pad(x):
        x = np.asarray(x)
        return np.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))

    return edit(b, **{n: pad(getattr(b, n)) for n in names})
