"""Per-partition item features, topics and the reward-modelling pool (datasets spec §8)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTION_INDEX, DISCRETE_ACTIONS, NEGATIVE_ACTIONS
from x_reco.data.movielens import allbut_split
from x_reco.data.tables import RawTables

POOL_MIN_INTERACTIONS = 5
POOL_SEED = 42
ML_GENRES = 19
MIND_TOP_CATEGORIES, MIND_TOP_SUBCATEGORIES = 17, 14
KINDLE_GENRES = 20
KINDLE_WRAPPERS = frozenset({"Kindle Store", "Kindle eBooks"})
SYNTHETIC_TOPICS = ("sports", "tech", "politics_L", "politics_R", "entertainment", "news")
# Topic multipliers of the synthetic content pool (reference order of the 6 topics above).
_TOPIC_FACTORS = {
    0: {"favorite": 1.5, "repost": 1.3, **{a: 0.3 for a in NEGATIVE_ACTIONS}},
    1: {"favorite": 1.2, "reply": 1.4},
    2: {"favorite": 1.3, "repost": 1.8, "reply": 2.0, "block_author": 2.5, "report": 2.0},
    3: {"favorite": 1.3, "repost": 1.8, "reply": 2.0, "block_author": 2.5, "report": 2.0},
    4: {"favorite": 1.8, "share": 1.5, **{a: 0.2 for a in NEGATIVE_ACTIONS}},
    5: {"follow_author": 1.3, "reply": 1.2},
}


def feature_columns(d: int) -> list[str]:
    return [f"f_{i:02d}" for i in range(d)]


def item_features(raw: RawTables) -> pd.DataFrame:
    """Item features of one partition (its registry record's builder; see ``pooled_features``)."""
    from x_reco.data.registry import dataset_spec  # the registry imports this module's builders

    return dataset_spec(raw.partition).item_features(raw)


def pooled_features(builder, split, raw: RawTables) -> pd.DataFrame:
    """``builder(raw, split(raw))`` with the reward pool attached, one row per item of ``raw.items``.

    Columns: item_id (str), topic (parity rule: unknown categories collapse to 0), topic_other
    (correction C10: unknown categories get their own last topic), f_00..f_{D-1} in [0, 1],
    in_pool (>= 5 interactions in the reward-modelling training split), pool_order (position in the
    pool after the seeded shuffle, -1 outside the pool). Rows are sorted by pool_order, pool first.
    """
    train = split(raw)
    return _attach_pool(builder(raw, train), train["item_id"].value_counts())


def pool_arrays(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(item_ids [M], x_md [M, D] float32, topic_m [M], topic_other_m [M]) of the pool, in pool order."""
    pool = features[features["in_pool"]].sort_values("pool_order")
    cols = [c for c in features.columns if c.startswith("f_")]
    return (
        pool["item_id"].to_numpy(),
        pool[cols].to_numpy(np.float32),
        pool["topic"].to_numpy(np.int64),
        pool["topic_other"].to_numpy(np.int64),
    )


def reward_train_split(raw: RawTables) -> pd.DataFrame:
    """Training interactions of the reference study's reward-modelling split (datasets §8)."""
    from x_reco.data.registry import dataset_spec  # the registry imports this module's splits

    spec = dataset_spec(raw.partition)
    if spec.reward_split is None:
        raise ValueError(f"no reward-modelling split for partition {raw.partition!r}")
    return spec.reward_split(raw)


def ua_base_split(raw: RawTables) -> pd.DataFrame:
    """GroupLens ``ua.base`` less a seeded 10 % hold-out (the reference's ML-100K split)."""
    base = _ua_base(raw)
    perm = np.random.default_rng(POOL_SEED).permutation(len(base))
    keep = np.ones(len(base), dtype=bool)
    keep[perm[: int(len(base) * 0.1)]] = False
    return base[keep].reset_index(drop=True)


def chronological_split(raw: RawTables) -> pd.DataFrame:
    """The earliest 80 % of interactions by (ts, source line)."""
    ordered = raw.interactions.sort_values(["ts", "src_row"], kind="mergesort")
    n = len(ordered)
    return ordered.iloc[: n - 2 * int(n * 0.1)].reset_index(drop=True)


def _ua_base(raw: RawTables) -> pd.DataFrame:
    """GroupLens ``ua.base``, sorted by numeric (user, item) as GroupLens writes the file. The line
    order matters: the seeded 10 % hold-out permutes rows of this file."""
    if "ua_base" in raw.extra:
        return raw.extra["ua_base"]
    return allbut_split(raw.interactions)[0]


def mind_train_tokens(raw: RawTables) -> pd.DataFrame:
    """Impression tokens of the MIND train file."""
    inter = raw.interactions
    tokens = inter[inter["label"].notna()]
    is_train = tokens["src_file"].astype(str).str.lower().str.contains("train")
    return tokens[is_train.to_numpy()].reset_index(drop=True)


def _natural_order(ids: pd.Series) -> np.ndarray:
    """Indices sorting ids numerically when all are integers (MovieLens), else as strings."""
    s = ids.astype(str)
    if s.str.fullmatch(r"\d+").all():
        return np.argsort(s.astype(np.int64).to_numpy(), kind="stable")
    return np.argsort(s.to_numpy(), kind="stable")


def _attach_pool(feats: pd.DataFrame, counts: pd.Series) -> pd.DataFrame:
    feats = feats.iloc[_natural_order(feats["item_id"])].reset_index(drop=True)
    n = feats["item_id"].map(counts).fillna(0).to_numpy()
    in_pool = n >= POOL_MIN_INTERACTIONS
    order = np.full(len(feats), -1, dtype=np.int64)
    eligible = np.flatnonzero(in_pool)  # already in natural id order, as the reference sorts them
    shuffled = eligible.copy()
    np.random.default_rng(POOL_SEED).shuffle(shuffled)
    order[shuffled] = np.arange(len(shuffled))
    feats["in_pool"], feats["pool_order"] = in_pool, order
    key = np.where(order >= 0, order, len(feats) + np.arange(len(feats)))
    return feats.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


def _frame(item_ids, x_md: np.ndarray, topic, topic_other) -> pd.DataFrame:
    cols = {
        "item_id": pd.Series(item_ids).astype(str).to_numpy(),
        "topic": np.asarray(topic, dtype=np.int64),
        "topic_other": np.asarray(topic_other, dtype=np.int64),
    }
    cols.update({name: x_md[:, i].astype(np.float32) for i, name in enumerate(feature_columns(x_md.shape[1]))})
    return pd.DataFrame(cols)


def movielens_features(raw: RawTables, train: pd.DataFrame) -> pd.DataFrame:
    """Genre flag x (mean training rating of the movie) / 5; topic = lowest-index active genre."""
    items = raw.items
    flags = items[[f"genre_{g:02d}" for g in range(ML_GENRES)]].to_numpy(np.float32)
    mean = train.groupby("item_id")["rating"].mean()
    avg = items["item_id"].astype(str).map(mean).fillna(0.0).to_numpy(np.float32)
    topic = np.where(flags.any(axis=1), flags.argmax(axis=1), 0)
    return _frame(items["item_id"], flags * (avg[:, None] / 5.0), topic, topic)


def _ranked(values: pd.Series, top: int) -> list[str]:
    """The ``top`` most frequent values; ties keep first-appearance order (a stable sort)."""
    counts = values.astype(str).value_counts(sort=False)
    first = {v: i for i, v in enumerate(pd.unique(values.astype(str)))}
    ranked = sorted(counts.index, key=lambda v: (-counts[v], first[v]))
    return ranked[:top]


def mind_vocabulary(items: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Top-17 categories and top-14 subcategories, counted over the union news table."""
    return (_ranked(items["category"], MIND_TOP_CATEGORIES), _ranked(items["subcategory"], MIND_TOP_SUBCATEGORIES))


def _entity_count(value) -> int:
    if isinstance(value, str):
        return value.count("{")
    return len(value) if isinstance(value, (list, tuple, np.ndarray)) else 0


def mind_features(raw: RawTables, train: pd.DataFrame) -> pd.DataFrame:
    items = raw.items
    cats, subs = mind_vocabulary(items)
    cat_idx = items["category"].astype(str).map({c: i for i, c in enumerate(cats)})
    sub_idx = items["subcategory"].astype(str).map({s: i for i, s in enumerate(subs)})
    x = np.zeros((len(items), 35), dtype=np.float32)
    rows = np.arange(len(items))
    has_cat, has_sub = cat_idx.notna().to_numpy(), sub_idx.notna().to_numpy()
    x[rows[has_cat], cat_idx[has_cat].astype(int)] = 1.0
    x[rows[has_sub], MIND_TOP_CATEGORIES + sub_idx[has_sub].astype(int)] = 1.0
    q = MIND_TOP_CATEGORIES + MIND_TOP_SUBCATEGORIES
    title_len = items["title"].fillna("").astype(str).str.split().str.len().to_numpy(np.float64)
    abstract_len = items["abstract"].fillna("").astype(str).str.split().str.len().to_numpy(np.float64)
    entities = items["title_entities"].map(_entity_count) + items["abstract_entities"].map(_entity_count)
    x[:, q] = np.minimum(1.0, title_len / (np.percentile(title_len, 95) or 1.0))
    x[:, q + 1] = np.minimum(1.0, abstract_len / (np.percentile(abstract_len, 95) or 1.0))
    x[:, q + 2] = np.minimum(1.0, entities.to_numpy(np.float64) / 10.0)
    x[:, q + 3] = has_sub.astype(np.float32)
    topic = np.where(has_cat, cat_idx.fillna(0).astype(int), 0)
    other = np.where(has_cat, topic, MIND_TOP_CATEGORIES)
    return _frame(items["item_id"], x, topic, other)


def _as_obj(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def kindle_genre(categories, main_category) -> str:
    """First ``categories`` entry after the Kindle wrappers (nested lists searched), else main_category."""

    def first(entries) -> str:
        for entry in entries:
            if isinstance(entry, str) and entry and entry not in KINDLE_WRAPPERS:
                return entry
            if isinstance(entry, (list, tuple, np.ndarray)) and len(entry):
                inner = first(entry)
                if inner:
                    return inner
        return ""

    cats = _as_obj(categories)
    genre = cats if isinstance(cats, str) and cats not in KINDLE_WRAPPERS else ""
    if isinstance(cats, (list, tuple, np.ndarray)):
        genre = first(cats)
    return genre or (main_category if isinstance(main_category, str) else "")


def kindle_genres(items: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """(genre per item, the 20 most frequent genres over the item table)."""
    main = items["main_category"] if "main_category" in items else pd.Series([""] * len(items))
    cats = items["categories"] if "categories" in items else pd.Series([None] * len(items))
    genre = pd.Series([kindle_genre(c, m) for c, m in zip(cats, main)], index=items.index)
    return genre, _ranked(genre[genre != ""], KINDLE_GENRES)


def _number(value) -> float:
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*", value)
        return float(m.group(1).replace(",", "")) if m else np.nan
    return np.nan


def _pages(row: pd.Series) -> float:
    if "print_length_pages" in row and not pd.isna(row["print_length_pages"]):
        return _number(row["print_length_pages"])
    details = _as_obj(row.get("details"))
    if isinstance(details, dict):
        for key in ("Print length", "Print Length", "print_length", "Pages", "pages"):
            if key in details:
                m = re.search(r"(\d+)", str(details[key]))
                return float(m.group(1)) if m else np.nan
    return np.nan


def _bucket(values: np.ndarray, edges: list[tuple[float, float]], closed_right: tuple[bool, ...]) -> np.ndarray:
    """Bucket index per value (-1 when missing or outside every bucket); the first matching bucket
    wins, so a price of exactly 0 is "free" even though the next bucket's lower edge is also 0."""
    out = np.full(len(values), -1)
    for b, ((lo, hi), right) in enumerate(zip(edges, closed_right)):
        hit = (values >= lo) & ((values <= hi) if right else (values < hi))
        out[(out < 0) & hit & ~np.isnan(values)] = b
    return out


def kindle_features(raw: RawTables, train: pd.DataFrame) -> pd.DataFrame:
    """20 genres; price free / (0,5) / [5,15] / >15; volume <50 / [50,500) / >=500; sentiment
    <3 / [3,4) / >=4; length <200 / >=200 pages. A missing field leaves its block all-zero."""
    items = raw.items
    genre, top = kindle_genres(items)
    gidx = genre.map({g: i for i, g in enumerate(top)})
    x = np.zeros((len(items), 32), dtype=np.float32)
    rows = np.arange(len(items))
    known = gidx.notna().to_numpy()
    x[rows[known], gidx[known].astype(int)] = 1.0
    price = np.array([_number(v) for v in items.get("price", pd.Series([np.nan] * len(items)))])
    volume = np.array([_number(v) for v in items.get("rating_number", pd.Series([np.nan] * len(items)))])
    stars = np.array([_number(v) for v in items.get("average_rating", pd.Series([np.nan] * len(items)))])
    pages = np.array([_pages(r) for _, r in items.iterrows()]) if len(items) else np.zeros(0)
    inf = np.inf
    blocks = [
        (20, _bucket(price, [(0, 0), (0, 5), (5, 15), (15, inf)], (True, False, True, False))),
        (24, _bucket(volume, [(0, 50), (50, 500), (500, inf)], (False, False, False))),
        (27, _bucket(stars, [(-inf, 3), (3, 4), (4, inf)], (False, False, False))),
        (30, _bucket(pages, [(0, 200), (200, inf)], (False, False))),
    ]
    for start, idx in blocks:
        ok = idx >= 0
        x[rows[ok], start + idx[ok]] = 1.0
    topic = np.where(known, gidx.fillna(0).astype(int), 0)
    other = np.where(known, topic, KINDLE_GENRES)
    return _frame(items["item_id"], x, topic, other)


def synthetic_content_pool(n_items: int = 500, seed: int = 42) -> pd.DataFrame:
    """Content-only pool of the synthetic partition (datasets §8), in the item_features layout.

    Topics first (uniform over the 6 topics, one vector draw), then per item 18 U(0.05, 0.30) action
    probabilities multiplied by the topic factors and clipped to [0, 1]: the reference's draw order.
    Every item is in the pool; pool_order = row index; topic_other = topic.
    """
    if n_items < 2:
        raise ValueError(f"n_items must be >= 2, got {n_items}")
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, len(SYNTHETIC_TOPICS), size=n_items)
    x = np.zeros((n_items, len(DISCRETE_ACTIONS)), dtype=np.float32)
    for i in range(n_items):
        probs = rng.uniform(0.05, 0.3, len(DISCRETE_ACTIONS))
        for action, factor in _TOPIC_FACTORS[int(topic[i])].items():
            probs[ACTION_INDEX[action]] *= factor
        x[i] = np.clip(probs, 0.0, 1.0)
    feats = _frame([f"c{i:05d}" for i in range(n_items)], x, topic, topic)
    feats["in_pool"] = True
    feats["pool_order"] = np.arange(n_items, dtype=np.int64)
    return feats
