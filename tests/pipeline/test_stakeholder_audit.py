"""The feed-level stakeholder audit (§15.3, §16 ``feed_stakeholder_audit``) re-ranks served requests under
many weight sets without a model call, and its utilities are what the definitions say: Û from the cached
probabilities of the served posts, U from the world's own π̃ at the served position and the follow state
at t. Untrained models on the tiny world: the numbers are arbitrary, the bookkeeping is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from tests.pipeline.test_feed import _pipeline, _requests, _synthetic
from x_reco.common.actions import DISCRETE_ACTIONS
from x_reco.data.synthetic.config import ARCHETYPES, TOPICS
from x_reco.data.synthetic.engagement import FOLLOW_BOOST, POSITION_PENALTY
from x_reco.data.synthetic.oracle import WorldOracle
from x_reco.data.synthetic.targets import LATENT_ACTIONS, taste_anchors
from x_reco.pipeline.stakeholder_audit import bt_weight_sets, gini, stakeholder_audit
from x_reco.reward.stakeholders import SYNTHETIC_ALPHAS, alpha_weights, synthetic_stakeholders, weights_frame

SETS = ["published", "sync-2026-08-12", "engagement-only", "stakeholder:society", "stakeholder:user"]
PUBLISHED = "sync-2026-09-24@2026-09-24"
WCOLS = [f"w_{i:02d}" for i in range(len(DISCRETE_ACTIONS))]


def _bt_runs() -> pd.DataFrame:
    """A bt_runs table as bt_reward_models writes it: two protocols, modes, losses, seeds, one stray purpose."""
    rng = np.random.default_rng(3)
    rows = []
    for protocol, modes in (("parity", ("parity",)), ("corrected", ("parity", "converged"))):
        for mode in modes:
            for stakeholder in ("user", "society"):
                for loss in ("bt", "margin_m1"):
                    for seed in (0, 1):
                        row = {"stakeholder": stakeholder, "loss": loss, "mode": mode, "seed": seed}
                        row |= {"protocol": protocol, "purpose": "reward_model", "n_pairs": 2500}
                        rows.append(row | dict(zip(WCOLS, rng.normal(size=len(WCOLS)))))
    stray = rows[0] | {"purpose": "direction"} | dict.fromkeys(WCOLS, 99.0)
    return pd.DataFrame(rows + [stray])


@pytest.fixture(scope="module")
def served():
    pipe = _pipeline(variant="f32", prefix_cache_slots=0)  # the cheapest to compile; the audit reads probabilities
    results = [pipe.serve(pipe.request(u, t)) for u, t in _requests(5)]
    return pipe, results, WorldOracle.from_manifest(_synthetic()[0].manifest)


@pytest.fixture(scope="module")
def audit(served):
    pipe, results, oracle = served
    calls = pipe.scorer.calls
    sets = [*SETS, bt_weight_sets(_bt_runs())["society"]]
    out = stakeholder_audit(pipe, results, sets, weights_frame(synthetic_stakeholders()), oracle, n_boot=200)
    return out, pipe.scorer.calls - calls


def test_six_weight_sets_cost_no_model_call(audit):
    out, extra_calls = audit
    assert extra_calls == 0
    table = out.tables["feed_weightset_audit"]
    assert table["weight_set"].nunique() == 6 and len(table) == 6 * len(SYNTHETIC_ALPHAS)
    assert (table["requests"] == 5).all()
    assert len(out.tables["feed_weightset_requests"]) == 6 * 5


def test_published_reproduces_the_served_feeds_and_overlaps_itself_fully(served, audit):
    _, results, _ = served
    out, _ = audit
    per = out.tables["feed_weightset_requests"]
    mine = per[per["weight_set"] == PUBLISHED].sort_values("request")
    assert list(mine["served_ids"]) == [",".join(r.served["post_id"]) for r in results]
    table = out.tables["feed_weightset_audit"].set_index("weight_set")
    assert (table.loc[PUBLISHED, ["jaccard35", "rbo", "kendall_tau"]] == 1.0).all(axis=None)
    paired = ["predicted_utility_vs_published", "true_utility_vs_published"]
    assert (table.loc[PUBLISHED, paired] == 0.0).all(axis=None)  # a set against itself: no difference
    other = table.loc["stakeholder:society@alpha=4.0"]
    np.testing.assert_allclose(  # the paired mean difference is the difference of the means
        other["true_utility_vs_published"].to_numpy(),
        other["true_utility"].to_numpy() - table.loc[PUBLISHED, "true_utility"].to_numpy(),
        atol=1e-9,
    )
    assert table.loc["engagement-only@2026-09-24", "jaccard35"].iloc[0] < 1.0  # a set that does differ
    overlap = out.tables["feed_weightset_overlap"]
    np.testing.assert_array_equal(overlap.to_numpy(), overlap.to_numpy().T)
    np.testing.assert_array_equal(np.diag(overlap), 1.0)
    np.testing.assert_allclose(overlap.loc[PUBLISHED].to_numpy(), table["jaccard35"].iloc[::3].to_numpy())
    assert all(png.startswith(b"\x89PNG") for png in out.figures.values()) and len(out.figures) == 3


def test_predicted_utility_equals_a_hand_sum_over_the_served_posts(served, audit):
    _, results, _ = served
    out, _ = audit
    per = out.tables["feed_weightset_requests"]
    rows = per[per["weight_set"] == "stakeholder:society@alpha=4.0"].sort_values("request")
    w = alpha_weights(SYNTHETIC_ALPHAS["society"])
    alias = {"repost": "retweet"}  # §9.2: the only renamed discrete action
    for (_, row), result in zip(rows.iterrows(), results, strict=True):
        pool = result.scored
        at = {p: i for i, p in enumerate(pool["post_id"])}
        idx = [at[p] for p in row["served_ids"].split(",")]
        cols = [pool.signal_names.index(alias.get(a, a)) for a in DISCRETE_ACTIONS]
        want = float((pool.probs[np.ix_(idx, cols)] * w).sum())
        assert row["predicted_society"] == pytest.approx(want, rel=1e-6, abs=1e-6)
    summary = out.tables["feed_weightset_audit"]
    mean = summary.loc[
        (summary["weight_set"] == "stakeholder:society@alpha=4.0") & (summary["stakeholder"] == "society"),
        "predicted_utility",
    ]
    assert mean.item() == pytest.approx(rows["predicted_society"].mean())


def test_true_utility_of_a_one_action_stakeholder_is_the_worlds_favorite_probability(served):
    pipe, results, oracle = served
    frame = pd.DataFrame([{"stakeholder": "fav", **dict.fromkeys(WCOLS, 0.0), "w_00": 1.0}])
    out = stakeholder_audit(pipe, results, ["published"], frame, oracle, n_boot=50)
    got = out.tables["feed_weightset_requests"].sort_values("request")["true_fav"].to_numpy()
    # π̃_favorite by the §9.4 formula from the truth tables, not through the oracle's code.
    raw = _synthetic()[0]
    users = raw.truth["users"].set_index("user_id")
    posts = raw.truth["posts"].set_index("post_id")
    base = raw.manifest["calibration"]["base_logits"]
    fav = LATENT_ACTIONS[0]
    assert fav == "favorite"
    for result, value in zip(results, got, strict=True):
        q, ids = result.query, list(result.served["post_id"])
        u = users.loc[q.user_id]
        arch = ARCHETYPES.index(u["archetype"])
        total = 0.0
        for pos, (post, author) in enumerate(zip(ids, result.served["author_id"], strict=True)):
            topic = posts.loc[post, "topic"]
            taste = u[f"theta_{topic}"] - taste_anchors()[arch, TOPICS.index(topic)]
            affinity = taste + posts.loc[post, "q_p"] + FOLLOW_BOOST * (author in q.followed_ids)
            logit = base[u["archetype"]][topic][fav] + u["b_u"] + affinity - POSITION_PENALTY * pos
            total += special.expit(logit)
        assert value == pytest.approx(total, rel=1e-9)
    assert any(any(a in r.query.followed_ids for a in r.served["author_id"]) for r in results)
    row = out.tables["feed_weightset_audit"].iloc[0]
    assert row["gap_utility"] == pytest.approx(row["predicted_utility"] - row["true_utility"])


def test_bootstrap_intervals_are_deterministic_per_seed(served, audit):
    pipe, results, oracle = served
    frame = weights_frame(synthetic_stakeholders())
    sets = [*SETS, bt_weight_sets(_bt_runs())["society"]]
    first = audit[0].tables["feed_weightset_audit"]
    again = stakeholder_audit(pipe, results, sets, frame, oracle, seed=0, n_boot=200).tables
    pd.testing.assert_frame_equal(again["feed_weightset_audit"], first)
    other = stakeholder_audit(pipe, results, sets, frame, oracle, seed=1, n_boot=200).tables["feed_weightset_audit"]
    np.testing.assert_array_equal(other["predicted_utility"], first["predicted_utility"])
    assert not np.array_equal(other["predicted_utility_lo"], first["predicted_utility_lo"])
    lo, mid, hi = (first[f"predicted_utility{s}"] for s in ("_lo", "", "_hi"))
    assert ((lo <= mid) & (mid <= hi)).all()


def test_feed_level_metrics_without_stakeholder_actions_or_oracle(served):
    pipe, results, _ = served
    frame = pd.DataFrame([{"stakeholder": "genre", **{f"w_{i:02d}": 1.0 for i in range(19)}}])  # item features
    table = stakeholder_audit(pipe, results, ["published"], frame, None, n_boot=50).tables["feed_weightset_audit"]
    assert len(table) == 1 and table["stakeholder"].isna().all()
    assert not any(c.startswith(("predicted", "true", "gap")) for c in table.columns)
    assert 0 <= table["in_network_share"].item() <= 1 and 0 <= table["small_author_share"].item() <= 1


def test_bt_weight_sets_average_seeds_of_one_protocol_mode_and_loss():
    runs = _bt_runs()
    sets = bt_weight_sets(runs)
    assert sorted(sets) == ["society", "user"] and repr(sets["user"]).startswith("bt:user@corrected/converged/bt")

    def mean(protocol, mode, loss, who="user"):
        rows = runs[
            (runs["protocol"] == protocol)
            & (runs["mode"] == mode)
            & (runs["loss"] == loss)
            & (runs["stakeholder"] == who)
            & (runs["purpose"] == "reward_model")
        ]
        assert len(rows) == 2
        return rows[WCOLS].to_numpy().mean(axis=0)

    w = mean("corrected", "converged", "bt")
    ws = sets["user"]
    assert ws.weight("favorite") == pytest.approx(w[0]) and ws.weight("retweet") == pytest.approx(w[2])
    assert ws.weight("report") == pytest.approx(w[17]) and ws.weight("long_dwell") == 0.0
    parity = bt_weight_sets(runs, protocol="parity", mode="parity")["society"]
    assert parity.weight("favorite") == pytest.approx(mean("parity", "parity", "bt", "society")[0])
    margin = bt_weight_sets(runs, loss="margin_m1")["user"]
    assert margin.weight("share") == pytest.approx(mean("corrected", "converged", "margin_m1")[7])
    with pytest.raises(ValueError, match="18 discrete actions"):
        bt_weight_sets(runs.assign(w_18=0.0))
    with pytest.raises(ValueError, match="no reward_model rows"):
        bt_weight_sets(runs, loss="hinge_m1")


def test_gini():
    assert gini([2, 2, 2]) == 0.0 and gini([]) == 0.0 and gini([0, 0]) == 0.0
    assert gini([0, 0, 3]) == pytest.approx(2 / 3)
