"""The world's social layer for the candidate pipeline (candidate-pipeline spec §14): text, links,
media, paywalls, the post event log, safety labels, muted keywords and blocks."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from x_reco.data.synthetic.config import CLOCK_START_TS, TOPICS, WorldConfig
from x_reco.data.synthetic.entities import DAY_S

if TYPE_CHECKING:
    from x_reco.data.synthetic.world import World

SOCIAL_TABLES: tuple[str, ...] = (
    "post_text",
    "post_links",
    "post_media",
    "post_paywall",
    "subscriptions",
    "post_events",
    "post_safety",
    "muted_keywords",
    "author_blocks",
    "user_blocks",
)
LINK_KINDS: tuple[str, ...] = ("original", "reply", "retweet", "quote")
EVENT_KINDS: tuple[str, ...] = ("create", "delete", "quote_delete")
SAFETY_LEVELS: tuple[str, ...] = ("none", "drop_recs", "drop_all")
# Spawn-key suffix of each table's generator under the "social" seed child (positional, like SEED_CHILDREN).
_PARTS = ("text", "links", "media", "paywall", "events", "safety", "muted", "author_blocks", "subscriptions")

VOCAB_SEED = 20_260_812
WORDS_PER_TOPIC, TAGS_PER_TOPIC, ACCENTED_SHARE = 200, 20, 0.05
MIN_TOKENS, MAX_TOKENS = 8, 20
TOKEN_MIX = (0.6, 0.3, 0.1)  # topic vocabulary, filler, @mention
EMPTY_TEXT_PROB, PUNCT_PROB = 0.002, 0.08
LINK_WINDOW_S = 48 * 3600
REPLY_PROB, RETWEET_PROB, SAME_TOPIC_REPLY_PROB = 0.15, 0.08, 0.7
VIDEO_MEDIAN_MS, VIDEO_SIGMA_LOG, BOUNDARY_VIDEO_SHARE = 10_000, 0.8, 0.02
PAYWALL_AUTHOR_SHARE, PAYWALL_POST_SHARE, SUBSCRIBE_PROB = 0.10, 0.10, 0.3
DELETE_PROB, RECREATE_PROB, RECREATE_WITHIN_S = 0.01, 0.10, DAY_S
SAFETY_PROBS = (0.975, 0.02, 0.005)  # in SAFETY_LEVELS order
SAFETY_MISSING_PROB = 0.002
MUTING_USER_SHARE, PHRASE_SHARE, TAG_SHARE = 0.30, 0.20, 0.20
AUTHOR_BLOCK_PROB, AUTHOR_BLOCK_DELAY_S = 0.2, 3600

FILLER: tuple[str, ...] = tuple(
    "the and is to of a in for this that it so just really my we you on with at but not what about "
    "today now new time people good great more all one like get see think know wow yes no here".split()
)
_ACCENT = str.maketrans("aeiou", "áéíóú")
_CONSONANTS, _VOWELS = np.array(list("bdfgklmnprstvz")), np.array(list("aeiou"))


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Per-topic words (200, the last 5 % accented like "café") and `#tags` (20), plus real filler."""

    words: dict[str, tuple[str, ...]]
    tags: dict[str, tuple[str, ...]]
    filler: tuple[str, ...] = FILLER


@functools.lru_cache(maxsize=4)
def topic_vocabulary(seed: int = VOCAB_SEED) -> Vocabulary:
    """Pronounceable synthetic words, unique across topics; tags are `#` + a topic's first 20 words."""
    rng = np.random.default_rng(seed)
    need = len(TOPICS) * WORDS_PER_TOPIC
    pool: list[str] = []
    while len(pool) < need:
        syllables = rng.integers(2, 4, 4 * need)
        cons = _CONSONANTS[rng.integers(0, len(_CONSONANTS), (4 * need, 3))]
        vows = _VOWELS[rng.integers(0, len(_VOWELS), (4 * need, 3))]
        cand = ["".join(c + v for c, v in zip(cr[:k], vr[:k], strict=True)) for cr, vr, k in zip(cons, vows, syllables)]
        pool = list(dict.fromkeys(w for w in pool + cand if w not in FILLER))
    n_acc = int(round(ACCENTED_SHARE * WORDS_PER_TOPIC))
    words, tags = {}, {}
    for k, topic in enumerate(TOPICS):
        mine = pool[k * WORDS_PER_TOPIC : (k + 1) * WORDS_PER_TOPIC]
        # Accent the last vowel ("zorami" -> "zoramí"): NFKD folding maps it back to a unique word.
        mine[-n_acc:] = [_accent_last_vowel(w) for w in mine[-n_acc:]]
        words[topic] = tuple(mine)
        tags[topic] = tuple(f"#{w}" for w in mine[:TAGS_PER_TOPIC])
    return Vocabulary(words, tags)


