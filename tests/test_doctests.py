"""The examples in the docstrings of every proctopo module run and give what they show.

The modules are those of the imported package, so this runs the same whether proctopo
comes from the source tree or from an installed wheel.
"""

from __future__ import annotations

import doctest
import importlib
import multiprocessing
import pkgutil

import proctopo
import pytest

_SUBMODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(proctopo.__path__, "proctopo.")
    if info.name.rpartition(".")[2].isidentifier() and info.name != "proctopo.__main__"
)
MODULES = ["proctopo", *_SUBMODULES]
#: Modules whose docstrings hold examples that run (not only skipped ones).
WITH_EXAMPLES = {
    "proctopo",
    "proctopo.cli",
    "proctopo.comm",
    "proctopo.deepspeed",
    "proctopo.demo",
    "proctopo.device_mesh",
    "proctopo.draw",
    "proctopo.errors",
    "proctopo.grid",
    "proctopo.groups",
    "proctopo.hosts",
    "proctopo.launch",
    "proctopo.machine",
    "proctopo.megatron",
    "proctopo.planner",
    "proctopo.planner.api",
    "proctopo.planner.inputs",
    "proctopo.planner.render",
    "proctopo.planner.results",
    "proctopo.testing",
    "proctopo.topology",
    "proctopo.torchtitan",
}


def test_the_modules_are_found() -> None:
    assert set(MODULES) >= WITH_EXAMPLES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see stdout)"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} has examples, but doctest found none"
    assert multiprocessing.active_children() == []  # an example started no process
