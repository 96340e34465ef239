"""The synthetic world's vocabulary (archetypes, topics, media, surfaces) and its frozen config."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

ARCHETYPES: tuple[str, ...] = (
    "sports_fan",
    "political_L",
    "political_R",
    "tech_bro",
    "lurker",
    "power_user",
)
TOPICS: tuple[str, ...] = ("sports", "politics_L", "politics_R", "tech", "entertainment", "news")
MEDIA_TYPES: tuple[str, ...] = ("text", "photo", "video", "link")
SURFACES: tuple[str, ...] = ("for_you", "following", "explore")

ARCHETYPE_SHARES: tuple[float, ...] = (0.15, 0.15, 0.15, 0.15, 0.20, 0.20)
TOPIC_SHARES: tuple[float, ...] = (0.20, 0.15, 0.15, 0.20, 0.20, 0.10)
MEDIA_PROBS: tuple[float, ...] = (0.50, 0.25, 0.15, 0.10)
QUOTE_PROB = 0.10
CLOCK_START_TS = 1_704_067_200  # 2024-01-01T00:00Z


def _is_prob_vector(values: tuple[float, ...], size: int) -> bool:
    return len(values) == size and all(v >= 0 for v in values) and math.isclose(sum(values), 1.0, abs_tol=1e-9)


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Every knob of the synthetic Twitter-like world (datasets spec §9.1); defaults = `default`."""

    seed: int = 42
    num_users: int = 1_000
    num_authors: int = 100
    num_days: int = 30
    posts_per_author_day: float = 5.0
    # Poisson mean of visits per user-day, in ARCHETYPES order.
    visits_per_day: tuple[float, ...] = (2.0, 3.0, 3.0, 2.0, 1.0, 5.0)
    feed_length: int = 10
    in_network_share: float = 0.5
    personalization: float = 1.0
    recency_hours: float = 48.0
    surface_probs: tuple[float, ...] = (0.7, 0.2, 0.1)  # in SURFACES order
    dwell_short_s: float = 2.0
    dwell_long_s: float = 10.0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/val/test shares of days
    calibration_draws: int = 20_000
    calibration_tol: float = 0.005

    def __post_init__(self):
        # Lists from JSON/YAML become tuples so the config stays hashable and comparable.
        for name in ("visits_per_day", "surface_probs", "split"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        for name in ("num_users", "num_authors", "num_days", "feed_length", "calibration_draws"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_authors < 2:
            raise ValueError(f"num_authors must be >= 2, got {self.num_authors}")
        if self.posts_per_author_day <= 0 or self.recency_hours <= 0:
            raise ValueError(
                f"posts_per_author_day and recency_hours must be > 0, got "
                f"{self.posts_per_author_day} and {self.recency_hours}"
            )
        if len(self.visits_per_day) != len(ARCHETYPES) or min(self.visits_per_day) < 0:
            raise ValueError(
                f"visits_per_day needs {len(ARCHETYPES)} non-negative rates in order "
                f"{ARCHETYPES}, got {self.visits_per_day}"
            )
        if not 0.0 <= self.in_network_share <= 1.0:
            raise ValueError(f"in_network_share must be in [0, 1], got {self.in_network_share}")
        if not _is_prob_vector(self.surface_probs, len(SURFACES)):
            raise ValueError(
                f"surface_probs must be {len(SURFACES)} probabilities summing to 1, got {self.surface_probs}"
            )
        if not _is_prob_vector(self.split, 3):
            raise ValueError(f"split must be 3 shares summing to 1, got {self.split}")
        if not 0 < self.dwell_short_s < self.dwell_long_s:
            raise ValueError(f"need 0 < dwell_short_s < dwell_long_s, got {self.dwell_short_s}, {self.dwell_long_s}")
        if not 0 < self.calibration_tol < 0.5:
            raise ValueError(f"calibration_tol must be in (0, 0.5), got {self.calibration_tol}")

    @classmethod
    def default(cls) -> WorldConfig:
        """1,000 users, 100 authors, 30 days: the calibration-test world."""
        return cls()

    @classmethod
    def tiny(cls) -> WorldConfig:
        """Unit-test world: builds in about a second."""
        return cls(seed=0, num_users=60, num_authors=12, num_days=5, posts_per_author_day=3.0, feed_length=6)

    @classmethod
    def small(cls) -> WorldConfig:
        """The `make demo` default: a few seconds on two cores."""
        return cls(num_users=200, num_authors=30, num_days=10)

    @classmethod
    def large(cls) -> WorldConfig:
        """A bigger world for scaling runs (a minute or two, about 2.5 million impressions)."""
        return cls(num_users=3_000, num_authors=200, num_days=30)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> WorldConfig:
        """Build from a plain mapping; a `size` key picks the base world; unknown keys raise ValueError.

        `visits_per_day` may also be a mapping keyed by archetype name.
        """
        values = dict(values or {})
        size = values.pop("size", "default")
        factories = {"tiny": cls.tiny, "small": cls.small, "default": cls.default, "large": cls.large}
        if size not in factories:
            raise ValueError(f"unknown world size {size!r}; expected one of {sorted(factories)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown WorldConfig keys {unknown}; known keys are {sorted(known)}")
        if isinstance(values.get("visits_per_day"), Mapping):
            values["visits_per_day"] = _rates_by_archetype(values["visits_per_day"])
        return dataclasses.replace(factories[size](), **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists) that `from_dict` accepts back."""
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _rates_by_archetype(rates: Mapping[str, float]) -> tuple[float, ...]:
    unknown = sorted(set(rates) - set(ARCHETYPES))
    missing = sorted(set(ARCHETYPES) - set(rates))
    if unknown or missing:
        raise ValueError(f"visits_per_day keys must be {ARCHETYPES}; unknown {unknown}, missing {missing}")
    return tuple(float(rates[a]) for a in ARCHETYPES)
