"""Weight sets (candidate-pipeline spec §10): every sync pinned to §10.1, P/N/T to §10.2, the old callers'
numbers unchanged, and the a19 dwell column never weighted per second (§9.2: the old
``dwell_time_seconds`` key matched no column and silently scored 0)."""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import pytest

from x_reco.common.actions import ACTIONS, DISCRETE_ACTIONS
from x_reco.configs import weights as W
from x_reco.configs.weights import Boosts, Gates, WeightSet
from x_reco.pipeline.rules import AUG_2026, JAN_2026, MAY_2026, RULE_SETS
from x_reco.reward.stakeholders import SYNTHETIC_ALPHAS, alpha_weights

# §10.1, copied cell by cell (upstream names; "—" in the extract = the 08-12 value).
SYNC_FIXTURE = {
    "sync-2026-08-12": {
        "sync_date": "2026-08-12",
        "source": "xai-org/x-algorithm@625f9e30:home-mixer/params/param.rs",
        "probability": {
            "favorite": 0.5, "reply": 5.0, "retweet": 1.0,
            "photo_expand": 0.05, "video_open": 0.05,
            "click": 0.4, "open_link": 0.2, "profile_click": 0.0,
            "vqv": 0.05,
            "share": 2.0, "share_via_dm": 5.0, "share_via_copy_link": 20.0,
            "dwell": 0.0,
            "quote": 5.0, "quoted_click": 0.05, "quoted_vqv": 0.0,
            "follow_author": 4.0,
            "post_unexplored": 0.02,
            "active_secs_5m_residual_norm": 0.0,
            "not_interested": -43.2,
            "block_author": -31.2, "mute_author": -58.8, "report": -234.0,
            "not_dwelled": -0.02,
            "long_dwell": 0.0,
        },
        "continuous": {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.0},
        "boosts": Boosts(mutual_follow_reply=15.0, dwell=0.0),
    },
    "sync-2026-09-24": {
        "sync_date": "2026-09-24",
        "source": "tang-vu/x-algorithm-playbook@8b25829:home-mixer/params/param.rs (mirror of the 2026-09-24 sync)",
        "probability": {
            "favorite": 0.5, "reply": 5.0, "retweet": 1.0,
            "photo_expand": 0.05, "video_open": 0.07,
            "click": 0.4, "open_link": 0.2, "profile_click": 0.0,
            "vqv": 0.0,
            "share": 2.0, "share_via_dm": 5.0, "share_via_copy_link": 20.0,
            "dwell": 0.05,
            "quote": 5.0, "quoted_click": 0.05, "quoted_vqv": 0.0,
            "follow_author": 4.0,
            "post_unexplored": 0.02,
            "active_secs_5m_residual_norm": 0.0,
            "not_interested": -43.2,
            "block_author": -31.2, "mute_author": -58.8, "report": -234.0,
            "not_dwelled": -0.02,
            "long_dwell": 0.0,
        },
        "continuous": {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.0},
        "boosts": Boosts(mutual_follow_reply=15.0, dwell=0.0),
    },
    "sync-2026-10-07": {
        "sync_date": "2026-10-07",
        "source": "teddytennant/x-algorithm@55f1d7a4:home-mixer/params/param.rs",
        "probability": {
            "favorite": 0.5, "reply": 5.0, "retweet": 1.0,
            "photo_expand": 0.05, "video_open": 0.07,
            "click": 0.3, "open_link": 0.2, "profile_click": 0.0,
            "vqv": 0.0,
            "share": 2.0, "share_via_dm": 5.0, "share_via_copy_link": 20.0,
            "dwell": 0.05,
            "quote": 5.0, "quoted_click": 0.05, "quoted_vqv": 0.0,
            "follow_author": 4.0,
            "post_unexplored": 0.015,
            "active_secs_5m_residual_norm": 0.0,
            "not_interested": -47.52,
            "block_author": -31.2, "mute_author": -58.8, "report": -234.0,
            "not_dwelled": -0.02,
            "long_dwell": 0.0,
        },
        "continuous": {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.4},
        "boosts": Boosts(mutual_follow_reply=15.0, dwell=0.0),
    },
}  # fmt: skip

