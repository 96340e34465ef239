"""The dataset registry: one ``DatasetSpec`` per partition, and ``load_raw`` from a name to raw tables.

Everything that differs between datasets lives in its record; code asks the record
(``dataset_spec(partition).example_kind``), never the name. A new dataset is a reader and one entry.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS, action_mask
from x_reco.data import events as ev
from x_reco.data import item_features as feats
from x_reco.data.amazon import read_amazon_kindle
from x_reco.data.errors import MissingSourceError
from x_reco.data.mind import read_mind_small
from x_reco.data.movielens import ML_1M_SHA256, ML_100K_SHA256, read_movielens_1m, read_movielens_100k
from x_reco.data.recbole import find_atomic_dir, read_recbole_raw
from x_reco.data.tables import RawTables


class ExampleKind(enum.Enum):
    """How sequences cut examples: one per event (ratings) or one per request (impression logs)."""

    PER_EVENT = "per-event"
    PER_REQUEST = "per-request"


class SplitRule(enum.Enum):
    """How events are split into train / val / test (datasets spec §12)."""

    LEAVE_LAST_OUT = "leave-last-out"  # per user: last -> test, second-to-last -> val
    TIME = "time"  # by the day a visit starts
    FILE = "file"  # by source file, then the last day of train (not monotone per user)


@dataclasses.dataclass(frozen=True)
class Download:
    """One file to fetch; ``sha256`` is the pinned digest (None: record it on first download)."""

    url: str
    filename: str
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class QualityFacts:
    """Pinned facts the GX suites check (datasets spec §3-8, §13); None / 0 / False = not checked."""

    pool_size: int  # reward-modelling pool (§8)
    feature_dim: int  # item-feature width D
    counts: tuple[int, int, int] | None = None  # published (interactions, users, items rows)
    id_ranges: tuple[tuple[str, int, int], ...] = ()  # (column, lo, hi) of numeric source ids
    ts_range: tuple[int, int] | None = None  # seconds UTC
    ratings: bool = False  # ratings in [1, 5], one per (user, item)
    binary_labels: bool = False  # impression labels in {0, 1}
    binary_actions: bool = False  # every action column in {0, 1}; users bounded by the users table
    genre_flags: int = 0  # genre_00.. columns in {0, 1}
    structural_rules: bool = False  # the generated world's structural rules (§9.4.4)


@dataclasses.dataclass(frozen=True)
class ServingProfile:
    """What the candidate pipeline runs for a dataset (candidate-pipeline spec §13)."""

    in_network: bool  # Thunder: posts of followed authors
    out_of_network: bool = True  # Phoenix retrieval
    author_diversity: bool = False
    diversity_key: str = "author_id"  # column the diversity penalty groups by ("store": store as author)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything that differs between dataset partitions.

    ``read(source)`` returns the raw tables (``read(synthetic_config)`` for a generated dataset);
    ``events(raw)`` maps them to unsorted, unmasked events; ``item_features(raw)`` gives the reward
    features with their pool; ``reward_split(raw)`` the reward-modelling training interactions.
    """

    name: str
    read: Callable[..., RawTables]
    source_env: str | None  # environment variable holding the source path; None: generated
    observed_actions: tuple[str, ...]
    example_kind: ExampleKind
    split_rule: SplitRule
    events: Callable[[RawTables], pd.DataFrame]
    item_features: Callable[[RawTables], pd.DataFrame]
    quality: QualityFacts
    serving: ServingProfile
    stakeholders: str  # stakeholder family in ``x_reco.reward.stakeholders``
    reward_split: Callable[[RawTables], pd.DataFrame] | None = None
    hash_namespace: str = ""  # empty: the name (stored hashes depend on it)
    bundled: bool = False  # a copy ships with an installed package: the source may be omitted
    recbole_fallback: bool = False  # a RecBole atomic folder is read by the generic reader
    train_budget: str = "tuned"  # ``x_reco.training.defaults.BUDGETS``
    research_scale: str = "full"  # "smoke" or "full" protocol sizes when a run asks for "auto"
    scheduled_retrain: bool = False  # retrained weekly (needs no download)
    streamed: bool = False  # arrives day by day (``world_day``); ``load_raw(clock_day=k)`` cuts it
    downloads: tuple[Download, ...] = ()
    # the actions whose published weights rank this dataset's feed and two-stage evaluation (empty: every
    # observed one); a head whose label only exists given a positive (a rating after watching) is left out
    objective_actions: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.hash_namespace:
            object.__setattr__(self, "hash_namespace", self.name)
        unknown = sorted(set(self.observed_actions) - set(ACTIONS))
        if unknown:
            raise ValueError(f"{self.name}: unknown observed actions {unknown}")
        if not self.objective_actions:
            object.__setattr__(self, "objective_actions", tuple(self.observed_actions))
        elif not set(self.objective_actions) <= set(self.observed_actions):
            extra = sorted(set(self.objective_actions) - set(self.observed_actions))
            raise ValueError(f"{self.name}: objective actions {extra} are not observed")
        if self.research_scale not in ("smoke", "full"):
            raise ValueError(f"{self.name}: research_scale must be smoke or full, got {self.research_scale!r}")

    @property
    def generated(self) -> bool:
        return self.source_env is None

    @property
    def observed_mask(self) -> np.ndarray:
        """int8 [19] mask of the action columns this dataset observes."""
        return action_mask(self.observed_actions)


