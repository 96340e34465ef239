"""Serving the Phoenix models: compiled request path, split attention, prefix KV cache, INT8 variants.

Typical use::

    sm = serving_model(ranker)                       # the trained model's graph + f32 state, one digest
    w8 = make_variant(sm, "w8+t8")                   # pure functions of the source state
    ranker_exe = CompiledRanker(w8, BucketSet(...))  # AOT executables per (B, S, N) bucket
    out, bucket = ranker_exe(host_batch)             # padded, one device_put, one executable call

Every path runs the training model's own layers (``nnx.merge`` of its graph with the variant's
state); there is no second implementation of the forward pass. The benchmark that measures these
paths is ``x_reco.bench`` (``python -m x_reco.bench --out DIR``).
"""

from x_reco.inference.cache import ExecutableCache, PrefixCache, key_context, prefix_key
from x_reco.inference.engine import (
    CompileCounter,
    CompiledRanker,
    ScoreOutput,
    aot_compile,
    make_score_fn,
    memory_analysis,
)
from x_reco.inference.params import ServingModel, ServingParams, bytes_by_dtype, serving_model
from x_reco.inference.quantize import (
    W8_EXCLUDED,
    QTable,
    QWeight,
    make_variant,
    quantize_tables_t8,
    quantize_w8,
    to_bf16,
)
from x_reco.inference.requests import Bucket, BucketSet, RawRequest, RequestAssembler, assemble_batch, pad_batch
from x_reco.inference.retrieval import CompiledRetrieval, Corpus, make_corpus, top_k_chunked

__all__ = [
    "W8_EXCLUDED",
    "Bucket",
    "BucketSet",
    "CompileCounter",
    "CompiledRanker",
    "CompiledRetrieval",
    "ExecutableCache",
    "Corpus",
    "PrefixCache",
    "QTable",
    "QWeight",
    "RawRequest",
    "RequestAssembler",
    "ScoreOutput",
    "ServingModel",
    "ServingParams",
    "aot_compile",
    "assemble_batch",
    "bytes_by_dtype",
    "key_context",
    "make_corpus",
    "make_score_fn",
    "make_variant",
    "memory_analysis",
    "pad_batch",
    "prefix_key",
    "quantize_tables_t8",
    "quantize_w8",
    "serving_model",
    "to_bf16",
    "top_k_chunked",
]
