"""The §14 social tables (candidate-pipeline spec): adding the 7th seed child "social" leaves every
existing table byte-identical (digests pinned at the commit before it), the tables are deterministic,
typed as documented, referentially whole and leak-free in time (no link, delete or block precedes
its cause), and user_blocks is exactly the simulator's hidden authors."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

import numpy as np
import pandas as pd
import pytest

from x_reco.data.synthetic import (
    SOCIAL_TABLES,
    WorldConfig,
    generate_social,
    generate_world,
    generate_world_tables,
    topic_vocabulary,
)
from x_reco.data.synthetic.config import CLOCK_START_TS, TOPICS
from x_reco.data.synthetic.world import seed_children

OLD_TABLES = (
    "users",
    "authors",
    "posts",
    "impressions",
    "follows",
    "truth_users",
    "truth_authors",
    "truth_posts",
    "truth_impressions",
)
OLD_CHILDREN = ("users", "authors", "posts", "exposure", "engagement", "calibration")
# sha256 of each table (dtypes + hash_pandas_object) and of the manifest's pre-§14 keys, computed at
# 2c66b1e, before the "social" seed child existed.
PINNED = {
    "tiny": {
        "users": "91a1ffd3eb8d35155fc4af9fdf1299895825e7613d8196dec40d7ed7e2ce902e",
        "authors": "8878c59bcb8fae9969d7c6eb9b0bc8464aceafc4ee73edc42077a4fbe1c2b2c9",
        "posts": "0e1e193e7c6ad64bd3b08dcb3a41a6c165010cf1263c7b11d5d4ee2e4a89c62f",
        "impressions": "0c1337237c585fb9c41a01b956960d34343c6bc9c3bcbb57ef91de849e03b095",
        "follows": "27a8b791c0dfe3e01e058566b357a310de4ea3e77f13a2e676ad46f80cef51ce",
        "truth_users": "c28a3277058555236d3fd1ebaa86fe93a8c62aa8e87fb53f39580306c6b84d18",
        "truth_authors": "aa172670da3d7a6e1ba2055c1f016b31a159111d10da72a45f459de49cd481c3",
        "truth_posts": "fd25c0e014d3ac528eba5f89daf7e8e5c0d85bfe4b62df403357959ed184ea0d",
        "truth_impressions": "8b0327a8d22a94cc7982c2b193ce37ddd2e02d1b6277e005b71a140702d17a1a",
        "manifest": "ca7d6366d7bce8423a3d526d564bfabb1e409ed9afea27ed9cbae6d93c77aa31",
    },
    "small": {
        "users": "7e9072a59ac795cc7d68dfa3d689bc239007a25a581855d9d88d9f5ce9ad095a",
        "authors": "a028334e63874f689104aebfff2053b4e8447f349e3ef9f2f2e8fa798c6451bc",
        "posts": "307f852c0fbebc89ff3f4547973e4bec3ca92888e6626620f4ef22162cce5711",
        "impressions": "3e993945ae94e4c867151d46b89e6ec8e4c699c99ab33e64a57cb2ded778b696",
        "follows": "11419f0e0b38c18b43c4b3f34893fe71db184a7c93054686efd96f0629ff77ed",
        "truth_users": "c56dfd8971c8e7fba5197e208d5ee15413e7a484ccef50b53622f4094ea6890a",
        "truth_authors": "d6c4da7b44739890e024ead256ec53c2e0d0962b034f4741447fb07ba6ed1964",
        "truth_posts": "0ca8f4245acb09a7c109012e27bcd78a52dcb7b1da0b07de24236bc191b6e3e2",
        "truth_impressions": "88a62c743f7407b23d6d28ee529cc02b8f6384947918f97d1359a4a4e55a94aa",
        "manifest": "1bdb60790febb03e548e899ac2169fc47099be29bc73c136dac44d7313dc7fdf",
    },
}
SCHEMAS = {
    "post_text": {"post_id": "object", "text": "object"},
    "post_links": {
        "post_id": "object",
        "kind": "object",
        "in_reply_to_post_id": "object",
        "in_reply_to_user_id": "object",
        "conversation_id": "object",
        "retweeted_post_id": "object",
        "retweeted_user_id": "object",
        "quoted_post_id": "object",
        "quoted_user_id": "object",
    },
    "post_media": {"post_id": "object", "video_duration_ms": "int64"},
    "post_paywall": {"post_id": "object", "subscription_author_id": "object"},
    "subscriptions": {"user_id": "object", "author_id": "object", "since_ts": "int64"},
    "post_events": {"ts": "int64", "seq": "int64", "kind": "object", "post_id": "object"},
    "post_safety": {"post_id": "object", "level": "object", "missing": "bool"},
    "muted_keywords": {"user_id": "object", "keyword": "object", "since_ts": "int64"},
    "author_blocks": {"author_id": "object", "user_id": "object", "since_ts": "int64"},
    "user_blocks": {"user_id": "object", "author_id": "object", "ts": "int64", "kind": "object"},
}
H48 = 48 * 3600


@pytest.fixture(scope="module")
def tiny():
    return generate_world(WorldConfig.tiny())


@pytest.fixture(scope="module")
def small():
    return generate_world(WorldConfig.small())


def table_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).values.tobytes())
    return h.hexdigest()


def old_manifest_digest(manifest: dict) -> str:
    """The manifest's keys as they were before §14: the new child and table counts left out."""
    m = json.loads(json.dumps(manifest, default=str))
    m.pop("x_reco_version")
    m["seeds"]["children"] = {k: m["seeds"]["children"][k] for k in OLD_CHILDREN}
    m["counts"] = {k: m["counts"][k] for k in (*OLD_TABLES, "visits")}
    return hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_existing_tables_are_byte_identical_to_before_the_social_child(size, request):
    world = request.getfixturevalue(size)
    digests = {name: table_digest(getattr(world, name)) for name in OLD_TABLES}
    digests["manifest"] = old_manifest_digest(world.manifest)
    assert digests == PINNED[size]


