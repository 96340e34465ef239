"""No pickle anywhere (issue 12, case 8): unpickling runs code from the file, so nothing may read one.

The guard parses every Python file of the library, the Dagster adapters and the tests (the AST, so a
word in a string or a comment is not a use) and fails on: importing ``pickle`` or a pickling module
(``_pickle``, ``cPickle``, ``cloudpickle``, ``dill``, ``shelve``, ``joblib``), ``allow_pickle=`` set to
anything but a literal ``False``, ``torch.load``, ``pandas.read_pickle`` / ``.to_pickle``, ``yaml.load``
without a safe loader (and ``yaml.unsafe_load`` / ``full_load``), and Dagster's pickling IO managers.
``np.load`` refuses object arrays unless ``allow_pickle`` is set, so the keyword rule covers it. The
planted examples below show each rule catches what it should, under aliases, and nothing else.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("x_reco", "assets", "resources", "jobs", "definitions", "tests")
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "joblib"}
UNSAFE = {
    "torch.load": "torch.load unpickles",
    "pandas.read_pickle": "pandas.read_pickle unpickles",
    "yaml.unsafe_load": "yaml.unsafe_load",
    "yaml.unsafe_load_all": "yaml.unsafe_load_all",
    "yaml.full_load": "yaml.full_load builds arbitrary objects",
    "yaml.full_load_all": "yaml.full_load_all builds arbitrary objects",
    "dagster.FilesystemIOManager": "Dagster's FilesystemIOManager pickles outputs",
    "dagster.fs_io_manager": "Dagster's fs_io_manager pickles outputs",
    "dagster.PickledObjectFilesystemIOManager": "Dagster's PickledObjectFilesystemIOManager",
}
YAML_LOADS = {"yaml.load", "yaml.load_all"}
SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name it was imported as (``np`` -> ``numpy``, ``load`` -> ``torch.load``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``np.load`` -> ``numpy.load`` through the imports; None for anything not a plain name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _import_problems(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        modules = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        modules = [node.module]
    else:
        return []
    return [f"imports {m}" for m in modules if m.split(".")[0] in PICKLING_MODULES]


def _call_problems(call: ast.Call, aliases: dict[str, str]) -> list[str]:
    problems, name = [], _dotted(call.func, aliases)
    for kw in call.keywords:
        if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
            problems.append(f"allow_pickle={ast.unparse(kw.value)}")
    if isinstance(call.func, ast.Attribute) and call.func.attr in ("read_pickle", "to_pickle"):
        problems.append(f".{call.func.attr}()")
    if name in ("importlib.import_module", "__import__") and call.args:
        arg = call.args[0]
        if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in PICKLING_MODULES:
            problems.append(f"imports {arg.value}")
    if name in YAML_LOADS:
        loader = next((kw.value for kw in call.keywords if kw.arg == "Loader"), None)
        loader = loader if loader is not None else (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader, aliases) not in SAFE_YAML_LOADERS:
            problems.append(f"{name} without a safe Loader (use yaml.safe_load)")
    return problems


def pickle_problems(source: str, filename: str = "<string>") -> list[str]:
    """``"<file>:<line>: <what>"`` for every use of pickle in ``source``."""
    tree = ast.parse(source, filename)
    aliases, found = _aliases(tree), []
    for node in ast.walk(tree):
        problems = _import_problems(node)
        if isinstance(node, ast.Call):
            problems += _call_problems(node, aliases)
        if isinstance(node, ast.Name | ast.Attribute) and not isinstance(node.ctx, ast.Store):
            problems += [UNSAFE[n] for n in [_dotted(node, aliases)] if n in UNSAFE]
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            problems += [UNSAFE[n] for a in node.names if (n := f"{node.module}.{a.name}") in UNSAFE]
        found += [f"{filename}:{node.lineno}: {p}" for p in problems]
    return sorted(set(found))


def scan(root: Path) -> tuple[int, list[str]]:
    """(files read, problems) over the scanned folders of ``root``."""
    files = sorted(p for folder in SCANNED for p in (root / folder).rglob("*.py"))
    problems = []
    for path in files:
        problems += pickle_problems(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return len(files), problems


def test_repository_has_no_pickle():
    count, problems = scan(ROOT)
    assert count > 100, f"only {count} files scanned: the guard would pass vacuously"
    assert problems == [], "pickle found:\n" + "\n".join(problems)


PLANTED = {
    "import pickle": "imports pickle",
    "import pickle as pk": "imports pickle",
    "from pickle import loads": "imports pickle",
    "import cloudpickle": "imports cloudpickle",
    "import dill.settings": "imports dill.settings",
    "from joblib import load": "imports joblib",
    "import importlib\nimportlib.import_module('pickle')": "imports pickle",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "allow_pickle=True",
    "import numpy\nflag = True\nnumpy.load('a.npz', allow_pickle=flag)": "allow_pickle=flag",
    "from numpy import save\nsave('a.npy', [object()], allow_pickle=True)": "allow_pickle=True",
    "import torch\ntorch.load('m.pt', weights_only=True)": "torch.load",
    "from torch import load as tl\ntl('m.pt')": "torch.load",
    "import pandas as pd\npd.read_pickle('f.pkl')": "read_pickle",
    "frame.to_pickle('f.pkl')": ".to_pickle()",
    "import yaml\nyaml.load(open('c.yaml'))": "yaml.load without a safe Loader",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)": "yaml.load without a safe Loader",
    "import yaml\nyaml.load(text, yaml.FullLoader)": "yaml.load without a safe Loader",
    "from yaml import load_all, UnsafeLoader\nload_all(t, Loader=UnsafeLoader)": "yaml.load_all without",
    "import yaml\nyaml.unsafe_load(text)": "yaml.unsafe_load",
    "import yaml as y\ny.full_load(text)": "yaml.full_load",
    "import dagster as dg\nresources = {'io_manager': dg.FilesystemIOManager()}": "FilesystemIOManager pickles",
    "from dagster import fs_io_manager": "fs_io_manager pickles",
}
CLEAN = [
    "import numpy as np\nnp.load('a.npz', allow_pickle=False)\nnp.load('b.npy')",
    "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)",
    "from yaml import CSafeLoader, load\nload(text, CSafeLoader)",
    "import json\njson.load(fh)\nmessage = 'never pickle: import pickle; torch.load(allow_pickle=True)'",
    "def load(path):\n    return path\nload('x')  # a local function named load",
    "import orbax.checkpoint as ocp\nocp.StandardCheckpointer().restore('p')",
]


@pytest.mark.parametrize("source", PLANTED, ids=range(len(PLANTED)))
def test_guard_catches_planted_use(source):
    problems = pickle_problems(textwrap.dedent(source), "planted.py")
    assert problems and all(p.startswith("planted.py:") for p in problems)
    assert any(PLANTED[source] in p for p in problems), problems


@pytest.mark.parametrize("source", CLEAN, ids=range(len(CLEAN)))
def test_guard_passes_safe_code(source):
    assert pickle_problems(source) == []


def test_guard_finds_a_file_planted_in_the_tree(tmp_path):
    for folder in SCANNED:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "ok.py").write_text("import json\n")
    (tmp_path / "assets" / "sub").mkdir()
    (tmp_path / "assets" / "sub" / "bad.py").write_text(
        '"""Doc."""\n\nimport numpy as np\nnp.load("x", allow_pickle=True)\n'
    )
    count, problems = scan(tmp_path)
    assert count == len(SCANNED) + 1
    assert problems == ["assets/sub/bad.py:4: allow_pickle=True"]
