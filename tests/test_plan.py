"""proctopo.planner: spans, levels, overlap, ranking and ties, against independent brute-force oracles.

The oracles here do not use the planner's closed forms nor its search: spans come from
listing every group of the topology (``groups(axes) // ranks_per_block``), a layout's
cost from a plain re-statement of the model (each demand at the first level one unit of
which holds each of its groups, times its exposed fraction), the ranking from sorting
every order there is, communicator counts from the rank sets themselves, and
``new_group`` calls from a ``ProcessGrid`` played on the recorder.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import (
    MEGATRON_TO_DEEPSPEED,
    GridSizeError,
    InvalidArgumentError,
    InvalidTopologyError,
    ProcessTopology,
    UnknownAxisError,
    cli,
)
from proctopo.grid import ProcessGrid
from proctopo.machine import PRESETS, Level, Machine, seconds_text
from proctopo.planner import (
    COMMUNICATOR_BYTES,
    DEFAULT_WEIGHTS,
    EXPOSED,
    SCHEMA,
    Plan,
    kind_of,
    plan,
)
from proctopo.testing import RecordingComm

NAMES = ("pp", "dp", "ep", "cp", "tp")
MODEL = {"params": 7e9, "hidden": 4096, "seq_len": 4096, "micro_batch": 1, "layers": 32}


# ----------------------------------------------------------------------------- oracles
def enumerated_spans(topo: ProcessTopology, axes: Any, blocks: tuple[int, ...]) -> tuple[int, ...]:
    """Most distinct units of each level in one group of ``axes``, by listing all groups."""
    rows = topo.groups(axes).tolist()
    return tuple(max(len({r // b for r in row}) for row in rows) for b in blocks)


def oracle_time(machine: Machine, spans: tuple[int, ...], nbytes: float, messages: float) -> float:
    """Alpha-beta time at the first level whose span is 1 (the top when none is)."""
    tier = next((i for i, n in enumerate(spans) if n == 1), len(spans))
    level = machine.levels[tier]
    return messages * level.latency + nbytes * level.oversubscription / level.bandwidth


def oracle_cost(p: Plan, order: tuple[str, ...]) -> tuple[float, float]:
    """(exposed, total) seconds per step of a grid order, from enumerated groups."""
    topo = ProcessTopology(list(order), [p.sizes[a] for a in order])
    exposed = total = 0.0
    for a in order:
        if p.sizes[a] == 1:
            continue
        (d,) = p.demands[a]
        t = oracle_time(p.machine, enumerated_spans(topo, a, p.machine.blocks), d.bytes, d.messages)
        total += t
        exposed += t * d.exposed
    return exposed, total


def all_orders(sizes: dict[str, int]) -> list[tuple[str, ...]]:
    """Every order of the axes of size > 1, each size-1 axis kept in its slot."""
    names = list(sizes)
    moving = [a for a in names if sizes[a] > 1]
    out = []
    for perm in itertools.permutations(moving):
        it = iter(perm)
        out.append(tuple(next(it) if sizes[a] > 1 else a for a in names))
    return out


def competition_ranks(costs: list[float]) -> list[int]:
    """1 + the number of strictly smaller costs (equal within 1e-9, relative)."""
    return [1 + sum(1 for d in costs if d < c * (1 - 1e-9) - 1e-15) for c in costs]


shapes = st.lists(st.sampled_from([1, 2, 2, 3, 4, 6]), min_size=1, max_size=4).map(
    lambda dims: dict(zip(NAMES[-len(dims) :], dims))
)


@st.composite
def machines(draw: st.DrawFn, world: int) -> Machine:
    """A machine of 3 to 5 levels whose sizes and links vary (oversubscription too)."""
    rpn = draw(st.integers(1, world + 1), label="ranks_per_node")
    npd = draw(st.integers(1, 3), label="nodes_per_domain")
    extra = draw(st.lists(st.integers(1, 3), max_size=2), label="network sizes")
    bandwidths = draw(
        st.lists(
            st.sampled_from([25e9, 50e9, 400e9, 900e9]), min_size=3 + len(extra), max_size=3 + len(extra)
        )
    )
    levels = [Level("node", rpn, bandwidths[0], 3e-6), Level("domain", npd, bandwidths[1], 3e-6)]
    for i, size in enumerate(extra):
        levels.append(
            Level(f"net{i}", size, bandwidths[2 + i], 9e-6, oversubscription=draw(st.sampled_from([1, 2])))
        )
    levels.append(Level("top", None, bandwidths[-1], 1e-5, oversubscription=draw(st.sampled_from([1, 7]))))
    return Machine("drawn", tuple(levels))


# ----------------------------------------------------------------------------- spans and levels
@settings(max_examples=60, deadline=None)
@given(sizes=shapes, data=st.data())
def test_reported_spans_equal_enumeration_on_every_level(sizes: dict[str, int], data: st.DataObject) -> None:
    world = math.prod(sizes.values())
    m = data.draw(machines(world))
    p = plan(sizes, machine=m)
    for lay in p.layouts:
        topo = lay.topology
        assert topo.axes == list(lay.order)
        assert [a.name for a in lay.axes] == [a for a in lay.order if sizes[a] > 1]  # size-1 axes left out
        for rep in lay.axes:
            assert rep.stride == topo.strides[topo.axes.index(rep.name)]
            spans = enumerated_spans(topo, rep.name, m.blocks)
            assert rep.spans == spans, (lay.order, rep)
            tier = next((i for i, n in enumerate(spans) if n == 1), len(spans))
            assert rep.tier == m.levels[tier].name


# ----------------------------------------------------------------------------- ranking against the oracle
@settings(max_examples=60, deadline=None)
@given(sizes=shapes, data=st.data())
def test_ranking_is_the_exhaustive_optimum_with_overlap(sizes: dict[str, int], data: st.DataObject) -> None:
    world = math.prod(sizes.values())
    m = data.draw(machines(world))
    exposed = data.draw(st.fixed_dictionaries({"data": st.sampled_from([0.0, 0.2, 1.0])}), label="exposed")
    p = plan(sizes, machine=m, exposed=exposed)
    orders = all_orders(sizes)
    assert {lay.order for lay in p.layouts} == set(orders)
    assert p.search == "all" and p.candidates == len(orders)
    oracle = {o: oracle_cost(p, o) for o in orders}
    for lay in p.layouts:
        assert lay.exposed == pytest.approx(oracle[lay.order][0], rel=1e-9, abs=1e-15)
        assert lay.total == pytest.approx(oracle[lay.order][1], rel=1e-9, abs=1e-15)
    costs = [oracle[lay.order][0] for lay in p.layouts]
    assert costs == sorted(costs) or all(
        a <= b * (1 + 1e-9) + 1e-15 for a, b in zip(costs, costs[1:])
    )  # best first, equal ones in any tie-break order
    ranks = competition_ranks(costs)
    assert [lay.rank for lay in p.layouts] == ranks
    for lay, r in zip(p.layouts, ranks):
        assert lay.ties == ranks.count(r) and lay.ties_exact
    assert p.best.exposed == pytest.approx(min(c[0] for c in oracle.values()), rel=1e-9, abs=1e-15)
    assert p.given_layout.order == tuple(sizes)


def test_the_search_over_subsets_finds_the_exhaustive_best_and_counts_its_ties() -> None:
    sizes = {"pp": 2, "dp": 3, "ep": 2, "cp": 2, "tp": 4, "vocab": 2, "extra": 2}
    weights = {"vocab": 3.0, "extra": 3.0}
    p = plan(sizes, ranks_per_node=8, nodes_per_domain=2, weights=weights, top=15)
    assert p.search == "subsets" and p.candidates == math.factorial(7)
    full = plan(sizes, ranks_per_node=8, nodes_per_domain=2, weights=weights, candidates=all_orders(sizes))
    assert full.candidates == math.factorial(7) and full.search == "given"
    assert [lay.exposed for lay in p.layouts] == pytest.approx(
        [lay.exposed for lay in full.layouts[:15]], rel=1e-12
    )
    assert [lay.rank for lay in p.layouts] == [lay.rank for lay in full.layouts[:15]]
    assert p.best.ties == full.best.ties > 1 and p.best.ties_exact  # vocab and extra are interchangeable
    oracle = sorted(oracle_cost(full, lay.order)[0] for lay in full.layouts)
    assert p.best.exposed == pytest.approx(oracle[0], rel=1e-12)
    assert sum(1 for c in oracle if c <= oracle[0] * (1 + 1e-9)) == p.best.ties
    assert len(p.layouts) == 15


def test_the_search_over_subsets_returns_the_same_layouts_as_the_whole_ranking_on_a_preset() -> None:
    sizes = {"pp": 2, "dp": 2, "ep": 2, "cp": 2, "tp": 2, "x": 2, "y": 3}
    kw: dict[str, Any] = dict(machine="gb200-nvl72", weights={"x": 1.5, "y": 0.7}, exposed={"data": 0.5})
    p = plan(sizes, **kw, top=30)
    full = plan(sizes, **kw, candidates=all_orders(sizes))
    assert [(lay.order, lay.rank) for lay in p.layouts] == [
        (lay.order, lay.rank) for lay in full.layouts[:30]
    ]


# ----------------------------------------------------------------------------- overlap
def test_exposed_time_is_each_kinds_fraction_of_its_time() -> None:
    p = plan({"pp": 2, "dp": 4, "tp": 4}, ranks_per_node=4, model=MODEL)
    best = p.best
    for a in best.axes:
        assert a.exposed_fraction == EXPOSED[a.kind or ""]
        assert a.exposed == pytest.approx(a.time * a.exposed_fraction)
    assert best.exposed == pytest.approx(sum(a.exposed for a in best.axes))
    assert best.total == pytest.approx(sum(a.time for a in best.axes)) and best.total > best.exposed
    q = plan({"pp": 2, "dp": 4, "tp": 4}, ranks_per_node=4, model=MODEL, exposed={"data": 1.0, "pipe": 0.5})
    assert q.best.axis("dp").exposed_fraction == 1.0 and q.best.axis("pp").exposed_fraction == 0.5
    by_axis = plan({"pp": 2, "dp": 4, "tp": 4}, ranks_per_node=4, model=MODEL, exposed={"dp": 0.0})
    assert by_axis.best.axis("dp").exposed == 0


def test_overlap_moves_the_hidden_traffic_outward() -> None:
    # On Meta's RoCE cluster (1:7 between pods) pipeline sends are on the critical path and the
    # gradient all-reduce hides behind the backward pass: which of the two goes outermost
    # depends on how much of the gradient traffic is exposed.
    llama = dict(
        params="405B",
        hidden=16384,
        seq_len="8Ki",
        micro_batch=1,
        layers=126,
        global_batch=2048,
        kv_hidden=1024,
    )
    kw: dict[str, Any] = dict(order="tp-cp-pp-dp", world_size=16384, machine="meta-h100-roce", model=llama)
    hidden = plan({"tp": 8, "cp": 1, "pp": 16, "dp": 0}, **kw, exposed={"data": 0.05})
    assert hidden.best.megatron_order == "tp-cp-pp-dp" and hidden.best.ties == 1
    assert hidden.best.axis("pp").tier == "pod" and hidden.best.axis("dp").tier == "cluster"
    exposed = plan({"tp": 8, "cp": 1, "pp": 16, "dp": 0}, **kw, exposed={"data": 1.0})
    assert exposed.best.megatron_order == "tp-cp-dp-pp" and exposed.best.ties == 1


# ----------------------------------------------------------------------------- ties
def test_equal_layouts_share_a_rank_and_the_tie_break_prefers_the_tightest_then_the_convention() -> None:
    # pp and dp both leave the node whichever is outer: equal cost, one rank number.
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
    first, second = p.layouts[:2]
    assert first.rank == second.rank == 1 and first.ties == second.ties == 2
    assert first.exposed == second.exposed
    assert first.megatron_order == "tp-dp-pp"  # DeepSpeed's and Megatron's order: data inside pipe
    assert "2 orders tie at rank 1" in p.render()
    # With 72-rank domains, a cp group of ranks {b, b+8} crosses a domain only near its
    # boundary, one of ranks {b, b+8192} always: same worst group, the first is tighter.
    q = plan(
        {"cp": 2, "dp": 0, "tp": 8},
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=9,
        candidates=["tp-cp-dp", "tp-dp-cp"],
    )
    assert q.layouts[0].rank == q.layouts[1].rank == 1
    assert q.best.megatron_order == "tp-cp-dp"


def _with_tie_breaks(p: Plan, *values: float) -> Plan:
    """``p`` with its layouts' tie-break measures set to ``values``, the rest not known."""
    layouts = [dataclasses.replace(lay, tie_break=v) for lay, v in itertools.zip_longest(p.layouts, values)]
    return dataclasses.replace(p, layouts=layouts)


