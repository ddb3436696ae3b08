"""The planner is bounded: the inputs that once took minutes or gigabytes now run in a small child.

Each reproducer runs in a child process whose address space is capped with RLIMIT_AS
(a search over sequences of 10 axes, or 720 orders x 2,006 axes of per-layout data,
fails there with MemoryError), under a timeout that only turns a hang into a failure.
The work the search does is counted too: the cost of an axis is asked once per
distinct stride, and the best-first search pushes at most ``top * k * k`` partial orders.
"""

from __future__ import annotations

import heapq
import math
import subprocess
from typing import Any

import pytest
from helpers import run_capped
from proctopo import plan
from proctopo.planner import search

pytestmark = pytest.mark.address_space_cap

LIMIT = 1024**3  # bytes of address space for the child


def _child(code: str) -> subprocess.CompletedProcess[str]:
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return run_capped(["-c", code], LIMIT, timeout=300, env=env)


TEN_DATA_AXES = [
    "dp_outer", "dp_inner", "dp_shard", "dp_replicate", "dp", "data", "fsdp", "fsdp_outer", "fsdp_inner",
    "dp_shard_outer",
]  # fmt: skip


def test_ten_interchangeable_axes_in_one_gib() -> None:
    words = " ".join(f"{n}=2" for n in TEN_DATA_AXES)
    code = (
        "import sys\nfrom proctopo import cli\n"
        f"sys.exit(cli.main(['plan', *{words.split()!r}, '--ranks-per-node', '1', '--top', '1']))"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3,628,800 orders tie at rank 1" in out.stdout


def test_sixteen_axes_of_distinct_weights_in_one_gib() -> None:
    code = (
        "from proctopo import plan\n"
        "p = plan({f'x{i}': 2 for i in range(16)}, ranks_per_node=8, nodes_per_domain=4,\n"
        "         weights={f'x{i}': float(i + 1) for i in range(16)}, top=20)\n"
        "print(len(p.layouts), p.candidates, p.best.rank, p.best.ties)\n"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[:3] == ["20", str(math.factorial(16)), "1"]


def test_two_thousand_axes_of_size_one_in_one_gib() -> None:
    code = (
        "import contextlib, io, json, sys\nfrom proctopo import cli\n"
        "words = [f'x{i}=1' for i in range(2000)] + ['pp=2', 'dp=2', 'ep=2', 'cp=2', 'tp=2', 'fsdp=2']\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = cli.main(['plan', *words, '--ranks-per-node', '8', '--json'])\n"
        "doc = json.loads(out.getvalue())\n"
        "assert all(len(lay['axes']) == 6 for lay in doc['layouts']), 'size-1 axes: no reports'\n"
        "print(code, len(doc['layouts']))\n"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["0", "20"]  # 720 orders x 2,006 axes: the best 20 are kept


def test_huge_domains_refit_in_one_gib() -> None:
    code = (
        "import sys\nfrom proctopo import cli\n"
        "sys.exit(cli.main(['plan', 'dp=1073741824', 'tp=8', '--ranks-per-node', '8',\n"
        "                   '--nodes-per-domain', '10000000']))"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]


def test_the_cap_is_real() -> None:
    out = _child("bytearray(2 * 1024**3)")
    assert out.returncode != 0 and "MemoryError" in out.stderr, out.stderr[-2000:]


def test_the_search_asks_each_cost_once_per_stride_and_pushes_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k, top = 12, 20
    sizes = [2] * k
    asked: list[tuple[int, int]] = []

    def evaluate(i: int, stride: int) -> tuple[int, int]:
        asked.append((i, stride))
        return (i + 1) * stride.bit_length(), 0  # distinct weights, cost grows with the stride

    pushes = []
    real_push = heapq.heappush

    def push(heap: list[Any], item: Any) -> None:
        pushes.append(1)
        real_push(heap, item)

    monkeypatch.setattr(search.heapq, "heappush", push)
    ranked = search.rank_best(sizes, evaluate, list(range(k)), top)
    assert len(ranked) == top
    assert len(asked) == len(set(asked)) <= k * k  # strides of sets of size-2 axes: 2**j, j < k
    assert len(pushes) <= (top + 1) * k * k
    # the best order: heaviest axis fastest (it costs least at the smallest stride)
    assert ranked[0].order == tuple(range(k - 1, -1, -1))


def test_the_refit_runs_a_bounded_number_of_searches(monkeypatch: pytest.MonkeyPatch) -> None:
    from proctopo.planner import api

    searches = []
    real = api._ranked

    def counting(*args: Any, **kwargs: Any) -> Any:
        searches.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_ranked", counting)
    plan({"dp": 0, "ep": 8, "cp": 2, "tp": 8}, world_size=2**20, ranks_per_node=8, nodes_per_domain=99)
    assert 1 < len(searches) <= 1 + 3  # the plan's search, then at most REFIT_TRIES
