"""Shared pytest helpers.

Peers (DeepSpeed, megatron-core, torch) are optional for a developer, but CI sets
PROCTOPO_REQUIRE_PEERS=1 so that a missing peer fails the run instead of skipping
its differential tests into green.
"""

from __future__ import annotations

import importlib
import os
import types

import pytest


def require(module: str) -> types.ModuleType:
    """Import a peer module; skip when absent unless PROCTOPO_REQUIRE_PEERS=1."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("PROCTOPO_REQUIRE_PEERS") == "1":
            pytest.fail(f"{module} is required in this run (PROCTOPO_REQUIRE_PEERS=1): {exc}")
        pytest.skip(f"{module} is not installed: {exc}")
