"""The independent re-audit of served feeds (candidate-pipeline spec §18 item 9, the ``filters_reaudit``
check): every §8 pre-scoring filter and §11 post-selection rule re-applied to every served post.

Independence is the point: this module reads the raw public tables of ``ServingData`` (items, events
and the §14 social tables) with pandas joins and its own small functions, and imports nothing of
``state.py``, ``thunder.py``, ``hydrators.py``, ``filters.py`` or ``text.py``, so a bug there shows up
here as a violation instead of being repeated. It shares only what the rules *are* (the ``RuleSet``
record and the constants of ``rules.py``) and the dataset registry (which partitions log
impressions). Its keyword tokenizer is a second, character-scanning implementation of §8.1
(``text.py`` uses one regular expression); both read the same Unicode block ranges, which are data.

A violation names the served post, the rule (the §8 / §11 filter's name, or ``Liveness`` (created
after t or deleted at ≤ t, §6.3), ``InNetwork`` (the served flag disagrees with the follows at t) or
``Truncate`` (a position past the result size)) and a JSON detail. Zero rows: the feeds pass.
Partitions without the social tables are checked for ``CORE_RULES`` only (§13). ``VideoFilter`` is
not re-checked: it acts only on requests with ``exclude_videos``, which the served feeds never set.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from x_reco.data.registry import ExampleKind, dataset_spec
from x_reco.pipeline.rules import MAX_POST_AGE, RESULT_SIZE, SERVED_HISTORY_MAX, SERVED_HISTORY_WINDOW_S, RuleSet
from x_reco.pipeline.rules import rule_set as _rule_set
from x_reco.pipeline.store import ServingData

VIOLATION_COLUMNS = ("request_id", "user_id", "post_id", "position", "rule", "detail")
CORE_RULES = ("CoreDataHydration", "Liveness", "Age", "PreviouslySeen", "PreviouslyServed")
CORE_RULES += ("DropDuplicates", "DedupConversation", "Truncate")
SOCIAL_RULES = ("SelfPost", "InNetwork", "OONRetweetReply", "RetweetDeduplication", "IneligibleSubscription")
SOCIAL_RULES += ("MutedKeyword", "AuthorSocialgraph", "VFFilter")
_LINKS = ("kind", "in_reply_to_post_id", "in_reply_to_user_id", "conversation_id")
_LINKS += ("retweeted_post_id", "retweeted_user_id", "quoted_post_id", "quoted_user_id")
_RELATED = ("post_id", "retweeted_post_id", "in_reply_to_post_id")  # §8 #8 related ids [A candidates_util]
_NEVER = np.iinfo(np.int64).max


def _ids(values: Any) -> np.ndarray:
    """Object array of str, None where absent (NaN / NA / None)."""
    return np.array([None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in values], object)


def _some(values: np.ndarray) -> np.ndarray:
    """Bool per value: not None."""
    return np.array([v is not None for v in values], bool)


def _table(data: ServingData, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = data.social.get(name)
    return frame if frame is not None else pd.DataFrame({c: [] for c in columns})


def _lookup(keys: pd.Series | np.ndarray, ids: Any, values: Any, default: Any = None) -> np.ndarray:
    """``values`` of the first row whose id equals each key (``default`` where none)."""
    table = dict(zip(reversed(list(_ids(ids))), reversed(list(values)), strict=True))
    return np.array([table.get(k, default) if k is not None else default for k in keys], dtype=object)


# -- the served posts with their raw facts ------------------------------------------------------------
def _served(items: pd.DataFrame, data: ServingData) -> pd.DataFrame:
    """One row per served post: the served columns plus the raw facts the rules read."""
    f = items[["request_id", "user_id", "t", "page", "position", "post_id", "in_network"]].reset_index(drop=True)
    f = f.astype({"request_id": str, "user_id": str, "post_id": str, "t": np.int64, "page": np.int64})
    raw = data.items
    f["known"] = f["post_id"].isin(set(raw["item_id"].astype(str)))
    has_author = "author_id" in raw.columns
    f["author"] = _lookup(f["post_id"], raw["item_id"], _ids(raw["author_id"])) if has_author else None
    if "created_ts" in raw.columns:
        created = _lookup(f["post_id"], raw["item_id"], raw["created_ts"], -1)
    else:  # real datasets without a creation time: the item's first event (§13)
        first = data.events.groupby(data.events["item_id"].astype(str))["ts"].min()
        created = _lookup(f["post_id"], first.index, first.to_numpy(), -1)
    f["created_ts"] = created.astype(np.int64)
    links = _table(data, "post_links", ("post_id", *_LINKS))
    for c in _LINKS:
        f[c] = _lookup(f["post_id"], links["post_id"], _ids(links[c]))
    f["root_author"] = _lookup(f["conversation_id"], raw["item_id"], _ids(raw["author_id"])) if has_author else None
    f["ancestors"] = [
        tuple(a for a in (r, c if c != r else None) if a is not None)
        for r, c in zip(f["in_reply_to_post_id"], f["conversation_id"], strict=True)
    ]
    text = _table(data, "post_text", ("post_id", "text"))
    f["text"] = [v or "" for v in _lookup(f["post_id"], text["post_id"], _ids(text["text"]))]
    f["deleted_ts"] = _lookup(f["post_id"], *_deletions(data, raw), _NEVER).astype(np.int64)
    return f


def _deletions(data: ServingData, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, first deletion ts) per §6.3: the post's own ``delete``, or a ``quote_delete`` of the
    post it quotes; a delete more than 48 h after creation is ignored; a re-create never revives."""
    events = _table(data, "post_events", ("ts", "seq", "kind", "post_id"))
    links = _table(data, "post_links", ("post_id", "quoted_post_id"))
    own = events.loc[events["kind"] == "delete", ["post_id", "ts"]].astype({"post_id": str})
    quote_deletes = events.loc[events["kind"] == "quote_delete", ["post_id", "ts"]]
    quoting = pd.DataFrame({"quoted": _ids(links["quoted_post_id"]), "post_id": links["post_id"].astype(str)})
    cascade = quote_deletes.rename(columns={"post_id": "quoted"}).astype({"quoted": str})
    cascade = cascade.merge(quoting.dropna(), on="quoted")[["post_id", "ts"]]
    dead = pd.concat([own, cascade], ignore_index=True)
    if "created_ts" in raw.columns:
        created = _lookup(dead["post_id"], raw["item_id"], raw["created_ts"], np.nan).astype(np.float64)
        dead = dead[~(dead["ts"].to_numpy(np.float64) - created > MAX_POST_AGE)]
    first = dead.groupby("post_id")["ts"].min()
    return first.index.to_numpy(object), first.to_numpy(np.int64)


