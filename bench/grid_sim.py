#!/usr/bin/env python3
"""Scale simulation of process-group creation: one process plays one rank of a huge world.

``proctopo.testing.RecordingComm`` stands in for ``torch.distributed``: every
``new_group`` / ``split_group`` call is counted and returns at once, so what is
timed is the grid's own Python work per rank before any communicator exists.
DeepSpeed 0.19.8's ``PipelineParallelGrid`` runs in the same harness (its
``deepspeed.comm`` replaced by the same recorder), in a subprocess with a time
bound; a run that passes the bound is reported as such, never dropped.

    python bench/grid_sim.py                 # prints the markdown section
    python bench/grid_sim.py --quick         # smaller DeepSpeed bound, for smoke runs
    python bench/grid_sim.py --megatron      # Megatron's parallel state, megatron-core against proctopo

``simulate(...)`` and ``megatron_simulate(...)`` return the data, ``render(data)`` and
``megatron_render(data)`` its markdown; ``bench/compare.py`` puts both into
``bench/RESULTS.md`` under their own headings.
"""

# ruff: noqa: RUF001, E501  (a report generator: its markdown uses the multiplication sign and en dash)
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from _common import cpu_model, fmt_time, load_average  # bench/ is on sys.path

# (world size, layout name, axes, dims): pipe x data x model as DeepSpeed's
# PipeModelDataParallelTopology lays it out, plus a four-axis layout.
LAYOUTS = [
    (65_536, ["pipe", "data", "model"], [8, 1024, 8]),
    (65_536, ["pipe", "data", "sequence", "model"], [8, 256, 4, 8]),
    (1_048_576, ["pipe", "data", "model"], [16, 8192, 8]),
    (1_048_576, ["pipe", "data", "sequence", "model"], [16, 2048, 4, 8]),
]
COMMAND = "python bench/grid_sim.py"


def _rank_of(world: int) -> int:
    return world // 2 + 1  # a rank in the middle of the world; every rank does the same work


def _shape(axes: list[str], dims: list[int]) -> str:
    return " × ".join(f"{a}={d:,}" for a, d in zip(axes, dims))


def _proctopo_row(world: int, axes: list[str], dims: list[int], strategy: str, repeat: int) -> dict[str, Any]:
    import proctopo
    from proctopo.grid import PipelineParallelGrid
    from proctopo.testing import RecordingComm

    rank = _rank_of(world)
    c0 = time.thread_time()
    topo = proctopo.ProcessTopology(axes, dims)
    topo_ms = (time.thread_time() - c0) * 1e3
    cpu, wall = [], []
    comm = None
    grid = None
    for _ in range(repeat):
        comm = RecordingComm(rank, world, can_split=strategy == "split")
        gc.collect()
        gc.disable()
        try:
            w0, c0 = time.perf_counter(), time.thread_time()
            grid = PipelineParallelGrid(topo, group_creation=strategy, comm=comm)
            cpu.append((time.thread_time() - c0) * 1e3)
            wall.append((time.perf_counter() - w0) * 1e3)
        finally:
            gc.enable()
    assert comm is not None and grid is not None
    return {
        "lib": "proctopo",
        "strategy": grid.strategy if strategy != "auto" else f"auto → {grid.strategy}",
        "new_group": comm.calls["new_group"],
        "split_group": comm.calls["split_group"],
        "first_ms": cpu[0],
        "median_ms": statistics.median(cpu),
        "wall_ms": statistics.median(wall),
        "topo_ms": topo_ms,
        "status": "ok",
    }


class _Bound(Exception):
    """Raised by the alarm of :func:`_within` when the block passes its time bound."""


@contextlib.contextmanager
def _within(bound: float, out: dict[str, Any]) -> Iterator[None]:
    """Run the block under a wall-time bound (SIGALRM, this process's main thread only).

    Past the bound the block stops and ``out`` gets ``status="bound"`` and ``elapsed_s``;
    the garbage collector is on again afterwards, whatever the block did with it.
    """
    import signal

    def alarm(*_: Any) -> None:
        raise _Bound

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, bound)
    start = time.perf_counter()
    try:
        yield
    except _Bound:
        out["status"] = "bound"
        out["elapsed_s"] = time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        gc.enable()


