"""Helpers of the test suite (importable as ``helpers``: pytest puts tests/ on sys.path).

Peers (torch, DeepSpeed, megatron-core) are optional for a developer, but CI sets
PROCTOPO_REQUIRE_PEERS=1 so that a missing peer fails the run instead of skipping
its differential tests into green.

Multi-process tests use the ``run_workers`` fixture of conftest.py, which runs a
function of :mod:`helpers.grid_workers` or :mod:`helpers.pipeline_module_workers`
on gloo processes through :func:`proctopo.launch.run`.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["PRELOAD", "RunWorkers", "require", "run_capped"]

#: The type of the ``run_workers`` fixture: ``(fn, world_size, args=(), timeout=60) -> values``.
RunWorkers = Callable[..., list[Any]]

#: What the forkserver of the multi-process tests imports once: torch, proctopo and the
#: peers the workers use (a missing one is skipped by the forkserver, not an error).
PRELOAD = (
    "torch",
    "torch.distributed",
    "torch.distributed.tensor",
    "numpy",
    "proctopo",
    "proctopo.grid",
    "deepspeed",
    "deepspeed.pipe",
    "torchtitan.distributed.parallel_dims",
)


#: Peers that publish no release for older Pythons: below the version named, such a peer
#: cannot be installed, so its tests skip even when PROCTOPO_REQUIRE_PEERS=1.
PEER_MIN_PYTHON = {"torchtitan": (3, 11)}


def require(module: str) -> types.ModuleType:
    """Import a peer module; skip when absent unless PROCTOPO_REQUIRE_PEERS=1 (then fail)."""
    floor = PEER_MIN_PYTHON.get(module.partition(".")[0])
    if floor is not None and sys.version_info[:2] < floor:
        pytest.skip(f"{module} has no release for Python {sys.version_info[0]}.{sys.version_info[1]}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("PROCTOPO_REQUIRE_PEERS") == "1":
            pytest.fail(f"{module} is required in this run (PROCTOPO_REQUIRE_PEERS=1): {exc}")
        pytest.skip(f"{module} is not installed: {exc}")


def run_capped(
    args: list[str], limit: int, *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a child whose address space is capped at ``limit`` bytes (RLIMIT_AS).

    The timeout only turns a hang into a failure; the output is captured as text.
    """

    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
