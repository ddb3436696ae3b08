"""Worker functions of tests/test_grid_mp.py, run on gloo processes by the ``run_workers`` fixture."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

from proctopo.launch import prove_group

TIMEOUT = 30.0


def _proves(group: Any) -> list[int]:
    """The ranks of ``group``, proven by an all_reduce (a wrong sum raises)."""
    return prove_group(group, timeout=TIMEOUT)


def real_groups(rank: int, world_size: int, cases: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Build each (axes, dims, strategy, expectations) grid; check every group against DeepSpeed."""
    import proctopo
    import torch.distributed as dist
    from proctopo import GroupCreationError, GroupNotCreatedError
    from proctopo.grid import PipelineParallelGrid

    checked = 0
    strategies = []
    for axes, dims, strategy, exp_all in cases:
        exp = exp_all[rank]
        topo = None if axes is None else proctopo.ProcessTopology(axes, dims)
        grid = PipelineParallelGrid(topo, group_creation=strategy, timeout=TIMEOUT)
        strategies.append(grid.strategy)
        where = f"{axes}={dims} strategy={strategy} rank={rank}"
        for name, want in exp["groups"].items():
            got = _proves(getattr(grid, name))
            assert got == want, f"{where}: {name} has ranks {got}, DeepSpeed's has {want}"
            checked += 1
        for name, want in exp["values"].items():
            assert getattr(grid, name) == want, f"{where}: {name}={getattr(grid, name)!r}, DeepSpeed {want!r}"
        for getter, attr in (
            ("get_data_parallel_group", "dp_proc_group"),
            ("get_pipe_parallel_group", "pp_proc_group"),
            ("get_model_parallel_group", "ds_model_proc_group"),
            ("get_slice_parallel_group", "slice_proc_group"),
            ("get_tensor_model_parallel_group", "slice_proc_group"),
        ):
            assert getattr(grid, getter)() is getattr(grid, attr), f"{where}: {getter}"
        # Every axis has its own getters, and every subset of axes a group.
        # ('model' is the exception: get_model_parallel_* is DeepSpeed's every-axis-but-data
        # group; the model axis alone is get_slice_parallel_*.)
        for a in exp["axes"]:
            want = exp["subsets"][(a,)]
            prefix = "get_slice" if a == "model" else f"get_{a}"
            got = _proves(getattr(grid, f"{prefix}_parallel_group")())
            assert got == want, f"{where}: {prefix}_parallel_group has {got}, expected {want}"
            assert getattr(grid, f"{prefix}_parallel_world_size")() == len(want)
            assert getattr(grid, f"{prefix}_parallel_rank")() == want.index(rank)
            assert grid.get_axis_world_size(a) == len(want) and grid.get_axis_rank(a) == want.index(rank)
            checked += 1
        for subset, want in exp["subsets"].items():
            # Every rank finds alike whether the grid holds the group; the others are
            # created explicitly, a checked collective every rank makes in the same order.
            try:
                group = grid.get_group(list(subset))
            except GroupNotCreatedError:
                group = grid.create_group(list(subset))
            assert grid.get_group(list(reversed(subset))) is group
            got = _proves(group)
            assert got == want, f"{where}: get_group({list(subset)}) has {got}, expected {want}"
            assert grid.get_group_ranks(list(subset)) == want
            checked += 1

    # Ordinary new_group calls made by all ranks still work after the grids.
    everyone = dist.new_group(list(range(world_size)))
    assert _proves(everyone) == list(range(world_size))
    pair = dist.new_group([0, world_size - 1])
    if rank in (0, world_size - 1):
        assert _proves(pair) == [0, world_size - 1]
    mine = dist.new_group([rank], use_local_synchronization=True)
    assert _proves(mine) == [rank]

    # gloo cannot split: asking for it is a clear error, not a hang.
    try:
        PipelineParallelGrid(
            proctopo.ProcessTopology(["pipe", "data"], [1, world_size]), group_creation="split"
        )
    except GroupCreationError as exc:
        split_error = str(exc)
    else:
        raise AssertionError("group_creation='split' on gloo did not raise")
    return {"checked": checked, "strategies": strategies, "split_error": split_error}


