"""PhoenixConfig: the one frozen config of the Phoenix ranker and retriever, with presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import jax.numpy as jnp

from x_reco.common.actions import ACTIONS
from x_reco.features.hashing import HashSpec

POSITION_MODES = ("shared", "reference")
INIT_MODES = ("xavier", "upstream_zeros")
USER_POOLS = (
    "mean",
    "last",
)  # the retriever's user vector: masked mean of the user tower (spec §9), or its last valid position
_HASH_FIELDS = (
    "num_user_hashes",
    "num_post_hashes",
    "num_author_hashes",
    "user_vocab_size",
    "post_vocab_size",
    "author_vocab_size",
)


def ffn_size(emb_size: int, widening_factor: float) -> int:
    """Gated-FFN hidden width: ``int(wf * D) * 2 // 3`` rounded up to a multiple of 8 (spec §6.5)."""
    x = int(widening_factor * emb_size) * 2 // 3
    return x + ((8 - x) % 8)


def _dtype_name(value: Any, field: str) -> str:
    try:
        return jnp.dtype(value).name
    except TypeError as err:
        raise ValueError(f"{field}={value!r} is not a dtype") from err


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PhoenixConfig:
    """Shape, numerics and semantics of a Phoenix ranker / retriever (spec §2.1).

    Dtypes are stored as canonical names ("bfloat16"); use ``dtype`` / ``param_jnp_dtype`` for jnp
    types. ``hash_spec=None`` derives a default blake2b spec from the hash counts and table rows.
    """

    emb_size: int
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    key_size: int
    widening_factor: float
    attn_output_multiplier: float
    num_user_hashes: int
    num_post_hashes: int
    num_author_hashes: int
    user_vocab_size: int
    post_vocab_size: int
    author_vocab_size: int
    product_surface_vocab_size: int = 16
    history_action_names: tuple[str, ...] = ACTIONS
    output_action_names: tuple[str, ...] = ACTIONS
    history_len: int = 32
    candidate_len: int = 8
    candidate_position_mode: str = "shared"
    compute_dtype: str = "bfloat16"
    param_dtype: str = "float32"
    logits_dtype: str = "float32"
    hash_spec: HashSpec | None = None
    init: str = "xavier"
    table_init_std: float = 1.0
    user_pool: str = "mean"
    # Retriever only: a learned scalar r added to the score of every item already in the request's
    # history, u·v + r (PhoenixRetriever.history_repeats); off in the spec's architecture.
    repeat_logit: bool = False

    def __post_init__(self):
        for name in ("compute_dtype", "param_dtype", "logits_dtype"):
            object.__setattr__(self, name, _dtype_name(getattr(self, name), name))
        for name in ("history_action_names", "output_action_names"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.hash_spec is None and self._hash_fields_valid():
            object.__setattr__(self, "hash_spec", HashSpec(num_hashes=self.num_hashes, vocab_sizes=self.vocab_sizes))
        elif isinstance(self.hash_spec, dict):
            object.__setattr__(self, "hash_spec", HashSpec.from_dict(self.hash_spec))
        self._validate()

    def _hash_fields_valid(self) -> bool:
        return min(self.num_hashes) >= 1 and min(self.vocab_sizes) >= 2

    def _validate(self) -> None:
        errors = []
        positive = ("emb_size", "num_layers", "num_q_heads", "num_kv_heads", "key_size", "history_len", "candidate_len")
        errors += [f"{n}={getattr(self, n)} must be >= 1" for n in positive if getattr(self, n) < 1]
        if self.num_kv_heads >= 1 and self.num_q_heads % self.num_kv_heads:
            errors.append(f"num_q_heads={self.num_q_heads} not divisible by num_kv_heads={self.num_kv_heads}")
        if self.key_size % 2:
            errors.append(f"key_size={self.key_size} must be even (RoPE half-split)")
        if self.widening_factor <= 0 or self.ffn_size < 8:
            errors.append(f"widening_factor={self.widening_factor} gives ffn_size={self.ffn_size}")
        errors += [f"{n}={getattr(self, n)} must be >= 1" for n in _HASH_FIELDS[:3] if getattr(self, n) < 1]
        errors += [f"{n}={getattr(self, n)} must be >= 2" for n in _HASH_FIELDS[3:] if getattr(self, n) < 2]
        if self.product_surface_vocab_size < 1:
            errors.append(f"product_surface_vocab_size={self.product_surface_vocab_size} must be >= 1")
        for name in ("history_action_names", "output_action_names"):
            names = getattr(self, name)
            if len(names) < 1 or len(set(names)) != len(names):
                errors.append(f"{name} must be non-empty and unique, got {len(names)} names")
        if self.candidate_position_mode not in POSITION_MODES:
            errors.append(f"candidate_position_mode={self.candidate_position_mode!r} not in {POSITION_MODES}")
        if self.init not in INIT_MODES:
            errors.append(f"init={self.init!r} not in {INIT_MODES}")
        if self.user_pool not in USER_POOLS:
            errors.append(f"user_pool={self.user_pool!r} not in {USER_POOLS}")
        if self.table_init_std < 0:
            errors.append(f"table_init_std={self.table_init_std} must be >= 0")
        if self.hash_spec is None:
            pass  # hash counts / rows invalid: already reported above
        elif not isinstance(self.hash_spec, HashSpec):
            errors.append(f"hash_spec must be a HashSpec, got {type(self.hash_spec).__name__}")
        elif (tuple(self.hash_spec.num_hashes), tuple(self.hash_spec.vocab_sizes)) != (
            self.num_hashes,
            self.vocab_sizes,
        ):
            errors.append(
                f"hash_spec K={self.hash_spec.num_hashes} V={self.hash_spec.vocab_sizes} does not match "
                f"config K={self.num_hashes} V={self.vocab_sizes}"
            )
        if errors:
            raise ValueError("invalid PhoenixConfig: " + "; ".join(errors))

    # -- derived values ------------------------------------------------------------------------
    @property
    def ffn_size(self) -> int:
        return ffn_size(self.emb_size, self.widening_factor)

    @property
    def num_hashes(self) -> tuple[int, int, int]:
        return (self.num_user_hashes, self.num_post_hashes, self.num_author_hashes)

    @property
    def vocab_sizes(self) -> tuple[int, int, int]:
        return (self.user_vocab_size, self.post_vocab_size, self.author_vocab_size)

    @property
    def num_actions(self) -> int:
        return len(self.output_action_names)

    @property
    def num_history_actions(self) -> int:
        return len(self.history_action_names)

    @property
    def dtype(self):
        """Compute dtype as a jnp dtype."""
        return jnp.dtype(self.compute_dtype)

    @property
    def param_jnp_dtype(self):
        return jnp.dtype(self.param_dtype)

    # -- variants and presets ------------------------------------------------------------------
    def replace(self, **overrides: Any) -> PhoenixConfig:
        """Return a copy with ``overrides``; unknown keys raise ValueError.

        If hash counts or table rows change and ``hash_spec`` is not given, the spec follows them.
        """
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown PhoenixConfig keys: {unknown}")
        if "hash_spec" not in overrides and any(k in overrides for k in _HASH_FIELDS):
            probe = {k: overrides.get(k, getattr(self, k)) for k in _HASH_FIELDS}
            if min(probe[k] for k in _HASH_FIELDS[:3]) < 1 or min(probe[k] for k in _HASH_FIELDS[3:]) < 2:
                return dataclasses.replace(self, **overrides, hash_spec=None)  # __post_init__ reports
            overrides["hash_spec"] = dataclasses.replace(
                self.hash_spec,
                num_hashes=tuple(probe[k] for k in _HASH_FIELDS[:3]),
                vocab_sizes=tuple(probe[k] for k in _HASH_FIELDS[3:]),
            )
        return dataclasses.replace(self, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> PhoenixConfig:
        """Unit-test model: distinct prime-ish sizes so a swapped axis fails; 2 layers."""
        base = cls(
            emb_size=32,
            num_layers=2,
            num_q_heads=4,
            num_kv_heads=2,
            key_size=8,
            widening_factor=2.0,
            attn_output_multiplier=0.125,
            num_user_hashes=2,
            num_post_hashes=3,
            num_author_hashes=1,
            user_vocab_size=101,
            post_vocab_size=211,
            author_vocab_size=53,
            product_surface_vocab_size=7,
            history_len=11,
            candidate_len=5,
        )
        return base.replace(**overrides)

    @classmethod
    def reference_mini(cls, **overrides: Any) -> PhoenixConfig:
        """The reference ``run_ranker.py`` / ``run_retrieval.py`` config (parity tests)."""
        base = cls(
            emb_size=128,
            num_layers=2,
            num_q_heads=2,
            num_kv_heads=2,
            key_size=64,
            widening_factor=2.0,
            attn_output_multiplier=0.125,
            num_user_hashes=2,
            num_post_hashes=2,
            num_author_hashes=2,
            user_vocab_size=100_000,
            post_vocab_size=100_000,
            author_vocab_size=100_000,
            history_len=32,
            candidate_len=8,
        )
        return base.replace(**overrides)

    @classmethod
    def oss_mini(cls, **overrides: Any) -> PhoenixConfig:
        """Shape of the May 2026 released mini artifact (Hkv = Hq = 4 and multiplier assumed)."""
        return (
            cls.reference_mini()
            .replace(
                num_layers=4,
                num_q_heads=4,
                num_kv_heads=4,
                key_size=32,
                user_vocab_size=1_000_000,
                post_vocab_size=1_000_000,
                author_vocab_size=1_000_000,
                history_len=127,
                candidate_len=64,
            )
            .replace(**overrides)
        )

    @classmethod
    def large(cls, **overrides: Any) -> PhoenixConfig:
        """Benchmark model (the fork's "large" config)."""
        return (
            cls.oss_mini()
            .replace(
                emb_size=512,
                num_layers=12,
                num_q_heads=8,
                num_kv_heads=4,
                key_size=64,
                history_len=512,
                candidate_len=64,
            )
            .replace(**overrides)
        )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PhoenixConfig:
        """Preset by name ("tiny", "reference-mini", "oss-mini", "large"; "_" also accepted)."""
        key = name.replace("-", "_")
        if key not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(p.replace('_', '-') for p in PRESETS)}")
        return getattr(cls, key)(**overrides)

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists when dumped; ``hash_spec`` nested)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["hash_spec"] = self.hash_spec.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhoenixConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown PhoenixConfig keys: {unknown}")
        data = dict(data)
        if isinstance(data.get("hash_spec"), dict):
            data["hash_spec"] = HashSpec.from_dict(data["hash_spec"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """16-hex sha256 of the canonical JSON; keys caches and checkpoints to this exact config."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


PRESETS = ("tiny", "reference_mini", "oss_mini", "large")
