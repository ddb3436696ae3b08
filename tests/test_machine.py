"""proctopo.machine: nodes, domains, network levels, partial nodes and spans, against plain enumeration.

The oracles list every rank: a node is the set of ranks mapped to it, a group's span
is the number of distinct nodes (domains, units of a level) among the members of a row
of ``topology.groups(axes)``, the maximum (or the mean) over the rows.
"""

from __future__ import annotations

import itertools
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import GridSizeError, InvalidArgumentError, ProcessTopology, RankOutOfRangeError
from proctopo.machine import (
    ENUMERATION_LIMIT,
    PRESETS,
    TIER_NAMES,
    BlockPlacement,
    Level,
    ListedPlacement,
    Machine,
    MeasuredPlacement,
    Placement,
    Span,
    _floor_sum,
    _floor_sums,
    blocks_spanned,
    machine,
    mean_blocks_spanned,
    place,
    seconds_text,
)


# ----------------------------------------------------------------------------- oracles
def listed_span(node_of: list[int], npd: int, groups: np.ndarray) -> tuple[int, int]:
    """Most distinct nodes and domains among the members of one row of ``groups``."""
    rows = groups.tolist()
    nodes = max(len({node_of[r] for r in row}) for row in rows)
    domains = max(len({node_of[r] // npd for r in row}) for row in rows)
    return nodes, domains


def subsets(names: list[str]) -> list[list[str]]:
    return [list(c) for k in range(1, len(names) + 1) for c in itertools.combinations(names, k)]


topologies = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(
    lambda dims: ProcessTopology([f"a{i}" for i in range(len(dims))], dims)
)


# ----------------------------------------------------------------------------- closed forms
@given(n=st.integers(0, 40), m=st.integers(1, 50), a=st.integers(0, 200), b=st.integers(0, 200))
def test_floor_sum_is_the_sum(n: int, m: int, a: int, b: int) -> None:
    assert _floor_sum(n, m, a, b) == sum((a * i + b) // m for i in range(n))


@given(n=st.integers(-1, 40), a=st.integers(0, 200), b=st.integers(0, 200), c=st.integers(1, 50))
def test_weighted_floor_sums_are_the_sums(n: int, a: int, b: int, c: int) -> None:
    qs = [(a * i + b) // c for i in range(n + 1)]
    assert _floor_sums(n, a, b, c) == (sum(qs), sum(i * q for i, q in enumerate(qs)), sum(q * q for q in qs))


@settings(max_examples=300, deadline=None)
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data())
def test_blocks_spanned_most_and_mean_equal_enumeration(dims: list[int], data: st.DataObject) -> None:
    topo = ProcessTopology([f"a{i}" for i in range(len(dims))], dims)
    world = topo.world_size()
    block = data.draw(st.integers(1, world + 3), label="block")
    for axis, stride, size in zip(topo.axes, topo.strides, dims):
        spans = [len(set(row)) for row in (topo.groups(axis) // block).tolist()]
        assert blocks_spanned(stride, size, world, block) == max(spans)
        assert mean_blocks_spanned(stride, size, world, block) == Fraction(sum(spans), len(spans))


# ----------------------------------------------------------------------------- block placement
@settings(max_examples=200, deadline=None)
@given(world=st.integers(1, 80), rpn=st.integers(1, 20), npd=st.integers(1, 5), data=st.data())
def test_block_placement_is_the_listed_one(world: int, rpn: int, npd: int, data: st.DataObject) -> None:
    block = BlockPlacement(world, rpn, npd)
    node_of = [r // rpn for r in range(world)]
    listed = ListedPlacement(node_of, npd)
    assert block.is_block and listed.is_block
    nodes = sorted(set(node_of))
    assert block.nodes == listed.nodes == len(nodes)
    assert block.domains == listed.domains == len({n // npd for n in nodes})
    for r in range(world):
        members = [q for q in range(world) if node_of[q] == node_of[r]]
        assert block.node_of(r) == listed.node_of(r) == node_of[r]
        assert block.local_rank(r) == listed.local_rank(r) == members.index(r)
        assert block.domain_of(r) == listed.domain_of(r) == node_of[r] // npd
    for n in nodes:
        assert (
            list(block.ranks_of_node(n))
            == listed.ranks_of_node(n)
            == [r for r in range(world) if node_of[r] == n]
        )
        assert block.domain_of_node(n) == listed.domain_of_node(n) == n // npd
    for d in range(block.domains):
        assert (
            list(block.nodes_of_domain(d))
            == list(listed.nodes_of_domain(d))
            == [n for n in nodes if n // npd == d]
        )
    assert (block.partial_node() is None) == (world % rpn == 0)
    # A listed placement knows a node's capacity only from its fullest node.
    assert listed.partial_node() == (block.partial_node() if world >= rpn else None)
    assert block.partial_domain() == listed.partial_domain()
    assert (block.partial_domain() is None) == (len(nodes) % npd == 0)
    chosen = sorted(data.draw(st.sets(st.integers(0, world - 1)), label="ranks"))
    assert block.count_nodes(chosen) == listed.count_nodes(chosen) == len({node_of[r] for r in chosen})
    lo = data.draw(st.integers(0, world), label="lo")
    hi = data.draw(st.integers(lo, world), label="hi")
    assert block.count_nodes(range(lo, hi)) == len({node_of[r] for r in range(lo, hi)})


@settings(max_examples=150, deadline=None)
@given(topo=topologies, data=st.data())
def test_block_spans_of_every_set_of_axes_equal_enumeration(
    topo: ProcessTopology, data: st.DataObject
) -> None:
    world = topo.world_size()
    rpn = data.draw(st.integers(1, world + 2), label="ranks_per_node")
    npd = data.draw(st.integers(1, 4), label="nodes_per_domain")
    block = BlockPlacement(world, rpn, npd)
    node_of = [r // rpn for r in range(world)]
    for axes in subsets(topo.axes):
        want = listed_span(node_of, npd, topo.groups(axes))
        assert block.span_of(topo, axes) == want, axes
    for axis, stride, size in zip(topo.axes, topo.strides, topo.dims):
        assert block.span(stride, size) == block.span_of(topo, axis) == block.span_of(topo, [axis])


@settings(max_examples=150, deadline=None)
@given(topo=topologies, data=st.data())
def test_listed_spans_equal_enumeration(topo: ProcessTopology, data: st.DataObject) -> None:
    world = topo.world_size()
    nodes = data.draw(st.integers(1, world), label="nodes")
    # every node holds a rank, the rest go anywhere: cyclic, uneven or shuffled placements
    rest = data.draw(st.lists(st.integers(0, nodes - 1), min_size=world - nodes, max_size=world - nodes))
    node_of = data.draw(st.permutations(list(range(nodes)) + rest), label="node_of")
    npd = data.draw(st.integers(1, 3), label="nodes_per_domain")
    listed = ListedPlacement(node_of, npd)
    assert listed.nodes == nodes and listed.world_size == world
    for n in range(nodes):
        assert listed.ranks_of_node(n) == [r for r in range(world) if node_of[r] == n]
    for axes in subsets(topo.axes):
        assert listed.span_of(topo, axes) == listed_span(node_of, npd, topo.groups(axes)), axes
    for axis, stride, size in zip(topo.axes, topo.strides, topo.dims):
        assert listed.span(stride, size) == listed.span_of(topo, axis)
    is_block = node_of == [r // len(listed.ranks_of_node(0)) for r in range(world)]
    assert listed.is_block == is_block


def test_spans_name_their_tier() -> None:
    assert [Span(1, 1).tier, Span(3, 1).tier, Span(3, 2).tier] == list(TIER_NAMES)
    m = BlockPlacement(72 * 4, ranks_per_node=8, nodes_per_domain=9)
    assert m.ranks_per_domain == 72
    assert m.span(1, 8) == (1, 1) and m.span(1, 8).tier == "node"
    assert m.span(8, 9) == (9, 1) and m.span(8, 9).tier == "domain"
    assert m.span(1, 16) == (2, 2) and m.span(1, 16).tier == "network"
    assert [lv.name for lv in Machine.default(8, 9).levels] == list(TIER_NAMES)


# ----------------------------------------------------------------------------- machines of any depth
@st.composite
def level_sizes(draw: st.DrawFn) -> list[int]:
    return [draw(st.integers(1, 5)) for _ in range(draw(st.integers(2, 5)))]


def machine_of(sizes: list[int]) -> Machine:
    levels = [Level(f"l{i}", size, 1e9 * (i + 1), 1e-6) for i, size in enumerate(sizes)]
    return Machine("drawn", (*levels, Level("top", None, 1e9, 1e-5)))


@settings(max_examples=200, deadline=None)
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=4), sizes=level_sizes())
def test_reach_and_crossing_on_every_level_equal_enumeration(dims: list[int], sizes: list[int]) -> None:
    topo = ProcessTopology([f"a{i}" for i in range(len(dims))], dims)
    world = topo.world_size()
    m = machine_of(sizes)
    blocks = list(itertools.accumulate(sizes, lambda a, b: a * b))
    assert m.blocks == tuple(blocks)
    for axes in subsets(topo.axes):
        rows = topo.groups(axes).tolist()
        spans = tuple(max(len({r // b for r in row}) for row in rows) for b in blocks)
        crossing = tuple(
            Fraction(sum(1 for row in rows if len({r // b for r in row}) > 1), len(rows)) for b in blocks
        )
        reach = m.reach_of(topo, axes)
        assert reach.spans == spans, axes
        assert reach.tier == next((i for i, n in enumerate(spans) if n == 1), len(spans))
        assert m.crossing_of(topo, axes) == crossing, axes
        if len(axes) == 1:
            i = topo.axes.index(axes[0])
            assert m.reach(topo.strides[i], dims[i], world) == reach
            both = m.reach_and_crossing(topo.strides[i], dims[i], world)
            assert both == (reach, tuple(map(float, crossing)))


def test_presets_are_documented_machines() -> None:
    assert set(PRESETS) >= {"hgx-h100", "gb200-nvl72"}
    for name, m in PRESETS.items():
        assert m.name == name and m.source and all(lv.note for lv in m.levels)
        assert m.levels[0].name == "node" and m.levels[1].name == "domain" and m.levels[-1].size is None
        assert machine(name) is m and Machine.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    hgx, nvl = PRESETS["hgx-h100"], PRESETS["gb200-nvl72"]
    assert (hgx.ranks_per_node, hgx.nodes_per_domain, hgx.blocks[2]) == (8, 1, 256)  # rail groups of 32 nodes
    assert hgx.levels[0].bandwidth == 450e9 and hgx.levels[2].bandwidth == 50e9  # NVLink 4; NDR 400 Gb/s
    assert (nvl.ranks_per_node, nvl.ranks_per_domain, nvl.levels[1].bandwidth) == (4, 72, 900e9)
    roce = PRESETS["meta-h100-roce"]
    assert roce.blocks[2:] == (16, 3072) and roce.levels[-1].oversubscription == 7
    assert roce.levels[-1].effective_bandwidth == 50e9 / 7


def test_a_machine_file(tmp_path: Path) -> None:
    doc = {
        "name": "lab",
        "source": "our cluster",
        "levels": [
            {"name": "node", "size": 4, "bandwidth": 300e9, "latency": 3e-6},
            {"name": "domain", "size": 1, "bandwidth": 300e9, "latency": 3e-6},
            {"name": "leaf", "size": 16, "bandwidth": 25e9, "latency": 8e-6},
            {"name": "spine", "bandwidth": 25e9, "latency": 1e-5, "oversubscription": 2},
        ],
    }
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(doc))
    m = machine(str(path))
    assert m.name == "lab" and m.blocks == (4, 4, 64) and m.levels[3].effective_bandwidth == 12.5e9
    assert machine(m.to_dict()) == m
    if sys.version_info >= (3, 11):
        toml = tmp_path / "lab.toml"
        toml.write_text(
            'name = "lab"\nsource = "our cluster"\n'
            + "".join(
                "[[levels]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in lv.items())
                for lv in doc["levels"]
            )
        )
        assert machine(str(toml)) == m


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({"levels": []}, "at least three levels"),
        (
            {"levels": [{"name": n, "bandwidth": 1e9, "latency": 0} for n in ("node", "domain", "network")]},
            "level 'node' needs a size: only the top level \\('network'\\) has none",
        ),
        (
            {"levels": [{"name": n, "size": 2, "bandwidth": 1e9, "latency": 0} for n in ("a", "b", "c")]},
            "the top level 'c' holds every rank, so it has no size",
        ),
        (
            {
                "levels": [{"name": "a", "size": 2, "bandwidth": 1e9, "latency": 0}] * 2
                + [{"name": "t", "bandwidth": 1e9, "latency": 0}]
            },
            "level name 'a' is used twice",
        ),
        (
            {"levels": [{"name": "a", "size": 0, "bandwidth": 1e9, "latency": 0}]},
            "level 'a': size must be at least 1",
        ),
        (
            {"levels": [{"name": "a", "bandwidth": float("inf"), "latency": 0}]},
            "bandwidth must be a finite number above 0",
        ),
        (
            {"levels": [{"name": "a", "bandwidth": 1e9, "latency": -1}]},
            "latency must be a finite number at least 0",
        ),
        (
            {"levels": [{"name": "a", "bandwidth": 1e9, "latency": 0, "oversubscription": 0.5}]},
            "oversubscription must be",
        ),
        ({"levels": [{"name": "a", "bandwidth": 1e9, "latency": 0, "speed": 1}]}, "unknown field 'speed'"),
        ({"levels": [{"name": "a", "latency": 0}]}, "level 'a' needs bandwidth"),
        ({"levels": [{"name": "", "bandwidth": 1, "latency": 0}]}, "a level needs a name"),
        ({"nodes": 3}, "unknown field 'nodes'"),
        ({"levels": "node"}, "a machine needs its levels"),
    ],
)
def test_bad_machines_give_a_clear_error(doc: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=text):
        machine(doc)


def test_bad_machine_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgumentError, match=r"machine file .*bad\.json' is not JSON"):
        machine(str(bad))
    nan = tmp_path / "nan.json"
    nan.write_text('{"levels": [{"name": "n", "size": 1, "bandwidth": NaN, "latency": 0}]}')
    with pytest.raises(InvalidArgumentError, match="NaN is not a number a machine can have"):
        machine(str(nan))
    with pytest.raises(InvalidArgumentError, match=r"unknown machine 'nowhere\.json': not a preset"):
        machine("nowhere.json")


def test_closed_forms_answer_any_world() -> None:
    m = BlockPlacement(2**62, ranks_per_node=8, nodes_per_domain=9)
    assert (m.nodes, m.domains) == (2**59, -(-(2**59) // 9))
    assert m.node_of(2**62 - 1) == 2**59 - 1 and m.local_rank(2**62 - 1) == 7
    assert m.ranks_of_node(2**59 - 1) == range(2**62 - 8, 2**62)
    assert m.span(1, 16) == (2, 2) and m.span(2**31, 2**31) == (2**31, 2**31)
    topo = ProcessTopology(["pipe", "data", "model"], [2**20, 2**40, 4])
    assert m.span_of(topo, ["data", "model"]) == m.span(1, 2**42)
    assert m.count_nodes(range(2**62)) == 2**59


def test_partial_nodes_and_domains_in_words() -> None:
    m = BlockPlacement(10, 4, nodes_per_domain=2)
    assert m.partial_node() == "10 ranks on nodes of 4 ranks leave 2 on the last node"
    assert m.partial_domain() == "3 nodes on NVLink domains of 2 nodes leave 1 on the last domain"
    with pytest.raises(
        InvalidArgumentError, match=r"^10 ranks on nodes of 4 ranks leave 2 on the last node$"
    ):
        m.require_full_nodes()
    full = BlockPlacement(12, 4, nodes_per_domain=3)
    assert full.partial_node() is None and full.partial_domain() is None
    full.require_full_nodes()
    assert BlockPlacement(1, 8).partial_node() == "1 ranks on nodes of 8 ranks leave 1 on the last node"
    uneven = ListedPlacement([0, 0, 0, 1, 2, 2, 2])
    assert uneven.partial_node() == "7 ranks on nodes of 3 ranks leave 1 on node 1"
    with pytest.raises(InvalidArgumentError, match="leave 1 on node 1"):
        uneven.require_full_nodes()
    assert ListedPlacement([0, 1, 0, 1]).partial_node() is None


def test_hosts_are_numbered_in_order_of_first_appearance() -> None:
    m = ListedPlacement.from_hosts(["n7", "n3", "n7", "n3", "n9"], nodes_per_domain=2)
    assert [m.node_of(r) for r in range(5)] == [0, 1, 0, 1, 2]
    assert (m.nodes, m.domains, m.domain_of(4)) == (3, 2, 1)
    assert m.ranks_of_node(0) == [0, 2] and m.local_rank(2) == 1
    assert repr(m) == "ListedPlacement([0, 1, 0, 1, 2], nodes_per_domain=2)"
    assert repr(BlockPlacement(8, 4)) == "BlockPlacement(world_size=8, ranks_per_node=4, nodes_per_domain=1)"


def test_a_placement_is_what_its_users_ask() -> None:
    # Users hold a Placement; a measured one answers the same questions as the block one.
    for m in (BlockPlacement(8, 4), ListedPlacement.from_hosts(["a"] * 4 + ["b"] * 4)):
        assert isinstance(m, Placement)
        assert m.describe().startswith("8 ranks on ")
        assert m.span_of(ProcessTopology(["data", "model"], [2, 4]), "data") == (2, 2)


# ----------------------------------------------------------------------------- distributions
@pytest.mark.parametrize(
    ("counts", "distribution", "plane", "expected"),
    [
        ([2, 2, 2], "block", None, [0, 0, 1, 1, 2, 2]),
        ([2, 2, 2], "cyclic", None, [0, 1, 2, 0, 1, 2]),
        # an uneven node: cyclic skips a node once it is full
        ([2, 2, 1], "cyclic", None, [0, 1, 2, 0, 1]),
        ([3, 1, 2], "cyclic", None, [0, 1, 2, 0, 2, 0]),
        ([1, 3], "block", None, [0, 1, 1, 1]),
        # plane=2: two ranks to each node in turn, fewer where fewer are left
        ([4, 3, 1], "plane", 2, [0, 0, 1, 1, 2, 0, 0, 1]),
        ([4, 4], "plane", 3, [0, 0, 0, 1, 1, 1, 0, 1]),
        ([2, 2], "plane", 1, [0, 1, 0, 1]),
        ([5], "cyclic", None, [0, 0, 0, 0, 0]),
    ],
)
def test_place_by_hand(counts: list[int], distribution: str, plane: int | None, expected: list[int]) -> None:
    assert place(counts, distribution, plane) == expected


def _rounds(counts: list[int], chunk: int) -> list[int]:
    """The distribution as a launcher walks it: visit the nodes in turn, give each up to ``chunk``."""
    left = list(counts)
    out: list[int] = []
    while any(left):
        for node, n in enumerate(left):
            take = min(chunk, n)
            out += [node] * take
            left[node] -= take
    return out


@given(st.lists(st.integers(1, 9), min_size=1, max_size=7), st.integers(1, 10))
def test_place_walks_the_rounds(counts: list[int], chunk: int) -> None:
    assert place(counts, "plane", chunk) == _rounds(counts, chunk)
    assert place(counts, "cyclic") == _rounds(counts, 1)
    assert place(counts, "block") == _rounds(counts, max(counts))
    for name in ("plane", "cyclic", "block"):  # every node holds exactly its count
        ids = place(counts, name, chunk if name == "plane" else None)
        assert [ids.count(i) for i in range(len(counts))] == counts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([],), "a placement needs at least one node"),
        (([2, 0],), "node 1 is given 0 ranks; every node holds at least 1"),
        (([2], "spread"), "unknown distribution 'spread'; proctopo places ranks by block, cyclic, plane"),
        (([2], "plane"), "the plane distribution needs a plane size of at least 1, got None"),
        (([2], "plane", 0), "the plane distribution needs a plane size of at least 1, got 0"),
        (([2], "cyclic", 2), "a plane size is for the plane distribution, not 'cyclic'"),
    ],
)
def test_place_refuses(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        place(*args)
    assert str(info.value) == message


@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=6),
    st.sampled_from(["block", "cyclic", "plane"]),
    st.integers(1, 4),
)
def test_a_placement_from_counts_is_the_one_place_deals(counts: list[int], name: str, chunk: int) -> None:
    plane = chunk if name == "plane" else None
    ids = place(counts, name, plane)
    m = Placement.from_counts(counts, name, plane, nodes_per_domain=2)
    assert [m.node_of(r) for r in range(len(ids))] == ids and m.nodes_per_domain == 2
    # The closed form exactly when the ranks fill the nodes in order, the same number on each but the last.
    in_order = ids == sorted(ids) and all(n == counts[0] for n in counts[:-1]) and counts[-1] <= counts[0]
    assert isinstance(m, BlockPlacement) == in_order


# ----------------------------------------------------------------------------- questions of listed ranks
placements = st.one_of(
    st.builds(BlockPlacement, st.integers(1, 40), st.integers(1, 9), st.integers(1, 4)),
    st.builds(
        lambda counts, npd: Placement.from_counts(counts, "cyclic", nodes_per_domain=npd),
        st.lists(st.integers(1, 5), min_size=1, max_size=8),
        st.integers(1, 4),
    ),
    st.builds(
        lambda hosts, domains: MeasuredPlacement(hosts, domains),
        st.lists(st.sampled_from("abcd"), min_size=1, max_size=12),
        st.none(),
    ),
    st.lists(st.sampled_from("abcd"), min_size=1, max_size=12).map(
        lambda hosts: MeasuredPlacement(hosts, ["x" if h in "ab" else "y" for h in hosts])
    ),
)


@settings(max_examples=200, deadline=None)
@given(m=placements, npd=st.integers(1, 4))
def test_domain_ids_short_nodes_and_new_domains_equal_enumeration(m: Placement, npd: int) -> None:
    ranks = np.arange(m.world_size)
    assert m.domain_ids(ranks).tolist() == [m.domain_of(r) for r in range(m.world_size)]
    assert m.domain_ids(ranks.reshape(1, -1)).shape == (1, m.world_size)
    sizes = [len(m.ranks_of_node(n)) for n in range(m.nodes)]
    full = m.ranks_per_node if isinstance(m, BlockPlacement) else max(sizes)
    short = [n for n, k in enumerate(sizes) if k == min(sizes) and k < full]
    assert m.short_node() == (short[-1] if short else None)
    assert (m.short_node() is None) == (m.partial_node() is None)
    moved = m.in_domains(npd)
    assert moved.nodes_per_domain == npd and isinstance(moved, BlockPlacement) == isinstance(
        m, BlockPlacement
    )
    assert [moved.node_of(r) for r in range(m.world_size)] == [m.node_of(r) for r in range(m.world_size)]
    assert [moved.domain_of(r) for r in range(m.world_size)] == [
        m.node_of(r) // npd for r in range(m.world_size)
    ]


@settings(max_examples=200, deadline=None)
@given(m=placements, data=st.data())
def test_the_widest_group_is_the_first_spanning_the_most(m: Placement, data: st.DataObject) -> None:
    size = data.draw(st.sampled_from([d for d in range(1, m.world_size + 1) if m.world_size % d == 0]))
    groups = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(m.world_size).reshape(-1, size)
    for level, of in (("node", m.node_of), ("domain", m.domain_of)):
        spans = [len({of(int(r)) for r in row}) for row in groups]
        expected = spans.index(max(spans)) if max(spans) > 1 else None
        assert m.widest(groups, level) == expected
    with pytest.raises(InvalidArgumentError, match=r"^a group spans nodes or domains, not 'rack'$"):
        m.widest(groups, "rack")


@st.composite
def lattices(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], int, int, int]:
    """A slice of a row-major topology as runs (size, stride), its base, a window of it and a node size."""
    dims = draw(st.lists(st.integers(1, 7), min_size=1, max_size=5))
    strides = [int(np.prod(dims[i + 1 :])) for i in range(len(dims))]
    fixed = [draw(st.booleans()) for _ in dims]
    base = sum(draw(st.integers(0, d - 1)) * st_ for d, st_, f in zip(dims, strides, fixed) if f)
    runs = [(d, st_) for d, st_, f in zip(dims, strides, fixed) if not f]
    points = int(np.prod([d for d, _ in runs]))
    lo = draw(st.integers(0, points))
    hi = draw(st.integers(lo, points))
    return base, runs, lo, hi, draw(st.integers(1, 2 * int(np.prod(dims)) + 3))


@settings(max_examples=300, deadline=None)
@given(lattices())
def test_the_nodes_of_a_lattice_are_counted_without_listing_it(
    case: tuple[int, list[tuple[int, int]], int, int, int],
) -> None:
    base, runs, lo, hi, rpn = case
    ranks = sorted(
        base + sum(c * s for c, (_, s) in zip(cs, runs))
        for cs in itertools.product(*(range(d) for d, _ in runs))
    )
    m = BlockPlacement(max(ranks) + 1, rpn)
    assert m.count_nodes_of_runs(base, runs, lo, hi) == len({r // rpn for r in ranks[lo:hi]})
    assert m.count_nodes_of_runs(base, runs) == m.count_nodes(ranks)


def test_counting_the_nodes_of_a_lattice_keeps_to_its_budget() -> None:
    # Nodes of 100,003 ranks against strides whose remainders cycle through all of them.
    m = BlockPlacement(1048576 * 3 * 100000, 100003)
    runs = [(1048576, 300000), (100000, 1)]
    assert m.count_nodes_of_runs(100000, runs, budget=1 << 16) is None
    assert m.count_nodes_of_runs(100000, runs, 0, 3, budget=1 << 16) == 1
    small = BlockPlacement(4 * 3 * 5, 7)
    few = [(4, 15), (5, 1)]
    ranks = [5 + 15 * a + b for a in range(4) for b in range(5)]
    assert small.count_nodes_of_runs(5, few, budget=1 << 16) == len({r // 7 for r in ranks})


def test_one_time_text() -> None:
    from proctopo.planner import render

    assert render.seconds_text is seconds_text
    assert [seconds_text(t) for t in (0, 2.5e-6, 0.0123, 3.0)] == ["0 s", "2.5 us", "12.3 ms", "3 s"]
    assert "3.4 us" in machine("hgx-h100").describe()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: BlockPlacement(0, 8), InvalidArgumentError, "world_size must be at least 1, got 0"),
        (lambda: BlockPlacement(8, 0), InvalidArgumentError, "ranks_per_node must be at least 1, got 0"),
        (lambda: BlockPlacement(8, 4, 0), InvalidArgumentError, "nodes_per_domain must be at least 1, got 0"),
        (lambda: BlockPlacement(8, True), TypeError, "ranks_per_node must be an integer, got True"),
        (lambda: BlockPlacement(8, 2.0), TypeError, "ranks_per_node must be an integer, got 2.0"),
        (
            lambda: BlockPlacement(8, 4).node_of(8),
            RankOutOfRangeError,
            "rank 8 is not in the placement: ranks run from 0 to 7",
        ),
        (lambda: BlockPlacement(8, 4).local_rank(-1), RankOutOfRangeError, "rank -1 is not in the placement"),
        (lambda: ListedPlacement([0, 1]).node_of(2), RankOutOfRangeError, "rank 2 is not in the placement"),
        (
            lambda: BlockPlacement(2048, 32).ranks_of_node(64),
            InvalidArgumentError,
            "node 64 is not in the layout: 2048 ranks on nodes of 32 ranks are nodes 0..63",
        ),
        (
            lambda: ListedPlacement([0, 1, 0]).ranks_of_node(2),
            InvalidArgumentError,
            "3 ranks on 2 nodes are nodes 0..1",
        ),
        (lambda: BlockPlacement(8, 2).domain_of_node(4), InvalidArgumentError, "node 4 is not in the layout"),
        (
            lambda: BlockPlacement(12, 2, 2).nodes_of_domain(3),
            InvalidArgumentError,
            "domain 3 is not in the layout: 6 nodes in domains of 2 nodes are domains 0..2",
        ),
        (
            lambda: BlockPlacement(12, 4).span(5, 2),
            InvalidArgumentError,
            "groups of 2 ranks 5 apart do not tile 12 ranks",
        ),
        (
            lambda: BlockPlacement(12, 4).span(0, 2),
            InvalidArgumentError,
            "stride and size must be at least 1",
        ),
        (lambda: ListedPlacement([0, 1, 0]).span(2, 2), InvalidArgumentError, "do not tile 3 ranks"),
        (
            lambda: BlockPlacement(12, 4).span_of(ProcessTopology(["a", "b"], [2, 4]), "a"),
            GridSizeError,
            "a \\* b = 2 \\* 4 = 8, but the placement's world size is 12",
        ),
        (lambda: ListedPlacement([]), InvalidArgumentError, "the node of each rank"),
        (lambda: ListedPlacement([[0, 1]]), InvalidArgumentError, "one number per rank"),
        (lambda: ListedPlacement([0, -1]), InvalidArgumentError, "at least 0, got -1"),
        (lambda: ListedPlacement([0, 2, 2]), InvalidArgumentError, "without gaps: node 1 holds no rank"),
        (lambda: ListedPlacement([0.0, 1.0]), TypeError, "node numbers must be integers"),
        (
            lambda: ListedPlacement([0, 1], nodes_per_domain=0),
            InvalidArgumentError,
            "nodes_per_domain must be",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(call: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        call()


def test_listing_is_bounded() -> None:
    world = 2 * ENUMERATION_LIMIT
    m = BlockPlacement(world, 8)
    topo = ProcessTopology(["a", "b", "c"], [2, world // 4, 2])
    assert m.span_of(topo, ["b", "c"]) == m.span(1, world // 2)  # one run: closed form, no listing
    with pytest.raises(InvalidArgumentError, match=r"the axes \['a', 'c'\] is found by listing every group"):
        m.span_of(topo, ["a", "c"])
