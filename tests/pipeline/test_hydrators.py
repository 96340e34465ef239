"""Query hydrators (§4) and candidate hydrators (§7, §11 VF): each returns only its own fields or
columns, same length and order, never dropping; merged query fields equal ``TableState.query``;
InNetwork reads the source's author; retweets keep the retweeter as author; hydrators lacking their
tables are disabled on real partitions (§13); they run inside the framework."""

from __future__ import annotations

import dataclasses

import pytest

from tests.pipeline.test_state import _movielens, assert_query_equal, hand_tables, make_state
from x_reco.data.examples import SequenceConfig
from x_reco.data.registry import dataset_spec
from x_reco.data.sequences import build_sequences
from x_reco.pipeline.framework import CandidatePipeline
from x_reco.pipeline.hydrators import (
    BidirectionalFollowHydrator,
    CoreDataHydrator,
    InNetworkHydrator,
    QuoteBlockedByHydrator,
    VFHydrator,
    candidate_hydrators,
    post_selection_hydrators,
    query_hydrators,
)
from x_reco.pipeline.state import ServedLog, ServingTables, TableState
from x_reco.pipeline.types import CANDIDATE_COLUMNS, Candidates, Component, FeedRequest, Query

POSTS = ["p4", "p1", "nope", "p3", "p2", "p6", "p5"]


@pytest.fixture(scope="module")
def state():
    return make_state(deleted_at={"p6": 200})


def _cands(authors: list[str] | None = None) -> Candidates:
    core = make_state().core_data(POSTS, 10**6)
    return Candidates({"post_id": POSTS, "author_id": authors or list(core["author_id"])})


def _query(state, user="u1", t=180) -> Query:
    return state.query(FeedRequest("synthetic", user, t))


def test_query_hydrators_merge_to_state_query(state):
    log = ServedLog()
    log.append({"request_id": "r", "t": 170, "user_id": "u1", "post_id": "p1", "source_post_id": "p0"})
    for user, t in (("u1", 180), ("u1", 100), ("u2", 500), ("u3", 50)):
        request = FeedRequest("synthetic", user, t)
        fields: dict = {}
        for h in query_hydrators(state, log):
            out = h.hydrate(Query(request))
            assert not set(out) & set(fields), h.name  # disjoint fields
            fields |= out
        assert set(fields) == {f.name for f in dataclasses.fields(Query)} - {"request"}
        assert_query_equal(Query(request, **fields), state.query(request, log))
    assert state.query(FeedRequest("synthetic", "u1", 180), log).served_ids == {"p1", "p0"}


def test_candidate_hydrators_return_own_columns_same_length(state):
    cands = _cands()
    q = _query(state)
    seen: set[str] = set()
    for h in (*candidate_hydrators(state), *post_selection_hydrators(state)):
        assert h.enabled(q)
        out = h.hydrate(q, cands)
        assert set(out) <= set(CANDIDATE_COLUMNS) and not set(out) & seen, h.name
        assert all(len(v) == len(cands) for v in out.values()), h.name
        seen |= set(out)
    assert len(cands) == len(POSTS) and list(cands["post_id"]) == POSTS  # input untouched


def test_in_network_uses_source_author(state):
    q = _query(state, t=180)  # u1 follows a1 and a2 (until 200)
    cands = _cands(authors=["a2", "a1", "", "a3", "u1", "a3", "a9"])  # p3 is a3's retweet of a1's post
    assert list(InNetworkHydrator(state).hydrate(q, cands)["in_network"]) == [1, 1, 0, 0, 1, 0, 0]
    q = _query(state, t=201)
    assert list(InNetworkHydrator(state).hydrate(q, cands)["in_network"]) == [0, 1, 0, 0, 1, 0, 0]


def test_core_data_hydrator(state):
    out = CoreDataHydrator(state).hydrate(_query(state, t=250), _cands())
    assert list(out["author_id"]) == ["a2", "a1", "", "a3", "a2", "", ""]  # p6 deleted at 200, p5 created at 300
    assert out["retweeted_post_id"][3] == "p1" and out["retweeted_user_id"][3] == "a1"
    assert out["ancestors"][4] == ("p1",) and out["conversation_id"][4] == "p1"
    assert out["text"][2] == "" and out["in_reply_to_post_id"][2] is None


