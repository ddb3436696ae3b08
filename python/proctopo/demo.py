"""Run a real grid of the axes asked for over local CPU processes and prove every group.

Each process builds the grid with the gloo backend: a ``PipelineParallelGrid`` when the
axes include DeepSpeed's ``pipe`` and ``data``, else a ``ProcessGrid`` over the axes as
named (Megatron's ``tp``/``cp``/``pp``/..., torchtitan's ``dp_shard``/``dp_replicate``/...,
any other). It proves every group it belongs to (one per axis, plus DeepSpeed's
model-parallel group for a ``PipelineParallelGrid``) with an ``all_reduce``
(:func:`proctopo.launch.prove_group`); then the layout is printed:
rank -> coordinates -> groups.

Run it alone (it starts its own processes with :func:`proctopo.launch.run`)::

    python -m proctopo run                       # pipe=2 data=2 model=2, 8 processes
    python -m proctopo run tp=2 cp=2 pp=2 --order tp-cp-pp
    python -m proctopo run --nproc 4             # DeepSpeed's default split of 4 ranks

or under torchrun, which starts the processes instead (same options)::

    torchrun --standalone --nproc-per-node 8 -m proctopo run

The exit status is 0 when every group on every rank was proven, 1 otherwise, 2 for
bad arguments. Importing this module starts nothing and does not import torch.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Any

from . import launch
from .errors import GroupCreationError, InvalidArgumentError, ProctopoError
from .topology import ProcessTopology

#: More local processes than this is taken for a mistake.
MAX_LOCAL_PROCESSES = 64

#: How to install what the job needs when torch is missing.
PIP_TORCH = "pip install torch (on a CPU-only machine: pip install torch --index-url https://download.pytorch.org/whl/cpu)"


def under_launcher() -> bool:
    """Whether a launcher such as torchrun started this process (its rank is in the environment).

    >>> under_launcher()  # not under torchrun here
    False
    """
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def run(
    topo: ProcessTopology | None,
    nproc: int | None = None,
    strategy: str = "auto",
    timeout: float = 120.0,
    quiet: bool = False,
) -> int:
    """Build the grid on every rank, prove its groups and print the layout; returns the exit status.

    Under a launcher (see :func:`under_launcher`) this process is one rank of the job.
    Otherwise ``nproc`` local processes are started (default: the world size of
    ``topo``).

    Args:
        topo: The layout; None for DeepSpeed's default split of the world size.
        nproc: Processes to start (ignored under a launcher).
        strategy: ``group_creation`` of the grid: one of :data:`proctopo.groups.CPU_STRATEGIES`
            (the processes join with gloo on CPU, which cannot split communicators).
        timeout: Seconds before a collective, or the whole run, counts as hung.
        quiet: Print only the summary line.

    Every argument is checked before a process starts (see :func:`preflight`).

    Raises:
        InvalidArgumentError: neither ``topo`` nor ``nproc`` given, or more than
            :data:`MAX_LOCAL_PROCESSES` processes asked for.
        ProctopoError: torch is missing, or the grid would refuse the arguments
            (e.g. :class:`GridSizeError` for axes whose product is not ``nproc``).

    >>> run(ProcessTopology(['pipe', 'data'], [2, 2]), quiet=True)  # doctest: +SKIP
    OK: 12/12 group memberships proven by all_reduce (member ranks and sum of rank+1 as expected) ...
    0
    """
    if under_launcher():
        return _run_under_launcher(topo, strategy, timeout, quiet)
    if nproc is None:
        if topo is None:
            raise InvalidArgumentError("give the axes or the number of processes (--nproc)")
        nproc = topo.world_size()
    if nproc > MAX_LOCAL_PROCESSES:
        raise InvalidArgumentError(
            f"proctopo run starts at most {MAX_LOCAL_PROCESSES} local processes, asked for {nproc}"
        )
    preflight(topo, 0, nproc, strategy, timeout)
    results = launch.run(_rank, nproc, (topo, strategy, timeout), timeout=timeout)
    failures = launch.summary(results)
    if failures:
        print("\n".join(f"proctopo run: {line}" for line in failures.splitlines()), file=sys.stderr)
        return 1
    return _report([r.value for r in results], quiet)


def preflight(
    topo: ProcessTopology | None, rank: int, world_size: int, strategy: str, timeout: float
) -> None:
    """Refuse, before any process starts, what the job's ranks would refuse.

    The grid is built once here on a :class:`proctopo.testing.RecordingComm` playing
    ``rank`` of a gloo world of ``world_size`` ranks, so its own rules (the strategy,
    the timeout, the size) reject bad arguments in its own words; then torch must be
    importable, else one line says how to install it.

    >>> preflight(ProcessTopology(['tp', 'pp'], [2, 2]), 0, 8, 'auto', 60.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.GridSizeError: tp * pp = 2 * 2 = 4, but the world size is 8
    """
    from .testing import RecordingComm

    build_grid(topo, strategy, timeout, RecordingComm(rank, world_size))
    require_torch()


def uses_pipeline_grid(topo: ProcessTopology | None) -> bool:
    """Whether the job builds a ``PipelineParallelGrid`` (DeepSpeed's ``pipe`` and ``data`` axes, or
    DeepSpeed's default split when ``topo`` is None) rather than a ``ProcessGrid`` over the axes as named.

    >>> uses_pipeline_grid(ProcessTopology(['pipe', 'data', 'model'], [2, 2, 2]))
    True
    >>> uses_pipeline_grid(ProcessTopology(['pp', 'cp', 'tp'], [2, 2, 2]))
    False
    """
    return topo is None or {"pipe", "data"} <= set(topo.axes)


def build_grid(topo: ProcessTopology | None, strategy: str, timeout: float, comm: Any = None) -> Any:
    """The grid the axes ask for (see :func:`uses_pipeline_grid`); a collective unless ``comm`` records."""
    from .grid import PipelineParallelGrid, ProcessGrid

    if uses_pipeline_grid(topo):
        return PipelineParallelGrid(topo, group_creation=strategy, timeout=timeout, comm=comm)
    return ProcessGrid(topo, group_creation=strategy, timeout=timeout, comm=comm)


def require_torch() -> None:
    """Raise :class:`ProctopoError` with the pip command unless torch.distributed can be imported."""
    try:
        import torch.distributed as dist
    except ImportError as exc:
        raise ProctopoError(f"proctopo run needs torch ({exc}); install it: {PIP_TORCH}") from None
    if not dist.is_available():
        raise ProctopoError(
            f"proctopo run needs torch.distributed, which this torch build lacks: {PIP_TORCH}"
        )


def _rank(rank: int, world_size: int, topo: ProcessTopology | None, strategy: str, timeout: float) -> Any:
    """One rank: build the grid, prove each of its groups; returns the record for the report."""
    t0 = time.perf_counter()
    grid = build_grid(topo, strategy, timeout)
    build_ms = (time.perf_counter() - t0) * 1e3
    pipeline = uses_pipeline_grid(topo)
    groups = grid.process_grid if pipeline else grid
    pt = groups.topology
    axes = list(pt.axes)
    columns: list[tuple[str, Any, list[int]]] = [
        (a, groups.get_group(a), groups.get_group_ranks(a)) for a in axes
    ]
    if pipeline:
        ds_axes = [a for a in axes if a != "data"]
        model_parallel = sorted(groups.get_group_ranks(ds_axes))
        columns.append(("model-parallel", grid.get_model_parallel_group(), model_parallel))
    cells = []
    for name, group, expected in columns:
        try:
            ranks = launch.prove_group(group, timeout=timeout)
        except GroupCreationError:  # a wrong sum
            cells.append((name, expected, False))
        else:
            cells.append((name, ranks, ranks == expected))
    return {
        "rank": rank,
        "coord": [int(c) for c in groups.coord],
        "cells": cells,
        "ms": build_ms,
        "calls": grid.group_creation_calls,
        "strategy": grid.strategy,
        "grid": type(grid).__name__,
        "axes": axes,
        "shape": pt.shape_text(),
    }


def _run_under_launcher(topo: ProcessTopology | None, strategy: str, timeout: float, quiet: bool) -> int:
    try:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise InvalidArgumentError(
            f"RANK={os.environ['RANK']!r} and WORLD_SIZE={os.environ['WORLD_SIZE']!r} must be integers"
        ) from None
    preflight(topo, rank, world_size, strategy, timeout)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    record = _rank(rank, world_size, topo, strategy, timeout)
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    dist.gather_object(record, gathered, dst=0)
    code = (
        _report(gathered, quiet) if gathered is not None else int(not all(ok for *_, ok in record["cells"]))
    )
    dist.barrier()
    dist.destroy_process_group()
    return code


def _report(records: list[dict[str, Any]], quiet: bool) -> int:
    """Print the layout and the summary line from every rank's record; 0 when all was proven."""
    first = records[0]
    axes = first["axes"]
    strategy = first["strategy"]
    n = len(records)
    names = [c[0] for c in first["cells"]]
    proven = sum(ok for r in records for _, _, ok in r["cells"])
    total = sum(len(r["cells"]) for r in records)
    if not quiet:
        calls = "/".join(map(str, sorted({r["calls"] for r in records})))
        slowest = max(r["ms"] for r in records)
        print(
            f"proctopo {first['grid']} {first['shape']} over {n} gloo processes, group_creation={strategy!r}"
        )
        print(f"group-creation calls per rank: {calls}; slowest grid build {slowest:.1f} ms\n")
        coord_w = [max(len(a), 2) for a in axes]
        cell_text = [[f"{r}{'' if ok else ' FAILED'}" for _, r, ok in rec["cells"]] for rec in records]
        cell_w = [max(len(names[i]), *(len(row[i]) for row in cell_text)) for i in range(len(names))]
        head = (
            "rank | "
            + " ".join(a.rjust(w) for a, w in zip(axes, coord_w))
            + " | "
            + "  ".join(nm.ljust(w) for nm, w in zip(names, cell_w))
        ).rstrip()
        print(head)
        print("-" * len(head))
        for rec, row in zip(records, cell_text):
            line = (
                f"{rec['rank']:>4} | "
                + " ".join(str(c).rjust(w) for c, w in zip(rec["coord"], coord_w))
                + " | "
                + "  ".join(t.ljust(w) for t, w in zip(row, cell_w))
            )
            print(line.rstrip())
        print()
    status = "OK" if proven == total else "FAILED"
    print(
        f"{status}: {proven}/{total} group memberships proven by all_reduce "
        f"(member ranks and sum of rank+1 as expected) on {n} ranks, "
        f"group_creation={strategy!r}"
    )
    return 0 if proven == total else 1


if __name__ == "__main__":  # the job's entry is the command, which this library module does not import
    sys.exit(
        "proctopo.demo starts nothing by itself: run python -m proctopo run [options] [name=size ...], "
        "or under a launcher: torchrun [options] -m proctopo run [options] [name=size ...]"
    )