def over_process_group(
    rank: int, world_size: int, members: list[int], exp_by_grid_rank: list[dict[str, Any]]
) -> Any:
    """A 2x2 grid laid over a subgroup of the world; rank lists are global ranks."""
    import proctopo
    import torch.distributed as dist
    from proctopo import GroupCreationError
    from proctopo.grid import PipelineParallelGrid

    sub = dist.new_group(members)  # every rank calls new_group, as torch requires
    if rank not in members:
        try:
            PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 2]), sub)
        except GroupCreationError as exc:
            assert "not a member of process_group" in str(exc), exc
        else:
            raise AssertionError("a non-member built a grid over process_group")
        return {"rejoined": _rejoin(world_size)}
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, len(members) // 2])
    try:
        PipelineParallelGrid(topo, sub, group_creation="global")
    except GroupCreationError as exc:
        global_error = str(exc)
    else:
        raise AssertionError("'global' inside a proper subgroup did not raise")
    out = {}
    for strategy in ("local", "auto"):
        grid = PipelineParallelGrid(topo, sub, group_creation=strategy, timeout=TIMEOUT)
        me = members.index(rank)
        exp = exp_by_grid_rank[me]
        assert grid.global_rank == rank and grid.grid_rank == me and grid.world_size == len(members)
        for name, want_grid in exp["groups"].items():
            want = [members[r] for r in want_grid]
            got = _proves(getattr(grid, name))
            assert got == want, f"{strategy}: {name} has {got}, expected {want}"
        assert grid.dp_group == [members[r] for r in exp["values"]["dp_group"]]
        assert (
            grid.stage_to_global(0) == members[topo.get_rank(pipe=0, data=exp["values"]["data_parallel_id"])]
        )
        out[strategy] = grid.strategy
    out["global_error"] = global_error
    out["rejoined"] = _rejoin(world_size)
    return out


def _rejoin(world_size: int) -> list[str]:
    """After grids over a subgroup, a grid over the whole world, then a world-wide ``new_group``.

    The members of the subgroup made groups the others did not, so the count torch
    names groups from (the registered groups with torch 2.13, the creation calls
    with torch 2.14, which also names world-wide groups) differs between ranks. The
    grid's check evens it out with single-rank groups on the ranks that made fewer,
    and says so; after it a world-wide ``new_group`` works on every torch (with
    torch 2.14 it would hang without it). Returns the warnings this rank got.
    """
    import datetime

    import torch.distributed as dist
    from proctopo import ProcessGrid, ProcessTopology

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ProcessGrid(ProcessTopology(["world"], [world_size]), group_creation="local", timeout=TIMEOUT)
    group = dist.new_group(list(range(world_size)), timeout=datetime.timedelta(seconds=TIMEOUT))
    assert _proves(group) == list(range(world_size))
    return [str(w.message) for w in caught]


def mismatch(rank: int, world_size: int) -> str:
    """Rank 0 is given a different topology: every rank must fail fast with a clear error."""
    import proctopo
    from proctopo import TopologyMismatchError
    from proctopo.grid import PipelineParallelGrid

    dims = [4, world_size // 4] if rank == 0 else [2, world_size // 2]
    try:
        PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], dims), timeout=TIMEOUT)
    except TopologyMismatchError as exc:
        return str(exc)
    raise AssertionError("no TopologyMismatchError")


