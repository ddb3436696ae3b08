"""Ending and rebuilding on real gloo groups: a job's standard ending, and create / prove /
destroy cycles per strategy.

torch 2.13 names a locally synchronised group from its ranks and the number of
groups registered on the rank, so destroying groups and making the same ones
again would hand out the destroyed groups' names, and gloo would pick up their
stale rendezvous keys and hang; the cycles below would hang (and fail at the
run's deadline) without the name ledger of proctopo.comm. torch 2.14 names from
a count of creation calls that only the members of a group raise, so the cycles
also fail when the grid does not keep that count in step across ranks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import RunWorkers, require
from helpers import teardown_workers as workers

pytestmark = pytest.mark.mp

CYCLES = 10
#: Seconds the ranks of a job ending as scripts do get, together, before they count as hung.
DEADLINE = 180.0
TESTS = Path(__file__).resolve().parent


def _end_as_scripts_do(jobs: str, tmp_path: Path, world: int = 4) -> list[tuple[int | str, str]]:
    """Run ``jobs`` (of :data:`helpers.teardown_workers.ENDINGS`, comma-separated) on ``world``
    processes, each a plain ``python`` ending with ``destroy_process_group()`` and interpreter
    shutdown (no ``os._exit``, unlike :func:`proctopo.launch.run`). Returns each rank's exit
    code and the end of its stderr.

    A rank still running after :data:`DEADLINE` seconds is stopped with SIGABRT, which
    makes Python print the stack of each of its threads (``PYTHONFAULTHANDLER``), and is
    reported as ``"hung"``.
    """
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    tmp_path.mkdir(parents=True, exist_ok=True)
    init = tmp_path / "rendezvous"
    errs = [tmp_path / f"stderr.{r}" for r in range(world)]
    procs: list[subprocess.Popen[bytes]] = []
    hung: set[int] = set()
    try:
        for r in range(world):
            argv = [sys.executable, "-m", "helpers.teardown_workers", jobs, str(init), str(r), str(world)]
            with errs[r].open("w") as err:  # a file, not a pipe: no rank blocks on a full pipe
                procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err))
        end = time.monotonic() + DEADLINE
        for r, p in enumerate(procs):
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung.add(r)
        for r in sorted(hung):
            procs[r].send_signal(signal.SIGABRT)
            try:
                procs[r].wait(timeout=30)
            except subprocess.TimeoutExpired:
                procs[r].kill()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [
        ("hung" if r in hung else p.returncode, errs[r].read_text(errors="replace")[-3000:])
        for r, p in enumerate(procs)
    ]


@pytest.mark.parametrize(
    ("jobs", "runs"),
    [
        ("local", 2),  # a grid, one all_reduce over each of its groups, destroy_process_group()
        ("global,unverified,pipeline,mismatch,device_mesh", 1),
    ],
)
def test_a_job_ending_with_destroy_process_group_exits_0_on_every_rank(
    jobs: str, runs: int, tmp_path: Path, torch_dist: object
) -> None:
    """The standard ending: ``dist.destroy_process_group()``, no ``grid.destroy()``, then exit.

    The grid must not keep the default group alive past destroy_process_group(): kept,
    it is destroyed only at interpreter shutdown, and a gloo worker thread that still
    waits for the GIL to release a finished collective's tensor is ended by Python
    inside a destructor (SIGABRT, "terminate called without an active exception").
    The race shows in some runs only; the workers also check its cause: after
    destroy_process_group() nothing may keep the default group alive (see
    helpers/teardown_workers.py).
    """
    for run in range(runs):
        codes = _end_as_scripts_do(jobs, tmp_path / str(run))
        assert [code for code, _ in codes] == [0] * len(codes), (jobs, run, codes)


@pytest.mark.slow
def test_a_megatron_job_ending_with_destroy_model_parallel_exits_0_on_every_rank(
    tmp_path: Path, torch_dist: object
) -> None:
    """A Megatron job's ending: ``destroy_model_parallel()``, then ``destroy_process_group()``.

    The kept groups object holds ``intra_dist_opt``, which spans every rank: the default
    group. Neither it nor proctopo.megatron's module state may keep the default group alive.
    """
    require("megatron.core")
    codes = _end_as_scripts_do("megatron", tmp_path)
    assert [code for code, _ in codes] == [0] * len(codes), codes


def test_destroy_model_parallel_unbinds_the_default_group_from_torch_defaults(
    run_workers: RunWorkers,
) -> None:
    """torch modules imported after ``init_process_group()`` bind the default group as the
    value of their ``group=group.WORLD`` defaults (importing megatron-core imports
    ``torch.distributed.nn.functional``); destroy_model_parallel() puts back ``None``,
    which those functions read as the default group of the time of the call."""
    require("megatron.core")
    results = run_workers(workers.torch_defaults_bound, 2, timeout=120)
    for res in results:
        functional = [f for f in res["before"] if f.startswith("torch.distributed.nn.functional.")]
        assert "torch.distributed.nn.functional.all_reduce" in functional, res
        assert "torch.distributed.fsdp.sharded_grad_scaler.ShardedGradScaler.__init__" in res["before"], res
        assert res["after"] == [], res
        assert res["sum"] == 2.0, res


@pytest.mark.slow
def test_the_check_finds_the_default_group_kept_alive(tmp_path: Path, torch_dist: object) -> None:
    """The workers' check of the cause fails when the default group outlives
    destroy_process_group(): plain torch groups, and a reference to the default group kept."""
    codes = _end_as_scripts_do("torch_keeps_world", tmp_path)
    for code, err in codes:
        # 3: the check, naming the holder; -SIGABRT: the race it causes, when it shows first
        assert code in (3, -signal.SIGABRT), codes
        assert code != 3 or "outlived destroy_process_group(), held by builtins.tuple" in err, codes


@pytest.mark.slow
def test_plain_torch_names_a_rebuilt_group_as_its_naming_counter_says(run_workers: RunWorkers) -> None:
    """The trap itself, as each torch has it.

    torch 2.13 names from the registered groups: the rebuilt group gets the destroyed
    group's name (and store keys), and gloo connects to the destroyed group's
    addresses until its connect timeout. torch 2.14 names from a count of creation
    calls that destroying a group does not lower: the rebuilt group gets a new name.
    """
    results = run_workers(workers.plain_torch_rebuild, 2, (2.0,), timeout=90)
    for naming, made in results:
        assert naming in ("pg_names", "group_count"), results
        assert len(made) >= 1 and not made[0].startswith("error"), results
        if naming == "group_count":
            assert len(made) == 2 and not made[1].startswith("error") and made[1] != made[0], results
        elif len(made) == 2 and not made[1].startswith("error"):
            assert made[1] == made[0], results


@pytest.mark.parametrize("strategy", ["local", "global"])
def test_ten_cycles_free_every_group_and_never_reuse_a_name(strategy: str, run_workers: RunWorkers) -> None:
    world = 4
    results = run_workers(workers.cycles, world, (strategy, CYCLES), timeout=240)
    names_by_cycle: list[set[str]] = [set() for _ in range(CYCLES)]
    for rank, res in enumerate(results):
        start = res["start"]
        assert len(res["cycles"]) == CYCLES
        for k, cyc in enumerate(res["cycles"]):
            where = (strategy, rank, k)
            # the registry returns to where it started, and the grid made what it says
            assert cyc["before"] == start and cyc["after"] == start, (where, cyc)
            assert cyc["refused"], where
            pipe = [rank % 2, rank % 2 + 2]
            data = [rank - rank % 2, rank - rank % 2 + 1]
            family = [0, 1, 2] if rank < 3 else [3]
            assert cyc["proven"] == {"pipe": pipe, "data": data, "single": [rank], "family": family}, where
            # pipe, data, single, and [0, 1, 2] on its members ([3] is rank 3's single group)
            assert cyc["communicators"] == 3 + (rank < 3), (where, cyc)
            if strategy == "local":
                # one call per family: pipe, data, single, and the family's group or a pad
                assert cyc["calls"] == 4 and cyc["made"] == 4, (where, cyc)
            else:
                # every group of every family: 2 pipe, 2 data, 4 single, then [0, 1, 2] only
                assert cyc["calls"] == 9, (where, cyc)
                assert cyc["made"] == cyc["communicators"], (where, cyc)
            for key in ("pipe", "data", "family"):
                if len(cyc["proven"][key]) > 1:
                    names_by_cycle[k].add(cyc["names"][key])
            if strategy == "global":
                names_by_cycle[k].add(cyc["names"]["single"])
    # no name of a multi-rank group (of any group with "global") comes back in a later cycle
    seen: set[str] = set()
    for k, names in enumerate(names_by_cycle):
        assert not names & seen, (strategy, k, sorted(names & seen))
        seen |= names
