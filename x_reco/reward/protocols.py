"""A research run's protocols and scale, and one analysis run once per protocol.

Protocol names as users write them (``preprint``, ``corrected``) map to the analyses' protocols
(``parity``, ``corrected``). Scale ``auto`` is the dataset record's ``research_scale``: ``smoke``
(N <= 200, 2 seeds) on ``synthetic``, ``full`` (the published protocol sizes) on real datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from x_reco.data.registry import dataset_spec
from x_reco.reward import api
from x_reco.reward.budget import BudgetConfig
from x_reco.reward.deviations import deviations_table
from x_reco.reward.direction import DirectionConfig
from x_reco.reward.labels_loss import LabelsConfig

PROTOCOLS = {"preprint": "parity", "corrected": "corrected"}
SCALES = ("auto", "smoke", "full")


def is_smoke(scale: str, partition: str) -> bool:
    """Whether ``scale`` on ``partition`` means the smoke sizes."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale == "smoke" or (scale == "auto" and dataset_spec(partition).research_scale == "smoke")


def resolve_protocols(names: Sequence[str]) -> list[tuple[str, str]]:
    """[(user name, analysis protocol)] for ``names``; ValueError on an unknown name."""
    unknown = sorted(set(names) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; expected {sorted(PROTOCOLS)}")
    return [(name, PROTOCOLS[name]) for name in names]


def _bt_config(protocol: str, smoke: bool) -> api.BTConfig:
    if smoke:
        return api.BTConfig.smoke(protocol)
    return api.BTConfig.corrected() if protocol == "corrected" else api.BTConfig()


def _protocol_config(cls) -> Callable[[str, bool], object]:
    return lambda protocol, smoke: cls.smoke(protocol) if smoke else getattr(cls, protocol)()


# analysis name -> (config for (protocol, smoke), entry point of x_reco.reward.api)
ANALYSES: dict[str, tuple[Callable[[str, bool], object], Callable[..., api.AnalysisResult]]] = {
    "bt_reward_models": (_bt_config, api.bt_reward_models),
    "goodhart_direction": (_protocol_config(DirectionConfig), api.goodhart_direction),
    "labels_not_loss": (_protocol_config(LabelsConfig), api.labels_not_loss),
    "data_budget": (_protocol_config(BudgetConfig), api.data_budget),
}


def pairs_config(partition: str, scale: str = "auto") -> api.PairsConfig:
    return api.PairsConfig.smoke() if is_smoke(scale, partition) else api.PairsConfig()


def run_analysis(
    analysis: str,
    item_features: pd.DataFrame,
    stakeholder_weights: pd.DataFrame,
    *,
    partition: str,
    protocols: Sequence[str] = tuple(PROTOCOLS),
    scale: str = "auto",
    with_deviations: bool = False,
) -> api.AnalysisResult:
    """Run ``analysis`` (a key of ``ANALYSES``) once per protocol.

    Tables of the runs are concatenated with a ``protocol`` column (the user's name); figures are
    keyed ``<protocol>/<file name>``. ``with_deviations`` adds the deviation register as table
    ``deviations``.
    """
    if analysis not in ANALYSES:
        raise ValueError(f"unknown analysis {analysis!r}; expected one of {sorted(ANALYSES)}")
    make_config, run = ANALYSES[analysis]
    smoke = is_smoke(scale, partition)
    tables: dict[str, list[pd.DataFrame]] = {}
    figures: dict[str, bytes] = {}
    for name, protocol in resolve_protocols(protocols):
        result = run(item_features, stakeholder_weights, make_config(protocol, smoke))
        for key, frame in result.tables.items():
            tables.setdefault(key, []).append(frame.assign(protocol=name))
        figures.update({f"{name}/{k}": v for k, v in result.figures.items()})
    out = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    if with_deviations:
        out["deviations"] = deviations_table()
    return api.AnalysisResult(out, figures)
