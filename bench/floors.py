"""Python-call cost of proctopo's fast entries against the floor CPython allows, side by side.

Each fast entry (get_coord, get_rank, filter_match, get_axis_comm_lists) is timed in the
same process, in turns with a C call that does the least work the answer needs:

* get_coord: ``operator.itemgetter(0, 1, 2)`` on a 3-tuple, a C call that returns a new
  3-tuple (no arithmetic at all);
* get_rank: a C call taking three keyword arguments (``dict(pipe=..., data=..., model=...)``)
  and DeepSpeed's own ``get_rank``;
* filter_match and get_axis_comm_lists: ``list(range(...))``, C building a list of the
  same number of Python ints (the int-creation floor), and for the list of lists the same
  rows built by ``list(range(b, b + n, stride))`` in a list comprehension.

Writes a Markdown report (stdout, or ``--out FILE``) with the CPU model and the load
average beside the figures. Run: ``python bench/floors.py --out bench/FLOORS.md``.
"""

from __future__ import annotations

import argparse
import operator
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from _common import cpu_model, fmt_time, git_commit, load_average  # bench/ is on sys.path


def _time(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call: the median of 7 batches of ``number`` calls, CPU time, gc off."""
    timer = timeit.Timer(fn, timer=time.process_time)
    return statistics.median(t / number for t in timer.repeat(repeat=7, number=number))


def _pairs(cases: list[tuple[str, Callable[[], Any], str, Callable[[], Any], int]], rounds: int) -> list[Any]:
    """Time each (ours, floor) pair in turns, ``rounds`` times; keep the medians."""
    rows = []
    for name, ours, floor_name, floor, number in cases:
        a, b = [], []
        for _ in range(rounds):
            a.append(_time(ours, number))
            b.append(_time(floor, number))
        rows.append((name, statistics.median(a), floor_name, statistics.median(b)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the Markdown report here (default: stdout)")
    parser.add_argument("--rounds", type=int, default=3, help="turns per pair (default 3)")
    args = parser.parse_args(argv)

    import proctopo

    load_start = load_average()
    topo = proctopo.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=1024)  # 65,536 ranks
    big = proctopo.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=16384)  # 1,048,576 ranks
    rank = topo.world_size() // 2 + 3
    coord = tuple(topo.get_coord(rank))
    three = operator.itemgetter(0, 1, 2)
    p, d, m = coord
    small = proctopo.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=8)  # filter_match: 8 ranks
    cases = [
        (
            "get_coord(rank), 65,536 ranks",
            lambda: topo.get_coord(rank),
            "C call returning a 3-tuple",
            lambda: three(coord),
            200_000,
        ),
        (
            "get_rank(pipe=, data=, model=), 65,536 ranks",
            lambda: topo.get_rank(pipe=p, data=d, model=m),
            "C call with 3 keywords (dict(pipe=, data=, model=))",
            lambda: dict(pipe=p, data=d, model=m),
            200_000,
        ),
        (
            "filter_match(pipe=1, data=3): 8 ranks",
            lambda: small.filter_match(pipe=1, data=3),
            "list(range(8))",
            lambda: list(range(8)),
            100_000,
        ),
        (
            "filter_match(data=1): 64 ranks",
            lambda: topo.filter_match(data=1),
            "list(range(64))",
            lambda: list(range(100_000, 100_064)),
            50_000,
        ),
        (
            "filter_match(pipe=1): 8,192 ranks",
            lambda: topo.filter_match(pipe=1),
            "list(range(8,192 ints))",
            lambda: list(range(8192, 16384)),
            300,
        ),
        (
            "get_axis_comm_lists('data'), 65,536 ranks",
            lambda: topo.get_axis_comm_lists("data"),
            "the same 64 rows, each list(range(b, b + 8192, 8))",
            lambda: [list(range(b, b + 1024 * 8, 8)) for b in topo.filter_match(data=0)],
            10,
        ),
        (
            "get_axis_comm_lists('data'), 1,048,576 ranks",
            lambda: big.get_axis_comm_lists("data"),
            "the same 64 rows, each list(range(b, b + 131072, 8))",
            lambda: [list(range(b, b + 16384 * 8, 8)) for b in big.filter_match(data=0)],
            2,
        ),
    ]
    rows = _pairs(cases, args.rounds)
    try:
        ds = __import__("deepspeed.runtime.pipe.topology", fromlist=["x"])
        dst = ds.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=1024)
        ds_rows = _pairs(
            [
                (
                    "get_rank(pipe=, data=, model=), 65,536 ranks",
                    lambda: topo.get_rank(pipe=p, data=d, model=m),
                    "DeepSpeed's get_rank",
                    lambda: dst.get_rank(pipe=p, data=d, model=m),
                    50_000,
                )
            ],
            args.rounds,
        )
    except ImportError:
        ds_rows = []
    load_end = load_average()

    lines = [
        "# Python calls against CPython's floor",
        "",
        "_Written by `bench/floors.py`; regenerate with `python bench/floors.py --out bench/FLOORS.md`._",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs; load average (1/5/15 min) "
        f"{load_start} at the start, {load_end} at the end",
        f"- Python {platform.python_version()}, proctopo {proctopo.__version__} (commit {git_commit()})",
        f"- Method: in one process, each call and its floor in turns, {args.rounds} rounds; each time is "
        "the median of 7 batches of process CPU time; ratio = proctopo / floor (≤ 1 is at the floor).",
        "",
        "| call | proctopo | floor | floor time | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for name, ours, floor_name, floor in rows:
        lines.append(
            f"| {name} | {fmt_time(ours)} | {floor_name} | {fmt_time(floor)} | {ours / floor:.2f}x |"
        )
    for name, ours, peer_name, peer in ds_rows:
        lines.append(
            f"| {name} | {fmt_time(ours)} | {peer_name} | {fmt_time(peer)} | {ours / peer:.2f}x "
            f"({peer / ours:.1f}x faster) |"
        )
    by_name = {name: ours / floor for name, ours, _, floor in rows}
    goals = [
        ("get_coord ≤ 2x a C call returning a 3-tuple", by_name["get_coord(rank), 65,536 ranks"], 2.0),
        ("small lists (8 and 64 ranks) ≤ 1.5x C building the list", max(list(by_name.values())[2:4]), 1.5),
        ("8,192 ranks ≤ 1.15x the int-creation floor", by_name["filter_match(pipe=1): 8,192 ranks"], 1.15),
        ("lists of lists ≤ 1.15x the floor at 65,536 and 1,048,576", max(list(by_name.values())[5:7]), 1.15),
    ]
    if ds_rows:
        _, ours, _, peer = ds_rows[0]
        goals.append(
            (
                "get_rank ≥ 5x faster than DeepSpeed (ratio is DeepSpeed's time / ours, inverted)",
                ours / peer,
                1 / 5,
            )
        )
    lines += ["", "| goal | measured | met |", "|---|---:|---|"]
    for goal, value, bound in goals:
        lines.append(f"| {goal} | {value:.2f}x | {'yes' if value <= bound else '**no**'} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
