"""Prefix KV cache (inference spec §2.3, §5.7): hit == miss == dense on padded histories for several
users, incremental append (the model's own ``append_prefix``) == full re-encode, the key changes on
any single prefix input or a param_version change, LRU under a byte budget, flush on version change.

Guards the fork's cache bugs: a hit path that treated padded positions as valid (0.37 probability
error), a key that ignored actions / surfaces / authors / parameter version, and a one-user cache; and the
append tail of issue 13 (a user's first append compiled its step mid-serving: p99 40x p50): after
``warmup`` no request of the warmed buckets compiles, whatever mix of misses, hits, appends and moves.
"""

import dataclasses

import jax
import numpy as np
import pytest

from tests.inference.helpers import (
    F32_TOL,
    batch,
    edit,
    model_logits,
    pad,
    source,
    truncate_history,
    valid_candidates,
)
from x_reco.inference.cache import ExecutableCache, PrefixCache, key_context, prefix_key
from x_reco.inference.engine import CompileCounter
from x_reco.inference.requests import Bucket, pad_batch

S = 11  # tiny history_len = the capacity class
EXECUTABLES = ExecutableCache(maxsize=64)  # the caches below share compiled steps (same model and shapes)


def _cache(**kw):
    """A cache for result tests: it compiles only the steps it runs (warming is tested on its own below)."""
    kw.setdefault("warm_on_first_use", False)
    return PrefixCache(source(), classes=kw.pop("classes", (S,)), precision="highest", executables=EXECUTABLES, **kw)


def _check(out, b):
    mask = valid_candidates(b)
    assert np.abs(np.asarray(out.logits_bca) - model_logits(b))[mask].max() <= F32_TOL


def test_miss_then_hit_equal_dense_on_padded_histories():
    cache = _cache(slots=16)
    b = batch(seed=11, b=6)  # row 1 empty history, others padded at the end
    assert (np.asarray(b.history_post_hashes)[:, :, 0] == 0).any(axis=1).sum() >= 4
    _check(cache(b), b)
    assert cache.stats.misses == 6 and cache.stats.hits == 0
    _check(cache(b), b)
    assert cache.stats.hits == 6
    other = batch(seed=12, b=6)  # other users share the pool
    _check(cache(other), other)
    _check(cache(b), b)
    assert cache.stats.hits == 12 and cache.summary()["entries"] == 12


def test_incremental_append_equals_full_encode():
    b = batch(seed=13, b=5)
    lengths = (np.asarray(b.history_post_hashes)[:, :, 0] != 0).sum(axis=1)
    cache = _cache(slots=8, append_chunk=3)  # several append rounds for long appends
    cache(truncate_history(b, np.maximum(lengths - 5, 0)))
    _check(cache(b), b)
    assert cache.stats.appends >= 3 and cache.stats.appended_events == int(
        (lengths - np.maximum(lengths - 5, 0))[lengths > 0].sum()
    )


def test_capacity_class_move_is_exact():
    b = batch(seed=15, b=3)
    cache = _cache(classes=(S, 16), slots=4)
    cache(b)
    wide = pad_batch(b, Bucket(3, 16, b.num_candidates))
    _check(cache(wide), b)
    assert cache.stats.moves == 3 and cache.stats.hits == 3


def _one_bit(b, field, index, value):
    arr = np.array(getattr(b, field))
    arr[index] = value
    return edit(b, **{field: arr})


@pytest.mark.parametrize(
    "field,index,value",
    [
        ("history_actions", (0, 2, 4), None),
        ("history_product_surface", (0, 3), None),
        ("history_author_hashes", (0, 1, 0), None),
        ("history_post_hashes", (0, 0, 1), None),
        ("user_hashes", (0, 1), None),
    ],
)
def test_key_changes_on_any_single_prefix_input(field, index, value):
    b = batch(seed=16, b=2)
    ctx = key_context(source())
    length = int((np.asarray(b.history_post_hashes)[0, :, 0] != 0).sum())
    old = np.asarray(getattr(b, field))[index]
    new = (
        (1.0 - old)
        if field == "history_actions"
        else (old % 5) + 1
        if field != "history_product_surface"
        else (old + 1) % 7
    )
    changed = _one_bit(b, field, index, new)
    assert prefix_key(ctx, b, 0, length) != prefix_key(ctx, changed, 0, length)
    cache = _cache(slots=4)
    cache(b)
    cache(changed)
    assert cache.stats.misses == 3 and cache.stats.hits == 1  # row 1 unchanged: hit; row 0: miss


def test_param_version_change_misses_and_flushes():
    b = batch(seed=17, b=2)
    cache = _cache(slots=4)
    cache(b)
    assert key_context(source()) != key_context(source().replace(param_version="other"))
    cache.reload(source().replace(param_version="other"))
    assert cache.stats.flushes == 1 and cache.summary()["entries"] == 0
    _check(cache(b), b)
    assert cache.stats.misses == 4 and cache.stats.hits == 0


