"""The main job: ``python -m proctopo.demo`` runs a real grid over local gloo processes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import proctopo
import pytest
from conftest import require


@pytest.fixture(scope="module")
def torch_dist() -> Any:
    return require("torch.distributed")


def _demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctopo.demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_proves_every_group_and_prints_the_layout(torch_dist: Any) -> None:
    out = _demo("pipe=2", "data=2", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "proctopo grid pipe=2 x data=2 over 4 gloo processes, group_creation='local'"
    # rank | pipe data | pipe group, data group, DeepSpeed's model-parallel group
    rows = [ln.split("|") for ln in lines if ln[:4].strip().isdigit()]
    assert [r[1].split() for r in rows] == [["0", "0"], ["0", "1"], ["1", "0"], ["1", "1"]]
    assert "[1, 3]  [2, 3]  [1, 3]" in rows[3][2]
    assert lines[-1].startswith("OK: 12/12 group memberships proven by all_reduce")


def test_demo_with_global_strategy_and_deepspeed_default_split(torch_dist: Any) -> None:
    out = _demo("--nproc", "4", "--strategy", "global", "--quiet", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("OK: 12/12")
    assert "group_creation='global'" in out.stdout


def test_demo_rejects_bad_arguments_before_starting_processes() -> None:
    out = _demo("pipe=2", "data=3", "--nproc", "4")
    assert out.returncode == 2
    assert "pipe * data = 2 * 3 = 6, but --nproc is 4" in out.stderr
    out = _demo("pipe=two")
    assert out.returncode == 2 and "name=size" in out.stderr


def test_report_counts_failures(capsys: pytest.CaptureFixture[str]) -> None:
    from proctopo import demo

    class Grid:
        strategy = "local"
        _pt = proctopo.ProcessTopology(["pipe", "data"], [1, 2])

    records = [
        {"rank": 0, "coord": [0, 0], "cells": [("data", [0, 1], True)], "ms": 1.0, "calls": 1},
        {"rank": 1, "coord": [0, 1], "cells": [("data", [0, 1], False)], "ms": 1.0, "calls": 1},
    ]
    assert demo._report(Grid(), ["pipe", "data"], records, quiet=False) == 1
    text = capsys.readouterr().out
    assert "[0, 1] FAILED" in text and text.strip().endswith("group_creation='local'")
    assert "FAILED: 1/2 group memberships" in text
