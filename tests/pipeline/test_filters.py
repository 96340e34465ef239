"""The §8 pre-scoring and §11 post-selection filters, one test group per filter, porting upstream's
unit cases (A ``*_filter.rs`` tests; §18 item 6): each removes exactly what its rule says, keeps
order, and names the inputs that triggered a removal in its reason."""

from __future__ import annotations

import numpy as np
import pytest

from x_reco.pipeline.filters import (
    AgeFilter,
    AuthorSocialgraphFilter,
    CoreDataHydrationFilter,
    DedupConversationFilter,
    DropDuplicatesFilter,
    IneligibleSubscriptionFilter,
    MutedKeywordFilter,
    OONRetweetReplyFilter,
    PreviouslySeenFilter,
    PreviouslyServedFilter,
    RetweetDeduplicationFilter,
    SelfPostFilter,
    VFFilter,
    VideoFilter,
    post_selection_filters,
    pre_scoring_filters,
)
from x_reco.pipeline.rules import AUG_2026, JAN_2026, MAX_POST_AGE, MAY_2026, RULE_SETS
from x_reco.pipeline.types import Candidates, FeedRequest, PipelineError, Query

T = 1_800_000_000


def query(page: int = 1, exclude_videos: bool = False, **fields) -> Query:
    return Query(FeedRequest("synthetic", "u0042", T, page=page, exclude_videos=exclude_videos), **fields)


def cands(n: int | None = None, **columns) -> Candidates:
    """Candidates p0, p1, ... with text and an author, overridden by ``columns``."""
    n = n if n is not None else len(next(iter(columns.values())))
    base = {"post_id": [f"p{i}" for i in range(n)], "author_id": ["a001"] * n, "text": ["hello"] * n}
    return Candidates({**base, **columns})


def kept(result, c: Candidates, column: str = "post_id") -> list:
    return list(c[column][result.keep])


def test_filter_names_are_the_spec_names():
    names = [f.name for f in pre_scoring_filters(AUG_2026)] + [f.name for f in post_selection_filters(AUG_2026)]
    assert names == [*AUG_2026.filters, "VFFilter", "DedupConversation"]


@pytest.mark.parametrize("rules", list(RULE_SETS.values()), ids=list(RULE_SETS))
def test_pre_scoring_filters_follow_the_rule_set_and_skip_disabled(rules):
    assert [f.name for f in pre_scoring_filters(rules)] == list(rules.filters)
    off = {"MutedKeyword", "AuthorSocialgraph", "VideoFilter"}  # VideoFilter absent from jan: still a known name
    some = pre_scoring_filters(rules, disabled=off)
    assert [f.name for f in some] == [n for n in rules.filters if n not in off]
    assert len(some) == len(rules.filters) - len(off & set(rules.filters))
    assert [f.name for f in pre_scoring_filters(rules, disabled={"VFFilter"})] == list(rules.filters)
    with pytest.raises(ValueError, match="MutedKeywords"):
        pre_scoring_filters(rules, disabled={"MutedKeywords"})


def test_pre_scoring_filters_pass_window_and_prefer_original():
    filters = {f.name: f for f in pre_scoring_filters(AUG_2026, window_s=None, prefer_original=True)}
    assert filters["Age"].window_s is None
    assert filters["RetweetDeduplication"].prefer_original is True


# --- DropDuplicates (§8 #1) ---


def test_drop_duplicates_keeps_first_and_merges_sources():
    c = Candidates(
        {
            "post_id": ["p1", "p2", "p1", "p3", "p2"],
            "retrieval_sources": [("thunder",), ("thunder",), ("phoenix",), ("phoenix",), ("phoenix",)],
            "served_type": ["in_network", "in_network", "oon_retrieval", "oon_retrieval", "oon_retrieval"],
            "retrieval_rank": [-1, -1, 7, 0, 3],
            "retrieval_score": [np.nan, np.nan, 0.5, 0.9, 0.6],
        }
    )
    result = DropDuplicatesFilter().filter(query(), c)
    assert result.keep.tolist() == [True, True, False, True, False]
    assert result.reasons[2] == {"rule": "duplicate_of", "post_id": "p1", "kept_index": 0}
    assert result.reasons[4] == {"rule": "duplicate_of", "post_id": "p2", "kept_index": 1}
    out = c.take(result.keep)  # what the framework keeps: the merge is on the given cands
    assert out["retrieval_sources"].tolist() == [("thunder", "phoenix"), ("thunder", "phoenix"), ("phoenix",)]
    assert out["served_type"].tolist() == ["in_network", "in_network", "oon_retrieval"]
    assert out["retrieval_rank"].tolist() == [7, 3, 0]
    np.testing.assert_array_equal(out["retrieval_score"], [0.5, 0.6, 0.9])