def _accent_last_vowel(word: str) -> str:
    i = max(word.rfind(v) for v in "aeiou")
    return word[:i] + word[i].translate(_ACCENT) + word[i + 1 :]


def _fold(word: str) -> str:
    return word.translate(str.maketrans("áéíóú", "aeiou"))


@dataclasses.dataclass(frozen=True)
class _Posts:
    """Post columns as arrays in the posts table's order (created_ts ascending)."""

    ids: np.ndarray
    author: np.ndarray  # author index
    author_ids: np.ndarray  # author id per author index
    topic: np.ndarray  # truth topic index
    created: np.ndarray
    video: np.ndarray
    is_quote: np.ndarray

    @classmethod
    def of(cls, world: World) -> _Posts:
        posts = world.posts
        created = posts["created_ts"].to_numpy(np.int64)
        if np.any(np.diff(created) < 0):
            raise ValueError("posts must be sorted by created_ts")
        author_ids = world.authors["author_id"].to_numpy(object)
        topic = pd.Index(TOPICS).get_indexer(world.truth_posts["topic"])
        return cls(
            ids=posts["post_id"].to_numpy(object),
            author=pd.Index(author_ids).get_indexer(posts["author_id"]),
            author_ids=author_ids,
            topic=topic,
            created=created,
            video=(posts["media_type"] == "video").to_numpy(),
            is_quote=posts["is_quote"].to_numpy(bool),
        )


def _child(seed: np.random.SeedSequence, part: str) -> np.random.Generator:
    """Generator of one table: the `part`-th child of `seed`, derived without mutating `seed`."""
    key = (*seed.spawn_key, _PARTS.index(part))
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=key, pool_size=seed.pool_size))


def generate_social(world: World, config: WorldConfig, seed: np.random.SeedSequence) -> dict[str, pd.DataFrame]:
    """The §14 tables (SOCIAL_TABLES order) of a simulated world, drawn from the "social" seed child.

    Truth (post topics, user tastes) steers replies, text and muted keywords; no truth column is
    written. Ids are str in object columns; absent links are None.
    """
    posts = _Posts.of(world)
    kind, parent, source, quoted = _links(posts, _child(seed, "links"))
    text, phrases = _texts(posts, kind, source, _child(seed, "text"))
    paywall = _paywall(posts, kind, _child(seed, "paywall"))
    tables = {
        "post_text": pd.DataFrame({"post_id": posts.ids, "text": text}),
        "post_links": _links_table(posts, kind, parent, source, quoted),
        "post_media": _media(posts, kind, source, _child(seed, "media")),
        "post_paywall": paywall,
        "subscriptions": _subscriptions(world.follows, paywall, _child(seed, "subscriptions")),
        "post_events": _events(posts, quoted, world.impressions, _child(seed, "events")),
        "post_safety": _safety(posts, _child(seed, "safety")),
        "muted_keywords": _muted(world, config, phrases, _child(seed, "muted")),
        "author_blocks": _author_blocks(world, _child(seed, "author_blocks")),
        "user_blocks": user_blocks(world.impressions, world.posts),
    }
    return {name: tables[name] for name in SOCIAL_TABLES}


