"""Stakeholder weight vectors per dataset (reward spec §1.2-§1.3) and the raw-geometry statistics."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTION_INDEX, DISCRETE_ACTIONS, NEGATIVE_ACTIONS, POSITIVE_ACTIONS
from x_reco.data.item_features import (
    KINDLE_GENRES,
    MIND_TOP_CATEGORIES,
    MIND_TOP_SUBCATEGORIES,
    ML_GENRES,
    kindle_genres,
    mind_vocabulary,
)
from x_reco.data.registry import DEFAULT_PARTITION, dataset_spec
from x_reco.data.tables import RawTables

POS_IDX = np.array([ACTION_INDEX[a] for a in POSITIVE_ACTIONS])
NEG_IDX = np.array([ACTION_INDEX[a] for a in NEGATIVE_ACTIONS])
SYNTHETIC_ALPHAS = {"user": 1.0, "platform": 0.3, "society": 4.0}
_ADVERTISER_SAFE = ("foodanddrink", "autos", "travel", "lifestyle", "music", "entertainment", "movies", "tv")
_JOURNALIST_SERIOUS = ("newsworld", "newspolitics", "newsus", "newsscienceandtechnology", "financenews")
_JOURNALIST_FRIVOLOUS = ("kids", "video", "tv", "music", "entertainment")


@dataclasses.dataclass(frozen=True)
class Stakeholders:
    """Weight vectors of one dataset: ``primary`` in the reference's order, ``hidden_only`` (Method B)."""

    dataset: str
    primary: dict[str, np.ndarray]
    hidden_only: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def all(self) -> dict[str, np.ndarray]:
        return {**self.primary, **self.hidden_only}


def alpha_weights(alpha: float, neutral: float = 0.0, negative: float | None = None) -> np.ndarray:
    """18-action structural vector: +1 on the 5 positives, ``neutral`` on the 9 neutrals and
    ``negative`` (default -alpha) on the 4 negatives (valence 5/4/9, deviation D1)."""
    w = np.full(len(DISCRETE_ACTIONS), neutral, dtype=np.float64)
    w[POS_IDX] = 1.0
    w[NEG_IDX] = -alpha if negative is None else negative
    return w


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; the 1e-8 guard matches the reference's helper."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-8))


def _scaled(w: np.ndarray) -> np.ndarray:
    m = np.max(np.abs(w))
    return (w / m if m > 0 else w).astype(np.float32)


def _diversity(counts: np.ndarray) -> np.ndarray:
    """−share + 1/(number of active slots) on active slots, scaled to max |w| = 1."""
    total, active = counts.sum(), counts > 0
    if total == 0:
        return np.zeros(len(counts), np.float32)
    return _scaled(np.where(active, -counts / total + 1.0 / active.sum(), 0.0))


