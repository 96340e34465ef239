"""Named, versioned weight sets of the ranking scorer (candidate-pipeline spec §10).

A ``WeightSet`` holds upstream signal names (``retweet``, ``video_open``, ``cont_dwell_time``...);
a checkpoint's head columns (``output_action_names``, x-reco names) reach them through the §9.2
aliases: ``repost -> retweet``; column ``dwell_time`` is ``long_dwell`` (a probability,
``P(dwell >= 10 s)``) in an ``a19`` head and ``cont_dwell_time`` (seconds) in an ``x22`` head;
``click_dwell_time -> cont_click_dwell_time``. Rule sets (``x_reco.pipeline.rules``) say *which*
signals and gates apply; weight sets say *how much* (values change by sync, without code change).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from x_reco.common.actions import ACTIONS, DISCRETE_ACTIONS, NEGATIVE_ACTIONS, POSITIVE_ACTIONS

# §9.2 signal vocabulary, upstream names. ``long_dwell`` is x-reco's (a19 column 18, weight 0).
PROBABILITY_SIGNALS: tuple[str, ...] = (
    "favorite",
    "reply",
    "retweet",
    "photo_expand",
    "click",
    "profile_click",
    "vqv",
    "share",
    "share_via_dm",
    "share_via_copy_link",
    "dwell",
    "quote",
    "quoted_click",
    "quoted_vqv",
    "follow_author",
    "video_open",
    "open_link",
    "post_unexplored",
    "active_secs_5m_residual_norm",
    "not_interested",
    "block_author",
    "mute_author",
    "report",
    "not_dwelled",
    "long_dwell",
)
CONTINUOUS_SIGNALS: tuple[str, ...] = ("cont_dwell_time", "cont_click_dwell_time")
SIGNALS = PROBABILITY_SIGNALS + CONTINUOUS_SIGNALS
X22_MARKER = "click_dwell_time"  # a head with this column is x22 (phoenix-model spec §8.2)

# reward spec §1.3 alpha family; equal to x_reco.reward.stakeholders.SYNTHETIC_ALPHAS (configs may not
# import reward; tests/pipeline/test_weights.py checks they agree).
STAKEHOLDER_ALPHAS: Mapping[str, float] = MappingProxyType({"user": 1.0, "platform": 0.3, "society": 4.0})


def head_signal(column: str, head_names: Sequence[str]) -> str:
    """The upstream signal a head column carries (§9.2): ``repost -> retweet``, dwell per head kind."""
    if column == "repost":
        return "retweet"
    if column == "dwell_time":
        return "cont_dwell_time" if X22_MARKER in head_names else "long_dwell"
    if column == X22_MARKER:
        return "cont_click_dwell_time"
    return column


def signal_columns(head_names: Sequence[str]) -> dict[str, int | None]:
    """``{signal: column of head_names or None}`` for every §9.2 signal (None: no such head)."""
    cols: dict[str, int | None] = dict.fromkeys(SIGNALS)
    for j, column in enumerate(head_names):
        signal = head_signal(column, head_names)
        if signal in cols and cols[signal] is None:
            cols[signal] = j
    return cols


class _Rules(Protocol):
    probability_signals: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Boosts:
    """Additive boosts of a sync (§9.3): the mutual-follow reply boost and the dwell boost (0 upstream)."""

    mutual_follow_reply: float = 0.0
    dwell: float = 0.0


@dataclasses.dataclass(frozen=True)
class Gates:
    """Per-candidate weight gates of a sync (§9.3); the vqv viewer-follower cap belongs to the rule set."""

    min_video_duration_ms: float = 10_000.0  # vqv weight iff video_duration_ms > this (strict)
    quoted_vqv_duration_check: bool = False  # EnableQuotedVqvDurationCheck
    post_unexplored_in_network_only: bool = True


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """A named, dated weight set (§10.3): probability weights, per-second continuous weights, boosts, gates.

    ``masked_signals`` lists signals whose weights ``masked`` zeroed (§13 ``mask_unobserved``).
    """

    name: str
    sync_date: str
    probability: Mapping[str, float]
    continuous: Mapping[str, float] = dataclasses.field(default_factory=dict)
    source: str = ""
    boosts: Boosts = Boosts()
    gates: Gates = Gates()
    masked_signals: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field, known in (("probability", PROBABILITY_SIGNALS), ("continuous", CONTINUOUS_SIGNALS)):
            table = dict(getattr(self, field))
            unknown = sorted(set(table) - set(known))
            if unknown:
                raise ValueError(f"weight set {self.name!r}: unknown {field} signals {unknown}; known: {list(known)}")
            bad = {k: v for k, v in table.items() if not _is_finite_number(v)}
            if bad:
                raise ValueError(f"weight set {self.name!r}: {field} weights must be finite numbers, got {bad}")
            object.__setattr__(self, field, MappingProxyType({k: float(v) for k, v in table.items()}))
        unknown = sorted(set(self.masked_signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"weight set {self.name!r}: unknown masked signals {unknown}")

    def __repr__(self) -> str:
        return f"{self.name}@{self.sync_date}"

    @property
    def version(self) -> str:
        return self.sync_date

    def weight(self, signal: str) -> float:
        """The constant (ungated, unboosted) weight of ``signal``; 0 when the set does not name it."""
        return self.probability.get(signal, self.continuous.get(signal, 0.0))

    @property
    def weights(self) -> Mapping[str, float]:
        """``{x-reco action: weight}`` over the 19 ``a19`` head columns (``models.ranker.weighted_score``)."""
        return MappingProxyType({a: float(self.weight(head_signal(a, ACTIONS))) for a in ACTIONS})

    def vector(self, head_names: Sequence[str] = ACTIONS) -> np.ndarray:
        """Weights aligned with a head's columns through the §9.2 aliases (f32 [A])."""
        return np.array([self.weight(head_signal(a, head_names)) for a in head_names], dtype=np.float32)

    def signal_columns(self, head_names: Sequence[str]) -> dict[str, int | None]:
        """``{signal: column index or None}`` for a head (§9.2 table); see ``signal_columns``."""
        return signal_columns(head_names)

    def pnt(self, rules: _Rules) -> tuple[float, float, float]:
        """(P, N, T) of §9.4: positive / absolute negative weights of the rule set's probability signals."""
        ws = [self.probability.get(s, 0.0) for s in rules.probability_signals]
        p = math.fsum(w for w in ws if w > 0)
        n = math.fsum(-w for w in ws if w < 0)
        return p, n, math.fsum((p, n))

    def masked(self, signals: Sequence[str]) -> WeightSet:
        """A copy with the weights of ``signals`` zeroed and their names recorded (§13 mask_unobserved)."""
        unknown = sorted(set(signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"cannot mask unknown signals {unknown}; known: {list(SIGNALS)}")
        drop = set(signals)
        return dataclasses.replace(
            self,
            probability={k: (0.0 if k in drop else w) for k, w in self.probability.items()},
            continuous={k: (0.0 if k in drop else w) for k, w in self.continuous.items()},
            masked_signals=tuple(sorted(drop | set(self.masked_signals))),
        )

    @classmethod
    def from_actions(cls, name: str, sync_date: str, weights: Mapping[str, float], **kw: Any) -> WeightSet:
        """A set from ``{x-reco a19 action: weight}`` (e.g. a diagnostic ``{"click": 1.0}``)."""
        unknown = sorted(set(weights) - set(ACTIONS))
        if unknown:
            raise ValueError(f"weight set {name!r}: unknown x-reco actions {unknown}; known: {list(ACTIONS)}")
        probability = {head_signal(a, ACTIONS): float(w) for a, w in weights.items()}
        return cls(name, sync_date, probability, **kw)

    @classmethod
    def published(cls) -> WeightSet:
        """``published`` is the ``sync-2026-09-24`` set itself (§2.2 pin): feeds and ledgers name the sync."""
        return _SYNCS["sync-2026-09-24"]

    @classmethod
    def engagement_only(cls) -> WeightSet:
        """``published`` with every negative weight removed (P/N/T recomputed by ``pnt``)."""
        pub = cls.published()
        return dataclasses.replace(
            pub,
            name="engagement-only",
            source=f"{pub.source} minus negative weights",
            probability={k: w for k, w in pub.probability.items() if w >= 0},
            continuous={k: w for k, w in pub.continuous.items() if w >= 0},
        )

    @classmethod
    def stakeholder(cls, stakeholder: str) -> WeightSet:
        """``stakeholder:<name>``: +1 on the 5 positive actions, -alpha on the 4 negatives, 0 on the rest."""
        if stakeholder not in STAKEHOLDER_ALPHAS:
            raise ValueError(f"unknown stakeholder {stakeholder!r}; known: {sorted(STAKEHOLDER_ALPHAS)}")
        alpha = STAKEHOLDER_ALPHAS[stakeholder]
        w = {a: 1.0 if a in POSITIVE_ACTIONS else -alpha if a in NEGATIVE_ACTIONS else 0.0 for a in DISCRETE_ACTIONS}
        source = "x_reco.reward.stakeholders.alpha_weights (reward spec §1.3), synthetic only"
        return cls.from_actions(f"stakeholder:{stakeholder}", f"alpha={alpha}", w, source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> WeightSet:
        """A set from a TOML or JSON file with the fields of ``WeightSet`` (§10.3 ``file:<path>``)."""
        return _load_file(Path(path))

    @classmethod
    def named(cls, name: str) -> WeightSet:
        """The registry (§10.3): the syncs, ``published``, ``engagement-only``, ``stakeholder:*``, ``file:*``."""
        if name in _SYNCS:
            return _SYNCS[name]
        if name == "published":
            return cls.published()
        if name == "engagement-only":
            return cls.engagement_only()
        if name.startswith("stakeholder:"):
            return cls.stakeholder(name.removeprefix("stakeholder:"))
        if name.startswith("file:"):
            return cls.from_file(name.removeprefix("file:"))
        raise ValueError(f"unknown weight set {name!r}; known: {list(KNOWN_NAMES)}")


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# §10.1, one row per signal; 09-24 and 10-07 state only what differs from the sync before.
_AUG_12_PROBABILITY = {
    "favorite": 0.5,
    "reply": 5.0,
    "retweet": 1.0,
    "photo_expand": 0.05,
    "video_open": 0.05,
    "click": 0.4,
    "open_link": 0.2,
    "profile_click": 0.0,
    "vqv": 0.05,
    "share": 2.0,
    "share_via_dm": 5.0,
    "share_via_copy_link": 20.0,
    "dwell": 0.0,
    "quote": 5.0,
    "quoted_click": 0.05,
    "quoted_vqv": 0.0,
    "follow_author": 4.0,
    "post_unexplored": 0.02,
    "active_secs_5m_residual_norm": 0.0,
    "not_interested": -43.2,
    "block_author": -31.2,
    "mute_author": -58.8,
    "report": -234.0,
    "not_dwelled": -0.02,
    "long_dwell": 0.0,
}
_SEP_24_PROBABILITY = {**_AUG_12_PROBABILITY, "video_open": 0.07, "vqv": 0.0, "dwell": 0.05}
_OCT_07_PROBABILITY = {**_SEP_24_PROBABILITY, "click": 0.3, "post_unexplored": 0.015, "not_interested": -47.52}
_SYNC_BOOSTS = Boosts(mutual_follow_reply=15.0, dwell=0.0)  # 09-24 / 10-07 lack them: the 08-12 values

_SYNCS: dict[str, WeightSet] = {
    s.name: s
    for s in (
        WeightSet(
            "sync-2026-08-12",
            "2026-08-12",
            _AUG_12_PROBABILITY,
            {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.0},
            "xai-org/x-algorithm@625f9e30:home-mixer/params/param.rs",
            _SYNC_BOOSTS,
        ),
        WeightSet(
            "sync-2026-09-24",
            "2026-09-24",
            _SEP_24_PROBABILITY,
            {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.0},
            "tang-vu/x-algorithm-playbook@8b25829:home-mixer/params/param.rs (mirror of the 2026-09-24 sync)",
            _SYNC_BOOSTS,
        ),
        WeightSet(
            "sync-2026-10-07",
            "2026-10-07",
            _OCT_07_PROBABILITY,
            {"cont_dwell_time": 0.004, "cont_click_dwell_time": 0.4},
            "teddytennant/x-algorithm@55f1d7a4:home-mixer/params/param.rs",
            _SYNC_BOOSTS,
        ),
    )
}
KNOWN_NAMES: tuple[str, ...] = (
    *_SYNCS,
    "published",
    "engagement-only",
    *(f"stakeholder:{k}" for k in STAKEHOLDER_ALPHAS),
    "file:<path>",
)

_FILE_FIELDS = {"name", "sync_date", "source", "probability", "continuous", "boosts", "gates"}


def _load_file(path: Path) -> WeightSet:
    """Parse and validate a weight-set file; every error names the file and the field."""
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"weight set file {path}: expected a .toml or .json file")
    try:
        raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"weight set file {path}: cannot read: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"weight set file {path}: expected a table of fields {sorted(_FILE_FIELDS)}")
    unknown = sorted(set(raw) - _FILE_FIELDS)
    if unknown:
        raise ValueError(f"weight set file {path}: unknown fields {unknown}; known: {sorted(_FILE_FIELDS)}")
    for field in ("sync_date", "probability"):
        if field not in raw:
            raise ValueError(f"weight set file {path}: missing field {field!r}")
    tables = {f: _table(path, f, raw.get(f, {}), known) for f, known in _TABLE_KEYS.items()}
    for f in ("name", "sync_date", "source"):
        if f in raw and not isinstance(raw[f], str):
            raise ValueError(f"weight set file {path}: field {f!r} must be a string, got {raw[f]!r}")
    return WeightSet(
        name=raw.get("name", f"file:{path}"),
        sync_date=raw["sync_date"],
        probability=tables["probability"],
        continuous=tables["continuous"],
        source=raw.get("source", f"file:{path}"),
        boosts=Boosts(**tables["boosts"]),
        gates=Gates(**tables["gates"]),
    )


_TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "probability": PROBABILITY_SIGNALS,
    "continuous": CONTINUOUS_SIGNALS,
    "boosts": tuple(f.name for f in dataclasses.fields(Boosts)),
    "gates": tuple(f.name for f in dataclasses.fields(Gates)),
}


def _table(path: Path, field: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"weight set file {path}: field {field!r} must be a table, got {value!r}")
    for key, v in value.items():
        if key not in known:
            raise ValueError(f"weight set file {path}: unknown key {field}.{key}; known: {list(known)}")
        ok = isinstance(v, bool) if key == "quoted_vqv_duration_check" else _is_finite_number(v)
        if not ok:
            raise ValueError(f"weight set file {path}: field {field}.{key} has invalid value {v!r}")
    return dict(value)