def test_manifest_gains_the_social_child_and_counts(tiny):
    m = tiny.manifest
    assert m["seeds"]["children"]["social"] == [6]
    assert [m["seeds"]["children"][k] for k in OLD_CHILDREN] == [[k] for k in range(6)]
    assert all(m["counts"][name] == len(tiny.social[name]) for name in SOCIAL_TABLES)


def test_deterministic_and_seeded_by_the_social_child(tiny):
    cfg = WorldConfig.tiny()
    seed = seed_children(cfg.seed)["social"]
    again = generate_social(tiny, cfg, seed)
    twice = generate_social(tiny, cfg, seed)  # the seed sequence is not consumed by a call
    for name in SOCIAL_TABLES:
        pd.testing.assert_frame_equal(again[name], tiny.social[name])
        pd.testing.assert_frame_equal(twice[name], tiny.social[name])
    other = generate_social(tiny, cfg, seed_children(cfg.seed + 1)["social"])
    assert not other["post_text"].equals(tiny.social["post_text"])
    assert not other["post_links"].equals(tiny.social["post_links"])


def test_schemas_and_value_types(tiny):
    assert tuple(tiny.social) == SOCIAL_TABLES
    for name, schema in SCHEMAS.items():
        df = tiny.social[name]
        assert dict(df.dtypes.astype(str)) == schema, name
        assert isinstance(df.index, pd.RangeIndex), name
        for col, dtype in schema.items():
            values = set(map(type, df[col]))
            if dtype == "object" and col.endswith("_id") and name == "post_links":
                assert values <= {str, type(None)}, (name, col)
            elif dtype == "object":
                assert values <= {str}, (name, col)
    s = tiny.social
    assert set(s["post_links"]["kind"]) == {"original", "reply", "retweet", "quote"}
    assert set(s["post_events"]["kind"]) <= {"create", "delete", "quote_delete"}
    assert set(s["post_safety"]["level"]) <= {"none", "drop_recs", "drop_all"}
    assert set(s["user_blocks"]["kind"]) <= {"block", "mute"}