def test_the_text_says_which_key_of_the_tie_break_decided_rank_1() -> None:
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)  # two orders tie at rank 1
    tied = "2 orders tie at rank 1 (the same exposed time, set by each axis's slowest group); "
    by_average = _with_tie_breaks(p, 0.25, 0.5)
    assert by_average.decided_by == "average group"
    assert (
        tied + "the average group decided: tp-dp-pp's exposed time at each group's average cost is 250 ms, "
        "tp-pp-dp's 500 ms (fewer of its groups reach the slower levels)"
    ) in by_average.render()
    assert "  tie-break        250 ms exposed at each group's average cost" in by_average.render()
    by_convention = _with_tie_breaks(p, 0.25, 0.25)
    assert by_convention.decided_by == "convention"
    assert (
        tied + "their average groups cost the same (250 ms), so the convention's order decided: tp-dp-pp is "
        "the closest to the conventional order (tensor, context, expert, FSDP, data, pipe, fastest first)"
    ) in by_convention.render()
    unknown = _with_tie_breaks(p, 0.25)  # the runner-up's measure is not known
    assert unknown.decided_by is None and tied + "first comes the one whose average group" in unknown.render()
    top1 = dataclasses.replace(by_average, layouts=by_average.layouts[:1])  # the runner-up was not kept
    assert top1.decided_by is None
    alone = plan({"tp": 4, "dp": 2}, ranks_per_node=4)
    assert alone.best.ties == 1 and alone.decided_by == "exposed" and "tie at rank 1" not in alone.render()