def tree_exchange(rank: int, world_size: int) -> str:
    """The exchange's hand-out down gloo's binomial tree (``DIRECT_BYTES = 0``): the same results."""
    import socket

    import proctopo.comm
    from proctopo import ProcessGrid, ProcessTopology, TopologyMismatchError

    proctopo.comm.DIRECT_BYTES = 0
    grid = ProcessGrid(
        ProcessTopology(["data", "model"], [world_size // 2, 2]), group_creation="local", timeout=TIMEOUT
    )
    assert grid.placement.hosts == [socket.gethostname()], grid.placement.hosts
    assert grid.placement.ranks_of_host(socket.gethostname()) == list(range(world_size))
    for axis in ("data", "model"):
        assert _proves(grid.get_group(axis)) == grid.get_group_ranks(axis), axis
    grid.destroy()
    dims = [world_size, 1] if rank == 0 else [world_size // 2, 2]
    try:
        ProcessGrid(ProcessTopology(["data", "model"], dims), timeout=TIMEOUT)
    except TopologyMismatchError as exc:
        return str(exc)
    raise AssertionError("no TopologyMismatchError")


def domains_from_the_environment(rank: int, world_size: int) -> dict[str, Any]:
    """Each rank's domain named by PROCTOPO_DOMAIN (pairs of ranks): measured, and its rule checked."""
    from proctopo import PlacementError, ProcessGrid, ProcessTopology

    os.environ["PROCTOPO_DOMAIN"] = f"nvl{rank // 2}"
    try:
        topo = ProcessTopology(["data", "model"], [world_size // 2, 2])
        grid = ProcessGrid(topo, group_creation="local", timeout=TIMEOUT, intra_domain=["model"])
        domains = grid.placement.domains
        grid.destroy()
        try:
            ProcessGrid(topo, group_creation="local", timeout=TIMEOUT, intra_domain=["data"])
        except PlacementError as exc:
            refused = str(exc)
        else:
            raise AssertionError("the data groups span domains, yet the rule passed")
    finally:
        del os.environ["PROCTOPO_DOMAIN"]
    return {"domains": domains, "refused": refused}


def skipped_check(rank: int, world_size: int, timeout: float) -> tuple[str, str]:
    """The last rank skips the fingerprint check: everyone ends in an error within the timeout."""
    import proctopo
    from proctopo.grid import PipelineParallelGrid

    topo = proctopo.ProcessTopology(["pipe", "data"], [2, world_size // 2])
    try:
        PipelineParallelGrid(topo, verify=rank != world_size - 1, group_creation="local", timeout=timeout)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "none", ""


def naming_trap(rank: int, world_size: int) -> dict[str, Any]:
    """Ranks 0 and 1 made a group before the grid; 'local' still works (and warns on the others)."""
    import proctopo
    import torch.distributed as dist
    from proctopo.grid import PipelineParallelGrid

    if rank < 2:
        dist.new_group([0, 1], use_local_synchronization=True)
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, world_size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = PipelineParallelGrid(topo, group_creation="local", timeout=TIMEOUT)
    groups = {name: _proves(getattr(grid, name)) for name in ("dp_proc_group", "pp_proc_group")}
    after = (
        dist.new_group([0, world_size - 1], use_local_synchronization=True)
        if rank in (0, world_size - 1)
        else None
    )
    if after is not None:
        _proves(after)
    return {"groups": groups, "warned": any("even it out" in str(w.message) for w in caught)}


@contextlib.contextmanager
def _nothing_created_or_sent() -> Iterator[None]:
    """torch.distributed's group-creating and collective calls raise while inside."""
    import torch.distributed as dist

    names = ("new_group", "split_group", "all_reduce", "all_gather", "broadcast", "barrier")
    saved = {name: getattr(dist, name) for name in names}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a getter called into torch.distributed")

    for name in names:
        setattr(dist, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)


def explicit_creation(rank: int, world_size: int) -> dict[str, Any]:
    """get_group reads, create_group creates (checked across ranks); a mismatch fails at once."""
    from proctopo import GroupNotCreatedError, ProcessGrid, ProcessTopology, TopologyMismatchError
    from torch.distributed import distributed_c10d as c10d

    grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, world_size // 2]), timeout=TIMEOUT)
    with _nothing_created_or_sent():
        data = grid.get_group("data")
        try:
            grid.get_group([])
        except GroupNotCreatedError as exc:
            missing = str(exc)
        else:
            raise AssertionError("get_group([]) returned a group the grid never created")
    registered = len(c10d._world.pg_names)
    alone = grid.create_group([])
    grew = len(c10d._world.pg_names) - registered
    with _nothing_created_or_sent():
        assert grid.get_group([]) is alone and grid.get_group("data") is data
    proven = {"alone": _proves(alone), "data": _proves(data)}
    # rank 0 asks for another group: every rank fails at once, none creates anything
    registered = len(c10d._world.pg_names)
    try:
        grid.create_group("pipe" if rank == 0 else ["pipe", "data"])
    except TopologyMismatchError as exc:
        mismatch = str(exc)
    else:
        raise AssertionError("create_group with different arguments did not raise")
    after = len(c10d._world.pg_names) - registered
    # the grid still works, and the next checked call agrees again
    assert grid.create_group("pipe") is grid.get_group("pipe")
    proven["pipe"] = _proves(grid.get_group("pipe"))
    return {"missing": missing, "grew": grew, "proven": proven, "mismatch": mismatch, "after": after}


def skipped_creation(rank: int, world_size: int, timeout: float) -> tuple[str, str]:
    """The last rank never calls create_group: the others end in an error within the timeout."""
    from proctopo import ProcessGrid, ProcessTopology

    grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, world_size // 2]), timeout=timeout)
    if rank == world_size - 1:
        return "none", ""
    try:
        grid.create_group([])
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "none", ""


def predicted_names(rank: int, world_size: int) -> list[tuple[str, str]]:
    """Locally synchronised groups against the name proctopo predicts for them.

    torch names such a group ``sha1("<sorted ranks joined by _>_<count>")``, the count
    being what :meth:`proctopo.comm.TorchComm.group_count` reads. Returns, per group,
    (torch's name, the predicted one).
    """
    import hashlib

    import torch.distributed as dist
    from proctopo.comm import TorchComm

    comm = TorchComm()
    out = []
    for ranks in (list(range(world_size)), [rank], list(range(world_size))):
        count = comm.group_count()
        group = dist.new_group(ranks, use_local_synchronization=True)
        predicted = hashlib.sha1(f"{'_'.join(map(str, ranks))}_{count}".encode()).hexdigest()
        out.append((str(group.group_name), predicted))
        if len(ranks) == 1:
            dist.destroy_process_group(group)  # lowers the registry, not torch 2.14's counter
    return out
