"""proctopo.launch: local gloo processes with results per rank, hangs and crashes named."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import PRELOAD, RunWorkers, launch_workers
from proctopo import InvalidArgumentError, launch


def _run(fn: Any, nproc: int, tmp_path: Path, *args: Any, **kwargs: Any) -> list[launch.RankResult]:
    return launch.run(fn, nproc, args, workdir=tmp_path, preload=PRELOAD, **kwargs)


@pytest.mark.mp
def test_results_come_back_per_rank_in_rank_order(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.hello, 3, tmp_path, "hi", timeout=60)
    assert [r.status for r in results] == ["ok"] * 3 and launch.summary(results) == ""
    assert [r.value for r in results] == [("hi", r, 3, [0, 1, 2]) for r in range(3)]
    assert [(r.exitcode, r.killed) for r in results] == [(0, False)] * 3
    assert list(tmp_path.iterdir()) == []  # the rendezvous directory is removed


@pytest.mark.mp
def test_ranks_can_meet_through_a_tcp_store_as_under_torchrun(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.store_kind, 3, tmp_path, timeout=60, store="tcp")
    assert [r.value for r in results] == [("TCPStore", [0, 1, 2])] * 3, launch.summary(results)
    results = _run(launch_workers.store_kind, 2, tmp_path, timeout=60)
    assert [r.value for r in results] == [("FileStore", [0, 1])] * 2, launch.summary(results)


@pytest.mark.mp
def test_a_hung_rank_is_killed_and_named(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.hang_on, 3, tmp_path, 1, timeout=3)
    assert [r.status for r in results] == ["ok", "timeout", "ok"]
    assert [results[0].value, results[2].value] == [0, 2]
    assert results[1].killed and results[1].exitcode == -9
    text = launch.summary(results)
    assert text.startswith("rank 1 of 3 timed out: still running after 3 s (a hang); killed (pid ")
    assert len(text.splitlines()) == 1  # the ranks killed only because of the hang are not named
    pid = int(text.rsplit("pid ", 1)[1].rstrip(")"))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert multiprocessing.active_children() == []


@pytest.mark.mp
def test_after_a_failure_the_others_are_stopped_before_the_deadline(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.fail_on, 3, tmp_path, 2, timeout=120, grace=0.5)
    assert [r.status for r in results] == ["stopped", "stopped", "error"]
    assert "ValueError: rank 2 was told to fail" in results[2].error
    assert 'in fail_on\n    raise ValueError(f"rank {rank} was told to fail")' in results[2].error
    lines = launch.summary(results).splitlines()
    assert lines[0].startswith("rank 0 of 3 was stopped after another rank failed: killed (pid ")
    assert lines[0].endswith(") 0.5 s after the first failure")
    assert "rank 2 of 3 failed: ValueError: rank 2 was told to fail" in lines


@pytest.mark.mp
def test_a_rank_that_dies_and_a_result_that_cannot_travel_are_errors(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.die_on, 2, tmp_path, 0, timeout=60)
    assert [r.status for r in results] == ["error", "ok"]
    assert results[0].error == "exited with code 3 without a result"
    # One rank: with two, the rank reporting first exits with 1 at once, and the other may
    # then fail its own set-up (a peer gone while gloo connects) before it gets to pickle.
    results = _run(launch_workers.unpicklable, 1, tmp_path, timeout=60)
    assert [r.status for r in results] == ["error"]
    assert results[0].error.startswith("its return value cannot be pickled: ")


@pytest.mark.mp
def test_a_grid_job_ending_as_a_script_exits_with_0_on_every_rank(tmp_path: Path, torch_dist: Any) -> None:
    # natural_exit: destroy_process_group() and the interpreter's whole teardown, no os._exit
    results = _run(launch_workers.grid_ending, 4, tmp_path, timeout=120, exit_timeout=60, natural_exit=True)
    assert launch.summary(results) == ""
    assert [(r.status, r.exitcode, r.killed) for r in results] == [("ok", 0, False)] * 4
    assert [r.value for r in results] == [
        {"pipe": [0, 2], "data": [0, 1]},
        {"pipe": [1, 3], "data": [0, 1]},
        {"pipe": [0, 2], "data": [2, 3]},
        {"pipe": [1, 3], "data": [2, 3]},
    ]


@pytest.mark.mp
@pytest.mark.slow
def test_a_process_that_does_not_exit_with_0_after_its_value_is_named(
    tmp_path: Path, torch_dist: Any
) -> None:
    results = _run(launch_workers.bad_exits, 4, tmp_path, timeout=120, exit_timeout=15, natural_exit=True)
    assert [(r.status, r.value) for r in results] == [("ok", r) for r in range(4)]
    assert [(r.exitcode, r.killed) for r in results] == [(0, False), (3, False), (-6, False), (-9, True)]
    assert launch.summary(results).splitlines() == [
        "rank 1 of 4 returned a value but its process exited with code 3",
        "rank 2 of 4 returned a value but its process was ended by signal SIGABRT (exit code -6)",
        "rank 3 of 4 returned a value but its process did not exit in time and was killed",
    ]
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    ("results", "text"),
    [
        (
            [launch.RankResult(0, "ok", 0, exitcode=0), launch.RankResult(1, "ok", 1, exitcode=-6)],
            "rank 1 of 2 returned a value but its process was ended by signal SIGABRT (exit code -6)",
        ),
        (
            [
                launch.RankResult(0, "ok", 0, exitcode=-9, killed=True),
                launch.RankResult(1, "ok", 1, exitcode=0),
            ],
            "rank 0 of 2 returned a value but its process did not exit in time and was killed",
        ),
    ],
)
def test_run_workers_fails_a_test_whose_process_did_not_exit_with_0(
    results: list[launch.RankResult],
    text: str,
    run_workers: RunWorkers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(launch, "run", lambda *args, **kwargs: results)
    with pytest.raises(pytest.fail.Exception) as info:
        run_workers(launch_workers.hello, 2, ("hi",))
    assert str(info.value) == f"hello on 2 processes:\n{text}"
    monkeypatch.setattr(
        launch, "run", lambda *args, **kwargs: [replace(r, exitcode=0, killed=False) for r in results]
    )
    assert run_workers(launch_workers.hello, 2, ("hi",)) == [0, 1]


@pytest.mark.mp
def test_prove_group_refuses_non_members_and_times_out(tmp_path: Path, torch_dist: Any) -> None:
    results = _run(launch_workers.proof_errors, 3, tmp_path, timeout=60)
    assert launch.summary(results) == ""
    assert results[2].value["non-member"].startswith("rank 2 cannot prove ")
    assert (
        results[0]
        .value["timeout"]
        .startswith("all_reduce over group [0, 1] did not finish within 1 s on rank 0: ")
    )
    assert results[1].value == {}


@pytest.mark.parametrize(
    ("fn", "nproc", "kwargs", "text"),
    [
        (launch_workers.hello, 0, {}, "nproc must be an integer of at least 1, got 0"),
        (launch_workers.hello, 2.0, {}, "nproc must be an integer of at least 1, got 2.0"),
        (launch_workers.hello, 2, {"timeout": 0}, "timeout must be a finite number of seconds above 0 and"),
        (launch_workers.hello, 2, {"timeout": float("inf")}, "timeout must be a finite number of seconds"),
        (launch_workers.hello, 2, {"grace": -1}, "grace must be a number of seconds of at least 0, got -1"),
        (
            launch_workers.hello,
            2,
            {"exit_timeout": -1},
            "exit_timeout must be a finite number of seconds above 0",
        ),
        (
            launch_workers.hello,
            2,
            {"natural_exit": True, "start_method": "forkserver"},
            "natural_exit needs start_method 'spawn', got 'forkserver': a forked process ends with os._exit",
        ),
        (launch_workers.hello, 2, {"store": "env"}, "store must be 'file' or 'tcp', got 'env'"),
        (lambda r, n: r, 2, {}, "fn and args must be picklable (fn a module-level function): "),
    ],
)
def test_bad_arguments_fail_before_any_process_starts(
    fn: Any, nproc: Any, kwargs: dict[str, Any], text: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        launch.run(fn, nproc, workdir=tmp_path, **kwargs)
    assert str(info.value).startswith(text)
    assert multiprocessing.active_children() == [] and list(tmp_path.iterdir()) == []


def test_importing_the_launcher_the_demo_and_the_cli_loads_no_torch() -> None:
    code = "import sys, proctopo.launch, proctopo.demo, proctopo.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
