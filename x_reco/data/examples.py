"""Typed engagement sequences: the ``EngagementSequences`` value, its ``Split`` codes and its .npz form.

Axes: E examples, S history slots, C candidates, A = 19 actions, I catalogue items, U users,
N authors; u / p / a hashes per user / post / author. Ids are stored once in the catalogue and
referenced by int32 indices (-1 = padding); hash 0 is padding. On disk the value is one ``.npz`` of
flat arrays (the keys of ``_LAYOUT`` plus ``partition``, ``config_json``, ``hash_spec_json``); no
object arrays, so it loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from collections.abc import Mapping

import numpy as np

from x_reco.common.actions import NUM_ACTIONS
from x_reco.common.atomic import atomic_file
from x_reco.common.types import RecsysBatch
from x_reco.data import batches
from x_reco.features.hashing import Hasher, HashSpec


class Split(enum.IntEnum):
    """Example split codes as stored in ``Examples.split`` (int8)."""

    TRAIN = 0
    VAL = 1
    TEST = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: Split | str | int) -> Split:
        """A Split from itself, its label ("train", "val", "test") or its code."""
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown split {value!r}; expected one of {[s.label for s in cls]}") from None
        return cls(value)

    @classmethod
    def codes(cls) -> dict[str, int]:
        """{label: code}, e.g. to map an events table's split column."""
        return {s.label: int(s) for s in cls}


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """Sizes, seed and hashing of the sequence builder."""

    history_len: int = 32
    candidate_len: int = 16
    seed: int = 0
    num_hashes: tuple[int, int, int] = (2, 2, 2)
    vocab_size: int = 100_000
    salt: str = "x-reco-v1"

    def __post_init__(self):
        if self.history_len < 1 or self.candidate_len < 1:
            raise ValueError(f"history_len and candidate_len must be >= 1, got {self}")

    def hash_spec(self, namespace: str) -> HashSpec:
        return HashSpec(
            family="blake2b",
            salt=self.salt,
            namespace=namespace,
            num_hashes=tuple(self.num_hashes),
            vocab_sizes=(self.vocab_size,) * 3,
        )

    @classmethod
    def from_dict(cls, d: Mapping) -> SequenceConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown SequenceConfig keys: {sorted(unknown)}")
        d = dict(d)
        if "num_hashes" in d:
            d["num_hashes"] = tuple(d["num_hashes"])
        return cls(**d)


class _Rows:
    """Row selection shared by the per-example groups (every field leads with E)."""

    def take(self, rows: np.ndarray):
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class Examples(_Rows):
    """One request (or event) per row."""

    example_id: np.ndarray  # [E] int64
    split: np.ndarray  # [E] int8 ``Split`` codes
    user_idx: np.ndarray  # [E] int32 into ``Catalogue.user_ids``
    request_ts: np.ndarray  # [E] int64 seconds
    surface: np.ndarray  # [E] int32
    user_hashes: np.ndarray  # [E, u] int32


@dataclasses.dataclass(frozen=True)
class History(_Rows):
    """The user's engaged events strictly before each request, oldest first, padded at the end."""

    length: np.ndarray  # [E] int32 valid slots
    item_idx: np.ndarray  # [E, S] int32, -1 padding
    author_idx: np.ndarray  # [E, S] int32, -1 padding
    ts: np.ndarray  # [E, S] int64
    surface: np.ndarray  # [E, S] int8
    actions: np.ndarray  # [E, S, A] int8
    post_hashes: np.ndarray  # [E, S, p] int32
    author_hashes: np.ndarray  # [E, S, a] int32


@dataclasses.dataclass(frozen=True)
class Candidates(_Rows):
    """Candidates of each request in a seeded shuffle order; padding last."""

    item_idx: np.ndarray  # [E, C] int32, -1 padding
    actions: np.ndarray  # [E, C, A] int8 labels
    dwell_seconds: np.ndarray  # [E, C] float32, NaN unknown
    exposed: np.ndarray  # [E, C] bool: shown in the log
    sampled: np.ndarray  # [E, C] bool: a sampled negative (never shown)
    post_hashes: np.ndarray  # [E, C, p] int32
    author_hashes: np.ndarray  # [E, C, a] int32


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """Id vocabularies and per-item columns (``item_created_ts``: creation, else first event)."""

    user_ids: np.ndarray  # [U] str
    item_ids: np.ndarray  # [I] str
    author_ids: np.ndarray  # [N] str
    item_author_idx: np.ndarray  # [I] int32
    item_created_ts: np.ndarray  # [I] int64
    post_hashes: np.ndarray  # [I, p] int32
    author_hashes: np.ndarray  # [I, a] int32