def test_the_tie_break_measure_is_in_the_json() -> None:
    p = _with_tie_breaks(plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4), 0.25, 0.5)
    d = p.to_dict()
    assert [lay["tie_break"] for lay in d["layouts"][:2]] == [0.25, 0.5]
    assert Plan.from_dict(json.loads(json.dumps(d))) == p
    for lay in d["layouts"]:  # a dictionary written without it reads as not known
        del lay["tie_break"]
    assert Plan.from_dict(d).best.tie_break is None


def test_each_layout_carries_the_measure_its_order_was_ranked_by() -> None:
    # pp and dp off the node whichever is outer: their average groups cost the same too.
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
    assert p.decided_by == "convention" and p.layouts[0].tie_break == p.layouts[1].tie_break
    # cp groups {b, b+8} cross a 72-rank domain 1 time in 9, {b, b+8192} always.
    q = plan(
        {"cp": 2, "dp": 0, "tp": 8},
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=9,
        candidates=["tp-cp-dp", "tp-dp-cp"],
    )
    assert q.decided_by == "average group"
    first, second = q.layouts
    assert first.tie_break is not None and second.tie_break is not None
    assert first.tie_break < second.tie_break <= second.exposed * (1 + 1e-9)  # exact in 2**-44 units
    for r in (
        p,
        plan({"tp": 2, "cp": 2, "pp": 2, "dp": 0}, convention="megatron", world_size=32, machine="hgx-h100"),
    ):
        assert all(
            lay.tie_break is not None and 0 <= lay.tie_break <= lay.exposed * (1 + 1e-9) for lay in r.layouts
        )
        assert all(  # within a rank, ordered by the measure
            a.tie_break <= b.tie_break
            for a, b in zip(r.layouts, r.layouts[1:])
            if a.rank == b.rank  # type: ignore[operator]
        )


def test_the_readme_example_and_llama_3_end_in_an_explained_order() -> None:
    readme = plan(
        {"tp": 8, "cp": 2, "ep": 8, "pp": 8, "dp": 0},
        convention="megatron",
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=9,
    )
    assert readme.convention == "megatron" and readme.sizes["dp"] == 128
    best = readme.best
    text = readme.render()
    assert best.ties == 1 or f"{best.ties} orders tie at rank 1" in text
    assert "convention: Megatron" in text and "order (fastest first)" in text
    llama = plan(
        {"tp": 8, "cp": 1, "pp": 16, "dp": 0},
        order="tp-cp-pp-dp",
        world_size=16384,
        machine="meta-h100-roce",
        model=dict(params="405B", hidden=16384, seq_len=8192, micro_batch=1, layers=126, global_batch=2048),
    )
    assert llama.best.ties == 1 and llama.layouts[1].rank == 2


# ----------------------------------------------------------------------------- published layouts
_PLAN_DOC = Path(__file__).resolve().parents[1] / "docs" / "plan.md"


def _published_commands() -> list[list[str]]:
    """The commands of docs/plan.md's published-layouts table, in its rows' order (words after ``plan``)."""
    text = _PLAN_DOC.read_text(encoding="utf-8")
    block = text.split("The commands of the rows, in order", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line)[2:] for line in lines if line.startswith("proctopo plan ")]


def _dgx_a100(tmp_path: Path) -> Path:
    """docs/plan.md's DGX A100 machine file, written where the commands find it."""
    text = _PLAN_DOC.read_text(encoding="utf-8")
    start = text.index('{"name": "dgx-a100"')
    path = tmp_path / "dgx-a100.json"
    path.write_text(text[start : text.index("```", start)], encoding="utf-8")
    return path


# Each row of the table: the planner's first (and the order it ties with), its exposed time,
# the published order's rank and exposed time, and (A100 rows) the cheapest order with tp off
# the node, as the text rounds it.
PUBLISHED = [
    pytest.param("tp-cp-dp-pp", None, "751 ms", 2, "924 ms", None, id="llama3-8k-meta"),
    pytest.param("tp-cp-pp-dp", None, "660 ms", 1, "660 ms", None, id="llama3-8k-meta-data-0.05"),
    pytest.param("tp-cp-dp-pp", "tp-cp-pp-dp", "623 ms", 1, "623 ms", None, id="llama3-8k-hgx"),
    pytest.param("tp-cp-dp-pp", "tp-dp-cp-pp", "1.28 s", 3, "1.54 s", None, id="llama3-128k-meta"),
    pytest.param("tp-dp-pp", "tp-pp-dp", "1.7 s", 1, "1.7 s", "17 s", id="gpt3-175b-a100"),
    pytest.param("tp-dp-pp", "tp-pp-dp", "3.3 s", 1, "3.3 s", "31 s", id="1t-a100"),
]


