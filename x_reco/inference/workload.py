"""Benchmark workloads: the deterministic f32 source of a preset, synthetic users, trained-checkpoint users.

The benchmark source of a preset is built on the host: trunk parameters from ``PhoenixRanker``'s own
initializers (seeded), hash tables from a seeded numpy normal generator (row 0 zero). Tables are
generated, digested and kept as ``.npy`` files in a source cache once, then memory-mapped by every
benchmark process, so all processes and variants share one source and one ``source_param_digest``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.data.examples import EngagementSequences, Split
from x_reco.inference.params import ServingModel, digests, extract_params, leaf_paths
from x_reco.inference.requests import RawRequest
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retrieval import PhoenixRetrieval
from x_reco.pipeline.weights import WeightSet

ENTITY_SEEDS = {"user": 1, "post": 2, "author": 3}
TABLE_CHUNK = 1 << 18
SOURCE_VERSION = 2  # bump when the generator changes: cached sources are keyed by it


def bench_config(preset: str, table_rows: int | None = None, **overrides) -> PhoenixConfig:
    """Preset with splitmix64 hashing (numeric synthetic ids) and optionally fewer table rows."""
    cfg = PhoenixConfig.preset(preset, **overrides)
    if table_rows is not None:
        cfg = cfg.replace(user_vocab_size=table_rows, post_vocab_size=table_rows, author_vocab_size=table_rows)
    return cfg.replace(hash_spec=dataclasses.replace(cfg.hash_spec, family="splitmix64"))


def _cpu():
    return jax.default_device(jax.devices("cpu")[0])


def _nest(flat: dict[str, np.ndarray]):
    """Inverse of ``leaf_paths`` for plain dict/list trees: {"layers/0/attn/wq": x} -> nested."""
    root: dict = {}
    for path, leaf in flat.items():
        node, parts = root, path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = leaf

    def lists(node):
        if not isinstance(node, dict):
            return node
        if node and all(k.isdigit() for k in node):
            return [lists(node[str(i)]) for i in range(len(node))]
        return {k: lists(v) for k, v in node.items()}

    return lists(root)


def _trunk(cls, cfg: PhoenixConfig, seed: int, folder: Path) -> dict:
    """Non-table params of ``cls(cfg)`` (two-row tables: the trunk does not depend on table rows).

    Cached as ``trunk.npz`` (keyed by path) in ``folder``, so later processes skip the init.
    """
    path = folder / "trunk.npz"
    if path.exists():
        with np.load(path) as z:
            return _nest({k: z[k] for k in z.files})
    small = cfg.replace(user_vocab_size=2, post_vocab_size=2, author_vocab_size=2)
    with _cpu():
        params = extract_params(cls(small, rngs=nnx.Rngs(params=seed)))
    params.pop("tables")
    flat = {k: np.asarray(v) for k, v in leaf_paths(params)}
    np.savez(folder / "trunk.tmp.npz", **flat)
    os.replace(folder / "trunk.tmp.npz", path)
    return _nest(flat)


def _table(path: Path, rows: int, dim: int, std: float, seed: int, entity: str) -> np.ndarray:
    """N(0, std) table with row 0 zero; chunk c drawn from ``default_rng([seed, entity, c])`` (threads)."""
    if not path.exists():
        tmp = path.with_suffix(".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))

        def fill(chunk: int) -> None:
            start, stop = chunk * TABLE_CHUNK, min(rows, (chunk + 1) * TABLE_CHUNK)
            rng = np.random.default_rng([seed, ENTITY_SEEDS[entity], chunk])
            out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32) * np.float32(std)

        with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
            list(pool.map(fill, range(-(-rows // TABLE_CHUNK))))
        out[0] = 0.0
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def cache_dir(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("X_RECO_BENCH_CACHE", Path(tempfile.gettempdir()) / "x_reco_bench_sources"))


def bench_source(cfg: PhoenixConfig, *, kind: str = "ranker", seed: int = 0, root: str | Path | None = None) -> ServingModel:
    """The f32 source ServingModel of a benchmark config (host arrays; tables memory-mapped)."""
    cls = PhoenixRanker if kind == "ranker" else PhoenixRetrieval
    folder = cache_dir(root) / f"{kind}-{cfg.digest()}-s{seed}-v{SOURCE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    params = _trunk(cls, cfg, seed, folder)
    params["tables"] = {
        e: _table(folder / f"{e}.npy", v, cfg.emb_size, cfg.table_init_std, seed, e)
        for e, v in zip(("user", "post", "author"), cfg.vocab_sizes)
    }
    if kind == "ranker":
        params["score_weights"] = WeightSet.published().vector(cfg.output_action_names)
    meta_path = folder / "digest.json"
    if meta_path.exists():
        source, tables = json.loads(meta_path.read_text())["digests"]
    else:
        source, tables = digests(params)
        meta_path.write_text(json.dumps({"digests": [source, tables], "config": cfg.digest()}))
    return ServingModel(
        config=cfg, params=params, kind=kind, variant="f32", compute_dtype=cfg.compute_dtype,
        source_param_digest=source, param_version=source, table_version=tables,
    )  # fmt: skip


# -- synthetic users --------------------------------------------------------------------------------
def synthetic_requests(cfg: PhoenixConfig, n_users: int, history: int, candidates: int, seed: int = 0) -> list[RawRequest]:
    """``n_users`` distinct seeded users: L uniform in [0, S], varied actions/surfaces, distinct candidates."""
    out = []
    a, vs = cfg.num_history_actions, cfg.product_surface_vocab_size
    for u in range(n_users):
        rng = np.random.default_rng([seed, u])
        length = int(rng.integers(0, history + 1))
        engaged = rng.random(length) < 0.8
        actions = ((rng.random((length, a)) < 0.3) & engaged[:, None]).astype(np.float32)
        posts = rng.choice(1 << 40, size=length + candidates, replace=False).astype(np.uint64)
        out.append(RawRequest(
            user_id=np.uint64(1_000_000 + seed * 10_000_000 + u),
            history_post_ids=posts[:length], history_author_ids=rng.integers(1, 1 << 30, length).astype(np.uint64),
            history_actions=actions, history_surface=rng.integers(0, vs, length).astype(np.int32),
            candidate_post_ids=posts[length:],
            candidate_author_ids=rng.integers(1, 1 << 30, candidates).astype(np.uint64),
            candidate_surface=np.full(candidates, int(rng.integers(0, vs)), np.int32),
        ))  # fmt: skip
    return out


# -- trained checkpoint + engagement sequences -------------------------------------------------------
def checkpoint_users(sequences: EngagementSequences, n_users: int = 200, n_candidates: int = 1000,
                     seed: int = 0) -> RecsysBatch:
    """One request per distinct user (latest test example, else any split) with up to ``n_candidates``
    distinct catalogue items as candidates. Numpy RecsysBatch."""
    ex = sequences.examples
    order = np.lexsort((ex.request_ts, ex.split == Split.TEST))[::-1]  # test split first, newest first
    _, first = np.unique(ex.user_idx[order], return_index=True)
    rows = np.sort(order[first])[:n_users]
    items = sequences.num_items
    n = min(n_candidates, items)
    rng = np.random.default_rng(seed)
    pick = np.stack([rng.choice(items, n, replace=False) for _ in rows])
    return sequences.catalogue_batch(rows, pick)


def synthetic_user_batch(cfg: PhoenixConfig, n_users: int, history: int, candidates: int, seed: int = 0) -> RecsysBatch:
    """Hashed numpy batch of ``synthetic_requests`` users (every candidate valid), for quality runs."""
    from x_reco.inference.requests import Bucket, assemble_batch

    reqs = synthetic_requests(cfg, n_users, history, candidates, seed)
    return assemble_batch(reqs, Bucket(n_users, history, candidates), cfg.hash_spec, cfg.num_history_actions)