def _links(posts: _Posts, rng):
    """Kind codes and parent / retweet source / quoted post indices (-1 none), all strictly earlier."""
    n = len(posts.ids)
    lo = np.searchsorted(posts.created, posts.created - LINK_WINDOW_S, "left")
    hi = np.searchsorted(posts.created, posts.created, "left")  # strictly earlier posts only
    u = rng.random(n)
    kind = np.where(posts.is_quote, 3, np.where(u < REPLY_PROB, 1, np.where(u < REPLY_PROB + RETWEET_PROB, 2, 0)))
    source = np.full(n, -1)
    rows = np.flatnonzero(kind == 2)
    source[rows] = _pick(rng, lo, hi, (kind == 0)[None], np.zeros(len(rows), int), rows, posts.author)
    kind[rows[source[rows] < 0]] = 0  # nothing to retweet yet: an original
    not_rt = kind != 2
    topic_masks = np.concatenate([posts.topic[None] == np.arange(len(TOPICS))[:, None], np.ones((1, n), bool)])
    parent = np.full(n, -1)
    rows = np.flatnonzero(kind == 1)
    group = np.where(rng.random(len(rows)) < SAME_TOPIC_REPLY_PROB, posts.topic[rows], len(TOPICS))
    parent[rows] = _pick(rng, lo, hi, topic_masks & not_rt, group, rows, None)
    kind[rows[parent[rows] < 0]] = 0
    quoted = np.full(n, -1)
    rows = np.flatnonzero(kind == 3)
    quoted[rows] = _pick(rng, lo, hi, not_rt[None], np.zeros(len(rows), int), rows, posts.author)
    return kind, parent, source, quoted


def _pick(rng, lo, hi, masks_gp: np.ndarray, group, rows, author, rounds: int = 16) -> np.ndarray:
    """For each row i, a uniform j in [lo_i, hi_i) with masks_gp[group_i, j] (and, when `author` is
    given, another author than i's); -1 when there is none. Exact cumulative-count sampling,
    retried on self-picks, then an exact scan for the few rows left."""
    csum = np.concatenate([np.zeros((len(masks_gp), 1), np.int64), np.cumsum(masks_gp, axis=1)], axis=1)
    out = np.full(len(rows), -1)
    pending = np.arange(len(rows))
    for _ in range(rounds):
        i, g = rows[pending], group[pending]
        base = csum[g, lo[i]]
        count = csum[g, hi[i]] - base
        r = np.floor(rng.random(len(pending)) * count).astype(np.int64)
        target = np.full(len(pending), -1)
        for gg in np.unique(g):
            sel = (g == gg) & (count > 0)
            target[sel] = np.searchsorted(csum[gg], base[sel] + r[sel] + 1, "left") - 1
        ok = (target >= 0) & (author is None or author[np.maximum(target, 0)] != author[i])
        out[pending[ok]] = target[ok]
        pending = pending[(count > 0) & ~ok]
        if not len(pending):
            return out
    for p in pending:  # a window holding (almost) only the author's own posts
        i = rows[p]
        cand = lo[i] + np.flatnonzero(masks_gp[group[p], lo[i] : hi[i]] & (author[lo[i] : hi[i]] != author[i]))
        out[p] = rng.choice(cand) if len(cand) else -1
    return out


def _links_table(posts: _Posts, kind, parent, source, quoted) -> pd.DataFrame:
    root = parent.copy()
    chained = np.flatnonzero((root >= 0) & (kind[np.maximum(root, 0)] == 1))
    while len(chained):  # the conversation is the first non-reply up the chain
        root[chained] = parent[root[chained]]
        chained = chained[kind[root[chained]] == 1]

    def ids(index, of=posts.ids):
        out = np.full(len(index), None, dtype=object)
        out[index >= 0] = of[index[index >= 0]]
        return out

    def authors(index):
        return ids(np.where(index >= 0, posts.author[np.maximum(index, 0)], -1), posts.author_ids)

    return pd.DataFrame(
        {
            "post_id": posts.ids,
            "kind": np.array(LINK_KINDS, dtype=object)[kind],
            "in_reply_to_post_id": ids(parent),
            "in_reply_to_user_id": authors(parent),
            "conversation_id": ids(root),
            "retweeted_post_id": ids(source),
            "retweeted_user_id": authors(source),
            "quoted_post_id": ids(quoted),
            "quoted_user_id": authors(quoted),
        }
    )