@pytest.mark.parametrize(
    ("first", "tied", "exposed", "given_rank", "given_exposed", "tp_off_node"), PUBLISHED
)
def test_each_published_layout_row_reproduces_from_its_command(
    first: str,
    tied: str | None,
    exposed: str,
    given_rank: int,
    given_exposed: str,
    tp_off_node: str | None,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = _published_commands()
    assert len(commands) == len(PUBLISHED)
    words = commands[[p.id for p in PUBLISHED].index(request.node.callspec.id)]
    words = [str(_dgx_a100(tmp_path)) if w == "dgx-a100.json" else w for w in words]
    assert cli.main(["plan", *words, "--json"]) == 0
    p = Plan.from_dict(json.loads(capsys.readouterr().out))
    best = p.best
    assert (best.megatron_order, seconds_text(best.exposed)) == (first, exposed)
    if tied is None:
        assert best.ties == 1
    else:
        assert best.ties == 2 and p.layouts[1].megatron_order == tied and p.layouts[1].rank == 1
    assert (p.given_rank, seconds_text(p.given_layout.exposed)) == (given_rank, given_exposed)
    if tp_off_node is not None:  # "tp off the node costs 10 times as much"
        off = min(lay.exposed for lay in p.layouts if lay.axis("tp").tier != "node")
        assert f"{off:.2g} s" == tp_off_node and off > 9 * best.exposed


def test_hgx_h100_prices_a_rail_as_any_group_and_its_network_levels_alike() -> None:
    # docs/machine.md: rails are not modelled (a rail is a stride pattern, not a block), so off
    # the node the leaf, spine and core levels cost the same.
    hgx = PRESETS["hgx-h100"]
    assert (
        len({(lv.time(1e9, 10)) for lv in hgx.levels[2:]}) == 1 < len({lv.time(1e9, 10) for lv in hgx.levels})
    )
    rail = hgx.reach(stride=8, size=32, world_size=16384)  # GPU i of 32 nodes: one rail of a leaf
    block = hgx.reach(stride=1, size=256, world_size=16384)  # all 256 GPUs of the leaf
    assert rail.tier == block.tier == 2
    weights = {"tp": 1, "dp": 1, "pp": 1}
    p = plan({"pp": 4, "dp": 32, "tp": 8}, machine="hgx-h100", weights=weights, convention="generic")
    tiers = {lay.megatron_order: (lay.axis("dp").tier, lay.axis("pp").tier) for lay in p.layouts}
    assert tiers["tp-dp-pp"] == ("leaf", "spine") and tiers["tp-pp-dp"] == ("spine", "leaf")
    exposed = {lay.megatron_order: lay.exposed for lay in p.layouts}
    assert exposed["tp-dp-pp"] == exposed["tp-pp-dp"]  # other levels, the same time


def test_the_planner_takes_seconds_text_from_its_one_home() -> None:
    # proctopo.machine writes every time; no planner module passes it on to another.
    import ast

    from proctopo import planner

    for path in Path(planner.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and any(a.name == "seconds_text" for a in node.names):
                assert (node.level, node.module) == (2, "machine"), (path.name, node.module)
                assert all(a.asname is None for a in node.names), path.name  # not re-exported


# ----------------------------------------------------------------------------- model traffic
def test_model_costs_follow_the_published_formulas() -> None:
    t, c, e, d, pp = 2, 2, 2, 4, 2
    sizes = {"pp": pp, "dp": d, "ep": e, "cp": c, "tp": t}
    m = {**MODEL, "microbatches": 6, "kv_hidden": 1024, "moe_topk": 2, "expert_params": 3e9}
    p = plan(sizes, ranks_per_node=4, nodes_per_domain=2, model=m, candidates=[list(sizes)])
    b, s, h, L, bv = 1, 4096, 4096, 32, 2
    layers = L / pp
    # Narayanan et al. 2021: 8 b s h (t-1)/t bytes per layer per micro-batch (s sharded by cp)
    tensor = 8 * b * (s / c) * h * bv * (t - 1) / t * layers * 6
    context = 3 * (c - 1) * 2 * b * (s / c) * (1024 / t) * bv * layers * 6
    expert = 4 * 2 * (b * s / (c * t)) * h * bv * (e - 1) / e * layers * 6
    data = 2 * (d - 1) / d * ((4e9 + 3e9 / e) / (t * pp)) * 2
    pipe = 2 * 6 * b * s * h * bv / (t * c)
    want = {"tp": tensor, "cp": context, "ep": expert, "dp": data, "pp": pipe}
    for name, nbytes in want.items():
        (demand,) = p.demands[name]
        assert demand.bytes == pytest.approx(nbytes, rel=1e-12), name
        assert demand.source == "model"
    lay = p.best
    exposed = 0.0
    for rep in lay.axes:
        level = p.machine.levels[[lv.name for lv in p.machine.levels].index(rep.tier)]
        exposed += (rep.messages * level.latency + want[rep.name] / level.bandwidth) * EXPOSED[rep.kind or ""]
    assert lay.exposed == pytest.approx(exposed, rel=1e-12)
    assert p.traffic == "model"
    assert sum(a.share for a in lay.axes) == pytest.approx(1.0)


def test_torchtitan_names_get_fsdp_traffic() -> None:
    sizes = {"pp": 2, "dp_replicate": 2, "dp_shard": 4, "tp": 2}
    p = plan(sizes, ranks_per_node=4, model=MODEL)
    assert p.convention == "torchtitan"
    held = 7e9 / (2 * 2)  # parameters per rank before sharding: params / (tp * pp)
    (shard,) = p.demands["dp_shard"]
    assert shard.kind == "fsdp"  # all-gather forward and backward (bf16) + reduce-scatter of gradients (bf16)
    assert shard.bytes == pytest.approx(3 / 4 * held * (2 + 2 + 2))
    assert shard.messages == pytest.approx(3 * 3 * 32 / 2)  # per FSDP unit (layer) of the stage
    (rep,) = p.demands["dp_replicate"]
    assert rep.kind == "data"  # HSDP: the replicas all-reduce the sharded gradients
    assert rep.bytes == pytest.approx(2 * 1 / 2 * held / 4 * 2)
    assert "dp_shard is FSDP" in p.render()


def test_inputs_people_type() -> None:
    a = plan({"dp": 2, "tp": 2}, ranks_per_node=2, model={**MODEL, "params": "7B", "seq_len": "4Ki"})
    b = plan({"dp": 2, "tp": 2}, ranks_per_node=2, model=MODEL)
    assert a.demands == b.demands
    c = plan(
        {"dp": 2, "tp": 2},
        ranks_per_node=2,
        model={
            "params": "1.5T",
            "hidden_size": 8192,
            "seq_length": 8192,
            "micro_batch_size": 1,
            "num_layers": 80,
        },
    )
    assert c.demands["dp"][0].bytes == pytest.approx(2 * 1 / 2 * 1.5e12 / 2 * 2)
    # global_batch / (micro_batch x data-parallel size) micro-batches per step
    g = plan({"pp": 2, "dp": 4, "tp": 2}, ranks_per_node=4, model={**MODEL, "global_batch": 96})
    m = plan({"pp": 2, "dp": 4, "tp": 2}, ranks_per_node=4, model={**MODEL, "microbatches": 24})
    assert g.demands == m.demands
    with pytest.raises(
        InvalidArgumentError,
        match=r"global_batch 90 is not a multiple of micro_batch x "
        r"data-parallel size = 1 x 4 = 4",
    ):
        plan({"pp": 2, "dp": 4, "tp": 2}, ranks_per_node=4, model={**MODEL, "global_batch": 90})
    with pytest.raises(InvalidArgumentError, match="microbatches 6 disagrees with global_batch"):
        plan(
            {"pp": 2, "dp": 4, "tp": 2},
            ranks_per_node=4,
            model={**MODEL, "global_batch": 96, "microbatches": 6},
        )


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"weights": {"tp": 1e308}}, "the traffic of axis 'tp'.* is not finite"),
        ({"tiers": {"network": {"bandwidth": 1e-300}}}, "takes an infinite time over level 'network'"),
        ({"tiers": {"inter-domain": (1e-300, 0)}}, "takes an infinite time over level 'network'"),
        ({"model": {**MODEL, "params": "1e309"}}, "model params must be a finite number, got '1e309'"),
        ({"model": {**MODEL, "params": 1e309}}, "model params must be a finite number, got inf"),
        ({"model": {**MODEL, "layers": 10**400}}, "model layers must be a finite number"),
        ({"model": {**MODEL, "hidden": "x"}}, "model hidden must be a number such as 70e9"),
        ({"model": {**MODEL, "hidden": 8.5}}, "model hidden must be a whole number, got 8.5"),
        ({"model": {**MODEL, "hidden": 10**305}}, "the traffic of axis 'tp' .* is not finite"),
        ({"exposed": {"data": 1.5}}, r"exposed fraction of 'data' must be in \[0, 1\]"),
        ({"exposed": {"gradients": 0.5}}, "not a kind of traffic"),
    ],
)
def test_figures_that_make_a_cost_infinite_are_refused(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=text):
        plan({"dp": 4, "tp": 8}, ranks_per_node=2, **kwargs)