# on-disk key -> (group, field, axes, dtype kinds); one letter per axis, "A" is always NUM_ACTIONS
_LAYOUT: dict[str, tuple[str, str, str, str]] = {
    "example_id": ("examples", "example_id", "E", "i"),
    "split": ("examples", "split", "E", "i"),
    "user_idx": ("examples", "user_idx", "E", "i"),
    "request_ts": ("examples", "request_ts", "E", "i"),
    "surface": ("examples", "surface", "E", "i"),
    "user_hashes": ("examples", "user_hashes", "Eu", "i"),
    "hist_len": ("history", "length", "E", "i"),
    "hist_item_idx": ("history", "item_idx", "ES", "i"),
    "hist_author_idx": ("history", "author_idx", "ES", "i"),
    "hist_ts": ("history", "ts", "ES", "i"),
    "hist_surface": ("history", "surface", "ES", "i"),
    "hist_actions": ("history", "actions", "ESA", "i"),
    "hist_post_hashes": ("history", "post_hashes", "ESp", "i"),
    "hist_author_hashes": ("history", "author_hashes", "ESa", "i"),
    "cand_item_idx": ("candidates", "item_idx", "EC", "i"),
    "cand_actions": ("candidates", "actions", "ECA", "i"),
    "cand_dwell_seconds": ("candidates", "dwell_seconds", "EC", "f"),
    "cand_exposed": ("candidates", "exposed", "EC", "b"),
    "cand_sampled": ("candidates", "sampled", "EC", "b"),
    "cand_post_hashes": ("candidates", "post_hashes", "ECp", "i"),
    "cand_author_hashes": ("candidates", "author_hashes", "ECa", "i"),
    "user_ids": ("catalogue", "user_ids", "U", "U"),
    "item_ids": ("catalogue", "item_ids", "I", "U"),
    "author_ids": ("catalogue", "author_ids", "N", "U"),
    "item_author_idx": ("catalogue", "item_author_idx", "I", "i"),
    "item_created_ts": ("catalogue", "item_created_ts", "I", "i"),
    "item_post_hashes": ("catalogue", "post_hashes", "Ip", "i"),
    "item_author_hashes": ("catalogue", "author_hashes", "Ia", "i"),
    "observed_mask": ("", "observed_mask", "A", "i"),
}
_SCALARS = ("partition", "config_json", "hash_spec_json")
_GROUPS = {"examples": Examples, "history": History, "candidates": Candidates, "catalogue": Catalogue}


class SequencesFormatError(ValueError):
    """A sequences file or array mapping lacks a field or has one of the wrong shape or dtype."""


def _check_layout(arrays: Mapping[str, np.ndarray], source: str) -> None:
    missing = [k for k in (*_LAYOUT, *_SCALARS) if k not in arrays]
    if missing:
        raise SequencesFormatError(f"{source}: missing field(s) {missing}")
    sizes: dict[str, tuple[int, str]] = {"A": (NUM_ACTIONS, "the action count")}
    for key, (_, _, axes, kinds) in _LAYOUT.items():
        arr = arrays[key]
        if arr.ndim != len(axes) or arr.dtype.kind not in kinds:
            raise SequencesFormatError(
                f"{source}: field {key!r} has shape {arr.shape} dtype {arr.dtype}, "
                f"expected [{', '.join(axes)}] of kind {kinds!r}"
            )
        for axis, n in zip(axes, arr.shape):
            bound, where = sizes.setdefault(axis, (n, key))
            if n != bound:
                raise SequencesFormatError(
                    f"{source}: field {key!r} has shape {arr.shape}: axis {axis} is {n}, but {bound} in {where}"
                )
    for key in _SCALARS:
        if arrays[key].shape != () or arrays[key].dtype.kind != "U":
            raise SequencesFormatError(
                f"{source}: field {key!r} must be a 0-d string, got {arrays[key].dtype} {arrays[key].shape}"
            )


