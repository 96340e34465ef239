"""Target exposure-level rates (datasets spec §9.5), taste anchors (§9.2) and loadings (§9.4)."""

from __future__ import annotations

import numpy as np

from x_reco.common.actions import ACTIONS
from x_reco.data.synthetic.config import ARCHETYPES, TOPICS

DISCRETE = ACTIONS[:18]
_IDX = {name: i for i, name in enumerate(DISCRETE)}

# Actions drawn from the two-factor threshold model (dwell included: its log-seconds share the
# factors); share_via_dm/share_via_copy_link are sampled conditionally on share instead.
LATENT_ACTIONS: tuple[str, ...] = tuple(a for a in DISCRETE if a not in ("share_via_dm", "share_via_copy_link"))
LATENT_INDEX = np.array([_IDX[a] for a in LATENT_ACTIONS])
NEGATIVE = ("not_interested", "block_author", "mute_author", "report")
# Arousal actions (loaded on Z_r): on hostile content they are outrage, so their affinity sign
# flips to -1 there, and a reply or quote implies the user stopped on the post (it forces dwell
# instead of being cancelled by a scroll-past). Without both, corr(reply, block) on
# cross-political content is negative under the §9.4 loadings, contradicting §9.5.
AROUSAL = ("reply", "quote")
# A block, mute or report cancels these (rule 9.4.4 b); a scroll-past (no dwell) cancels every
# other non-negative discrete action (rule 9.4.4 a).
CANCELLED_BY_NEGATIVE = ("favorite", "repost", "share", "share_via_dm", "share_via_copy_link", "follow_author")
GATED_BY_DWELL = tuple(a for a in DISCRETE if a not in (*NEGATIVE, *AROUSAL, "dwell"))
GATING_NEGATIVES = ("block_author", "mute_author", "report")
MEDIA_ACTION = {"photo_expand": "photo", "vqv": "video", "quoted_click": "quote"}
P_COPY_LINK_GIVEN_SHARE = 0.25

_LOADINGS = {
    "reply": (0.3, 0.5),
    "quote": (0.3, 0.5),
    "not_interested": (-0.6, 0.0),
    "mute_author": (-0.6, 0.0),
    "block_author": (-0.5, 0.4),
    "report": (-0.5, 0.4),
    "dwell": (0.6, 0.3),
}


def latent_loadings() -> np.ndarray:
    """[16, 2] (valence, arousal) loadings of LATENT_ACTIONS; positives default to (0.6, 0)."""
    return np.array([_LOADINGS.get(a, (0.6, 0.0)) for a in LATENT_ACTIONS])


def latent_signs() -> np.ndarray:
    """[16] s_a: +1 for positive/neutral actions, -1 for the four negative ones."""
    return np.array([-1.0 if a in NEGATIVE else 1.0 for a in LATENT_ACTIONS])


def taste_anchors() -> np.ndarray:
    """[archetype, topic] A: +0.8 home topic, -0.6 opposite politics, 0.2 elsewhere."""
    anchors = np.full((len(ARCHETYPES), len(TOPICS)), 0.2)
    home = {"sports_fan": "sports", "political_L": "politics_L", "political_R": "politics_R", "tech_bro": "tech"}
    for arch, topic in home.items():
        anchors[ARCHETYPES.index(arch), TOPICS.index(topic)] = 0.8
    anchors[ARCHETYPES.index("political_L"), TOPICS.index("politics_R")] = -0.6
    anchors[ARCHETYPES.index("political_R"), TOPICS.index("politics_L")] = -0.6
    return anchors