def _texts(posts: _Posts, kind, source, rng) -> tuple[np.ndarray, np.ndarray]:
    """Post texts (a retweet repeats its source's) and the (topic, word, word) pairs that stand
    next to each other in some text, for muted phrases."""
    vocab = topic_vocabulary()
    n = len(posts.ids)
    table = np.array([vocab.words[t] + vocab.tags[t] for t in TOPICS], dtype=object)  # [T, 220]
    folded = np.vectorize(_fold, otypes=[object])(table)
    size = np.arange(MAX_TOKENS)[None] < rng.integers(MIN_TOKENS, MAX_TOKENS + 1, n)[:, None]
    cat = rng.choice(3, size=(n, MAX_TOKENS), p=TOKEN_MIX)
    word = rng.integers(0, table.shape[1], (n, MAX_TOKENS))
    plain = rng.random((n, MAX_TOKENS)) < 0.5  # an accented word is written without its accent half the time
    topic_tok = np.where(plain, folded[posts.topic[:, None], word], table[posts.topic[:, None], word])
    filler = np.array(FILLER, dtype=object)[rng.integers(0, len(FILLER), (n, MAX_TOKENS))]
    mention = "@" + posts.author_ids[rng.integers(0, len(posts.author_ids), (n, MAX_TOKENS))]
    tok = np.where(cat == 0, topic_tok, np.where(cat == 1, filler, mention))
    capital = (rng.random(n) < 0.5) & (cat[:, 0] != 2) & (word[:, 0] < WORDS_PER_TOPIC)
    tok[capital, 0] = [t[:1].upper() + t[1:] for t in tok[capital, 0]]
    punct = np.array(["", ",", ".", "!", "?", ":"], dtype=object)
    marks = np.where(rng.random((n, MAX_TOKENS)) < PUNCT_PROB, punct[rng.integers(1, 6, (n, MAX_TOKENS))], "")
    tok = tok + marks
    text = np.array([" ".join(row[keep]) for row, keep in zip(tok, size, strict=True)], dtype=object)
    text[rng.random(n) < EMPTY_TEXT_PROB] = ""
    rt = np.flatnonzero(kind == 2)
    text[rt] = text[source[rt]]
    pair = size[:, 1:] & (cat[:, :-1] == 0) & (cat[:, 1:] == 0) & (word[:, :-1] < WORDS_PER_TOPIC)
    pair &= (word[:, 1:] < WORDS_PER_TOPIC) & (marks[:, :-1] == "") & (text != "")[:, None] & (kind != 2)[:, None]
    p, j = np.nonzero(pair)
    return text, np.stack([posts.topic[p], word[p, j], word[p, j + 1]], axis=1)


def _media(posts: _Posts, kind, source, rng) -> pd.DataFrame:
    """Video durations; a retweet carries its source's media, so its row repeats the source's."""
    n = len(posts.ids)
    ms = np.rint(np.exp(rng.normal(np.log(VIDEO_MEDIAN_MS), VIDEO_SIGMA_LOG, n))).astype(np.int64)
    own = np.flatnonzero(posts.video & (kind != 2))
    # A few videos sit exactly on the MinVideoDurationMs boundary (>= vs > gates).
    edge = rng.permutation(own)[: max(2, int(round(BOUNDARY_VIDEO_SHARE * len(own))))]
    ms[edge] = np.where(np.arange(len(edge)) % 2 == 0, VIDEO_MEDIAN_MS, VIDEO_MEDIAN_MS + 1)
    rt = np.flatnonzero(kind == 2)
    ms[rt] = ms[source[rt]]
    has = np.zeros(n, bool)
    has[own] = True
    has[rt] = posts.video[source[rt]]
    return pd.DataFrame({"post_id": posts.ids[has], "video_duration_ms": ms[has]})


def _paywall(posts: _Posts, kind, rng) -> pd.DataFrame:
    """10 % of authors put 10 % of their own (non-retweet) posts, at least one, behind a subscription."""
    num_authors = len(posts.author_ids)
    walled = rng.permutation(num_authors)[: max(1, int(round(PAYWALL_AUTHOR_SHARE * num_authors)))]
    rows = np.flatnonzero(np.isin(posts.author, walled) & (kind != 2))
    rows = rows[np.lexsort((rng.random(len(rows)), posts.author[rows]))]  # random order within each author
    per_author = np.bincount(posts.author[rows], minlength=num_authors)
    take = np.maximum(1, np.rint(PAYWALL_POST_SHARE * per_author)).astype(int)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(per_author) - per_author, per_author)[: len(rows)]
    rows = np.sort(rows[rank < take[posts.author[rows]]])
    return pd.DataFrame({"post_id": posts.ids[rows], "subscription_author_id": posts.author_ids[posts.author[rows]]})