# ----------------------------------------------------------------------------- Megatron's meaning
def test_megatron_ep_subdivides_dp_x_cp_as_megatron_derives_it() -> None:
    from proctopo.megatron import layout

    p = plan(
        {"tp": 4, "ep": 8, "pp": 4, "dp": 0},
        convention="megatron",
        world_size=1152,
        ranks_per_node=4,
        nodes_per_domain=18,
        model={**MODEL, "expert_params": 6e9},
    )
    assert p.sizes["dp"] == 72 and p.sizes["ep"] == 8  # dense dp = 1152 / (4 * 4), not 9
    m = p.machine
    for lay in p.layouts:
        mg = layout(
            1152,
            tensor_model_parallel_size=4,
            expert_model_parallel_size=8,
            pipeline_model_parallel_size=4,
            order=lay.megatron_order,
        )
        assert lay.topology == mg.dense and lay.expert_topology == mg.expert
        for rep in lay.axes:
            topo = mg.expert if rep.layout == "expert" else mg.dense
            group = [{"edp": "edp"}.get(a, a) for a in rep.group]
            assert rep.size == topo.group_size(group)
            assert rep.spans == enumerated_spans(topo, group, m.blocks), (lay.megatron_order, rep)
    dense_dp = p.best.axis("dp")
    assert dense_dp.group == ("dp", "cp") and dense_dp.size == 72
    assert {a.name for a in p.best.axes} >= {"tp", "etp", "ep", "dp", "edp", "pp"}
    # every order megatron-core accepts is there, and no other
    for perm in itertools.permutations(["tp", "ep", "dp", "pp"]):
        text = "-".join([perm[0], "cp", *perm[1:]])  # cp (size 1) keeps its place in the default order
        try:
            layout(
                1152,
                tensor_model_parallel_size=4,
                expert_model_parallel_size=8,
                pipeline_model_parallel_size=4,
                order=text,
            )
        except InvalidArgumentError:
            assert all(lay.megatron_order != text for lay in p.layouts)
        else:
            assert any(lay.megatron_order == text for lay in p.layouts)


def test_megatron_costs_against_the_oracle() -> None:
    from proctopo.megatron import layout

    p = plan(
        {"tp": 2, "cp": 2, "ep": 4, "pp": 2, "dp": 0},
        convention="megatron",
        world_size=64,
        ranks_per_node=4,
        nodes_per_domain=2,
        model={**MODEL, "expert_params": 5e9},
    )
    for lay in p.layouts:
        mg = layout(
            64,
            tensor_model_parallel_size=2,
            context_parallel_size=2,
            expert_model_parallel_size=4,
            pipeline_model_parallel_size=2,
            order=lay.megatron_order,
        )
        exposed = total = 0.0
        for demands in p.demands.values():
            for d in demands:
                topo = mg.expert if d.layout == "expert" else mg.dense
                if topo.group_size(list(d.group)) == 1:
                    continue
                t = oracle_time(
                    p.machine, enumerated_spans(topo, list(d.group), p.machine.blocks), d.bytes, d.messages
                )
                total += t
                exposed += t * d.exposed
        assert lay.exposed == pytest.approx(exposed, rel=1e-9) and lay.total == pytest.approx(total, rel=1e-9)
    assert [lay.exposed for lay in p.layouts] == sorted(lay.exposed for lay in p.layouts)


def test_megatron_orders_of_the_same_layouts_count_once_and_dp_cp_apart_are_noted() -> None:
    from proctopo.megatron import layout

    p = plan(
        {"tp": 2, "cp": 2, "ep": 2, "pp": 2, "dp": 0}, convention="megatron", world_size=64, ranks_per_node=4
    )
    seen = {(lay.topology, lay.expert_topology) for lay in p.layouts}
    assert len(seen) == len(p.layouts) == p.candidates
    apart = set()
    for perm in itertools.permutations(["tp", "cp", "ep", "dp", "pp"]):
        try:
            mg = layout(
                64,
                tensor_model_parallel_size=2,
                context_parallel_size=2,
                expert_model_parallel_size=2,
                pipeline_model_parallel_size=2,
                order="-".join(perm),
            )
        except InvalidArgumentError:
            continue
        i, j = sorted(mg.dense.axes.index(a) for a in ("dp", "cp"))
        if j - i > 1:  # tp or pp between them
            apart.add((mg.dense, mg.expert))
        else:
            assert (mg.dense, mg.expert) in seen
    assert any(f"{len(apart)} order(s) megatron-core accepts are left out" in w for w in p.warnings)


def test_megatron_communicators_are_the_grids() -> None:
    from proctopo.megatron import EXPERT_LAYOUT, GROUPS, GTP_GROUPS, layout

    p = plan(
        {"tp": 2, "cp": 2, "ep": 2, "pp": 2, "dp": 0}, convention="megatron", world_size=32, ranks_per_node=4
    )
    for lay in p.layouts:
        mg = layout(
            32,
            tensor_model_parallel_size=2,
            context_parallel_size=2,
            expert_model_parallel_size=2,
            pipeline_model_parallel_size=2,
            order=lay.megatron_order,
        )
        specs: list[Any] = []
        for kind, (name, axes) in GROUPS.items():
            if kind in GTP_GROUPS:
                continue
            topo = mg.expert if name == EXPERT_LAYOUT else mg.dense
            present = tuple(a for a in axes if a in topo.axes)
            specs.append(present if name is None else (name, present))
        for strategy in ("global", "local", "split"):
            comm = RecordingComm(0, 32, backend="nccl", can_split=True)
            grid = ProcessGrid(
                mg.dense,
                group_creation=strategy,
                comm=comm,
                verify=False,
                groups=specs,
                layouts={EXPERT_LAYOUT: mg.expert},
            )
            assert grid.group_creation_calls == lay.new_group_calls[strategy], (lay.megatron_order, strategy)
        most = 0
        for r in range(32):
            sets = set()
            for name, axes in (v for k, v in GROUPS.items() if k not in GTP_GROUPS):
                topo = mg.expert if name == EXPERT_LAYOUT else mg.dense
                present = [a for a in axes if a in topo.axes]
                sets.add(frozenset(topo.group_of(r, present).tolist()))
            most = max(most, sum(1 for s in sets if len(s) > 1))
        assert lay.communicators_per_rank == most


def test_a_megatron_order_megatron_core_refuses_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="does not end with pp"):
        plan(
            {"tp": 2, "cp": 2, "ep": 4, "pp": 2, "dp": 0},
            order="tp-cp-ep-pp-dp",
            world_size=64,
            ranks_per_node=4,
        )
    with pytest.raises(InvalidArgumentError, match="'vocab' is not one of Megatron's"):
        plan({"tp": 2, "vocab": 2}, convention="megatron", world_size=4, ranks_per_node=2)


def test_generic_megatron_names_say_how_ep_was_read() -> None:
    p = plan({"tp": 4, "ep": 8, "pp": 4, "dp": 0}, world_size=1152, ranks_per_node=4, nodes_per_domain=18)
    assert p.convention == "generic" and p.sizes["dp"] == 9
    assert any("ep is planned as an axis of its own" in w for w in p.warnings)