def test_quote_blocked_by(state):
    cands = Candidates({"post_id": ["p4", "p3", "p1"], "author_id": ["a2", "a3", "a1"]})
    out = QuoteBlockedByHydrator(state).hydrate(_query(state, t=101), cands)
    assert list(out["quoted_post_id"]) == ["p1", None, None] and list(out["quoted_user_id"]) == ["a1", None, None]
    assert list(out["author_blocks_viewer"]) == [False, True, False]  # a3 blocks u1 since 100
    assert not out["quoted_author_blocks_viewer"].any()
    out = QuoteBlockedByHydrator(state).hydrate(_query(state, t=100), cands)
    assert not out["author_blocks_viewer"].any()  # since_ts < t is strict


def test_quoted_author_blocks_viewer():
    tables = hand_tables()
    links = tables.social["post_links"].copy()
    links.loc[links["post_id"] == "p4", ["quoted_post_id", "quoted_user_id"]] = ["p6", "a3"]
    st = make_state(dataclasses.replace(tables, social=tables.social | {"post_links": links}))
    out = QuoteBlockedByHydrator(st).hydrate(_query(st, t=101), Candidates({"post_id": ["p4"], "author_id": ["a2"]}))
    assert out["quoted_author_blocks_viewer"][0] and not out["author_blocks_viewer"][0]


def test_bidirectional_follow_is_false_in_synthetic(state):
    out = BidirectionalFollowHydrator(state).hydrate(_query(state), _cands())
    assert not out["is_mutual_follow_author"].any()
    q = dataclasses.replace(_query(state), mutual_follow_ids=frozenset({"a1"}))
    assert list(BidirectionalFollowHydrator(state).hydrate(q, _cands())["is_mutual_follow_author"])[:2] == [False, True]


def test_vf_hydrator_reads_in_network(state):
    cands = Candidates({"post_id": ["p2", "p2", "p3", "p6"], "in_network": [1, 0, 1, -1]})
    out = VFHydrator(state).hydrate(_query(state, t=200), cands)
    assert list(out["visibility"]) == [None, "drop", "drop", "deleted"]


def test_real_partition_disables_hydrators_lacking_tables():
    raw, events = _movielens([("1", "m1", 10, 5), ("1", "m2", 20, 1)])
    seq = build_sequences(events, raw.items, raw.partition, SequenceConfig(history_len=2, candidate_len=1))
    st = TableState(ServingTables.from_raw(raw, events), seq.catalogue, dataset_spec(raw.partition).observed_mask, 2)
    q = st.query(FeedRequest(raw.partition, "1", 30))
    enabled = {h.name: h.enabled(q) for h in (*candidate_hydrators(st), *post_selection_hydrators(st))}
    assert enabled == {
        "InNetwork": True,
        "CoreData": True,
        "AuthorInfo": True,
        "VideoDuration": False,
        "Subscription": False,
        "QuoteBlockedBy": False,
        "EngagementCounts": True,
        "BidirectionalFollow": True,
        "VF": False,
    }
    cands = Candidates({"post_id": ["m1", "m2"], "author_id": ["movielens-100k:no_author"] * 2})
    assert list(InNetworkHydrator(st).hydrate(q, cands)["in_network"]) == [0, 0]
    assert list(CoreDataHydrator(st).hydrate(q, cands)["text"]) == ["m1", "m2"]


class _Fixed(Component):
    """A source returning fixed candidates."""

    def __init__(self, cands: Candidates):
        self.cands = cands

    def get_candidates(self, query: Query) -> Candidates:
        return self.cands.copy()


def test_hydrators_run_in_the_framework(state):
    log = ServedLog()
    pipe = CandidatePipeline(
        query_hydrators=query_hydrators(state, log),
        sources=(_Fixed(_cands()),),
        hydrators=candidate_hydrators(state),
        post_selection_hydrators=post_selection_hydrators(state),
        strict=True,
    )
    try:
        result = pipe.run(Query(FeedRequest("synthetic", "u1", 180)))
    finally:
        pipe.close()
    assert result.query.followed_ids == {"a1", "a2"} and result.query.history.length == 2
    errors = [s for s in result.trace if s.error]
    assert not errors