def test_drop_duplicates_keeps_the_kept_rows_own_phoenix_rank():
    c = Candidates(
        {"post_id": ["p1", "p1"], "retrieval_sources": [("phoenix",), ("phoenix",)], "retrieval_rank": [2, 5]}
    )
    DropDuplicatesFilter().filter(query(), c)
    assert c["retrieval_rank"][0] == 2 and c["retrieval_sources"][0] == ("phoenix",)


def test_drop_duplicates_on_no_candidates():
    assert DropDuplicatesFilter().filter(query(), Candidates()).keep.shape == (0,)


# --- CoreDataHydration (§8 #2) ---


def test_core_data_hydration_removes_unknown_author_or_blank_text():
    c = cands(author_id=["a001", "", "a002", "a003"], text=["hi", "hi", " \n\t", "ok"])
    result = CoreDataHydrationFilter().filter(query(), c)
    assert kept(result, c) == ["p0", "p3"]
    assert result.reasons[1] == {"rule": "core_data_missing", "missing": "author_id"}
    assert result.reasons[2] == {"rule": "core_data_missing", "missing": "text"}


# --- Age (§8 #3) ---


def test_age_keeps_exactly_48h_and_removes_one_second_more_unknown_and_future():
    created = [T - MAX_POST_AGE, T - MAX_POST_AGE - 1, -1, T + 1, T]
    c = cands(created_ts=created)
    result = AgeFilter().filter(query(), c)
    assert kept(result, c) == ["p0", "p4"]
    assert result.reasons[1] == {"rule": "age", "age_s": MAX_POST_AGE + 1, "max_age_s": MAX_POST_AGE}
    assert result.reasons[2] == {"rule": "age_unknown", "created_ts": -1}
    assert result.reasons[3] == {"rule": "future_post", "created_ts": T + 1, "t": T}


def test_age_without_window_still_removes_future_and_unknown():
    c = cands(created_ts=[0, T - 10 * MAX_POST_AGE, T + 1, -1])
    assert kept(AgeFilter(window_s=None).filter(query(), c), c) == ["p0", "p1"]
    assert kept(AgeFilter(window_s=3600).filter(query(), c), c) == []


# --- SelfPost (§8 #4) ---


def test_self_post_removes_the_viewers_own_posts():
    c = cands(author_id=["a001", "u0042", "a002"])
    result = SelfPostFilter().filter(query(), c)
    assert kept(result, c) == ["p0", "p2"]
    assert result.reasons[1] == {"rule": "self_post", "author_id": "u0042"}


# --- OONRetweetReply (§8 #5, aug) ---


def test_oon_retweet_reply():
    c = cands(
        in_network=[0, 0, 0, 1, 1, -1, 1],
        is_reply=[False, True, False, True, True, True, False],
        is_retweet=[False, False, True, False, False, False, True],
        ancestors=[(), ("p9",), (), ("p9",), (), ("p9",), ()],
        in_reply_to_post_id=[None, "p9", None, "p9", "p8", "p9", None],
    )
    result = OONRetweetReplyFilter().filter(query(), c)
    # OON original kept; OON reply and retweet removed; in-network reply with ancestors kept, without
    # removed; unhydrated in_network (-1) is not False; in-network retweet kept.
    assert kept(result, c) == ["p0", "p3", "p5", "p6"]
    assert result.reasons[1] == {"rule": "oon_reply", "author_id": "a001"}
    assert result.reasons[2] == {"rule": "oon_retweet", "author_id": "a001"}
    assert result.reasons[4] == {"rule": "reply_without_ancestors", "in_reply_to_post_id": "p8"}


# --- RetweetDeduplication (§8 #6), upstream retweet_deduplication_filter.rs tests ---


def _rt(*pairs: tuple[str, str | None]) -> Candidates:
    return cands(post_id=[p for p, _ in pairs], retweeted_post_id=[s for _, s in pairs])


