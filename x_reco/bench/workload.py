"""Benchmark workloads: the deterministic f32 source of a preset, synthetic users, trained-checkpoint users.

The benchmark source of a preset is built on the host: trunk parameters from ``PhoenixRanker``'s own
initializers (seeded), hash tables from a seeded numpy normal generator (row 0 zero). Tables are
generated, digested and kept as ``.npy`` files in a source cache once, then memory-mapped by every
benchmark process, so all processes and variants share one source and one ``source_param_digest``.
Each file is written under a temporary name unique to its writer and renamed into place, so set-ups
that build the same source at once both succeed, and a killed set-up's leftover is swept by the next.
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

from x_reco.common.atomic import atomic_file, clean_stale_temps, temp_sibling, write_json
from x_reco.common.types import RecsysBatch
from x_reco.configs.phoenix import PhoenixConfig
from x_reco.inference.params import (
    MODEL_CLASSES,
    ServingModel,
    abstract_state,
    from_state,
    leaf_paths,
    state_from_arrays,
)
from x_reco.inference.requests import Bucket, RawRequest, assemble_batch

ENTITY_SEEDS = {"user": 1, "post": 2, "author": 3}
TABLE_CHUNK = 1 << 18
SOURCE_VERSION = 3  # bump when the generator changes: cached sources are keyed by it


def bench_config(preset: str, table_rows: int | None = None, **overrides) -> PhoenixConfig:
    """Preset with splitmix64 hashing (numeric synthetic ids) and optionally fewer table rows."""
    cfg = PhoenixConfig.preset(preset, **overrides)
    if table_rows is not None:
        cfg = cfg.replace(user_vocab_size=table_rows, post_vocab_size=table_rows, author_vocab_size=table_rows)
    return cfg.replace(hash_spec=dataclasses.replace(cfg.hash_spec, family="splitmix64"))


def _cpu():
    return jax.default_device(jax.devices("cpu")[0])


def _trunk(kind: str, cfg: PhoenixConfig, seed: int, folder: Path) -> dict[str, np.ndarray]:
    """Non-table arrays ``{path: array}`` of a ``kind`` model of ``cfg`` (built with two-row tables: the
    trunk does not depend on table rows). Cached as ``trunk.npz`` in ``folder``, so later processes skip the init.
    """
    path = folder / "trunk.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    small = cfg.replace(user_vocab_size=2, post_vocab_size=2, author_vocab_size=2)
    with _cpu():
        state = nnx.state(MODEL_CLASSES[kind](small, rngs=nnx.Rngs(params=seed)))
    flat = {k: np.asarray(v) for k, v in leaf_paths(state) if not k.startswith("tables/")}
    with atomic_file(path) as fh:
        np.savez(fh, **flat)
    return flat


def _table(path: Path, rows: int, dim: int, std: float, seed: int, entity: str) -> np.ndarray:
    """N(0, std) table with row 0 zero; chunk c drawn from ``default_rng([seed, entity, c])`` (threads)."""
    clean_stale_temps(path)
    if not path.exists():
        tmp = temp_sibling(path)
        try:
            _fill_table(tmp, rows, dim, std, seed, entity)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return np.load(path, mmap_mode="r")


def _fill_table(tmp: Path, rows: int, dim: int, std: float, seed: int, entity: str) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))

    def fill(chunk: int) -> None:
        start, stop = chunk * TABLE_CHUNK, min(rows, (chunk + 1) * TABLE_CHUNK)
        rng = np.random.default_rng([seed, ENTITY_SEEDS[entity], chunk])
        out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32) * np.float32(std)

    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
        list(pool.map(fill, range(-(-rows // TABLE_CHUNK))))
    out[0] = 0.0
    out.flush()  # the memory map closes when ``out`` goes out of scope, before the rename


def cache_dir(root: str | Path | None = None) -> Path:
    """``root``, else ``$XRECO_BENCH_CACHE``, else a folder of this user's under the system temp directory."""
    default = Path(tempfile.gettempdir()) / f"x_reco_bench_sources-{os.getuid()}"
    return Path(root or os.environ.get("XRECO_BENCH_CACHE", default))


def bench_source(
    cfg: PhoenixConfig, *, kind: str = "ranker", seed: int = 0, root: str | Path | None = None
) -> ServingModel:
    """The f32 source ServingModel of a benchmark config (host arrays; tables memory-mapped)."""
    folder = cache_dir(root) / f"{kind}-{cfg.digest()}-s{seed}-v{SOURCE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = _trunk(kind, cfg, seed, folder)
    for entity, rows in zip(("user", "post", "author"), cfg.vocab_sizes):
        arrays[f"tables/{entity}"] = _table(
            folder / f"{entity}.npy", rows, cfg.emb_size, cfg.table_init_std, seed, entity
        )
    state = state_from_arrays(abstract_state(kind, cfg), arrays)
    meta_path = folder / "digest.json"
    digest = tuple(json.loads(meta_path.read_text())["digests"]) if meta_path.exists() else None
    sm = from_state(kind, cfg, state, digest=digest)
    if digest is None:
        write_json(meta_path, {"digests": [sm.source_param_digest, sm.table_version], "config": cfg.digest()})
    return sm


# -- synthetic users --------------------------------------------------------------------------------
def synthetic_requests(
    cfg: PhoenixConfig, n_users: int, history: int, candidates: int, seed: int = 0
) -> list[RawRequest]:
    """``n_users`` distinct seeded users: L uniform in [0, S], varied actions/surfaces, distinct candidates."""
    out = []
    a, vs = cfg.num_history_actions, cfg.product_surface_vocab_size
    for u in range(n_users):
        rng = np.random.default_rng([seed, u])
        length = int(rng.integers(0, history + 1))
        engaged = rng.random(length) < 0.8
        actions = ((rng.random((length, a)) < 0.3) & engaged[:, None]).astype(np.float32)
        posts = rng.choice(1 << 40, size=length + candidates, replace=False).astype(np.uint64)
        out.append(
            RawRequest(
                user_id=np.uint64(1_000_000 + seed * 10_000_000 + u),
                history_post_ids=posts[:length],
                history_author_ids=rng.integers(1, 1 << 30, length).astype(np.uint64),
                history_actions=actions,
                history_surface=rng.integers(0, vs, length).astype(np.int32),
                candidate_post_ids=posts[length:],
                candidate_author_ids=rng.integers(1, 1 << 30, candidates).astype(np.uint64),
                candidate_surface=np.full(candidates, int(rng.integers(0, vs)), np.int32),
            )
        )
    return out


# -- trained checkpoint + engagement sequences -------------------------------------------------------
def synthetic_user_batch(cfg: PhoenixConfig, n_users: int, history: int, candidates: int, seed: int = 0) -> RecsysBatch:
    """Hashed numpy batch of ``synthetic_requests`` users (every candidate valid), for quality runs."""
    reqs = synthetic_requests(cfg, n_users, history, candidates, seed)
    return assemble_batch(reqs, Bucket(n_users, history, candidates), cfg.hash_spec, cfg.num_history_actions)