def test_referential_integrity(tiny):
    s = tiny.social
    posts, users, authors = set(tiny.posts["post_id"]), set(tiny.users["user_id"]), set(tiny.authors["author_id"])
    for name in ("post_text", "post_links", "post_safety"):
        assert list(s[name]["post_id"]) == list(tiny.posts["post_id"]), name
    links = s["post_links"]
    for col, ids in (
        ("in_reply_to_post_id", posts),
        ("conversation_id", posts),
        ("retweeted_post_id", posts),
        ("quoted_post_id", posts),
        ("in_reply_to_user_id", authors),
        ("retweeted_user_id", authors),
        ("quoted_user_id", authors),
    ):
        assert set(links[col].dropna()) <= ids, col
    for name, cols in (
        ("post_media", {"post_id": posts}),
        ("post_paywall", {"post_id": posts, "subscription_author_id": authors}),
        ("subscriptions", {"user_id": users, "author_id": authors}),
        ("post_events", {"post_id": posts}),
        ("muted_keywords", {"user_id": users}),
        ("author_blocks", {"author_id": authors, "user_id": users}),
        ("user_blocks", {"user_id": users, "author_id": authors}),
    ):
        for col, ids in cols.items():
            assert set(s[name][col]) <= ids, (name, col)
    author_of = tiny.posts.set_index("post_id")["author_id"]
    paywall = s["post_paywall"]
    assert (author_of[paywall["post_id"]].to_numpy() == paywall["subscription_author_id"].to_numpy()).all()
    assert set(s["subscriptions"]["author_id"]) <= set(paywall["subscription_author_id"])


def test_links_point_to_earlier_posts_within_48_hours(tiny):
    links = tiny.social["post_links"].merge(tiny.posts, on="post_id")
    posts = tiny.posts.set_index("post_id")
    for kind, col, user_col in (
        ("reply", "in_reply_to_post_id", "in_reply_to_user_id"),
        ("retweet", "retweeted_post_id", "retweeted_user_id"),
        ("quote", "quoted_post_id", "quoted_user_id"),
    ):
        rows = links[links[col].notna()]
        assert (rows["kind"] == kind).all() and len(rows) > 0, kind
        parent = posts.loc[rows[col]]
        age = rows["created_ts"].to_numpy() - parent["created_ts"].to_numpy()
        assert ((age > 0) & (age <= H48)).all(), kind
        assert (parent["author_id"].to_numpy() == rows[user_col].to_numpy()).all(), kind
        if kind != "reply":  # replies may continue the author's own thread
            assert (parent["author_id"].to_numpy() != rows["author_id"].to_numpy()).all(), kind
    assert (links["is_quote"] == (links["kind"] == "quote")).all()
    rt = links[links["kind"] == "retweet"]
    assert rt["retweeted_post_id"].notna().all()
    assert (links.set_index("post_id").loc[rt["retweeted_post_id"], "kind"] == "original").all()
    replies = links[links["kind"] == "reply"]
    assert replies["in_reply_to_post_id"].notna().all()
    assert links.loc[links["kind"] != "reply", "conversation_id"].isna().all()


def test_conversation_is_the_root_of_the_reply_chain(tiny):
    links = tiny.social["post_links"].set_index("post_id")
    replies = links[links["kind"] == "reply"]
    assert (replies["in_reply_to_post_id"].map(links["kind"]) == "reply").any()  # chains exist
    for post_id, row in replies.iterrows():
        node = row["in_reply_to_post_id"]
        while links.at[node, "kind"] == "reply":
            node = links.at[node, "in_reply_to_post_id"]
        assert row["conversation_id"] == node, post_id


def test_retweets_repeat_their_source_text_and_media(tiny):
    s = tiny.social
    links = s["post_links"].set_index("post_id")
    text = s["post_text"].set_index("post_id")["text"]
    media = s["post_media"].set_index("post_id")["video_duration_ms"]
    rt = links[links["kind"] == "retweet"]
    assert (text[rt.index].to_numpy() == text[rt["retweeted_post_id"]].to_numpy()).all()
    for post_id, source in rt["retweeted_post_id"].items():
        assert (post_id in media.index) == (source in media.index)
        if source in media.index:
            assert media[post_id] == media[source]
    video = tiny.posts.loc[tiny.posts["media_type"] == "video", "post_id"]
    own_video = set(video) - set(rt.index)
    assert own_video <= set(media.index)
    assert set(media.index) - own_video <= set(rt.index)
    assert {10_000, 10_001} <= set(media)  # the MinVideoDurationMs boundary is exercised