@pytest.mark.parametrize(
    ("pairs", "first_wins", "prefer_original"),
    [
        ([("1", "100"), ("2", "100"), ("3", "100")], ["1"], ["1"]),  # multiple retweets keep first
        ([("100", None), ("1", "100"), ("2", "100")], ["100"], ["100"]),  # original before retweets
        ([("1", "100"), ("100", None), ("2", "100")], ["1"], ["100"]),  # retweet before original
        ([("1", None), ("2", None), ("3", None)], ["1", "2", "3"], ["1", "2", "3"]),  # non-retweets kept
        (
            [("1", "100"), ("2", "200"), ("3", "100"), ("4", "200"), ("5", "300")],
            ["1", "2", "5"],
            ["1", "2", "5"],
        ),
    ],
)
def test_retweet_deduplication(pairs, first_wins, prefer_original):
    c = _rt(*pairs)
    assert kept(RetweetDeduplicationFilter().filter(query(), c), c) == first_wins
    assert kept(RetweetDeduplicationFilter(prefer_original=True).filter(query(), c), c) == prefer_original


def test_retweet_deduplication_reasons_name_the_kept_candidate():
    c = _rt(("1", "100"), ("100", None), ("2", "100"))
    first = RetweetDeduplicationFilter().filter(query(), c)
    assert first.reasons[1] == {
        "rule": "retweet_duplicate",
        "source_post_id": "100",
        "kept_index": 0,
        "kept_post_id": "1",
    }
    prefer = RetweetDeduplicationFilter(prefer_original=True).filter(query(), c)
    assert prefer.reasons[0] == {
        "rule": "retweet_duplicate",
        "source_post_id": "100",
        "kept_index": 1,
        "kept_post_id": "100",
    }
    assert prefer.reasons[2]["kept_post_id"] == "100"


# --- IneligibleSubscription (§8 #7) ---


def test_ineligible_subscription():
    c = cands(subscription_author_id=[None, "a001", "a002"])
    result = IneligibleSubscriptionFilter().filter(query(subscribed_ids=frozenset({"a001"})), c)
    assert kept(result, c) == ["p0", "p1"]
    assert result.reasons[2] == {"rule": "subscription", "subscription_author_id": "a002"}


# --- PreviouslySeen / PreviouslyServed (§8 #8, #9): related ids ---


def _related() -> Candidates:
    return cands(
        post_id=["p1", "p2", "p3", "p4"],
        retweeted_post_id=[None, "p10", None, None],
        in_reply_to_post_id=[None, None, "p20", None],
    )


@pytest.mark.parametrize(
    ("flt", "field", "rule"),
    [(PreviouslySeenFilter(), "seen_ids", "seen"), (PreviouslyServedFilter(AUG_2026), "served_ids", "served")],
)
def test_previously_seen_and_served_match_any_related_id(flt, field, rule):
    c = _related()
    result = flt.filter(query(**{field: frozenset({"p1", "p10", "p20"})}), c)
    assert kept(result, c) == ["p4"]
    assert [r["related_id"] for r in result.reasons[:3]] == ["p1", "p10", "p20"]
    assert result.reasons[1] == {"rule": rule, "related_id": "p10"}
    assert flt.filter(query(), c).keep.all()


@pytest.mark.parametrize(
    ("rules", "top", "bottom"), [(AUG_2026, True, True), (MAY_2026, False, True), (JAN_2026, False, True)]
)
def test_previously_served_enabled_per_rule_set_and_bottom_request(rules, top, bottom):
    flt = PreviouslyServedFilter(rules)
    assert flt.enabled(query(page=1)) is top
    assert flt.enabled(query(page=2)) is bottom


# --- MutedKeyword (§8 #10, §8.1), upstream viewer_muted_keyword_filter.rs tests ---


