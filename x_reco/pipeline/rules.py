"""Rule sets and constants of the For You pipeline (candidate-pipeline spec §2).

A ``RuleSet`` is everything that changed between the three public versions of home-mixer (§2.1):
source order, which pre-scoring filters run, the scorer's signals and gates, the out-of-network
branches. The numeric constants of ``config.rs`` and the ``param.rs`` flags the pipeline reads are
module constants here (one place); weight *values* live in ``x_reco.configs.weights``.
"""

from __future__ import annotations

import dataclasses

from x_reco.configs.weights import CONTINUOUS_SIGNALS

# home-mixer/params/config.rs [A] (§2.3)
NEGATIVE_SCORES_OFFSET = 0.001
TOP_K_CANDIDATES_TO_SELECT = 50
RESULT_SIZE = 35
MAX_POST_AGE = 48 * 60 * 60  # seconds
NEW_USER_OON_WEIGHT_FACTOR = 0.00001
NEW_USER_MIN_FOLLOWING = 5
UAS_WINDOW_TIME_MS = 300_000
SERVED_HISTORY_WINDOW_S = 10 * 60  # §4 served_ids: served in [t - 10 min, t)
SERVED_HISTORY_MAX = 100

# param.rs 2026-08-12 [A] flags and limits the pipeline reads (quoted by name in the spec)
THUNDER_MAX_RESULTS = 1200
PHOENIX_MAX_RESULTS = 1000
MAX_INPUT_LIST_SIZE = 1000  # followed ids sent to Thunder (x-reco; unpublished upstream)
MIN_VIDEO_DURATION_MS = 10_000
VQV_VIEWER_FOLLOWER_CAP = 10_000  # candidates_util.rs [A]
AUTHOR_DIVERSITY_DECAY = 0.5
AUTHOR_DIVERSITY_FLOOR = 0.25
OON_WEIGHT_FACTOR = 0.75
TOPIC_OON_WEIGHT_FACTOR = 0.5
NEW_USER_AGE_THRESHOLD_SECS = 0
COLD_START_SLOT_MIN = 15
COLD_START_SLOT_MAX = 16
LOW_IMPRESSIONS_MAX_POSITION_RATIO = 0.85
COLD_START_FOLLOWER_CAP = 1000
COLD_START_IMPRESSION_THRESHOLD = 1000
MUTUAL_FOLLOW_REPLY_BOOST = 15.0

# Thunder caps (§6; unpublished upstream, x-reco's values)
MAX_POSTING_LIST = 512
MAX_SCAN_PER_AUTHOR = 1000
MAX_ORIGINAL_PER_AUTHOR = 50
MAX_SECONDARY_PER_AUTHOR = 30

# Scorer signals (§9.2), upstream names. Probability signals first, then continuous (per second).
_JAN_POSITIVE = (
    "favorite",
    "reply",
    "retweet",
    "photo_expand",
    "click",
    "profile_click",
    "vqv",
    "share",
    "share_via_dm",
    "share_via_copy_link",
    "dwell",
    "quote",
    "quoted_click",
    "follow_author",
)
_NEGATIVE = ("not_interested", "block_author", "mute_author", "report")

