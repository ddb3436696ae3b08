#!/usr/bin/env python3
"""Real process-group creation on this machine: gloo jobs of 8 to 64 local processes.

Every contestant builds the same layout, pipe 2 x data N/4 x model 2 (Megatron:
tp 2, pp 2, dp N/4), in real ``torch.distributed`` jobs started by
:func:`proctopo.launch.run` (a forkserver that imported torch and the peers once,
a TCPStore on loopback served by rank 0, as ``torchrun`` serves one, a deadline per job). On every rank, after a barrier, the
time from before the grid's constructor to after it is measured, with

* the ``new_group`` / ``split_group`` calls the rank made (every module's reference
  to ``torch.distributed``'s function is wrapped while it runs, so DeviceMesh's and
  Megatron's calls count too), and
* the communicators it left registered: the growth of
  ``len(torch.distributed.distributed_c10d._world.pg_names)``, and how many
  distinct (ranks, backend) sets those hold.

Each job builds once, timed, as a real job does, after first using the default group
and one gloo group of the whole world (first-use costs, alike for every contestant).
The contestants' jobs take turns, ``reps`` jobs each per world size, so a busy spell
on the shared machine falls on all of them alike. Each job also times proctopo's
set-up exchange alone against a ring all_reduce of as many words and a small one
(5 int64 values), and, in proctopo's grids, the exchange inside the constructor.

    python bench/scaling.py                  # 8, 16, 32 (and 64 when memory allows)
    python bench/scaling.py --quick          # 8 ranks, 2 repetitions: a smoke run
    python bench/scaling.py --json out.json  # the raw data as well

``measure(...)`` returns the data, ``render(data)`` its markdown section and
``plot(data, sim, path)`` the picture; ``bench/compare.py --scaling`` puts them in
``bench/RESULTS.md`` and ``bench/scaling.png``.
"""

# ruff: noqa: RUF001, E501  (a report generator: its markdown uses the multiplication sign)
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _common import cpu_model, fmt_time, load_average, memory_bytes, source_version  # bench/ is on sys.path

HERE = Path(__file__).resolve().parent

#: What the forkserver imports once before the first rank is forked.
PRELOAD = (
    "torch",
    "torch.distributed",
    "torch.distributed.device_mesh",
    "numpy",
    "proctopo",
    "proctopo.grid",
    "proctopo.megatron",
    "deepspeed",
    "deepspeed.pipe",
    "megatron.core.parallel_state",
)

#: Contestants, in the order of the report: (key, label, what it builds).
CONTESTANTS: list[tuple[str, str, str]] = [
    ("proctopo-local", "proctopo `local`", "proctopo.PipelineParallelGrid(topo, group_creation='local')"),
    (
        "proctopo-local-noverify",
        "proctopo `local`, verify=False",
        "the same without the fingerprint check",
    ),
    ("proctopo-global", "proctopo `global`", "proctopo.PipelineParallelGrid(topo, group_creation='global')"),
    ("deepspeed", "DeepSpeed 0.19.8", "deepspeed.runtime.pipe.topology.PipelineParallelGrid(topology=topo)"),
    (
        "device-mesh",
        "init_device_mesh",
        "torch.distributed.device_mesh.init_device_mesh('cpu', (2, N/4, 2), mesh_dim_names=('pipe', 'data', 'model'))",
    ),
    (
        "megatron-core",
        "megatron-core 0.16.1",
        "megatron.core.parallel_state.initialize_model_parallel(tensor_model_parallel_size=2, pipeline_model_parallel_size=2)",
    ),
    (
        "proctopo-megatron",
        "proctopo.megatron",
        "proctopo.megatron.initialize_model_parallel(tensor_model_parallel_size=2, pipeline_model_parallel_size=2)",
    ),
]
LABEL = {k: label for k, label, _ in CONTESTANTS}
PIPE, MODEL = 2, 2
FULL_SIZES = [8, 16, 32, 64]
QUICK_SIZES = [8]
COMMAND = "python bench/scaling.py"