@pytest.mark.parametrize(
    ("keywords", "texts", "removed"),
    [
        ([], ["This is spam content", "This is good content"], []),
        (["spam"], ["This is spam content", "This is good content"], [0]),
        (["widget"], ["#widget launch event", "widget speaks at summit", "unrelated product news"], [0, 1]),
        (["#launch"], ["#LAUNCH day", "support launch movement", "unrelated tweet"], [0]),
        (["exampleuser"], ["Hey @exampleuser check this out", "exampleuser posted something", "different"], [0, 1]),
        (["crypto scam"], ["This is a crypto scam warning", "crypto is great, scam artists are bad", "no"], [0]),
        (["spam", "scam", "#blocked"], ["spam content", "a scam alert", "#blocked user posting", "good"], [0, 1, 2]),
        (["SPAM"], ["This is SPAM", "This is spam", "This is SpAm", "This is good"], [0, 1, 2]),
        (["café"], ["I love café culture", "I love cafe culture", "I love coffee culture"], [0, 1]),
        (["spam"], ["spam spam spam", "more spam here"], [0, 1]),
        (["京都"], ["東京都に行くのが楽しみ", "I visited 京都 last week", "unrelated content"], [1]),
        (
            ["bitcoin"],
            ["Buy bitcoin! It's great!!!", "bitcoin, ethereum", "(bitcoin is volatile)", "stocks"],
            [0, 1, 2],
        ),
    ],
)
def test_muted_keyword(keywords, texts, removed):
    c = cands(text=texts)
    result = MutedKeywordFilter().filter(query(muted_keywords=tuple(keywords)), c)
    assert np.flatnonzero(~result.keep).tolist() == removed


def test_muted_keyword_reason_names_the_keyword():
    c = cands(text=["Foo-bar! news", "foo news bar"])
    result = MutedKeywordFilter().filter(query(muted_keywords=("baz", "foo bar")), c)
    assert result.reasons == [{"rule": "muted_keyword", "keyword": "foo bar"}, None]


def test_muted_keyword_on_no_candidates():
    assert MutedKeywordFilter().filter(query(muted_keywords=("spam",)), Candidates()).keep.shape == (0,)


# --- AuthorSocialgraph (§8 #11), upstream author_socialgraph_filter.rs tests ---


def test_author_socialgraph_blocked_and_muted_authors_in_every_rule_set():
    c = cands(author_id=["a100", "a200", "a300", "a400"])
    q = query(blocked_ids=frozenset({"a100"}), muted_ids=frozenset({"a300", "a100"}))
    for rules in RULE_SETS.values():
        result = AuthorSocialgraphFilter(rules).filter(q, c)
        assert kept(result, c, "author_id") == ["a200", "a400"]
        assert result.reasons[0] == {"rule": "blocked_author", "author_id": "a100"}
        assert result.reasons[2] == {"rule": "muted_author", "author_id": "a300"}
    assert AuthorSocialgraphFilter(AUG_2026).filter(query(), c).keep.all()


def _graph() -> Candidates:
    return cands(
        author_id=["a100", "a200", "a300", "a400", "a500", "a600", "a700"],
        author_blocks_viewer=[True, False, False, False, False, False, False],
        quoted_author_blocks_viewer=[False, True, False, False, False, False, False],
        quoted_user_id=[None, "a901", "a007", None, None, None, None],
        retweeted_user_id=[None, None, None, "a007", None, None, "a008"],
        in_reply_to_user_id=[None, None, None, None, "a008", None, "a999"],
        conversation_author_id=[None, None, None, None, None, "a007", "a999"],
    )


def test_author_socialgraph_full_rule_in_aug():
    c = _graph()
    q = query(blocked_ids=frozenset({"a007"}), muted_ids=frozenset({"a008"}))
    result = AuthorSocialgraphFilter(AUG_2026).filter(q, c)
    # a muted retweeted author is not a rule (only blocked); a non-muted ancestor is kept.
    assert kept(result, c, "author_id") == ["a700"]
    assert result.reasons[:6] == [
        {"rule": "author_blocks_viewer", "author_id": "a100"},
        {"rule": "quoted_author_blocks_viewer", "author_id": "a901"},
        {"rule": "blocked_quoted_author", "author_id": "a007", "via": "quoted_user_id"},
        {"rule": "blocked_retweeted_author", "author_id": "a007", "via": "retweeted_user_id"},
        {"rule": "muted_ancestor", "author_id": "a008", "via": "in_reply_to_user_id"},
        {"rule": "blocked_ancestor", "author_id": "a007", "via": "conversation_author_id"},
    ]


@pytest.mark.parametrize("rules", [JAN_2026, MAY_2026])
def test_author_socialgraph_jan_may_look_at_the_author_only(rules):
    c = _graph()
    q = query(blocked_ids=frozenset({"a007"}), muted_ids=frozenset({"a008"}))
    assert AuthorSocialgraphFilter(rules).filter(q, c).keep.all()


# --- VideoFilter (§8 #12) ---


