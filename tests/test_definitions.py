"""The one Definitions object loads (DOP's skipped definitions test went stale: ours runs by
default), every asset but the dataset-independent audit is partitioned by dataset, the raw manifest
is an edge of the graph (it was a side file read with a silent default), and ground truth feeds no
training asset. ``bench_job`` runs the benchmark on the `issue` grid through a run tag, since
`dg launch` replaces a job's default run config with an empty one (checked by hand: a probe asset of a
job with ``config=`` saw its field's default)."""

import dagster as dg

from definitions import defs

TRUTH = dg.AssetKey("world_truth")


def test_definitions_load_and_resolve():
    repo = defs.get_repository_def()
    keys = set(repo.asset_graph.get_all_asset_keys())
    for name in ("raw_interactions", "raw_items", "raw_users", "engagement_events", "engagement_sequences"):
        assert dg.AssetKey(name) in keys
    assert repo.get_job("demo_job") is not None
    assert repo.get_job("data_job") is not None


def test_job_list():
    from jobs import JOBS

    names = {j.name for j in JOBS}
    assert {"data_job", "models_job", "research_job", "audit_job", "serving_job", "replay_job", "demo_job"} <= names
    assert "bench_job" in names
    repo = defs.get_repository_def()
    assert {j for j in names if repo.has_job(j)} == names


def test_bench_job_runs_the_issue_grid_and_demo_job_the_demo_grid():
    from assets.inference import BENCH_GRID_TAG, BenchmarkConfig, bench_grid

    repo = defs.get_repository_def()
    bench = repo.get_job("bench_job")
    assert set(bench.asset_layer.executable_asset_keys) == {dg.AssetKey("inference_benchmark")}
    assert bench_grid(BenchmarkConfig(), bench.tags) == "issue"  # what `dg launch --job bench_job` runs
    assert bench_grid(BenchmarkConfig(grid="reduced"), bench.tags) == "reduced"  # explicit config wins
    demo = repo.get_job("demo_job")
    assert BENCH_GRID_TAG not in demo.tags and bench_grid(BenchmarkConfig(), demo.tags) == "demo"
    assert dg.AssetKey("inference_benchmark") in demo.asset_layer.executable_asset_keys


UNPARTITIONED = {dg.AssetKey("audit_toolkit")}  # the 18-action audit is the same for every dataset


def test_every_asset_partitioned_by_dataset_but_the_audit():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        if key in UNPARTITIONED:
            assert pdef is None, key
        elif key == dg.AssetKey("world_day"):  # the streamed world's simulated days
            assert pdef.get_partition_keys()[0] == "2024-01-01", key
        else:
            assert pdef is not None and "synthetic" in pdef.get_partition_keys(), key


def test_partitioned_jobs_leave_the_audit_to_its_own_job():
    repo = defs.get_repository_def()
    research = repo.get_job("research_job").asset_layer.executable_asset_keys
    audit = repo.get_job("audit_job")
    assert dg.AssetKey("audit_toolkit") not in research and dg.AssetKey("preference_pairs") in research
    assert audit.partitions_def is None
    assert set(audit.asset_layer.executable_asset_keys) == UNPARTITIONED


def test_manifest_readers_depend_on_the_raw_manifest_asset():
    graph = defs.get_repository_def().asset_graph
    manifest = dg.AssetKey("raw_manifest")
    for name in ("engagement_events", "retriever_checkpoint", "model_evaluation"):
        assert manifest in graph.get(dg.AssetKey(name)).parent_keys, name


def _ancestors(graph, key):
    seen, stack = set(), [key]
    while stack:
        for parent in graph.get(stack.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def test_no_training_or_sequence_asset_depends_on_ground_truth():
    """Only assets in a `diagnostics` group may have the synthetic truth upstream (datasets §9.6)."""
    graph = defs.get_repository_def().asset_graph
    offenders = [
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if TRUTH in _ancestors(graph, k) and graph.get(k).group_name != "diagnostics"
    ]
    assert not offenders, f"assets with ground truth upstream: {offenders}"
