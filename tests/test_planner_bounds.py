"""The planner is bounded: the inputs that once took minutes or gigabytes now run in a small child.

Each reproducer runs in a child process whose address space is capped with RLIMIT_AS
(a search over sequences of 10 axes, or 720 orders x 2,006 axes of per-layout data,
fails there with MemoryError), under a timeout that only turns a hang into a failure.
The work the search does is counted too: the cost of an axis is asked once per
distinct stride, and the best-first search pushes at most ``top * k * k`` partial orders.
The search asks for an axis's costs at all its strides at once, as arrays: the array
answers (:meth:`proctopo.machine.Machine.reach_and_crossing_many`,
:meth:`proctopo.planner.model.Costing.axis_many`) equal the scalar ones, which stay the reference.
"""

from __future__ import annotations

import heapq
import math
import subprocess
from typing import Any

import numpy as np
import pytest
from helpers import run_capped
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import plan
from proctopo.machine import ARRAY_WORLD_LIMIT, Level, Machine, _floor_sums, _floor_sums_many
from proctopo.planner import search
from proctopo.planner.inputs import Demand
from proctopo.planner.layouts import AxisCosts
from proctopo.planner.model import Costing

capped = pytest.mark.address_space_cap

LIMIT = 1024**3  # bytes of address space for the child


def _child(code: str) -> subprocess.CompletedProcess[str]:
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return run_capped(["-c", code], LIMIT, timeout=300, env=env)


TEN_DATA_AXES = [
    "dp_outer", "dp_inner", "dp_shard", "dp_replicate", "dp", "data", "fsdp", "fsdp_outer", "fsdp_inner",
    "dp_shard_outer",
]  # fmt: skip


