#!/usr/bin/env python3
"""Side-by-side benchmark of proctopo against DeepSpeed, Megatron, DeviceMesh and NumPy.

Every (library, world size, layout) runs in its own fresh Python process, so that
construction memory is measured from a clean heap and one library's caches cannot
help another. Times are medians of repeated ``timeit`` batches (gc off while timing,
as timeit does); ratios are peer time / proctopo time, so ``120x`` means proctopo is
120 times faster. A call that would exceed the time bound is stopped and reported as
such, never dropped. Results of every operation are fingerprinted and compared with
proctopo's, so a fast wrong answer shows up as a mismatch.

The script also runs the C++ Google Benchmark binary (``--cpp-bench``) and the grid's
scale simulation (``bench/grid_sim.py``, when present), then writes
``bench/RESULTS.md``, ``bench/results.json`` and ``bench/compare.png``. The planning
section bench/plan_scaling.py writes into RESULTS.md (between its markers) is kept.

Usage (see bench/README.md)::

    python bench/compare.py --quick                     # smoke run, about a minute
    python bench/compare.py --cpp-bench build/dev/bench/proctopo_bench   # full run
"""

# ruff: noqa: RUF001, RUF003, E501  (a report generator: markdown lines are long and use × and – on purpose)
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from _common import (  # bench/ is on sys.path: this script's own directory
    HERE,
    REPO,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    git_commit,
    machine_info,
    source_version,
)

MARK = "@@PROCTOPO-BENCH "

LIBS = ["proctopo", "deepspeed", "megatron", "devicemesh", "numpy"]
LIB_LABEL = {
    "proctopo": "proctopo",
    "deepspeed": "DeepSpeed",
    "megatron": "Megatron",
    "devicemesh": "DeviceMesh",
    "numpy": "NumPy",
}
OPS = [
    "construct",
    "get_rank",
    "get_coord",
    "filter_match",
    "get_axis_list",
    "get_axis_comm_lists",
    "groups",
    "coords_bulk",
]
OP_LABEL = {
    "construct": "construction",
    "get_rank": "get_rank",
    "get_coord": "get_coord",
    "filter_match": "filter_match(data=1)",
    "get_axis_list": "get_axis_list('pipe', 1)",
    "get_axis_comm_lists": "get_axis_comm_lists('data') (lists)",
    "groups": "groups('data') (array)",
    "coords_bulk": "coords of all ranks (bulk array)",
}
FULL_SIZES = [1024, 65536, 1048576]
QUICK_SIZES = [1024, 65536]
GOAL_WORLD = 65536