# Pre-scoring filters by name (§8), in the aug-2026 order.
_JAN_FILTERS = (
    "DropDuplicates",
    "CoreDataHydration",
    "Age",
    "SelfPost",
    "RetweetDeduplication",
    "IneligibleSubscription",
    "PreviouslySeen",
    "PreviouslyServed",
    "MutedKeyword",
    "AuthorSocialgraph",
)
_AUG_FILTERS = (
    "DropDuplicates",
    "CoreDataHydration",
    "Age",
    "SelfPost",
    "OONRetweetReply",
    "RetweetDeduplication",
    "IneligibleSubscription",
    "PreviouslySeen",
    "PreviouslyServed",
    "MutedKeyword",
    "AuthorSocialgraph",
    "VideoFilter",
)
POST_SELECTION_FILTERS = ("VFFilter", "DedupConversation")


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """One public version of home-mixer's rules (§2.1); the framework and selection are A's in all."""

    name: str
    source: str  # the upstream tree the rules were read from
    source_order: tuple[str, ...]  # sources, concatenated in this order
    filters: tuple[str, ...]  # pre-scoring filters, in order
    served_filter_all_requests: bool  # PreviouslyServed on every request (else bottom requests only)
    signals: tuple[str, ...]  # probability signals then continuous ones, upstream names
    vqv_viewer_follower_cap: int | None  # vqv weight only for viewers below this many followers
    mutual_follow_reply_boost: float  # added to the reply weight for mutual-follow originals
    cold_start: bool  # author cold-start boost (§9.5)
    oon_in_network_replies_retweets: bool  # OON factor also on in-network replies and retweets
    oon_branches: bool  # topic / new user / default branches (False: 0.75 only)
    author_socialgraph_full: bool  # §8 #11 full rule (False: author in blocked or muted)
    vf_miss_drops: bool  # a VF lookup miss drops the candidate (False: kept)
    conversation_key_retweet_fallback: bool  # key without ancestors: retweeted_post_id ?? post_id

    def __repr__(self) -> str:
        return f"RuleSet({self.name})"

    @property
    def probability_signals(self) -> tuple[str, ...]:
        return tuple(s for s in self.signals if s not in CONTINUOUS_SIGNALS)

    @property
    def continuous_signals(self) -> tuple[str, ...]:
        return tuple(s for s in self.signals if s in CONTINUOUS_SIGNALS)


JAN_2026 = RuleSet(
    name="jan-2026",
    source="yuanweize/x-algorithm@aaa167b3 (mirror of upstream 2026-01-20)",
    source_order=("phoenix", "thunder"),
    filters=_JAN_FILTERS,
    served_filter_all_requests=False,
    signals=(*_JAN_POSITIVE, *_NEGATIVE, "cont_dwell_time"),
    vqv_viewer_follower_cap=None,
    mutual_follow_reply_boost=0.0,
    cold_start=False,
    oon_in_network_replies_retweets=False,
    oon_branches=False,
    author_socialgraph_full=False,
    vf_miss_drops=False,
    conversation_key_retweet_fallback=False,
)
MAY_2026 = dataclasses.replace(
    JAN_2026,
    name="may-2026",
    source="e414c17 ranking_scorer.rs (public mirror, 2026-05-15) and its deep dive",
    source_order=("thunder", "phoenix"),
    filters=(*_JAN_FILTERS, "VideoFilter"),
    signals=(*_JAN_POSITIVE, "quoted_vqv", *_NEGATIVE, "not_dwelled", "cont_dwell_time", "cont_click_dwell_time"),
    oon_branches=True,
)
AUG_2026 = RuleSet(
    name="aug-2026",
    source="xai-org/x-algorithm@625f9e30 (param.rs last sync 2026-08-12)",
    source_order=("thunder", "phoenix"),
    filters=_AUG_FILTERS,
    served_filter_all_requests=True,
    signals=(
        *_JAN_POSITIVE,
        "quoted_vqv",
        "video_open",
        "open_link",
        "post_unexplored",
        "active_secs_5m_residual_norm",
        *_NEGATIVE,
        "not_dwelled",
        "cont_dwell_time",
        "cont_click_dwell_time",
    ),
    vqv_viewer_follower_cap=VQV_VIEWER_FOLLOWER_CAP,
    mutual_follow_reply_boost=MUTUAL_FOLLOW_REPLY_BOOST,
    cold_start=True,
    oon_in_network_replies_retweets=True,
    oon_branches=True,
    author_socialgraph_full=True,
    vf_miss_drops=True,
    conversation_key_retweet_fallback=True,
)
RULE_SETS: dict[str, RuleSet] = {r.name: r for r in (AUG_2026, MAY_2026, JAN_2026)}
DEFAULT_RULES = AUG_2026.name


def rule_set(name: str | RuleSet) -> RuleSet:
    """The rule set called ``name``; ValueError naming the known ones otherwise."""
    if isinstance(name, RuleSet):
        return name
    try:
        return RULE_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule set {name!r}; expected one of {sorted(RULE_SETS)}") from None