def shape(world: int) -> tuple[int, int, int]:
    """(pipe, data, model) of a world."""
    if world % (PIPE * MODEL):
        raise SystemExit(
            f"world size {world} is not a multiple of {PIPE * MODEL} (pipe {PIPE} x model {MODEL})"
        )
    return PIPE, world // (PIPE * MODEL), MODEL


# ------------------------------------------------------------------------------ worker side
def _rss() -> dict[str, int]:
    """This process's resident and proportional set size, in bytes."""
    out = {"rss": 0, "pss": 0}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    out[key.lower()] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def _builder(contestant: str, world: int) -> tuple[Callable[[], Any], Callable[[Any, list[Any]], None]]:
    """(build, teardown) of a contestant; build() is what is timed."""
    import torch.distributed as dist

    pp, dp, mp = shape(world)

    def destroy_new(_obj: Any, new: list[Any]) -> None:
        for pg in reversed(new):
            if pg in dist.distributed_c10d._world.pg_map:
                dist.destroy_process_group(pg)

    if contestant.startswith("proctopo-") and contestant != "proctopo-megatron":
        import proctopo

        topo = proctopo.PipeModelDataParallelTopology(num_pp=pp, num_mp=mp, num_dp=dp)
        strategy = "global" if contestant == "proctopo-global" else "local"
        verify = contestant != "proctopo-local-noverify"

        def build() -> Any:
            return proctopo.PipelineParallelGrid(topo, group_creation=strategy, verify=verify)

        return build, lambda grid, _new: grid.destroy()
    if contestant == "deepspeed":
        import deepspeed
        from deepspeed.runtime.pipe import topology as dst

        with contextlib.redirect_stdout(io.StringIO()):
            deepspeed.init_distributed(dist_backend="gloo")  # adopts the gloo group already running
        topo = dst.PipeModelDataParallelTopology(num_pp=pp, num_mp=mp, num_dp=dp)
        return (lambda: dst.PipelineParallelGrid(topology=topo)), destroy_new
    if contestant == "device-mesh":
        from torch.distributed.device_mesh import init_device_mesh

        def build_mesh() -> Any:
            return init_device_mesh("cpu", (pp, dp, mp), mesh_dim_names=("pipe", "data", "model"))

        return build_mesh, destroy_new
    if contestant == "megatron-core":
        import megatron.core.parallel_state as ps

        def build_mc() -> Any:
            ps.initialize_model_parallel(tensor_model_parallel_size=mp, pipeline_model_parallel_size=pp)
            return ps

        def teardown_mc(_obj: Any, new: list[Any]) -> None:
            ps.destroy_model_parallel()  # frees its gloo groups only
            destroy_new(None, new)

        return build_mc, teardown_mc
    if contestant == "proctopo-megatron":
        import proctopo.megatron as pm

        def build_pm() -> Any:
            return pm.initialize_model_parallel(
                tensor_model_parallel_size=mp, pipeline_model_parallel_size=pp
            )

        return build_pm, lambda _obj, _new: pm.destroy_model_parallel()
    raise ValueError(f"unknown contestant {contestant!r}")


def _allreduce(words: int) -> float:
    """Seconds of one all_reduce (MAX) of ``words`` int64 values over the world, after a barrier."""
    import torch
    import torch.distributed as dist

    t = torch.zeros(words, dtype=torch.int64)
    dist.barrier()
    t0 = time.perf_counter()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return time.perf_counter() - t0


def _paired_check(world: int, pairs: int) -> tuple[list[float], list[float], list[float]]:
    """(the exchange alone, a ring all_reduce of its words, one small all_reduce) in seconds.

    The exchange is proctopo's own ``verify_and_locate`` on the description of this
    layout with this rank's location, as a grid's construction runs it (a gather to
    grid rank 0 and a hand-out from it); the ring is one ``all_reduce`` of as many
    words as that exchange hands every rank (five header words and a location block
    per rank), the way the exchange was made before; the small one is five words.
    The three take turns, each after a barrier.
    """
    import torch.distributed as dist
    from proctopo.comm import TorchComm
    from proctopo.groups import LOCATION_WORDS, verify_and_locate

    pp, dp, mp = shape(world)
    description = {
        "axes": ["pipe", "data", "model"],
        "dims": [pp, dp, mp],
        "strategy": "local",
        "grid_size": world,
        "world_size": world,
        "process_group": None,
        "groups": [["pipe"], ["data"], ["model"], ["pipe", "model"]],
    }
    comm = TorchComm()
    exchanges: list[float] = []
    rings: list[float] = []
    bare: list[float] = []
    for _ in range(pairs):
        dist.barrier()
        t0 = time.perf_counter()
        verify_and_locate(comm, description, strategy="local", timeout=None, location=comm.location())
        exchanges.append(time.perf_counter() - t0)
        rings.append(_allreduce(5 + world * LOCATION_WORDS))
        bare.append(_allreduce(5))
    return exchanges, rings, bare


