"""Cross-request prefix KV cache: device pools per capacity class, 128-bit keys, LRU under a byte budget.

Layout (created in ``PrefixCache.__init__``): for every capacity class S_cap (P_cap = 1 + S_cap) one K
pool and one V pool, each [layers, n_slots, P_cap, Hkv, dk] in the compute dtype. An entry is one slot
plus host metadata: valid history length L and the user-valid flag (the prefix validity travels with
the entry), its key, its user key, bytes and last use. Positions are implicit (0..P_cap-1).

Key: blake2b-128 over the canonical bytes of every prefix input on the valid prefix (user hashes;
history post and author hashes, actions and surfaces of the first L slots; L) plus a context of
param_version, table version, hash spec, position mode, variant, compute dtype and config digest.
Incremental append: a per-user index points at the user's entry; if the request's first L events
hash to that entry's key and L' > L, the L' - L new events are encoded against the cached K/V and
written at positions 1+L.. (exact: older K/V never depend on later events). Anything else is a miss.
Only ``shared`` position mode is cacheable (candidate positions then depend only on L).

Static shapes: every jitted step (encode, append, move, score) has one shape per (B, S) or (B, S, N)
bucket (plan arrays padded to B, append rounds of ``append_chunk`` events, the encode sees no candidates),
and ``warmup(buckets)`` compiles and runs each once, so a request inside the buckets never compiles.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from x_reco.common.types import RecsysBatch
from x_reco.inference.engine import ExecutableCache, ScoreOutput, aot_compile, finish, to_device
from x_reco.inference.params import ServingModel, ServingParams
from x_reco.inference.requests import Bucket, empty_batch
from x_reco.models import masks
from x_reco.models.ranker import PrefixKV

_PREFIX_FIELDS = ("history_post_hashes", "history_author_hashes", "history_actions", "history_product_surface")
_PREFIX_DTYPES = (np.int32, np.int32, np.float32, np.int32)


def key_context(sm: ServingModel) -> bytes:
    """Everything besides the prefix inputs that a cached K/V depends on."""
    cfg = sm.config
    return json.dumps(
        {
            "param_version": sm.param_version,
            "table_version": sm.table_version,
            "hash_spec": cfg.hash_spec.digest(),
            "position_mode": cfg.candidate_position_mode,
            "variant": sm.variant,
            "compute_dtype": sm.compute_dtype,
            "config": cfg.digest(),
        },
        sort_keys=True,
    ).encode()


def prefix_key(context: bytes, batch: RecsysBatch, row: int, length: int) -> bytes:
    """128-bit digest of row ``row``'s first ``length`` events (plus user hashes and ``context``)."""
    h = hashlib.blake2b(context, digest_size=16)
    h.update(b"L" + int(length).to_bytes(8, "little"))
    h.update(np.ascontiguousarray(np.asarray(batch.user_hashes)[row], np.int32).tobytes())
    for name, dtype in zip(_PREFIX_FIELDS, _PREFIX_DTYPES):
        h.update(np.ascontiguousarray(np.asarray(getattr(batch, name))[row, :length], dtype).tobytes())
    return h.digest()


def user_key(context: bytes, batch: RecsysBatch, row: int) -> bytes:
    h = hashlib.blake2b(context + b"|user|", digest_size=16)
    h.update(np.ascontiguousarray(np.asarray(batch.user_hashes)[row], np.int32).tobytes())
    return h.digest()


def write_slots(
    pool_lnpkd: jax.Array, values_lbpkd: jax.Array, rows_r: jax.Array, slots_r: jax.Array, count
) -> jax.Array:
    """Write ``values[:, rows_r[j]]`` into ``pool[:, slots_r[j]]`` for j < count (in place when donated).

    A loop of dynamic_update_slice touches only the written slots (a scatter copies the pool on CPU).
    """

    def body(j, pool):
        v = jax.lax.dynamic_index_in_dim(values_lbpkd, rows_r[j], axis=1, keepdims=True).astype(pool.dtype)
        return jax.lax.dynamic_update_slice_in_dim(pool, v, slots_r[j], axis=1)

    return jax.lax.fori_loop(0, count, body, pool_lnpkd)


