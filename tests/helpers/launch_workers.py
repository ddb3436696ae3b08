"""Worker functions of tests/test_launch.py, run on gloo processes by :func:`proctopo.launch.run`."""

from __future__ import annotations

import os
import time
from typing import Any


def hello(rank: int, world_size: int, word: str) -> tuple[str, int, int, list[int]]:
    """Say who we are, after proving the whole world talks."""
    import torch.distributed as dist
    from proctopo.launch import prove_group

    return word, rank, world_size, prove_group(dist.group.WORLD, timeout=30)


def store_kind(rank: int, world_size: int) -> tuple[str, list[int]]:
    """The type of the store the default group met through, after proving the world talks."""
    import torch.distributed as dist
    from proctopo.launch import prove_group

    store = dist.distributed_c10d._get_default_store()
    while type(store).__name__ == "PrefixStore":
        store = store.underlying_store
    return type(store).__name__, prove_group(dist.group.WORLD, timeout=30)


def hang_on(rank: int, world_size: int, hung: int) -> int:
    """Rank ``hung`` never returns."""
    if rank == hung:
        time.sleep(3600)
    return rank


def fail_on(rank: int, world_size: int, failing: int) -> None:
    """Rank ``failing`` raises; the others wait for ever."""
    import torch.distributed as dist

    dist.barrier()  # every connection is up: the failure cannot break a peer's set-up
    if rank == failing:
        raise ValueError(f"rank {rank} was told to fail")
    time.sleep(3600)


def die_on(rank: int, world_size: int, dying: int) -> int:
    """Rank ``dying`` exits without a result."""
    import torch.distributed as dist

    dist.barrier()  # every connection is up: the exit cannot break a peer's set-up
    if rank == dying:
        os._exit(3)
    return rank


def unpicklable(rank: int, world_size: int) -> Any:
    """A value that cannot travel back to the parent."""
    return lambda: rank


def proof_errors(rank: int, world_size: int) -> dict[str, str]:
    """Prove a group of ranks 0 and 1 as a non-member (rank 2) and with rank 1 absent (rank 0)."""
    import torch.distributed as dist
    from proctopo import GridTimeoutError, GroupCreationError
    from proctopo.launch import prove_group

    pair = dist.new_group([0, 1])  # every rank takes part in new_group
    out = {}
    if rank == 2:
        try:
            prove_group(pair)
        except GroupCreationError as exc:
            out["non-member"] = str(exc)
    if rank == 0:
        try:
            prove_group(pair, timeout=1.0)
        except GridTimeoutError as exc:
            out["timeout"] = str(exc)
    return out


#: What a worker keeps until its interpreter shuts down, as a script's module globals do.
KEPT: list[Any] = []


def grid_ending(rank: int, world_size: int) -> dict[str, list[int]]:
    """End as a training script does: a pipe x data ProcessGrid, one all_reduce over each of
    its groups, then ``destroy_process_group()``, with the grid kept to the end."""
    import torch.distributed as dist
    from proctopo import ProcessGrid, ProcessTopology
    from proctopo.launch import prove_group

    grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, world_size // 2]), timeout=30)
    proven = {axis: prove_group(grid.get_group(axis), timeout=30) for axis in ("pipe", "data")}
    KEPT.append(grid)
    dist.destroy_process_group()
    return proven


def bad_exits(rank: int, world_size: int) -> int:
    """Return, then end badly at interpreter shutdown: rank 1 exits with 3 in an ``atexit``
    hook, rank 2 aborts there, rank 3 leaves a thread that never ends (shutdown waits for it).
    Rank 0 ends cleanly."""
    import atexit
    import resource
    import threading

    if rank == 1:
        atexit.register(os._exit, 3)
    elif rank == 2:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the abort
        atexit.register(os.abort)
    elif rank == 3:
        threading.Thread(target=threading.Event().wait, name="never-ends").start()
    return rank