# §10.2: (P, N, T) per weight set x rule set.
PNT_FIXTURE = {
    ("sync-2026-08-12", "aug-2026"): (43.32, 367.22, 410.54),
    ("sync-2026-08-12", "may-2026"): (43.05, 367.22, 410.27),
    ("sync-2026-08-12", "jan-2026"): (43.05, 367.20, 410.25),
    ("sync-2026-09-24", "aug-2026"): (43.34, 367.22, 410.56),
    ("sync-2026-09-24", "may-2026"): (43.05, 367.22, 410.27),
    ("sync-2026-09-24", "jan-2026"): (43.05, 367.20, 410.25),
    ("sync-2026-10-07", "aug-2026"): (43.235, 371.54, 414.775),
    ("sync-2026-10-07", "may-2026"): (42.95, 371.54, 414.49),
    ("sync-2026-10-07", "jan-2026"): (42.95, 371.52, 414.47),
    ("engagement-only", "aug-2026"): (43.34, 0.0, 43.34),
    ("engagement-only", "may-2026"): (43.05, 0.0, 43.05),
    ("engagement-only", "jan-2026"): (43.05, 0.0, 43.05),
}

# Today's (pre-§10) numbers of WeightSet.published() / engagement_only() over the 19 ACTIONS columns.
OLD_PUBLISHED_VECTOR = [
    0.5, 5.0, 1.0, 0.05, 0.4, 0.0, 0.0, 2.0, 5.0, 20.0, 0.05, 5.0, 0.05, 4.0, -43.2, -31.2, -58.8, -234.0, 0.0,
]  # fmt: skip
OLD_ENGAGEMENT_ONLY_VECTOR = [
    0.5, 5.0, 1.0, 0.05, 0.4, 0.0, 0.0, 2.0, 5.0, 20.0, 0.05, 5.0, 0.05, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0,
]  # fmt: skip

X22_HEAD = (
    "favorite", "reply", "repost", "photo_expand", "click", "profile_click", "vqv", "share", "share_via_dm",
    "share_via_copy_link", "dwell", "quote", "quoted_click", "quoted_vqv", "follow_author", "not_interested",
    "block_author", "mute_author", "report", "not_dwelled", "dwell_time", "click_dwell_time",
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(SYNC_FIXTURE))
def test_sync_sets_pinned_field_by_field(name):
    ws, want = WeightSet.named(name), SYNC_FIXTURE[name]
    assert ws.name == name and ws.sync_date == want["sync_date"] and ws.source == want["source"]
    assert dict(ws.probability) == want["probability"]
    assert dict(ws.continuous) == want["continuous"]
    assert ws.boosts == want["boosts"]
    assert ws.gates == Gates(min_video_duration_ms=10_000, quoted_vqv_duration_check=False)
    assert ws.gates.post_unexplored_in_network_only
    assert ws.masked_signals == ()
    assert repr(ws) == f"{name}@{want['sync_date']}"


def test_published_is_the_september_sync():
    pub, sep = WeightSet.published(), WeightSet.named("sync-2026-09-24")
    assert WeightSet.named("published") == pub
    assert pub == sep and repr(pub) == "sync-2026-09-24@2026-09-24" and pub.sync_date == "2026-09-24"
    assert (pub.probability, pub.continuous, pub.boosts, pub.gates, pub.source) == (
        sep.probability,
        sep.continuous,
        sep.boosts,
        sep.gates,
        sep.source,
    )


@pytest.mark.parametrize(("name", "rules"), sorted(PNT_FIXTURE))
def test_pnt_matches_table(name, rules):
    p, n, t = WeightSet.named(name).pnt(RULE_SETS[rules])
    np.testing.assert_allclose((p, n, t), PNT_FIXTURE[name, rules], rtol=0, atol=1e-12)


def test_pnt_ignores_continuous_and_signals_outside_the_rules():
    ws = WeightSet("x", "0", {"favorite": 2.0, "quoted_vqv": -7.0, "video_open": 3.0}, {"cont_dwell_time": -9.0})
    assert ws.pnt(JAN_2026) == (2.0, 0.0, 2.0)
    assert ws.pnt(MAY_2026) == (2.0, 7.0, 9.0)
    assert ws.pnt(AUG_2026) == (5.0, 7.0, 12.0)