def test_post_events_are_ordered_and_leak_free(tiny, small):
    for world in (tiny, small):
        ev = world.social["post_events"]
        assert (ev["seq"].to_numpy() == np.arange(len(ev))).all()
        assert (np.diff(ev["ts"].to_numpy()) >= 0).all()
        created = world.posts.set_index("post_id")["created_ts"]
        first = ev[ev["kind"] == "create"].drop_duplicates("post_id").set_index("post_id")["ts"]
        assert len(first) == len(created) and (first[created.index] == created).all()
        last_seen = world.impressions.groupby("post_id")["ts"].max()
        deletes = ev[ev["kind"] == "delete"]
        assert deletes["post_id"].is_unique and len(deletes) > 0
        assert (deletes["ts"].to_numpy() >= created[deletes["post_id"]].to_numpy()).all()
        seen = deletes[deletes["post_id"].isin(last_seen.index)]
        assert (seen["ts"].to_numpy() > last_seen[seen["post_id"]].to_numpy()).all()
        delete_ts = deletes.set_index("post_id")["ts"]
        recreates = ev[(ev["kind"] == "create") & ev.duplicated("post_id")]
        gap = recreates["ts"].to_numpy() - delete_ts[recreates["post_id"]].to_numpy()
        assert ((gap > 0) & (gap <= 86_400)).all()
        quoted = set(world.social["post_links"]["quoted_post_id"].dropna())
        cascades = ev[ev["kind"] == "quote_delete"]
        assert set(cascades["post_id"]) == set(deletes["post_id"]) & quoted
        before = ev.loc[cascades.index - 1]
        assert (before["kind"].to_numpy() == "delete").all()
        assert (before["post_id"].to_numpy() == cascades["post_id"].to_numpy()).all()
        assert (before["ts"].to_numpy() == cascades["ts"].to_numpy()).all()
    assert (small.social["post_events"]["kind"] == "quote_delete").any()


def test_subscriptions_start_at_follow_time(tiny):
    subs = tiny.social["subscriptions"]
    assert len(subs) > 0 and not subs.duplicated(["user_id", "author_id"]).any()
    first_follow = tiny.follows.groupby(["user_id", "author_id"])["since_ts"].min()
    keys = pd.MultiIndex.from_frame(subs[["user_id", "author_id"]])
    assert (first_follow.reindex(keys).to_numpy() == subs["since_ts"].to_numpy()).all()


def test_author_blocks_follow_the_first_reply_or_report_by_an_hour(tiny):
    imp = tiny.impressions.merge(tiny.posts[["post_id", "author_id"]], on="post_id")
    hits = imp[(imp["reply"] == 1) | (imp["report"] == 1)]
    first = hits.groupby(["author_id", "user_id"])["ts"].min()
    blocks = tiny.social["author_blocks"]
    assert len(blocks) > 0 and not blocks.duplicated(["author_id", "user_id"]).any()
    keys = pd.MultiIndex.from_frame(blocks[["author_id", "user_id"]])
    assert (first.reindex(keys).to_numpy() + 3600 == blocks["since_ts"].to_numpy()).all()


def test_user_blocks_are_the_simulators_hidden_authors(tiny):
    """Independent recomputation: walk each user's impressions in order, as _UserState.hidden does."""
    author_of = dict(zip(tiny.posts["post_id"], tiny.posts["author_id"], strict=True))
    hidden: dict[tuple[str, str], tuple[int, str]] = {}
    imp = tiny.impressions
    for user, post, ts, block, mute in zip(
        imp["user_id"], imp["post_id"], imp["ts"], imp["block_author"], imp["mute_author"], strict=True
    ):
        key = (user, author_of[post])
        if (block or mute) and key not in hidden:
            hidden[key] = (int(ts), "block" if block else "mute")
    got = tiny.social["user_blocks"]
    assert len(got) == len(hidden) > 0
    assert {(u, a): (int(t), k) for u, a, t, k in got.itertuples(index=False)} == hidden
    assert (np.diff(got["ts"].to_numpy()) >= 0).all()


