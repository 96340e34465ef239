"""Phoenix in the pipeline: out-of-network retrieval (§5 PhoenixSource) and ranking (§9.1 PhoenixScorer).

Both read the catalogue of the partition's engagement sequences (``ServingCatalogue``), so a feed
request hashes ids exactly as the training examples did: the same post, author and user hashes and
the same history layout (``x_reco.data.sequences._history``). The ranker runs the one serving model
(``x_reco.inference``) on its chunked split path, once per request for the whole candidate list.
"""

from __future__ import annotations

import dataclasses
import threading

import jax
import numpy as np
from flax import nnx

from x_reco.common.types import RecsysBatch
from x_reco.configs.weights import signal_columns
from x_reco.data.examples import EngagementSequences
from x_reco.eval.heldout import window_ineligible
from x_reco.features.hashing import Hasher, HashSpec
from x_reco.inference.cache import PrefixCache
from x_reco.inference.engine import make_score_fn, to_device
from x_reco.inference.params import ServingModel
from x_reco.models.retriever import PhoenixRetriever
from x_reco.pipeline.rules import PHOENIX_MAX_RESULTS
from x_reco.pipeline.types import Candidates, Component, FeedRequest, Query


@dataclasses.dataclass(frozen=True)
class ServingCatalogue:
    """The ids and hashes of a partition's sequences that serving needs."""

    partition: str
    item_ids: np.ndarray  # [I] str
    item_index: dict[str, int]
    item_created_ts: np.ndarray  # [I] int64
    item_author_idx: np.ndarray  # [I] int32
    author_ids: np.ndarray  # [N] str
    post_hashes: np.ndarray  # [I, p] int32
    item_author_hashes: np.ndarray  # [I, a] int32
    author_hash_table: np.ndarray  # [N, a] int32
    user_ids: np.ndarray  # [U] str
    user_index: dict[str, int]
    hash_spec: HashSpec
    history_len: int
    observed_mask: np.ndarray  # [A] int8

    @classmethod
    def from_sequences(cls, seqs: EngagementSequences) -> ServingCatalogue:
        cat = seqs.catalogue
        hasher = Hasher(seqs.hash_spec)
        return cls(
            partition=seqs.partition,
            item_ids=cat.item_ids,
            item_index={str(v): i for i, v in enumerate(cat.item_ids)},
            item_created_ts=cat.item_created_ts.astype(np.int64),
            item_author_idx=cat.item_author_idx,
            author_ids=cat.author_ids,
            post_hashes=cat.post_hashes.astype(np.int32),
            item_author_hashes=cat.author_hashes.astype(np.int32),
            author_hash_table=hasher.hash_ids("author", cat.author_ids.tolist()).astype(np.int32),
            user_ids=cat.user_ids,
            user_index={str(v): i for i, v in enumerate(cat.user_ids)},
            hash_spec=seqs.hash_spec,
            history_len=seqs.history_len,
            observed_mask=seqs.observed_mask,
        )

    def user_hashes(self, user_id: str) -> np.ndarray:
        return Hasher(self.hash_spec).hash_ids("user", [user_id]).astype(np.int32)

    def items_of(self, post_ids) -> np.ndarray:
        """Catalogue index per post id, -1 for posts outside the catalogue."""
        return np.array([self.item_index.get(p, -1) for p in post_ids], dtype=np.int64)


def request_batch(cat: ServingCatalogue, query: Query, items: np.ndarray, num_candidates: int) -> RecsysBatch:
    """One request row: the viewer and history of ``query``, catalogue ``items`` as candidates
    (padded to ``num_candidates``; ``-1`` items and padding have zero hashes, i.e. are masked)."""
    s = cat.history_len
    h = query.history
    hist_items = h.item_idx if h is not None else np.full(s, -1, np.int32)
    hist_auth = h.author_idx if h is not None else np.full(s, -1, np.int32)
    valid = hist_items >= 0
    post_h = np.where(valid[:, None], cat.post_hashes[np.maximum(hist_items, 0)], 0)
    auth_h = np.where((hist_auth >= 0)[:, None], cat.author_hash_table[np.maximum(hist_auth, 0)], 0)
    actions = h.actions.astype(np.float32) if h is not None else np.zeros((s, len(cat.observed_mask)), np.float32)
    surface = h.surface.astype(np.int32) if h is not None else np.zeros(s, np.int32)
    n = num_candidates
    items = np.asarray(items, np.int64)
    padded = np.full(n, -1, np.int64)
    padded[: len(items)] = items
    ok = (padded >= 0)[:, None]
    cand_post = np.where(ok, cat.post_hashes[np.maximum(padded, 0)], 0)
    cand_auth = np.where(ok, cat.item_author_hashes[np.maximum(padded, 0)], 0)
    return RecsysBatch(
        user_hashes=cat.user_hashes(query.user_id),
        history_post_hashes=post_h[None].astype(np.int32),
        history_author_hashes=auth_h[None].astype(np.int32),
        history_actions=actions[None],
        history_product_surface=surface[None],
        candidate_post_hashes=cand_post[None].astype(np.int32),
        candidate_author_hashes=cand_auth[None].astype(np.int32),
        candidate_product_surface=np.full((1, n), query.request.surface, np.int32),
    )


