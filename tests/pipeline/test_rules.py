"""Rule sets and constants (candidate-pipeline spec §2): every ``RuleSet`` field of jan / may / aug-2026 and
every §2.3 / §9 / §6 constant pinned to a fixture copied from the spec, so a silent edit of one rule or
constant fails here rather than shifting served feeds."""

from __future__ import annotations

import dataclasses

import pytest

from x_reco.pipeline import rules as R
from x_reco.pipeline.rules import RULE_SETS, RuleSet, rule_set

JAN_FILTERS = (
    "DropDuplicates", "CoreDataHydration", "Age", "SelfPost", "RetweetDeduplication", "IneligibleSubscription",
    "PreviouslySeen", "PreviouslyServed", "MutedKeyword", "AuthorSocialgraph",
)  # fmt: skip
AUG_FILTERS = (  # §8 table numbers 1-12
    "DropDuplicates", "CoreDataHydration", "Age", "SelfPost", "OONRetweetReply", "RetweetDeduplication",
    "IneligibleSubscription", "PreviouslySeen", "PreviouslyServed", "MutedKeyword", "AuthorSocialgraph", "VideoFilter",
)  # fmt: skip
JAN_PROB = (  # §2.1: 14 probability signals ...
    "favorite", "reply", "retweet", "photo_expand", "click", "profile_click", "vqv", "share", "share_via_dm",
    "share_via_copy_link", "dwell", "quote", "quoted_click", "follow_author",
)  # fmt: skip
NEG = ("not_interested", "block_author", "mute_author", "report")  # ... + 4 negative

# §2.1, one dict per column of the table.
RULES_FIXTURE = {
    "jan-2026": {
        "source_order": ("phoenix", "thunder"),
        "filters": JAN_FILTERS,
        "served_filter_all_requests": False,
        "signals": (*JAN_PROB, *NEG, "cont_dwell_time"),
        "vqv_viewer_follower_cap": None,
        "mutual_follow_reply_boost": 0.0,
        "cold_start": False,
        "oon_in_network_replies_retweets": False,
        "oon_branches": False,
        "author_socialgraph_full": False,
        "vf_miss_drops": False,
        "conversation_key_retweet_fallback": False,
    },
    "may-2026": {
        "source_order": ("thunder", "phoenix"),
        "filters": (*JAN_FILTERS, "VideoFilter"),
        "served_filter_all_requests": False,
        "signals": (*JAN_PROB, "quoted_vqv", *NEG, "not_dwelled", "cont_dwell_time", "cont_click_dwell_time"),
        "vqv_viewer_follower_cap": None,
        "mutual_follow_reply_boost": 0.0,
        "cold_start": False,
        "oon_in_network_replies_retweets": False,
        "oon_branches": True,
        "author_socialgraph_full": False,
        "vf_miss_drops": False,
        "conversation_key_retweet_fallback": False,
    },
    "aug-2026": {
        "source_order": ("thunder", "phoenix"),
        "filters": AUG_FILTERS,
        "served_filter_all_requests": True,
        "signals": (
            *JAN_PROB,
            "quoted_vqv",
            "video_open",
            "open_link",
            "post_unexplored",
            "active_secs_5m_residual_norm",
            *NEG,
            "not_dwelled",
            "cont_dwell_time",
            "cont_click_dwell_time",
        ),  # fmt: skip
        "vqv_viewer_follower_cap": 10_000,
        "mutual_follow_reply_boost": 15.0,
        "cold_start": True,
        "oon_in_network_replies_retweets": True,
        "oon_branches": True,
        "author_socialgraph_full": True,
        "vf_miss_drops": True,
        "conversation_key_retweet_fallback": True,
    },
}
SOURCE_COMMITS = {"jan-2026": "aaa167b3", "may-2026": "e414c17", "aug-2026": "625f9e30"}  # §1 J, M, A

