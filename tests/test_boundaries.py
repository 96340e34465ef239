"""Architecture contracts: the x_reco library never imports dagster (it must run alone on a GPU
machine or in a notebook), importing it changes no environment variable and selects no matplotlib
backend (quality.py once set GX_ANALYTICS_ENABLED and plotting.py the Agg backend at import), no
training or sequence asset reads the synthetic ground truth, and none reads the §14 social tables
(candidate-pipeline spec: only the candidate pipeline may)."""

import ast
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_library_source_never_imports_dagster():
    offenders = []
    for path in (ROOT / "x_reco").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0].startswith("dagster")]
    assert not offenders, offenders


def test_library_imports_without_dagster_or_global_side_effects():
    code = (
        "import os, sys, importlib, pkgutil\n"
        "import jax, flax, optax, orbax.checkpoint\n"  # jax itself sets TPU_SKIP_MDS_QUERY, TF_CPP_MIN_LOG_LEVEL
        "env = dict(os.environ)\n"
        "import x_reco\n"
        "for m in pkgutil.walk_packages(x_reco.__path__, 'x_reco.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0].startswith('dagster')]\n"
        "assert not bad, bad\n"
        "changed = sorted(set(env.items()) ^ set(os.environ.items()))\n"
        "assert not changed, f'environment changed at import: {changed}'\n"
        "import matplotlib\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams._get_backend_or_none() is None, matplotlib.rcParams._get_backend_or_none()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


SOCIAL_READERS_FORBIDDEN = ("x_reco/training", "x_reco/data/sequences.py", "x_reco/data/events.py")


def _ancestors(graph, key):
    seen, stack = set(), [key]
    while stack:
        for parent in graph.get(stack.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def test_no_training_or_sequence_asset_depends_on_the_social_tables():
    import dagster as dg

    from definitions import defs

    graph = defs.get_repository_def().asset_graph
    social = dg.AssetKey("raw_social")
    assert social in set(graph.get_all_asset_keys())
    guarded = [dg.AssetKey("engagement_events"), dg.AssetKey("engagement_sequences")]
    guarded += [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "models"]
    assert len(guarded) > 2
    offenders = [k.to_user_string() for k in guarded if social in _ancestors(graph, k)]
    assert not offenders, f"training or sequence assets with raw_social upstream: {offenders}"


def test_training_and_sequence_code_never_names_a_social_table():
    from x_reco.data.synthetic import SOCIAL_TABLES

    names = (*SOCIAL_TABLES, "raw_social")
    paths = []
    for rel in SOCIAL_READERS_FORBIDDEN:
        path = ROOT / rel
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert len(paths) > 2 and all(p.exists() for p in paths)
    offenders = [f"{p.relative_to(ROOT)}: {n}" for p in paths for n in names if n in p.read_text()]
    assert not offenders, offenders