def _subscriptions(follows: pd.DataFrame, paywall: pd.DataFrame, rng) -> pd.DataFrame:
    """A follower of a paywalled author subscribes with p 0.3 when the follow starts (first follow per pair)."""
    first = follows.drop_duplicates(["user_id", "author_id"])
    first = first[first["author_id"].isin(paywall["subscription_author_id"])]
    chosen = first[rng.random(len(first)) < SUBSCRIBE_PROB]
    return pd.DataFrame(
        {
            "user_id": chosen["user_id"].to_numpy(object),
            "author_id": chosen["author_id"].to_numpy(object),
            "since_ts": chosen["since_ts"].to_numpy(np.int64),
        }
    )


def _events(posts: _Posts, quoted, impressions: pd.DataFrame, rng) -> pd.DataFrame:
    """The create / delete / quote_delete log (Thunder's Kafka stream, §6), sorted by (ts, seq).

    A delete comes after the post's last logged impression (strictly) and within its 48 h life when
    possible; a quoted post's delete is followed by one quote_delete at the same ts; a re-create
    follows within a day.
    """
    n = len(posts.ids)
    dead = np.flatnonzero(rng.random(n) < DELETE_PROB)
    seen = impressions.loc[impressions["post_id"].isin(posts.ids[dead]), ["post_id", "ts"]]
    last = seen.groupby("post_id")["ts"].max().reindex(posts.ids[dead]).fillna(-1).to_numpy(np.int64)
    lo = np.maximum(posts.created[dead], last + 1)
    hi = posts.created[dead] + LINK_WINDOW_S
    gap = np.maximum(hi - lo + 1, 1)
    delete_ts = np.where(lo <= hi, lo + np.floor(rng.random(len(dead)) * gap).astype(np.int64), last + 1)
    cascade = np.isin(dead, quoted[quoted >= 0])
    again = rng.random(len(dead)) < RECREATE_PROB
    recreate_ts = delete_ts + 1 + np.floor(rng.random(len(dead)) * RECREATE_WITHIN_S).astype(np.int64)
    # Each event: (ts, post, rank); rank orders create < delete < quote_delete at equal (ts, post).
    parts = [
        (posts.created, np.arange(n), 0, 0),
        (delete_ts, dead, 1, 1),
        (delete_ts[cascade], dead[cascade], 2, 2),
        (recreate_ts[again], dead[again], 3, 0),
    ]
    ts = np.concatenate([p[0] for p in parts]).astype(np.int64)
    post = np.concatenate([p[1] for p in parts])
    rank = np.concatenate([np.full(len(p[1]), p[2]) for p in parts])
    kind = np.concatenate([np.full(len(p[1]), p[3]) for p in parts])
    order = np.lexsort((rank, post, ts))
    return pd.DataFrame(
        {
            "ts": ts[order],
            "seq": np.arange(len(order), dtype=np.int64),
            "kind": np.array(EVENT_KINDS, dtype=object)[kind[order]],
            "post_id": posts.ids[post[order]],
        }
    )


def _safety(posts: _Posts, rng) -> pd.DataFrame:
    """Visibility-filtering labels, one per post; `missing` marks a lookup miss (§8 VF)."""
    n = len(posts.ids)
    level = rng.choice(len(SAFETY_LEVELS), size=n, p=SAFETY_PROBS)
    return pd.DataFrame(
        {
            "post_id": posts.ids,
            "level": np.array(SAFETY_LEVELS, dtype=object)[level],
            "missing": rng.random(n) < SAFETY_MISSING_PROB,
        }
    )


