#!/usr/bin/env python3
"""Planning time and memory of ``proctopo.plan`` against the number of axes (1-16) and the world size (to 2**40).

Each case runs in a fresh child process, which imports proctopo, plans once to warm up,
then plans ``--repeat`` times: the time is the median wall time of one ``plan(...)``
call (and its CPU time), the memory the child's peak resident set (the interpreter,
NumPy and proctopo included, so the whole cost of a planning process) and the peak of
the allocations traced during one call (``tracemalloc``, NumPy's arrays included).

- Axes: k axes of size 2 with distinct weights on the ``hgx-h100`` preset, so no two
  axes are interchangeable: the worst case of the search over subsets (2**k sets).
- World size: Megatron's tp 8, cp 2, ep 8, pp 8 and a derived dp on ``gb200-nvl72`` with a
  model, and an 8-axis grid on ``hgx-h100``, from 2**12 to 2**40 ranks.
- One adversarial case: 15 axes whose sizes are distinct primes (every subset has its
  own stride, so every cost is computed) on levels as large as the world.

    python bench/plan_scaling.py            # the markdown section
    python bench/plan_scaling.py --json     # the data
    python bench/plan_scaling.py --write    # replace the section in bench/RESULTS.md

Goal: under 1 s and 200 MB at 16 axes.
"""

# ruff: noqa: E501  (a report generator: its markdown rows are long)
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import HERE, cpu_model, fmt_bytes, fmt_time, git_commit, load_average  # bench/ is on sys.path

COMMAND = "python bench/plan_scaling.py --write"
BEGIN, END = "<!-- plan_scaling:begin -->", "<!-- plan_scaling:end -->"
GOAL_SECONDS, GOAL_BYTES = 1.0, 200 * 2**20

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
    world = 1
    for q in primes:
        world *= q
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
    return cases


def _run(case: dict[str, Any], repeat: int) -> dict[str, Any]:
    spec = json.dumps({"kwargs": case["kwargs"], "repeat": repeat})
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, spec], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        return {**case, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return {**case, **json.loads(out.stdout)}


def simulate(repeat: int = 3) -> dict[str, Any]:
    start = {"load": load_average(" / "), "time": _dt.datetime.now(_dt.timezone.utc)}
    rows = [_run(case, repeat) for case in _cases()]
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
    sixteen = next((r for r in rows if r["group"] == "axes" and r["axes"] == 16 and "error" not in r), None)
    goal = "not measured"
    if sixteen is not None:
        met = sixteen["wall"] < GOAL_SECONDS and sixteen["rss"] < GOAL_BYTES
        goal = (
            f"{'met' if met else '**not met**'}: {fmt_time(sixteen['wall'])} and {fmt_bytes(sixteen['rss'])} "
            f"peak RSS at 16 axes (goal under {fmt_time(GOAL_SECONDS)} and {fmt_bytes(GOAL_BYTES)})"
        )
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
    args = ap.parse_args(argv)
    data = simulate(args.repeat)
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
