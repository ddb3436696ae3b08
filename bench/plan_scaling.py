#!/usr/bin/env python3
"""Planning time and memory of ``proctopo.plan`` against the number of axes (1-16) and the world size (to 2**40).

Each case runs in a fresh child process, which imports proctopo, plans once to warm up,
then plans ``--repeat`` times: the time is the median wall time of one ``plan(...)``
call (and its CPU time), the memory the child's peak resident set (the interpreter,
NumPy and proctopo included, so the whole cost of a planning process) and the peak of
the allocations traced during one call (``tracemalloc``, NumPy's arrays included).

- Axes: k axes of size 2 with distinct weights on the ``hgx-h100`` preset, so no two
  axes are interchangeable. This series shows how the search over subsets (2**k sets)
  grows; it is an easy case for the costs: axes of one size share their strides, so
  only k * k distinct (axis, stride) costs are computed.
- World size: Megatron's tp 8, cp 2, ep 8, pp 8 and a derived dp on ``gb200-nvl72`` with a
  model, and an 8-axis grid on ``hgx-h100``, from 2**12 to 2**40 ranks.
- Adversarial: axes of distinct sizes (2, 3, 4, 5, 7, 9, 11, ..., 43), so every subset of
  the other axes gives an axis its own stride and all k * 2**(k-1) costs are computed
  (524,288 at 16 axes): 15 and 16 of them on levels as large as the world (whole blocks,
  the costs' closed form), and 16 on ``hgx-h100`` with a partial last node and domain
  (1,000,003 ranks per node, 65,537 nodes per domain), where every cost needs the floor
  sums: the worst case measured.

    python bench/plan_scaling.py            # the markdown section
    python bench/plan_scaling.py --json     # the data
    python bench/plan_scaling.py --write    # replace the section in bench/RESULTS.md
    python bench/plan_scaling.py --axes 16  # only the cases of 16 axes (no --write)

Goal: under 1 s and 200 MB at 16 axes, judged on the slowest and the largest of the
16-axis cases measured, not on the easy series.
"""

# ruff: noqa: E501  (a report generator: its markdown rows are long)
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import HERE, cpu_model, fmt_bytes, fmt_time, git_commit, load_average  # bench/ is on sys.path

COMMAND = "python bench/plan_scaling.py --write"
BEGIN, END = "<!-- plan_scaling:begin -->", "<!-- plan_scaling:end -->"
GOAL_SECONDS, GOAL_BYTES = 1.0, 200 * 2**20
#: Sizes of 16 axes whose subsets all have distinct products (every cost has its own stride).
DISTINCT_16 = [2, 3, 4, 5, 7, 9, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]

_CHILD = r"""
import json, resource, statistics, sys, time, tracemalloc
from proctopo import plan
case = json.loads(sys.argv[1])
kwargs = case["kwargs"]
p = plan(**kwargs)  # warm up: imports, caches of the machine
walls, cpus = [], []
for _ in range(case["repeat"]):
    w, c = time.perf_counter(), time.process_time()
    p = plan(**kwargs)
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
tracemalloc.start()
plan(**kwargs)
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({
    "wall": statistics.median(walls), "cpu": statistics.median(cpus), "traced": traced,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "orders": p.candidates, "search": p.search, "world": p.world_size, "best": p.best.megatron_order,
    "ties": p.best.ties,
}))
"""


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for k in range(1, 17):
        cases.append(
            {
                "group": "axes",
                "label": f"{k} axes of 2, distinct weights",
                "axes": k,
                "kwargs": {
                    "sizes": {f"x{i}": 2 for i in range(k)},
                    "machine": "hgx-h100",
                    "weights": {f"x{i}": float(i + 1) for i in range(k)},
                },
            }
        )
    model = {
        "params": "1T",
        "expert_params": "900B",
        "hidden": 8192,
        "seq_len": "8Ki",
        "micro_batch": 1,
        "layers": 64,
    }
    for e in (12, 16, 20, 24, 28, 32, 36, 40):
        cases.append(
            {
                "group": "world",
                "label": "Megatron tp 8, cp 2, ep 8, pp 8, dp free; gb200-nvl72, a 1T MoE",
                "axes": 5,
                "kwargs": {
                    "sizes": {"tp": 8, "cp": 2, "ep": 8, "pp": 8, "dp": 0},
                    "convention": "megatron",
                    "world_size": 2**e,
                    "machine": "gb200-nvl72",
                    "model": model,
                },
            }
        )
        cases.append(
            {
                "group": "world",
                "label": "8 axes (pp, dp free, ep, cp, tp, 3 weighted); hgx-h100",
                "axes": 8,
                "kwargs": {
                    "sizes": {"pp": 8, "dp": 0, "ep": 2, "cp": 2, "tp": 8, "a": 2, "b": 2, "c": 2},
                    "world_size": 2**e,
                    "machine": "hgx-h100",
                    "weights": {"a": 1.0, "b": 3.0, "c": 5.0},
                },
            }
        )
    primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
    world = math.prod(primes)
    cases.append(
        {
            "group": "adversarial",
            "label": "15 axes of distinct prime sizes, levels as large as the world",
            "axes": 15,
            "kwargs": {
                "sizes": {f"p{q}": q for q in primes},
                "ranks_per_node": world // 2,
                "nodes_per_domain": 2,
                "weights": {f"p{q}": float(q) for q in primes},
            },
        }
    )
    world = math.prod(DISTINCT_16)
    sizes = {f"p{q}": q for q in DISTINCT_16}
    weights = {f"p{q}": float(q) for q in DISTINCT_16}
    cases.append(
        {
            "group": "adversarial",
            "label": "16 axes of distinct sizes (2-43), levels as large as the world",
            "axes": 16,
            "kwargs": {
                "sizes": sizes,
                "ranks_per_node": world // 2,
                "nodes_per_domain": 2,
                "weights": weights,
            },
        }
    )
    cases.append(
        {
            "group": "adversarial",
            "label": "16 axes of distinct sizes (2-43); hgx-h100, a partial last node and domain",
            "axes": 16,
            "kwargs": {
                "sizes": sizes,
                "machine": "hgx-h100",
                "ranks_per_node": 1000003,
                "nodes_per_domain": 65537,
                "weights": weights,
            },
        }
    )
    return cases