# --------------------------------------------------------------------------- layouts
def layout(naxes: int, world: int) -> tuple[list[str], list[int]]:
    """The two layouts measured: 3 axes (pipe 8, data W/64, model 8) and
    5 axes (pipe 8, data W/512, expert 4, context 2, tensor 8)."""
    if naxes == 3:
        if world % 64:
            raise SystemExit(f"world size {world} is not a multiple of 64 (pipe 8 x model 8)")
        return ["pipe", "data", "model"], [8, world // 64, 8]
    if naxes == 5:
        if world % 512:
            raise SystemExit(f"world size {world} is not a multiple of 512 (8 x 4 x 2 x 8)")
        return ["pipe", "data", "expert", "context", "tensor"], [8, world // 512, 4, 2, 8]
    raise SystemExit(f"--axes takes 3 or 5, not {naxes}")


def probe_rank(world: int) -> int:
    """The rank get_coord looks up: mid-grid, so a linear scan reads about half the ranks."""
    return world // 2 + 3


def unravel(rank: int, dims: list[int]) -> list[int]:
    out = []
    for d in reversed(dims):
        out.append(rank % d)
        rank //= d
    return out[::-1]


# --------------------------------------------------------------------------- worker side
class Unsupported(Exception):
    """The library has no counterpart of this operation."""


def _megatron_names(axes: list[str]) -> dict[str, str]:
    return {"pipe": "pp", "data": "dp", "model": "tp", "tensor": "tp", "expert": "ep", "context": "cp"}


def build_namespace(lib: str, axes: list[str], dims: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Imports the library and returns (namespace, {op: stmt string or Unsupported reason}).

    The "construct" stmt must build the object the other stmts use under the name ``obj``.
    Statements use literal arguments so that timeit measures only the call.
    """
    world = math.prod(dims)
    r = probe_rank(world)
    coord = unravel(r, dims)
    kw = ", ".join(f"{a}={c}" for a, c in zip(axes, coord))
    d_data = dims[1]
    ns: dict[str, Any] = {"AXES": axes, "DIMS": dims, "W": world, "R": r}
    ops: dict[str, Any] = {}
    if lib == "proctopo":
        import numpy as np
        import proctopo

        ns.update(ProcessTopology=proctopo.ProcessTopology, ALL=np.arange(world, dtype=np.int64))
        ops["construct"] = "ProcessTopology(AXES, DIMS)"
        ops["get_rank"] = f"obj.get_rank({kw})"
        ops["get_coord"] = "obj.get_coord(R)"
        ops["filter_match"] = "obj.filter_match(data=1)"
        ops["get_axis_list"] = "obj.get_axis_list('pipe', 1)"
        ops["get_axis_comm_lists"] = "obj.get_axis_comm_lists('data')"
        ops["groups"] = "obj.groups('data')"
        ops["coords_bulk"] = "obj.coords(ALL)"
    elif lib == "deepspeed":
        from deepspeed.runtime.pipe.topology import ProcessTopology

        ns.update(ProcessTopology=ProcessTopology)
        ops["construct"] = "ProcessTopology(AXES, DIMS)"
        ops["get_rank"] = f"obj.get_rank({kw})"
        ops["get_coord"] = "obj.get_coord(R)"
        ops["filter_match"] = "obj.filter_match(data=1)"
        ops["get_axis_list"] = "obj.get_axis_list('pipe', 1)"
        ops["get_axis_comm_lists"] = "obj.get_axis_comm_lists('data')"
        ops["groups"] = Unsupported("no array API (lists only)")
        ops["coords_bulk"] = Unsupported("no bulk API")
    elif lib == "megatron":
        from megatron.core.parallel_state import RankGenerator, generate_masked_orthogonal_rank_groups

        names = _megatron_names(axes)
        fastest_first = [names[a] for a in reversed(axes)]
        sizes = dict(zip([names[a] for a in axes], dims))
        ns.update(
            RankGenerator=RankGenerator,
            generate=generate_masked_orthogonal_rank_groups,
            ORDERED=[sizes[n] for n in fastest_first],
            MASK=[n == "dp" for n in fastest_first],
        )
        order = "-".join(fastest_first)
        if len(axes) == 3:
            ops["construct"] = (
                f"RankGenerator(tp={sizes['tp']}, ep=1, dp={sizes['dp']}, pp={sizes['pp']}, "
                f"cp=1, order={order!r})"
            )
            ops["get_axis_comm_lists"] = "obj.get_ranks('dp')"
        else:
            # RankGenerator asserts ep == 1 or cp == 1 (Megatron keeps a second generator
            # for experts); get_ranks is a thin wrapper over this function, timed directly.
            ops["construct"] = Unsupported("RankGenerator refuses ep > 1 together with cp > 1")
            ops["get_axis_comm_lists"] = "generate(W, ORDERED, MASK)"
        for op in ("get_rank", "get_coord", "filter_match", "get_axis_list"):
            ops[op] = Unsupported("no equivalent API")
        ops["groups"] = Unsupported("no array API (lists only)")
        ops["coords_bulk"] = Unsupported("no bulk API")
    elif lib == "devicemesh":
        import torch

        torch.set_num_threads(1)
        ns.update(torch=torch, ALL=torch.arange(world))
        idx = ", ".join(str(c) for c in coord)
        ops["construct"] = "torch.arange(W).view(DIMS)"
        ops["get_rank"] = f"obj[{idx}].item()"
        # What DeviceMesh does to find a rank's coordinate.
        ops["get_coord"] = "tuple((obj == R).nonzero()[0].tolist())"
        ops["filter_match"] = "obj.select(1, 1).flatten().tolist()"
        ops["get_axis_list"] = "obj.select(0, 1).flatten().tolist()"
        # DeviceMesh uses swapdims(-1, dim); movedim keeps the other axes in row-major
        # order for any number of axes (the same as swapdims for 3 axes) and costs the same.
        ops["get_axis_comm_lists"] = f"obj.movedim(1, -1).reshape(-1, {d_data}).tolist()"
        ops["groups"] = f"obj.movedim(1, -1).reshape(-1, {d_data})"
        ops["coords_bulk"] = "torch.stack(torch.unravel_index(ALL, DIMS), dim=1)"
    elif lib == "numpy":
        import numpy as np

        ns.update(np=np, ALL=np.arange(world, dtype=np.int64), SHAPE=tuple(dims))
        ops["construct"] = "np.arange(W).reshape(DIMS)"
        ops["get_rank"] = f"np.ravel_multi_index(({', '.join(map(str, coord))},), SHAPE)"
        ops["get_coord"] = "np.unravel_index(R, SHAPE)"
        ops["filter_match"] = "obj[:, 1].ravel().tolist()"
        ops["get_axis_list"] = "obj[1].ravel().tolist()"
        ops["get_axis_comm_lists"] = f"np.moveaxis(obj, 1, -1).reshape(-1, {d_data}).tolist()"
        ops["groups"] = f"np.moveaxis(obj, 1, -1).reshape(-1, {d_data})"
        ops["coords_bulk"] = "np.stack(np.unravel_index(ALL, SHAPE), axis=1)"
    else:
        raise SystemExit(f"unknown library {lib!r}")
    return ns, ops


def fingerprint(value: Any) -> str:
    """A short hash of a result's values and shape, independent of its Python type."""
    import numpy as np

    if hasattr(value, "numpy") and hasattr(value, "detach"):  # torch tensor
        value = value.detach().numpy()
    arr = np.asarray(value, dtype=np.int64)
    h = hashlib.sha1(repr(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


def _with_bound(fn: Callable[[], Any], seconds: float) -> Any:
    """Runs fn, interrupting it (between bytecodes) after `seconds`."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def measure(stmt: str, ns: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Median time per call of stmt: calibrated batches, repeated within a budget."""
    # CPU time of this process: on a shared machine, time spent descheduled is not charged.
    timer = timeit.Timer(stmt, timer=time.process_time, globals=ns)
    bound = cfg["bound"]
    start = time.perf_counter()
    try:
        first = _with_bound(lambda: timer.timeit(1), bound)
    except _Timeout:
        return {"status": "exceeded", "bound": bound, "elapsed": time.perf_counter() - start}
    if first > bound:
        return {"status": "exceeded", "bound": bound, "elapsed": first}
    # Calibrate: grow the batch until it takes cfg["batch"] seconds.
    number, per_call = 1, first
    while per_call * number < cfg["batch"]:
        number = max(number * 2, int(cfg["batch"] / max(per_call, 1e-9) * 1.1))
        t = timer.timeit(number)
        per_call = t / number
        if t >= cfg["batch"]:
            break
    batch_time = per_call * number
    repeats = int(cfg["budget"] / max(batch_time, 1e-9))
    repeats = max(cfg["min_repeats"], min(cfg["repeats"], repeats))
    try:
        times = _with_bound(lambda: timer.repeat(repeats, number), bound * repeats * 2 + 5)
    except _Timeout:
        return {"status": "exceeded", "bound": bound, "elapsed": time.perf_counter() - start}
    per = sorted(t / number for t in times)
    return {
        "status": "ok",
        "median": statistics.median(per),
        "min": per[0],
        "max": per[-1],
        "number": number,
        "repeats": repeats,
        "samples": per,
    }


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(record) + "\n")
    sys.stdout.flush()


def worker(lib: str, world: int, naxes: int, cfg: dict[str, Any]) -> None:
    axes, dims = layout(naxes, world)
    t0 = time.perf_counter()
    ns, ops = build_namespace(lib, axes, dims)
    emit({"kind": "meta", "import_s": time.perf_counter() - t0, "versions": lib_versions(lib)})

    construct = ops["construct"]
    if isinstance(construct, Unsupported):
        emit({"kind": "op", "op": "construct", "status": "unsupported", "reason": str(construct)})
        ns["obj"] = None
    else:
        make = eval("lambda: " + construct, ns)
        # Warm-up on a one-rank grid, so lazy imports and first-use caches of the library
        # are not charged to the memory of the measured construction.
        tiny = dict(ns, DIMS=[1] * len(dims), W=1)
        eval(construct, tiny)
        del tiny
        if cfg.get("memory", True):
            # Memory 1: resident-set growth of one construction in a fresh process.
            gc.collect()
            rss0 = rss_bytes()
            obj = make()
            rss1 = rss_bytes()
            # Memory 2: bytes Python's allocators hold for a second construction (tracemalloc
            # cannot see C++ or torch allocations; the RSS figure does).
            gc.collect()
            tracemalloc.start()
            obj2 = make()
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del obj2
            gc.collect()
            emit({"kind": "memory", "rss_delta": rss1 - rss0, "traced": current, "traced_peak": peak})
        else:
            obj = make()
        ns["obj"] = obj
        emit({"kind": "op", "op": "construct", **measure(construct, ns, cfg)})

    for op in OPS[1:]:
        stmt = ops.get(op, Unsupported("not measured"))
        if isinstance(stmt, Unsupported):
            emit({"kind": "op", "op": op, "status": "unsupported", "reason": str(stmt)})
            continue
        try:
            result = _with_bound(lambda s=stmt: eval(s, ns), cfg["bound"])
        except _Timeout:
            emit({"kind": "op", "op": op, "status": "exceeded", "bound": cfg["bound"]})
            continue
        except Exception as e:  # a peer that breaks is reported, not hidden
            emit({"kind": "op", "op": op, "status": "error", "reason": f"{type(e).__name__}: {e}"})
            continue
        fp = fingerprint(result)
        del result
        emit({"kind": "op", "op": op, "fingerprint": fp, **measure(stmt, ns, cfg)})


def lib_versions(lib: str) -> dict[str, str]:
    from importlib import metadata

    dist = {
        "proctopo": "proctopo",
        "deepspeed": "deepspeed",
        "megatron": "megatron-core",
        "devicemesh": "torch",
        "numpy": "numpy",
    }[lib]
    try:
        out = {dist: metadata.version(dist)}
    except metadata.PackageNotFoundError:  # proctopo imported from a source tree, not installed
        out = {dist: source_version() if lib == "proctopo" else "not installed"}
    if lib == "proctopo":
        import proctopo

        out["proctopo_path"] = str(Path(proctopo.__file__).parent)
    return out


# --------------------------------------------------------------------------- parent side
def run_worker(lib: str, world: int, naxes: int, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        lib,
        str(world),
        str(naxes),
        json.dumps(cfg),
    ]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rec: dict[str, Any] = {"lib": lib, "world": world, "naxes": naxes, "ops": {}, "memory": None}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"worker stopped after {timeout:.0f} s", None
    rec["wall_s"] = time.perf_counter() - t0
    for line in out.splitlines():
        if not line.startswith(MARK):
            continue
        r = json.loads(line[len(MARK) :])
        kind = r.pop("kind")
        if kind == "op":
            rec["ops"][r.pop("op")] = r
        elif kind == "memory":
            rec["memory"] = r
        elif kind == "meta":
            rec["meta"] = r
    for op in OPS:
        if op not in rec["ops"]:
            if rc is None:
                rec["ops"][op] = {"status": "exceeded", "bound": timeout, "reason": "worker time limit"}
            else:
                tail = (err or "").strip().splitlines()[-1:] or [f"exit code {rc}"]
                rec["ops"][op] = {"status": "error", "reason": tail[0][:200]}
    return rec


def merge_rounds(acc: dict[str, Any] | None, rec: dict[str, Any]) -> dict[str, Any]:
    """Pools another round's timing samples into acc (memory and fingerprints: round 1)."""
    if acc is None:
        rec["rounds"] = 1
        return rec
    acc["rounds"] += 1
    acc["wall_s"] += rec["wall_s"]
    for op, new in rec["ops"].items():
        old = acc["ops"].get(op)
        if old is None or old.get("status") != "ok":
            continue  # keep the first round's verdict for anything that did not run
        if new.get("status") != "ok":
            acc["ops"][op] = new  # a later round that failed or hit the bound is reported
            continue
        if new.get("fingerprint") != old.get("fingerprint"):
            old["fingerprint"] = "differs between rounds"
        pooled = sorted(old["samples"] + new["samples"])
        old.update(samples=pooled, median=statistics.median(pooled), min=pooled[0], max=pooled[-1])
        old["repeats"] += new["repeats"]
    return acc


def run_cpp(binary: str, quick: bool, timeout: float) -> dict[str, Any]:
    args = [binary, "--benchmark_format=json"]
    if quick:
        args += ["--benchmark_min_time=0.02"]
    else:
        args += [
            "--benchmark_min_time=0.1",
            "--benchmark_repetitions=5",
            "--benchmark_enable_random_interleaving=true",  # repetitions of all benchmarks take turns
            "--benchmark_report_aggregates_only=true",
        ]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{binary}: {e}"}
    if proc.returncode != 0:
        return {"error": f"{binary} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return {"command": " ".join(shlex.quote(a) for a in args), **json.loads(proc.stdout)}


def cpp_table(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{benchmark name: {"per_elem": s, "real_time": s}} from median aggregates or single runs."""
    out: dict[str, dict[str, float]] = {}
    spread: dict[str, float] = {}
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "stddev":
            spread[name] = float(b.get("per_elem", float("nan")))
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        out[name] = {
            "per_elem": float(b.get("per_elem", float("nan"))),
            "real_time": b["real_time"] * scale[b.get("time_unit", "ns")],
            "cpu_time": b["cpu_time"] * scale[b.get("time_unit", "ns")],
        }
    for name, sd in spread.items():  # standard deviation of per_elem over the repetitions
        if name in out:
            out[name]["per_elem_sd"] = sd
    return out


def run_json_script(argv: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Runs ``python bench/<argv>`` in a subprocess (so it cannot hang this run) and returns the JSON
    object it prints on its last stdout line, or ``{"error": why}``."""
    path = HERE / argv[0]
    if not path.exists():
        return {"error": f"bench/{argv[0]} is missing, so {what} is not part of this run"}
    cmd = [sys.executable, str(path), *argv[1:]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired:
        return {
            "error": f"`{' '.join(['python', 'bench/' + argv[0], *argv[1:]])}` did not finish within {timeout:.0f} s"
        }
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"error": f"`bench/{argv[0]}` failed (exit {proc.returncode}): {tail}"}
    return dict(json.loads(lines[-1]))


def run_grid_sim(quick: bool, timeout: float, ds_bound: float | None) -> dict[str, Any]:
    """The grid's scale simulation (bench/grid_sim.py): its data."""
    argv = ["grid_sim.py", "--json"] + (["--quick"] if quick else [])
    if ds_bound is not None:
        argv += ["--ds-bound", str(ds_bound)]
    return run_json_script(argv, timeout, "the scale simulation")


def run_megatron_sim(timeout: float) -> dict[str, Any]:
    """Megatron's parallel state at 65,536 ranks (bench/grid_sim.py --megatron): its data."""
    return run_json_script(["grid_sim.py", "--megatron", "--json"], timeout, "the Megatron simulation")


def run_scaling(quick: bool, timeout: float, out_dir: Path) -> dict[str, Any]:
    """Real group creation on gloo jobs (bench/scaling.py): its data."""
    tmp = out_dir / "scaling.partial.json"
    argv = ["scaling.py", "--json", str(tmp)] + (["--quick"] if quick else [])
    path = HERE / "scaling.py"
    if not path.exists():
        return {"error": "bench/scaling.py is missing"}
    try:
        proc = subprocess.run(
            [sys.executable, str(path), *argv[1:]], capture_output=True, text=True, timeout=timeout, cwd=HERE
        )
    except subprocess.TimeoutExpired:
        return {"error": f"bench/scaling.py did not finish within {timeout:.0f} s"}
    if proc.returncode != 0 or not tmp.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"error": f"bench/scaling.py failed (exit {proc.returncode}): {tail}"}
    data = dict(json.loads(tmp.read_text()))
    tmp.unlink()
    return data


def _bench_module(name: str) -> Any:
    """bench/grid_sim.py or bench/scaling.py, imported for their renderers (stdlib only at import)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import importlib

    return importlib.import_module(name)


# --------------------------------------------------------------------------- formatting
def cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "not run"
    st = rec.get("status")
    if st == "ok":
        return fmt_time(rec["median"])
    if st == "exceeded":
        return f"> {fmt_time(rec['bound'])} (time bound)"
    if st == "unsupported":
        return "n/a"
    return "error"


def median_of(results: dict, lib: str, world: int, naxes: int, op: str) -> float | None:
    rec = results.get((lib, world, naxes))
    if not rec:
        return None
    o = rec["ops"].get(op)
    if o and o.get("status") == "ok":
        return float(o["median"])
    return None


# --------------------------------------------------------------------------- report
def evaluate_goals(
    results: dict, sizes: list[int], axes_list: list[int], cpp: dict[str, dict[str, float]]
) -> list[tuple[str, str, str, bool | None]]:
    """(goal, layout, measured, met) rows; met is None when it could not be measured."""
    rows: list[tuple[str, str, str, bool | None]] = []
    w = GOAL_WORLD
    for naxes in axes_list:
        lay = f"{naxes} axes"
        if w in sizes:
            for op, need in (
                ("construct", 1000),
                ("get_coord", 500),
                ("filter_match", 10),
                ("get_axis_list", 10),
                ("get_axis_comm_lists", 10),
            ):
                p = median_of(results, "proctopo", w, naxes, op)
                d = median_of(results, "deepspeed", w, naxes, op)
                goal = f"{OP_LABEL[op]} ≥ {need:,}× faster than DeepSpeed at {w:,}"
                if p and d:
                    rows.append(
                        (goal, lay, f"{fmt_ratio(d / p)} ({fmt_time(p)} vs {fmt_time(d)})", d / p >= need)
                    )
                else:
                    rows.append((goal, lay, "not measured", None))
            p = median_of(results, "proctopo", w, naxes, "get_axis_comm_lists")
            n = median_of(results, "numpy", w, naxes, "get_axis_comm_lists")
            goal = f"get_axis_comm_lists within 1.5× of NumPy's moveaxis + reshape + .tolist() at {w:,}"
            if p and n:
                rows.append((goal, lay, f"{p / n:.2f}× NumPy ({fmt_time(p)} vs {fmt_time(n)})", p / n <= 1.5))
            else:
                rows.append((goal, lay, "not measured", None))
            p = median_of(results, "proctopo", w, naxes, "groups")
            base = cpp.get(f"group_table/baseline_alloc/{naxes}ax:{w}/data", {}).get("cpu_time")
            goal = f"groups() array within 2× of a plain C++ loop (fresh buffer) at {w:,}"
            if p and base:
                rows.append(
                    (
                        goal,
                        lay,
                        f"{p / base:.2f}× the C++ loop ({fmt_time(p)} vs {fmt_time(base)})",
                        p / base <= 2,
                    )
                )
            else:
                rows.append((goal, lay, "not measured (needs --cpp-bench)" if p else "not measured", None))
        worst = None
        for s in sizes:
            p = median_of(results, "proctopo", s, naxes, "get_rank")
            d = median_of(results, "deepspeed", s, naxes, "get_rank")
            if p and d and (worst is None or p / d > worst[0]):
                worst = (p / d, s, p, d)
        goal = "get_rank no slower than DeepSpeed at any size"
        if worst:
            rows.append(
                (
                    goal,
                    lay,
                    f"worst {worst[0]:.2f}× DeepSpeed's time at {worst[1]:,} ({fmt_time(worst[2])} vs {fmt_time(worst[3])})",
                    worst[0] <= 1.0,
                )
            )
        else:
            rows.append((goal, lay, "not measured", None))
        mems = [(s, results.get(("proctopo", s, naxes), {}).get("memory")) for s in sizes]
        mems = [(s, m) for s, m in mems if m]
        goal = "topology memory independent of world size"
        if len(mems) >= 2:
            traced = [m["traced"] for _, m in mems]
            rss = [m["rss_delta"] for _, m in mems]
            ok = max(traced) - min(traced) <= 256 and max(rss) < 2**20
            rows.append(
                (
                    goal,
                    lay,
                    "traced "
                    + " / ".join(fmt_bytes(t) for t in traced)
                    + "; RSS growth "
                    + " / ".join(fmt_bytes(r) for r in rss)
                    + f" at {' / '.join(f'{s:,}' for s, _ in mems)}",
                    ok,
                )
            )
        else:
            rows.append((goal, lay, "not measured", None))
    return rows


def write_report(
    path: Path,
    meta: dict[str, Any],
    results: dict,
    cpp_data: dict[str, Any] | None,
    png: Path | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """RESULTS.md from one run's results; meta holds what describes the run (see main).

    ``extra`` holds the data of the other parts, each optional: ``grid_sim`` and
    ``megatron_sim`` (bench/grid_sim.py), ``scaling`` (bench/scaling.py) and
    ``scaling_png`` (the path of its picture). The section bench/plan_scaling.py wrote into
    ``path`` stays, at the end (:func:`kept_section`).
    """
    extra = extra or {}
    argv, sizes, axes_list, libs = meta["argv"], meta["sizes"], meta["axes"], meta["libs"]
    elapsed, m = meta["elapsed"], meta["machine"]
    command = meta.get("command") or " ".join(shlex.quote(a) for a in ["python", "bench/compare.py", *argv])
    cpp = cpp_table(cpp_data) if cpp_data and "error" not in cpp_data else {}
    versions: dict[str, str] = {}
    for rec in results.values():
        versions.update(rec.get("meta", {}).get("versions", {}))
    L: list[str] = []
    L.append("# proctopo benchmark results\n")
    L.append("_Written by `bench/compare.py`; do not edit by hand. Regenerate with the command below._\n")
    L.append(f"- Command: `{command}`")
    L.append(
        f"- Date: {meta['date']}; total run time {elapsed:.0f} s; mode: {'quick' if meta['quick'] else 'full'}"
        + (
            f" (report re-rendered from results.json by `{meta['rerendered']}`)"
            if meta.get("rerendered")
            else ""
        )
    )
    L.append(
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['os']}; load average (1 / 5 / 15 min) "
        + (f"{meta['load_start']} at the start, " if meta.get("load_start") else "")
        + f"{m['load']} at the end (the machine is shared, so absolute times drift; compare ratios)"
    )
    parts = meta.get("parts")
    if parts:
        L.append("- Parts of this run: " + "; ".join(f"{k} ({v})" for k, v in parts.items()))
    vtxt = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if not k.endswith("_path"))
    L.append(f"- Versions: Python {m['python']}, {vtxt}; proctopo commit {meta['commit']}")
    if cpp_data and "context" in cpp_data:
        ctx = cpp_data["context"]
        L.append(
            f"- C++: {ctx.get('compiler', '?')}, optimised build: {ctx.get('proctopo_optimized', '?')}, Google Benchmark `{cpp_data.get('command', '')}`"
        )
    L.append(
        f"- Method: one fresh process per library, world size and layout, libraries taking turns for {meta['rounds']} round(s) at up to {meta['rounds_max_size']:,} ranks (1 round above), samples pooled; each time is the median of repeated timeit batches of process CPU time (time.process_time, so time spent descheduled on this shared machine is not charged; gc off while timing), single-threaded (torch.set_num_threads(1)). Ratio = peer time / proctopo time: above 1× proctopo is faster. Every result is fingerprinted and checked against proctopo's (section *Agreement*)."
    )
    L.append(
        "- Layouts: 3 axes = pipe 8 × data W/64 × model 8; 5 axes = pipe 8 × data W/512 × expert 4 × context 2 × tensor 8. get_coord looks up rank W/2+3 (a scan reads about half the grid); get_rank the same coordinate."
    )
    L.append(
        f"- Time bound per call: {fmt_time(meta['config']['bound'])}; a call past it is stopped and shown as `> bound`, never dropped."
    )
    if png:
        L.append(f"\n![time against world size]({png.name})\n")

    L.append("## Goals\n")
    L.append("| goal | layout | measured | met |")
    L.append("|---|---|---|---|")
    goal_rows = evaluate_goals(results, sizes, axes_list, cpp) + (cpp_goals(cpp) if cpp else [])
    scaling = extra.get("scaling")
    if scaling and "error" not in scaling:
        scaling_mod = _bench_module("scaling")
        goal_rows += [(g, "gloo jobs", measured, met) for g, measured, met in scaling_mod.goals(scaling)]
    for goal, lay, measured, met in goal_rows:
        L.append(f"| {goal} | {lay} | {measured} | {'yes' if met else ('—' if met is None else '**no**')} |")
    L.append("")
    L.append(
        "Goals not met are explained where they are measured: the C++ core under *C++ core*, the "
        "real jobs under *Real group creation*.\n"
    )

    reasons: dict[str, str] = {}
    if not results:
        L.append("## Python API\n")
        L.append("_The peer comparison is not part of this run (--no-peers)._\n")
    for naxes in axes_list if results else []:
        L.append(f"## Python API, {naxes} axes\n")
        L.append("Time per call (median); in brackets the ratio peer / proctopo.\n")
        for op in OPS:
            L.append(f"### {OP_LABEL[op]}\n")
            L.append("| world | " + " | ".join(LIB_LABEL[lib] for lib in libs) + " |")
            L.append("|---:|" + "---:|" * len(libs))
            for s in sizes:
                row = [f"{s:,}"]
                p = median_of(results, "proctopo", s, naxes, op)
                for lib in libs:
                    rec = results.get((lib, s, naxes), {}).get("ops", {}).get(op)
                    txt = cell(rec)
                    if rec and rec.get("status") == "unsupported":
                        reasons[f"{LIB_LABEL[lib]}, {op}"] = rec.get("reason", "")
                    if rec and rec.get("status") == "error":
                        txt = f"error: {rec.get('reason', '')[:80]}"
                    v = median_of(results, lib, s, naxes, op)
                    if lib != "proctopo" and v and p:
                        txt += f" ({fmt_ratio(v / p)})"
                    elif lib != "proctopo" and p and rec and rec.get("status") == "exceeded":
                        txt += f" (> {fmt_ratio(rec['bound'] / p)})"
                    row.append(txt)
                L.append("| " + " | ".join(row) + " |")
            L.append("")
        L.append(f"### Memory of one topology object, {naxes} axes\n")
        L.append(
            "RSS growth of the first construction in a fresh process / bytes held by Python's allocators (tracemalloc; blind to C++ and torch allocations).\n"
        )
        L.append("| world | " + " | ".join(LIB_LABEL[lib] for lib in libs) + " |")
        L.append("|---:|" + "---:|" * len(libs))
        for s in sizes:
            row = [f"{s:,}"]
            for lib in libs:
                mem = results.get((lib, s, naxes), {}).get("memory")
                row.append(f"{fmt_bytes(mem['rss_delta'])} / {fmt_bytes(mem['traced'])}" if mem else "n/a")
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    if reasons:
        L.append(
            "n/a means the library has no counterpart: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
            + ".\n"
        )

    L.append("## Agreement\n" if results else "")
    bad = []
    checked = 0
    for (lib, s, naxes), rec in sorted(results.items()):
        if lib == "proctopo":
            continue
        ref = results.get(("proctopo", s, naxes), {}).get("ops", {})
        for op, o in rec["ops"].items():
            fp, rfp = o.get("fingerprint"), ref.get(op, {}).get("fingerprint")
            if fp and rfp:
                checked += 1
                if fp != rfp:
                    bad.append(f"{LIB_LABEL[lib]} {op} at {s:,} ({naxes} axes)")
    if bad:
        L.append(f"**{len(bad)} of {checked} results differ from proctopo's:** " + "; ".join(bad) + "\n")
    elif results:
        L.append(
            f"All {checked} peer results that have a proctopo counterpart hold the same values as proctopo's (compared as int64 arrays of the same shape).\n"
        )

    L.append("## C++ core (Google Benchmark)\n")
    if not cpp_data:
        L.append(
            "_Not run: pass `--cpp-bench build/dev/bench/proctopo_bench` (built with `cmake --preset dev`)._\n"
        )
    elif "error" in cpp_data:
        L.append(f"_The C++ benchmark failed: {cpp_data['error']}_\n")
    else:
        L.extend(cpp_report(cpp))
    L.extend(cpp_explanation(cpp))
    L.append("## Scale simulation (bench/grid_sim.py)\n")
    sim = extra.get("grid_sim")
    if sim and "error" not in sim:
        L.append(_bench_module("grid_sim").render(sim).strip() + "\n")
    elif sim:
        L.append(f"_{sim['error']}_\n")
    elif meta.get("grid_md"):  # results.json of an earlier version of this script
        L.append(meta["grid_md"].strip() + "\n")
    else:
        L.append("_Not part of this run._\n")
    L.append("## Megatron's parallel state at scale (bench/grid_sim.py --megatron)\n")
    msim = extra.get("megatron_sim")
    if msim and "error" not in msim:
        L.append(_bench_module("grid_sim").megatron_render(msim).strip() + "\n")
    elif msim:
        L.append(f"_{msim['error']}_\n")
    else:
        L.append("_Not part of this run (`python bench/grid_sim.py --megatron`)._\n")
    L.append("## Real group creation (bench/scaling.py)\n")
    if scaling and "error" not in scaling:
        if extra.get("scaling_png"):
            L.append(
                f"![real and simulated group creation against world size]({Path(extra['scaling_png']).name})\n"
            )
        L.append(_bench_module("scaling").render(scaling).strip() + "\n")
        L.extend(scaling_explanation(scaling, sim if sim and "error" not in sim else None))
    elif scaling:
        L.append(f"_{scaling['error']}_\n")
    else:
        L.append(
            "_Not part of this run (`python bench/run_all.py`, or `python bench/compare.py --scaling`)._\n"
        )
    kept = kept_section(path)
    path.write_text("\n".join(L) + "\n" + (f"\n{kept}\n" if kept else ""))


def kept_section(path: Path) -> str:
    """The section another script writes into ``path`` between its markers (bench/plan_scaling.py's
    planning time and memory), markers included, so that rewriting the report keeps it; '' when
    ``path`` has none. That script replaces the section in place, or appends it when it is gone."""
    plan_scaling = _bench_module("plan_scaling")
    old = path.read_text() if path.exists() else ""
    start, end = old.find(plan_scaling.BEGIN), old.find(plan_scaling.END)
    if start < 0 or end < start:
        return ""
    return old[start : end + len(plan_scaling.END)]


#: Plain per-call loops of bench_topology.cpp: (benchmark impl name, description).
RANK_LOOPS = [("loop", "int64 multiply-add"), ("loop32", "uint32_t multiply-add")]
COORD_LOOPS = [
    ("div64", "int64 div/mod per axis, innermost first"),
    ("div32", "uint32_t div/mod per axis, innermost first"),
    ("strides32", "precomputed strides, (r / stride) % size in uint32_t"),
    ("quot32", "precomputed strides, one uint32_t division per axis: q_i - size_i * q_(i-1)"),
]
GOAL_AXES = range(1, 9)


def cpp_percall(cpp: dict[str, dict[str, float]], op: str, k: int) -> dict[str, Any]:
    """proctopo's time per call and the fastest plain loop, unchecked and range-checked (seconds)."""

    def pe(name: str) -> float | None:
        v = cpp.get(name, {}).get("per_elem")
        return v if v is not None and math.isfinite(v) else None

    loops = RANK_LOOPS if op == "rank_of" else COORD_LOOPS
    plain = {n: pe(f"{op}/{n}/{k}axes") for n, _ in loops}
    checked = {n: pe(f"{op}/{n}_checked/{k}axes") for n, _ in loops}
    plain = {n: v for n, v in plain.items() if v}
    checked = {n: v for n, v in checked.items() if v}
    best = min(plain.items(), key=lambda kv: kv[1]) if plain else (None, None)
    best_c = min(checked.items(), key=lambda kv: kv[1]) if checked else (None, None)
    return {
        "proctopo": pe(f"{op}/proctopo/{k}axes"),
        "plain": plain,
        "checked": checked,
        "best": best,
        "best_checked": best_c,
    }


def cpp_goals(cpp: dict[str, dict[str, float]]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, layout, measured, met) rows of the C++ per-call goals."""
    rows: list[tuple[str, str, str, bool | None]] = []
    lay = "C++, 1–8 axes"

    def worst(op: str, which: str) -> tuple[float, int, float, float, str] | None:
        out = None
        for k in GOAL_AXES:
            c = cpp_percall(cpp, op, k)
            name, base = c[which]
            if c["proctopo"] and base:
                r = c["proctopo"] / base
                if out is None or r > out[0]:
                    out = (r, k, c["proctopo"], base, name)
        return out

    for op, which, goal in (
        (
            "rank_of",
            "best_checked",
            "rank_of ≤ 1.0× the fastest plain loop that range-checks its input, as the core does",
        ),
        ("rank_of", "best", "rank_of ≤ 1.0× the fastest plain loop without a range check"),
        ("coord_of", "best", "coord_of ≤ 1.0× the fastest plain loop (without a range check)"),
    ):
        w = worst(op, which)
        if w is None:
            rows.append((goal, lay, "not measured", None))
            continue
        r, k, a, b, name = w
        rows.append(
            (goal, lay, f"worst {r:.2f}× at {k} axes ({fmt_time(a)} vs {fmt_time(b)}, `{name}`)", r <= 1.0)
        )
    co = [cpp_percall(cpp, "coord_of", k)["proctopo"] for k in range(1, 6)]
    if all(co):
        rows.append(
            ("coord_of ≤ 5 ns per call", "C++, 1–5 axes", f"worst {fmt_time(max(co))}", max(co) <= 5e-9)  # type: ignore[type-var]
        )
    return rows


def cpp_explanation(cpp: dict[str, dict[str, float]]) -> list[str]:
    """Why a C++ per-call goal is not met, in this run's figures (nothing when all are met)."""
    if not cpp:
        return []

    def sd(op: str, impl: str, k: int) -> float | None:
        return cpp.get(f"{op}/{impl}/{k}axes", {}).get("per_elem_sd")

    L: list[str] = []
    unchecked, checked = [], []
    for k in GOAL_AXES:
        c = cpp_percall(cpp, "rank_of", k)
        if c["proctopo"] and c["best"][1] and c["proctopo"] > c["best"][1]:
            unchecked.append((k, c))
        if c["proctopo"] and c["best_checked"][1] and c["proctopo"] > c["best_checked"][1]:
            checked.append((k, c))
    if unchecked:
        rows = "; ".join(
            f"{k} axes: {c['proctopo'] / c['best'][1]:.2f}× the fastest unchecked loop and "
            f"{c['proctopo'] / c['best_checked'][1]:.2f}× the fastest checked one, whose check costs it "
            f"{c['best_checked'][1] / c['best'][1]:.2f}×"
            for k, c in unchecked
            if c["best_checked"][1]
        )
        L.append(
            "**Why rank_of is slower than the plain loop without a check.** The core checks every coordinate "
            "against its axis size (a coordinate out of range must raise `coordinate_out_of_range`, never "
            "return a wrong rank): per axis one more load and one compare-and-branch, which a loop that trusts "
            "its input leaves out; the same check costs the plain loop about as much (the last figure of each "
            "entry). Measured in this run: " + rows + ".\n"
        )
    if checked:
        rows = "; ".join(
            f"{k} axes: {c['proctopo'] / c['best_checked'][1]:.2f}× (proctopo {fmt_time(c['proctopo'])} ± "
            f"{fmt_time(sd('rank_of', 'proctopo', k))}, `{c['best_checked'][0]}_checked` "
            f"{fmt_time(c['best_checked'][1])} ± {fmt_time(sd('rank_of', c['best_checked'][0] + '_checked', k))})"
            for k, c in checked
        )
        L.append(
            "**rank_of against the checked plain loops, where it is not at most 1×.** ± is the standard "
            "deviation over the benchmark's repetitions: " + rows + ". Both do the same loads, compares and "
            "multiplications per axis; the core adds one indirect jump per call to the kernel of its axis count "
            "and reads 8-byte sizes and strides where `loop32` reads 4-byte ones.\n"
        )
    return L


def cpp_report(cpp: dict[str, dict[str, float]]) -> list[str]:
    L: list[str] = []

    def pe(name: str) -> float | None:
        v = cpp.get(name, {}).get("per_elem")
        return v if v is not None and math.isfinite(v) else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}×" if a and b else "—"

    L.append(
        "Time per call for 1–8 axes (shapes of 65,536 ranks, odd sizes past five axes), inputs cycling through "
        "1,024 random ranks or coordinates. Every plain loop is a `noinline` function taking its sizes and "
        "strides as arguments, so it pays one call per rank as the core does (the core is a separate library); "
        "each also runs as a `_checked` twin that range-checks its input as the core must. Plain loops: "
        + "; ".join(f"`{n}` = {d}" for n, d in RANK_LOOPS)
        + " (rank_of); "
        + "; ".join(f"`{n}` = {d}" for n, d in COORD_LOOPS)
        + " (coord_of). × = proctopo's time / the loop's: at most 1× means proctopo is as fast or faster.\n"
    )
    L.append("**rank_of**\n")
    L.append(
        "| axes | proctopo | loop | loop32 | loop, checked | loop32, checked | × fastest checked | × fastest unchecked | the check's cost in the plain loop |"
    )
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in range(1, 9):
        c = cpp_percall(cpp, "rank_of", k)
        L.append(
            f"| {k} | {fmt_time(c['proctopo'])} | {fmt_time(c['plain'].get('loop'))} | {fmt_time(c['plain'].get('loop32'))} "
            f"| {fmt_time(c['checked'].get('loop'))} | {fmt_time(c['checked'].get('loop32'))} "
            f"| {ratio(c['proctopo'], c['best_checked'][1])} | {ratio(c['proctopo'], c['best'][1])} "
            f"| {ratio(c['best_checked'][1], c['best'][1])} |"
        )
    L.append("")
    L.append("**coord_of** (the `_checked` twins are within noise of their loops: one compare per call)\n")
    L.append(
        "| axes | proctopo | div64 | div32 | strides32 | quot32 | fastest checked | × fastest | × fastest checked |"
    )
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in range(1, 9):
        c = cpp_percall(cpp, "coord_of", k)
        L.append(
            f"| {k} | {fmt_time(c['proctopo'])} | "
            + " | ".join(fmt_time(c["plain"].get(n)) for n, _ in COORD_LOOPS)
            + f" | {fmt_time(c['best_checked'][1])} | {ratio(c['proctopo'], c['best'][1])} | {ratio(c['proctopo'], c['best_checked'][1])} |"
        )
    L.append("")
    L.append(
        "Bulk, per rank, 65,536 ranks; baseline = a plain range-checked loop with int64 division (coord_of) or "
        "multiply-add (rank_of), inlined; × = proctopo / baseline:\n"
    )
    L.append("| operation | layout | proctopo | baseline | × |")
    L.append("|---|---|---:|---:|---:|")
    for op in ("coord_of_bulk", "rank_of_bulk"):
        for naxes in (3, 5):
            a, b = pe(f"{op}/proctopo/{naxes}ax:65536"), pe(f"{op}/baseline/{naxes}ax:65536")
            L.append(f"| {op} | {naxes} axes | {fmt_time(a)} | {fmt_time(b)} | {ratio(a, b)} |")
    L.append("")
    L.append(
        "Group table of the data axis, per element (target: about 1 ns or less). `_alloc` = a fresh uninitialised buffer per call, as a Python call needs; `vector` = the std::vector overload.\n"
    )
    L.append(
        "| layout | world | proctopo | baseline | proctopo_alloc | baseline_alloc | proctopo vector | whole table, proctopo_alloc |"
    )
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for naxes in (3, 5):
        for w in (1024, 65536, 1048576):
            n = f"{naxes}ax:{w}/data"
            vals = [
                pe(f"group_table/{i}/{n}")
                for i in ("proctopo", "baseline", "proctopo_alloc", "baseline_alloc", "proctopo_vector")
            ]
            whole = cpp.get(f"group_table/proctopo_alloc/{n}", {}).get("cpu_time")
            L.append(
                f"| {naxes} axes | {w:,} | "
                + " | ".join(fmt_time(v) for v in vals)
                + f" | {fmt_time(whole)} |"
            )
    for axis in ("pipe", "model"):
        n = f"3ax:65536/{axis}"
        vals = [
            pe(f"group_table/{i}/{n}") for i in ("proctopo", "baseline", "proctopo_alloc", "baseline_alloc")
        ]
        L.append(f"| 3 axes, {axis} | 65,536 | " + " | ".join(fmt_time(v) for v in vals) + " | — | — |")
    L.append("")
    L.append(
        "match (filter_match with one coordinate fixed), 3 axes, 65,536 ranks, per matching rank; baseline = a scan of every rank:\n"
    )
    L.append("| fixed axis | proctopo | scan baseline | whole call, proctopo |")
    L.append("|---|---:|---:|---:|")
    for axis in ("pipe", "data", "model"):
        a, b = pe(f"match/proctopo/3ax:65536/{axis}"), pe(f"match/baseline/3ax:65536/{axis}")
        whole = cpp.get(f"match/proctopo/3ax:65536/{axis}", {}).get("cpu_time")
        L.append(f"| {axis}=1 | {fmt_time(a)} | {fmt_time(b)} | {fmt_time(whole)} |")
    L.append("")
    return L


def _span_text(v: list[int]) -> str:
    return f"{v[0]}" if v[0] == v[1] else f"{v[0]}–{v[1]}"


def scaling_explanation(data: dict[str, Any], sim: dict[str, Any] | None = None) -> list[str]:
    """Where the time of the real jobs goes, in this run's figures (``sim``: grid_sim's data)."""
    pts = data.get("points", {})
    ds_sim = next(
        (
            r
            for r in (sim or {}).get("rows", [])
            if r.get("world") == 65_536
            and str(r.get("lib", "")).startswith("DeepSpeed")
            and r.get("status") == "ok"
        ),
        None,
    )
    at_scale = (
        f" (the simulation above: {fmt_time(ds_sim['median_ms'] / 1e3)} of Python per rank at 65,536 ranks before "
        "any communicator exists)"
        if ds_sim
        else ""
    )

    def get(world: int, key: str) -> dict[str, Any] | None:
        p = pts.get(str(world), {}).get(key)
        return p if p and p.get("status") == "ok" and p.get("wall_median") is not None else None

    def ms(v: float | None) -> str:
        return fmt_time(v) if v is not None else "—"

    L: list[str] = []
    lines = []
    for world in sorted(int(w) for w in pts):
        loc, off, ds = (
            get(world, "proctopo-local"),
            get(world, "proctopo-local-noverify"),
            get(world, "deepspeed"),
        )
        if not (loc and ds):
            continue
        lines.append(
            f"- {world} ranks: proctopo `local` {ms(loc['wall_median'])} per rank, of which {ms(loc.get('cpu_median'))} "
            f"CPU, {ms(loc.get('in_calls_median'))} inside its {loc['new_group'][1]} `new_group` calls and "
            f"{ms(loc.get('check_median'))} in the fingerprint check ({ms(loc.get('check_cpu_median'))} of it CPU)"
            + (f"; without the check {ms(off['wall_median'])}" if off else "")
            + f". DeepSpeed {ms(ds['wall_median'])}, of which {ms(ds.get('cpu_median'))} CPU and "
            f"{ms(ds.get('in_calls_median'))} inside its {ds['new_group'][1]} calls. Communicators per rank: "
            f"proctopo {_span_text(loc['live'])}, DeepSpeed {_span_text(ds['live'])}."
        )
    if not lines:
        return L
    L.append("**Where the time goes** (medians of this run; CPU is the building thread's):\n")
    L.extend(lines)
    L.append("")
    ratios, lives, cores = [], set(), (data.get("machine_start") or {}).get("cores", "?")
    for world in sorted(int(w) for w in pts):
        loc, ds = get(world, "proctopo-local"), get(world, "deepspeed")
        if loc and ds:
            ratios.append((world, ds["wall_median"] / loc["wall_median"]))
            lives.update({loc["live"][1], ds["live"][1]})
    same = f"the same {lives.pop()} communicators per rank" if len(lives) == 1 else "their communicators"
    lo, hi = min(ratios, key=lambda x: x[1]), max(ratios, key=lambda x: x[1])
    inside_grid, in_calls = [], []
    for world in sorted(int(w) for w in pts):
        loc, ds = get(world, "proctopo-local"), get(world, "deepspeed")
        if loc and loc.get("check_median") and loc.get("check_alone_median"):
            inside_grid.append(
                f"{ms(loc['check_median'])} against {ms(loc['check_alone_median'])} ({world} ranks)"
            )
        if loc and ds:
            in_calls.append(
                f"{ms(loc.get('in_calls_median'))} against {ms(ds.get('in_calls_median'))} ({world} ranks)"
            )
    inside = ", ".join(inside_grid)
    L.append(
        f"Both grids build {same} (pipe, data, model and DeepSpeed's model-parallel group), and creating "
        "each is the same work for both: torch builds a gloo communicator by a full-mesh connection whose "
        "addresses go through the rendezvous store (here a TCPStore served by rank 0, as under `torchrun`). "
        "A `new_group` call for a group the rank is not in is Python bookkeeping only in torch 2.13 (its "
        "barrier after creation is off unless `TORCH_DIST_INIT_BARRIER=1`), so DeepSpeed's extra calls, one "
        "per group in the world, add little CPU at these sizes (the CPU column); DeepSpeed's Python per rank "
        "grows with the world" + at_scale + ", proctopo's does not. "
        f"DeepSpeed / proctopo `local` lies between {lo[1]:.2f}× ({lo[0]} ranks) and {hi[1]:.2f}× "
        f"({hi[0]} ranks) here. The difference is proctopo's set-up exchange (the fingerprint check with every "
        "rank's host): it is the one moment of the build at which every rank of the world must be present. "
        "Alone after a barrier it is about one small collective (the table above), but inside the grid it also "
        f"waits for the last of the N processes sharing {cores} cores to arrive: "
        + (inside + " inside the grid and alone" if inside else "see the table above")
        + ". DeepSpeed's grid never waits for the whole world; each of its ranks waits only for the members "
        "of its own groups. Inside `new_group` (the *in calls* column), proctopo's ranks, in step after the "
        f"exchange, spend about what DeepSpeed's do: {', '.join(in_calls)}; what is left of "
        "the difference is the exchange, what proctopo pays for checking the settings and measuring the "
        "placement.\n"
    )
    return L


def plot(
    path: Path,
    results: dict,
    sizes: list[int],
    axes_list: list[int],
    libs: list[str],
    cpp: dict[str, dict[str, float]],
) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return None
    colors = {
        "proctopo": "#d62728",
        "deepspeed": "#1f77b4",
        "megatron": "#2ca02c",
        "devicemesh": "#ff7f0e",
        "numpy": "#9467bd",
        "cpp": "#444444",
    }
    styles = {3: "-", 5: "--"}
    fig, axs = plt.subplots(2, 4, figsize=(17, 8.5), sharex=True)
    legend: dict[str, Any] = {}
    for ax, op in zip(axs.flat, OPS):
        for lib in libs:
            for naxes in axes_list:
                xs, ys, xb, yb = [], [], [], []
                for s in sizes:
                    rec = results.get((lib, s, naxes), {}).get("ops", {}).get(op)
                    if rec and rec.get("status") == "ok":
                        xs.append(s)
                        ys.append(rec["median"])
                    elif rec and rec.get("status") == "exceeded":
                        xb.append(s)
                        yb.append(rec["bound"])
                if xs:
                    ax.plot(
                        xs,
                        ys,
                        styles[naxes],
                        marker="o",
                        ms=4,
                        color=colors[lib],
                        label=f"{LIB_LABEL[lib]}" if naxes == axes_list[0] else None,
                    )
                if xb:
                    ax.plot(xb, yb, "^", ms=8, mfc="none", color=colors[lib])
        if op == "groups" and cpp:
            for naxes in axes_list:
                pts = [
                    (w, cpp.get(f"group_table/baseline_alloc/{naxes}ax:{w}/data", {}).get("cpu_time"))
                    for w in sizes
                ]
                pts = [(w, t) for w, t in pts if t]
                if pts:
                    ax.plot(
                        *zip(*pts),
                        styles[naxes],
                        marker="s",
                        ms=3,
                        color=colors["cpp"],
                        label="plain C++ loop" if naxes == axes_list[0] else None,
                    )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_time(v)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(OP_LABEL[op], fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{s:,}" for s in sizes], fontsize=8)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
        lo, hi = ax.get_ylim()
        if hi / lo < 30:  # less than about a decade and a half: label 1-2-5 steps too
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    for ax in axs[:, 0]:
        ax.set_ylabel("seconds per call")
    for ax in axs[-1, :]:
        ax.set_xlabel("world size (ranks)")
    handles, labels = list(legend.values()), list(legend)
    if len(axes_list) > 1:
        handles += [Line2D([], [], color="k", ls=styles[n]) for n in axes_list]
        labels += [f"{n} axes" for n in axes_list]
    handles.append(Line2D([], [], color="k", marker="^", mfc="none", ls="none"))
    labels.append("stopped at the time bound")
    fig.suptitle("proctopo and its peers: time per call against world size (log-log)", fontsize=12)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        ncol=len(labels),
        fontsize=9,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- main
def args_cfg(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        cfg = {"batch": 0.01, "budget": 0.15, "repeats": 5, "min_repeats": 3, "bound": 5.0}
    else:
        cfg = {"batch": 0.03, "budget": 0.4, "repeats": 7, "min_repeats": 3, "bound": 30.0}
    if args.bound is not None:
        cfg["bound"] = args.bound
    return cfg


def default_cpp_binary() -> str | None:
    for p in (REPO / "build" / "dev" / "bench" / "proctopo_bench",):
        if p.exists():
            return str(p)
    return None


def render(out_dir: Path, raw: dict[str, Any]) -> tuple[Path, Path | None]:
    """Writes RESULTS.md, compare.png and (with scaling data) scaling.png from results.json's contents."""
    meta = raw["meta"]
    results = {(r["lib"], r["world"], r["naxes"]): r for r in raw["results"]}
    cpp_data = raw.get("cpp")
    cpp = cpp_table(cpp_data) if cpp_data and "error" not in cpp_data else {}
    png = (
        plot(out_dir / "compare.png", results, meta["sizes"], meta["axes"], meta["libs"], cpp)
        if results
        else None
    )
    extra = {k: raw.get(k) for k in ("grid_sim", "megatron_sim", "scaling")}
    scaling = raw.get("scaling")
    if scaling and "error" not in scaling:
        sim, msim = raw.get("grid_sim"), raw.get("megatron_sim")
        extra["scaling_png"] = _bench_module("scaling").plot(
            scaling,
            sim if sim and "error" not in sim else None,
            msim if msim and "error" not in msim else None,
            out_dir / "scaling.png",
        )
    report = out_dir / "RESULTS.md"
    write_report(report, meta, results, cpp_data, png, extra)
    return report, png


#: The command line the report names; None: this script's own (run_all.py sets its command).
_COMMAND: str | None = None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], int(argv[2]), int(argv[3]), json.loads(argv[4]))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1,024 and 65,536 ranks, short budgets, 5 s bound"
    )
    ap.add_argument(
        "--sizes", type=int, nargs="+", help="world sizes (default 1024 65536 1048576; quick: 1024 65536)"
    )
    ap.add_argument("--axes", type=int, nargs="+", default=[3, 5], choices=[3, 5], help="layouts to run")
    ap.add_argument(
        "--libs", nargs="+", default=LIBS, choices=LIBS, help="libraries to run (proctopo is always included)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        help="times each library is run in turn at a size, samples pooled (default 2, quick 1)",
    )
    ap.add_argument(
        "--rounds-max-size",
        type=int,
        default=65536,
        help="sizes above this get one round only (default 65536: the peers take minutes at 1M)",
    )
    ap.add_argument("--bound", type=float, help="time bound per call in seconds (default 30, quick 5)")
    ap.add_argument(
        "--cpp-bench",
        metavar="BINARY",
        help="Google Benchmark binary to run (default: build/dev/bench/proctopo_bench if it exists)",
    )
    ap.add_argument(
        "--cpp-json",
        metavar="FILE",
        type=Path,
        help="use the output of an earlier `proctopo_bench --benchmark_format=json` instead of running it",
    )
    ap.add_argument("--no-cpp", action="store_true", help="skip the C++ benchmarks")
    ap.add_argument(
        "--rerender",
        metavar="RESULTS_JSON",
        type=Path,
        help="measure nothing: rewrite RESULTS.md and compare.png from an earlier results.json",
    )
    ap.add_argument("--no-grid-sim", action="store_true", help="skip bench/grid_sim.py")
    ap.add_argument(
        "--no-megatron",
        action="store_true",
        help="skip bench/grid_sim.py --megatron (Megatron at 65,536 ranks)",
    )
    ap.add_argument("--no-peers", action="store_true", help="skip the Python peer comparison")
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="also run bench/scaling.py: real gloo jobs of 8-64 processes (quick: 8), writes scaling.png",
    )
    ap.add_argument(
        "--all",
        action="store_true",
        help="every part: C++ benchmarks, peers, grid_sim, grid_sim --megatron and scaling (what run_all.py runs)",
    )
    ap.add_argument(
        "--grid-ds-bound",
        type=float,
        help="seconds grid_sim lets DeepSpeed's grid run per world (default: 30; quick: grid_sim's own)",
    )
    ap.add_argument(
        "--out-dir",
        type=Path,
        help="where RESULTS.md, results.json and compare.png go (default bench/; with --quick "
        "build/bench-quick/, so a smoke run never overwrites the committed results)",
    )
    args = ap.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = REPO / "build" / "bench-quick" if args.quick else HERE
    args.out_dir.mkdir(parents=True, exist_ok=True)

    if args.all:
        args.scaling = True
    t_start = time.perf_counter()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.rerender:
        raw = json.loads(args.rerender.read_text())
        raw["meta"]["rerendered"] = " ".join(shlex.quote(a) for a in ["python", "bench/compare.py", *argv])
        report, png = render(args.out_dir, raw)
        print(f"[compare] rewrote {report}" + (f" and {png}" if png else ""), file=sys.stderr)
        return 0
    if args.grid_ds_bound is None and not args.quick:
        args.grid_ds_bound = 30.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    cfg = args_cfg(args)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    libs = ["proctopo"] + [lib for lib in args.libs if lib != "proctopo"]
    worker_timeout = 90.0 if args.quick else 300.0

    results: dict[tuple[str, int, int], dict[str, Any]] = {}
    parts: dict[str, str] = {}
    t_part = time.perf_counter()
    for naxes in [] if args.no_peers else args.axes:
        for s in sizes:
            # Libraries take turns, round after round, so that a busy spell on this shared
            # machine falls on all of them alike; the samples of all rounds are pooled.
            rounds = 1 if s > args.rounds_max_size else args.rounds
            for rnd in range(rounds):
                for lib in libs:
                    print(
                        f"[compare] {LIB_LABEL[lib]:10s} {naxes} axes {s:>9,} ranks, round {rnd + 1}/{rounds} ...",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
                    rec = run_worker(lib, s, naxes, dict(cfg, memory=rnd == 0), worker_timeout)
                    bad = [op for op, o in rec["ops"].items() if o.get("status") in ("error", "exceeded")]
                    print(
                        f" {rec['wall_s']:.1f} s" + (f"  (not ok: {', '.join(bad)})" if bad else ""),
                        file=sys.stderr,
                    )
                    results[(lib, s, naxes)] = merge_rounds(results.get((lib, s, naxes)), rec)

    parts["peers"] = "skipped" if args.no_peers else f"{time.perf_counter() - t_part:.0f} s"
    cpp_data = None
    t_part = time.perf_counter()
    if args.cpp_json and not args.no_cpp:
        cpp_data = {"command": f"(read from {args.cpp_json})", **json.loads(args.cpp_json.read_text())}
    elif not args.no_cpp:
        binary = args.cpp_bench or default_cpp_binary()
        if binary:
            print(f"[compare] C++ benchmarks: {binary} ...", end="", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            cpp_data = run_cpp(binary, args.quick, 900.0)
            print(
                f" {time.perf_counter() - t0:.1f} s"
                + (f"  ({cpp_data['error']})" if "error" in cpp_data else ""),
                file=sys.stderr,
            )
        else:
            print(
                "[compare] no C++ benchmark binary (build it with `cmake --workflow --preset dev` or pass --cpp-bench)",
                file=sys.stderr,
            )

    parts["C++"] = (
        "skipped"
        if args.no_cpp
        else ("failed" if not cpp_data or "error" in cpp_data else f"{time.perf_counter() - t_part:.0f} s")
    )

    def part(name: str, flag_off: bool, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        if flag_off:
            parts[name] = "skipped"
            return None
        print(f"[compare] {name} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        data = fn()
        took = time.perf_counter() - t0
        parts[name] = f"{took:.0f} s" + (" (failed)" if "error" in data else "")
        print(f" {took:.1f} s" + (f"  ({data['error'][:200]})" if "error" in data else ""), file=sys.stderr)
        return data

    grid_sim = part(
        "grid_sim",
        args.no_grid_sim,
        lambda: run_grid_sim(args.quick, 150.0 if args.quick else 300.0, args.grid_ds_bound),
    )
    megatron_sim = part("grid_sim --megatron", args.no_megatron, lambda: run_megatron_sim(900.0))
    scaling = part(
        "scaling",
        not args.scaling,
        lambda: run_scaling(args.quick, 600.0 if args.quick else 3600.0, args.out_dir),
    )

    meta = {
        "argv": argv,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "commit": git_commit(),
        "elapsed": time.perf_counter() - t_start,
        "quick": args.quick,
        "sizes": sizes,
        "axes": args.axes,
        "libs": libs,
        "rounds": args.rounds,
        "rounds_max_size": args.rounds_max_size,
        "config": cfg,
        "load_start": load_start,
        "parts": parts,
        "command": _COMMAND or " ".join(shlex.quote(a) for a in ["python", "bench/compare.py", *argv]),
    }
    raw = {
        "meta": meta,
        "results": list(results.values()),
        "cpp": cpp_data,
        "grid_sim": grid_sim,
        "megatron_sim": megatron_sim,
        "scaling": scaling,
    }
    (args.out_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    report, png = render(args.out_dir, raw)
    elapsed = meta["elapsed"]
    print(
        f"[compare] wrote {report}, {args.out_dir / 'results.json'}"
        + (f", {png}" if png else "")
        + f" in {elapsed:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
