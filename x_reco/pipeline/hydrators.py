"""Query hydrators (spec §4), candidate hydrators (§7) and the post-selection VF hydrator (§11 step 2).

Each is a ``Component`` reading one ``TableState`` as of the request's t and returning only its own
Query fields or candidate columns (same length and order as its input, never dropping). A hydrator
whose tables the partition lacks is disabled (§13), not run on empty data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from x_reco.pipeline.state import ServedLog, TableState
from x_reco.pipeline.types import Candidates, Component, Query


class _StateComponent(Component):
    """A component over a ``TableState``; enabled iff the partition has every table in ``requires``."""

    requires: tuple[str, ...] = ()

    def __init__(self, state: TableState):
        self.state = state

    def enabled(self, query: Query) -> bool:
        return all(name in self.state.social for name in self.requires)


# -- query hydrators (§4) -----------------------------------------------------------------------------
class UserHistoryHydrator(_StateComponent):
    """``user_idx``, ``history`` (engaged events before t, the training definition) and ``cold_user``."""

    name = "UserHistory"

    def hydrate(self, query: Query) -> dict[str, Any]:
        return self.state.history_fields(query.user_id, query.t)


class ImpressionsHydrator(_StateComponent):
    """``seen_ids``: posts of the viewer's impressions before t (upstream's Bloom filter, exact)."""

    name = "Impressions"

    def hydrate(self, query: Query) -> dict[str, Any]:
        return {"seen_ids": self.state.seen_ids(query.user_id, query.t)}


class SocialGraphHydrator(_StateComponent):
    """``followed_ids``, ``blocked_ids``, ``muted_ids``, ``subscribed_ids``, ``muted_keywords`` at t."""

    name = "SocialGraph"

    def hydrate(self, query: Query) -> dict[str, Any]:
        return self.state.social_fields(query.user_id, query.t)


class UserProfileHydrator(_StateComponent):
    """``account_created_ts``, ``follower_count``, ``mutual_follow_ids``."""

    name = "UserProfile"

    def hydrate(self, query: Query) -> dict[str, Any]:
        return self.state.profile_fields(query.user_id, query.t)


class ServedHistoryHydrator(Component):
    """``served_ids`` from the served log (§12) [O served_history_query_hydrator.rs]."""

    name = "ServedHistory"

    def __init__(self, served_log: ServedLog):
        self.served_log = served_log

    def hydrate(self, query: Query) -> dict[str, Any]:
        return {"served_ids": self.served_log.served_ids(query.user_id, query.t)}


def query_hydrators(state: TableState, served_log: ServedLog) -> tuple[Component, ...]:
    """The §4 query hydrators; merged, their fields equal ``state.query(request, served_log)``."""
    return (
        UserHistoryHydrator(state),
        ImpressionsHydrator(state),
        SocialGraphHydrator(state),
        UserProfileHydrator(state),
        ServedHistoryHydrator(served_log),
    )


# -- candidate hydrators (§7) -------------------------------------------------------------------------
class InNetworkHydrator(_StateComponent):
    """``in_network`` = the source's ``author_id`` is the viewer or followed at t [A]."""

    name = "InNetwork"

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        authors = cands["author_id"]
        followed = np.isin(authors.astype(str), np.asarray(sorted(query.followed_ids), dtype=str))
        return {"in_network": ((authors == query.user_id) | followed).astype(np.int8)}


class CoreDataHydrator(_StateComponent):
    """Author, text, links, conversation, ancestors, creation time [J]; a retweet keeps its own
    (retweeting) author and names the original in ``retweeted_post_id`` / ``retweeted_user_id``."""

    name = "CoreData"

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        return self.state.core_data(cands["post_id"], query.t)


class AuthorInfoHydrator(_StateComponent):
    """``author_followers_count``: the author's open follows at t [S0, A]."""

    name = "AuthorInfo"

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        return {"author_followers_count": self.state.author_followers(cands["author_id"], query.t)}


class VideoDurationHydrator(_StateComponent):
    """``video_duration_ms`` and ``quoted_video_duration_ms`` (``post_media``; NaN: no video) [J, A]."""

    name = "VideoDuration"
    requires = ("post_media", "post_links")

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        post_ids = cands["post_id"]
        return {
            "video_duration_ms": self.state.video_duration(post_ids),
            "quoted_video_duration_ms": self.state.quoted_video_duration(post_ids),
        }


class SubscriptionHydrator(_StateComponent):
    """``subscription_author_id`` (``post_paywall``; None: public) [S0]."""

    name = "Subscription"
    requires = ("post_paywall",)

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        return {"subscription_author_id": self.state.subscription_author(cands["post_id"])}


class QuoteBlockedByHydrator(_StateComponent):
    """The quoted post and author, and whether the author or the quoted author blocks the viewer at t [A]."""

    name = "QuoteBlockedBy"
    requires = ("post_links", "author_blocks")

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        quoted_post, quoted_user = self.state.quote(cands["post_id"])
        blocks = self.state.author_blocks_viewer
        return {
            "quoted_post_id": quoted_post,
            "quoted_user_id": quoted_user,
            "quoted_author_blocks_viewer": blocks(quoted_user, query.user_id, query.t),
            "author_blocks_viewer": blocks(cands["author_id"], query.user_id, query.t),
        }


class EngagementCountsHydrator(_StateComponent):
    """``view_count_on_home`` and ``fav_count`` from the events before t [A]."""

    name = "EngagementCounts"

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        return self.state.engagement_counts(cands["post_id"], query.t)


class BidirectionalFollowHydrator(_StateComponent):
    """``is_mutual_follow_author``: the author is a mutual follow (never in the synthetic world) [A]."""

    name = "BidirectionalFollow"

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        mutual = np.asarray(sorted(query.mutual_follow_ids), dtype=str)
        return {"is_mutual_follow_author": np.isin(cands["author_id"].astype(str), mutual)}


class VFHydrator(_StateComponent):
    """§11 step 2: ``visibility`` at TimelineHome (in network) or TimelineHomeRecommendations [J
    vf_candidate_hydrator.rs], from ``post_safety`` and deletions at ≤ t."""

    name = "VF"
    requires = ("post_safety",)

    def hydrate(self, query: Query, cands: Candidates) -> dict[str, np.ndarray]:
        return {"visibility": self.state.vf_verdict(cands["post_id"], cands["in_network"], query.t)}


def candidate_hydrators(state: TableState) -> tuple[Component, ...]:
    """The §7 hydrators in table order."""
    kinds = (
        InNetworkHydrator,
        CoreDataHydrator,
        AuthorInfoHydrator,
        VideoDurationHydrator,
        SubscriptionHydrator,
        QuoteBlockedByHydrator,
        EngagementCountsHydrator,
        BidirectionalFollowHydrator,
    )
    return tuple(kind(state) for kind in kinds)


def post_selection_hydrators(state: TableState) -> tuple[Component, ...]:
    return (VFHydrator(state),)