# ----------------------------------------------------------------------------- warnings and suggestions
def test_warnings_follow_the_level_the_cost_is_on() -> None:
    # tp=8 on 4-rank nodes of a 72-rank NVLink domain: priced on the domain's NVLink, so no warning
    p = plan({"tp": 8, "pp": 4, "dp": 0}, world_size=1152, ranks_per_node=4, nodes_per_domain=18)
    tp = p.best.axis("tp")
    assert tp.nodes == 2 and tp.tier == "domain" and not p.best.warnings
    q = plan({"pp": 4, "dp": 0, "tp": 8}, world_size=1024, ranks_per_node=4)
    worst = q.layouts[-1]
    assert worst.axis("tp").tier == "network"
    assert any("tp (tensor-parallel) groups leave the NVLink domain" in w for w in worst.warnings)


def test_a_refit_says_how_many_more_domains_it_needs() -> None:
    p = plan({"dp": 0, "ep": 2, "tp": 4}, world_size=48, ranks_per_node=4, nodes_per_domain=3)
    assert p.best.axis("ep").domains == 2
    refit = p.refit
    assert refit is not None and (refit.nodes_per_domain, refit.spare_nodes, refit.domains) == (2, 1, 6)
    assert (refit.more_domains, refit.more_nodes) == (
        2,
        6,
    )  # 12 nodes fill 4 domains now; 6 domains, 18 nodes
    assert (
        "this needs 6 domains, 2 more than the 4 the job fills now: 18 nodes (6 of them idle)" in refit.text
    )
    assert enumerated_spans(refit.topology, "ep", (8,)) == (1,)
    assert (
        plan({"dp": 0, "ep": 2, "tp": 4}, world_size=48, ranks_per_node=4, nodes_per_domain=2).refit is None
    )


def test_hierarchical_split_keeps_the_ranks_and_fits_the_node() -> None:
    p = plan({"pp": 2, "dp": 16, "tp": 4}, ranks_per_node=8, model=MODEL, candidates=["tp-dp-pp"])
    (split,) = [s for s in p.suggestions if s.level == "node"]
    assert (split.axis, split.outer, split.inner) == ("dp", 8, 2)
    assert split.inner_tier == "node" and split.outer_tier == "network"
    assert split.split_cost < split.flat_cost
    old, new = p.best.topology, split.topology
    a = sorted(map(sorted, old.groups("dp").tolist()))
    b = sorted(map(sorted, new.groups(["dp_outer", "dp_inner"]).tolist()))
    assert a == b
    assert enumerated_spans(new, "dp_inner", (8,)) == (1,)


# ----------------------------------------------------------------------------- groups
def brute_force_communicators(topo: ProcessTopology, kinds: list[list[str]]) -> int:
    most = 0
    for r in range(topo.world_size()):
        sets = {frozenset(topo.group_of(r, k).tolist()) for k in kinds}
        most = max(most, sum(1 for s in sets if len(s) > 1))
    return most


@settings(max_examples=30, deadline=None)
@given(sizes=shapes, extra=st.sampled_from([[], [("dp", "cp")], [("tp", "pp"), ("dp",)]]))
def test_communicators_and_new_group_calls(sizes: dict[str, int], extra: list[tuple[str, ...]]) -> None:
    extra = [g for g in extra if all(a in sizes for a in g)]
    p = plan(sizes, ranks_per_node=2, groups=extra, top=3)
    for lay in p.layouts:
        topo = lay.topology
        kinds = [[a] for a in lay.order] + [list(g) for g in extra]
        assert lay.communicators_per_rank == brute_force_communicators(topo, kinds)
        assert lay.communicator_memory_bytes == lay.communicators_per_rank * COMMUNICATOR_BYTES
        world = topo.world_size()
        for strategy in ("global", "local", "split"):
            for rank in {0, world - 1}:
                comm = RecordingComm(rank, world, backend="nccl", can_split=True)
                grid = ProcessGrid(topo, group_creation=strategy, comm=comm, verify=False, groups=extra)
                assert grid.group_creation_calls == lay.new_group_calls[strategy], (strategy, lay.order)


# ----------------------------------------------------------------------------- usable output
def test_the_best_layout_is_usable_as_is() -> None:
    p = plan({"pipe": 2, "data": 0, "model": 4}, world_size=32, ranks_per_node=4)
    best = p.best
    assert p.convention == "deepspeed" and best.megatron_order == "tp-dp-pp"
    sizes = {"tp": 4, "dp": 4, "pp": 2}
    assert (
        ProcessTopology.from_order(best.megatron_order, rename=MEGATRON_TO_DEEPSPEED, **sizes)
        == best.topology
    )
    assert best.mesh_shape == tuple(best.topology.dims) and best.mesh_dim_names == tuple(best.topology.axes)
    q = plan({"tp": 2, "xx": 2}, ranks_per_node=2, weights={"xx": 1.0})
    assert ProcessTopology.from_order(q.best.megatron_order, tp=2, xx=2) == q.best.topology


def test_a_small_plan_keeps_every_order_and_top_cuts_it() -> None:
    sizes = {"pp": 2, "dp": 2, "cp": 1, "tp": 2}
    assert len(plan(sizes, ranks_per_node=2).layouts) == 6
    assert [lay.order for lay in plan(sizes, ranks_per_node=2, top=2).layouts] == [
        lay.order for lay in plan(sizes, ranks_per_node=2).layouts[:2]
    ]
    assert all(lay.order[2] == "cp" for lay in plan(sizes, ranks_per_node=2).layouts)


def test_a_single_rank() -> None:
    p = plan({"dp": 1, "tp": 1}, ranks_per_node=8)
    assert len(p.layouts) == 1 and p.best.exposed == 0 and p.best.communicators_per_rank == 0
    assert p.best.axes == [] and p.best.new_group_calls == {"global": 0, "local": 0, "split": 0}
    assert p.warnings == ["1 ranks on nodes of 8 ranks leave 1 on the last node"]


def test_the_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "four")
    monkeypatch.setenv("WORLD_SIZE", "32")
    p = plan({"dp": 2, "tp": 4}, ranks_per_node=4)
    assert (p.ranks_per_node, p.world_size, p.sizes) == (4, 8, {"dp": 2, "tp": 4})
    with pytest.raises(InvalidArgumentError, match=r"free axes \['dp'\].*world size"):
        plan({"dp": 0, "tp": 4}, ranks_per_node=4)


def test_partial_nodes_and_domains_are_noted() -> None:
    p = plan({"dp": 3, "tp": 4}, ranks_per_node=8, nodes_per_domain=1)
    assert p.warnings == ["12 ranks on nodes of 8 ranks leave 4 on the last node"]
    q = plan({"dp": 0, "tp": 8}, world_size=16384, ranks_per_node=8, nodes_per_domain=9)
    assert q.warnings == ["2048 nodes on NVLink domains of 9 nodes leave 5 on the last domain"]
    assert q.domains == 228 and q.nodes == 2048