def test_callers_numbers_unchanged():
    pub, eng = WeightSet.published(), WeightSet.engagement_only()
    np.testing.assert_array_equal(pub.vector(ACTIONS), np.float32(OLD_PUBLISHED_VECTOR))
    np.testing.assert_array_equal(pub.vector(), np.float32(OLD_PUBLISHED_VECTOR))
    np.testing.assert_array_equal(eng.vector(ACTIONS), np.float32(OLD_ENGAGEMENT_ONLY_VECTOR))
    assert pub.vector().dtype == np.float32
    assert dict(pub.weights) == dict(zip(ACTIONS, OLD_PUBLISHED_VECTOR, strict=True))
    assert dict(eng.weights) == dict(zip(ACTIONS, OLD_ENGAGEMENT_ONLY_VECTOR, strict=True))
    assert "dwell_time_seconds" not in pub.probability and "dwell_time_seconds" not in pub.continuous
    assert WeightSet.named("engagement-only") == eng and repr(eng) == "engagement-only@2026-09-24"
    assert all(w >= 0 for w in (*eng.probability.values(), *eng.continuous.values()))


def test_custom_sets_as_callers_build_them():
    click = WeightSet("click-only", "diagnostic", MappingProxyType({"click": 1.0}))
    assert click.vector().tolist() == [1.0 if a == "click" else 0.0 for a in ACTIONS]
    assert WeightSet.from_actions("click-only", "diagnostic", {"click": 1.0}) == click
    assert WeightSet("zero", "0", MappingProxyType({})).vector().tolist() == [0.0] * len(ACTIONS)
    assert WeightSet.from_actions("r", "0", {"repost": 2.0}).probability == {"retweet": 2.0}
    with pytest.raises(ValueError, match="repost"):
        WeightSet("bad", "0", {"repost": 1.0})  # x-reco name where an upstream one is due
    with pytest.raises(ValueError, match="dwell_time_seconds"):
        WeightSet("bad", "0", {}, {"dwell_time_seconds": 0.004})


def test_a19_and_x22_columns():
    a19 = W.signal_columns(ACTIONS)
    assert a19["retweet"] == 2 and a19["long_dwell"] == 18 and a19["favorite"] == 0
    for absent in ("cont_dwell_time", "cont_click_dwell_time", "quoted_vqv", "not_dwelled", "video_open"):
        assert a19[absent] is None
    x22 = WeightSet.published().signal_columns(X22_HEAD)
    assert x22["cont_dwell_time"] == 20 and x22["cont_click_dwell_time"] == 21 and x22["long_dwell"] is None
    assert x22["quoted_vqv"] == 13 and x22["not_dwelled"] == 19 and x22["retweet"] == 2
    # a probability is never weighted per second: a19 dwell_time -> long_dwell (0); x22 -> 0.004 per s
    oct7 = WeightSet.named("sync-2026-10-07")
    assert oct7.vector(ACTIONS)[18] == 0.0
    v = oct7.vector(X22_HEAD)
    assert v[20] == np.float32(0.004) and v[21] == np.float32(0.4) and v[19] == np.float32(-0.02)


def test_stakeholder_sets_agree_with_reward_alphas():
    assert dict(W.STAKEHOLDER_ALPHAS) == SYNTHETIC_ALPHAS
    for k, alpha in SYNTHETIC_ALPHAS.items():
        ws = WeightSet.named(f"stakeholder:{k}")
        assert repr(ws) == f"stakeholder:{k}@alpha={alpha}" and ws.boosts == Boosts()
        np.testing.assert_array_equal(ws.vector(DISCRETE_ACTIONS), alpha_weights(alpha).astype(np.float32))
        assert ws.pnt(AUG_2026) == (5.0, 4 * alpha, 5.0 + 4 * alpha)
    with pytest.raises(ValueError, match="advertiser"):
        WeightSet.named("stakeholder:advertiser")


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match=r"unknown weight set 'nope'.*sync-2026-08-12.*engagement-only.*file:"):
        WeightSet.named("nope")


