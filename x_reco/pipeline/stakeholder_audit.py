"""Feed-level stakeholder audit (candidate-pipeline spec §15.3, §16 ``feed_stakeholder_audit``): served
requests re-ranked under many weight sets from their cached probabilities, scored by each stakeholder.

Per request and weight set, over the served feed (positions 0..n-1):

- predicted utility ``Û_k = Σ_pos Σ_a w^k_a p̂_a`` with the ranker's probabilities of the 18 discrete
  actions (reward spec §1.3 vectors, ``stakeholder_weights`` rows); an action without a head column
  contributes 0 and is listed in ``absent_actions``;
- on synthetic, the true utility ``U_k`` with the world's π̃ (``WorldOracle``) at the served position and
  the follow state at t, and the gap ``Û_k − U_k``;
- Jaccard@35, RBO (p 0.9) and Kendall τ against ``published`` on the same request; in-network share;
  author Gini (served posts per author, over the distinct authors of the request's scored pool, so an
  eligible author who got nothing counts as 0); expected negative actions per served post (``Σ_neg p̂``);
  small-author share (served posts whose author's follower count at t is strictly below the median over
  the distinct authors of the scored pool); ``author_gini_pooled``: served posts per author over all
  requests together.

p̂ of a retweet is its source post's (what Phoenix scored); π̃ is the served post's own. Means are per
request with a seeded 95 % percentile bootstrap over requests (``reward.stats.bootstrap_ci``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS, DISCRETE_ACTIONS, NEGATIVE_ACTIONS
from x_reco.common.plotting import figure_png, subplots
from x_reco.configs.weights import WeightSet, head_signal
from x_reco.data.synthetic.oracle import WorldOracle
from x_reco.pipeline.explain import gini, kendall_tau, rbo
from x_reco.pipeline.feed import FeedPipeline
from x_reco.pipeline.framework import FeedResult
from x_reco.pipeline.types import Candidates
from x_reco.reward.stats import bootstrap_ci

JACCARD_K = 35
_NEG = np.array([DISCRETE_ACTIONS.index(a) for a in NEGATIVE_ACTIONS])
# bt_weight_sets' default rows: the corrected protocol and its best-trained mode when present (§9 of the
# reward spec); parity / parity otherwise (what a parity-only bt_reward_models run holds).
BT_PROTOCOLS = ("corrected", "parity")
BT_MODES = ("converged", "fixed_steps", "parity")
FEED_METRICS = (
    "jaccard35",
    "rbo",
    "kendall_tau",
    "in_network_share",
    "author_gini",
    "neg_action_rate",
    "neg_action_rate_true",
    "small_author_share",
)


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """Tables (``feed_weightset_audit``, ``feed_weightset_requests``, ``feed_weightset_overlap``) and
    PNG figures keyed by file name."""

    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes]


def _first_present(preferred: Sequence[str], values: pd.Series) -> str:
    present = set(values.astype(str))
    for v in preferred:
        if v in present:
            return v
    return sorted(present)[0]


def bt_weight_sets(
    bt_runs: pd.DataFrame, loss: str = "bt", *, protocol: str | None = None, mode: str | None = None, version: str = ""
) -> dict[str, WeightSet]:
    """``{stakeholder: WeightSet "bt:<stakeholder>"}`` from ``bt_reward_models``' ``bt_runs`` (synthetic).

    Rows: ``loss``, ``purpose == "reward_model"``, the largest ``n_pairs``, and one protocol and mode
    (default: ``corrected`` before ``parity``, then ``converged`` > ``fixed_steps`` > ``parity``); the
    vector is the mean of ``w_00..w_17`` over seeds. Those columns are the learned weights over the 18
    discrete actions in ``DISCRETE_ACTIONS`` order (the synthetic pool's item features are the 18 action
    probabilities, ``data.item_features.synthetic_content_pool``), so ``WeightSet.from_actions`` puts
    ``w_i`` on the ranker signal of action i through the §9.2 aliases (``repost -> retweet``, the rest by
    name); ``dwell_time``/``long_dwell`` and the continuous signals get 0, and the default gates apply.
    ``sync_date`` records the rows used (``<protocol>/<mode>/<loss>/<seeds> seeds``, plus ``version``).
    """
    runs = bt_runs[bt_runs["loss"].astype(str) == loss]
    if "purpose" in runs:
        runs = runs[runs["purpose"].astype(str) == "reward_model"]
    if runs.empty:
        raise ValueError(f"bt_runs has no reward_model rows with loss {loss!r}")
    picked = {}
    for col, want, preferred in (("protocol", protocol, BT_PROTOCOLS), ("mode", mode, BT_MODES)):
        if col in runs:
            picked[col] = want or _first_present(preferred, runs[col])
            runs = runs[runs[col].astype(str) == picked[col]]
    if "n_pairs" in runs:
        runs = runs[runs["n_pairs"] == runs["n_pairs"].max()]
    if runs.empty:
        raise ValueError(f"bt_runs has no rows for {picked}")
    wcols = sorted(c for c in runs.columns if c.startswith("w_"))
    if len(wcols) != len(DISCRETE_ACTIONS):
        raise ValueError(f"BT weight sets need the 18 discrete actions (synthetic); bt_runs has {len(wcols)} weights")
    out = {}
    for name, g in runs.groupby("stakeholder", sort=True):
        w = g.sort_values("seed")[wcols].to_numpy(np.float64).mean(axis=0)
        tag = "/".join([*picked.values(), loss, f"{g['seed'].nunique()} seeds", *([version] if version else [])])
        source = f"bt_reward_models bt_runs ({tag}), mean over seeds; synthetic only"
        out[str(name)] = WeightSet.from_actions(f"bt:{name}", tag, dict(zip(DISCRETE_ACTIONS, w)), source=source)
    return out


def jaccard_at(a: Sequence[str], b: Sequence[str], k: int = JACCARD_K) -> float:
    """|A ∩ B| / |A ∪ B| of the first k posts (``explain.compare_feeds``' definition; 1 for two empty lists)."""
    sa, sb = {str(x) for x in a[:k]}, {str(x) for x in b[:k]}
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def resolve_weight_set(pipeline: FeedPipeline, weights: str | WeightSet) -> WeightSet:
    """A registry name or a WeightSet, masked as the pipeline masks its own (§13 ``mask_unobserved``)."""
    ws = weights if isinstance(weights, WeightSet) else WeightSet.named(weights)
    return ws.masked(pipeline.unobserved_signals) if pipeline.options.mask_unobserved else ws


def rerank_served(pipeline: FeedPipeline, results: Sequence[FeedResult], weights: WeightSet) -> list[Candidates]:
    """The served feed of every request under ``weights``: stages 5-9 over the cached scored pool (§15.2)."""
    scorer = pipeline.ranking_scorer(weights)
    return [pipeline.pipeline.rerank(r.query, r.scored, [scorer]).served for r in results]


def absent_actions(pipeline: FeedPipeline) -> tuple[str, ...]:
    """Discrete actions whose ranker signal the pipeline does not score (no head column or not in the
    rule set's signals): they contribute 0 to Û."""
    signals = set(pipeline.rules.signals) - set(pipeline.scorer.absent)
    return tuple(a for a in DISCRETE_ACTIONS if head_signal(a, ACTIONS) not in signals)


def action_probs(cands: Candidates, absent: Sequence[str] = ()) -> np.ndarray:
    """p̂ [n, 18] of the discrete actions from the cached signal probabilities (§9.2 aliases: ``repost``
    reads ``retweet``); ``absent`` actions and None (NaN) are 0."""
    names = tuple(cands.signal_names)
    p = np.zeros((len(cands), len(DISCRETE_ACTIONS)))
    for i, a in enumerate(DISCRETE_ACTIONS):
        s = head_signal(a, ACTIONS)
        if s in names and a not in absent:
            p[:, i] = np.nan_to_num(cands.probs[:, names.index(s)])
    return p


def stakeholder_matrix(stakeholder_weights: pd.DataFrame) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, W [K, 18]) from the ``stakeholder_weights`` rows; no rows unless the vectors are 18-d
    (real partitions weigh item features, not actions: their feeds get no utility columns here)."""
    wcols = sorted(c for c in stakeholder_weights.columns if c.startswith("w_"))
    if len(wcols) != len(DISCRETE_ACTIONS):
        return (), np.zeros((0, len(DISCRETE_ACTIONS)))
    return tuple(stakeholder_weights["stakeholder"].astype(str)), stakeholder_weights[wcols].to_numpy(np.float64)


def _pool_authors(result: FeedResult) -> tuple[np.ndarray, np.ndarray]:
    """Distinct authors of the scored pool and their follower counts at t."""
    authors, first = np.unique(result.scored["author_id"].astype(str), return_index=True)
    return authors, result.scored["author_followers_count"][first]


def _feed_row(
    result: FeedResult,
    served: Candidates,
    ref_ids: list[str],
    absent: Sequence[str],
    names: Sequence[str],
    w_kd: np.ndarray,
    oracle: WorldOracle | None,
) -> dict:
    """One request × weight set: utilities per stakeholder and the feed-level metrics."""
    ids = [str(p) for p in served["post_id"]]
    n, q = len(ids), result.query
    p_hat = action_probs(served, absent)
    row = {
        "served_ids": ",".join(ids),
        "feed_length": n,
        "jaccard35": jaccard_at(ref_ids, ids),
        "rbo": rbo(ref_ids[:JACCARD_K], ids[:JACCARD_K]),
    }
    row["kendall_tau"] = kendall_tau(ref_ids[:JACCARD_K], ids[:JACCARD_K])
    authors, followers = _pool_authors(result)
    mine = served["author_id"].astype(str)
    row["in_network_share"] = float(np.mean(served["in_network"] == 1)) if n else np.nan
    row["author_gini"] = gini([np.sum(mine == a) for a in authors])
    small = set(authors[followers < np.median(followers)]) if len(authors) else set()
    row["small_author_share"] = float(np.mean([a in small for a in mine])) if n else np.nan
    row["neg_action_rate"] = float(p_hat[:, _NEG].sum(axis=1).mean()) if n else np.nan
    row |= {f"predicted_{k}": float(v) for k, v in zip(names, w_kd @ p_hat.sum(axis=0), strict=True)}
    if oracle is not None:
        followed = np.array([a in q.followed_ids for a in mine], dtype=bool)
        true = oracle.probs([q.user_id] * n, ids, followed, np.arange(n))[:, : len(DISCRETE_ACTIONS)]
        row["neg_action_rate_true"] = float(true[:, _NEG].sum(axis=1).mean()) if n else np.nan
        for k, v in zip(names, w_kd @ true.sum(axis=0), strict=True):
            row[f"true_{k}"] = float(v)
            row[f"gap_{k}"] = row[f"predicted_{k}"] - float(v)
    return row


def _ci(values: pd.Series, n_boot: int, seed: int) -> tuple[float, float, float]:
    v = values.to_numpy(np.float64)
    v = v[np.isfinite(v)]
    mean = float(v.mean()) if len(v) else np.nan
    return (mean, *bootstrap_ci(v, n_boot, seed))


def _summary(
    per_request: pd.DataFrame, reference: pd.DataFrame, labels, names, oracle, absent, n_boot: int, seed: int, pooled
) -> pd.DataFrame:
    """One row per weight set × stakeholder (or per set without stakeholders) with means and 95 % CIs,
    and the paired difference to ``published`` on the same requests (``*_vs_published``: the CI of a
    difference between sets, which the two sets' own intervals overstate)."""
    rows = []
    metrics = [m for m in FEED_METRICS if m in per_request]
    for label in labels:
        g = per_request[per_request["weight_set"] == label]
        feed = {"requests": len(g), "feed_length": float(g["feed_length"].mean())}
        for m in metrics:
            feed[m], feed[f"{m}_lo"], feed[f"{m}_hi"] = _ci(g[m], n_boot, seed)
        feed |= {"author_gini_pooled": pooled[label], "absent_actions": ",".join(absent)}
        for k in names or (None,):
            row = {"weight_set": label, "stakeholder": k}
            kinds = ("predicted", "true", "gap") if oracle is not None else ("predicted",)
            for kind in kinds if k is not None else ():
                col = f"{kind}_{k}"
                row[f"{kind}_utility"], row[f"{kind}_utility_lo"], row[f"{kind}_utility_hi"] = _ci(g[col], n_boot, seed)
                if kind != "gap":
                    diff = pd.Series(g[col].to_numpy() - reference[col].to_numpy())
                    name = f"{kind}_utility_vs_published"
                    row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _ci(diff, n_boot, seed)
            rows.append(row | feed)
    return pd.DataFrame(rows)


def stakeholder_audit(
    pipeline: FeedPipeline,
    results: list[FeedResult],
    weight_sets: Sequence[str | WeightSet],
    stakeholder_weights: pd.DataFrame,
    oracle: WorldOracle | None = None,
    seed: int = 0,
    n_boot: int = 1000,
) -> AuditResult:
    """Re-rank every request's scored pool under each weight set with no model call and audit the feeds.

    Args:
      pipeline, results: the pipeline that served ``results`` (its scored pools carry the probabilities).
      weight_sets: registry names or WeightSets (``bt_weight_sets``); rows are keyed by ``repr`` (deduplicated).
      stakeholder_weights: rows ``stakeholder, w_00..w_17`` (reward spec §1.3; other widths: no utilities).
      oracle: the synthetic world's model (true utility and gap); None elsewhere.
      seed, n_boot: the bootstrap over requests (same seed, same intervals).
    """
    if not results:
        raise ValueError("stakeholder_audit needs at least one served request")
    calls = pipeline.scorer.calls
    sets = list({repr(w): w for w in (resolve_weight_set(pipeline, s) for s in weight_sets)}.values())
    reference = resolve_weight_set(pipeline, "published")
    feeds = {repr(w): rerank_served(pipeline, results, w) for w in [reference, *sets]}
    assert pipeline.scorer.calls == calls, "the audit must not call the model (§15.2)"
    absent = absent_actions(pipeline)
    names, w_kd = stakeholder_matrix(stakeholder_weights)
    ref = feeds[repr(reference)]
    rows = []
    for w in sets:
        for i, (result, served) in enumerate(zip(results, feeds[repr(w)], strict=True)):
            req = result.query.request
            head = {"weight_set": repr(w), "request": i, "request_id": req.request_id, "user_id": req.user_id}
            head |= {"t": req.t, "page": req.page}
            rows.append(head | _feed_row(result, served, list(ref[i]["post_id"]), absent, names, w_kd, oracle))
    per_request = pd.DataFrame(rows)
    ref_rows = [
        _feed_row(result, ref[i], list(ref[i]["post_id"]), absent, names, w_kd, oracle)
        for i, result in enumerate(results)
    ]
    labels = [repr(w) for w in sets]
    pooled = {label: _pooled_gini(results, feeds[label]) for label in labels}
    summary = _summary(per_request, pd.DataFrame(ref_rows), labels, names, oracle, absent, n_boot, seed, pooled)
    overlap = overlap_matrix(labels, feeds)
    figures = {"feed_audit_overlap.png": overlap_png(overlap)}
    if names:
        figures["feed_audit_utility.png"] = utility_png(summary, labels, names, oracle is not None)
    if names and oracle is not None:
        figures["feed_audit_predicted_vs_true.png"] = predicted_vs_true_png(summary, names)
    tables = {"feed_weightset_audit": summary, "feed_weightset_requests": per_request}
    return AuditResult(tables | {"feed_weightset_overlap": overlap}, figures)


def _pooled_gini(results: Sequence[FeedResult], served: Sequence[Candidates]) -> float:
    """Author Gini of served posts pooled over all requests, over every author of any scored pool."""
    authors = np.unique(np.concatenate([r.scored["author_id"].astype(str) for r in results] or [np.zeros(0, str)]))
    counts = pd.Series(np.concatenate([s["author_id"].astype(str) for s in served] or [np.zeros(0, str)]))
    return gini(counts.value_counts().reindex(authors, fill_value=0).to_numpy())


def overlap_matrix(labels: Sequence[str], feeds: dict[str, list[Candidates]]) -> pd.DataFrame:
    """Mean Jaccard@35 over requests between every pair of weight sets (rows and columns: ``labels``)."""
    ids = {k: [list(map(str, s["post_id"])) for s in feeds[k]] for k in labels}
    m = np.ones((len(labels), len(labels)))
    for i, a in enumerate(labels):
        for j in range(i + 1, len(labels)):
            pairs = zip(ids[a], ids[labels[j]], strict=True)
            m[i, j] = m[j, i] = float(np.mean([jaccard_at(x, y) for x, y in pairs])) if ids[a] else np.nan
    return pd.DataFrame(m, index=pd.Index(labels, name="weight_set"), columns=list(labels))


# -- figures -------------------------------------------------------------------------------------


def _err(df: pd.DataFrame, col: str) -> np.ndarray:
    mean = df[col].to_numpy(np.float64)
    return np.nan_to_num(np.abs(np.stack([mean - df[f"{col}_lo"], df[f"{col}_hi"] - mean])))


def utility_png(summary: pd.DataFrame, labels: Sequence[str], names: Sequence[str], true: bool) -> bytes:
    """Bars of mean utility per request for each stakeholder × weight set, 95 % bootstrap CI whiskers."""
    fig, axes = subplots(1, len(names), figsize=(3.2 * len(names) + 1, 3.8), squeeze=False)
    x = np.arange(len(labels))
    for ax, k in zip(axes[0], names, strict=True):
        rows = summary[summary["stakeholder"] == k].set_index("weight_set").loc[list(labels)]
        kinds = ("predicted", "true") if true else ("predicted",)
        width = 0.8 / len(kinds)
        for j, kind in enumerate(kinds):
            col = f"{kind}_utility"
            ax.bar(x + (j - (len(kinds) - 1) / 2) * width, rows[col], width, yerr=_err(rows, col), label=kind)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xticks(x, labels, rotation=70, fontsize=6)
        ax.set_title(f"stakeholder {k}")
        ax.set_ylabel("utility per feed")
        ax.legend(fontsize=6)
    return figure_png(fig)


def predicted_vs_true_png(summary: pd.DataFrame, names: Sequence[str]) -> bytes:
    """Mean predicted vs true utility per weight set, one colour per stakeholder, with the diagonal."""
    fig, ax = subplots(figsize=(4.8, 4.2))
    for k in names:
        rows = summary[summary["stakeholder"] == k]
        ax.errorbar(
            rows["true_utility"],
            rows["predicted_utility"],
            xerr=_err(rows, "true_utility"),
            yerr=_err(rows, "predicted_utility"),
            fmt="o",
            ms=3,
            label=k,
        )
    lims = np.array([ax.get_xlim(), ax.get_ylim()])
    lo, hi = lims.min(), lims.max()
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.5)
    ax.set_xlabel("true utility (world oracle)")
    ax.set_ylabel("predicted utility (ranker)")
    ax.set_title("predicted vs true, per weight set")
    ax.legend(fontsize=7)
    return figure_png(fig)


def overlap_png(overlap: pd.DataFrame) -> bytes:
    """Heatmap of the mean Jaccard@35 between every pair of weight sets."""
    n = len(overlap)
    fig, ax = subplots(figsize=(1.0 + 0.55 * n + 2, 0.55 * n + 2))
    im = ax.imshow(overlap.to_numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(n), overlap.columns, rotation=70, fontsize=6)
    ax.set_yticks(range(n), overlap.index, fontsize=6)
    for i in range(n):
        for j in range(n):
            v = overlap.iat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="k" if v > 0.6 else "w")
    fig.colorbar(im, ax=ax, label="Jaccard@35")
    ax.set_title("served-feed overlap")
    return figure_png(fig)
