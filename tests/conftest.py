"""Fixtures shared by the test suite; plain helpers live in the ``helpers`` package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import PRELOAD, RunWorkers, require
from proctopo import launch

# `require` is also importable from here for test files not yet moved to `from helpers import require`.
__all__ = ["require"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts processes through ``run_workers`` is an ``mp`` test, marked or not."""
    for item in items:
        if "run_workers" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mp)


@pytest.fixture
def torch_dist() -> Any:
    """torch.distributed (skips, or fails under PROCTOPO_REQUIRE_PEERS=1, without torch)."""
    return require("torch.distributed")


@pytest.fixture
def run_workers(tmp_path: Path, torch_dist: Any) -> RunWorkers:
    """``run_workers(fn, world_size, args=(), timeout=60)``: ``fn(rank, world_size, *args)`` on gloo
    processes (see :func:`proctopo.launch.run`); returns each rank's value, in rank order.

    The test fails, naming each rank that raised (with its traceback), hung or was
    stopped, unless every rank returned.
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
