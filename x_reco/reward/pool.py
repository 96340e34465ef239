"""The pool and stakeholders one analysis works on, built from the asset DataFrames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from x_reco.data.item_features import pool_arrays
from x_reco.data.registry import dataset_spec
from x_reco.reward.stakeholders import Stakeholders, stakeholders_from_frame

PROTOCOLS = ("parity", "corrected")


@dataclasses.dataclass(frozen=True)
class RewardPool:
    """Pool features x_md [M, D] float32 in pool order, topics (parity and C10 rule), stakeholders."""

    dataset: str
    item_ids: np.ndarray
    x_md: np.ndarray
    topic_m: np.ndarray
    topic_other_m: np.ndarray
    stakeholders: Stakeholders

    @property
    def synthetic(self) -> bool:
        """Whether the stakeholders are the generated world's α family (user / platform / society)."""
        return dataset_spec(self.dataset).stakeholders == "alpha"

    def topics(self, protocol: str) -> np.ndarray:
        """Parity collapses unknown categories into topic 0; corrected (C10) keeps them apart."""
        check_protocol(protocol)
        return self.topic_m if protocol == "parity" else self.topic_other_m

    def utilities(self, names) -> np.ndarray:
        """True per-item utilities U_h(c) = w_h · p(c), [H, M] float64."""
        w = np.stack([self.stakeholders.all[n] for n in names]).astype(np.float64)
        return w @ self.x_md.astype(np.float64).T


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def reward_pool(item_features: pd.DataFrame, stakeholder_weights: pd.DataFrame) -> RewardPool:
    """Join the ``item_features`` and ``stakeholder_weights`` tables of one dataset."""
    st = stakeholders_from_frame(stakeholder_weights)
    ids, x, topic, other = pool_arrays(item_features)
    d = len(next(iter(st.primary.values())))
    if x.shape[1] != d:
        raise ValueError(f"{st.dataset}: item features have D={x.shape[1]}, stakeholder weights D={d}")
    if len(ids) < 10:
        raise ValueError(f"{st.dataset}: pool has {len(ids)} items, need >= 10 for top-10 selection")
    return RewardPool(st.dataset, ids, x, topic, other, st)