def _ds_child(world: int, axes: list[str], dims: list[int], bound: float) -> None:
    """Runs in a subprocess: DeepSpeed's grid for one rank on the recorder, with a time bound."""
    import deepspeed.runtime.pipe.topology as dst
    from proctopo.testing import RecordingComm

    out: dict[str, Any] = {"status": "ok"}
    rec = RecordingComm(_rank_of(world), world)
    with _within(bound, out):
        c0 = time.thread_time()
        topo = dst.ProcessTopology(axes=list(axes), dims=list(dims))
        out["topo_ms"] = (time.thread_time() - c0) * 1e3
        dst.dist = rec
        gc.disable()
        w0, c0 = time.perf_counter(), time.thread_time()
        with contextlib.redirect_stdout(io.StringIO()):
            dst.PipelineParallelGrid(topology=topo)
        out["median_ms"] = out["first_ms"] = (time.thread_time() - c0) * 1e3
        out["wall_ms"] = (time.perf_counter() - w0) * 1e3
    out["new_group"] = rec.calls["new_group"]
    print("@@GRID-SIM " + json.dumps(out))


def _ds_expected_calls(world: int, axes: list[str], dims: list[int]) -> int:
    """new_group calls DeepSpeed's grid makes per rank, counted from its loops."""
    size = dict(zip(axes, dims))
    dp = size.get("data", 1)
    mp = size.get("model", 1)
    pp = size.get("pipe", 1)
    calls = dp  # model-parallel groups, one per data index
    calls += world // dp  # data-parallel groups
    calls += world // pp  # pipeline groups
    calls += world if mp == 1 else world // mp  # slice groups (single-rank ones without model parallelism)
    return calls


def _ds_row(world: int, axes: list[str], dims: list[int], bound: float) -> dict[str, Any]:
    code = [sys.executable, os.path.abspath(__file__), "--_ds-child", json.dumps([world, axes, dims, bound])]
    row: dict[str, Any] = {"lib": "DeepSpeed 0.19.8", "strategy": "global (its only way)", "split_group": 0}
    try:
        proc = subprocess.run(code, capture_output=True, text=True, timeout=bound + 120)
    except subprocess.TimeoutExpired:
        row.update(status="bound", elapsed_s=bound, new_group=None)
        return row
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@GRID-SIM ")), None)
    if line is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])[:300]
        row.update(status=f"failed: {tail}", new_group=None)
        return row
    row.update(json.loads(line[len("@@GRID-SIM ") :]))
    return row


def _ms(v: float | None) -> str:
    """Milliseconds (the unit of the rows) as text."""
    return fmt_time(None if v is None else v / 1e3)


def simulate(
    quick: bool = False, ds_bound: float | None = None, repeat: int = 7, deepspeed: bool = True
) -> dict[str, Any]:
    """Run the simulation and return its data (``render`` turns it into markdown).

    Args:
        quick: Shorter DeepSpeed bound (40 s instead of 90 s) and fewer repeats.
        ds_bound: Seconds DeepSpeed's grid may run per world before it is
            stopped and reported as past the bound.
        repeat: proctopo grid builds per row; the median and the first are kept.
        deepspeed: Include DeepSpeed's grid (needs deepspeed installed).

    Returns:
        A JSON-ready dict: the run's description and one row per (layout, grid, strategy).
    """
    import importlib.util

    bound = ds_bound if ds_bound is not None else (40.0 if quick else 90.0)
    repeat = max(1, 3 if quick else repeat)
    have_ds = importlib.util.find_spec("deepspeed") is not None
    data: dict[str, Any] = {
        "command": f"{COMMAND}{' --quick' if quick else ''}",
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "machine": _machine_text(),
        "repeat": repeat,
        "bound": bound,
        "rows": [],
    }
    from proctopo.groups import STRATEGIES

    for world, axes, dims in LAYOUTS:
        for strategy in STRATEGIES:
            r = _proctopo_row(world, axes, dims, strategy, repeat)
            data["rows"].append({"world": world, "axes": axes, "dims": dims, "requested": strategy, **r})
        if len(axes) == 3:
            base = {"world": world, "axes": axes, "dims": dims, "lib": "DeepSpeed 0.19.8"}
            base["expected_calls"] = _ds_expected_calls(world, axes, dims)
            if not (deepspeed and have_ds):
                data["rows"].append({**base, "status": "not run (deepspeed missing)"})
                continue
            data["rows"].append({**base, **_ds_row(world, axes, dims, bound)})
    return data