@capped
def test_ten_interchangeable_axes_in_one_gib() -> None:
    words = " ".join(f"{n}=2" for n in TEN_DATA_AXES)
    code = (
        "import sys\nfrom proctopo import cli\n"
        f"sys.exit(cli.main(['plan', *{words.split()!r}, '--ranks-per-node', '1', '--top', '1']))"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3,628,800 orders tie at rank 1" in out.stdout


@capped
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


@capped
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


@capped
def test_huge_domains_refit_in_one_gib() -> None:
    code = (
        "import sys\nfrom proctopo import cli\n"
        "sys.exit(cli.main(['plan', 'dp=1073741824', 'tp=8', '--ranks-per-node', '8',\n"
        "                   '--nodes-per-domain', '10000000']))"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]


PRIME_SIZES = [2, 3, 4, 5, 7, 9, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]


@capped
def test_sixteen_axes_of_distinct_prime_sizes_in_one_gib() -> None:
    # every subset of axes has its own stride: 16 * 2**15 distinct (axis, stride) costs
    code = (
        "import math\nfrom proctopo import plan\n"
        f"s = {PRIME_SIZES!r}\nworld = math.prod(s)\n"
        "p = plan({f'p{q}': q for q in s}, ranks_per_node=world // 2, nodes_per_domain=2,\n"
        "         weights={f'p{q}': float(q) for q in s})\n"
        "print(len(p.layouts), p.search, p.best.rank)\n"
    )
    out = _child(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["20", "subsets", "1"]


@capped
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


def test_the_search_asks_a_batch_evaluator_for_arrays_only() -> None:
    asked: list[int] = []

    class Batch:
        def __call__(self, i: int, stride: int) -> tuple[int, int]:
            raise AssertionError("the scalar cost was asked")

        def many(self, i: int, strides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            asked.append(len(strides))
            return (i + 1) * np.log2(strides).astype(np.int64), np.zeros(len(strides), dtype=np.int64)

    k = 10
    ranked = search.rank_best([2] * k, Batch(), list(range(k)), 5)
    assert asked == [k] * k  # one call per axis, its distinct strides 2**j, j < k
    assert ranked[0].order == tuple(range(k - 1, -1, -1))


def test_a_grid_plans_alike_with_and_without_the_array_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {f"p{q}": q for q in PRIME_SIZES[:9]}
    kwargs: dict[str, Any] = {
        "ranks_per_node": 44,  # a partial last node: the floor sums' path
        "nodes_per_domain": 3,
        "machine": "hgx-h100",
        "weights": {n: float(q % 4) for n, q in sizes.items()},  # ties: the tie-break decides
        "top": 30,
    }

    def summary(p: Any) -> list[Any]:
        return [(lay.order, lay.rank, lay.ties, lay.exposed, lay.total) for lay in p.layouts]

    with_arrays = plan(sizes, **kwargs)
    monkeypatch.delattr(AxisCosts, "many")
    assert summary(plan(sizes, **kwargs)) == summary(with_arrays)


# ----------------------------------------------------------------------------- the array twins
@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 60),
    a=st.integers(0, 10**6),
    b=st.integers(0, 10**6),
    c=st.integers(1, 10**6),
)
def test_array_floor_sums_are_the_scalar_ones_modulo_two_to_the_64(n: int, a: int, b: int, c: int) -> None:
    f, g, h = _floor_sums(n, a, b, c)
    many = _floor_sums_many(np.array([n]), np.array([a]), np.array([b]), np.array([c]))
    assert [int(x[0]) for x in many] == [f % 2**64, g % 2**64, (h + f) // 2 % 2**64]


FACTORS = [2, 3, 4, 5, 7, 9, 11, 13, 1009, 65537, 2**20]


@st.composite
def grids(draw: st.DrawFn) -> tuple[list[int], int]:
    """Axis sizes (products of a few factors, up to 2**63 in all) and a world size."""
    sizes = draw(st.lists(st.sampled_from(FACTORS), min_size=1, max_size=9))
    world = 1
    kept = []
    for q in sizes:
        if world * q < 2**63:
            world *= q
            kept.append(q)
    return kept, world


@st.composite
def machines(draw: st.DrawFn, world: int) -> Machine:
    """Three to six levels whose sizes are divisors of the world, or anything (a partial last unit)."""
    count = draw(st.integers(3, 6))
    levels = []
    for i in range(count - 1):
        size = draw(st.one_of(st.integers(1, 100), st.integers(1, 2**40), st.sampled_from(FACTORS)))
        levels.append(Level(f"l{i}", size, 1e9 / (i + 1), 1e-6 * (i + 1)))
    levels.append(Level("top", None, 1e8, 1e-4, oversubscription=draw(st.sampled_from([1.0, 3.0]))))
    return Machine("drawn", tuple(levels))


@settings(max_examples=150, deadline=None)
@given(grid=grids(), data=st.data())
def test_array_reach_and_crossing_are_the_scalar_ones(
    grid: tuple[list[int], int], data: st.DataObject
) -> None:
    sizes, world = grid
    machine = data.draw(machines(world), label="machine")
    i = data.draw(st.integers(0, len(sizes) - 1), label="axis")
    size = sizes[i]
    others = sizes[:i] + sizes[i + 1 :]
    strides = sorted({math.prod(q for q, keep in zip(others, mask) if keep) for mask in _masks(len(others))})
    spans, tier, crossing = machine.reach_and_crossing_many(np.array(strides), size, world)
    for j, stride in enumerate(strides):
        reach, fractions = machine.reach_and_crossing(stride, size, world)
        assert tuple(spans[:, j].tolist()) == reach.spans
        assert int(tier[j]) == reach.tier
        assert tuple(crossing[:, j].tolist()) == fractions


def _masks(k: int) -> list[tuple[bool, ...]]:
    return [tuple(bool(m >> i & 1) for i in range(k)) for m in range(1 << k)]


@settings(max_examples=100, deadline=None)
@given(grid=grids(), data=st.data())
def test_array_costs_are_the_scalar_ones(grid: tuple[list[int], int], data: st.DataObject) -> None:
    sizes, world = grid
    machine = data.draw(machines(world), label="machine")
    demands = [
        Demand(None, data.draw(st.floats(0, 1e12)), data.draw(st.floats(0, 1e4)), 0.5, "weight", (f"a{j}",))
        for j in range(len(sizes))
    ]
    costs = AxisCosts(Costing(machine, world, demands), demands, sizes)
    for i in range(len(sizes)):
        others = sizes[:i] + sizes[i + 1 :]
        strides = np.array(
            sorted({math.prod(q for q, keep in zip(others, m) if keep) for m in _masks(len(others))}),
            dtype=np.int64,
        )
        keys, tights = costs.many(i, strides)
        assert list(zip(keys.tolist(), tights.tolist())) == [costs(i, int(s)) for s in strides]


def test_beyond_the_array_limit_the_scalar_path_answers() -> None:
    machine = Machine.default(ranks_per_node=3, nodes_per_domain=5)
    world = 2**63 - 1 - (2**63 - 1) % 15  # a multiple of 15 above ARRAY_WORLD_LIMIT, below 2**63
    assert world > ARRAY_WORLD_LIMIT
    strides = np.array([1, 3, 5, 15])
    spans, tier, crossing = machine.reach_and_crossing_many(strides, world // 15, world)
    for j, stride in enumerate(strides.tolist()):
        reach, fractions = machine.reach_and_crossing(stride, world // 15, world)
        assert (tuple(spans[:, j].tolist()), int(tier[j]), tuple(crossing[:, j].tolist())) == (
            reach.spans,
            reach.tier,
            fractions,
        )
