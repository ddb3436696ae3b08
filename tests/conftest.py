"""Fixtures and markers shared by the test suite; plain helpers live in the ``helpers`` package.

Markers (registered in pyproject.toml):

- ``torch``: the test needs torch or a comparison peer (DeepSpeed, megatron-core). A test
  file whose every test does carries ``pytestmark = pytest.mark.torch``; a test that uses
  the ``torch_dist`` or ``run_workers`` fixture, or is marked ``mp``, is marked here.
- ``mp``: the test starts torch.distributed processes (``run_workers`` marks it here).

The torch-free runs (the wheel on every Python, the suite against the sanitized extension)
select ``-m "not torch"`` and set ``PROCTOPO_TORCH_FREE=1``. Then torch, DeepSpeed and
megatron-core cannot be imported in the test process, as on a machine without them, and
a test not marked ``torch`` that needs one of them fails, naming the module, instead of
passing because this machine happens to have it, or being skipped.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import PRELOAD, RunWorkers, require
from proctopo import launch

#: Top-level packages that a torch-free run keeps out of the test process.
TORCH_PACKAGES = ("torch", "deepspeed", "megatron")
TORCH_FREE = os.environ.get("PROCTOPO_TORCH_FREE") == "1"


class _TorchBlocker(importlib.abc.MetaPathFinder):
    """Refuses the imports of :data:`TORCH_PACKAGES` and remembers which were asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.partition(".")[0] not in TORCH_PACKAGES:
            return None
        self.asked.append(name)
        raise ModuleNotFoundError(f"No module named {name!r} (PROCTOPO_TORCH_FREE=1)", name=name)

    def take(self) -> list[str]:
        asked, self.asked = self.asked, []
        return asked


_blocker = _TorchBlocker()


def pytest_configure(config: pytest.Config) -> None:
    if not TORCH_FREE:
        return
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in TORCH_PACKAGES)
    if loaded:
        raise pytest.UsageError(
            f"PROCTOPO_TORCH_FREE=1, but {', '.join(loaded[:3])} was imported before the tests started "
            "(by a pytest plugin or sitecustomize): the run cannot be torch-free"
        )
    sys.meta_path.insert(0, _blocker)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _blocker.take()  # what was asked before this test (at collection) is not this test's


def pytest_unconfigure(config: pytest.Config) -> None:
    if _blocker in sys.meta_path:
        sys.meta_path.remove(_blocker)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts processes through ``run_workers`` is an ``mp`` test, marked or not;
    an ``mp`` test, or one that uses ``torch_dist``, is a ``torch`` test."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "run_workers" in fixtures:
            item.add_marker(pytest.mark.mp)
        if "torch_dist" in fixtures or item.get_closest_marker("mp") is not None:
            item.add_marker(pytest.mark.torch)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """In a torch-free run, a test not marked ``torch`` that was skipped or failed after
    asking for torch or a peer fails, and says so: it needs what the run leaves out.

    One that asked and passed all the same works without them, as it must on a machine
    that lacks them (it checks, say, the message that names the missing package).
    """
    outcome = yield
    asked = _blocker.take()
    report = outcome.get_result()
    if not asked or report.passed or item.get_closest_marker("torch") is not None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} asked for {', '.join(dict.fromkeys(asked))} in a torch-free run "
        "(PROCTOPO_TORCH_FREE=1) and did not pass without it, but is not marked `torch`: mark it "
        "(`@pytest.mark.torch`, or `pytestmark = pytest.mark.torch` for a whole file), or make it "
        f"work without torch\n\n{report.longrepr}"
    )


@pytest.fixture
def torch_dist() -> Any:
    """torch.distributed (skips, or fails under PROCTOPO_REQUIRE_PEERS=1, without torch)."""
    return require("torch.distributed")


@pytest.fixture
def run_workers(tmp_path: Path, torch_dist: Any) -> RunWorkers:
    """``run_workers(fn, world_size, args=(), timeout=60)``: ``fn(rank, world_size, *args)`` on gloo
    processes (see :func:`proctopo.launch.run`); returns each rank's value, in rank order.

    The test fails unless every rank returned and its process then exited with 0: it
    names each rank that raised (with its traceback), hung or was stopped, and each
    whose process exited with another code (an abort at exit shows as SIGABRT) or had
    to be killed after returning (see :func:`proctopo.launch.summary`).
    """

    def run(
        fn: Callable[..., Any], world_size: int, args: Sequence[Any] = (), timeout: float = 60.0
    ) -> list[Any]:
        results = launch.run(fn, world_size, args, timeout=timeout, workdir=tmp_path, preload=PRELOAD)
        failures = launch.summary(results)
        if failures:
            pytest.fail(f"{fn.__name__} on {world_size} processes:\n{failures}", pytrace=False)
        return [r.value for r in results]

    return run
