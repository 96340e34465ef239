"""The dataset registry (x_reco/data/registry.py): every partition has one complete record; an unknown
partition is a ValueError listing the known ones; the records reproduce the facts that used to live
in per-name tables; and no code outside the registry and the readers branches on a partition name
(``partition == ...``, ``partition in (...)``, ``in PER_EVENT``): it asks the record."""

import ast
import dataclasses
import pathlib

import numpy as np
import pytest

from x_reco.common.actions import ACTIONS, NUM_ACTIONS
from x_reco.data.registry import (
    PARTITIONS,
    REGISTRY,
    TUNING_PARTITION,
    DatasetSpec,
    ExampleKind,
    QualityFacts,
    ServingProfile,
    SplitRule,
    dataset_spec,
    load_raw,
)
from x_reco.reward.stakeholders import _FAMILIES
from x_reco.training.defaults import BUDGETS

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCANNED = ("x_reco", "assets", "resources", "jobs", "definitions")
# Modules allowed to spell partition names: the registry and the readers that build RawTables.
ALLOWED = {
    "x_reco/data/registry.py",
    "x_reco/data/movielens.py",
    "x_reco/data/mind.py",
    "x_reco/data/amazon.py",
    "x_reco/data/recbole.py",
}
ALLOWED_DIRS = ("x_reco/data/synthetic/",)
# Literal uses that are not branches, with the reason they stay.
ALLOWED_LITERALS = {("x_reco/features/hashing.py", "synthetic"): "HashSpec's default namespace (stored hashes)"}
PARTITION_NAMES = {"partition", "partition_key", "dataset"}


def test_every_partition_has_a_complete_record():
    assert PARTITIONS == ("synthetic", "movielens-100k", "movielens-1m", "mind-small", "amazon-kindle")
    assert tuple(REGISTRY) == PARTITIONS
    for name in PARTITIONS:
        spec = dataset_spec(name)
        assert isinstance(spec, DatasetSpec) and spec.name == name
        assert spec.hash_namespace == name  # the namespace values stored hashes were built with
        assert callable(spec.read) and callable(spec.events) and callable(spec.item_features)
        assert isinstance(spec.example_kind, ExampleKind) and isinstance(spec.split_rule, SplitRule)
        assert isinstance(spec.quality, QualityFacts) and isinstance(spec.serving, ServingProfile)
        assert spec.quality.pool_size > 0 and spec.quality.feature_dim > 0
        assert spec.stakeholders in _FAMILIES and spec.train_budget in BUDGETS
        assert spec.research_scale in ("smoke", "full")
        mask = spec.observed_mask
        assert mask.dtype == np.int8 and mask.shape == (NUM_ACTIONS,) and mask.sum() == len(spec.observed_actions)
        assert spec.generated == (spec.source_env is None) and spec.generated == (spec.reward_split is None)
        if not spec.generated:
            assert spec.source_env == "XRECO_SOURCE_" + name.replace("-", "_").upper() and spec.downloads


def test_records_keep_the_former_tables():
    kinds = {n: dataset_spec(n).example_kind for n in PARTITIONS}
    assert {n for n, k in kinds.items() if k == ExampleKind.PER_EVENT} == {
        "movielens-100k",
        "movielens-1m",
        "amazon-kindle",
    }
    assert dataset_spec("synthetic").observed_actions == ACTIONS
    assert dataset_spec("mind-small").observed_actions == ("click",)
    assert dataset_spec("movielens-1m").quality.counts == (1_000_209, 6_040, 3_883)
    assert [dataset_spec(n).quality.pool_size for n in PARTITIONS] == [500, 1_305, 3_347, 12_261, 17_425]
    assert [dataset_spec(n).quality.feature_dim for n in PARTITIONS] == [18, 19, 19, 35, 32]
    assert dataset_spec("mind-small").split_rule == SplitRule.FILE


def test_serving_profiles_follow_the_pipeline_spec():
    syn, ml, mind, kindle = (
        dataset_spec(n).serving for n in ("synthetic", "movielens-100k", "mind-small", "amazon-kindle")
    )
    assert syn.in_network and syn.out_of_network and syn.author_diversity and syn.diversity_key == "author_id"
    for profile in (ml, mind):
        assert not profile.in_network and profile.out_of_network and not profile.author_diversity
    assert not kindle.in_network and kindle.author_diversity and kindle.diversity_key == "store"


def test_unknown_partition_lists_the_known_ones():
    for call in (lambda: dataset_spec("movielens-10m"), lambda: load_raw("movielens-10m")):
        with pytest.raises(ValueError, match=r"unknown partition 'movielens-10m'; expected one of .*'synthetic'"):
            call()


def test_records_are_frozen_and_validated():
    spec = dataset_spec("mind-small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"
    with pytest.raises(ValueError, match="unknown observed actions"):
        dataclasses.replace(spec, name="x", observed_actions=("clicks",))
    assert dataclasses.replace(spec, name="mind-copy", hash_namespace="").hash_namespace == "mind-copy"


def _branches(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, why) of comparisons against a partition variable and of partition-name literals."""
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}

    def is_partition(node) -> bool:  # partition, x.partition, x["partition"], str(any of those)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
            return is_partition(node.args[0])
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value in PARTITION_NAMES
        return (isinstance(node, ast.Name) and node.id in PARTITION_NAMES) or (
            isinstance(node, ast.Attribute) and node.attr in PARTITION_NAMES
        )

    def is_name_table(node) -> bool:  # a literal, a literal collection or a CONSTANT (not another variable)
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return isinstance(node, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict)) or name.isupper()

    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops
        ):
            operands = (node.left, *node.comparators)
            if any(map(is_partition, operands)) and any(is_name_table(x) for x in operands if not is_partition(x)):
                out.append((node.lineno, "compares a partition variable with names"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
            if is_partition(node.func.value):
                out.append((node.lineno, "tests a partition name's prefix"))
        elif isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings:
            out.append((node.lineno, f"spells the partition name {node.value!r}"))
    return out


def test_no_partition_name_branches_outside_the_registry():
    offenders = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED or rel.startswith(ALLOWED_DIRS):
                continue
            for line, why in _branches(ast.parse(path.read_text()), set(PARTITIONS)):
                literal = why.split("'")[1] if "'" in why else None
                if (rel, literal) not in ALLOWED_LITERALS:
                    offenders.append(f"{rel}:{line}: {why}")
    assert not offenders, "ask the dataset's record (x_reco.data.registry.dataset_spec) instead:\n" + "\n".join(
        offenders
    )


def test_the_scan_catches_the_former_branches():
    former = (
        'if partition == "synthetic":\n    pass\n'
        'if str(seqs["partition"]) not in PER_EVENT:\n    pass\n'
        'ok = raw.partition.startswith("movielens")\n'
        'smoke = context.partition_key != "x"\n'
        'RETRAIN = ("synthetic", "movielens-100k")\n'
        "same = raw.partition == partition\n"  # a consistency check, not a branch
    )
    lines = sorted({line for line, _ in _branches(ast.parse(former), set(PARTITIONS))})
    assert lines == [1, 3, 5, 6, 7]


def test_an_objective_names_only_observed_actions():
    spec = dataset_spec(TUNING_PARTITION)
    assert set(spec.objective_actions) < set(spec.observed_actions)
    with pytest.raises(ValueError, match=r"objective actions \['reply'\] are not observed"):
        dataclasses.replace(spec, objective_actions=("click", "reply"))
    assert dataclasses.replace(spec, objective_actions=()).objective_actions == spec.observed_actions