def test_rates_roughly_as_configured(small):
    s, n = small.social, len(small.posts)
    kinds = s["post_links"]["kind"].value_counts(normalize=True)
    assert kinds["quote"] == pytest.approx(small.posts["is_quote"].mean())
    assert 0.10 < kinds["reply"] / (1 - kinds["quote"]) < 0.20
    assert 0.04 < kinds["retweet"] / (1 - kinds["quote"]) < 0.11
    replies = s["post_links"][s["post_links"]["kind"] == "reply"]
    topic = small.truth_posts.set_index("post_id")["topic"]
    same = (topic[replies["post_id"]].to_numpy() == topic[replies["in_reply_to_post_id"]].to_numpy()).mean()
    assert 0.65 < same < 0.9
    levels = s["post_safety"]["level"].value_counts(normalize=True)
    assert 0.01 < levels["drop_recs"] < 0.035 and 0 < levels.get("drop_all", 0) < 0.015
    assert (s["post_safety"]["missing"].mean() < 0.01) and ((s["post_text"]["text"] == "").mean() < 0.01)
    assert 0.004 < (s["post_events"]["kind"] == "delete").sum() / n < 0.02
    assert s["muted_keywords"]["user_id"].nunique() == round(0.3 * len(small.users))
    per_user = s["muted_keywords"]["user_id"].value_counts()
    assert per_user.between(1, 3).all()
    media = s["post_media"]["video_duration_ms"]
    assert 7_000 < media.median() < 14_000 and 0.6 < np.log(media).std() < 1.0
    assert 0.003 < len(s["post_paywall"]) / n < 0.03  # 10 % of the posts of 10 % of the authors
    paying = small.follows[small.follows["author_id"].isin(s["post_paywall"]["subscription_author_id"])]
    assert 0.15 < len(s["subscriptions"]) / len(paying.drop_duplicates(["user_id", "author_id"])) < 0.45


def test_post_text_lengths_and_vocabulary(tiny):
    vocab = topic_vocabulary()
    assert all(len(vocab.words[t]) == 200 and len(vocab.tags[t]) == 20 for t in TOPICS)
    words = [w for t in TOPICS for w in vocab.words[t]]
    assert len(set(map(_fold, words))) == len(words)  # unique even after accent folding
    assert sum(w != _fold(w) for w in words) == 0.05 * len(words)
    text = tiny.social["post_text"]["text"]
    tokens = text[text != ""].str.split().str.len()
    assert tokens.between(8, 20).all()
    assert text.str.contains(r"@a\d{3}\b").any() and text.str.contains("#").any()
    assert text.map(lambda t: t != unicodedata.normalize("NFKD", t)).any()  # accented variants occur


def test_muted_keywords_come_from_disliked_topics_and_match_texts(tiny, small):
    vocab = topic_vocabulary()
    for world, cfg in ((tiny, WorldConfig.tiny()), (small, WorldConfig.small())):
        muted = world.social["muted_keywords"]
        theta = world.truth_users.set_index("user_id")[[f"theta_{t}" for t in TOPICS]]
        disliked = pd.Series(np.array(TOPICS)[theta.to_numpy().argmin(axis=1)], index=theta.index)
        for user, keyword in zip(muted["user_id"], muted["keyword"], strict=True):
            topic = disliked[user]
            parts = keyword.split()
            assert all(p in vocab.words[topic] or p in vocab.tags[topic] for p in parts), (user, keyword)
        created = world.users.set_index("user_id")["created_ts"][muted["user_id"]].to_numpy()
        end = CLOCK_START_TS + cfg.num_days * 86_400
        assert ((muted["since_ts"].to_numpy() >= created) & (muted["since_ts"].to_numpy() < end)).all()
    muted = small.social["muted_keywords"]["keyword"]
    assert muted.str.startswith("#").any() and muted.str.contains(" ").any()
    texts = [_tokens(t) for t in small.social["post_text"]["text"]]
    matched = [k for k in muted if any(_contains(t, _tokens(k)) for t in texts)]
    assert any(" " in k for k in matched) and any(k.startswith("#") for k in matched)
    assert len(matched) > 0.5 * len(muted)


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _tokens(text: str) -> list[str]:
    """A reference §8.1 tokenizer: fold accents, casefold, split on punctuation, keep a #/@ marker."""
    return re.findall(r"[#@]?\w+", _fold(text).casefold())


def _contains(tokens: list[str], keyword: list[str]) -> bool:
    """Contiguous match; a plain keyword word also matches its #tag form (§8.1)."""
    k = len(keyword)
    return any(
        all(t == w or (w[0] not in "#@" and t == "#" + w) for t, w in zip(tokens[i : i + k], keyword, strict=True))
        for i in range(len(tokens) - k + 1)
    )


def test_world_tables_carry_the_social_tables_in_extra(tiny):
    raw = generate_world_tables({"size": "tiny"})
    assert set(raw.extra) == {"authors", "follows", *SOCIAL_TABLES}
    for name in SOCIAL_TABLES:
        pd.testing.assert_frame_equal(raw.extra[name], tiny.social[name])
    truth_cols = {"archetype", "topic", "q_p", "q_a", "b_u", "followed"}
    assert not any(truth_cols & set(raw.extra[name].columns) for name in SOCIAL_TABLES)