def _genre_incidence(raw: RawTables, train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(flags of the rated movie per training rating [R, 19], ratings [R]); unknown items dropped."""
    flags = raw.items.set_index(raw.items["item_id"].astype(str))[[f"genre_{g:02d}" for g in range(ML_GENRES)]]
    joined = flags.reindex(train["item_id"].astype(str))
    ok = joined.notna().all(axis=1).to_numpy()
    return joined.to_numpy(np.float64)[ok], train["rating"].to_numpy(np.float64)[ok]


def movielens_stakeholders(raw: RawTables, train: pd.DataFrame) -> Stakeholders:
    """user / platform / diversity (primary) and the 5 Method-B hidden stakeholders."""
    g, r = _genre_incidence(raw, train)
    count = g.sum(axis=0)
    active = count > 0
    mean_c = np.divide((g * (r - 3.0)[:, None]).sum(0), count, out=np.zeros(ML_GENRES), where=active)
    mean_r = np.divide((g * r[:, None]).sum(0), count, out=np.zeros(ML_GENRES), where=active)
    platform = np.where(active, mean_r * np.log2(count + 1), 0.0)
    primary = {"user": _scaled(mean_c), "platform": _scaled(platform), "diversity": _diversity(count)}
    supply = raw.items[[f"genre_{i:02d}" for i in range(ML_GENRES)]].to_numpy(np.float64).sum(0)
    on = supply > 0
    niche = np.where(on, np.where(supply < np.median(supply[on]), 1.0, -1.0), 0.0)
    mainstream = np.zeros(ML_GENRES)
    mainstream[np.argsort(supply, kind="stable")[-3:]] = 1.0
    low = np.divide((g * (r <= 2)[:, None]).sum(0), count, out=np.zeros(ML_GENRES), where=active)
    hidden = {
        "creator": _scaled(supply),
        "advertiser": _scaled(count),
        "niche": _scaled(niche),
        "mainstream": mainstream.astype(np.float32),
        "moderator": _scaled(-low),
    }
    return Stakeholders(raw.partition, primary, hidden)


def mind_stakeholders(raw: RawTables, train: pd.DataFrame) -> Stakeholders:
    """reader / publisher / advertiser / journalist / civic_diversity over the 35 MIND slots."""
    cats, subs = mind_vocabulary(raw.items)
    n_c, q = MIND_TOP_CATEGORIES, MIND_TOP_CATEGORIES + MIND_TOP_SUBCATEGORIES
    item_cat = raw.items.set_index(raw.items["item_id"].astype(str))["category"].astype(str)
    cat_of_token = train["item_id"].astype(str).map(item_cat)
    clicked = train["label"].astype(float).to_numpy() > 0
    pad = [0.0] * (n_c - len(cats))  # fewer than 17 categories: empty slots, as the reference's zeros
    imps = np.array([(cat_of_token == c).sum() for c in cats] + pad, np.float64)
    clicks = np.array([((cat_of_token == c).to_numpy() & clicked).sum() for c in cats] + pad, np.float64)
    supply = np.array([(raw.items["category"].astype(str) == c).sum() for c in cats] + pad, np.float64)
    w = {k: np.zeros(35, np.float32) for k in ("reader", "publisher", "advertiser", "journalist")}
    ctr = (clicks + 1.0) / (imps + 10.0)
    w["reader"][:n_c] = ctr / ctr.max()
    w["reader"][q : q + 3] = (0.2, 0.2, 0.3)
    w["publisher"][:n_c] = supply / max(supply.max(), 1.0)
    for i, c in enumerate(cats):
        w["advertiser"][i] = 1.0 if c in _ADVERTISER_SAFE else (-1.0 if c == "news" else 0.0)
        w["journalist"][i] = -0.5 if c in _JOURNALIST_FRIVOLOUS else 0.0
    for j, s in enumerate(subs):
        if s in ("newscrime", "newspolitics"):
            w["advertiser"][n_c + j] = -1.0
        if s in _JOURNALIST_SERIOUS:
            w["journalist"][n_c + j] = 1.0
    w["journalist"][q : q + 3] = 0.5
    civic = np.zeros(35, np.float32)
    civic[:n_c] = _diversity(supply)
    return Stakeholders(raw.partition, {**w, "civic_diversity": civic})


def kindle_stakeholders(raw: RawTables, train: pd.DataFrame) -> Stakeholders:
    """reader / publisher / indie_author / premium_seller / diversity over the 32 Kindle slots."""
    genre, top = kindle_genres(raw.items)
    n_g = KINDLE_GENRES
    genre_of = pd.Series(genre.to_numpy(), index=raw.items["item_id"].astype(str))
    tok_genre = train["item_id"].astype(str).map(genre_of)
    centred = train["rating"].to_numpy(np.float64) - 3.0
    mean_c = np.array(
        [centred[(tok_genre == g).to_numpy()].mean() if (tok_genre == g).any() else 0.0 for g in top]
        + [0.0] * (n_g - len(top))
    )
    volume = (
        pd.to_numeric(raw.items.get("rating_number", pd.Series(0, index=raw.items.index)), errors="coerce")
        .fillna(0)
        .to_numpy(np.float64)
    )
    vol = np.array([volume[(genre == g).to_numpy()].sum() for g in top] + [0.0] * (n_g - len(top)))
    supply = np.array([(genre == g).sum() for g in top] + [0] * (n_g - len(top)), np.float64)
    w = {k: np.zeros(32, np.float32) for k in ("reader", "publisher", "indie_author", "premium_seller")}
    w["reader"][:n_g] = _scaled(mean_c)
    w["reader"][27:30], w["reader"][21:23] = (-0.5, 0.2, 0.5), (0.2, 0.3)
    w["publisher"][:n_g] = vol / max(vol.max(), 1.0)
    w["publisher"][24:27] = (-0.2, 0.3, 0.6)
    order = np.argsort(supply, kind="stable")[::-1]
    w["indie_author"][order[n_g // 2 :][supply[order[n_g // 2 :]] > 0]] = 0.5
    w["indie_author"][order[:3]] = -1.0
    w["indie_author"][24:27] = (0.8, 0.2, -0.8)
    w["premium_seller"][20:24] = (-1.0, -0.3, 0.3, 1.0)
    w["premium_seller"][27:32] = (-0.8, 0.0, 0.8, -0.2, 0.4)
    div = np.zeros(32, np.float32)
    div[:n_g] = _diversity(supply)
    return Stakeholders(raw.partition, {**w, "diversity": div})


def synthetic_stakeholders(dataset: str = DEFAULT_PARTITION) -> Stakeholders:
    return Stakeholders(dataset, {k: alpha_weights(a).astype(np.float32) for k, a in SYNTHETIC_ALPHAS.items()})


# Stakeholder families a dataset record names (``DatasetSpec.stakeholders``): (raw, train split) -> weights.
_FAMILIES = {
    "alpha": lambda raw, train: synthetic_stakeholders(),
    "movielens": movielens_stakeholders,
    "mind": mind_stakeholders,
    "kindle": kindle_stakeholders,
}


def build_stakeholders(raw: RawTables | None, partition: str) -> Stakeholders:
    """Stakeholders of ``partition``; datasets with a reward split read it from their RawTables."""
    spec = dataset_spec(partition)
    if spec.reward_split is None:
        return _FAMILIES[spec.stakeholders](None, None)
    if raw is None or raw.partition != partition:
        raise ValueError(f"partition {partition!r} needs its RawTables")
    return _FAMILIES[spec.stakeholders](raw, spec.reward_split(raw))


def weights_frame(st: Stakeholders) -> pd.DataFrame:
    """One row per stakeholder: dataset, stakeholder, role, definition_id, norm, w_00..w_{D-1}."""
    rows = []
    for role, group in (("primary", st.primary), ("hidden_only", st.hidden_only)):
        for name, w in group.items():
            row = {
                "dataset": st.dataset,
                "stakeholder": name,
                "role": role,
                "definition_id": f"{st.dataset}/{name}/v1",
                "norm": float(np.linalg.norm(w)),
            }
            row.update({f"w_{i:02d}": float(v) for i, v in enumerate(w)})
            rows.append(row)
    return pd.DataFrame(rows)


def stakeholders_from_frame(frame: pd.DataFrame) -> Stakeholders:
    """Inverse of ``weights_frame`` (weights kept as float32, the reference's precision)."""
    cols = sorted(c for c in frame.columns if c.startswith("w_"))
    groups = {
        role: {
            r.stakeholder: np.asarray([getattr(r, c) for c in cols], np.float32)
            for r in frame[frame["role"] == role].itertuples()
        }
        for role in ("primary", "hidden_only")
    }
    return Stakeholders(str(frame["dataset"].iloc[0]), groups["primary"], groups["hidden_only"])


def raw_geometry(st: Stakeholders, x_md: np.ndarray, n_pairs: int = 10_000, seed: int = 42) -> pd.DataFrame:
    """Per unordered primary pair: raw cosine, pool covariance w_a' Σ w_b, pool correlation and the
    label-disagreement rate on ``n_pairs`` random item pairs (noise-free labels)."""
    x = np.asarray(x_md, np.float64)
    sigma = np.cov(x, rowvar=False, bias=True)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(x), n_pairs)
    b = (a + rng.integers(1, len(x), n_pairs)) % len(x)  # a uniformly drawn distinct second item
    rows = []
    for s, t in itertools.combinations(st.primary, 2):
        ws, wt = st.primary[s].astype(np.float64), st.primary[t].astype(np.float64)
        cov = float(ws @ sigma @ wt)
        den = np.sqrt(float(ws @ sigma @ ws) * float(wt @ sigma @ wt))
        us, ut = x @ ws, x @ wt
        disagree = float(np.mean((us[a] > us[b]) != (ut[a] > ut[b])))
        rows.append(
            {
                "dataset": st.dataset,
                "stakeholder_a": s,
                "stakeholder_b": t,
                "raw_cos": cosine(ws, wt),
                "cov_pool": cov,
                "corr_pool": cov / den if den > 0 else 0.0,
                "disagreement": disagree,
            }
        )
    return pd.DataFrame(rows)