class PhoenixSource(Component):
    """Out-of-network retrieval (§5): ``u·v`` against the candidate index, masked per request to posts
    created in ``[t - window_s, t]``, top ``max_results``. Followed authors, seen and deleted posts are
    not excluded here (later stages handle them)."""

    name = "PhoenixSource"

    def __init__(
        self,
        retriever: PhoenixRetriever,
        cat: ServingCatalogue,
        vectors: np.ndarray,
        mask: np.ndarray,
        window_s: float | None,
        max_results: int = PHOENIX_MAX_RESULTS,
    ):
        self.retriever, self.cat, self.window_s, self.max_results = retriever, cat, window_s, max_results
        # jax.jit over the split state: nnx.jit's per-call graph traversal cost ~9 ms of a ~10 ms encode.
        graphdef, self._state = nnx.split(retriever)
        self._encode = jax.jit(lambda state, batch: nnx.merge(graphdef, state).encode_user(batch))
        self._repeats = None
        if retriever.config.repeat_logit:  # the learned repeat term of the items in the viewer's history
            repeats = lambda state, batch, post: nnx.merge(graphdef, state).history_repeats(batch, post)  # noqa: E731
            self._repeats = jax.jit(repeats)
        self.vectors = np.asarray(vectors, np.float32)
        self.mask = np.asarray(mask, bool)
        if len(self.vectors) != len(cat.item_ids):
            raise ValueError(
                f"candidate index has {len(self.vectors)} items, the sequences' catalogue {len(cat.item_ids)}; "
                "rebuild candidate_index from the same engagement_sequences"
            )
        self._debug: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.skip_cold_users = False  # empty_history="upstream": no retrieval without a history (§4)

    def enabled(self, query: Query) -> bool:
        return not query.request.in_network_only and not (self.skip_cold_users and query.cold_user)

    def encode_user(self, query: Query) -> np.ndarray:
        """The unit user vector f32 [D] from the viewer's history (the retriever's user tower)."""
        batch = request_batch(self.cat, query, np.zeros(0, np.int64), 1)
        return np.asarray(self._encode(self._state, batch))[0]

    def user_scores(self, query: Query) -> np.ndarray:
        """The retriever's score of every catalogue item for this request, f32 [I]: ``u·v``, plus the
        learned repeat term where the model has one (``eval.retrieval.user_scores``, per request)."""
        batch = request_batch(self.cat, query, np.zeros(0, np.int64), 1)
        scores = self.vectors @ np.asarray(self._encode(self._state, batch))[0]
        if self._repeats is not None:
            scores = scores + np.asarray(self._repeats(self._state, batch, self.cat.post_hashes))[0]
        return scores

    def affinity(self, query: Query, items: np.ndarray) -> np.ndarray:
        """The retriever's score f64 [n] of catalogue ``items`` for this request (``user_scores``; NaN
        where an item is -1: not in the catalogue)."""
        items = np.asarray(items, np.int64)
        out = np.full(len(items), np.nan)
        known = items >= 0
        if known.any():
            out[known] = self.user_scores(query)[items[known]].astype(np.float64)
        return out

    def scores(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """(the retriever's score per catalogue item f32 [I], ``user_scores``; eligible bool [I])."""
        scores = self.user_scores(query)
        eligible = self.mask.copy()
        t = query.t
        created = self.cat.item_created_ts
        eligible &= created <= t  # never items created after t
        if self.window_s:
            eligible &= ~window_ineligible(created, t, self.window_s)
        return scores, eligible

    def get_candidates(self, query: Query) -> Candidates:
        scores, eligible = self.scores(query)
        masked = np.where(eligible, scores, -np.inf)
        k = min(self.max_results, int(eligible.sum()))
        if k:
            part = np.argpartition(-masked, k - 1)[:k] if k < len(masked) else np.arange(len(masked))
            top = part[np.lexsort((part, -masked[part]))][:k]  # score desc, ties by catalogue index
        else:
            top = np.zeros(0, np.int64)
        with self._lock:
            self._debug[query.request.request_id] = {"scores": scores, "eligible": eligible, "k": k}
        cat = self.cat
        return Candidates(
            {
                "post_id": cat.item_ids[top].astype(object),
                "author_id": cat.author_ids[cat.item_author_idx[top]].astype(object),
                "created_ts": cat.item_created_ts[top],
                "served_type": ["oon_retrieval"] * k,
                "retrieval_sources": [("phoenix",)] * k,
                "retrieval_rank": np.arange(k),
                "retrieval_score": scores[top].astype(np.float64),
            },
            n=k,
        )

    def debug_for(self, request_id: str) -> dict | None:
        with self._lock:
            return self._debug.pop(request_id, None)


_BUCKET_STARTS = tuple(64 * 2**i for i in range(12))


def _bucket(n: int, chunk: int) -> int:
    """Candidate slots compiled for ``n`` candidates: a power of two >= 64, a multiple of ``chunk``."""
    size = 64
    while size < n:
        size *= 2
    return -(-size // chunk) * chunk


class PhoenixScorer(Component):
    """§9.1: one call of the compiled serving path per request for the whole candidate list.

    Retweets are scored as their source post (``retweeted_post_id ?? post_id``). Probabilities are
    ``sigmoid(logit)`` of the serving model (``probs_bca``), laid out by upstream signal name; a
    signal the head lacks stays NaN (None). Candidates outside the catalogue stay unscored. Given the
    ``retrieval`` source, every candidate also gets the retriever's ``u·v`` (``two_tower_score``), which
    a ranking scorer with a retrieval weight blends in (``scoring.rank_scores``).
    """

    name = "PhoenixScorer"

    def __init__(
        self,
        sm: ServingModel,
        cat: ServingCatalogue,
        signals: tuple[str, ...],
        *,
        cache_slots: int = 0,
        warm_candidates: tuple[int, ...] = (),
        retrieval: PhoenixSource | None = None,
    ):
        """``cache_slots > 0`` keeps users' prefix K/V across requests (``x_reco.inference.PrefixCache``,
        ``shared`` position mode only); ``warm_candidates`` are candidate counts whose executables are
        compiled and run once now, so requests up to the largest never compile."""
        if sm.kind != "ranker":
            raise ValueError(f"PhoenixScorer needs a ranker ServingModel, got {sm.kind}")
        config = sm.config
        self.sm, self.cat, self.signals, self.retrieval = sm, cat, tuple(signals), retrieval
        self.chunk = config.candidate_len
        self.shared = config.candidate_position_mode == "shared"
        columns = signal_columns(tuple(config.output_action_names))  # §9.2 aliases, a19 vs x22
        self.columns = {s: columns.get(s) for s in self.signals}
        self.absent = tuple(s for s, c in self.columns.items() if c is None)
        self._fn = jax.jit(make_score_fn(sm, "chunked", self.chunk))
        self._params = to_device(sm.params)
        self.calls = 0  # model calls: counterfactual re-ranking must not add any (§15.2)
        self._lock = threading.Lock()  # the prefix cache's host state and donated pools are not thread-safe
        self.cache = None
        if cache_slots and self.shared:
            self.cache = PrefixCache(
                sm, classes=(cat.history_len,), slots=cache_slots, chunk=self.chunk, params=self._params
            )
        if warm_candidates:
            self.warmup(warm_candidates)

    def warmup(self, candidate_counts) -> None:
        """Compile (and run once) the executables of every candidate bucket up to the largest count."""
        largest = _bucket(max(max(int(n) for n in candidate_counts), 1), self.chunk)
        sizes = sorted({_bucket(n, self.chunk) for n in _BUCKET_STARTS if n <= largest} | {largest})
        sizes = sizes if self.shared else [self.chunk]
        if self.cache is not None:
            self.cache.warmup([(1, self.cat.history_len, n) for n in sizes])
            return
        for n in sizes:
            empty = Query(FeedRequest(self.cat.partition, "", 0))
            self._fn(self._params, request_batch(self.cat, empty, np.zeros(0, np.int64), n))

    def probabilities(self, query: Query, post_ids) -> np.ndarray:
        """Head probabilities f32 [n, A] for catalogue posts (NaN rows for unknown posts)."""
        items = self.cat.items_of(post_ids)
        n = len(items)
        if n > self.chunk and not self.shared:
            raise ValueError(
                f"checkpoint uses candidate_position_mode='reference': {n} candidates exceed one chunk "
                f"({self.chunk}); chunked scoring is exact only in 'shared' mode (phoenix-model spec §11.1)"
            )
        size = _bucket(max(n, 1), self.chunk) if self.shared else self.chunk
        batch = request_batch(self.cat, query, items, size)
        with self._lock:
            self.calls += 1
            out = self.cache(batch) if self.cache is not None else self._fn(self._params, batch)
            probs = np.asarray(out.probs_bca, np.float64)[0, :n]
        probs[items < 0] = np.nan
        return probs

    def score(self, query: Query, cands: Candidates) -> Candidates:
        source = [r if r is not None else p for r, p in zip(cands["retweeted_post_id"], cands["post_id"], strict=True)]
        head = self.probabilities(query, source)
        probs = np.full((len(cands), len(self.signals)), np.nan)
        for j, s in enumerate(self.signals):
            col = self.columns[s]
            if col is not None:
                probs[:, j] = head[:, col]
        out = cands.with_signals(self.signals, probs)
        if self.retrieval is not None:
            out["two_tower_score"] = self.retrieval.affinity(query, self.cat.items_of(source))
        return out
