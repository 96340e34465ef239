"""Pre-scoring filters (spec §8) and post-selection filters (§11), pure over query fields and columns.

Each filter is a ``Component`` whose ``filter(query, cands)`` returns a ``FilterResult``: ``keep`` [n]
and, per removed candidate, a reason ``{"rule": <short name>, ...inputs}`` naming what triggered it
(the keyword, the blocked ancestor and via which field, the kept duplicate). ``kept_index`` in a
reason is a position in that filter's input; ``kept_post_id`` names the same candidate stably.
Hydrators have filled the columns; no filter reads a table. The one exception to purity is
``DropDuplicatesFilter``, which writes the merged retrieval columns onto the kept rows of the
``cands`` it is given (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from x_reco.pipeline.rules import AUG_2026, MAX_POST_AGE, POST_SELECTION_FILTERS, RuleSet
from x_reco.pipeline.text import keyword_matcher
from x_reco.pipeline.types import Candidates, Component, FilterResult, PipelineError, Query

Reasons = list[dict | None]


def _first_index(keys: np.ndarray) -> np.ndarray:
    """Per position, the position of the first candidate with the same key (keys: object array of str)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(keys.astype(str), return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def _coalesce(primary: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``primary ?? fallback`` over object columns."""
    out = fallback.copy()
    has = np.array([v is not None for v in primary], dtype=bool)
    out[has] = primary[has]
    return out


def _in(values: np.ndarray, ids: Collection[str]) -> np.ndarray:
    """Bool [n]: the value (None never) is in ``ids``."""
    return np.fromiter((v is not None and v in ids for v in values), dtype=bool, count=len(values))


def _reasons(n: int, drop: np.ndarray, reason: Callable[[int], dict]) -> FilterResult:
    reasons: Reasons = [None] * n
    for i in np.flatnonzero(drop):
        reasons[i] = reason(int(i))
    return FilterResult(~np.asarray(drop, dtype=bool), reasons)


class DropDuplicatesFilter(Component):
    """§8 #1: a ``post_id`` already kept earlier in concatenation order is removed.

    The kept candidate gains the removed ones' ``retrieval_sources`` (A), and, when it was not itself
    retrieved by Phoenix but a duplicate was, that duplicate's ``retrieval_rank``/``retrieval_score``
    (explanations keep them). The merge is written **in place** onto ``cands`` before returning: the
    framework's kept rows are then ``cands.take(keep)``, with no extra step; a filter failure restores
    the framework's backup, so a half-written merge never survives.
    """

    name = "DropDuplicates"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        post_ids = cands["post_id"]
        first = _first_index(post_ids)
        drop = first != np.arange(len(cands))
        if drop.any():
            self._merge(cands, first, drop)
        return _reasons(
            len(cands),
            drop,
            lambda i: {"rule": "duplicate_of", "post_id": post_ids[i], "kept_index": int(first[i])},
        )

    @staticmethod
    def _merge(cands: Candidates, first: np.ndarray, drop: np.ndarray) -> None:
        sources = cands["retrieval_sources"].copy()
        rank, score = cands["retrieval_rank"].copy(), cands["retrieval_score"].copy()
        for i in np.flatnonzero(drop):  # duplicates only: a handful per request
            k = first[i]
            sources[k] = tuple(dict.fromkeys((*sources[k], *cands["retrieval_sources"][i])))
            if rank[k] < 0 <= rank[i]:
                rank[k], score[k] = rank[i], score[i]
        cands["retrieval_sources"], cands["retrieval_rank"], cands["retrieval_score"] = sources, rank, score


class CoreDataHydrationFilter(Component):
    """§8 #2: core data failed to hydrate (unknown author ``""`` or blank text) [J]."""

    name = "CoreDataHydration"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        no_author = cands["author_id"] == ""
        no_text = np.array([not str(t).strip() for t in cands["text"]], dtype=bool)
        return _reasons(
            len(cands),
            no_author | no_text,
            lambda i: {"rule": "core_data_missing", "missing": "author_id" if no_author[i] else "text"},
        )


class AgeFilter(Component):
    """§8 #3: older than the window (exactly ``window_s`` is kept), unknown ``created_ts``, or after t.

    ``window_s=None`` (a partition without a catalogue window, §13) lifts the age limit only.
    """

    name = "Age"

    def __init__(self, window_s: int | None = MAX_POST_AGE):
        self.window_s = window_s

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        created, t = cands["created_ts"], int(query.t)
        unknown, future = created < 0, created > t
        old = (t - created > self.window_s) if self.window_s is not None else np.zeros(len(cands), bool)

        def reason(i: int) -> dict:
            if unknown[i]:
                return {"rule": "age_unknown", "created_ts": int(created[i])}
            if future[i]:
                return {"rule": "future_post", "created_ts": int(created[i]), "t": t}
            return {"rule": "age", "age_s": t - int(created[i]), "max_age_s": self.window_s}

        return _reasons(len(cands), unknown | future | old, reason)


class SelfPostFilter(Component):
    """§8 #4: the viewer's own post (inert in the synthetic world: users and authors are disjoint)."""

    name = "SelfPost"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        drop = cands["author_id"] == query.user_id
        return _reasons(len(cands), drop, lambda i: {"rule": "self_post", "author_id": query.user_id})


class OONRetweetReplyFilter(Component):
    """§8 #5 (aug): out-of-network replies and retweets, and replies whose ancestors are unknown."""

    name = "OONRetweetReply"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        oon = cands["in_network"] == 0
        reply, retweet = cands["is_reply"], cands["is_retweet"]
        orphan = reply & np.array([not a for a in cands["ancestors"]], dtype=bool)

        def reason(i: int) -> dict:
            if oon[i] and (reply[i] or retweet[i]):
                return {"rule": "oon_reply" if reply[i] else "oon_retweet", "author_id": cands["author_id"][i]}
            return {"rule": "reply_without_ancestors", "in_reply_to_post_id": cands["in_reply_to_post_id"][i]}

        return _reasons(len(cands), (oon & (reply | retweet)) | orphan, reason)


class RetweetDeduplicationFilter(Component):
    """§8 #6: one candidate per source post, key ``retweeted_post_id ?? post_id``.

    ``prefer_original=False`` (upstream default): the first in current order wins, so a retweet ahead
    of its original removes the original. ``prefer_original=True`` (``EnablePreferOriginalRetweetDedup``,
    A ``prefer_original_dedup``): every original is kept; a retweet is kept only if neither its own id
    nor its source id was claimed by an original or an earlier kept retweet.
    """

    name = "RetweetDeduplication"

    def __init__(self, prefer_original: bool = False):
        self.prefer_original = prefer_original

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        post_ids, sources = cands["post_id"], cands["retweeted_post_id"]
        keys = _coalesce(sources, post_ids)
        winner = self._prefer_original(post_ids, sources) if self.prefer_original else _first_index(keys)
        drop = winner != np.arange(len(cands))
        return _reasons(
            len(cands),
            drop,
            lambda i: {
                "rule": "retweet_duplicate",
                "source_post_id": keys[i],
                "kept_index": int(winner[i]),
                "kept_post_id": post_ids[winner[i]],
            },
        )

    @staticmethod
    def _prefer_original(post_ids: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Winner position per candidate (itself when kept)."""
        winner = np.arange(len(post_ids))
        claimed = {pid: i for i, (pid, src) in enumerate(zip(post_ids, sources, strict=True)) if src is None}
        for i in (i for i, src in enumerate(sources) if src is not None):
            hit = next((claimed[x] for x in (post_ids[i], sources[i]) if x in claimed), None)
            if hit is None:
                claimed.setdefault(post_ids[i], i)
                claimed.setdefault(sources[i], i)
            else:
                winner[i] = hit
        return winner


class IneligibleSubscriptionFilter(Component):
    """§8 #7: a subscriber-only post whose author the viewer does not subscribe to."""

    name = "IneligibleSubscription"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        subs = cands["subscription_author_id"]
        drop = np.not_equal(subs, None) & ~_in(subs, query.subscribed_ids)
        return _reasons(len(cands), drop, lambda i: {"rule": "subscription", "subscription_author_id": subs[i]})


class _RelatedIdFilter(Component):
    """Removes a candidate any of whose related ids (post, retweeted, replied-to) is in ``_ids(query)``."""

    rule = ""

    def _ids(self, query: Query) -> frozenset[str]:
        raise NotImplementedError

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        ids = self._ids(query)
        if not ids:
            return FilterResult.from_reasons([None] * len(cands))
        hits = (next((r for r in related if r in ids), None) for related in cands.related_ids())
        return FilterResult.from_reasons([None if h is None else {"rule": self.rule, "related_id": h} for h in hits])


class PreviouslySeenFilter(_RelatedIdFilter):
    """§8 #8: any related id in the viewer's impressions before t [A candidates_util.rs]."""

    name, rule = "PreviouslySeen", "seen"

    def _ids(self, query: Query) -> frozenset[str]:
        return query.seen_ids


class PreviouslyServedFilter(_RelatedIdFilter):
    """§8 #9: any related id served in the last 10 min; bottom requests only unless the rule set's
    ``served_filter_all_requests`` (aug ``EnableServedFilterAllRequests``)."""

    name, rule = "PreviouslyServed", "served"

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def enabled(self, query: Query) -> bool:
        return self.rules.served_filter_all_requests or query.request.is_bottom

    def _ids(self, query: Query) -> frozenset[str]:
        return query.served_ids


class MutedKeywordFilter(Component):
    """§8 #10: the post text contains a muted keyword's token sequence (§8.1, ``text.py``)."""

    name = "MutedKeyword"

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        matcher = keyword_matcher(tuple(query.muted_keywords))
        if not matcher:
            return FilterResult.from_reasons([None] * len(cands))
        hits = [matcher.first_match(str(text)) for text in cands["text"]]
        return FilterResult.from_reasons([None if h is None else {"rule": "muted_keyword", "keyword": h} for h in hits])


class AuthorSocialgraphFilter(Component):
    """§8 #11: the viewer blocks or mutes the author; in aug (``author_socialgraph_full``) also the
    author or the quoted author blocks the viewer, the viewer blocks the quoted or retweeted author,
    or blocks or mutes an ancestor's author (conversation modules render ancestors) [A]."""

    name = "AuthorSocialgraph"

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        names = ("author_id", "author_blocks_viewer", "quoted_author_blocks_viewer", *self._VIA)
        rows = zip(*(cands[c] for c in names), strict=True)
        return FilterResult.from_reasons([self._reason(query, *row) for row in rows])

    _VIA = ("quoted_user_id", "retweeted_user_id", "in_reply_to_user_id", "conversation_author_id")

    def _reason(
        self, query: Query, author, author_blocks, quoted_blocks, quoted, retweeted, replied, root
    ) -> dict | None:
        blocked, muted = query.blocked_ids, query.muted_ids
        if author in blocked:
            return {"rule": "blocked_author", "author_id": author}
        if author in muted:
            return {"rule": "muted_author", "author_id": author}
        if not self.rules.author_socialgraph_full:
            return None
        if author_blocks:
            return {"rule": "author_blocks_viewer", "author_id": author}
        if quoted_blocks:
            return {"rule": "quoted_author_blocks_viewer", "author_id": quoted}
        for uid, via, rule in (
            (quoted, "quoted_user_id", "blocked_quoted_author"),
            (retweeted, "retweeted_user_id", "blocked_retweeted_author"),
        ):
            if uid is not None and uid in blocked:
                return {"rule": rule, "author_id": uid, "via": via}
        for uid, via in ((replied, "in_reply_to_user_id"), (root, "conversation_author_id")):
            if uid is not None and (uid in blocked or uid in muted):
                rule = "blocked_ancestor" if uid in blocked else "muted_ancestor"
                return {"rule": rule, "author_id": uid, "via": via}
        return None


class VideoFilter(Component):
    """§8 #12 (may, aug): the request excludes videos and the post has one."""

    name = "VideoFilter"

    def enabled(self, query: Query) -> bool:
        return query.request.exclude_videos

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        duration = cands["video_duration_ms"]
        drop = ~np.isnan(duration) if query.request.exclude_videos else np.zeros(len(cands), bool)
        return _reasons(len(cands), drop, lambda i: {"rule": "video", "video_duration_ms": float(duration[i])})


class VFFilter(Component):
    """§11 step 3: drops a visibility verdict other than allowed (``None`` or ``"allow"``): ``drop``,
    ``drop_recs``, ``drop_all``, ``deleted`` or any other reason [A vf_filter.rs]. A lookup miss
    (``"miss"``) drops iff ``rules.vf_miss_drops`` (aug); under ``strict`` it raises ``PipelineError``."""

    name = "VFFilter"
    ALLOWED = (None, "allow")

    def __init__(self, rules: RuleSet, strict: bool = False):
        self.rules, self.strict = rules, strict

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        verdicts = cands["visibility"]
        miss = np.array([v == "miss" for v in verdicts], dtype=bool)
        if self.strict and miss.any():
            missing = [str(p) for p in cands["post_id"][miss]]
            raise PipelineError("post_selection_filter", self.name, f"VF lookup miss for {missing}")
        drop = np.array([v not in self.ALLOWED for v in verdicts], dtype=bool)
        if not self.rules.vf_miss_drops:
            drop &= ~miss
        return _reasons(
            len(cands),
            drop,
            lambda i: (
                {"rule": "vf_miss", "rules": self.rules.name} if miss[i] else {"rule": "vf", "verdict": verdicts[i]}
            ),
        )


def _id_order(post_id: str) -> tuple[int, str]:
    """Numeric order for equal-prefix ids of any width (upstream ids are u64): shorter first."""
    return len(post_id), post_id


class DedupConversationFilter(Component):
    """§11 step 3: one post per conversation, key ``min(ancestors)``, else ``retweeted_post_id ??
    post_id`` (aug ``conversation_key_retweet_fallback``) or ``post_id``; keeps the highest ``score``
    (NaN = −inf), ties the first in the given (selected) order."""

    name = "DedupConversation"

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def conversation_keys(self, cands: Candidates) -> np.ndarray:
        post_ids = cands["post_id"]
        fallback = (
            _coalesce(cands["retweeted_post_id"], post_ids)
            if self.rules.conversation_key_retweet_fallback
            else post_ids
        )
        keys = fallback.copy()
        for i, ancestors in enumerate(cands["ancestors"]):
            if ancestors:
                keys[i] = min(ancestors, key=_id_order)
        return keys

    def filter(self, query: Query, cands: Candidates) -> FilterResult:
        n = len(cands)
        keys = self.conversation_keys(cands)
        score = np.where(np.isnan(cands["score"]), -np.inf, cands["score"])
        winner = np.arange(n)
        if n:
            _, group = np.unique(keys.astype(str), return_inverse=True)
            order = np.lexsort((np.arange(n), -score, group.reshape(-1)))  # by group, score desc, position
            g = group.reshape(-1)[order]
            starts = np.r_[True, g[1:] != g[:-1]]
            winner[order] = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
        post_ids = cands["post_id"]
        return _reasons(
            n,
            winner != np.arange(n),
            lambda i: {
                "rule": "duplicate_conversation",
                "conversation_key": keys[i],
                "kept_index": int(winner[i]),
                "kept_post_id": post_ids[winner[i]],
            },
        )


def pre_scoring_filters(
    rules: RuleSet,
    *,
    disabled: Collection[str] = frozenset(),
    window_s: int | None = MAX_POST_AGE,
    prefer_original: bool = False,
) -> list[Component]:
    """The rule set's §8 filters in ``rules.filters`` order, without the ``disabled`` names (§13).

    ``window_s`` is the partition's Age window (None: no limit); ``prefer_original`` is
    ``EnablePreferOriginalRetweetDedup``. Unknown names in ``disabled`` raise ``ValueError``.
    """
    factories: dict[str, Callable[[], Component]] = {
        "DropDuplicates": DropDuplicatesFilter,
        "CoreDataHydration": CoreDataHydrationFilter,
        "Age": lambda: AgeFilter(window_s),
        "SelfPost": SelfPostFilter,
        "OONRetweetReply": OONRetweetReplyFilter,
        "RetweetDeduplication": lambda: RetweetDeduplicationFilter(prefer_original),
        "IneligibleSubscription": IneligibleSubscriptionFilter,
        "PreviouslySeen": PreviouslySeenFilter,
        "PreviouslyServed": lambda: PreviouslyServedFilter(rules),
        "MutedKeyword": MutedKeywordFilter,
        "AuthorSocialgraph": lambda: AuthorSocialgraphFilter(rules),
        "VideoFilter": VideoFilter,
    }
    unknown = sorted(set(disabled) - set(factories) - set(POST_SELECTION_FILTERS))
    if unknown:
        raise ValueError(f"unknown filters {unknown} in disabled; expected names from {sorted(factories)}")
    return [factories[name]() for name in rules.filters if name not in disabled]


def post_selection_filters(
    rules: RuleSet, strict: bool = False, *, disabled: Collection[str] = frozenset()
) -> list[Component]:
    """§11 step 3 in order: ``VFFilter`` (``strict``: a lookup miss raises) then ``DedupConversation``,
    without the ``disabled`` names (§13: partitions without safety data disable VF)."""
    unknown = sorted(set(disabled) - set(POST_SELECTION_FILTERS) - set(AUG_2026.filters))
    if unknown:
        raise ValueError(f"unknown filters {unknown} in disabled; expected names from {list(POST_SELECTION_FILTERS)}")
    made = {"VFFilter": VFFilter(rules, strict=strict), "DedupConversation": DedupConversationFilter(rules)}
    return [made[name] for name in POST_SELECTION_FILTERS if name not in disabled]
