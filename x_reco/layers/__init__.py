"""Leaf layers of the Phoenix models: norm, RoPE, GQA attention, gated FFN, hash embeddings, weight formats."""

from x_reco.layers.attention import (
    ATTN_SOFT_CAP,
    MASK_FILL,
    Attention,
    attention_logits,
    attention_probs,
    combine_values,
    grouped_attention,
    soft_cap,
)
from x_reco.layers.embed import EmbeddingAssembly, HashTable, HashTables, init_table
from x_reco.layers.ffn import GatedFFN
from x_reco.layers.norm import RMS_NORM_EPS, RMSNorm, rms_norm
from x_reco.layers.quant import QTable, QWeight, dense, gather_rows, linear
from x_reco.layers.rope import ROPE_BASE, apply_rope, rope_phase

__all__ = [
    "ATTN_SOFT_CAP",
    "MASK_FILL",
    "RMS_NORM_EPS",
    "ROPE_BASE",
    "Attention",
    "EmbeddingAssembly",
    "GatedFFN",
    "HashTable",
    "HashTables",
    "QTable",
    "QWeight",
    "RMSNorm",
    "apply_rope",
    "attention_logits",
    "attention_probs",
    "combine_values",
    "dense",
    "gather_rows",
    "grouped_attention",
    "init_table",
    "linear",
    "rms_norm",
    "rope_phase",
    "soft_cap",
]