# §2.3 config.rs, §9 param.rs flags, §4 served history, §6 Thunder caps.
CONSTANTS = {
    "NEGATIVE_SCORES_OFFSET": 0.001,
    "TOP_K_CANDIDATES_TO_SELECT": 50,
    "RESULT_SIZE": 35,
    "MAX_POST_AGE": 172_800,
    "NEW_USER_OON_WEIGHT_FACTOR": 0.00001,
    "NEW_USER_MIN_FOLLOWING": 5,
    "UAS_WINDOW_TIME_MS": 300_000,
    "SERVED_HISTORY_WINDOW_S": 600,
    "SERVED_HISTORY_MAX": 100,
    "THUNDER_MAX_RESULTS": 1200,
    "PHOENIX_MAX_RESULTS": 1000,
    "MAX_INPUT_LIST_SIZE": 1000,
    "MIN_VIDEO_DURATION_MS": 10_000,
    "VQV_VIEWER_FOLLOWER_CAP": 10_000,
    "AUTHOR_DIVERSITY_DECAY": 0.5,
    "AUTHOR_DIVERSITY_FLOOR": 0.25,
    "OON_WEIGHT_FACTOR": 0.75,
    "TOPIC_OON_WEIGHT_FACTOR": 0.5,
    "NEW_USER_AGE_THRESHOLD_SECS": 0,
    "COLD_START_SLOT_MIN": 15,
    "COLD_START_SLOT_MAX": 16,
    "LOW_IMPRESSIONS_MAX_POSITION_RATIO": 0.85,
    "COLD_START_FOLLOWER_CAP": 1000,
    "COLD_START_IMPRESSION_THRESHOLD": 1000,
    "MUTUAL_FOLLOW_REPLY_BOOST": 15.0,
    "MAX_POSTING_LIST": 512,
    "MAX_SCAN_PER_AUTHOR": 1000,
    "MAX_ORIGINAL_PER_AUTHOR": 50,
    "MAX_SECONDARY_PER_AUTHOR": 30,
}


@pytest.mark.parametrize("name", sorted(RULES_FIXTURE))
def test_rule_set_pinned_field_by_field(name):
    rs = rule_set(name)
    want = RULES_FIXTURE[name]
    fields = {f.name for f in dataclasses.fields(RuleSet)} - {"name", "source"}
    assert fields == set(want), "a RuleSet field without a fixture row (or the reverse)"
    for field, value in want.items():
        assert getattr(rs, field) == value, field
    assert rs.name == name and SOURCE_COMMITS[name] in rs.source
    assert repr(rs) == f"RuleSet({name})"


def test_signal_counts_and_split():
    jan, may, aug = (rule_set(n) for n in ("jan-2026", "may-2026", "aug-2026"))
    assert (len(jan.probability_signals), len(jan.continuous_signals)) == (18, 1)
    assert set(may.signals) - set(jan.signals) == {"quoted_vqv", "not_dwelled", "cont_click_dwell_time"}
    new = {"video_open", "open_link", "post_unexplored", "active_secs_5m_residual_norm"}
    assert set(aug.signals) - set(may.signals) == new
    assert aug.continuous_signals == R.CONTINUOUS_SIGNALS == ("cont_dwell_time", "cont_click_dwell_time")
    assert len(jan.filters) == 10 and len(may.filters) == 11 and len(aug.filters) == 12


def test_constants_pinned():
    for name, value in CONSTANTS.items():
        got = getattr(R, name)
        assert got == value and type(got) is type(value), name
    assert R.POST_SELECTION_FILTERS == ("VFFilter", "DedupConversation")


def test_registry_and_default():
    assert R.DEFAULT_RULES == "aug-2026" and set(RULE_SETS) == set(RULES_FIXTURE)
    assert rule_set(R.AUG_2026) is R.AUG_2026
    with pytest.raises(ValueError, match=r"unknown rule set 'feb-2026'.*aug-2026"):
        rule_set("feb-2026")
    with pytest.raises(dataclasses.FrozenInstanceError):
        R.AUG_2026.cold_start = False  # type: ignore[misc]
