"""Inference benchmark harness (inference spec §5): typed jobs run in fresh worker processes, report, plots.

Entry points: ``x_reco.bench.harness.run_benchmark(BenchConfig(...), out)`` (the CLI ``python -m x_reco.bench``
and the Dagster ``inference_benchmark`` asset both call it), ``python -m x_reco.bench.host`` (host-side
request assembly), ``python -m x_reco.bench.compare`` (before/after latency of two source trees) and
``python -m x_reco.bench.trained`` (a small trained ranker for the quality rows), ``python -m
x_reco.bench.append_tail`` (the prefix cache's append latency tail) and ``python -m x_reco.bench.feed``
(end-to-end and per-stage latency of a served For You feed). It sits on top of the library: it measures
``x_reco.inference`` and ``x_reco.pipeline`` and may train with ``x_reco.training``; nothing imports it.
"""
