"""The main job: ``python -m proctopo run`` runs a real grid over local gloo processes.

A PipelineParallelGrid for DeepSpeed's pipe/data axes, a ProcessGrid for any other names
(Megatron's, torchtitan's); each proves every group of every axis with an all_reduce.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from proctopo import demo
from proctopo.groups import CPU_STRATEGIES
from proctopo.testing import RecordingComm


def _demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proctopo", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.mp
def test_demo_proves_every_group_and_prints_the_layout(torch_dist: Any) -> None:
    out = _demo("pipe=2", "data=2", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == (
        "proctopo PipelineParallelGrid pipe=2 x data=2 over 4 gloo processes, group_creation='local'"
    )
    # rank | pipe data | pipe group, data group, DeepSpeed's model-parallel group
    rows = [ln.split("|") for ln in lines if ln[:4].strip().isdigit()]
    assert [r[1].split() for r in rows] == [["0", "0"], ["0", "1"], ["1", "0"], ["1", "1"]]
    assert "[1, 3]  [2, 3]  [1, 3]" in rows[3][2]
    assert lines[-1].startswith("OK: 12/12 group memberships proven by all_reduce")


@pytest.mark.mp
def test_demo_with_global_strategy_and_deepspeed_default_split(torch_dist: Any) -> None:
    out = _demo("--nproc", "4", "--strategy", "global", "--quiet", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("OK: 12/12")
    assert "group_creation='global'" in out.stdout


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess[str]:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    return subprocess.run(
        [*torchrun, "-m", "proctopo", "run", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.mp
def test_demo_under_torchrun(torch_dist: Any) -> None:
    out = _torchrun(2, "--quiet", "--timeout", "60")
    assert out.returncode == 0, out.stderr[-3000:]
    # DeepSpeed's default split of 2 ranks: pipe=2 x data=1; 3 groups proven on each rank.
    assert out.stdout.strip() == (
        "OK: 6/6 group memberships proven by all_reduce (member ranks and sum of rank+1 as expected) "
        "on 2 ranks, group_creation='local'"
    )


@pytest.mark.mp
def test_megatron_names_build_a_process_grid_and_prove_it(torch_dist: Any) -> None:
    out = _demo("tp=2", "cp=2", "pp=2", "--nproc", "8", "--timeout", "60")
    assert out.returncode == 0, out.stderr[-3000:]  # every rank returned and proved its groups
    lines = out.stdout.splitlines()
    assert lines[0] == "proctopo ProcessGrid tp=2 x cp=2 x pp=2 over 8 gloo processes, group_creation='local'"
    rows = {int(r[0]): r for r in (ln.split("|") for ln in lines) if r[0].strip().isdigit()}
    assert sorted(rows) == list(range(8))
    assert rows[5][1].split() == ["1", "0", "1"]  # tp is the slowest axis, as the words say
    assert re.findall(r"\[.*?\]", rows[5][2]) == ["[1, 5]", "[5, 7]", "[4, 5]"]
    assert lines[-1].startswith("OK: 24/24 group memberships proven by all_reduce")
    # The words were read slowest first, and the warning says so and how to write it the other way.
    assert out.stderr == (
        "proctopo run: warning: tp=2 cp=2 pp=2 puts tp outermost and pp innermost (name=size words are "
        "slowest first); for tp innermost, as the Megatron order tp-cp-pp means, add --order tp-cp-pp or "
        "write pp=2 cp=2 tp=2\n"
    )


@pytest.mark.mp
def test_torchtitan_names_under_torchrun_every_process_exits_0(torch_dist: Any) -> None:
    out = _torchrun(4, "dp_shard=2", "tp=2", "--timeout", "60")
    assert out.returncode == 0, out.stderr[-3000:]  # torchrun: every process exited with 0
    lines = out.stdout.splitlines()
    assert lines[0] == "proctopo ProcessGrid dp_shard=2 x tp=2 over 4 gloo processes, group_creation='local'"
    row3 = next(ln for ln in lines if ln.startswith("   3 |"))
    assert re.findall(r"\[.*?\]", row3.split("|")[2]) == ["[1, 3]", "[2, 3]"]
    assert lines[-1].startswith("OK: 8/8 group memberships proven by all_reduce")
    assert "warning" not in out.stderr  # dp_shard outermost, tp innermost: torchtitan's order


def test_the_library_module_is_not_the_entry() -> None:
    out = subprocess.run([sys.executable, "-m", "proctopo.demo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert "run python -m proctopo run" in out.stderr and "-m proctopo run" in out.stderr


def test_demo_rejects_bad_arguments_before_starting_processes() -> None:
    out = _demo("pipe=2", "data=3", "--nproc", "4")
    assert out.returncode == 2
    assert out.stderr == "proctopo run: error: pipe * data = 2 * 3 = 6, but --nproc is 4\n"
    out = _demo("pipe=two")
    assert (
        out.returncode == 2 and "proctopo run: error: axis 'pipe=two' must be written name=size" in out.stderr
    )


def _record(rank: int, ok: bool) -> dict[str, Any]:
    return {
        "rank": rank,
        "coord": [0, rank],
        "cells": [("data", [0, 1], ok)],
        "ms": 1.0,
        "calls": 1,
        "strategy": "local",
        "grid": "PipelineParallelGrid",
        "axes": ["pipe", "data"],
        "shape": "pipe=1 x data=2",
    }


def test_report_counts_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo._report([_record(0, True), _record(1, False)], quiet=False) == 1
    text = capsys.readouterr().out
    assert text.startswith(
        "proctopo PipelineParallelGrid pipe=1 x data=2 over 2 gloo processes, group_creation='local'\n"
    )
    assert "[0, 1] FAILED" in text and text.strip().endswith("group_creation='local'")
    assert "FAILED: 1/2 group memberships" in text
    assert demo._report([_record(0, True), _record(1, True)], quiet=True) == 0
    assert capsys.readouterr().out.startswith("OK: 2/2 group memberships")


def test_a_failed_rank_is_reported_and_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from proctopo import launch

    def fake_run(fn: Any, nproc: int, args: Any, **kwargs: Any) -> list[launch.RankResult]:
        assert fn is demo._rank and nproc == 2 and kwargs == {"timeout": 5.0}
        return [launch.RankResult(0, "ok", _record(0, True)), launch.RankResult(1, "timeout", error="hung")]

    monkeypatch.setattr(launch, "run", fake_run)
    monkeypatch.setattr(demo, "require_torch", lambda: None)  # the report is torch-free; so is this test
    monkeypatch.delenv("RANK", raising=False)
    assert demo.run(None, 2, "local", 5.0, quiet=True) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "proctopo run: rank 1 of 2 timed out: hung\n"


def test_bad_arguments_are_refused_before_any_process_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from proctopo import GridSizeError, GroupCreationError, ProcessTopology, launch

    started: list[int] = []
    monkeypatch.setattr(launch, "run", lambda fn, nproc, *a, **k: started.append(nproc) or [])
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(GridSizeError, match=r"tp \* pp = 2 \* 2 = 4, but the world size is 8"):
        demo.run(ProcessTopology(["tp", "pp"], [2, 2]), 8)
    with pytest.raises(GroupCreationError, match="group_creation='split' is not possible here"):
        demo.run(ProcessTopology(["dp_shard", "tp"], [2, 2]), strategy="split")
    assert started == []
    # Under a launcher: the grid's rules are checked before torch is even imported.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "6")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(GridSizeError, match="= 8, but the world size is 6"):
        demo.run(ProcessTopology(["pipe", "data", "model"], [2, 2, 2]))


@pytest.mark.parametrize(
    ("axes", "grid"),
    [
        (["pipe", "data"], "PipelineParallelGrid"),
        (["tp", "pp"], "ProcessGrid"),
        (["pipe", "model"], "ProcessGrid"),
    ],
)
def test_split_is_not_offered_where_the_job_cannot_use_it(axes: list[str], grid: str) -> None:
    # The job's processes use gloo on CPU; the grid refuses "split" there, so the job does not offer it.
    from proctopo import GroupCreationError, ProcessTopology, ProctopoError

    topo = ProcessTopology(axes, [2, 2])
    assert type(demo.build_grid(topo, "auto", 60.0, RecordingComm(0, 4))).__name__ == grid
    assert "split" not in CPU_STRATEGIES
    with pytest.raises(GroupCreationError, match="group_creation='split' is not possible here"):
        demo.preflight(topo, 0, 4, "split", 60.0)
    for strategy in CPU_STRATEGIES:  # each passes the grid's rules (torch may be missing here)
        try:
            demo.preflight(topo, 0, 4, strategy, 60.0)
        except ProctopoError as exc:
            assert "needs torch" in str(exc), f"{strategy}: {exc}"
