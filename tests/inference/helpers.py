"""Cached tiny models, serving sources and jitted request functions shared by the inference tests."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.configs import PhoenixConfig
from x_reco.inference.engine import make_score_fn
from x_reco.inference.params import ServingModel, serving_model
from x_reco.inference.quantize import make_variant
from x_reco.models import PhoenixRanker
from x_reco.models.testing import random_batch

F32_TOL = 1e-5
BF16_PROB_TOL = 1e-2
HISTORY_FIELDS = ("history_post_hashes", "history_author_hashes", "history_actions", "history_product_surface")
CANDIDATE_FIELDS = ("candidate_post_hashes", "candidate_author_hashes", "candidate_product_surface")


def tiny(dtype: str = "float32", mode: str = "shared", **kw) -> PhoenixConfig:
    return PhoenixConfig.tiny(compute_dtype=dtype, candidate_position_mode=mode, **kw)


@functools.cache
def ranker(mode: str = "shared", init: str = "xavier") -> PhoenixRanker:
    return PhoenixRanker(tiny(mode=mode, init=init), rngs=nnx.Rngs(params=0))


@functools.cache
def source(mode: str = "shared") -> ServingModel:
    """f32-compute source of the tiny ranker (params are the model's own arrays)."""
    return serving_model(ranker(mode))


@functools.cache
def variant(name: str, compute_dtype: str = "float32", mode: str = "shared") -> ServingModel:
    return make_variant(source(mode), name).with_compute_dtype(compute_dtype)


@functools.cache
def score_fn(
    name: str = "f32",
    compute_dtype: str = "float32",
    path: str = "split",
    chunk: int | None = None,
    mode: str = "shared",
):
    sm = variant(name, compute_dtype, mode)
    fn = jax.jit(make_score_fn(sm, path, chunk))
    return lambda batch: fn(sm.params, batch)


def logits(batch: RecsysBatch, **kw) -> np.ndarray:
    return np.asarray(score_fn(**kw)(batch).logits_bca)


def batch(seed: int = 0, b: int = 4, **kw) -> RecsysBatch:
    return random_batch(tiny(), b, seed=seed, **kw)


def model_logits(b: RecsysBatch, mode: str = "shared") -> np.ndarray:
    """The committed NNX ranker's dense f32 path: the ground truth of every serving path."""
    return np.asarray(_model_forward(ranker(mode), b))


_model_forward = nnx.jit(lambda m, b: m(b).logits_bca)


def valid_candidates(b: RecsysBatch) -> np.ndarray:
    return np.asarray(b.candidate_post_hashes)[:, :, 0] != 0


def edit(b: RecsysBatch, **fields) -> RecsysBatch:
    return dataclasses.replace(b, **{k: np.array(v) for k, v in fields.items()})


def pad(b: RecsysBatch, history: int = 0, candidates: int = 0) -> RecsysBatch:
    """Extra all-zero history slots / candidate slots at the end."""

    def widen(x, extra):
        x = np.asarray(x)
        return np.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))

    fields = {n: widen(getattr(b, n), history) for n in HISTORY_FIELDS}
    fields.update({n: widen(getattr(b, n), candidates) for n in CANDIDATE_FIELDS})
    return edit(b, **fields)


def truncate_history(b: RecsysBatch, lengths: np.ndarray) -> RecsysBatch:
    """Keep only the first ``lengths[row]`` history events of every row (padding the rest)."""
    out = {}
    for name in HISTORY_FIELDS:
        x = np.array(getattr(b, name))
        x[np.arange(x.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = 0
        out[name] = x
    return edit(b, **out)
