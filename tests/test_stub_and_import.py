"""The stub matches the compiled module; importing proctopo stays light."""

from __future__ import annotations

import ast
import doctest
import inspect
import subprocess
import sys
from pathlib import Path

import proctopo
from proctopo import _core, cli, topology

STUB = Path(proctopo.__file__).with_name("_core.pyi")


def _stub_names() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text())
    top: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return top, members


def test_stub_and_module_agree() -> None:
    top, members = _stub_names()
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert top == public
    own = {
        n
        for n in vars(_core.Topology)
        if not n.startswith("_") or n in {"__init__", "__eq__", "__hash__", "__getstate__", "__setstate__"}
    }
    assert members["Topology"] == own


def test_import_does_not_load_torch_or_numpy() -> None:
    code = (
        "import sys, proctopo; t = proctopo.ProcessTopology(['a'], [2]); t.get_coord(1); "
        "print(sorted(m for m in ('torch', 'numpy', 'deepspeed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_grid_attribute_is_lazy() -> None:
    code = "import sys, proctopo; from proctopo import *; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_docstring_examples_run() -> None:
    for module in (proctopo, topology, cli):
        result = doctest.testmod(module, raise_on_error=False, verbose=False)
        assert result.failed == 0 and (module is not topology or result.attempted > 20), result


def test_public_functions_have_docstrings() -> None:
    for name, member in inspect.getmembers(topology.ProcessTopology):
        if not name.startswith("_") and callable(member):
            assert member.__doc__, name