def move_slot(src_k, src_v, dst_k, dst_v, src_slot, dst_slot):
    """Copy one entry from a pool of one class into ``dst_slot`` of another (truncated or zero-padded to P_cap)."""
    p = min(src_k.shape[2], dst_k.shape[2])
    k = jnp.zeros(dst_k.shape[:1] + dst_k.shape[2:], dst_k.dtype).at[:, :p].set(src_k[:, src_slot, :p])
    v = jnp.zeros(dst_v.shape[:1] + dst_v.shape[2:], dst_v.dtype).at[:, :p].set(src_v[:, src_slot, :p])
    return dst_k.at[:, dst_slot].set(k), dst_v.at[:, dst_slot].set(v)


def prefix_only(batch: RecsysBatch) -> RecsysBatch:
    """``batch`` with zero-width candidate arrays: the prefix encode's input, so its shape never depends on N."""
    b = batch.batch_size
    return dataclasses.replace(
        batch,
        candidate_post_hashes=np.zeros((b, 0, batch.candidate_post_hashes.shape[2]), np.int32),
        candidate_author_hashes=np.zeros((b, 0, batch.candidate_author_hashes.shape[2]), np.int32),
        candidate_product_surface=np.zeros((b, 0), np.int32),
    )


def _targets(rows: list[int], slots: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
    """(rows, their slots, count) padded to ``b`` entries, so every call has one static shape."""
    rows_r, slots_r = np.zeros(b, np.int32), np.zeros(b, np.int32)
    rows_r[: len(rows)] = rows
    slots_r[: len(rows)] = np.asarray(slots)[rows]
    return rows_r, slots_r, np.int32(len(rows))


@dataclasses.dataclass
class Entry:
    key: bytes
    user_key: bytes | None
    cls: int
    slot: int
    length: int
    user_valid: bool
    nbytes: int
    last_use: int = 0


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    appends: int = 0
    appended_events: int = 0
    moves: int = 0
    evictions: int = 0
    flushes: int = 0
    compiles: int = 0
    late_compiles: int = 0  # compilations while serving a request (outside an explicit ``warmup``)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses + self.appends
        return self.hits / total if total else 0.0


@dataclasses.dataclass
class Plan:
    """Host decisions for one batch: per-row slot, L and user flag; which rows encode / append / move."""

    cls: int
    slots: np.ndarray
    lengths: np.ndarray
    user_valid: np.ndarray
    encode: list[int] = dataclasses.field(default_factory=list)
    append: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (row, cached length)
    moves: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)  # (src cls, src slot, dst slot)


