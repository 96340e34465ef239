"""Device-side pytrees of the Phoenix models (batch, embeddings, outputs) and a host-side batch check.

Axis legend (see ``x_reco.common.actions``): B batch, S history slots, C candidates, T = 1+S+C,
P = 1+S, D width, A actions; Nu/Ni/Na hashes per user/post/author.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


class BatchSpec(Protocol):
    """What ``validate_batch`` reads from a model config (``PhoenixConfig`` has it; common sits below configs)."""

    @property
    def num_user_hashes(self) -> int: ...
    @property
    def num_post_hashes(self) -> int: ...
    @property
    def num_author_hashes(self) -> int: ...
    @property
    def num_history_actions(self) -> int: ...
    @property
    def user_vocab_size(self) -> int: ...
    @property
    def post_vocab_size(self) -> int: ...
    @property
    def author_vocab_size(self) -> int: ...


@struct.dataclass
class RecsysBatch:
    """Hashed request batch (spec §3.2). Hash 0 is padding; validity comes only from hash column 0."""

    user_hashes: jax.Array  # [B, Nu] int32
    history_post_hashes: jax.Array  # [B, S, Ni] int32
    history_author_hashes: jax.Array  # [B, S, Na] int32
    history_actions: jax.Array  # [B, S, A_in] float32 in {0, 1}
    history_product_surface: jax.Array  # [B, S] int32
    candidate_post_hashes: jax.Array  # [B, C, Ni] int32
    candidate_author_hashes: jax.Array  # [B, C, Na] int32
    candidate_product_surface: jax.Array  # [B, C] int32

    @property
    def batch_size(self) -> int:
        return self.user_hashes.shape[0]

    @property
    def num_history(self) -> int:
        return self.history_post_hashes.shape[1]

    @property
    def num_candidates(self) -> int:
        return self.candidate_post_hashes.shape[1]

    @property
    def user_valid_b(self) -> jax.Array:
        return self.user_hashes[:, 0] != 0

    @property
    def history_valid_bs(self) -> jax.Array:
        return self.history_post_hashes[:, :, 0] != 0

    @property
    def candidate_valid_bc(self) -> jax.Array:
        return self.candidate_post_hashes[:, :, 0] != 0


@struct.dataclass
class RecsysEmbeddings:
    """Looked-up hash embeddings, f32, in place of the table gather (spec §3.2)."""

    user: jax.Array  # [B, Nu, D]
    history_post: jax.Array  # [B, S, Ni, D]
    history_author: jax.Array  # [B, S, Na, D]
    candidate_post: jax.Array  # [B, C, Ni, D]
    candidate_author: jax.Array  # [B, C, Na, D]


@struct.dataclass
class TokenInputs:
    """Assembled trunk inputs: prefix [user | history] and candidate tokens in the compute dtype."""

    prefix_bpd: jax.Array  # [B, P, D]
    candidates_bcd: jax.Array  # [B, C, D]
    prefix_valid_bp: jax.Array  # [B, P] bool
    candidate_valid_bc: jax.Array  # [B, C] bool


@struct.dataclass
class RankerOutput:
    """Ranker logits (f32, padded candidates included) and which candidates are real."""

    logits_bca: jax.Array  # [B, C, A] f32
    candidate_mask_bc: jax.Array  # [B, C] bool

    @property
    def probs_bca(self) -> jax.Array:
        """Independent per-action sigmoid probabilities."""
        return jax.nn.sigmoid(self.logits_bca)


@struct.dataclass
class RetrievalOutput:
    """Unit user vectors and the exact top-k corpus items, sorted by descending score."""

    user_representation: jax.Array  # [B, D] f32
    top_k_indices: jax.Array  # [B, K] int32
    top_k_scores: jax.Array  # [B, K] f32


def _expect(errors: list[str], name: str, arr, shape: tuple, dtype) -> None:
    arr = np.asarray(arr)
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        errors.append(f"{name}: shape {arr.shape}, expected {tuple('?' if s is None else s for s in shape)}")
    if arr.dtype != np.dtype(dtype):
        errors.append(f"{name}: dtype {arr.dtype}, expected {np.dtype(dtype)}")


def validate_batch(batch: RecsysBatch, config: BatchSpec | None = None) -> None:
    """Host-side debug check of a RecsysBatch (never call inside jit). Raises ValueError listing problems.

    Checks shapes and dtypes agree across fields (and with ``config``: hash counts, action width,
    hash ranges [0, V)), actions in {0, 1}, and that valid history slots form a prefix (end padding).
    """
    b = {f.name: np.asarray(getattr(batch, f.name)) for f in dataclasses.fields(batch)}
    B, S, Ni = b["history_post_hashes"].shape if b["history_post_hashes"].ndim == 3 else (None, None, None)
    C = b["candidate_post_hashes"].shape[1] if b["candidate_post_hashes"].ndim == 3 else None
    nu = config.num_user_hashes if config else None
    na = config.num_author_hashes if config else None
    ai = config.num_history_actions if config else None
    if config is not None and Ni is not None and Ni != config.num_post_hashes:
        raise ValueError(f"history_post_hashes has {Ni} hashes, config expects {config.num_post_hashes}")
    errors: list[str] = []
    _expect(errors, "user_hashes", b["user_hashes"], (B, nu), np.int32)
    _expect(errors, "history_post_hashes", b["history_post_hashes"], (B, S, Ni), np.int32)
    _expect(errors, "history_author_hashes", b["history_author_hashes"], (B, S, na), np.int32)
    _expect(errors, "history_actions", b["history_actions"], (B, S, ai), np.float32)
    _expect(errors, "history_product_surface", b["history_product_surface"], (B, S), np.int32)
    _expect(errors, "candidate_post_hashes", b["candidate_post_hashes"], (B, C, Ni), np.int32)
    _expect(errors, "candidate_author_hashes", b["candidate_author_hashes"], (B, C, na), np.int32)
    _expect(errors, "candidate_product_surface", b["candidate_product_surface"], (B, C), np.int32)
    if errors:
        raise ValueError("invalid RecsysBatch: " + "; ".join(errors))
    if config is not None:
        ranges = {
            "user_hashes": config.user_vocab_size,
            "history_post_hashes": config.post_vocab_size,
            "candidate_post_hashes": config.post_vocab_size,
            "history_author_hashes": config.author_vocab_size,
            "candidate_author_hashes": config.author_vocab_size,
        }
        for name, vocab in ranges.items():
            if b[name].size and (b[name].min() < 0 or b[name].max() >= vocab):
                errors.append(f"{name}: values in [{b[name].min()}, {b[name].max()}], expected [0, {vocab})")
    if not np.isin(b["history_actions"], (0.0, 1.0)).all():
        errors.append("history_actions: values outside {0, 1}")
    valid = b["history_post_hashes"][:, :, 0] != 0
    lengths = valid.sum(axis=1)
    not_prefix = np.flatnonzero((valid != (np.arange(valid.shape[1])[None, :] < lengths[:, None])).any(axis=1))
    if not_prefix.size:
        errors.append(f"history: valid slots are not a prefix (end padding) in rows {not_prefix.tolist()}")
    if errors:
        raise ValueError("invalid RecsysBatch: " + "; ".join(errors))


def history_lengths(batch: RecsysBatch) -> jax.Array:
    """Valid history length L_b per row, int32 [B]."""
    return jnp.sum(batch.history_valid_bs, axis=1, dtype=jnp.int32)
