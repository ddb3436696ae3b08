"""Workers for tests/test_teardown.py: build, prove and destroy a ProcessGrid again and again."""

from __future__ import annotations

from typing import Any

TIMEOUT = 30.0


def _registered() -> int:
    from torch.distributed import distributed_c10d as c10d

    return len(c10d._world.pg_names)


def cycles(rank: int, world_size: int, strategy: str, count: int) -> dict[str, Any]:
    """``count`` create / prove / destroy cycles of a pipe x data grid with extra groups.

    Odd cycles lay the grid over a user group holding every rank, which destroy()
    must leave alone. Returns, per cycle, the registry sizes, the names and ranks
    of the groups, and the creation calls.
    """
    import torch.distributed as dist
    from proctopo import GridDestroyedError, ProcessGrid, ProcessTopology
    from proctopo.launch import prove_group

    user = dist.new_group(list(range(world_size)))  # every rank calls it, as torch requires
    topo = ProcessTopology(["pipe", "data"], [2, world_size // 2])
    start = _registered()
    out = []
    for cycle in range(count):
        before = _registered()
        grid = ProcessGrid(
            topo,
            user if cycle % 2 else None,
            group_creation=strategy,
            timeout=TIMEOUT,
            groups=[[]],  # each rank alone
        )
        family = grid.new_groups([list(range(world_size - 1)), [world_size - 1]], name="family")
        groups = {
            "pipe": grid.get_group("pipe"),
            "data": grid.get_group("data"),
            "single": grid.get_group([]),
            "family": family,
        }
        proven = {k: prove_group(g, timeout=TIMEOUT) for k, g in groups.items()}
        names = {k: str(g.group_name) for k, g in groups.items()}
        made = _registered() - before
        calls, communicators = grid.group_creation_calls, grid.communicators
        # destroy() waits for no one: let every rank finish its collectives first
        dist.barrier()
        grid.destroy()
        grid.destroy()
        after = _registered()
        try:
            grid.get_group("data")
        except GridDestroyedError:
            refused = True
        else:
            refused = False
        # the default group and the user's group live on
        assert prove_group(user, timeout=TIMEOUT) == list(range(world_size))
        assert prove_group(dist.group.WORLD, timeout=TIMEOUT) == list(range(world_size))
        out.append(
            {
                "before": before,
                "made": made,
                "after": after,
                "names": names,
                "proven": proven,
                "calls": calls,
                "communicators": communicators,
                "refused": refused,
            }
        )
    return {"start": start, "cycles": out}


def plain_torch_rebuild(rank: int, world_size: int, wait: float) -> tuple[str | None, list[str]]:
    """Make, destroy and make again one locally synchronised group with plain torch.

    Returns the count torch names such groups from (:func:`proctopo.comm.naming_counter`)
    and what happened to each creation: its name, or the error it ended in within
    ``wait`` seconds.
    """
    import datetime

    import torch.distributed as dist
    from proctopo.comm import naming_counter

    out = []
    for _ in range(2):
        try:
            group = dist.new_group(
                [0, 1], use_local_synchronization=True, timeout=datetime.timedelta(seconds=wait)
            )
        except Exception as exc:
            out.append(f"error: {type(exc).__name__}")
            break
        out.append(str(group.group_name))
        dist.destroy_process_group(group)
    return naming_counter(), out


def torch_defaults_bound(rank: int, world_size: int) -> dict[str, Any]:
    """torch's functions whose default argument is ``group.WORLD``, imported after
    ``init_process_group()`` (as importing megatron-core does), then
    proctopo.megatron's ``initialize_model_parallel`` and ``destroy_model_parallel``.

    Returns the functions and methods of ``torch.distributed`` whose defaults hold the
    default group before and after, and the sum of an all_reduce of ones sent through
    ``torch.distributed.nn.functional.all_reduce`` with its default group, after.
    """
    import importlib

    import torch
    import torch.distributed as dist
    from proctopo import megatron

    # Imported again now, their defaults bind the default group that exists.
    for name in ("torch.distributed.nn.functional", "torch.distributed.fsdp.sharded_grad_scaler"):
        importlib.reload(importlib.import_module(name))
    world = dist.group.WORLD
    before = _bound_in_defaults(world, "torch.distributed")
    megatron.initialize_model_parallel(group_creation="local")
    megatron.destroy_model_parallel()
    after = _bound_in_defaults(world, "torch.distributed")
    functional = importlib.import_module("torch.distributed.nn.functional")
    summed = functional.all_reduce(torch.ones(1))
    return {"before": before, "after": after, "sum": float(summed.item())}


# ----------------------------------------------------------------- a job that ends as scripts do

#: The jobs of :func:`ending`. Each ends with ``dist.destroy_process_group()`` and
#: interpreter shutdown, with what it built still referenced from module globals.
ENDINGS = (
    "local",
    "global",
    "unverified",
    "pipeline",
    "mismatch",
    "device_mesh",
    "megatron",
    "torch_keeps_world",
)


def _sum_over(group: Any) -> None:
    import torch
    import torch.distributed as dist

    t = torch.ones(1)
    dist.all_reduce(t, group=group)
    size = dist.get_world_size(group)
    if int(t.item()) != size:
        raise AssertionError(f"all_reduce over a group of {size} ranks gave {t.item()}")


def ending(job: str) -> Any:
    """Build what ``job`` names and send one all_reduce over each of its groups; returns what it built.

    What it returns stays referenced until the interpreter shuts down, as a script's
    module globals do: the grid (and the exported mesh, or the caught error), not the
    groups themselves. ``megatron`` ends as a Megatron job should, with
    ``destroy_model_parallel()`` (before ``destroy_process_group()``), and keeps its
    groups object, whose ``intra_dist_opt`` group is the default group.
    ``torch_keeps_world`` uses no proctopo: plain ``new_group`` groups and a reference
    to the default group kept past ``destroy_process_group()``.
    """
    import torch.distributed as dist
    from proctopo import PipelineParallelGrid, ProcessGrid, ProcessTopology, TopologyMismatchError

    rank, world = dist.get_rank(), dist.get_world_size()
    topo = ProcessTopology(["data", "model"], [world // 2, 2])
    kept: Any
    if job in ("local", "global", "unverified"):
        strategy = "local" if job == "unverified" else job
        grid = ProcessGrid(topo, group_creation=strategy, verify=job != "unverified")
        groups = [grid.get_group("data"), grid.get_group("model")]
        kept = grid
    elif job == "pipeline":
        # pipe of size 1: the data-parallel group is the whole world, the parent group itself
        pgrid = PipelineParallelGrid(ProcessTopology(["pipe", "data"], [1, world]), group_creation="local")
        groups = [pgrid.get_data_parallel_group(), pgrid.get_pipe_parallel_group()]
        kept = pgrid
    elif job == "mismatch":
        try:
            ProcessGrid(topo if rank else ProcessTopology(["data", "model"], [world, 1]))
        except TopologyMismatchError as exc:  # kept, as a logger or pytest.raises keeps it
            kept = exc
        else:
            raise AssertionError("the grids differ, yet no TopologyMismatchError")
        groups = []
    elif job == "device_mesh":
        grid = ProcessGrid(topo)
        mesh = grid.device_mesh(["data", "model"])
        groups = [mesh.get_group("data"), mesh.get_group("model")]
        kept = (grid, mesh)
    elif job == "megatron":
        from proctopo import megatron

        mg = megatron.initialize_model_parallel(tensor_model_parallel_size=2, group_creation="local")
        if mg.handles["intra_dist_opt"] is not dist.group.WORLD:
            raise AssertionError("intra_dist_opt spans every rank, yet it is not the default group")
        for kind in ("tp", "dp", "intra_dist_opt", "dp_gloo"):
            _sum_over(mg.handles[kind])
        megatron.destroy_model_parallel()
        groups = []
        kept = mg
    elif job == "torch_keeps_world":
        groups = []
        for rows in ([[0, 2], [1, 3]], [[0, 1], [2, 3]]):
            for row in rows:
                group = dist.new_group(row)
                if rank in row:
                    groups.append(group)
        kept = (groups, dist.group.WORLD)
    else:
        raise ValueError(f"job must be one of {ENDINGS}, got {job!r}")
    for group in groups:
        _sum_over(group)
    return kept


def _bound_in_defaults(obj: Any, prefix: str = "") -> list[str]:
    """The functions (and methods) of loaded modules named ``prefix...`` whose default
    arguments hold ``obj``, as ``module.qualname``, sorted."""
    import sys
    import types

    found = set()
    for name, module in list(sys.modules.items()):
        # type() rather than isinstance(), which reads __class__ (a deprecation warning on
        # torch.distributed.reduce_op)
        if not name.startswith(prefix) or not issubclass(type(module), types.ModuleType):
            continue
        for value in list(vars(module).values()):
            for member in list(vars(value).values()) if issubclass(type(value), type) else [value]:
                func = member.__func__ if type(member) in (staticmethod, classmethod) else member
                if type(func) is not types.FunctionType:
                    continue
                for default in (*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()):
                    if default is obj:
                        found.add(f"{func.__module__}.{func.__qualname__}")
    return sorted(found)


def _holders(obj: Any) -> str:
    """The types of what refers to ``obj``, and the functions whose default arguments hold it.

    gc.get_referrers misses a tuple of defaults: the collector untracks a tuple that
    holds only objects it does not track, and a ProcessGroup is one of those.
    """
    import gc

    found = {type(r).__module__ + "." + type(r).__qualname__ for r in gc.get_referrers(obj)}
    found.update(f"the defaults of {f}" for f in _bound_in_defaults(obj))
    return ", ".join(sorted(found))


if __name__ == "__main__":
    # python -m helpers.teardown_workers JOBS INIT_FILE RANK WORLD_SIZE: the jobs of ENDINGS
    # named (comma-separated), one after the other, ended as scripts end. The abort at exit
    # is a race (it shows in some runs only), so its cause is checked too: after
    # destroy_process_group() nothing may keep the default group alive (exit code 3 says
    # who does). Python hands the GIL to a waiting thread every 5 ms; a 1 s interval keeps
    # it with the main thread until that blocks, which makes the race show more often.
    import gc
    import sys
    import weakref

    import torch.distributed as dist

    sys.setswitchinterval(1.0)
    _jobs, _init, _rank, _world = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dist.init_process_group("gloo", init_method=f"file://{_init}", rank=_rank, world_size=_world)
    KEPT = [ending(job) for job in _jobs.split(",")]
    _default = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    gc.collect()
    if _default() is not None:
        print(
            f"the default process group outlived destroy_process_group(), held by {_holders(_default())}",
            file=sys.stderr,
        )
        sys.exit(3)
    from proctopo import GridDestroyedError, PipelineParallelGrid

    for _grid in KEPT:
        if isinstance(_grid, PipelineParallelGrid):
            try:  # its data-parallel group is the default group, which is gone
                _grid.get_data_parallel_group()
            except GridDestroyedError as _exc:
                assert "destroy_process_group()" in str(_exc), _exc
            else:
                sys.exit("the default group was destroyed, yet the grid hands it out")
