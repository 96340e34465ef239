"""The one hashing stage of x-reco: entity ids -> K hash-table rows in [1, V-1]; 0 is padding.

Two families (phoenix-model spec §4, datasets spec §11):
  * ``blake2b`` (default) for string ids: keyed BLAKE2b of ``f"{ns}|{k}|{id}"``, 8-byte digest read
    little-endian, ``1 + (u64 mod (V - 1))``; ns = ``<partition>:<user|post|author>``.
  * ``splitmix64`` for numeric uint64 ids, vectorized in numpy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence

import numpy as np

ENTITIES = ("user", "post", "author")
_ENTITY_CODE = {"user": 1, "post": 2, "author": 3}
_M64 = (1 << 64) - 1


@dataclasses.dataclass(frozen=True, slots=True)
class HashSpec:
    """Hash family, salt/seed, namespace, and K (hashes) and V (rows) per entity."""

    family: str = "blake2b"
    salt: str = "x-reco-v1"
    seed: int = 0
    namespace: str = "synthetic"
    num_hashes: tuple[int, int, int] = (2, 2, 2)  # user, post, author
    vocab_sizes: tuple[int, int, int] = (100_000, 100_000, 100_000)

    def __post_init__(self):
        if self.family not in ("blake2b", "splitmix64"):
            raise ValueError(f"unknown hash family {self.family!r}")
        if len(self.num_hashes) != 3 or min(self.num_hashes) < 1:
            raise ValueError(f"num_hashes must be 3 ints >= 1, got {self.num_hashes}")
        if len(self.vocab_sizes) != 3 or min(self.vocab_sizes) < 2:
            raise ValueError(f"vocab_sizes must be 3 ints >= 2, got {self.vocab_sizes}")

    def k(self, entity: str) -> int:
        return self.num_hashes[ENTITIES.index(entity)]

    def v(self, entity: str) -> int:
        return self.vocab_sizes[ENTITIES.index(entity)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HashSpec:
        d = dict(d)
        d["num_hashes"] = tuple(d["num_hashes"])
        d["vocab_sizes"] = tuple(d["vocab_sizes"])
        return cls(**d)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def check_compatible(self, other: HashSpec, where: str = "") -> None:
        """Raise ValueError if ``other`` would map ids to different rows."""
        if self != other:
            raise ValueError(f"HashSpec mismatch{(' ' + where) if where else ''}: {self} != {other}")


def blake2b_hash(ns: str, k: int, entity_id: str, vocab: int, salt: str) -> int:
    """One blake2b hash of a string id; value in [1, vocab-1]."""
    h = hashlib.blake2b(f"{ns}|{k}|{entity_id}".encode(), digest_size=8, key=salt.encode())
    return 1 + int.from_bytes(h.digest(), "little") % (vocab - 1)


def mix64_int(z: int) -> int:
    """Pure-Python big-integer splitmix64 finalizer (the oracle for the vectorized version)."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mix64(z: np.ndarray) -> np.ndarray:
    """Vectorized splitmix64 finalizer on uint64 arrays (wrap-around arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def splitmix64_hashes(ids: np.ndarray, entity: str, k: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Hash uint64 ids -> int32 [..., k] with values in [1, vocab-1]."""
    ids = np.asarray(ids, dtype=np.uint64)
    out = np.empty(ids.shape + (k,), dtype=np.int32)
    for j in range(k):
        s = mix64_int(((seed << 16) | (_ENTITY_CODE[entity] << 8) | j) & _M64)
        out[..., j] = (1 + mix64(ids ^ np.uint64(s)) % np.uint64(vocab - 1)).astype(np.int32)
    return out


class Hasher:
    """Memoizing hasher for one ``HashSpec``: ids -> int32 [..., K] rows, ``None``/"" -> padding 0."""

    def __init__(self, spec: HashSpec):
        self.spec = spec
        self._memo: dict[tuple[str, str], tuple[int, ...]] = {}

    def _one(self, entity: str, entity_id: str) -> tuple[int, ...]:
        key = (entity, entity_id)
        hit = self._memo.get(key)
        if hit is None:
            ns = f"{self.spec.namespace}:{entity}"
            vocab = self.spec.v(entity)
            hit = tuple(blake2b_hash(ns, k, entity_id, vocab, self.spec.salt) for k in range(self.spec.k(entity)))
            self._memo[key] = hit
        return hit

    def hash_ids(self, entity: str, ids: Iterable | np.ndarray) -> np.ndarray:
        """Hash an array of ids (any shape); ``None`` or "" entries give all-zero rows."""
        arr = np.asarray(ids, dtype=object)
        k = self.spec.k(entity)
        if self.spec.family == "splitmix64":
            valid = np.array([x is not None and x != "" for x in arr.ravel()], dtype=bool).reshape(arr.shape)
            numeric = np.where(valid, arr, 0).astype(np.uint64)
            out = splitmix64_hashes(numeric, entity, k, self.spec.v(entity), self.spec.seed)
            out[~valid] = 0
            return out
        flat = arr.ravel()
        out = np.zeros((flat.size, k), dtype=np.int32)
        for i, x in enumerate(flat):
            if x is None or x == "":
                continue
            out[i] = self._one(entity, str(x))
        return out.reshape(arr.shape + (k,))

    def table(self, entity: str, unique_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Map each distinct id to its int32 [K] row (for vectorized gathers over big tables)."""
        hashed = self.hash_ids(entity, list(unique_ids))
        return {str(i): hashed[n] for n, i in enumerate(unique_ids)}