def _muted(world: World, config: WorldConfig, phrases: np.ndarray, rng) -> pd.DataFrame:
    """30 % of users mute 1-3 keywords of their most disliked topic (lowest truth theta): 60 % words,
    20 % `#tags`, 20 % two-word phrases that stand next to each other in some post of that topic."""
    vocab = topic_vocabulary()
    users = world.users
    theta = world.truth_users[[f"theta_{t}" for t in TOPICS]].to_numpy()
    num_users = len(users)
    muting = np.sort(rng.permutation(num_users)[: int(round(MUTING_USER_SHARE * num_users))])
    user = np.repeat(muting, rng.integers(1, 4, len(muting)))
    topic = np.argmin(theta[user], axis=1)
    words = np.array([vocab.words[t] for t in TOPICS], dtype=object)
    tags = np.array([vocab.tags[t] for t in TOPICS], dtype=object)
    u = rng.random(len(user))
    keyword = words[topic, rng.integers(0, WORDS_PER_TOPIC, len(user))]
    is_tag = u < TAG_SHARE
    keyword[is_tag] = tags[topic[is_tag], rng.integers(0, TAGS_PER_TOPIC, is_tag.sum())]
    is_phrase = (u >= TAG_SHARE) & (u < TAG_SHARE + PHRASE_SHARE)
    keyword[is_phrase] = _phrases(rng, phrases, topic[is_phrase], words)
    created = users["created_ts"].to_numpy(np.int64)[user]
    end = CLOCK_START_TS + config.num_days * DAY_S
    since = created + np.floor(rng.random(len(user)) * (end - created)).astype(np.int64)
    table = pd.DataFrame({"user_id": users["user_id"].to_numpy(object)[user], "keyword": keyword, "since_ts": since})
    return table.drop_duplicates(["user_id", "keyword"]).reset_index(drop=True)


def _phrases(rng, pairs: np.ndarray, topic: np.ndarray, words: np.ndarray) -> np.ndarray:
    """A two-word phrase per entry of `topic`: a pair found in some text, else two random words."""
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    count = np.bincount(pairs[:, 0], minlength=len(TOPICS))
    start = np.cumsum(count) - count
    pick = start[topic] + np.floor(rng.random(len(topic)) * count[topic]).astype(np.int64)
    first = rng.integers(0, WORDS_PER_TOPIC, (len(topic), 2))
    has = count[topic] > 0
    first[has] = pairs[pick[has], 1:]
    return np.array([f"{words[t, a]} {words[t, b]}" for t, (a, b) in zip(topic, first, strict=True)], dtype=object)


def _author_blocks(world: World, rng) -> pd.DataFrame:
    """With p 0.2 an author blocks a user one hour after the user's first reply to or report of one
    of the author's posts."""
    imp = world.impressions
    hits = imp.loc[(imp["reply"] == 1) | (imp["report"] == 1), ["user_id", "post_id", "ts"]]
    author = world.posts.set_index("post_id")["author_id"]
    hits = hits.assign(author_id=author.reindex(hits["post_id"]).to_numpy(object))
    first = hits.drop_duplicates(["author_id", "user_id"])
    chosen = first[rng.random(len(first)) < AUTHOR_BLOCK_PROB]
    table = pd.DataFrame(
        {
            "author_id": chosen["author_id"].to_numpy(object),
            "user_id": chosen["user_id"].to_numpy(object),
            "since_ts": chosen["ts"].to_numpy(np.int64) + AUTHOR_BLOCK_DELAY_S,
        }
    )
    return table.sort_values(["since_ts", "author_id", "user_id"], kind="stable").reset_index(drop=True)


def user_blocks(impressions: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    """The first block_author / mute_author per (user, author) in the impressions (the simulator's
    hidden authors): kind "block" when the impression blocked, else "mute"; ts = the impression's."""
    hits = impressions.loc[
        (impressions["block_author"] == 1) | (impressions["mute_author"] == 1),
        ["user_id", "post_id", "ts", "block_author"],
    ]
    author = posts.set_index("post_id")["author_id"]
    hits = hits.assign(author_id=author.reindex(hits["post_id"]).to_numpy(object))
    first = hits.drop_duplicates(["user_id", "author_id"])
    table = pd.DataFrame(
        {
            "user_id": first["user_id"].to_numpy(object),
            "author_id": first["author_id"].to_numpy(object),
            "ts": first["ts"].to_numpy(np.int64),
            "kind": np.where(first["block_author"].to_numpy() == 1, "block", "mute").astype(object),
        }
    )
    return table.sort_values(["ts", "user_id", "author_id"], kind="stable").reset_index(drop=True)
