"""History attribution (candidate-pipeline spec §15.5): leave-one-out ``Δ_e = c(post | H) − c(post | H \\ e)``.

``c`` is the RankingScorer's combined score ``Σ_s w_s(i) p_s`` (``scoring.rank_scores``' ``combined``:
gates and boosts applied, before offset, cold start, diversity and the OON factor), with each served
post's weights fixed and only the probabilities re-predicted. ``H \\ e`` is the viewer's history with
event e deleted and the rest compacted (``without_event``: the layout of ``x_reco.data.sequences._history``),
so the later events move one slot earlier, as they would had e never happened.

What the prefix cache reuses (``x_reco/inference/cache.py``): the cache keys whole valid prefixes, so
``H \\ e`` (which differs from H from slot e on) would be a plain miss there, and L misses would evict
L other users. Instead one jitted ranker call takes H's prefix K/V (read from the scorer's
``PrefixCache`` entry when resident; otherwise encoded inside the same call, never written to the
cache), keeps its first ``1 + e`` positions for row e (exact: the causal prefix's older K/V never
depend on later events) and re-encodes only the events after e with the model's own
``append_prefix`` (what the cache's incremental append runs), then scores every served post against
every row in one candidate pass. Not saved: at one static shape every row runs ``S - 1`` append
slots, so the reuse saves H's encode (when cached) and all cache churn, not the re-encode FLOPs.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from x_reco.common.actions import ACTIONS
from x_reco.configs.weights import WeightSet
from x_reco.inference.cache import prefix_key, prefix_only
from x_reco.inference.engine import finish
from x_reco.models import masks
from x_reco.models.ranker import PrefixKV
from x_reco.pipeline.framework import FeedResult
from x_reco.pipeline.phoenix import PhoenixScorer, _bucket, request_batch
from x_reco.pipeline.rules import RuleSet
from x_reco.pipeline.scoring import candidate_weights
from x_reco.pipeline.types import History, Query


def without_event(history: History, e: int) -> History:
    """``history`` with valid event ``e`` removed and the later events compacted (end-padded again).

    Raises ValueError for a padding slot (``e >= length``) or a negative ``e``: only real events can go.
    """
    if not 0 <= e < history.length:
        raise ValueError(f"event {e} is not a valid history slot (history length {history.length})")

    def drop(arr: np.ndarray, fill) -> np.ndarray:
        pad = np.full((1,) + arr.shape[1:], fill, arr.dtype)
        return np.concatenate([np.delete(arr, e, axis=0), pad])

    return History(
        length=history.length - 1,
        item_idx=drop(history.item_idx, -1),
        author_idx=drop(history.author_idx, -1),
        ts=drop(history.ts, 0),
        surface=drop(history.surface, 0),
        actions=drop(history.actions, 0),
    )


@dataclasses.dataclass(frozen=True)
class EventAttribution:
    """One history event's part in one served post's score."""

    position: int  # history slot of the event (0 = oldest)
    post_id: str  # the post the viewer engaged with
    actions: tuple[str, ...]  # what the viewer did (x-reco action names)
    delta: float  # c(post | H) − c(post | H \ e)
    share: float  # |delta| / Σ_e |Δ_e| (0 when every Δ is 0)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"actions": list(self.actions)}


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Leave-one-out deltas of one feed: ``deltas`` f64 [n served, L history events]."""

    post_ids: tuple[str, ...]  # served posts, in served order
    event_post_ids: tuple[str, ...]  # [L] the history's posts, oldest first
    event_actions: tuple[tuple[str, ...], ...]  # [L]
    combined: np.ndarray  # [n] c(post | H) from the same call as the deltas
    deltas: np.ndarray  # [n, L]
    ranker_calls: int  # model calls this attribution made (0 for an empty history)
    prefix: str  # "cached": H's K/V read from the PrefixCache; "encoded"; "none" (no call)
    top_k: int = 3  # events per post that ``top`` and reports list

    def top(self, k: int | None = None) -> list[list[EventAttribution]]:
        """Per served post the ``k`` (default ``top_k``) events of largest |Δ|, ties to the older event."""
        k = self.top_k if k is None else k
        total = np.abs(self.deltas).sum(axis=1)
        out = []
        for i, row in enumerate(self.deltas):
            order = np.lexsort((np.arange(len(row)), -np.abs(row)))[:k]
            share = np.abs(row[order]) / total[i] if total[i] > 0 else np.zeros(len(order))
            out.append(
                [
                    EventAttribution(
                        int(e), self.event_post_ids[e], self.event_actions[e], float(row[e]), float(share[j])
                    )
                    for j, e in enumerate(order)
                ]
            )
        return out

    def as_report(self) -> list[list[dict[str, Any]]]:
        """``top()`` as plain data, one list per served post (``FeedPipeline.report(attribution=...)``)."""
        return [[e.as_dict() for e in events] for events in self.top()]


