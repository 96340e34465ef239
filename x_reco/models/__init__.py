"""Phoenix ranker and two-tower retriever (JAX + Flax NNX), their losses and checkpoint I/O."""

from x_reco.models.params import count_params, count_table_elements, param_digest
from x_reco.models.ranker import PhoenixRanker, PrefixKV, RankerHead, two_stage_score, weighted_score
from x_reco.models.retriever import CandidateTower, PhoenixRetriever, l2_normalize, top_k
from x_reco.models.trunk import TransformerLayer, make_layers, run_layers

__all__ = [
    "CandidateTower",
    "PhoenixRanker",
    "PhoenixRetriever",
    "PrefixKV",
    "RankerHead",
    "TransformerLayer",
    "count_params",
    "count_table_elements",
    "l2_normalize",
    "make_layers",
    "param_digest",
    "run_layers",
    "top_k",
    "two_stage_score",
    "weighted_score",
]