@dataclasses.dataclass(frozen=True)
class EngagementSequences:
    """Phoenix training / evaluation examples of one partition (built by ``build_sequences``)."""

    examples: Examples
    history: History
    candidates: Candidates
    catalogue: Catalogue
    observed_mask: np.ndarray  # [A] int8: action columns the dataset observes
    partition: str
    config: SequenceConfig
    hash_spec: HashSpec

    # -- sizes and rows ---------------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        return len(self.examples.example_id)

    @property
    def history_len(self) -> int:
        return self.history.item_idx.shape[1]

    @property
    def candidate_len(self) -> int:
        return self.candidates.item_idx.shape[1]

    @property
    def num_items(self) -> int:
        return len(self.catalogue.item_ids)

    def rows(self, split: Split | str) -> np.ndarray:
        """Indices of the examples of ``split``."""
        return np.flatnonzero(self.examples.split == Split.parse(split))

    def take(self, rows: np.ndarray) -> EngagementSequences:
        """The examples at ``rows`` (copies); catalogue and metadata unchanged."""
        return dataclasses.replace(
            self,
            examples=self.examples.take(rows),
            history=self.history.take(rows),
            candidates=self.candidates.take(rows),
        )

    def split_view(self, split: Split | str) -> EngagementSequences:
        return self.take(self.rows(split))

    # -- batches (``x_reco.data.batches``) ----------------------------------------------------------
    def batch(self, rows: np.ndarray, batch_size: int | None = None) -> RecsysBatch:
        """RecsysBatch of example ``rows`` with their own candidates, padded to ``batch_size``."""
        return batches.example_batch(self, rows, batch_size)

    def catalogue_batch(self, rows: np.ndarray, items: np.ndarray, batch_size: int | None = None) -> RecsysBatch:
        """RecsysBatch of ``rows``' users and histories with catalogue ``items`` [R, K] as candidates."""
        return batches.catalogue_batch(self, rows, items, batch_size)

    def labels(
        self, rows: np.ndarray, batch_size: int | None = None, mask_sampled_negative_actions: bool = False
    ) -> batches.RankerLabels:
        return batches.ranker_labels(self, rows, batch_size, mask_sampled_negative_actions)

    def retrieval_pairs(self, split: Split | str) -> tuple[np.ndarray, np.ndarray]:
        return batches.retrieval_pairs(self, split)

    # -- hashing ------------------------------------------------------------------------------------
    def rehash(self, spec: HashSpec) -> EngagementSequences:
        """The same examples with every hash column recomputed with ``spec`` (e.g. fewer table rows)."""
        if len(set(spec.vocab_sizes)) != 1:
            raise ValueError(f"SequenceConfig holds one vocab_size; got vocab_sizes {spec.vocab_sizes}")
        arrays = self.to_arrays()
        arrays.update(hash_arrays(spec, arrays))
        config = dataclasses.replace(
            self.config, vocab_size=spec.vocab_sizes[0], num_hashes=spec.num_hashes, salt=spec.salt
        )
        arrays["config_json"] = np.asarray(json.dumps(dataclasses.asdict(config), sort_keys=True))
        arrays["hash_spec_json"] = np.asarray(json.dumps(spec.to_dict(), sort_keys=True))
        return EngagementSequences.from_arrays(arrays, source="rehash")

    # -- flat arrays and files -------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat on-disk mapping (keys of the datasets spec §11)."""
        out = {
            key: getattr(getattr(self, group) if group else self, name) for key, (group, name, _, _) in _LAYOUT.items()
        }
        out["partition"] = np.asarray(self.partition)
        out["config_json"] = np.asarray(json.dumps(dataclasses.asdict(self.config), sort_keys=True))
        out["hash_spec_json"] = np.asarray(json.dumps(self.hash_spec.to_dict(), sort_keys=True))
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str = "<arrays>") -> EngagementSequences:
        """Parse the flat mapping; SequencesFormatError naming ``source`` and the field if malformed."""
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        _check_layout(arrays, source)
        fields: dict[str, dict[str, np.ndarray]] = {g: {} for g in _GROUPS}
        for key, (group, name, _, _) in _LAYOUT.items():
            if group:
                fields[group][name] = arrays[key]
        try:
            config = SequenceConfig.from_dict(json.loads(str(arrays["config_json"])))
            spec = HashSpec.from_dict(json.loads(str(arrays["hash_spec_json"])))
        except (ValueError, TypeError, KeyError) as exc:
            raise SequencesFormatError(f"{source}: bad config_json or hash_spec_json: {exc}") from exc
        return cls(
            **{g: _GROUPS[g](**f) for g, f in fields.items()},
            observed_mask=arrays["observed_mask"],
            partition=str(arrays["partition"]),
            config=config,
            hash_spec=spec,
        )

    def to_npz(self, path: str | os.PathLike) -> None:
        """Write one compressed .npz atomically (a reader never sees a partial file)."""
        with atomic_file(path, "wb") as fh:
            np.savez_compressed(fh, **self.to_arrays())

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> EngagementSequences:
        with np.load(path, allow_pickle=False) as z:
            return cls.from_arrays({k: z[k] for k in z.files}, source=str(path))


def hash_arrays(spec: HashSpec, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every hash column of the flat mapping, from its id vocabularies and index columns."""
    hasher = Hasher(spec)
    users = hasher.hash_ids("user", arrays["user_ids"].tolist())
    posts = hasher.hash_ids("post", arrays["item_ids"].tolist())
    authors = hasher.hash_ids("author", arrays["author_ids"].tolist())
    item_author = arrays["item_author_idx"]
    cand = arrays["cand_item_idx"]
    cand_author_idx = np.where(cand >= 0, item_author[np.maximum(cand, 0)], -1)
    return {
        "user_hashes": users[arrays["user_idx"]],
        "hist_post_hashes": _gather(posts, arrays["hist_item_idx"]),
        "hist_author_hashes": _gather(authors, arrays["hist_author_idx"]),
        "cand_post_hashes": _gather(posts, cand),
        "cand_author_hashes": _gather(authors, cand_author_idx),
        "item_post_hashes": posts,
        "item_author_hashes": _gather(authors, item_author),
    }


def _gather(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = table[np.maximum(idx, 0)]
    out[idx < 0] = 0
    return out
