"""Item features, topics and the reward pool (datasets spec §8) and the stakeholder vectors built
on them (reward spec §1.3): the ML-100K pool of 1,305 from the RecBole copy, the published raw
cosines, MIND/Kindle slot layouts on hand-made tables, the synthetic content pool."""

import json

import numpy as np
import pandas as pd
import pytest

from x_reco.data.item_features import (
    SYNTHETIC_TOPICS,
    item_features,
    kindle_genre,
    pool_arrays,
    reward_train_split,
    synthetic_content_pool,
)
from x_reco.data.tables import RawTables
from x_reco.reward.stakeholders import (
    build_stakeholders,
    cosine,
    raw_geometry,
    stakeholders_from_frame,
    weights_frame,
)


@pytest.fixture(scope="module")
def ml100k():
    pytest.importorskip("recbole", reason="MovieLens-100K ships inside the RecBole wheel")
    from x_reco.data.movielens import read_movielens_100k

    raw = read_movielens_100k()
    return raw, item_features(raw)


def test_ml100k_split_and_pool(ml100k):
    raw, feats = ml100k
    assert len(reward_train_split(raw)) == 81_513
    assert int(feats["in_pool"].sum()) == 1_305
    pool = feats[feats["in_pool"]]
    assert pool["pool_order"].tolist() == list(range(1_305))
    ids, x, topic, other = pool_arrays(feats)
    assert x.shape == (1_305, 19) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(topic, other)
    genres = raw.items.set_index("item_id").loc[ids, [f"genre_{g:02d}" for g in range(19)]].to_numpy()
    np.testing.assert_array_equal(x > 0, genres > 0)
    np.testing.assert_array_equal(topic, np.argmax(genres, axis=1))


def test_ml100k_raw_cosines_and_disagreement(ml100k):
    raw, feats = ml100k
    st = build_stakeholders(raw, "movielens-100k")
    w = st.primary
    assert cosine(w["user"], w["platform"]) == pytest.approx(0.929, abs=0.01)
    assert cosine(w["user"], w["diversity"]) == pytest.approx(-0.087, abs=0.01)
    assert cosine(w["platform"], w["diversity"]) == pytest.approx(-0.153, abs=0.01)
    geo = raw_geometry(st, pool_arrays(feats)[1]).set_index(["stakeholder_a", "stakeholder_b"])
    np.testing.assert_allclose(geo["disagreement"], [0.08, 0.66, 0.67], atol=0.02)
    assert set(st.hidden_only) == {"creator", "advertiser", "niche", "mainstream", "moderator"}
    assert all(np.max(np.abs(v)) == pytest.approx(1.0) for v in st.all.values())
    back = stakeholders_from_frame(weights_frame(st))
    for name, v in st.all.items():
        np.testing.assert_array_equal(back.all[name], v)


def test_synthetic_content_pool():
    feats = synthetic_content_pool()
    ids, x, topic, _ = pool_arrays(feats)
    assert x.shape == (500, 18) and len(set(ids)) == 500 and x.min() >= 0.0 and x.max() <= 1.0
    rng = np.random.default_rng(42)  # the reference's draw order: all topics first, then 18 uniforms per item
    np.testing.assert_array_equal(topic, rng.integers(0, 6, 500))
    neg = {14: 1, 15: 1, 16: 1, 17: 1}  # the spec's factor table, action index -> multiplier
    factors = [
        {0: 1.5, 2: 1.3, **{k: 0.3 for k in neg}},
        {0: 1.2, 1: 1.4},
        {0: 1.3, 2: 1.8, 1: 2.0, 15: 2.5, 17: 2.0},
        {0: 1.3, 2: 1.8, 1: 2.0, 15: 2.5, 17: 2.0},
        {0: 1.8, 7: 1.5, **{k: 0.2 for k in neg}},
        {13: 1.3, 1: 1.2},
    ]
    for i in range(3):
        probs = rng.uniform(0.05, 0.3, 18)
        for a, f in factors[topic[i]].items():
            probs[a] *= f
        np.testing.assert_allclose(x[i], np.clip(probs, 0, 1), rtol=1e-6)
    block = x[:, 15]
    politics = np.isin(topic, [SYNTHETIC_TOPICS.index("politics_L"), SYNTHETIC_TOPICS.index("politics_R")])
    assert block[politics].mean() > 2 * block[~politics].mean()  # block ×2.5 on politics
    big = synthetic_content_pool(2000, seed=42)
    assert len(big) == 2000
    with pytest.raises(ValueError):
        synthetic_content_pool(1)


