"""E1 tables: direction_pairs, direction_summary, temperature_sweep, goodhart_curves (spec §5, §10)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from x_reco.reward.direction import DirectionConfig
from x_reco.reward.pool import RewardPool
from x_reco.reward.stakeholders import cosine
from x_reco.reward.stats import bootstrap_ci, wilson

PREDICTORS = ("raw_cos", "trained_cos", "cov_pool", "corr_pool", "cov_softmax_local", "cov_upper_tail")
COSINE_LIKE = ("raw_cos", "trained_cos", "corr_pool")  # strong = |value| > threshold; others: trained-cos strong
PAIR_KEYS = ["mode", "scale", "target", "hidden", "mechanism"]


def _lookup_cos(cosines: pd.DataFrame) -> dict[tuple[str, str], float]:
    out = {}
    for r in cosines.itertuples():
        out[(r.stakeholder_a, r.stakeholder_b)] = out[(r.stakeholder_b, r.stakeholder_a)] = r.trained_cos
    return out


def _pool_geometry(pool: RewardPool, t: str, h: str) -> dict[str, float]:
    x = pool.x_md.astype(np.float64)
    sigma = np.cov(x, rowvar=False, bias=True)
    wt, wh = (pool.stakeholders.all[n].astype(np.float64) for n in (t, h))
    cov = float(wt @ sigma @ wh)
    den = np.sqrt(float(wt @ sigma @ wt) * float(wh @ sigma @ wh))
    return {"raw_cos": cosine(wt, wh), "cov_pool": cov, "corr_pool": cov / den if den > 0 else 0.0}


def direction_pairs(pool: RewardPool, raw: dict[str, pd.DataFrame], cfg: DirectionConfig) -> pd.DataFrame:
    """One row per (mode, scale, target, hidden, mechanism): U25, U2000, change, CI, predictors,
    strong, per-predictor match and (corrected protocol) inconclusive."""
    ev = raw["evals"]
    ev = ev[
        (ev["sigma_p"] == cfg.sigma_p)
        & ev["seed"].isin(cfg.seeds)
        & ev["n_pairs"].isin([cfg.n_small, cfg.n_large])
        & (ev["target"] != ev["hidden"])
    ]
    wide = ev.pivot_table(index=PAIR_KEYS + ["seed"], columns="n_pairs", values="utility").reset_index()
    trained = _lookup_cos(raw["cosines"])
    local = raw["local"].groupby(["mode", "scale", "target", "hidden"])[["cov_softmax_local", "cov_upper_tail"]].mean()
    geometry = {k: _pool_geometry(pool, *k) for k in set(zip(wide["target"], wide["hidden"]))}
    rows = []
    for key, g in wide.groupby(PAIR_KEYS, sort=False):
        mode, scale, t, h, mech = key
        small, large = g[cfg.n_small].to_numpy(), g[cfg.n_large].to_numpy()
        u_s, u_l = float(small.mean()), float(large.mean())
        change = u_l - u_s
        lo, hi = bootstrap_ci(large - small, cfg.n_boot, seed=0)
        improving = u_l > u_s
        inconclusive = cfg.protocol == "corrected" and (bool(lo <= 0.0 <= hi) or abs(change) < 0.01 * abs(u_s))
        preds = {
            **geometry[(t, h)],
            "trained_cos": trained.get((t, h), np.nan),
            **local.loc[(mode, scale, t, h)].to_dict(),
        }
        row = {
            "dataset": pool.dataset,
            "protocol": cfg.protocol,
            "mode": mode,
            "scale": scale,
            "method": "A" if h in pool.stakeholders.primary else "B",
            "target": t,
            "hidden": h,
            "mechanism": mech,
            "n_seeds": len(g),
            "U_small": u_s,
            "U_large": u_l,
            "change": change,
            "rel_change": change / abs(u_s) if abs(u_s) > 1e-6 else 0.0,
            "ci_lo": lo,
            "ci_hi": hi,
            "improving": improving,
            "inconclusive": inconclusive,
            "strong": bool(abs(preds["trained_cos"]) > cfg.strong),
        }
        for p in PREDICTORS:
            v = preds[p]
            row[p] = v
            row[f"match_{p}"] = (not inconclusive) and bool((v > 0 and improving) or (v < 0 and not improving))
        rows.append(row)
    return pd.DataFrame(rows)


def _strong(df: pd.DataFrame, predictor: str, threshold: float) -> np.ndarray:
    if predictor in COSINE_LIKE:
        return (df[predictor].abs() > threshold).to_numpy()
    return df["strong"].to_numpy()


def _unordered(df: pd.DataFrame, predictor: str, threshold: float) -> pd.DataFrame:
    """Collapse ordered pairs {t→h, h→t}: strong if both strong, a match if both match,
    inconclusive if either is; pairs seen in one direction only (Method B) stay as they are."""
    d = df.assign(
        _strong=_strong(df, predictor, threshold),
        pair=[f"{ds}:" + "|".join(sorted((t, h))) for ds, t, h in zip(df["dataset"], df["target"], df["hidden"])],
    )
    return (
        d.groupby("pair")
        .agg(_strong=("_strong", "all"), match=(f"match_{predictor}", "all"), inconclusive=("inconclusive", "any"))
        .reset_index()
    )


def _counts(strong: np.ndarray, match: np.ndarray, inconclusive: np.ndarray) -> dict:
    n, k = int(strong.sum()), int((match & strong).sum())
    inc = int((inconclusive & strong).sum())
    lo, hi = wilson(k, n)
    return {
        "n_strong": n,
        "matches": k,
        "inconclusive": inc,
        "accuracy": k / n if n else np.nan,
        "accuracy_conclusive": k / (n - inc) if n - inc else np.nan,
        "wilson_lo": lo,
        "wilson_hi": hi,
        "n_all": len(strong),
        "matches_all": int(match.sum()),
    }


def direction_summary(pairs: pd.DataFrame, cfg: DirectionConfig) -> pd.DataFrame:
    """Accuracy of every predictor under every mechanism, per ordered and unordered pair (C7).
    ``pairs`` may concatenate several datasets: the rows are then labelled "pooled"."""
    rows = []
    dataset = pairs["dataset"].iloc[0] if pairs["dataset"].nunique() == 1 else "pooled"
    for (mode, scale, method, mech), g in pairs.groupby(["mode", "scale", "method", "mechanism"], sort=False):
        for p in PREDICTORS:
            base = {
                "dataset": dataset,
                "protocol": cfg.protocol,
                "mode": mode,
                "scale": scale,
                "method": method,
                "mechanism": mech,
                "predictor": p,
            }
            ordered = _counts(_strong(g, p, cfg.strong), g[f"match_{p}"].to_numpy(), g["inconclusive"].to_numpy())
            u = _unordered(g, p, cfg.strong)
            unordered = _counts(u["_strong"].to_numpy(), u["match"].to_numpy(), u["inconclusive"].to_numpy())
            rows.append({**base, "unit": "ordered", **ordered})
            rows.append({**base, "unit": "unordered", **unordered})
    return pd.DataFrame(rows)


def temperature_sweep(pairs: pd.DataFrame, cfg: DirectionConfig) -> pd.DataFrame:
    """Per temperature (Method A, trained-cosine predictor): strong matches and all-pair matches."""
    rows = []
    a = pairs[(pairs["method"] == "A") & pairs["mechanism"].str.startswith("softmax_T")]
    for (mode, scale, mech), g in a.groupby(["mode", "scale", "mechanism"], sort=False):
        strong = g["strong"].to_numpy()
        match = g["match_trained_cos"].to_numpy()
        rows.append(
            {
                "dataset": g["dataset"].iloc[0],
                "protocol": cfg.protocol,
                "mode": mode,
                "scale": scale,
                "temperature": float(mech.removeprefix("softmax_T")),
                "n_strong": int(strong.sum()),
                "strong_matches": int((strong & match).sum()),
                "n_all": len(g),
                "all_matches": int(match.sum()),
            }
        )
    return pd.DataFrame(rows).sort_values(["mode", "scale", "temperature"], ignore_index=True)


def goodhart_curves(pool: RewardPool, raw: dict[str, pd.DataFrame], cfg: DirectionConfig) -> pd.DataFrame:
    """δ-sweep hidden utility vs N (sweep "n") and vs σ_p at N_large (sweep "sigma"), mean and sd
    over the curve seeds, % change from the N_small (resp. largest-σ) point."""
    ev = raw["evals"]
    ev = ev[(ev["mechanism"] == "delta_sweep") & ev["seed"].isin(cfg.curve_seeds)]
    targets = list(pool.stakeholders.primary) if cfg.curve_targets is None else list(cfg.curve_targets)
    ev = ev[ev["target"].isin(targets)]
    by_n = ev[(ev["sigma_p"] == cfg.sigma_p) & ev["n_pairs"].isin(cfg.curve_ns)].assign(sweep="n")
    by_sigma = ev[(ev["n_pairs"] == cfg.n_large) & ev["sigma_p"].isin(cfg.sigma_sweep)].assign(sweep="sigma")
    keys = ["sweep", "mode", "scale", "target", "hidden", "n_pairs", "sigma_p"]
    stats = (
        pd.concat([by_n, by_sigma])
        .groupby(keys)["utility"]
        .agg(["mean", "std", "count"])
        .reset_index()
        .rename(columns={"std": "sd", "count": "n_seeds"})
    )
    first = (
        stats.sort_values(["n_pairs", "sigma_p"], ascending=[True, False])
        .groupby(["sweep", "mode", "scale", "target", "hidden"])["mean"]
        .transform("first")
    )
    stats["pct_change"] = 100.0 * (stats["mean"] - first) / first.abs()
    trained = _lookup_cos(raw["cosines"])
    stats["trained_cos"] = [
        trained.get((t, h), 1.0 if t == h else np.nan) for t, h in zip(stats["target"], stats["hidden"])
    ]
    return stats.assign(dataset=pool.dataset, protocol=cfg.protocol)


def cosine_table(pool: RewardPool, raw: dict[str, pd.DataFrame], geometry: pd.DataFrame) -> pd.DataFrame:
    """``cosines`` output: trained cosines joined with the raw pool geometry (primary pairs)."""
    cos = raw["cosines"]
    keep = [(a, b) for a, b in itertools.combinations(pool.stakeholders.primary, 2)]
    cos = cos[[(a, b) in keep for a, b in zip(cos["stakeholder_a"], cos["stakeholder_b"])]]
    return cos.merge(geometry.drop(columns=["raw_cos"]), on=["dataset", "stakeholder_a", "stakeholder_b"])