class PrefixCache:
    """Prefix K/V cache of one ServingModel; ``cache(batch)`` scores a bucket-padded host batch.

    Args:
      sm: serving model (``shared`` position mode).
      classes: capacity classes = allowed padded history lengths S of incoming batches.
      slots: slots per class (capped by ``byte_budget``).
      byte_budget: LRU bound on resident entry bytes (default: every slot of every class).
      append_chunk: new events encoded per append round (a static shape).
      chunk: optional candidate chunk size of the scoring pass.
      params: ``sm.params`` already on the device (otherwise copied there).
      executables: compiled steps to reuse and fill (default: this cache's own).
      warm_on_first_use: the first request of a (B, S, N) bucket not yet warmed runs ``warmup`` for it, so
        a later append or move of that bucket never compiles mid-serving (``warmup`` at start-up is better).
    """

    def __init__(
        self,
        sm: ServingModel,
        *,
        classes=(128,),
        slots: int = 64,
        byte_budget: int | None = None,
        append_chunk: int = 8,
        chunk: int | None = None,
        precision: str | None = None,
        params: ServingParams | None = None,
        executables: ExecutableCache | None = None,
        warm_on_first_use: bool = True,
    ):
        cfg = sm.config
        if cfg.candidate_position_mode != "shared":
            raise ValueError(
                "the prefix cache needs candidate_position_mode='shared' (reference positions depend on S)"
            )
        if slots < 1 or append_chunk < 1:
            raise ValueError(f"slots={slots} and append_chunk={append_chunk} must be >= 1")
        self.sm, self.chunk, self.append_chunk, self.precision = sm, chunk, append_chunk, precision
        self.params = to_device(sm.params) if params is None else params  # already resident: no second copy
        itemsize = sm.cd.itemsize
        self.entry_bytes = {
            c: cfg.num_layers * 2 * (1 + c) * cfg.num_kv_heads * cfg.key_size * itemsize for c in classes
        }
        self.byte_budget = byte_budget if byte_budget is not None else slots * sum(self.entry_bytes.values())
        self.pools, self.free = {}, {}
        for c in sorted(classes):
            n = min(slots, self.byte_budget // self.entry_bytes[c])
            if n < 1:
                raise ValueError(
                    f"byte_budget={self.byte_budget} holds no entry of class S={c} ({self.entry_bytes[c]} B)"
                )
            shape = (cfg.num_layers, n, 1 + c, cfg.num_kv_heads, cfg.key_size)
            self.pools[c] = (jnp.zeros(shape, sm.cd), jnp.zeros(shape, sm.cd))
            self.free[c] = list(range(n - 1, -1, -1))
        self.context, self._exe_key = key_context(sm), self._executable_key(sm)
        self.entries: collections.OrderedDict[bytes, Entry] = collections.OrderedDict()
        self.by_user: dict[bytes, Entry] = {}
        self.stats, self.tick, self.resident_bytes = CacheStats(), 0, 0
        self._owns_executables = executables is None
        self.executables = executables if executables is not None else ExecutableCache()
        self.compile_s = 0.0
        self.warm_buckets: set[Bucket] = set()
        self.warm_on_first_use, self._explicit = warm_on_first_use, False

    # -- versions ---------------------------------------------------------------------------------
    def reload(self, sm: ServingModel) -> None:
        """Swap parameters; flush every entry when the param or table version (or variant) changes."""
        old = self.context
        self.sm, self.params, self.context = sm, to_device(sm.params), key_context(sm)
        old_key, self._exe_key = self._exe_key, self._executable_key(sm)
        if self.context != old:
            self.flush()
        if self.warm_buckets and self._exe_key != old_key:
            self.warmup(self.warm_buckets)

    def flush(self) -> None:
        for c, (k, _) in self.pools.items():
            self.free[c] = list(range(k.shape[1] - 1, -1, -1))
        self.entries.clear()
        self.by_user.clear()
        self.resident_bytes = 0
        self.stats.flushes += 1

    # -- host bookkeeping -------------------------------------------------------------------------
    def _evict(self, entry: Entry) -> None:
        del self.entries[entry.key]
        if entry.user_key is not None and self.by_user.get(entry.user_key) is entry:
            del self.by_user[entry.user_key]
        self.free[entry.cls].append(entry.slot)
        self.resident_bytes -= entry.nbytes
        self.stats.evictions += 1

    def _allocate(self, cls: int, pinned: set[int]) -> int:
        def lru(pred):
            victim = next((e for e in self.entries.values() if pred(e) and id(e) not in pinned), None)
            if victim is None:
                raise RuntimeError("prefix cache: every evictable entry is in use by this batch; add slots")
            self._evict(victim)

        while not self.free[cls]:
            lru(lambda e: e.cls == cls)
        while self.resident_bytes + self.entry_bytes[cls] > self.byte_budget:
            lru(lambda e: True)
        self.resident_bytes += self.entry_bytes[cls]
        return self.free[cls].pop()

    def _touch(self, entry: Entry) -> None:
        self.tick += 1
        entry.last_use = self.tick
        self.entries.move_to_end(entry.key)

    def _move(self, entry: Entry, cls: int, plan: Plan, pinned: set[int]) -> None:
        src_cls, src_slot = entry.cls, entry.slot
        pinned.add(id(entry))
        dst = self._allocate(cls, pinned)
        self.free[src_cls].append(src_slot)
        self.resident_bytes -= entry.nbytes
        entry.cls, entry.slot, entry.nbytes = cls, dst, self.entry_bytes[cls]
        plan.moves.append((src_cls, src_slot, dst))
        self.stats.moves += 1

    def lookup(self, batch: RecsysBatch) -> Plan:
        """Decide hit / append / miss for every row of a host batch (no device work)."""
        cls = batch.num_history
        if cls not in self.pools:
            raise ValueError(f"batch history length S={cls} is not a capacity class {sorted(self.pools)}")
        user = np.asarray(batch.user_hashes)[:, 0] != 0
        hist = np.asarray(batch.history_post_hashes)[:, :, 0] != 0
        cand = np.asarray(batch.candidate_post_hashes)[:, :, 0] != 0
        lengths = hist.sum(axis=1).astype(np.int32)
        plan = Plan(cls, np.zeros(len(lengths), np.int32), lengths, user.copy())
        pinned: set[int] = set()
        for row in range(len(lengths)):
            if not (user[row] or lengths[row] or cand[row].any()):
                continue  # padding row of the bucket
            plan.slots[row] = self._row(batch, row, int(lengths[row]), bool(user[row]), plan, pinned)
        return plan

    def _row(self, batch, row, length, user_valid, plan: Plan, pinned: set[int]) -> int:
        key = prefix_key(self.context, batch, row, length)
        entry = self.entries.get(key)
        if entry is not None:
            self.stats.hits += 1
        else:
            ukey = user_key(self.context, batch, row) if user_valid else None
            old = self.by_user.get(ukey) if ukey is not None else None
            if (
                old is not None
                and id(old) not in pinned
                and old.length < length
                and old.key == prefix_key(self.context, batch, row, old.length)
            ):
                entry = old
                plan.append.append((row, old.length))
                del self.entries[old.key]
                entry.key, entry.length = key, length
                self.entries[key] = entry
                self.stats.appends += 1
                self.stats.appended_events += length - plan.append[-1][1]
            else:
                slot = self._allocate(plan.cls, pinned)
                entry = Entry(key, ukey, plan.cls, slot, length, user_valid, self.entry_bytes[plan.cls])
                self.entries[key] = entry
                if ukey is not None:
                    self.by_user[ukey] = entry
                plan.encode.append(row)
                self.stats.misses += 1
        if entry.cls != plan.cls:
            self._move(entry, plan.cls, plan, pinned)
        pinned.add(id(entry))
        self._touch(entry)
        return entry.slot

    # -- device work ------------------------------------------------------------------------------
    # Every step is (name, fn, args, donated argnums), built by the same code for serving and for
    # ``warmup``, so a warmed key is exactly the key a request looks up.
    def _executable_key(self, sm: ServingModel) -> tuple:
        """The static facts a compiled step depends on besides argument shapes (computed once, not per call)."""
        return (sm.config.digest(), sm.variant, self.chunk, self.append_chunk, self.precision)

    def _key(self, name: str, args: tuple) -> tuple:
        shaped = args[1:] if isinstance(args[0], ServingParams) else args  # params never change shape
        return (name, *self._exe_key) + tuple((np.shape(a), str(a.dtype)) for a in jax.tree.leaves(shaped))

    def _executable(self, name: str, fn, args: tuple, donate=()):
        """The step's executable for these argument shapes; compiled (and counted) when not cached."""
        key = self._key(name, args)
        exe = self.executables.get(key)
        if exe is None:
            exe, seconds = aot_compile(fn, *args, precision=self.precision, donate_argnums=donate)
            self.executables.put(key, exe)
            self.compile_s += seconds
            self.stats.compiles += 1
            self.stats.late_compiles += int(not self._explicit)
        return exe

    def _call(self, name: str, fn, args: tuple, donate=()):
        return self._executable(name, fn, args, donate)(*args)

    def _encode_step(self, device_batch: RecsysBatch, plan: Plan) -> tuple:
        sm = self.sm

        def encode(params, kp, vp, rows_r, slots_r, count_, batch):
            model = sm.module(params.state)
            prefix = model.encode_prefix(*model.prefix_tokens(batch))
            k, v = prefix.k_lbpkd, prefix.v_lbpkd
            return write_slots(kp, k, rows_r, slots_r, count_), write_slots(vp, v, rows_r, slots_r, count_)

        targets = _targets(plan.encode, plan.slots, len(plan.slots))
        return "encode", encode, (self.params, *self.pools[plan.cls], *targets, prefix_only(device_batch)), (1, 2)

    def _encode(self, device_batch: RecsysBatch, plan: Plan) -> None:
        self.pools[plan.cls] = self._call(*self._encode_step(device_batch, plan))

    def _append_step(self, batch: RecsysBatch, plan: Plan, current: dict[int, int]) -> tuple:
        """One round: up to ``append_chunk`` new events of every row in ``current`` (row -> cached length,
        advanced here) still short of its length, at fixed shapes [B, append_chunk]."""
        sm, m, b = self.sm, self.append_chunk, len(plan.slots)

        def append(params, kp, vp, slots_b, lengths_b, user_b, post, author, actions, surface, n_new_b, *targets):
            model = sm.module(params.state)
            new = model.history_tokens(post, author, actions, surface)
            valid = jnp.arange(m)[None, :] < n_new_b[:, None]
            cached = PrefixKV(kp[:, slots_b], vp[:, slots_b], masks.prefix_valid(lengths_b, user_b, kp.shape[2]))
            grown = model.append_prefix(cached, new, valid)
            return write_slots(kp, grown.k_lbpkd, *targets), write_slots(vp, grown.v_lbpkd, *targets)

        slots, lengths, n_new = np.zeros(b, np.int32), np.zeros(b, np.int32), np.zeros(b, np.int32)
        fields = [np.asarray(getattr(batch, f)) for f in _PREFIX_FIELDS]
        new = [np.zeros((b, m) + x.shape[2:], d) for x, d in zip(fields, _PREFIX_DTYPES)]
        for row, start in current.items():
            count = min(m, int(plan.lengths[row]) - start)
            if count <= 0:
                continue
            slots[row], lengths[row], n_new[row] = plan.slots[row], start, count
            for arr, x in zip(new, fields):
                arr[row, :count] = x[row, start : start + count]
            current[row] = start + count
        targets = _targets(np.flatnonzero(n_new).tolist(), slots, b)
        args = (self.params, *self.pools[plan.cls], slots, lengths, plan.user_valid, *new, n_new, *targets)
        return "append", append, args, (1, 2)

    def _append(self, batch: RecsysBatch, plan: Plan) -> None:
        current = dict(plan.append)
        while any(current[r] < plan.lengths[r] for r in current):
            self.pools[plan.cls] = self._call(*self._append_step(batch, plan, current))

    def _move_step(self, src_cls: int, src_slot: int, dst_cls: int, dst_slot: int) -> tuple:
        args = (*self.pools[src_cls], *self.pools[dst_cls], np.int32(src_slot), np.int32(dst_slot))
        return "move", move_slot, args, (2, 3)

    def _apply_moves(self, plan: Plan) -> None:
        for src_cls, src_slot, dst_slot in plan.moves:
            self.pools[plan.cls] = self._call(*self._move_step(src_cls, src_slot, plan.cls, dst_slot))

    def _score_step(self, device_batch: RecsysBatch, plan: Plan) -> tuple:
        sm, chunk = self.sm, self.chunk

        def cached_score(params, kp, vp, slots_b, lengths_b, user_b, batch):
            model = sm.module(params.state)
            prefix = PrefixKV(kp[:, slots_b], vp[:, slots_b], masks.prefix_valid(lengths_b, user_b, kp.shape[2]))
            out = model.score_with_prefix(prefix, model.candidate_tokens(batch), batch.candidate_valid_bc, chunk=chunk)
            return finish(params.score_weights, out.logits_bca, out.candidate_mask_bc)

        args = (self.params, *self.pools[plan.cls], plan.slots, plan.lengths, plan.user_valid, device_batch)
        return "score", cached_score, args, ()

    def score(self, device_batch: RecsysBatch, plan: Plan) -> ScoreOutput:
        """Candidate pass over the pooled prefixes (slot gather inside the jitted call)."""
        return self._call(*self._score_step(device_batch, plan))

    def warmup(self, buckets: Iterable[Bucket | tuple[int, int, int]]) -> int:
        """Compile and run once every step a request of these (B, S, N) buckets can hit, so serving never compiles.

        Steps: encode and append per (B, S), score per (B, S, N), a move from every class into each
        bucket's class. Each runs once on an all-padding batch that writes nothing (a move writes only
        a free slot), so first-execution costs are paid here too. Compilations outside ``warmup`` are
        counted in ``stats.late_compiles``; ``reload`` to another variant re-warms. An owned
        ``ExecutableCache`` grows to hold every step; a shared one that is too small raises ValueError
        (an evicted step would be recompiled mid-serving). Returns how many executables compiled now.
        """
        self._explicit = True
        try:
            return self._warm(buckets, strict=True)
        finally:
            self._explicit = False

    def warm_for(self, batch: RecsysBatch) -> None:
        """``warm_on_first_use``: warm the bucket of this host batch if it is new (``__call__`` does this first)."""
        bucket = Bucket(batch.batch_size, batch.num_history, batch.num_candidates)
        if self.warm_on_first_use and bucket not in self.warm_buckets and bucket.history in self.pools:
            self._warm([bucket], strict=False)

    def _warm(self, buckets, strict: bool) -> int:
        buckets = sorted({b if isinstance(b, Bucket) else Bucket(*map(int, b)) for b in buckets})
        needed = {self._key(step[0], step[2]) for _, _, step in self._warm_steps(buckets)}
        missing = sum(self.executables.get(key) is None for key in needed)
        if self._owns_executables:  # room for every step warmed so far and these
            self.executables.maxsize = max(self.executables.maxsize, len(self.executables) + missing)
        elif strict and len(needed) > self.executables.maxsize:
            raise ValueError(
                f"warmup needs {len(needed)} executables; the shared ExecutableCache holds {self.executables.maxsize}"
            )
        before, done = self.stats.compiles, set()
        for run, writes, step in self._warm_steps(buckets):  # lazily: args see the pools the last step returned
            key = self._key(step[0], step[2])
            if key in done:
                continue
            done.add(key)
            if not run:
                self._executable(*step)
                continue
            out = jax.block_until_ready(self._call(*step))
            if writes is not None:
                self.pools[writes] = out
        self.warm_buckets.update(buckets)
        return self.stats.compiles - before

    def _warm_steps(self, buckets: list[Bucket]):
        """(run it?, the class whose pools it returns or None, step) for every step of ``buckets``."""
        cfg = self.sm.config
        for bucket in buckets:
            if bucket.history not in self.pools:
                raise ValueError(f"bucket {bucket} history S is not a capacity class {sorted(self.pools)}")
            host = empty_batch(bucket, cfg.num_hashes, cfg.num_history_actions)
            b, cls = bucket.batch, bucket.history
            plan = Plan(cls, np.zeros(b, np.int32), np.zeros(b, np.int32), np.zeros(b, bool))
            yield True, cls, self._encode_step(host, plan)
            yield True, cls, self._append_step(host, plan, {})
            yield True, None, self._score_step(host, plan)
        for dst in sorted({b.history for b in buckets}):
            for src in (c for c in self.pools if c != dst):
                free = self.free[dst]
                yield bool(free), dst, self._move_step(src, 0, dst, free[-1] if free else 0)

    def __call__(self, batch: RecsysBatch, device_batch: RecsysBatch | None = None) -> ScoreOutput:
        """Look up, fill (moves, appends, encodes) and score a bucket-padded host batch."""
        self.warm_for(batch)
        plan = self.lookup(batch)
        if device_batch is None:
            device_batch = jax.device_put(batch, may_alias=False)
        self._apply_moves(plan)
        if plan.append:
            self._append(batch, plan)
        if plan.encode:
            self._encode(device_batch, plan)
        return self.score(device_batch, plan)

    def summary(self) -> dict:
        """Stats for the benchmark JSON."""
        s = self.stats
        return {
            "hits": s.hits,
            "misses": s.misses,
            "appends": s.appends,
            "appended_events": s.appended_events,
            "moves": s.moves,
            "evictions": s.evictions,
            "flushes": s.flushes,
            "hit_rate": s.hit_rate,
            "entries": len(self.entries),
            "resident_bytes": int(self.resident_bytes),
            "byte_budget": int(self.byte_budget),
            "entry_bytes": {str(c): b for c, b in self.entry_bytes.items()},
            "pool_bytes": int(sum(2 * k.size * k.dtype.itemsize for k, _ in self.pools.values())),
            "executables": len(self.executables),
            "compile_s": self.compile_s,
            "compiles": s.compiles,
            "late_compiles": s.late_compiles,
            "warm_buckets": [b.as_dict() for b in sorted(self.warm_buckets)],
        }