def test_a_preset_gives_the_counts_and_the_options_replace_them() -> None:
    p = plan({"tp": 0, "dp": 4}, world_size=288, machine="gb200-nvl72")
    assert (p.ranks_per_node, p.nodes_per_domain) == (4, 18) and p.machine == PRESETS["gb200-nvl72"]
    assert p.best.axis("tp").tier == "domain"  # 72 ranks of tp over one NVL72's NVLink
    q = plan({"tp": 0, "dp": 4}, world_size=256, machine="gb200-nvl72", nodes_per_domain=16)
    assert q.machine.ranks_per_domain == 64 and q.machine.levels[2:] == PRESETS["gb200-nvl72"].levels[2:]


def test_json_round_trip() -> None:
    for p in (
        plan({"pp": 2, "dp": 16, "tp": 4}, ranks_per_node=8, nodes_per_domain=2, model=MODEL),
        plan(
            {"tp": 2, "cp": 2, "ep": 2, "pp": 2, "dp": 0},
            convention="megatron",
            world_size=32,
            machine="hgx-h100",
            model={**MODEL, "expert_params": 3e9},
        ),
    ):
        d = p.to_dict()
        back = json.loads(json.dumps(d, allow_nan=False))
        assert back == d
        assert Plan.from_dict(back) == p
    assert d["schema"] == SCHEMA == "proctopo.plan/2"
    assert set(d) == {
        "schema",
        "world_size",
        "machine",
        "ranks_per_node",
        "nodes_per_domain",
        "nodes",
        "domains",
        "convention",
        "sizes",
        "given",
        "demands",
        "traffic",
        "units",
        "communicator_bytes",
        "search",
        "candidates",
        "layouts",
        "given_layout",
        "given_rank",
        "suggestions",
        "refit",
        "warnings",
    }
    axis = d["layouts"][0]["axes"][0]
    assert axis["spans"] == dict(zip(["node", "domain", "leaf", "spine"], axis["spans"].values()))
    assert axis["tier"] in {"node", "domain", "leaf", "spine", "core"}
    assert set(axis) >= {
        "name",
        "kind",
        "size",
        "stride",
        "group",
        "layout",
        "spans",
        "nodes",
        "domains",
        "tier",
        "bytes",
        "messages",
        "exposed_fraction",
        "time",
        "exposed",
        "share",
    }
    with pytest.raises(InvalidArgumentError, match="schema"):
        Plan.from_dict({**d, "schema": "other/9"})


def test_render_names_the_best_layout_and_its_units() -> None:
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
    text = p.render()
    assert "best: ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 2, 4])" in text
    assert "init_device_mesh(device, (2, 2, 4), mesh_dim_names=('pp', 'dp', 'tp'))" in text
    assert "new_group calls per rank  global 20  local 3  split 3" in text
    assert "times are seconds per step" in text and "exposed (the step waits for it)" in text
    assert "default weights (assumed" in text and "one measurement" in text
    assert "\x1b" not in text


@pytest.mark.parametrize(
    ("kwargs", "per_rank"),
    [
        ({"model": MODEL}, True),
        ({"model": MODEL, "weights": {"dp": 3}}, True),  # mixed
        ({}, False),  # default weights: the axes line says GB per rank per step
        ({"weights": {"pp": 1, "dp": 2, "tp": 4}}, False),
    ],
)
def test_the_traffic_column_says_per_rank_per_step_for_a_model(
    kwargs: dict[str, Any], per_rank: bool
) -> None:
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4, **kwargs)
    assert (p.traffic in ("model", "mixed")) == per_rank, p.traffic
    line = next(line for line in p.render().splitlines() if line.lstrip().startswith("axis "))
    assert ("  traffic per rank per step  " in line) == per_rank, line
    assert per_rank or "  traffic  " in line, line


