"""The one Definitions object loads (DOP's skipped definitions test went stale: ours runs by
default), every asset is partitioned by dataset, and ground truth feeds no training asset."""

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


def test_every_asset_partitioned_by_dataset():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        assert pdef is not None and "synthetic" in pdef.get_partition_keys(), key


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
        k.to_user_string() for k in graph.get_all_asset_keys()
        if TRUTH in _ancestors(graph, k) and graph.get(k).group_name != "diagnostics"
    ]
    assert not offenders, f"assets with ground truth upstream: {offenders}"