def test_video_filter():
    c = cands(video_duration_ms=[np.nan, 12_000.0, 0.0])
    flt = VideoFilter()
    assert not flt.enabled(query()) and flt.enabled(query(exclude_videos=True))
    result = flt.filter(query(exclude_videos=True), c)
    assert kept(result, c) == ["p0"]
    assert result.reasons[1] == {"rule": "video", "video_duration_ms": 12_000.0}
    assert flt.filter(query(), c).keep.all()
    assert "VideoFilter" not in JAN_2026.filters and "VideoFilter" in MAY_2026.filters


# --- VFFilter (§11), upstream vf_filter.rs tests ---


def test_vf_filter_drop_allow_and_other_reasons():
    verdicts = ["drop", None, "allow", "drop_recs", "drop_all", "deleted", "spam"]
    c = cands(visibility=verdicts)
    for rules in RULE_SETS.values():
        result = VFFilter(rules).filter(query(), c)
        assert kept(result, c) == ["p1", "p2"]
        assert result.reasons[0] == {"rule": "vf", "verdict": "drop"}
        assert result.reasons[6] == {"rule": "vf", "verdict": "spam"}


@pytest.mark.parametrize(("rules", "dropped"), [(AUG_2026, True), (MAY_2026, False), (JAN_2026, False)])
def test_vf_filter_lookup_miss_per_rule_set(rules, dropped):
    c = cands(visibility=["miss", None])
    result = VFFilter(rules).filter(query(), c)
    assert result.keep.tolist() == [not dropped, True]
    assert result.reasons[0] == ({"rule": "vf_miss", "rules": rules.name} if dropped else None)


@pytest.mark.parametrize("rules", list(RULE_SETS.values()), ids=list(RULE_SETS))
def test_vf_filter_strict_raises_on_a_miss(rules):
    with pytest.raises(PipelineError, match="p0") as err:
        post_selection_filters(rules, strict=True)[0].filter(query(), cands(visibility=["miss", None]))
    assert (err.value.stage, err.value.component) == ("post_selection_filter", "VFFilter")
    assert VFFilter(rules, strict=True).filter(query(), cands(visibility=["drop", None])).keep.tolist() == [False, True]


# --- DedupConversation (§11) ---


def test_dedup_conversation_keeps_the_highest_score_ties_first():
    c = cands(
        post_id=["p5", "p6", "p7", "p8", "p9", "p10"],
        ancestors=[("p3", "p1"), ("p1",), ("p2",), ("p2",), (), ()],
        score=[0.4, 0.9, 0.5, 0.5, np.nan, 0.1],
    )
    result = DedupConversationFilter(AUG_2026).filter(query(), c)
    assert kept(result, c) == ["p6", "p7", "p9", "p10"]
    assert result.reasons[0] == {
        "rule": "duplicate_conversation",
        "conversation_key": "p1",
        "kept_index": 1,
        "kept_post_id": "p6",
    }
    assert result.reasons[3]["kept_post_id"] == "p7"  # tie: the first in selected order


def test_dedup_conversation_nan_score_loses_and_min_ancestor_is_numeric():
    c = cands(post_id=["p30", "p31"], ancestors=[("p100", "p99"), ("p99",)], score=[np.nan, -5.0])
    result = DedupConversationFilter(AUG_2026).filter(query(), c)
    assert kept(result, c) == ["p31"]
    assert result.reasons[0]["conversation_key"] == "p99"


@pytest.mark.parametrize(("rules", "removed"), [(AUG_2026, ["p2"]), (JAN_2026, []), (MAY_2026, [])])
def test_dedup_conversation_key_without_ancestors_per_rule_set(rules, removed):
    # aug: a retweet without ancestors is keyed by its source, so it collides with the original.
    c = cands(post_id=["p1", "p2", "p3"], retweeted_post_id=[None, "p1", None], score=[0.9, 0.8, 0.7])
    result = DedupConversationFilter(rules).filter(query(), c)
    assert list(c["post_id"][~result.keep]) == removed


def test_post_selection_filters_order_and_disabled():
    assert [f.name for f in post_selection_filters(JAN_2026)] == ["VFFilter", "DedupConversation"]
    assert [f.name for f in post_selection_filters(AUG_2026, disabled={"VFFilter", "Age"})] == ["DedupConversation"]
    with pytest.raises(ValueError, match="VFFilters"):
        post_selection_filters(AUG_2026, disabled={"VFFilters"})
