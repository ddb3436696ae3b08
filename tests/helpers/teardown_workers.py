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


def plain_torch_rebuild(rank: int, world_size: int, wait: float) -> list[str]:
    """Make, destroy and make again one locally synchronised group with plain torch.

    Returns what happened to each creation: its name, or the error it ended in
    within ``wait`` seconds.
    """
    import datetime

    import torch.distributed as dist

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
    return out