@pytest.mark.parametrize(("layers", "pp"), [(8, 8), (30, 16), (126, 16), (1, 1)])
def test_any_count_of_layers_from_one_per_stage_is_planned(layers: int, pp: int) -> None:
    # megatron-core's uneven split takes any count of one layer or more per stage
    model = {**MODEL, "layers": layers}
    for convention in ("generic", "megatron"):
        p = plan({"tp": 2, "pp": pp, "dp": 2}, convention=convention, ranks_per_node=4, model=model)
        assert p.traffic == "model" and p.best.exposed > 0


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"sizes": {"tp": 8, "dp": -2}}, InvalidTopologyError, "axis 'dp' has size -2"),
        ({"sizes": {"tp": -8, "dp": 0}, "world_size": 64}, InvalidArgumentError, r"entry 0 is -8.*tp=-8"),
        (
            {"sizes": {"tp": 3, "dp": 0}, "world_size": 64},
            InvalidArgumentError,
            "multiply to 3, which does not divide 64",
        ),
        (
            {"sizes": {"tp": 8, "dp": 4}, "world_size": 64},
            GridSizeError,
            "tp \\* dp = 8 \\* 4 = 32, but the world size is 64",
        ),
        ({"sizes": {"tp": 8, "dp": 0}}, InvalidArgumentError, r"free axes \['dp'\].*world size"),
        ({"sizes": {"tp": 2, "dp": 2}, "weights": {"ep": 1.0}}, UnknownAxisError, "unknown axis 'ep'"),
        (
            {"sizes": {"tp": 2, "dp": 2}, "weights": {"dp": -1.0}},
            InvalidArgumentError,
            "weight of axis 'dp'.*-1.0",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "ranks_per_node": 0},
            InvalidArgumentError,
            "ranks_per_node must be at least 1, got 0",
        ),
        ({"sizes": {"tp": 2, "dp": 2}, "ranks_per_node": -3}, InvalidArgumentError, "got -3"),
        (
            {"sizes": {"tp": 2, "dp": 2}, "nodes_per_domain": 0},
            InvalidArgumentError,
            "nodes_per_domain must be at least 1, got 0",
        ),
        ({"sizes": {"tp": 2, "foo": 2}}, InvalidArgumentError, "axis 'foo' is of no kind.*weights="),
        (
            {"sizes": {"tp": 2, "dp": 2}, "tiers": {"rack": (1e9, 0)}},
            InvalidArgumentError,
            "machine 'default' has no level 'rack'; its levels are node, domain, network",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "tiers": {"network": {"speed": 1}}},
            InvalidArgumentError,
            "unknown field 'speed'",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "machine": "dgx-a100"},
            InvalidArgumentError,
            "unknown machine 'dgx-a100'",
        ),
        ({"sizes": {"tp": 2, "dp": 2}, "model": {"params": 1e9}}, InvalidArgumentError, "model needs hidden"),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "heads": 8}},
            InvalidArgumentError,
            "no field 'heads'",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "hidden_size": 8}},
            InvalidArgumentError,
            "model hidden is given twice",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "layers": 0}},
            InvalidArgumentError,
            "layers must be positive, got 0",
        ),
        (
            {"sizes": {"pp": 8, "tp": 2}, "model": {**MODEL, "layers": 7}},
            InvalidArgumentError,
            "model layers 7 is fewer than the 8 pipeline stages: each stage holds one layer at least",
        ),
        (
            {"sizes": {"tp": 2, "pp": 8, "dp": 1}, "convention": "megatron", "model": {**MODEL, "layers": 4}},
            InvalidArgumentError,
            "model layers 4 is fewer than the 8 pipeline stages",
        ),
        (
            {"sizes": {"pipe": 4, "pp": 4}, "convention": "generic", "model": {**MODEL, "layers": 12}},
            InvalidArgumentError,
            "model layers 12 is fewer than the 16 pipeline stages",  # every pipe-kind axis counts
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "expert_params": 8e9}},
            InvalidArgumentError,
            r"expert_params must be in \[0, params\], got 8000000000.0",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "candidates": ["tp"]},
            InvalidArgumentError,
            r"leaves out the axes \['dp'\]",
        ),
        (
            {"sizes": {"tp": 2, "xx": 2}, "weights": {"xx": 1}, "candidates": ["tp-yy"]},
            UnknownAxisError,
            "'yy'",
        ),
        ({"sizes": {"tp": 2, "dp": 2}, "groups": [("tp", "zz")]}, UnknownAxisError, "unknown axis 'zz'"),
        ({"sizes": {"tp": 2, "dp": 2}, "top": 0}, InvalidArgumentError, "top must be at least 1, got 0"),
        ({"sizes": {"tp": 2, "dp": 2}, "top": 10**6}, InvalidArgumentError, "top must be at most 1000"),
        (
            {"sizes": {f"x{i}": 2 for i in range(17)}, "weights": {f"x{i}": 1 for i in range(17)}},
            InvalidArgumentError,
            "17 axes of size > 1 are too many",
        ),
        ({"sizes": {"xx": 2}, "order": "tp-dp"}, InvalidArgumentError, "axis 'xx' is not one of Megatron's"),
        # Megatron's sizes, in the core's words: each size, and the dense grid against the world size.
        (
            {"sizes": {"tp": 0}, "order": "tp-dp", "world_size": 8},
            InvalidTopologyError,
            "^axis 'tp' has size 0;",
        ),
        ({"sizes": {"tp": 2, "dp": -2}, "order": "tp-dp"}, InvalidTopologyError, "^axis 'dp' has size -2;"),
        (
            {"sizes": {"tp": 2, "dp": 4}, "order": "tp-dp", "world_size": 16},
            GridSizeError,
            r"^pp \* dp \* cp \* tp = 1 \* 4 \* 1 \* 2 = 8, but the world size is 16$",
        ),
        (
            {"sizes": {"tp": 3}, "order": "tp-dp", "world_size": 8},
            InvalidArgumentError,
            r"^cannot derive dp from world size 8 and tp \* cp \* pp = 3 \* 1 \* 1 = 3: ",
        ),
        (
            {"sizes": {"tp": 2, "ep": 0}, "order": "tp-ep-dp", "world_size": 8},
            InvalidTopologyError,
            "^axis 'ep' has size 0;",
        ),
        (
            {"sizes": {"tp": 2, "etp": -1}, "order": "tp-dp", "world_size": 8},
            InvalidTopologyError,
            "^axis 'etp' has size -1;",
        ),
        ({"sizes": {"tp": 2}, "convention": "jax"}, InvalidArgumentError, "unknown convention 'jax'"),
        ({}, InvalidArgumentError, "needs the axis sizes"),
    ],
)
def test_bad_input_gives_a_clear_error(kwargs: dict[str, Any], error: type[Exception], text: str) -> None:
    kwargs.setdefault("ranks_per_node", 2)
    with pytest.raises(error, match=text):
        plan(**kwargs)


def test_megatron_candidates_are_read_by_the_cores_order_parser() -> None:
    # Written in capitals, as megatron-core reads them too (it lowers an order's case).
    kw: dict[str, Any] = {"order": "tp-dp-pp", "world_size": 16, "ranks_per_node": 4}
    sizes = {"tp": 2, "pp": 2}
    lower = plan(sizes, **kw, candidates=["tp-dp-pp", "dp-tp-pp"])
    upper = plan(sizes, **kw, candidates=["TP-DP-PP", "Dp-Tp-pP"])
    assert [lay.megatron_order for lay in upper.layouts] == [lay.megatron_order for lay in lower.layouts]
    assert upper.to_dict()["layouts"] == lower.to_dict()["layouts"]
    with pytest.raises(InvalidArgumentError, match="refuses the candidate order 'tp-tp-pp'"):
        plan(sizes, **kw, candidates=["tp-tp-pp"])


def test_ranks_per_node_or_a_machine_is_needed() -> None:
    with pytest.raises(InvalidArgumentError, match="plan needs ranks_per_node, or a machine"):
        plan({"tp": 2})


def test_sixteen_thousand_ranks() -> None:
    p = plan(
        {"tp": 8, "cp": 2, "ep": 8, "dp": 0, "pp": 8},
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=9,
        model={**MODEL, "params": 1.2e12},
    )
    assert p.sizes["dp"] == 16 and len(p.layouts) == 120
    best = p.best
    assert best.topology.world_size() == 16384
    assert best.axis("tp").nodes == 1
    assert best.new_group_calls["local"] == 5
    assert best.new_group_calls["global"] == sum(16384 // n for n in (8, 2, 8, 16, 8))
    assert math.isfinite(best.exposed)


def test_proctopo_plan_is_the_planners_function() -> None:
    import types

    import proctopo
    from proctopo import planner

    assert proctopo.plan is planner.plan is plan and isinstance(proctopo.plan, types.FunctionType)
    assert type(planner) is types.ModuleType  # a plain package, not a callable module
    called = proctopo.plan({"tp": 2, "dp": 2}, ranks_per_node=2)
    assert isinstance(called, planner.Plan) and called == plan({"tp": 2, "dp": 2}, ranks_per_node=2)
    modules = {"api", "inputs", "launchers", "layouts", "model", "render", "results", "search", "suggest"}
    public = {name for name in vars(planner) if not name.startswith("_")} - modules - {"annotations"}
    assert set(planner.__all__) == public


def test_default_weights_and_kinds() -> None:
    assert kind_of("dp_shard") == "fsdp" and kind_of("fsdp") == "fsdp" and kind_of("dp_replicate") == "data"
    assert set(DEFAULT_WEIGHTS) == set(EXPOSED)


def test_the_library_refuses_more_listed_axis_entries_than_the_bound() -> None:
    """plan() keeps to the command line's bound: layouts kept x axes named (each layout lists every axis)."""
    import proctopo
    from proctopo.errors import InvalidArgumentError
    from proctopo.planner.inputs import MAX_LISTED_ENTRIES

    sizes = {f"x{i}": 1 for i in range(2000)}
    sizes.update(tp=2, cp=2, ep=2, pp=2, dp=2, sequence=2)
    with pytest.raises(InvalidArgumentError, match=r"720 layouts \(top\) x 2006 axes = 1444320 axis entries"):
        proctopo.plan(sizes, ranks_per_node=4, top=1000)
    assert 720 * 2006 > MAX_LISTED_ENTRIES
    assert len(proctopo.plan(sizes, ranks_per_node=4, top=100).layouts) == 100