def test_masked_zeroes_and_records():
    pub = WeightSet.published()
    m = pub.masked(["not_interested", "cont_dwell_time"]).masked(["report"])
    assert m.masked_signals == ("cont_dwell_time", "not_interested", "report")
    assert m.probability["not_interested"] == 0.0 and m.continuous["cont_dwell_time"] == 0.0
    assert m.probability["favorite"] == 0.5 and pub.probability["not_interested"] == -43.2
    np.testing.assert_allclose(m.pnt(JAN_2026), (43.05, 90.0, 133.05), rtol=0, atol=1e-12)
    assert repr(m) == repr(pub)
    with pytest.raises(ValueError, match="repost"):
        pub.masked(["repost"])


def test_file_sets_toml_and_json(tmp_path):
    toml = tmp_path / "w.toml"
    toml.write_text(
        'name = "mine"\nsync_date = "2026-11-01"\n[probability]\nfavorite = 1.0\nreport = -2\n'
        "[continuous]\ncont_dwell_time = 0.5\n[boosts]\nmutual_follow_reply = 3.0\n"
        "[gates]\nquoted_vqv_duration_check = true\n"
    )
    ws = WeightSet.named(f"file:{toml}")
    assert repr(ws) == "mine@2026-11-01" and ws.source == f"file:{toml}"
    assert dict(ws.probability) == {"favorite": 1.0, "report": -2.0} and ws.continuous == {"cont_dwell_time": 0.5}
    assert ws.boosts == Boosts(3.0, 0.0) and ws.gates == Gates(quoted_vqv_duration_check=True)
    assert ws.pnt(JAN_2026) == (1.0, 2.0, 3.0)
    js = tmp_path / "w.json"
    js.write_text(json.dumps({"sync_date": "d", "probability": {"reply": 5}}))
    assert WeightSet.from_file(js).probability == {"reply": 5.0} and WeightSet.from_file(js).name == f"file:{js}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"probability": {"favorite": 1.0}}, "sync_date"),
        ({"sync_date": "d"}, "probability"),
        ({"sync_date": "d", "probability": {"repost": 1.0}}, "probability.repost"),
        ({"sync_date": "d", "probability": {"favorite": "high"}}, "probability.favorite"),
        ({"sync_date": "d", "probability": {"favorite": True}}, "probability.favorite"),
        ({"sync_date": "d", "probability": {}, "continuous": {"dwell_time_seconds": 0.004}}, "continuous.dwell"),
        ({"sync_date": "d", "probability": {}, "boosts": {"reply": 15}}, "boosts.reply"),
        ({"sync_date": "d", "probability": {}, "gates": {"quoted_vqv_duration_check": 1}}, "gates.quoted_vqv"),
        ({"sync_date": "d", "probability": {}, "weights": {}}, "weights"),
        ({"sync_date": 3, "probability": {}}, "sync_date"),
    ],
)
def test_bad_file_names_file_and_field(tmp_path, body, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=str(path)) as e:
        WeightSet.from_file(path)
    assert field in str(e.value)


def test_bad_file_format(tmp_path):
    (tmp_path / "w.yaml").write_text("x: 1")
    with pytest.raises(ValueError, match="toml or .json"):
        WeightSet.named(f"file:{tmp_path / 'w.yaml'}")
    (tmp_path / "w.toml").write_text("not = = toml")
    with pytest.raises(ValueError, match="w.toml: cannot read"):
        WeightSet.named(f"file:{tmp_path / 'w.toml'}")
    with pytest.raises(ValueError, match="missing.toml: cannot read"):
        WeightSet.named(f"file:{tmp_path / 'missing.toml'}")


def test_vocabulary_covers_every_rule_set():
    from x_reco.pipeline import rules

    assert rules.CONTINUOUS_SIGNALS == W.CONTINUOUS_SIGNALS
    for r in RULE_SETS.values():
        assert set(r.probability_signals) <= set(W.PROBABILITY_SIGNALS)
    assert Gates().min_video_duration_ms == rules.MIN_VIDEO_DURATION_MS  # §10.1 MinVideoDurationMs
    assert W.WeightSet.published().boosts.mutual_follow_reply == rules.MUTUAL_FOLLOW_REPLY_BOOST
