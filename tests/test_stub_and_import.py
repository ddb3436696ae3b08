"""The stub matches the compiled module; importing proctopo stays light."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from proctopo import _core, topology

ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


@pytest.mark.slow
def test_stub_and_module_agree() -> None:
    """mypy's stubtest: every name of the compiled module is in the stub and the reverse."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "proctopo._core", "--allowlist", str(ALLOWLIST)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # stubtest cannot read pybind11 signatures, so also compare the members by name.
    tree = ast.parse(Path(topology.__file__).with_name("_core.pyi").read_text())  # beside the package
    stub_cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Topology")
    stub_members = {n.name for n in stub_cls.body if isinstance(n, ast.FunctionDef)}
    dunders = {"__init__", "__eq__", "__hash__", "__getstate__", "__setstate__"}
    runtime = {n for n in vars(_core.Topology) if not n.startswith("_") or n in dunders}
    assert stub_members == runtime


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


def test_public_functions_have_docstrings() -> None:
    for name, member in inspect.getmembers(topology.ProcessTopology):
        if not name.startswith("_") and callable(member):
            assert member.__doc__, name