def _mind_raw():
    cats = ["news"] * 6 + ["sports"] * 4 + ["tv"] * 3 + ["kids"] * 2 + ["weird"]
    subs = [
        "newspolitics",
        "newscrime",
        "newsworld",
        "newsus",
        "newspolitics",
        "newsus",
        "football",
        "football",
        "golf",
        "golf",
        "tvnews",
        "tvnews",
        "tvgossip",
        "kidsa",
        "kidsa",
        "odd",
    ]
    n = len(cats)
    items = pd.DataFrame(
        {
            "item_id": [f"N{i + 1}" for i in range(n)],
            "category": cats,
            "subcategory": subs,
            "title": ["a b c d"] * (n - 1) + ["a " * 40],
            "abstract": [""] * n,
            "title_entities": [json.dumps([{"Label": "x"}] * (i % 3)) for i in range(n)],
            "abstract_entities": ["[]"] * n,
        }
    )
    rows = [(f"N{i % n + 1}", int(i % 5 == 0), "train/behaviors.tsv") for i in range(120)]
    rows += [("N1", 1, "dev/behaviors.tsv")] * 50
    inter = pd.DataFrame(
        {
            "user_id": "U1",
            "item_id": [r[0] for r in rows],
            "ts": 0,
            "rating": np.nan,
            "label": pd.array([r[1] for r in rows], dtype="Int8"),
            "impression_id": "1",
            "src_file": [r[2] for r in rows],
            "src_row": np.arange(len(rows)),
        }
    )
    return RawTables("mind-small", inter, items, pd.DataFrame({"user_id": ["U1"]}))


def test_mind_features_and_stakeholders():
    raw = _mind_raw()
    feats = item_features(raw)
    assert [c for c in feats.columns if c.startswith("f_")] == [f"f_{i:02d}" for i in range(35)]
    x = feats.set_index("item_id")[[f"f_{i:02d}" for i in range(35)]]
    assert x.loc["N1", "f_00"] == 1.0  # "news" is the most frequent category
    assert x.loc["N16"].iloc[:17].sum() == 1.0  # 5 categories, all in the top 17
    np.testing.assert_allclose(x.iloc[:, 34], x.iloc[:, 17:31].sum(axis=1))  # the collinear 4th quality slot
    assert x.loc["N16", "f_31"] == 1.0  # the long title is capped at 1
    assert int(feats["in_pool"].sum()) == 16  # >= 5 train tokens each (dev tokens ignored)
    st = build_stakeholders(raw, "mind-small").primary
    assert list(st) == ["reader", "publisher", "advertiser", "journalist", "civic_diversity"]
    assert st["advertiser"][0] == -1.0 and st["journalist"][31:34].tolist() == [0.5] * 3
    assert st["reader"][:17].max() == pytest.approx(1.0)


def _kindle_raw():
    genres = ["Romance"] * 5 + ["Mystery"] * 3 + ["SciFi"] * 2 + ["Poetry"]
    n = len(genres)
    items = pd.DataFrame(
        {
            "item_id": [f"B{i:03d}" for i in range(n)],
            "main_category": "Kindle Store",
            "categories": [json.dumps(["Kindle Store", "Kindle eBooks", g, "sub"]) for g in genres],
            "price": [0.0, 4.99, 5.0, 15.0, 15.01, 2.0, None, 9.0, 1.0, 30.0, 3.0],
            "average_rating": [2.5, 3.0, 4.0, 4.9, 3.9, 1.0, 4.2, 4.4, 3.3, 4.6, 5.0],
            "rating_number": pd.array([10, 50, 499, 500, 3, 1000, 20, 60, 70, None, 5], dtype="Int64"),
            "print_length_pages": pd.array([100, 200, 350, None, 199, 20, 400, 500, 150, 90, 300], dtype="Int64"),
        }
    )
    rows = [(f"B{i % n:03d}", float(1 + i % 5), i) for i in range(80)]
    inter = pd.DataFrame(
        {
            "user_id": [f"U{i % 7}" for i in range(80)],
            "item_id": [r[0] for r in rows],
            "ts": [r[2] for r in rows],
            "rating": [r[1] for r in rows],
            "label": pd.NA,
            "impression_id": None,
            "src_file": "Kindle_Store.csv",
            "src_row": np.arange(80),
        }
    )
    return RawTables("amazon-kindle", inter, items, pd.DataFrame({"user_id": [f"U{i}" for i in range(7)]}))


def test_kindle_features_and_stakeholders():
    raw = _kindle_raw()
    feats = item_features(raw).set_index("item_id").sort_index()
    x = feats[[f"f_{i:02d}" for i in range(32)]].to_numpy()
    price = x[:, 20:24].argmax(1)
    assert price[:6].tolist() == [0, 1, 2, 2, 3, 1] and x[6, 20:24].sum() == 0.0  # free, (0,5), [5,15], >15; missing
    assert x[:, 24:27].argmax(1)[:4].tolist() == [0, 1, 1, 2] and x[9, 24:27].sum() == 0.0
    assert x[:, 27:30].argmax(1)[:5].tolist() == [0, 1, 2, 2, 1]
    assert x[:, 30:32].argmax(1)[:5].tolist() == [0, 1, 1, 0, 0] and x[3, 30:32].sum() == 0.0
    assert x[:, :20].argmax(1)[:1].tolist() == [0]  # Romance: the most frequent genre
    assert kindle_genre('[["Kindle Store", ["Kindle eBooks", "Humor"]]]', "x") == "Humor"
    assert kindle_genre(None, "Books") == "Books"
    st = build_stakeholders(raw, "amazon-kindle").primary
    for other in ("publisher", "indie_author", "diversity"):
        assert cosine(st["premium_seller"], st[other]) == 0.0
    assert st["indie_author"][:3].tolist() == [-1.0, -1.0, -1.0]  # the 3 most populated genres


def test_unknown_partition():
    raw = RawTables("nope", pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    with pytest.raises(ValueError, match="unknown partition 'nope'"):
        item_features(raw)
