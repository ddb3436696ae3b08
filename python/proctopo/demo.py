"""Run a real PipelineParallelGrid over local CPU processes and prove every group.

Each process builds the grid with the gloo backend, runs an ``all_reduce`` over
every group it belongs to (one per axis, plus DeepSpeed's model-parallel group),
checks the sum and the member ranks, and rank 0 prints the layout:
rank -> coordinates -> groups.

Run it alone (it starts its own processes)::

    python -m proctopo run                       # pipe=2 data=2 model=2, 8 processes
    python -m proctopo run pipe=2 data=2 sequence=2 --strategy global
    python -m proctopo.demo --nproc 4            # DeepSpeed's default split of 4 ranks

or under torchrun, which starts the processes instead::

    torchrun --standalone --nproc-per-node 8 -m proctopo.demo

The exit status is 0 when every group on every rank was proven, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from .topology import ProcessTopology

DEFAULT_AXES = ("pipe=2", "data=2", "model=2")


def _parse_axes(items: Sequence[str]) -> ProcessTopology:
    axes: list[str] = []
    dims: list[int] = []
    for item in items:
        name, sep, size = item.partition("=")
        if not sep or not name or not size.strip().isdigit():
            raise ValueError(f"axes are written name=size (e.g. pipe=2), got {item!r}")
        axes.append(name.strip())
        dims.append(int(size))
    return ProcessTopology(axes, dims)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="proctopo run",
        description="Run a real PipelineParallelGrid over local CPU processes (gloo) and prove every group.",
    )
    p.add_argument(
        "axes",
        nargs="*",
        help="name=size, slowest first (default pipe=2 data=2 model=2; with only --nproc, "
        "DeepSpeed's default split of that many ranks)",
    )
    p.add_argument(
        "--nproc", type=int, default=None, help="processes to start (default: product of the axes)"
    )
    p.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "global", "local", "split"],
        help="group_creation of the grid (default auto)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before the run counts as hung")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    return p


def _prove(group: Any, rank: int, expected: list[int], timeout: float) -> tuple[list[int], bool]:
    import torch
    import torch.distributed as dist

    ranks = [int(r) for r in dist.get_process_group_ranks(group)]
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t, group=group, async_op=True).wait(timeout=datetime.timedelta(seconds=timeout))
    ok = ranks == expected and t.item() == float(sum(r + 1 for r in expected))
    return ranks, ok


def _run_rank(topo: ProcessTopology | None, strategy: str, timeout: float, quiet: bool) -> int:
    """Body of one process, with the default group already initialised."""
    import torch.distributed as dist

    from .grid import PipelineParallelGrid

    rank = dist.get_rank()
    t0 = time.perf_counter()
    grid = PipelineParallelGrid(topo, group_creation=strategy, timeout=timeout)
    build_ms = (time.perf_counter() - t0) * 1e3
    pt = grid._pt
    axes = list(pt.get_axis_names())
    coord = grid.coord
    columns: list[tuple[str, Any, list[int]]] = []
    for a in axes:
        columns.append((a, grid.get_group(a), grid.get_group_ranks(a)))
    ds_axes = [a for a in axes if a != "data"]
    columns.append(("model-parallel", grid.get_model_parallel_group(), sorted(grid.get_group_ranks(ds_axes))))
    cells = []
    for name, group, expected in columns:
        ranks, ok = _prove(group, rank, expected, timeout)
        cells.append((name, ranks, ok))
    record = {
        "rank": rank,
        "coord": [int(c) for c in coord],
        "cells": cells,
        "ms": build_ms,
        "calls": grid.group_creation_calls,
    }
    gathered: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(record, gathered, dst=0)
    if rank != 0:
        return 0 if all(ok for _, _, ok in cells) else 1
    assert gathered is not None
    return _report(grid, axes, gathered, quiet)


def _report(grid: Any, axes: list[str], records: list[dict[str, Any]], quiet: bool) -> int:
    shape = " x ".join(f"{a}={grid._pt.get_dim(a)}" for a in axes)
    n = len(records)
    names = [c[0] for c in records[0]["cells"]]
    proven = sum(ok for r in records for _, _, ok in r["cells"])
    total = sum(len(r["cells"]) for r in records)
    calls = sorted({r["calls"] for r in records})
    slowest = max(r["ms"] for r in records)
    if not quiet:
        print(f"proctopo grid {shape} over {n} gloo processes, group_creation={grid.strategy!r}")
        per_rank = "/".join(map(str, calls))
        print(f"group-creation calls per rank: {per_rank}; slowest grid build {slowest:.1f} ms\n")
        coord_w = [max(len(a), 2) for a in axes]
        cell_text = [[f"{r}{'' if ok else ' FAILED'}" for _, r, ok in rec["cells"]] for rec in records]
        cell_w = [max(len(names[i]), *(len(row[i]) for row in cell_text)) for i in range(len(names))]
        head = (
            "rank | "
            + " ".join(a.rjust(w) for a, w in zip(axes, coord_w))
            + " | "
            + "  ".join(nm.ljust(w) for nm, w in zip(names, cell_w))
        )
        print(head.rstrip())
        print("-" * len(head.rstrip()))
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
        f"group_creation={grid.strategy!r}"
    )
    return 0 if proven == total else 1


def _child(
    rank: int, world: int, rdzv: str, topo: ProcessTopology | None, strategy: str, timeout: float, quiet: bool
) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch.distributed as dist

    code = 1
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{rdzv}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout),
        )
        code = _run_rank(topo, strategy, timeout, quiet)
        dist.barrier()
    except Exception as exc:
        print(f"rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _spawn(nproc: int, topo: ProcessTopology | None, strategy: str, timeout: float, quiet: bool) -> int:
    import multiprocessing

    ctx: Any
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch.distributed", "proctopo.grid"])
    except ValueError:  # pragma: no cover - platforms without forkserver
        ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="proctopo-demo-") as tmp:
        rdzv = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(target=_child, args=(r, nproc, rdzv, topo, strategy, timeout, quiet))
            for r in range(nproc)
        ]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [r for r, p in enumerate(procs) if p.is_alive()]
        for r in hung:
            procs[r].kill()
            procs[r].join(5)
        if hung:
            print(
                f"proctopo run: ranks {hung} were still running after {timeout:g} s; stopped them",
                file=sys.stderr,
            )
            return 1
        failed = [r for r, p in enumerate(procs) if p.exitcode != 0]
        if failed:
            print(f"proctopo run: ranks {failed} failed", file=sys.stderr)
            return 1
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 when every group was proven).

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``): ``name=size``
            axes, ``--nproc``, ``--strategy``, ``--timeout``, ``--quiet``.

    >>> main(["pipe=2", "data=2", "--quiet"])  # doctest: +SKIP
    OK: 12/12 group memberships proven by all_reduce (member ranks and sum of rank+1 as expected) ...
    0
    """
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    under_launcher = all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))
    try:
        topo: ProcessTopology | None
        if args.axes:
            topo = _parse_axes(args.axes)
        elif args.nproc is None and not under_launcher:
            topo = _parse_axes(DEFAULT_AXES)
        else:
            topo = None  # DeepSpeed's default split of the world size
        if not args.timeout > 0:
            raise ValueError(f"--timeout must be positive, got {args.timeout}")
        if under_launcher:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=args.timeout))
            code = _run_rank(topo, args.strategy, args.timeout, args.quiet)
            dist.barrier()
            dist.destroy_process_group()
            return code
        nproc = args.nproc if args.nproc is not None else (topo.world_size() if topo is not None else 8)
        if topo is not None and topo.world_size() != nproc:
            raise ValueError(
                f"{' * '.join(topo.get_axis_names())} = {' * '.join(map(str, topo.dims))} = "
                f"{topo.world_size()}, but --nproc is {nproc}"
            )
        if not 1 <= nproc <= 64:
            raise ValueError(f"--nproc must be between 1 and 64 local processes, got {nproc}")
        return _spawn(nproc, topo, args.strategy, args.timeout, args.quiet)
    except (ValueError, ImportError) as exc:
        print(f"proctopo run: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