def _event_actions(history: History) -> tuple[tuple[str, ...], ...]:
    names = ACTIONS[: history.actions.shape[1]]
    return tuple(tuple(names[a] for a in np.flatnonzero(row)) for row in history.actions[: history.length])


class LeaveOneOut:
    """The jitted leave-one-out call of one PhoenixScorer (its ServingModel, device params and prefix cache)."""

    def __init__(self, scorer: PhoenixScorer):
        self.scorer = scorer
        sm = scorer.sm

        def loo(params, k_lpkd, v_lpkd, cached, length, batch):
            """Rows e = 0..S-1 hold H \\ e (e < L; else H), row S holds H -> probabilities [S+1, N, A].

            ``k_lpkd``/``v_lpkd`` are H's cached K/V when ``cached``, else placeholders and H is encoded
            here (one executable and one call either way; ``lax.cond`` runs one branch).
            """
            model = sm.module(params.state)

            def encode():
                prefix = model.encode_prefix(*model.prefix_tokens(prefix_only(batch)))
                return prefix.k_lbpkd[:, 0].astype(k_lpkd.dtype), prefix.v_lbpkd[:, 0].astype(v_lpkd.dtype)

            k_lpkd, v_lpkd = jax.lax.cond(cached, lambda: (k_lpkd, v_lpkd), encode)
            s = batch.history_post_hashes.shape[1]
            e_b = jnp.arange(s + 1, dtype=jnp.int32)
            removed_b = e_b < length
            start_b = jnp.where(removed_b, e_b, length)  # cached events kept before the re-encoded tail
            n_new_b = jnp.where(removed_b, length - 1 - e_b, 0)
            m = max(s - 1, 1)
            src_bm = jnp.minimum(start_b[:, None] + 1 + jnp.arange(m, dtype=jnp.int32)[None, :], s - 1)
            new = model.history_tokens(
                batch.history_post_hashes[0][src_bm],
                batch.history_author_hashes[0][src_bm],
                batch.history_actions[0][src_bm],
                batch.history_product_surface[0][src_bm],
            )
            user_b = jnp.broadcast_to(batch.user_valid_b, (s + 1,))
            kv = [jnp.broadcast_to(x[:, None], (x.shape[0], s + 1) + x.shape[1:]) for x in (k_lpkd, v_lpkd)]
            prefix = PrefixKV(*kv, masks.prefix_valid(start_b, user_b, k_lpkd.shape[1]))
            grown = model.append_prefix(prefix, new, jnp.arange(m)[None, :] < n_new_b[:, None])
            cands = model.candidate_tokens(batch)
            cands_bcd = jnp.broadcast_to(cands, (s + 1,) + cands.shape[1:])
            valid_bc = jnp.broadcast_to(batch.candidate_valid_bc, (s + 1, cands.shape[1]))
            out = model.score_with_prefix(grown, cands_bcd, valid_bc)  # <= 64 served posts: one pass
            return finish(params.score_weights, out.logits_bca, out.candidate_mask_bc).probs_bca

        self._loo = jax.jit(loo)
        cfg = sm.config
        shape = (cfg.num_layers, 1 + scorer.cat.history_len, cfg.num_kv_heads, cfg.key_size)
        self._placeholder = (jnp.zeros(shape, sm.cd), jnp.zeros(shape, sm.cd))

    def _prefix(self, batch, length: int) -> tuple[jax.Array, jax.Array] | None:
        """H's K/V [layers, P, K, dk] from the scorer's PrefixCache, or None when it is not resident."""
        cache = self.scorer.cache
        if cache is None or batch.num_history not in cache.pools:
            return None
        entry = cache.entries.get(prefix_key(cache.context, batch, 0, length))
        if entry is None:
            return None
        k_pool, v_pool = cache.pools[entry.cls]
        return k_pool[:, entry.slot], v_pool[:, entry.slot]

    def probabilities(self, query: Query, items: np.ndarray) -> tuple[np.ndarray, str]:
        """(head probabilities f64 [L+1, n, A]: row e < L without event e, row L with the whole history;
        where H's prefix came from, "cached" or "encoded") for catalogue ``items`` [n] (NaN for items < 0).
        One ranker call."""
        scorer, n, length = self.scorer, len(items), query.history.length
        if n > scorer.chunk and not scorer.shared:
            raise ValueError(f"reference position mode scores at most one chunk ({scorer.chunk}), got {n} posts")
        size = _bucket(max(n, 1), scorer.chunk) if scorer.shared else scorer.chunk
        batch = request_batch(scorer.cat, query, items, size)
        params = scorer._params
        with scorer._lock:  # the cache pools are donated by the scorer's calls
            found = self._prefix(batch, length)
            k, v = found if found is not None else self._placeholder
            probs = self._loo(params, k, v, np.bool_(found is not None), np.int32(length), batch)
            scorer.calls += 1
        rows = np.r_[np.arange(length), batch.num_history]
        probs = np.asarray(probs, np.float64)[rows, :n]
        probs[:, items < 0] = np.nan
        return probs, "cached" if found is not None else "encoded"


