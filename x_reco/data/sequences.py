"""Engagement sequences: Phoenix training/evaluation examples built from the events table.

``build_sequences`` returns an ``EngagementSequences`` (``x_reco.data.examples``: its fields, axes
and .npz layout). History is oldest -> newest, strictly before the request (key = (ts, src_row)),
truncated to the most recent S and padded at the end. Candidate order is a deterministic shuffle
seeded by (seed, example_id); padded candidates come last. Whether a dataset gets one example per
event (with sampled negatives) or per request is its registry record's ``example_kind``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS, NUM_ACTIONS
from x_reco.data.examples import EngagementSequences, SequenceConfig, Split, hash_arrays
from x_reco.data.registry import DatasetSpec, ExampleKind, dataset_spec
from x_reco.features.hashing import mix64


@dataclasses.dataclass
class _Vocab:
    user_ids: np.ndarray
    item_ids: np.ndarray
    author_ids: np.ndarray
    item_author_idx: np.ndarray
    item_created_ts: np.ndarray


def build_sequences(
    events: pd.DataFrame,
    items: pd.DataFrame,
    partition: str,
    config: SequenceConfig = SequenceConfig(),
) -> EngagementSequences:
    """Build the examples of one partition from its events (see module docstring)."""
    spec = dataset_spec(partition)
    events = events.sort_values(["user_id", "ts", "src_row"], kind="mergesort").reset_index(drop=True)
    vocab = _vocabularies(events, items)
    ev = _event_arrays(events, vocab, spec)
    if spec.example_kind == ExampleKind.PER_EVENT:
        ex = _per_event_examples(ev, len(vocab.item_ids), config)
    else:
        ex = _per_request_examples(events, ev, config)
    ex.update(_history(ev, ex["user_idx"], ex["request_pos"], config.history_len))
    del ex["request_pos"]
    ex.update(_meta(vocab, spec, config))
    ex.update(hash_arrays(config.hash_spec(spec.hash_namespace), ex))
    return EngagementSequences.from_arrays(ex, source=f"build_sequences({partition!r})")


def _vocabularies(events: pd.DataFrame, items: pd.DataFrame) -> _Vocab:
    item_ids = pd.Index(items["item_id"].astype(str)).append(pd.Index(events["item_id"])).unique()
    if "author_id" in items.columns:
        author_of = items.set_index(items["item_id"].astype(str))["author_id"].astype(str)
    else:
        author_of = events.drop_duplicates("item_id").set_index("item_id")["author_id"]
    fallback = events["author_id"].iloc[0] if len(events) else "no_author"
    item_author = pd.Series(item_ids, index=item_ids).map(author_of).fillna(fallback).astype(str)
    author_ids = pd.Index(item_author.to_numpy()).append(pd.Index(events["author_id"])).unique()
    first_seen = events.groupby("item_id")["ts"].min()
    if "created_ts" in items.columns:
        first_seen = items.set_index(items["item_id"].astype(str))["created_ts"].combine_first(first_seen)
    created = pd.Series(item_ids, index=item_ids).map(first_seen).fillna(0).astype(np.int64).to_numpy()
    return _Vocab(
        user_ids=np.asarray(pd.Index(events["user_id"]).unique(), dtype=str),
        item_ids=np.asarray(item_ids, dtype=str),
        author_ids=np.asarray(author_ids, dtype=str),
        item_author_idx=author_ids.get_indexer(item_author.to_numpy()).astype(np.int32),
        item_created_ts=created,
    )


def _event_arrays(events: pd.DataFrame, vocab: _Vocab, spec: DatasetSpec) -> dict[str, np.ndarray]:
    mask = spec.observed_mask.astype(bool)
    actions = events[list(ACTIONS)].to_numpy(dtype=np.int8)
    return {
        "user_idx": pd.Index(vocab.user_ids).get_indexer(events["user_id"]).astype(np.int32),
        "item_idx": pd.Index(vocab.item_ids).get_indexer(events["item_id"]).astype(np.int32),
        "author_idx": pd.Index(vocab.author_ids).get_indexer(events["author_id"]).astype(np.int32),
        "ts": events["ts"].to_numpy(np.int64),
        "surface": events["surface"].to_numpy(np.int8),
        "actions": actions,
        "engaged": actions[:, mask].any(axis=1),
        "dwell_seconds": events["dwell_seconds"].to_numpy(np.float32),
        "exposed": events["exposed"].to_numpy(np.int8).astype(bool),
        "split": events["split"].map(Split.codes()).to_numpy(np.int8),
    }


def _per_event_examples(ev: dict, num_items: int, cfg: SequenceConfig) -> dict[str, np.ndarray]:
    """One example per event; train rows get C-1 sampled never-interacted negatives."""
    n, c = len(ev["user_idx"]), cfg.candidate_len
    cand = np.full((n, c), -1, dtype=np.int32)
    cand[:, 0] = ev["item_idx"]
    sampled = np.zeros((n, c), dtype=bool)
    train = ev["split"] == Split.TRAIN
    if c > 1:
        neg = _sample_negatives(ev["user_idx"], ev["item_idx"], train, num_items, c - 1, cfg.seed)
        cand[train, 1:] = neg
        sampled[train, 1:] = True
    cand_actions = np.zeros((n, c, NUM_ACTIONS), dtype=np.int8)
    cand_actions[:, 0] = ev["actions"]
    dwell = np.full((n, c), np.nan, dtype=np.float32)
    dwell[:, 0] = ev["dwell_seconds"]
    ex = {
        "example_id": np.arange(n, dtype=np.int64),
        "split": ev["split"],
        "user_idx": ev["user_idx"],
        "request_ts": ev["ts"],
        "request_pos": np.arange(n, dtype=np.int64),
        "surface": ev["surface"].astype(np.int32),
        "cand_item_idx": cand,
        "cand_actions": cand_actions,
        "cand_dwell_seconds": dwell,
        "cand_exposed": np.zeros((n, c), dtype=bool),
        "cand_sampled": sampled,
    }
    return _shuffle_candidates(ex, cfg.seed)


def _sample_negatives(user_idx, item_idx, rows, num_items, k, seed) -> np.ndarray:
    """Uniform negatives from items the user never interacted with (rejection sampling per user)."""
    out = np.empty((int(rows.sum()), k), dtype=np.int32)
    row_pos = np.flatnonzero(rows)
    order = np.argsort(user_idx[row_pos], kind="stable")
    bounds = np.flatnonzero(np.diff(user_idx[row_pos][order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        u = int(user_idx[row_pos[group[0]]])
        seen = np.zeros(num_items, dtype=bool)
        seen[item_idx[user_idx == u]] = True
        if seen.all():
            raise ValueError(f"user index {u} interacted with every item; no negatives to sample")
        rng = np.random.default_rng([seed, 1, u])
        draws = rng.integers(0, num_items, size=(len(group), k))
        bad = seen[draws]
        while bad.any():
            draws[bad] = rng.integers(0, num_items, size=int(bad.sum()))
            bad = seen[draws]
        out[group] = draws
    return out


def _per_request_examples(events: pd.DataFrame, ev: dict, cfg: SequenceConfig) -> dict[str, np.ndarray]:
    """One example per request (visit or impression), chunked into consecutive groups of C."""
    c = cfg.candidate_len
    pos = np.arange(len(events), dtype=np.int64)
    keys = events["request_key"].astype(str)
    rank = keys.groupby(keys, sort=False).cumcount().to_numpy()
    group = pd.MultiIndex.from_arrays([keys.to_numpy(), rank // c])
    codes, uniques = pd.factorize(group, sort=False)
    n = len(uniques)
    slot = rank % c
    visit_first = pd.Series(pos).groupby(keys.to_numpy(), sort=False).transform("min").to_numpy()
    request_pos = np.full(n, 0, dtype=np.int64)
    request_pos[codes] = visit_first
    cand = np.full((n, c), -1, dtype=np.int32)
    cand[codes, slot] = ev["item_idx"]
    cand_actions = np.zeros((n, c, NUM_ACTIONS), dtype=np.int8)
    cand_actions[codes, slot] = ev["actions"]
    dwell = np.full((n, c), np.nan, dtype=np.float32)
    dwell[codes, slot] = ev["dwell_seconds"]
    exposed = np.zeros((n, c), dtype=bool)
    exposed[codes, slot] = ev["exposed"]
    ex = {
        "example_id": np.arange(n, dtype=np.int64),
        "split": ev["split"][request_pos],  # user, split and surface are constant within a request
        "user_idx": ev["user_idx"][request_pos],
        "request_ts": ev["ts"][request_pos],
        "request_pos": request_pos,
        "surface": ev["surface"][request_pos].astype(np.int32),
        "cand_item_idx": cand,
        "cand_actions": cand_actions,
        "cand_dwell_seconds": dwell,
        "cand_exposed": exposed,
        "cand_sampled": np.zeros((n, c), dtype=bool),
    }
    return _shuffle_candidates(ex, cfg.seed)


def _shuffle_candidates(ex: dict, seed: int) -> dict:
    """Deterministic per-example shuffle of the valid candidate slots; padding stays at the end."""
    n, c = ex["cand_item_idx"].shape
    slots = np.arange(c, dtype=np.uint64)
    base = mix64(np.uint64(seed) * np.uint64(0x9E3779B1) ^ ex["example_id"].astype(np.uint64))
    key = mix64(base[:, None] ^ (slots[None, :] * np.uint64(0xD1B54A32D192ED03)))
    key = np.where(ex["cand_item_idx"] >= 0, key >> np.uint64(1), np.uint64(2**63) + slots[None, :])
    order = np.argsort(key, axis=1, kind="stable")
    for name in ("cand_item_idx", "cand_actions", "cand_dwell_seconds", "cand_exposed", "cand_sampled"):
        arr = ex[name]
        idx = order.reshape(order.shape + (1,) * (arr.ndim - 2))
        ex[name] = np.take_along_axis(arr, idx, axis=1)
    return ex


def _history(ev: dict, user_idx: np.ndarray, request_pos: np.ndarray, s: int) -> dict[str, np.ndarray]:
    """The user's engaged events strictly before each request, most recent S, padded at the end."""
    eng_pos = np.flatnonzero(ev["engaged"])
    user_first = np.full(int(ev["user_idx"].max()) + 1 if len(ev["user_idx"]) else 1, -1, np.int64)
    first_idx = np.flatnonzero(np.r_[True, np.diff(ev["user_idx"]) != 0])
    user_first[ev["user_idx"][first_idx]] = first_idx
    end = np.searchsorted(eng_pos, request_pos, side="left")
    start = np.searchsorted(eng_pos, user_first[user_idx], side="left")
    hist_len = np.minimum(end - start, s).astype(np.int32)
    cols = np.arange(s)[None, :]
    valid = cols < hist_len[:, None]
    gather = np.where(valid, end[:, None] - hist_len[:, None] + cols, 0)
    src = eng_pos[gather] if len(eng_pos) else np.zeros_like(gather)

    def take(arr, fill):
        out = arr[src]
        out[~valid] = fill
        return out

    return {
        "hist_len": hist_len,
        "hist_item_idx": take(ev["item_idx"], -1),
        "hist_author_idx": take(ev["author_idx"], -1),
        "hist_ts": take(ev["ts"], 0),
        "hist_surface": take(ev["surface"], 0),
        "hist_actions": take(ev["actions"], 0),
    }


def _meta(vocab: _Vocab, spec: DatasetSpec, cfg: SequenceConfig) -> dict[str, np.ndarray]:
    return {
        "user_ids": vocab.user_ids,
        "item_ids": vocab.item_ids,
        "author_ids": vocab.author_ids,
        "item_author_idx": vocab.item_author_idx,
        "item_created_ts": vocab.item_created_ts,
        "observed_mask": spec.observed_mask,
        "partition": np.asarray(spec.name),
        "config_json": np.asarray(json.dumps(dataclasses.asdict(cfg), sort_keys=True)),
        "hash_spec_json": np.asarray(json.dumps(cfg.hash_spec(spec.hash_namespace).to_dict(), sort_keys=True)),
    }