def _read_synthetic(config: Any = None) -> RawTables:
    from x_reco.data.synthetic import generate_world_tables  # heavy, and only needed here

    return generate_world_tables() if config is None else generate_world_tables(config)


def _content_pool(raw: RawTables) -> pd.DataFrame:
    # The generated world's reward pool is the 500-item content pool (seed 42), not its posts: it is
    # what the published Goodhart experiments used.
    return feats.synthetic_content_pool(n_items=500, seed=42)


def _pooled(builder, split) -> Callable[[RawTables], pd.DataFrame]:
    return functools.partial(feats.pooled_features, builder, split)


_ML_ACTIONS = ("favorite", "click", "dwell", "not_interested")
# A MovieLens "not_interested" is a low rating: it exists only for a watched movie, so p(not_interested)
# rises with p(watch) and the published -43.2 weight would rank the movies least likely to be watched
# first. The ML objective is the published weights of the engagement heads.
_ML_OBJECTIVE = ("favorite", "click", "dwell")
_HF_AMAZON = "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main"
_MIND_BLOB = "https://mind201910small.blob.core.windows.net/release"
_OON_ONLY = ServingProfile(in_network=False)

_SPECS = (
    DatasetSpec(
        "synthetic",
        _read_synthetic,
        None,
        ACTIONS,
        ExampleKind.PER_REQUEST,
        SplitRule.TIME,
        ev.synthetic_events,
        _content_pool,
        QualityFacts(pool_size=500, feature_dim=18, binary_actions=True, structural_rules=True),
        ServingProfile(in_network=True, author_diversity=True),
        stakeholders="alpha",
        train_budget="demo",
        research_scale="smoke",
        scheduled_retrain=True,
        streamed=True,
    ),
    DatasetSpec(
        "movielens-100k",
        read_movielens_100k,
        "XRECO_SOURCE_MOVIELENS_100K",
        _ML_ACTIONS,
        ExampleKind.PER_EVENT,
        SplitRule.LEAVE_LAST_OUT,
        ev.rating_events,
        _pooled(feats.movielens_features, feats.ua_base_split),
        QualityFacts(
            pool_size=1_305,
            feature_dim=19,
            counts=(100_000, 943, 1_682),
            id_ranges=(("user_id", 1, 943), ("item_id", 1, 1682)),
            ts_range=(874_627_200, 893_376_000),  # 1997-09-19 .. 1998-04-23
            ratings=True,
            genre_flags=19,
        ),
        _OON_ONLY,
        stakeholders="movielens",
        reward_split=feats.ua_base_split,
        bundled=True,
        scheduled_retrain=True,
        downloads=(
            Download("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "ml-100k.zip", ML_100K_SHA256),
        ),
        objective_actions=_ML_OBJECTIVE,
    ),
    DatasetSpec(
        "movielens-1m",
        read_movielens_1m,
        "XRECO_SOURCE_MOVIELENS_1M",
        _ML_ACTIONS,
        ExampleKind.PER_EVENT,
        SplitRule.LEAVE_LAST_OUT,
        ev.rating_events,
        _pooled(feats.movielens_features, feats.chronological_split),
        QualityFacts(
            pool_size=3_347,
            feature_dim=19,
            counts=(1_000_209, 6_040, 3_883),
            id_ranges=(("user_id", 1, 6040), ("item_id", 1, 3952)),
            ts_range=(956_703_932, 1_046_454_590),
            ratings=True,
            genre_flags=19,
        ),
        _OON_ONLY,
        stakeholders="movielens",
        reward_split=feats.chronological_split,
        downloads=(Download("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip", ML_1M_SHA256),),
        objective_actions=_ML_OBJECTIVE,
    ),
    DatasetSpec(
        "mind-small",
        read_mind_small,
        "XRECO_SOURCE_MIND_SMALL",
        ("click",),
        ExampleKind.PER_REQUEST,
        SplitRule.FILE,
        ev.mind_events,
        _pooled(feats.mind_features, feats.mind_train_tokens),
        QualityFacts(
            pool_size=12_261,
            feature_dim=35,
            ts_range=(1_570_838_400, 1_574_553_600),  # 2019-10-12 .. 2019-11-24
            binary_labels=True,
        ),
        _OON_ONLY,
        stakeholders="mind",
        reward_split=feats.mind_train_tokens,
        recbole_fallback=True,
        # the original blob links are unreliable; pass ``downloads=`` to ``fetch`` to use a mirror
        downloads=(
            Download(f"{_MIND_BLOB}/MINDsmall_train.zip", "MINDsmall_train.zip"),
            Download(f"{_MIND_BLOB}/MINDsmall_dev.zip", "MINDsmall_dev.zip"),
        ),
    ),
    DatasetSpec(
        "amazon-kindle",
        read_amazon_kindle,
        "XRECO_SOURCE_AMAZON_KINDLE",
        ("favorite", "click", "not_interested"),
        ExampleKind.PER_EVENT,
        SplitRule.LEAVE_LAST_OUT,
        functools.partial(ev.rating_events, author_column="store"),
        _pooled(feats.kindle_features, feats.chronological_split),
        QualityFacts(
            pool_size=17_425,
            feature_dim=32,
            ts_range=(830_908_800, 1_696_118_400),  # 1996-05-01 .. 2023-10-01
            ratings=True,
        ),
        ServingProfile(in_network=False, author_diversity=True, diversity_key="store"),
        stakeholders="kindle",
        reward_split=feats.chronological_split,
        recbole_fallback=True,
        downloads=(
            Download(f"{_HF_AMAZON}/benchmark/5core/rating_only/Kindle_Store.csv", "Kindle_Store.csv"),
            Download(f"{_HF_AMAZON}/raw/meta_categories/meta_Kindle_Store.jsonl.gz", "meta_Kindle_Store.jsonl.gz"),
        ),
    ),
)
REGISTRY: Mapping[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
PARTITIONS: tuple[str, ...] = tuple(REGISTRY)
DEFAULT_PARTITION = PARTITIONS[0]  # generated: needs no download
# The partition that arrives day by day (the ``world_day`` asset feeds it); one, or the graph changes.
(STREAM_PARTITION,) = (p for p in PARTITIONS if REGISTRY[p].streamed)
TUNING_PARTITION = "movielens-100k"  # the default training configs were tuned on it


def dataset_spec(partition: str) -> DatasetSpec:
    """The record of ``partition``; ValueError naming the known partitions otherwise."""
    try:
        return REGISTRY[partition]
    except (KeyError, TypeError):
        raise ValueError(f"unknown partition {partition!r}; expected one of {PARTITIONS}") from None


def load_raw(
    partition: str,
    source: str | Path | None = None,
    *,
    synthetic_config: Any = None,
    clock_day: int | None = None,
    window_days: int | None = None,
) -> RawTables:
    """Raw tables of ``partition``.

    Args:
      partition: one of ``PARTITIONS``.
      source: path to the partition's files (archive, folder or RecBole atomic folder); ``None`` is
        allowed for generated datasets and for bundled ones (ML-100K: the RecBole wheel copy).
      synthetic_config: the world generator's config; only for generated datasets.
      clock_day, window_days: for a streamed dataset, the world as of the end of day ``clock_day``
        with a training window of ``window_days`` days (``synthetic.stream.cut_world``); None: the
        whole world.
    """
    spec = dataset_spec(partition)
    if (clock_day is not None or window_days is not None) and not spec.streamed:
        raise ValueError(f"the {partition} partition does not arrive day by day; clock_day is for streamed ones")
    if spec.generated:
        if source is not None:
            raise ValueError(f"the {partition} partition is generated; it takes no source path")
        raw = spec.read(synthetic_config)
        if clock_day is None and window_days is None:
            return raw
        from x_reco.data.synthetic.stream import cut_world  # only streamed datasets need it

        horizon = int(raw.manifest["config"]["num_days"])
        return cut_world(raw, horizon if clock_day is None else clock_day, window_days)
    if synthetic_config is not None:
        raise ValueError(f"the {partition} partition is read from files; synthetic_config is for generated ones")
    if source is None:
        if spec.bundled:
            return spec.read()
        raise MissingSourceError(partition, spec.source_env)
    if not Path(source).exists():
        raise MissingSourceError(partition, spec.source_env, source)
    if spec.recbole_fallback and find_atomic_dir(source) is not None:
        return read_recbole_raw(partition, source)
    return spec.read(source)