def test_lru_eviction_under_byte_budget():
    cache = _cache(slots=8, byte_budget=3 * _cache(slots=1).entry_bytes[S])
    first, second = batch(seed=18, b=2), batch(seed=19, b=2)
    cache(first)
    cache(second)  # 4 users, room for 3: the least recently used user of `first` is evicted
    assert cache.stats.evictions == 1 and cache.summary()["resident_bytes"] <= cache.byte_budget
    _check(cache(second), second)
    assert cache.stats.hits == 2
    _check(cache(first), first)  # first's row 0 was evicted: re-encoded, still exact
    assert cache.summary()["entries"] == 3 and cache.summary()["resident_bytes"] <= cache.byte_budget


def test_reference_mode_is_not_cacheable():
    with pytest.raises(ValueError, match="shared"):
        PrefixCache(source("reference"), classes=(S,))


def test_executable_cache_is_bounded_and_shared():
    shared = ExecutableCache(maxsize=2)
    for i in range(3):
        shared.put(("step", i), object())
    assert len(shared) == 2 and shared.get(("step", 0)) is None and shared.get(("step", 2)) is not None
    b = batch(seed=20, b=2)
    first = PrefixCache(source(), classes=(S,), precision="highest", executables=ExecutableCache())
    first(b)
    second = PrefixCache(source(), classes=(S,), precision="highest", executables=first.executables)
    _check(second(b), b)
    assert first.compile_s > 0 and second.compile_s == 0  # the second cache compiled nothing


def _rows(b, rows):
    return dataclasses.replace(b, **{f.name: np.asarray(getattr(b, f.name))[rows] for f in dataclasses.fields(b)})


def test_one_user_growing_history_appends_equal_the_uncached_probabilities_and_never_compile():
    user = _rows(batch(seed=21, b=1), [0])  # B=1, full history of S events
    full = int((np.asarray(user.history_post_hashes)[0, :, 0] != 0).sum())
    grown = [truncate_history(user, [length]) for length in range(3, full + 1)]  # one new event per request
    want = [np.asarray(jax.nn.sigmoid(model_logits(b))) for b in grown]
    cache = PrefixCache(source(), classes=(S,), slots=2, append_chunk=2, precision="highest")  # default warming
    cache(truncate_history(user, [2]))  # the bucket's first request (a miss) warms every step of it
    with CompileCounter() as counter:
        got = [np.asarray(cache(b).probs_bca) for b in grown]
    assert counter.count == 0 and cache.stats.late_compiles == 3  # encode, append, score: all on the first request
    for g, w, b in zip(got, want, grown):
        assert np.abs(g - w)[valid_candidates(b)].max() <= F32_TOL
    assert cache.stats.appends == full - 2 and cache.stats.appended_events == full - 2 and cache.stats.misses == 1


def test_after_warmup_misses_hits_appends_moves_and_evictions_never_compile():
    cache = PrefixCache(
        source(), classes=(S, 16), slots=4, append_chunk=3, precision="highest", executables=ExecutableCache()
    )
    full = batch(seed=22, b=2)
    n, wide_n = full.num_candidates, full.num_candidates + 2
    lengths = (np.asarray(full.history_post_hashes)[:, :, 0] != 0).sum(axis=1)
    # encode and append per (B, S), score per (B, S, N), a move into each class from the other: 2+2+3+2
    assert cache.warmup([(2, S, n), (2, 16, n), Bucket(2, S, wide_n)]) == 9
    assert cache.warmup([(2, 16, wide_n)]) == 1  # only its score: the encode never sees the candidates
    requests = [
        truncate_history(full, np.maximum(lengths - 4, 0)),  # miss
        truncate_history(full, np.maximum(lengths - 4, 0)),  # hit
        full,  # append of 4 events (two rounds of 3) to row 0; row 1 (empty history) hits
        pad_batch(full, Bucket(2, 16, n)),  # hit, moved up to class 16
        *(batch(seed=s, b=2) for s in (23, 24, 25)),  # misses in class S, evicting its LRU entries
        pad(full, candidates=2),  # hit in class 16, moved back down, N = 7
    ]
    with CompileCounter() as counter:
        outs = [jax.block_until_ready(cache(r)) for r in requests]
    assert counter.count == 0 and cache.stats.late_compiles == 0
    st = cache.stats
    assert (st.misses, st.hits, st.appends, st.appended_events, st.moves) == (8, 7, 1, 4, 4) and st.evictions >= 1
    for out, r in zip(outs, requests):
        _check(out, r if r.num_history == S else full)


def test_without_warming_a_users_first_append_compiles_mid_serving():
    cache = PrefixCache(
        source(), classes=(S,), precision="highest", executables=ExecutableCache(), warm_on_first_use=False
    )
    cache(truncate_history(batch(seed=26, b=1), [3]))  # the bucket's first request: a miss
    with CompileCounter() as counter:
        cache(truncate_history(batch(seed=26, b=1), [4]))  # the user's first append: the issue-13 tail
    assert counter.count == 1 and cache.stats.appends == 1 and cache.stats.late_compiles == 3


def test_warmup_validates_buckets_and_a_shared_executable_cache():
    with pytest.raises(ValueError, match="capacity class"):
        _cache().warmup([(1, 16, 5)])
    small = PrefixCache(source(), classes=(S,), executables=ExecutableCache(maxsize=2))
    with pytest.raises(ValueError, match="needs 3 executables"):
        small.warmup([(1, S, 5)])