def render(data: dict[str, Any]) -> str:
    """The markdown section of a :func:`simulate` result."""
    bound = data["bound"]
    lines: list[str] = []
    lines.append(
        "One Python process plays one rank (rank N/2 + 1) of the world with a recording stand-in for "
        "`torch.distributed` (`proctopo.testing.RecordingComm`): each `new_group`/`split_group` call is "
        "counted and returns at once, so the times are the grids' own Python work per rank before any "
        "communicator exists (the real calls cost far more each, which is what the call counts show). "
        "proctopo's grid includes its fingerprint check (one recorded all-reduce). DeepSpeed 0.19.8's "
        "`PipelineParallelGrid` runs in the same harness with `deepspeed.comm` replaced by the same "
        f"recorder, in a subprocess stopped after {bound:g} s. `split` is simulated as NCCL with a bound "
        "device (the only case where it applies); `auto` is shown on a gloo-like group, where it picks "
        "`local`.\n"
    )
    lines.append(
        f"Command: `{data['command']}` · {data['date']} · Python {data['python']} · {data['machine']} · "
        f"median of {data['repeat']} builds (gc off; CPU time of the building thread, so other load on the "
        "machine does not count; the first build includes any one-time imports)\n"
    )
    check: list[str] = []
    rows = data["rows"]
    for world in sorted({r["world"] for r in rows}):
        lines.append(f"### {world:,} ranks\n")
        lines.append(
            "| layout | grid | group_creation | `new_group` calls / rank | `split_group` calls / rank "
            "| Python CPU time / rank (median) | first build (CPU) | wall (median) | topology build (CPU) |"
        )
        lines.append("|---|---|---|--:|--:|--:|--:|--:|--:|")
        for r in rows:
            if r["world"] != world:
                continue
            shape = _shape(r["axes"], r["dims"])
            if r.get("lib") == "proctopo":
                lines.append(
                    f"| {shape} | proctopo | {r['strategy']} | {r['new_group']:,} | {r['split_group']:,} "
                    f"| {_ms(r['median_ms'])} | {_ms(r['first_ms'])} | {_ms(r['wall_ms'])} | {_ms(r['topo_ms'])} |"
                )
                if world == 65_536 and r["requested"] == "local":
                    n_axes = len(r["axes"])
                    limit_calls = n_axes + 2
                    ok = r["new_group"] <= limit_calls and r["median_ms"] <= 50.0 and r["first_ms"] <= 50.0
                    check.append(
                        f"- {world:,} ranks, {shape}: `local` made {r['new_group']} `new_group` calls per rank "
                        f"(limit {n_axes} axes + 2 = {limit_calls}) in {_ms(r['median_ms'])} median, "
                        f"{_ms(r['first_ms'])} first build (limit 50 ms): **{'pass' if ok else 'FAIL'}**"
                    )
                continue
            status = r.get("status", "")
            if status == "ok":
                lines.append(
                    f"| {shape} | {r['lib']} | {r['strategy']} | {r['new_group']:,} | 0 "
                    f"| {_ms(r['median_ms'])} | {_ms(r['first_ms'])} | {_ms(r.get('wall_ms'))} | {_ms(r.get('topo_ms'))} |"
                )
            elif status == "bound":
                made = r.get("new_group")
                so_far = f"{made:,} made before the stop; " if made is not None else ""
                lines.append(
                    f"| {shape} | {r['lib']} | {r['strategy']} | {r['expected_calls']:,} by its loops "
                    f"({so_far}not finished) | 0 | **> {bound:g} s** (stopped at the bound, wall) | – | – "
                    f"| {_ms(r.get('topo_ms'))} |"
                )
            else:
                lines.append(f"| {shape} | {r['lib']} | – | – | – | {status} | – | – | – |")
        lines.append("")
    lines.append(
        "Targets for `local` at 65,536 ranks (at most axes + 2 `new_group` calls, 50 ms per rank):\n"
    )
    lines.extend(check)
    lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- Megatron
