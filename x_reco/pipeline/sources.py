"""The in-network source (spec §5 ThunderSource); the out-of-network one is ``phoenix.PhoenixSource``."""

from __future__ import annotations

from x_reco.pipeline.rules import MAX_INPUT_LIST_SIZE, THUNDER_MAX_RESULTS
from x_reco.pipeline.thunder import ThunderStore
from x_reco.pipeline.types import Candidates, Component, Query


class ThunderSource(Component):
    """Recent posts of the followed authors from Thunder (§5): ``followed_ids`` truncated to
    ``max_input_list_size`` (in sorted order, so requests are reproducible), ``ThunderMaxResults``,
    no excluded ids (J; **Pin** ``[]``)."""

    name = "ThunderSource"

    def __init__(
        self,
        store: ThunderStore,
        max_results: int = THUNDER_MAX_RESULTS,
        max_input_list_size: int = MAX_INPUT_LIST_SIZE,
    ):
        self.store, self.max_results, self.max_input_list_size = store, max_results, max_input_list_size

    def get_candidates(self, query: Query) -> Candidates:
        followed = sorted(query.followed_ids)[: self.max_input_list_size]
        return self.store.recent_posts(followed, query.user_id, query.t, self.max_results)