_FLOORS = {
    "favorite": 0.02,
    "click": 0.02,
    "dwell": 0.02,
    "repost": 0.005,
    "reply": 0.005,
    "follow_author": 0.005,
    "quote": 0.003,
    "share": 0.003,
    "not_interested": 0.01,
    "mute_author": 0.002,
    "block_author": 0.002,
    "report": 0.0005,
}
_COLS = (
    "favorite",
    "repost",
    "reply",
    "click",
    "dwell",
    "follow_author",
    "quote",
    "share",
    "not_interested",
    "block_author",
    "mute_author",
    "report",
)
_ = None  # an empty cell of the table: the floor applies
_HOME_POLITICS = (0.65, 0.45, 0.25, 0.55, 0.60, 0.20, 0.15, _, _, _, _, _)
_CROSS_POLITICS = (_, _, 0.10, _, 0.15, _, _, _, 0.30, 0.25, 0.15, 0.05)
# (archetype, topics, one row per topic in _COLS order) transcribed from the §9.5 table.
_TABLE = (
    ("sports_fan", ("sports",), [(0.70, 0.30, 0.10, 0.50, 0.60, 0.15, 0.05, _, _, _, _, _)]),
    ("sports_fan", ("politics_L", "politics_R"), [(0.05, _, _, _, 0.10, _, _, _, 0.10, _, _, _)] * 2),
    (
        "sports_fan",
        ("tech", "entertainment", "news"),
        [(0.15, _, _, 0.20, 0.25), (0.25, 0.08, _, 0.30, 0.35), (0.20, _, _, 0.25, 0.30)],
    ),
    ("political_L", ("politics_L",), [_HOME_POLITICS]),
    ("political_L", ("politics_R",), [_CROSS_POLITICS]),
    (
        "political_L",
        ("sports", "tech", "entertainment", "news"),
        [
            (0.10, _, _, 0.15, 0.20),
            (0.20, 0.10, _, 0.25, 0.30),
            (0.25, 0.10, _, 0.30, 0.35),
            (0.35, 0.20, 0.10, 0.40, 0.45),
        ],
    ),
    ("political_R", ("politics_R",), [_HOME_POLITICS]),
    ("political_R", ("politics_L",), [_CROSS_POLITICS]),
    (
        "political_R",
        ("sports", "tech", "entertainment", "news"),
        [
            (0.15, _, _, 0.20, 0.25),
            (0.15, _, _, 0.20, 0.25),
            (0.20, 0.05, _, 0.25, 0.30),
            (0.30, 0.15, 0.10, 0.35, 0.40),
        ],
    ),
    ("tech_bro", ("tech",), [(0.70, 0.35, 0.20, 0.60, 0.65, 0.18, 0.12, 0.10, _, _, _, _)]),
    (
        "tech_bro",
        ("sports", "politics_L", "politics_R", "entertainment", "news"),
        [
            (0.10, _, _, 0.15, 0.15),
            (0.15, _, _, 0.20, 0.20),
            (0.15, _, _, 0.20, 0.20),
            (0.20, _, _, 0.25, 0.25),
            (0.25, 0.10, _, 0.30, 0.35),
        ],
    ),
    ("lurker", TOPICS, [(0.20, 0.01, _, 0.15, 0.35, 0.02)] * len(TOPICS)),
    ("power_user", TOPICS, [(0.45, 0.35, 0.25, 0.50, 0.55, 0.10, 0.15, 0.12)] * len(TOPICS)),
)
# P(share_via_dm | share): 0.5, except power users whose row gives dm .08 of share .12.
P_DM_GIVEN_SHARE = np.array([0.08 / 0.12 if a == "power_user" else 0.5 for a in ARCHETYPES])


def target_rates() -> np.ndarray:
    """[archetype, topic, 18] target exposure-level rates of the discrete actions (§9.5)."""
    rates = np.full((len(ARCHETYPES), len(TOPICS), len(DISCRETE)), np.nan)
    for name, floor in _FLOORS.items():
        rates[..., _IDX[name]] = floor
    for arch, topics, rows in _TABLE:
        for topic, row in zip(topics, rows, strict=True):
            cell = rates[ARCHETYPES.index(arch), TOPICS.index(topic)]
            for col, value in zip(_COLS, row, strict=False):
                if value is not None:
                    cell[_IDX[col]] = value
    _fill_derived(rates)
    return rates


def _fill_derived(rates: np.ndarray) -> None:
    """Derived rates; the media-specific ones are per exposure of that media type."""
    r = {name: rates[..., i] for name, i in _IDX.items()}
    rates[..., _IDX["profile_click"]] = 0.4 * r["follow_author"] + 0.02
    rates[ARCHETYPES.index("power_user"), :, _IDX["profile_click"]] = 0.20
    rates[..., _IDX["photo_expand"]] = 0.6 * r["click"]
    rates[..., _IDX["vqv"]] = 0.8 * r["dwell"]
    rates[..., _IDX["quoted_click"]] = 0.3 * r["click"]
    rates[..., _IDX["share_via_dm"]] = r["share"] * P_DM_GIVEN_SHARE[:, None]
    rates[..., _IDX["share_via_copy_link"]] = r["share"] * P_COPY_LINK_GIVEN_SHARE