# One rank of a 65,536-rank Megatron job: megatron-core 0.16's own initialize_model_parallel
# with torch.distributed replaced by a recording stand-in, against proctopo.megatron's group
# creation on proctopo.testing.RecordingComm.

MEGATRON_WORLD = 65_536
MEGATRON_SIZES: dict[str, Any] = {
    "tensor_model_parallel_size": 8,
    "context_parallel_size": 2,
    "expert_model_parallel_size": 8,
    "pipeline_model_parallel_size": 8,
}
#: (expert_tensor_parallel_size, create_gloo_process_groups): etp=1 given, and etp left to
#: megatron-core, which takes tp (8); its gloo groups off and on (its default is on).
MEGATRON_CASES: list[tuple[int | None, bool]] = [(1, False), (1, True), (None, False)]
MEGATRON_COMMAND = "python bench/grid_sim.py --megatron"


def _megatron_ranks(world: int) -> list[int]:
    # Rank 0 is on the first pipeline stage (in both embedding groups); N/2 + 1 is on a middle one.
    return [0, _rank_of(world)]


def _megatron_child(world: int, rank: int, kwargs: dict[str, Any], bound: float) -> None:
    """Runs in a subprocess: megatron-core's initialize_model_parallel for one rank, recorded."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its import-time notes about Transformer Engine and Apex
        import megatron.core.parallel_state as ps
    import torch.distributed as dist

    class Group:
        """Stands in for a ProcessGroup of which the played rank is a member."""

        def __init__(self, ranks: list[int]) -> None:
            self.ranks = sorted(ranks)

        def size(self) -> int:
            return len(self.ranks)

        def rank(self) -> int:
            return self.ranks.index(rank)

    non_member = object()
    counts = {"new_group": 0}
    mine: list[tuple[tuple[int, ...], str | None]] = []

    def new_group(ranks: Any = None, timeout: Any = None, backend: Any = None, **_: Any) -> Any:
        counts["new_group"] += 1
        if rank in ranks:
            group = Group(list(ranks))
            mine.append((tuple(group.ranks), backend))
            return group
        return non_member

    dist.is_initialized = lambda: True  # type: ignore[assignment]
    dist.get_world_size = lambda group=None: world  # type: ignore[assignment]
    dist.get_rank = lambda group=None: rank  # type: ignore[assignment]
    dist.new_group = new_group  # type: ignore[assignment]
    out: dict[str, Any] = {"status": "ok"}
    with _within(bound, out):
        gc.disable()
        w0, c0 = time.perf_counter(), time.thread_time()
        ps.initialize_model_parallel(**kwargs)
        out["cpu_ms"] = (time.thread_time() - c0) * 1e3
        out["wall_ms"] = (time.perf_counter() - w0) * 1e3
    out["new_group"] = counts["new_group"]
    out["communicators"] = len(mine)
    out["rank_sets"] = len(set(mine))  # distinct (ranks, backend)
    print("@@GRID-SIM " + json.dumps(out))


def _megatron_row(world: int, rank: int, kwargs: dict[str, Any], bound: float) -> dict[str, Any]:
    arg = json.dumps([world, rank, kwargs, bound])
    code = [sys.executable, os.path.abspath(__file__), "--_megatron-child", arg]
    try:
        proc = subprocess.run(code, capture_output=True, text=True, timeout=bound + 120)
    except subprocess.TimeoutExpired:
        return {"status": "bound", "elapsed_s": bound}
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@GRID-SIM ")), None)
    if line is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])[:300]
        return {"status": f"failed: {tail}"}
    return dict(json.loads(line[len("@@GRID-SIM ") :]))


def _proctopo_megatron_row(world: int, rank: int, kwargs: dict[str, Any], strategy: str) -> dict[str, Any]:
    from proctopo.megatron import create_groups
    from proctopo.testing import RecordingComm

    # A GPU job's default group is NCCL: the gloo groups are communicators of their own.
    comm = RecordingComm(rank, world, backend="nccl", can_split=strategy == "split")
    gc.collect()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.thread_time()
        mg = create_groups(**kwargs, group_creation=strategy, comm=comm)
        cpu = (time.thread_time() - c0) * 1e3
        wall = (time.perf_counter() - w0) * 1e3
    finally:
        gc.enable()
    live = [g for g in comm.groups if g.alive and g.kind != "pad"]
    return {
        "status": "ok",
        "strategy": mg.grid.strategy,
        "new_group": comm.calls["new_group"],
        "split_group": comm.calls["split_group"],
        "communicators": mg.grid.communicators,
        "rank_sets": len({(tuple(g.ranks), g.backend) for g in live}),
        "registered": sum(1 for g in comm.groups if g.alive),
        "cpu_ms": cpu,
        "wall_ms": wall,
    }


def _machine_text() -> str:
    return f"{cpu_model()}, {os.cpu_count()} CPUs, load average {load_average(' / ')} (1 / 5 / 15 min) at the start"


def megatron_simulate(world: int = MEGATRON_WORLD, bound: float = 600.0) -> dict[str, Any]:
    """Megatron's parallel state for one rank of ``world`` ranks: megatron-core against proctopo.

    Returns:
        A JSON-ready dict: the run's description and one row per (case, rank, library, strategy).
    """
    sizes = dict(MEGATRON_SIZES)
    data: dict[str, Any] = {
        "command": MEGATRON_COMMAND,
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": _machine_text(),
        "world": world,
        "sizes": sizes,
        "rows": [],
    }
    pp = sizes["pipeline_model_parallel_size"]
    # Imports (NumPy, the grid) once before the timed builds.
    _proctopo_megatron_row(1024, 0, sizes, "local")
    for etp, gloo in MEGATRON_CASES:
        kwargs = dict(sizes, expert_tensor_parallel_size=etp, create_gloo_process_groups=gloo)
        for rank in _megatron_ranks(world):
            case = {"etp": etp, "gloo": gloo, "rank": rank, "stage": rank // (world // pp)}
            data["rows"].append({**case, "lib": "megatron-core", **_megatron_row(world, rank, kwargs, bound)})
            for strategy in ("local", "global"):
                p = _proctopo_megatron_row(world, rank, kwargs, strategy)
                data["rows"].append({**case, "lib": "proctopo", "requested": strategy, **p})
    return data


def megatron_render(data: dict[str, Any]) -> str:
    """The markdown section of a :func:`megatron_simulate` result."""
    sizes, world = data["sizes"], data["world"]
    dp = world // (sizes["tensor_model_parallel_size"] * sizes["context_parallel_size"]
                   * sizes["pipeline_model_parallel_size"])  # fmt: skip
    lines = [
        f"Megatron layout tp=8 × cp=2 × pp=8 × dp={dp} with ep=8 (order `tp-cp-ep-dp-pp`), {world:,} ranks. "
        "megatron-core 0.16.1's own `initialize_model_parallel` runs in a subprocess with "
        "`torch.distributed`'s `is_initialized`, `get_rank`, `get_world_size` and `new_group` replaced by "
        "a recording stand-in (no group is created; each `new_group` call is counted, and a group of "
        "which the played rank is a member counts as one communicator, since each call makes its own). "
        "proctopo's side is `proctopo.megatron.create_groups` (the group creation of its "
        "`initialize_model_parallel`; filling `parallel_state` makes no calls) on "
        "`proctopo.testing.RecordingComm`. *Communicators* are the groups the rank is a member of and "
        "that were created for it (the default group is not counted on either side); proctopo's "
        "`local` strategy also registers single-rank *pad* groups where a rank reuses a group or is in "
        "none of a family, so that torch's names for locally synchronised groups stay in step: they "
        "are counted in the `new_group` calls and shown apart. CPU time is that of the building "
        "thread (gc off).\n",
        f"Command: `{data['command']}` · {data['date']} · Python {data['python']} · {data['machine']}\n",
        "| expert tp | gloo groups | rank (stage) | library | group_creation | `new_group` calls / rank "
        "| communicators / rank | distinct (rank set, backend) | pad groups | CPU time / rank |",
        "|---|---|---|---|---|--:|--:|--:|--:|--:|",
    ]
    summary: list[str] = []
    megatron_row: dict[str, Any] = {}
    for r in data["rows"]:
        etp_text = "1" if r["etp"] is not None else f"derived (= tp = {sizes['tensor_model_parallel_size']})"
        gloo = "yes" if r["gloo"] else "no"
        where = f"{r['rank']:,} ({r['stage']})"
        if r["lib"] == "megatron-core":
            megatron_row = r
            if r["status"] == "ok":
                lines.append(
                    f"| {etp_text} | {gloo} | {where} | megatron-core 0.16.1 | global (its "
                    f"only way) | {r['new_group']:,} | {r['communicators']} | {r['rank_sets']} | 0 "
                    f"| {_ms(r['cpu_ms'])} |"
                )
            else:
                lines.append(f"| {etp_text} | {gloo} | {where} | megatron-core 0.16.1 | – | – | – | – | – "
                             f"| {r['status']} |")  # fmt: skip
            continue
        pads = r["registered"] - r["communicators"]
        m = megatron_row
        if r["requested"] == "local" and m.get("status") == "ok":
            summary.append(
                f"- expert tp {etp_text}, gloo groups {'on' if r['gloo'] else 'off'}, rank {r['rank']:,}: "
                f"megatron-core {m['new_group']:,} `new_group` calls and {m['communicators']} "
                f"communicators; proctopo `local` {r['new_group']} calls and {r['communicators']} "
                f"communicators, and {pads} single-rank pad group{'' if pads == 1 else 's'}"
            )
        lines.append(
            f"| {etp_text} | {gloo} | {where} | proctopo | {r['strategy']} "
            f"| {r['new_group']:,} | {r['communicators']} | {r['rank_sets']} | {pads} "
            f"| {_ms(r['cpu_ms'])} |"
        )
    lines.append("")
    lines.append('Per rank, megatron-core against proctopo with `group_creation="local"`:\n')
    lines.extend(summary)
    lines.append("")
    return "\n".join(lines) + "\n"


def _emit(
    data: dict[str, Any], to_markdown: Callable[[dict[str, Any]], str], heading: str, as_json: bool
) -> int:
    """Print the data as JSON, or the heading and its markdown."""
    print(json.dumps(data) if as_json else heading + "\n" + to_markdown(data))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: print the markdown section."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 s DeepSpeed bound, 3 repeats")
    ap.add_argument("--ds-bound", type=float, default=None, help="seconds before DeepSpeed's grid is stopped")
    ap.add_argument("--no-deepspeed", action="store_true", help="leave DeepSpeed out")
    ap.add_argument(
        "--megatron", action="store_true", help="Megatron's parallel state at 65,536 ranks instead"
    )
    ap.add_argument("--json", action="store_true", help="print the data as JSON instead of markdown")
    ap.add_argument("--_ds-child", dest="ds_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_megatron-child", dest="megatron_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.megatron_child is not None:
        world, rank, kwargs, bound = json.loads(args.megatron_child)
        _megatron_child(world, rank, kwargs, bound)
        return 0
    if args.megatron:
        heading = "## Megatron's parallel state at scale (bench/grid_sim.py --megatron)\n"
        return _emit(megatron_simulate(), megatron_render, heading, args.json)
    if args.ds_child is not None:
        world, axes, dims, bound = json.loads(args.ds_child)
        _ds_child(world, axes, dims, bound)
        return 0
    data = simulate(quick=args.quick, ds_bound=args.ds_bound, deepspeed=not args.no_deepspeed)
    return _emit(data, render, "## Scale simulation (bench/grid_sim.py)\n", args.json)


if __name__ == "__main__":
    sys.exit(main())