def _run(case: dict[str, Any], repeat: int) -> dict[str, Any]:
    spec = json.dumps({"kwargs": case["kwargs"], "repeat": repeat})
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, spec], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        return {**case, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return {**case, **json.loads(out.stdout)}


def simulate(repeat: int = 3, axes: int | None = None) -> dict[str, Any]:
    start = {"load": load_average(" / "), "time": _dt.datetime.now(_dt.timezone.utc)}
    rows = [_run(case, repeat) for case in _cases() if axes is None or case["axes"] == axes]
    return {
        "command": COMMAND,
        "date": start["time"].strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "commit": git_commit(),
        "load_start": start["load"],
        "load_end": load_average(" / "),
        "repeat": repeat,
        "rows": rows,
    }


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r['label']} | {r['axes']} | — | — | — | — | — | — | failed: {r['error']} |"
    return (
        f"| {r['label']} | {r['axes']} | {r['world']:,} | {r['orders']:,} ({r['search']}) | {fmt_time(r['wall'])} | "
        f"{fmt_time(r['cpu'])} | {fmt_bytes(r['rss'])} | {fmt_bytes(r['traced'])} | {r['best']} |"
    )


def render(data: dict[str, Any]) -> str:
    rows = data["rows"]
    head = (
        "| case | axes | world size | orders (search) | time (wall) | CPU time | peak RSS of the process | "
        "traced peak of one plan | best order |\n|---|---|---|---|---|---|---|---|---|"
    )
    sixteen = [r for r in rows if r["axes"] == 16]
    goal = "not measured"
    if sixteen:
        failed = [r for r in sixteen if "error" in r]
        measured = [r for r in sixteen if "error" not in r]
        slowest = max(measured, key=lambda r: r["wall"], default=None)
        largest = max(measured, key=lambda r: r["rss"], default=None)
        if slowest is not None and largest is not None:
            met = not failed and slowest["wall"] < GOAL_SECONDS and largest["rss"] < GOAL_BYTES
            goal = (
                f"{'met' if met else '**not met**'} at 16 axes, judged on the worst case measured: "
                f"slowest {fmt_time(slowest['wall'])} wall, {fmt_time(slowest['cpu'])} CPU ({slowest['label']}); "
                f"largest {fmt_bytes(largest['rss'])} peak RSS ({largest['label']}); "
                f"goal under {fmt_time(GOAL_SECONDS)} and {fmt_bytes(GOAL_BYTES)}"
            )
        if failed:
            goal += f"; {len(failed)} case(s) of 16 axes failed"
    parts = [
        "## Planning time and memory (bench/plan_scaling.py)\n",
        f"- Command: `{data['command']}` · {data['date']} · {data['cpu']} · Python {data['python']} · "
        f"commit {data['commit']}",
        f"- Load average (1 / 5 / 15 min): {data['load_start']} at the start, {data['load_end']} at the end "
        "(the machine is shared: wall times include time spent descheduled; CPU time does not)",
        f"- Each case in a fresh process: one warm-up plan, then the median of {data['repeat']} plans; peak RSS "
        "is the whole process (interpreter, NumPy and proctopo included)",
        f"- Goal: {goal}",
        "",
        "### Against the number of axes\n",
        head,
        *(_row(r) for r in rows if r["group"] == "axes"),
        "",
        "### Against the world size\n",
        head,
        *(_row(r) for r in rows if r["group"] == "world"),
        "",
        "### Adversarial\n",
        head,
        *(_row(r) for r in rows if r["group"] == "adversarial"),
    ]
    return "\n".join(parts) + "\n"


def write(text: str, path: Path = HERE / "RESULTS.md") -> None:
    """Put ``text`` between the markers of ``path`` (appended, with the markers, when they are not there)."""
    old = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :].lstrip("\n")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="plans timed per case (default 3)")
    ap.add_argument("--json", action="store_true", help="print the data as JSON instead of markdown")
    ap.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    ap.add_argument("--axes", type=int, default=None, help="run only the cases of this many axes")
    args = ap.parse_args(argv)
    if args.write and args.axes is not None:
        ap.error("--write records every case: leave out --axes")
    data = simulate(args.repeat, args.axes)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    text = render(data)
    if args.write:
        write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