# -- viewer state as of t, by joins on the raw tables -------------------------------------------------
def _join(f: pd.DataFrame, keys: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` matching a served row on every ``keys`` column (column -> one value per served
    row), with the served row's index ``_i`` and request time ``_t``."""
    left = pd.DataFrame({k: _ids(v) for k, v in keys.items()} | {"_i": np.arange(len(f)), "_t": f["t"].to_numpy()})
    right = table.assign(**{k: _ids(table[k]) for k in keys})
    return left.dropna(subset=list(keys)).merge(right.dropna(subset=list(keys)), on=list(keys))


def _rows(f: pd.DataFrame, m: pd.DataFrame, mask: Any) -> np.ndarray:
    """Bool per served row: some joined row ``m`` satisfies ``mask``."""
    out = np.zeros(len(f), bool)
    out[m["_i"][np.asarray(mask, bool)].to_numpy(np.int64)] = True
    return out


def _before(f: pd.DataFrame, keys: dict[str, Any], table: pd.DataFrame, ts: str) -> np.ndarray:
    """A matching row of ``table`` with ``table[ts] < t`` (the leak rule of §4)."""
    m = _join(f, keys, table)
    return _rows(f, m, m[ts].to_numpy(np.int64) < m["_t"].to_numpy(np.int64))


def _followed(f: pd.DataFrame, data: ServingData) -> np.ndarray:
    """The author is followed at t: ``since_ts < t`` and (``until_ts`` null or ``≥ t``) (§4)."""
    follows = _table(data, "follows", ("user_id", "author_id", "since_ts", "until_ts"))
    m = _join(f, {"user_id": f["user_id"], "author_id": f["author"]}, follows)
    until = pd.to_numeric(m["until_ts"], errors="coerce").to_numpy(np.float64)
    t = m["_t"].to_numpy(np.int64)
    return _rows(f, m, (m["since_ts"].to_numpy(np.int64) < t) & (np.isnan(until) | (until >= t)))


def _seen(f: pd.DataFrame, data: ServingData) -> np.ndarray:
    """The first related id among the viewer's impressions with ``ts < t`` (per-event partitions:
    every rating is an impression), else None."""
    ev = data.events
    if dataset_spec(data.partition).example_kind != ExampleKind.PER_EVENT:
        ev = ev[ev["exposed"].to_numpy().astype(bool)]
    out = np.full(len(f), None, dtype=object)
    for col in reversed(_RELATED):  # the first related id that hits wins
        hit = _before(f, {"user_id": f["user_id"], "item_id": f[col]}, ev[["user_id", "item_id", "ts"]], "ts")
        out[hit] = f[col].to_numpy(object)[hit]
    return out


def _served_before(f: pd.DataFrame) -> np.ndarray:
    """§12 re-derived from the feeds themselves: the first related id found among the post and source
    ids of the user's newest ≤ SERVED_HISTORY_MAX log rows with t in [t − 10 min, t), else None. The
    log holds, per served post, its row then one per conversation ancestor; requests in (t, page)
    order (``served.sample_requests``' order)."""
    log: dict[str, list[tuple]] = {}
    cols = ("user_id", "t", "page", "position", "post_id", "retweeted_post_id", "ancestors")
    for user, t, page, pos, post, source, ancestors in zip(*(f[c] for c in cols), strict=True):
        rows = log.setdefault(user, [])
        rows.append((int(t), int(page), int(pos), 0, post, source))
        rows += [(int(t), int(page), int(pos), k + 1, a, None) for k, a in enumerate(ancestors)]
    for rows in log.values():
        rows.sort(key=lambda r: r[:4])
    cache: dict[tuple[str, int], frozenset[str]] = {}
    out = np.full(len(f), None, dtype=object)
    for i, (user, t) in enumerate(zip(f["user_id"], f["t"], strict=True)):
        if (user, t) not in cache:
            window = [r for r in log[user] if t - SERVED_HISTORY_WINDOW_S <= r[0] < t]
            newest = window[::-1][:SERVED_HISTORY_MAX]
            cache[(user, t)] = frozenset(x for r in newest for x in r[4:] if x is not None)
        ids = cache[(user, t)]
        out[i] = next((x for x in (f[c].iat[i] for c in _RELATED) if x is not None and x in ids), None)
    return out


# -- §8.1 muted keywords, a second implementation ------------------------------------------------------
_BLOCKS = {  # Unicode blocks whose runs are one token each (§8.1 "a CJK run is one token")
    "han": ((0x3005, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F)),
    "hiragana": ((0x3041, 0x309F),),
    "katakana": ((0x30A0, 0x30FF), (0x31F0, 0x31FF)),
    "hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)),
}
_VOICING = ("\u3099", "\u309a")  # kana voicing marks are not accents: が is not か


def _fold(text: str) -> str:
    """NFKD, casefold, combining marks dropped (``café`` ≡ ``cafe``), recomposed."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = "".join(c for c in decomposed if c in _VOICING or not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept)


def _char_class(c: str) -> str:
    o = ord(c)
    for name, ranges in _BLOCKS.items():
        if any(lo <= o <= hi for lo, hi in ranges):
            return name
    return "word" if c.isalnum() or c == "_" else "other"


def words(text: str) -> list[str]:
    """§8.1 tokens by a character scan: maximal runs of one class (letters/digits/underscore, or one
    CJK script); a ``#``/``@`` right before a run, and not right after a letter or digit, is kept on
    it as a marker."""
    s = _fold(text)
    cls = [_char_class(c) for c in s]
    out, i = [], 0
    while i < len(s):
        marked = s[i] in "#@" and i + 1 < len(s) and cls[i + 1] != "other"
        marked = marked and not (i > 0 and (s[i - 1].isalnum() or s[i - 1] == "_"))
        start = i + 1 if marked else i
        if cls[start] == "other":
            i += 1
            continue
        end = start + 1
        while end < len(s) and cls[end] == cls[start]:
            end += 1
        out.append(s[i:end])
        i = end
    return out


def muted_match(keyword: str, post_words: list[str]) -> bool:
    """The keyword's tokens occur contiguously in ``post_words``: a plain ``w`` matches ``w``, ``#w``
    and ``@w``, a marked token only itself (§8.1); a keyword without tokens never matches."""
    kw = words(keyword)

    def same(k: str, w: str) -> bool:
        return k == w if k[0] in "#@" else k == (w[1:] if w[0] in "#@" else w)

    n = len(kw)
    return bool(kw) and any(all(map(same, kw, post_words[s : s + n])) for s in range(len(post_words) - n + 1))


def _muted_keyword(f: pd.DataFrame, data: ServingData) -> np.ndarray:
    """The first of the viewer's keywords muted before t that the post's text matches, else None."""
    table = _table(data, "muted_keywords", ("user_id", "keyword", "since_ts"))
    muted: dict[str, list[tuple[str, int]]] = {}
    for u, k, ts in zip(table["user_id"].astype(str), table["keyword"].astype(str), table["since_ts"], strict=True):
        muted.setdefault(u, []).append((k, int(ts)))
    out = np.full(len(f), None, dtype=object)
    tokens: dict[str, list[str]] = {}
    for i, (user, t, text) in enumerate(zip(f["user_id"], f["t"], f["text"], strict=True)):
        active = [k for k, ts in muted.get(user, ()) if ts < t]
        if active and text not in tokens:
            tokens[text] = words(text)
        out[i] = next((k for k in active if muted_match(k, tokens[text])), None)
    return out


# -- the rules ------------------------------------------------------------------------------------------
def _id_order(post_id: str) -> tuple[int, str]:
    return len(post_id), post_id  # numeric order of equal-prefix ids of any width


def _conversation_keys(f: pd.DataFrame, rules: RuleSet) -> list[str]:
    """§11 DedupConversation: ``min(ancestors)``, else ``retweeted_post_id ?? post_id`` (aug) or ``post_id``."""
    fallback = rules.conversation_key_retweet_fallback
    return [
        min(anc, key=_id_order) if anc else (rt if fallback and rt is not None else post)
        for anc, rt, post in zip(f["ancestors"], f["retweeted_post_id"], f["post_id"], strict=True)
    ]


def _duplicated(f: pd.DataFrame, keys: Any) -> np.ndarray:
    """A key already served earlier in the same feed."""
    return pd.DataFrame({"r": f["request_id"], "k": list(keys)}).duplicated(keep="first").to_numpy()


Check = tuple[str, np.ndarray, Callable[[int], dict[str, Any]]]


def _core_checks(f: pd.DataFrame, data: ServingData, rules: RuleSet, window_s: float | None) -> list[Check]:
    t, created = f["t"].to_numpy(np.int64), f["created_ts"].to_numpy(np.int64)
    social = bool(data.social)
    blank = np.array([social and not str(x).strip() for x in f["text"]], bool)
    no_author = np.array([social and not a for a in f["author"]], bool)
    dead = f["deleted_ts"].to_numpy(np.int64) <= t
    old = (created >= 0) & (t - created > window_s) if window_s is not None else np.zeros(len(f), bool)
    seen, served = _seen(f, data), _served_before(f)
    served_on = rules.served_filter_all_requests | (f["page"].to_numpy() >= 2)
    conv = _conversation_keys(f, rules)
    return [
        ("CoreDataHydration", ~f["known"].to_numpy() | no_author | blank, lambda i: {"author": f["author"].iat[i]}),
        ("Liveness", (created > t) | dead, lambda i: {"created_ts": created[i], "deleted_ts": f["deleted_ts"].iat[i]}),
        ("Age", (created < 0) | old, lambda i: {"age_s": t[i] - created[i], "max_age_s": window_s}),
        ("PreviouslySeen", _some(seen), lambda i: {"related_id": seen[i]}),
        ("PreviouslyServed", _some(served) & served_on, lambda i: {"related_id": served[i]}),
        ("DropDuplicates", _duplicated(f, f["post_id"]), lambda i: {}),
        ("DedupConversation", _duplicated(f, conv), lambda i: {"conversation_key": conv[i]}),
        ("Truncate", f["position"].to_numpy() >= RESULT_SIZE, lambda i: {"result_size": RESULT_SIZE}),
    ]


def _social_checks(f: pd.DataFrame, data: ServingData, rules: RuleSet) -> list[Check]:
    user, author = f["user_id"], f["author"]
    inn = (author == user).to_numpy() | _followed(f, data)
    reply, retweet = (f["kind"] == "reply").to_numpy(), (f["kind"] == "retweet").to_numpy()
    orphan = reply & np.array([not a for a in f["ancestors"]], bool)
    oon = ("OONRetweetReply" in rules.filters) & ((~inn & (reply | retweet)) | orphan)
    dedup_keys = [rt if rt is not None else p for rt, p in zip(f["retweeted_post_id"], f["post_id"], strict=True)]
    paywall = _table(data, "post_paywall", ("post_id", "subscription_author_id"))
    pay = _lookup(f["post_id"], paywall["post_id"], _ids(paywall["subscription_author_id"]))
    subs = _table(data, "subscriptions", ("user_id", "author_id", "since_ts"))
    unpaid = _some(pay) & ~_before(f, {"user_id": user, "author_id": pay}, subs, "since_ts")
    muted = _muted_keyword(f, data)
    graph = _socialgraph(f, data, rules)
    vf = _vf(f, data, rules, inn)
    return [
        ("SelfPost", (author == user).to_numpy(), lambda i: {"author_id": author.iat[i]}),
        ("InNetwork", inn != f["in_network"].to_numpy(bool), lambda i: {"followed_at_t": bool(inn[i])}),
        ("OONRetweetReply", oon, lambda i: {"kind": f["kind"].iat[i], "ancestors": list(f["ancestors"].iat[i])}),
        ("RetweetDeduplication", _duplicated(f, dedup_keys), lambda i: {"source_post_id": dedup_keys[i]}),
        ("IneligibleSubscription", unpaid, lambda i: {"subscription_author_id": pay[i]}),
        ("MutedKeyword", _some(muted), lambda i: {"keyword": muted[i]}),
        ("AuthorSocialgraph", _some(graph), lambda i: graph[i]),
        ("VFFilter", _some(vf), lambda i: {"verdict": vf[i]}),
    ]


def _socialgraph(f: pd.DataFrame, data: ServingData, rules: RuleSet) -> np.ndarray:
    """§8 #11 per served post: the first triggered clause as a dict, else None."""
    blocks = _table(data, "user_blocks", ("user_id", "author_id", "ts", "kind"))
    author_blocks = _table(data, "author_blocks", ("author_id", "user_id", "since_ts"))
    user = f["user_id"]

    def viewer(col: str, kinds: tuple[str, ...]) -> np.ndarray:  # the viewer blocked / muted f[col] before t
        return _before(f, {"user_id": user, "author_id": f[col]}, blocks[blocks["kind"].isin(kinds)], "ts")

    def blocks_viewer(col: str) -> np.ndarray:  # f[col] blocked the viewer before t
        return _before(f, {"user_id": user, "author_id": f[col]}, author_blocks, "since_ts")

    both = ("block", "mute")
    hits = [("blocked_or_muted_author", "author", viewer("author", both))]
    if rules.author_socialgraph_full:
        hits += [
            ("author_blocks_viewer", "author", blocks_viewer("author")),
            ("quoted_author_blocks_viewer", "quoted_user_id", blocks_viewer("quoted_user_id")),
            ("blocked_quoted_author", "quoted_user_id", viewer("quoted_user_id", ("block",))),
            ("blocked_retweeted_author", "retweeted_user_id", viewer("retweeted_user_id", ("block",))),
            ("blocked_or_muted_ancestor", "in_reply_to_user_id", viewer("in_reply_to_user_id", both)),
            ("blocked_or_muted_ancestor", "root_author", viewer("root_author", both)),
        ]
    out = np.full(len(f), None, dtype=object)
    for name, col, hit in reversed(hits):  # the first clause in rule order wins
        for i in np.flatnonzero(hit):
            out[i] = {"clause": name, "author_id": f[col].iat[i], "via": col}
    return out


def _vf(f: pd.DataFrame, data: ServingData, rules: RuleSet, in_network: np.ndarray) -> np.ndarray:
    """§11 VF from ``post_safety``: ``drop_all`` always, ``drop_recs`` out of network, a missing label
    where the rule set drops lookup misses; None: allowed."""
    safety = _table(data, "post_safety", ("post_id", "level", "missing"))
    level = _lookup(f["post_id"], safety["post_id"], _ids(safety["level"]))
    missing = _lookup(f["post_id"], safety["post_id"], safety["missing"].astype(bool), True).astype(bool)
    out = np.full(len(f), None, dtype=object)
    out[(level == "drop_recs") & ~in_network] = "drop_recs"
    out[level == "drop_all"] = "drop_all"
    if rules.vf_miss_drops:
        out[missing] = "miss"
    return out


def reaudit(items: pd.DataFrame, data: ServingData, rules: str | RuleSet, window_s: float | None) -> pd.DataFrame:
    """Every §8 / §11 rule re-checked on every served post of ``items`` (``served_feed_items``: at least
    request_id, user_id, t, page, position, post_id, in_network) against ``data``'s raw tables, under
    ``rules`` and the partition's Age window ``window_s`` (None: no limit). ``items`` is also the served
    log (§12) the PreviouslyServed rule reads. Returns one row per violation (``VIOLATION_COLUMNS``),
    in served order then rule order; no rows: the feeds pass."""
    rules = _rule_set(rules)
    f = _served(items, data)
    checks = _core_checks(f, data, rules, window_s)
    if data.social:
        checks += _social_checks(f, data, rules)
    parts = []
    for order, (rule, mask, detail) in enumerate(checks):
        idx = np.flatnonzero(np.asarray(mask, bool))
        part = f.iloc[idx][["request_id", "user_id", "post_id", "position"]].assign(rule=rule, _row=idx, _order=order)
        part["detail"] = [json.dumps(detail(int(i)), sort_keys=True, default=_plain) for i in idx]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*VIOLATION_COLUMNS, "_row", "_order"])
    out = out.sort_values(["_row", "_order"], kind="stable").reset_index(drop=True)
    return out[list(VIOLATION_COLUMNS)].astype({"position": "int64"})


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def reaudit_summary(violations: pd.DataFrame) -> dict[str, int]:
    """Violations per rule (every rule listed, zeros included) and their total, for check metadata."""
    counts = violations["rule"].value_counts()
    out = {rule: int(counts.get(rule, 0)) for rule in (*CORE_RULES, *SOCIAL_RULES)}
    return out | {"total": int(len(violations))}