_LOO: weakref.WeakKeyDictionary[PhoenixScorer, LeaveOneOut] = weakref.WeakKeyDictionary()


def leave_one_out(scorer: PhoenixScorer) -> LeaveOneOut:
    """The scorer's LeaveOneOut, built once (its jitted calls compile once per history and candidate bucket)."""
    if scorer not in _LOO:
        _LOO[scorer] = LeaveOneOut(scorer)
    return _LOO[scorer]


def attribute(
    result: FeedResult, scorer: PhoenixScorer, weights: WeightSet, rules: RuleSet, top: int = 3
) -> Attribution:
    """§15.5 for every served post of ``result`` and every event of the viewer's history in one ranker call
    (none for an empty history or feed).

    ``scorer``, ``weights`` and ``rules`` are the ones that served ``result``; each post's gated weights
    ``w_s(i)`` come from its served row (``scoring.candidate_weights``); ``top`` events per post are listed.
    """
    query, served = result.query, result.served
    history = query.history
    post_ids = tuple(str(p) for p in served["post_id"])
    if history is None or history.length == 0 or not len(served):
        n = len(served)
        empty = np.zeros((n, 0))
        return Attribution(post_ids, (), (), np.full(n, np.nan), empty, 0, "none", top)
    source = [r if r is not None else p for r, p in zip(served["retweeted_post_id"], served["post_id"], strict=True)]
    head, prefix = leave_one_out(scorer).probabilities(query, scorer.cat.items_of(source))
    w = candidate_weights(served, query, weights, rules)  # [n, signals]
    x = np.zeros(head.shape[:2] + (len(rules.signals),))
    for j, s in enumerate(rules.signals):
        col = scorer.columns.get(s)
        if col is not None:
            x[:, :, j] = np.nan_to_num(head[:, :, col], nan=0.0)
    c = np.einsum("ein,in->ei", x, w)  # [L+1, n]
    events = tuple(str(p) for p in scorer.cat.item_ids[history.item_idx[: history.length]])
    deltas = (c[-1][None] - c[:-1]).T
    return Attribution(post_ids, events, _event_actions(history), c[-1], deltas, 1, prefix, top)