def worker(rank: int, world: int, contestant: str) -> dict[str, Any]:
    """One rank of a job: build the contestant's groups once, timed, as a real job does."""
    import logging
    import warnings

    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    os.environ.setdefault("LOCAL_RANK", str(rank))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build, teardown = _builder(contestant, world)
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import proctopo.grid as pgrid
    from proctopo.testing import counting_groups

    check_times: list[tuple[float, float]] = []
    real_verify = pgrid.verify_and_locate

    def timed_verify(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return real_verify(*args, **kwargs)
        finally:
            check_times.append((time.perf_counter() - t0, time.thread_time() - c0))

    pgrid.verify_and_locate = timed_verify  # type: ignore[assignment]
    # First use of the default group's collectives and of gloo group creation, the same for
    # every contestant: a group of the whole world, made and destroyed (a global name, so
    # the names of locally synchronised groups are not touched).
    for _ in range(3):
        _allreduce(5)
    warm = dist.new_group(list(range(world)))
    dist.barrier(group=warm)
    dist.destroy_process_group(warm)
    with counting_groups() as counts:
        dist.barrier()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.thread_time()
            obj = build()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    growth, new = counts.communicators, counts.made
    distinct = {
        (tuple(sorted(c10d._world.pg_group_ranks.get(pg, {}))), str(dist.get_backend(pg))) for pg in new
    }
    pgrid.verify_and_locate = real_verify  # type: ignore[assignment]
    dist.barrier()  # every rank has built before any destroys
    teardown(obj, new)
    dist.barrier()
    check_alone, ring, small = _paired_check(world, 10)
    record = {
        "wall": wall,
        "cpu": cpu,
        "in_calls": counts.in_calls,
        "new_group": counts.new_group,
        "split_group": counts.split_group,
        "live": growth,
        "distinct": len(distinct),
        "check": check_times[0][0] if check_times else None,
        "check_cpu": check_times[0][1] if check_times else None,
    }
    return {
        "record": record,
        "small_allreduce": small,
        "ring_allreduce": ring,
        "check_alone": check_alone,
        "memory": _rss(),
    }


# ------------------------------------------------------------------------------ driver side
def _log(msg: str, end: str = "\n") -> None:
    print(msg, end=end, file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    """CPU model, cores, memory (total and available, bytes), load average (1 / 5 / 15 min) now."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory_total": str(memory_bytes("MemTotal")),
        "memory_available": str(memory_bytes("MemAvailable")),
        "load": load_average(" / "),
        "python": platform.python_version(),
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("torch", "deepspeed", "megatron-core", "proctopo"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    if out["proctopo"] == "not installed":  # imported from a source tree
        out["proctopo"] = source_version()
    return out


def _available(contestant: str) -> str | None:
    """None when the contestant's library is importable, else the reason it is not."""
    import importlib.util

    need = {"deepspeed": "deepspeed", "megatron-core": "megatron.core", "proctopo-megatron": "megatron.core"}
    mod = need.get(contestant)
    if mod is None:
        return None
    try:
        found = importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{mod} is not installed"


def _aggregate(point: dict[str, Any]) -> None:
    """Medians and ranges of a point's jobs (in place): one build per job, every rank timed."""
    jobs = point.pop("_jobs")
    small = point.pop("_small")
    alone = point.pop("_check_alone")
    ring = point.pop("_ring", [])
    point["small_allreduce_median"] = statistics.median(small) if small else None
    point["ring_allreduce_median"] = statistics.median(ring) if ring else None
    point["check_alone_median"] = statistics.median(alone) if alone else None
    point["samples_small"] = len(small)
    if not jobs:
        return
    med = [statistics.median(r["wall"] for r in job) for job in jobs]
    slowest = [max(r["wall"] for r in job) for job in jobs]
    every = [r for job in jobs for r in job]

    def span(key: str) -> list[int]:
        vals = [int(r[key]) for r in every]
        return [min(vals), max(vals)]

    checks = [r["check"] for r in every if r.get("check") is not None]
    check_cpu = [r["check_cpu"] for r in every if r.get("check_cpu") is not None]
    point.update(
        check_cpu_median=statistics.median(check_cpu) if check_cpu else None,
        cpu_median=statistics.median(r["cpu"] for r in every),
        in_calls_median=statistics.median(r["in_calls"] for r in every),
    )
    point.update(
        jobs=len(jobs),
        wall_median=statistics.median(med),
        wall_slowest=statistics.median(slowest),
        wall_per_job=med,
        new_group=span("new_group"),
        split_group=span("split_group"),
        live=span("live"),
        distinct=span("distinct"),
        check_median=statistics.median(checks) if checks else None,
    )


def measure(
    sizes: list[int] | None = None,
    *,
    quick: bool = False,
    reps: int | None = None,
    contestants: list[str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run the jobs and return the data (``render`` and ``plot`` take it).

    Args:
        sizes: World sizes (default 8, 16, 32, 64; quick: 8). The first is run first and its
            memory per process decides whether the larger ones fit in this machine's memory.
        quick: 8 ranks, 2 jobs per contestant.
        reps: Jobs per contestant and world size, each building once (default 7; quick 2).
            The contestants take turns: job 1 of each, then job 2 of each (in rotated order), ...
        contestants: Keys of :data:`CONTESTANTS` (default all).
        timeout: Seconds a job may take before it is stopped (default 60 + 4 per rank).
    """
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import importlib

    from proctopo import launch

    this = importlib.import_module("scaling")  # the workers find it by this name
    sizes = sorted(sizes or (QUICK_SIZES if quick else FULL_SIZES))
    reps = reps or (2 if quick else 7)
    keys = contestants or [k for k, _, _ in CONTESTANTS]
    data: dict[str, Any] = {
        "command": COMMAND + (" --quick" if quick else ""),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine_start": machine(),
        "versions": _versions(),
        "config": {"sizes": sizes, "reps": reps},
        "points": {},
        "skipped": {},
    }
    pss_per_proc: int | None = None
    t_all = time.perf_counter()
    for world in sizes:
        if pss_per_proc is not None:
            avail = memory_bytes("MemAvailable")
            need = int(world * pss_per_proc * 1.5) + 2 * 2**30
            if avail is not None and need > avail:
                data["skipped"][str(world)] = (
                    f"{world} processes of {pss_per_proc / 2**20:.0f} MiB (PSS, measured at {sizes[0]}) "
                    f"x 1.5 + 2 GiB = {need / 2**30:.1f} GiB > {avail / 2**30:.1f} GiB available"
                )
                _log(f"[scaling] {world} ranks skipped: {data['skipped'][str(world)]}")
                continue
        points: dict[str, dict[str, Any]] = {}
        for key in keys:
            points[key] = {
                "status": "ok",
                "_jobs": [],
                "_small": [],
                "_ring": [],
                "_check_alone": [],
                "memory": {"rss": 0, "pss": 0},
            }
            why = _available(key)
            if why:
                points[key].update(status="not run", reason=why)
        job_timeout = timeout or (60.0 + 4.0 * world)
        _log(f"[scaling] {world} ranks: {reps} jobs per contestant ", end="")
        for rep in range(reps):
            order = keys[rep % len(keys) :] + keys[: rep % len(keys)]
            for key in order:
                point = points[key]
                if point["status"] != "ok":
                    continue
                results = launch.run(
                    this.worker,
                    world,
                    (key,),
                    timeout=job_timeout,
                    grace=10.0,
                    preload=PRELOAD,
                    store="tcp",
                )
                if not all(r.ok for r in results):
                    bad = [r for r in results if not r.ok]
                    status = "timeout" if any(r.status == "timeout" for r in bad) else "failed"
                    point.update(
                        status=status, reason=launch.summary(results)[:2000], job_timeout=job_timeout
                    )
                    _log(f"\n[scaling]   {key}: {status}: {launch.summary(results).splitlines()[0][:300]}")
                    continue
                values = [r.value for r in results]
                point["_jobs"].append([v["record"] for v in values])
                for v in values:
                    point["_small"].extend(v["small_allreduce"])
                    point["_ring"].extend(v["ring_allreduce"])
                    point["_check_alone"].extend(v["check_alone"])
                    for m in ("rss", "pss"):
                        point["memory"][m] = max(point["memory"][m], v["memory"][m])
            _log(".", end="")
        _log(f" load {os.getloadavg()[0]:.2f}")
        for point in points.values():
            if point["status"] == "ok":
                _aggregate(point)
            else:
                for k in ("_jobs", "_small", "_ring", "_check_alone"):
                    point.pop(k, None)
        data["points"][str(world)] = points
        pss = [p["memory"]["pss"] for p in points.values() if p.get("memory", {}).get("pss")]
        if pss and pss_per_proc is None:
            pss_per_proc = max(pss)
            rss = max(p["memory"]["rss"] for p in points.values() if p.get("memory"))
            data["memory_per_process"] = {"world": world, "pss": pss_per_proc, "rss": rss}
    data["elapsed_s"] = time.perf_counter() - t_all
    data["machine_end"] = machine()
    return data


# ------------------------------------------------------------------------------ report
def _span(v: list[int] | None) -> str:
    if not v:
        return "–"
    return f"{v[0]:,}" if v[0] == v[1] else f"{v[0]:,}–{v[1]:,}"


def _ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def _point(data: dict[str, Any], world: int, key: str) -> dict[str, Any] | None:
    p = data.get("points", {}).get(str(world), {}).get(key)
    return p if p and p.get("status") == "ok" and p.get("wall_median") is not None else None


def small_collectives(data: dict[str, Any], world: int) -> tuple[float | None, float | None, float | None]:
    """(one small all_reduce, the exchange alone, a ring all_reduce of the exchange's words).

    Medians over every job of a world size.
    """
    pts = [p for p in data.get("points", {}).get(str(world), {}).values() if p.get("status") == "ok"]

    def median(key: str) -> float | None:
        vals = [p[key] for p in pts if p.get(key)]
        return statistics.median(vals) if vals else None

    return median("small_allreduce_median"), median("check_alone_median"), median("ring_allreduce_median")


def goals(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) rows; met is None when it could not be measured."""
    rows: list[tuple[str, str, bool | None]] = []
    worlds = sorted(int(w) for w in data.get("points", {}))
    for world in worlds:
        on, off = _point(data, world, "proctopo-local"), _point(data, world, "proctopo-local-noverify")
        goal = f"fingerprint check ≤ one small collective, {world} ranks (grid `local` with verify=True − verify=False)"
        small, alone, _ = small_collectives(data, world)
        if on and off and small:
            delta = on["wall_median"] - off["wall_median"]
            rows.append(
                (
                    goal,
                    f"{fmt_time(delta)} ({fmt_time(on['wall_median'])} − {fmt_time(off['wall_median'])}) against one small all_reduce "
                    f"{fmt_time(small)}: {_ratio(max(delta, 0.0) / small)}; the check inside the grid {fmt_time(on.get('check_median'))} "
                    f"({fmt_time(on.get('check_cpu_median'))} of it CPU), alone after a barrier {fmt_time(alone)}",
                    delta <= small,
                )
            )
        else:
            rows.append((goal, "not measured", None))
    for world in FULL_SIZES:
        need = 1.0
        local, ds = _point(data, world, "proctopo-local"), _point(data, world, "deepspeed")
        goal = f"proctopo `local` (check and placement exchange on) no slower than DeepSpeed's grid at {world} ranks"
        if local and ds:
            r = ds["wall_median"] / local["wall_median"]
            rows.append(
                (
                    goal,
                    f"DeepSpeed / proctopo = {_ratio(r)} ({fmt_time(ds['wall_median'])} vs {fmt_time(local['wall_median'])}; "
                    f"without the check {fmt_time(_point(data, world, 'proctopo-local-noverify')['wall_median']) if _point(data, world, 'proctopo-local-noverify') else '–'})",
                    r >= need,
                )
            )
        else:
            rows.append(
                (
                    goal,
                    "not measured"
                    + (f" ({world} ranks not run)" if str(world) not in data.get("points", {}) else ""),
                    None,
                )
            )
    return rows


def render(data: dict[str, Any]) -> str:
    """The markdown section of a :func:`measure` result (no heading)."""
    m0, m1 = data["machine_start"], data["machine_end"]
    v = data["versions"]
    mem = data.get("memory_per_process")
    L: list[str] = []
    L.append(
        "Real `torch.distributed` jobs on this machine: N local processes joined by gloo through a TCPStore on "
        "loopback served by rank 0 (as `torchrun` serves one), started by `proctopo.launch.run` from a forkserver that imported torch, DeepSpeed and "
        "megatron-core once. Every contestant builds the same layout, pipe 2 × data N/4 × model 2 (Megatron: "
        "tp 2, pp 2, dp N/4, its defaults otherwise, so with its gloo groups). Each job builds once, as a real "
        "job does: the default group's all_reduce and one gloo group of the whole world are used first (the "
        "same for every contestant), then, after a barrier, every rank times the constructor. *Wall per rank* "
        "is the median over the ranks of a job, then over the jobs; *slowest rank* the same with the maximum "
        "over the ranks. `new_group` calls are counted by wrapping torch's function wherever a module holds "
        "it (DeviceMesh and Megatron import it by name); *communicators* is the growth of "
        "`len(torch.distributed.distributed_c10d._world.pg_names)` on the rank, and in brackets how many "
        "distinct (ranks, backend) sets they hold. *CPU* is the building thread's CPU time; *in calls* the "
        "wall time spent inside `new_group`/`split_group`. The contestants' jobs take turns (job 1 of each, "
        "then job 2 of each in rotated order, ...). Topologies are built before the timer (DeepSpeed's and "
        "proctopo's), so the time is the grid's constructor alone.\n"
    )
    L.append(
        f"Command: `{data['command']}` · {data['date']} · {m0['cpu']}, {m0['cores']} cores · load average "
        f"{m0['load']} (1 / 5 / 15 min) at the start, {m1['load']} at the end · Python {m0['python']}, torch "
        f"{v.get('torch')}, DeepSpeed {v.get('deepspeed')}, megatron-core {v.get('megatron-core')} · "
        f"{data['config']['reps']} jobs per point · {data['elapsed_s']:.0f} s in all\n"
    )
    if mem:
        L.append(
            f"Memory per process, measured at {mem['world']} ranks (largest over the ranks of every job): RSS "
            f"{mem['rss'] / 2**20:.0f} MiB, of which proportional (PSS, shared pages divided among the processes "
            f"sharing them) {mem['pss'] / 2**20:.0f} MiB; a world of N ranks is run when N × PSS × 1.5 + 2 GiB "
            "fits in the memory available then.\n"
        )
    for world, why in sorted(data.get("skipped", {}).items(), key=lambda kv: int(kv[0])):
        L.append(f"- {int(world)} ranks not run: {why}")
    if data.get("skipped"):
        L.append("")
    L.append(
        "| world | contestant | wall per rank (median) | slowest rank | CPU / rank | in calls / rank | "
        "`new_group` calls / rank | communicators / rank (distinct) | × proctopo `local` |"
    )
    L.append("|---:|---|--:|--:|--:|--:|--:|--:|--:|")
    for world in sorted(int(w) for w in data.get("points", {})):
        pp, dp, mp = shape(world)
        ref = _point(data, world, "proctopo-local")
        for key, label, _ in CONTESTANTS:
            p = data["points"][str(world)].get(key)
            if p is None:
                continue
            head = f"| {world} ({pp} × {dp} × {mp}) | {label} |"
            if p.get("status") != "ok" or p.get("wall_median") is None:
                why = p.get("reason", "").splitlines()[0][:160] if p.get("reason") else ""
                L.append(head + f" {p.get('status')}{': ' + why if why else ''} | – | – | – | – | – | – |")
                continue
            calls = _span(p["new_group"]) + (
                f" (+{_span(p['split_group'])} split)" if p["split_group"][1] else ""
            )
            ratio = _ratio(p["wall_median"] / ref["wall_median"]) if ref else "–"
            L.append(
                head
                + f" {fmt_time(p['wall_median'])} | {fmt_time(p['wall_slowest'])} | {fmt_time(p.get('cpu_median'))} | "
                f"{fmt_time(p.get('in_calls_median'))} | {calls} | {_span(p['live'])} ({_span(p['distinct'])}) | {ratio} |"
            )
    L.append("")
    L.append(
        "The set-up exchange alone (proctopo's `verify_and_locate` with this rank's location: a gather to grid "
        "rank 0 and a hand-out from it, a scatter at these sizes), a ring all_reduce of as many words as it hands every rank (5 + 10 per "
        "rank, MAX), and one small all_reduce (5 int64), each after a barrier; the three take turns, 10 times "
        "per job, medians over every rank and job of the world size:\n"
    )
    L.append(
        "| world | small all_reduce | ring all_reduce of the exchange's words | exchange alone | exchange / ring "
        "| exchange inside proctopo's `local` grid |"
    )
    L.append("|---:|--:|--:|--:|--:|--:|")
    for world in sorted(int(w) for w in data.get("points", {})):
        small, alone, ring = small_collectives(data, world)
        on = _point(data, world, "proctopo-local")
        if small and alone:
            L.append(
                f"| {world} | {fmt_time(small)} | {fmt_time(ring)} | {fmt_time(alone)} | "
                f"{_ratio(alone / ring) if ring else '–'} | {fmt_time(on.get('check_median') if on else None)} |"
            )
    L.append("")
    L.append("Goals:\n")
    L.append("| goal | measured | met |")
    L.append("|---|---|---|")
    for goal, measured, met in goals(data):
        L.append(f"| {goal} | {measured} | {'yes' if met else ('—' if met is None else '**no**')} |")
    L.append("")
    return "\n".join(L) + "\n"


def plot(
    data: dict[str, Any], sim: dict[str, Any] | None, megatron_sim: dict[str, Any] | None, path: Path
) -> Path | None:
    """Wall per rank, new_group calls per rank and communicators per rank against world size.

    ``sim`` / ``megatron_sim`` are bench/grid_sim.py's ``simulate()`` / ``megatron_simulate()``
    data: their calls per rank at 65,536 and 1,048,576 ranks join the middle panel.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        _log("matplotlib is not installed: no scaling plot (pip install matplotlib)")
        return None
    colors = {
        "proctopo-local": "#d62728",
        "proctopo-local-noverify": "#ff9896",
        "proctopo-global": "#8c564b",
        "deepspeed": "#1f77b4",
        "device-mesh": "#ff7f0e",
        "megatron-core": "#2ca02c",
        "proctopo-megatron": "#9467bd",
    }
    markers = {
        "proctopo-local": "o",
        "proctopo-local-noverify": "o",
        "proctopo-global": "s",
        "deepspeed": "^",
        "device-mesh": "v",
        "megatron-core": "D",
        "proctopo-megatron": "P",
    }
    # Lines that coincide (equal call or communicator counts) stay visible: later ones thinner.
    widths = {k: 4.0 - 0.45 * i for i, (k, _, _) in enumerate(CONTESTANTS)}
    worlds = sorted(int(w) for w in data.get("points", {}))
    fig, axs = plt.subplots(1, 3, figsize=(18, 5.8))
    for key, label, _ in CONTESTANTS:
        xs, wall, calls, live = [], [], [], []
        for w in worlds:
            p = _point(data, w, key)
            if p:
                xs.append(w)
                wall.append(p["wall_median"])
                calls.append(p["new_group"][1] + p["split_group"][1])
                live.append(p["live"][1])
        if not xs:
            continue
        style = "--" if key == "proctopo-local-noverify" else "-"
        kw = {
            "marker": markers[key],
            "color": colors[key],
            "lw": widths[key],
            "ms": 3 + widths[key],
            "alpha": 0.85,
        }
        axs[0].plot(xs, wall, style, label=label.replace("`", ""), **kw)
        if key != "proctopo-local-noverify":
            axs[1].plot(xs, calls, style, label=label.replace("`", "") + " (measured)", **kw)
            axs[2].plot(xs, live, style, label=label.replace("`", ""), **kw)
    # The simulation: calls per rank at 65,536 and 1,048,576 ranks (pipe x data x model layouts).
    sim_pts: dict[str, list[tuple[int, int]]] = {}
    for r in (sim or {}).get("rows", []):
        if len(r.get("axes", [])) != 3:
            continue
        if r.get("lib") == "proctopo" and r.get("requested") in ("local", "global"):
            sim_pts.setdefault(f"proctopo-{r['requested']}", []).append((r["world"], r["new_group"]))
        elif str(r.get("lib", "")).startswith("DeepSpeed"):
            calls = r.get("new_group") if r.get("status") == "ok" else r.get("expected_calls")
            if calls:
                sim_pts.setdefault("deepspeed", []).append((r["world"], calls))
    for r in (megatron_sim or {}).get("rows", []):
        if (
            r.get("rank") != 0
            or r.get("etp") != 1
            or r.get("gloo") is not True
            or r.get("status", "ok") != "ok"
        ):
            continue
        key = (
            "megatron-core"
            if r["lib"] == "megatron-core"
            else ("proctopo-megatron" if r.get("requested") == "local" else None)
        )
        if key:
            sim_pts.setdefault(key, []).append((megatron_sim["world"], r["new_group"]))
    for key, pts in sim_pts.items():
        pts.sort()
        axs[1].plot(*zip(*pts), ":", marker="D", mfc="none", ms=8, color=colors[key],
                    label=f"{LABEL[key].replace('`', '')} (simulated, grid_sim.py)")  # fmt: skip
    for ax in axs:
        ax.set_xscale("log", base=2)
        if ax is not axs[2]:
            ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("world size (ranks)")
    axs[0].set_xticks(worlds)
    axs[0].set_xticklabels([str(w) for w in worlds])
    axs[2].set_xticks(worlds)
    axs[2].set_xticklabels([str(w) for w in worlds])
    ticks = [*worlds, 65536, 1048576] if sim_pts else worlds
    axs[1].set_xticks(ticks)
    axs[1].set_xticklabels(
        [f"{w:,}" if w < 65536 else ("64Ki" if w == 65536 else "1Mi") for w in ticks], fontsize=8
    )
    axs[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_time(v)))
    axs[0].set_title("wall time of the grid's constructor per rank (median)", fontsize=10)
    axs[1].set_title("new_group / split_group calls per rank", fontsize=10)
    axs[2].set_title("communicators per rank (growth of pg_names)", fontsize=10)
    axs[2].set_ylim(bottom=0)
    axs[2].yaxis.get_major_locator().set_params(integer=True)
    axs[0].legend(fontsize=8)
    axs[1].legend(fontsize=7)
    axs[2].legend(fontsize=8)
    m = data["machine_start"]
    fig.suptitle(
        f"Real gloo jobs on one machine ({m['cpu']}, {m['cores']} cores), layout pipe 2 × data N/4 × model 2; "
        f"calls at 64Ki and 1Mi ranks simulated (pipe 8/16 × data × model 8; Megatron tp 8 cp 2 ep 8 pp 8)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, then print the markdown (and write JSON / the plot when asked)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 ranks, 2 jobs per contestant")
    ap.add_argument("--sizes", type=int, nargs="+", help="world sizes (default 8 16 32 64)")
    ap.add_argument("--reps", type=int, help="jobs per contestant and world size (default 7; quick 2)")
    ap.add_argument(
        "--contestants", nargs="+", choices=[k for k, _, _ in CONTESTANTS], help="default: all of them"
    )
    ap.add_argument("--json", type=Path, help="write the data here")
    ap.add_argument("--plot", type=Path, help="write the picture here (needs matplotlib)")
    args = ap.parse_args(argv)
    data = measure(args.sizes, quick=args.quick, reps=args.reps, contestants=args.contestants)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    if args.plot:
        plot(data, None, None, args.plot)
    print("## Real group creation (bench/scaling.py)\n")
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
