"""proctopo.planner: spans, ranking, communicator budget, JSON and errors, against independent oracles.

The oracles here do not use the planner's closed forms: spans come from listing every
group of the topology (``groups(axis) // ranks_per_node``), costs from a plain
re-statement of the alpha-beta model, communicator counts from the rank sets
themselves, and ``new_group`` calls from a ``ProcessGrid`` played on the recorder.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
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
)
from proctopo.grid import ProcessGrid
from proctopo.planner import (
    COMMUNICATOR_BYTES,
    DEFAULT_TIERS,
    DEFAULT_WEIGHTS,
    Plan,
    kind_of,
    plan,
)
from proctopo.testing import RecordingComm

NAMES = ("pp", "dp", "ep", "cp", "tp")
MODEL = {"params": 7e9, "hidden": 4096, "seq_len": 4096, "micro_batch": 1, "layers": 32}


# ----------------------------------------------------------------------------- oracles
def enumerated_span(topo: ProcessTopology, axis: str, block: int) -> int:
    """Most distinct blocks in one group of ``axis``, by listing all groups."""
    table = topo.groups(axis) // block
    return max(len(set(row)) for row in table.tolist())


def tier_of(nodes: int, domains: int) -> str:
    if nodes == 1:
        return "intra-node"
    return "intra-domain" if domains == 1 else "inter-domain"


def oracle_cost(sizes: dict[str, int], order: tuple[str, ...], rpn: int, npd: int) -> float:
    """The default-weight cost of an order, from enumerated groups (the model of docs/plan.md)."""
    topo = ProcessTopology(list(order), [sizes[a] for a in order])
    total = 0.0
    for a in sizes:  # sum in the given axis order, as the planner does
        n = sizes[a]
        if n == 1:
            continue
        nodes = enumerated_span(topo, a, rpn)
        domains = enumerated_span(topo, a, rpn * npd)
        tier = DEFAULT_TIERS[tier_of(nodes, domains)]
        volume = DEFAULT_WEIGHTS[kind_of(a) or ""] * 1e9
        total += 2 * (n - 1) * tier.latency + 2 * (n - 1) / n * volume / tier.bandwidth
    return total


def all_orders(sizes: dict[str, int]) -> set[tuple[str, ...]]:
    """Every order of the axes of size > 1, each size-1 axis kept in its slot."""
    names = list(sizes)
    moving = [a for a in names if sizes[a] > 1]
    out = set()
    for perm in itertools.permutations(moving):
        it = iter(perm)
        out.add(tuple(next(it) if sizes[a] > 1 else a for a in names))
    return out


shapes = st.lists(st.sampled_from([1, 2, 2, 3, 4, 6]), min_size=1, max_size=4).map(
    lambda dims: dict(zip(NAMES[-len(dims) :], dims))
)


# ----------------------------------------------------------------------------- spans
@settings(max_examples=60, deadline=None)
@given(sizes=shapes, data=st.data())
def test_reported_spans_equal_enumeration(sizes: dict[str, int], data: st.DataObject) -> None:
    world = math.prod(sizes.values())
    rpn = data.draw(st.integers(1, world + 1), label="ranks_per_node")
    npd = data.draw(st.integers(1, 4), label="nodes_per_domain")
    p = plan(sizes, ranks_per_node=rpn, nodes_per_domain=npd)
    for lay in p.layouts:
        topo = lay.topology
        assert topo.axes == list(lay.order)
        for rep in lay.axes:
            assert rep.stride == topo.strides[topo.axes.index(rep.name)]
            assert rep.nodes == enumerated_span(topo, rep.name, rpn), (lay.order, rep)
            assert rep.domains == enumerated_span(topo, rep.name, rpn * npd), (lay.order, rep)
            assert rep.tier == tier_of(rep.nodes, rep.domains)


# ----------------------------------------------------------------------------- ranking
@settings(max_examples=60, deadline=None)
@given(sizes=shapes, data=st.data())
def test_ranking_is_the_exhaustive_optimum(sizes: dict[str, int], data: st.DataObject) -> None:
    world = math.prod(sizes.values())
    rpn = data.draw(st.sampled_from([d for d in range(1, world + 1) if world % d == 0]), label="rpn")
    npd = data.draw(st.integers(1, 3), label="npd")
    p = plan(sizes, ranks_per_node=rpn, nodes_per_domain=npd)
    orders = all_orders(sizes)
    assert {lay.order for lay in p.layouts} == orders
    assert p.search == "all" and p.candidates == len(orders)
    oracle = {o: oracle_cost(sizes, o, rpn, npd) for o in orders}
    for lay in p.layouts:
        assert lay.cost == pytest.approx(oracle[lay.order], rel=1e-12, abs=1e-15)
    costs = [lay.cost for lay in p.layouts]
    assert costs == sorted(costs)
    assert p.best.cost == pytest.approx(min(oracle.values()), rel=1e-12, abs=1e-15)
    assert p.given_layout.order == tuple(sizes)
    assert p.layouts[p.given_rank - 1].order == tuple(sizes)  # type: ignore[operator]


def test_best_first_search_finds_the_same_best_orders() -> None:
    sizes = {"pp": 2, "dp": 3, "ep": 2, "cp": 2, "tp": 4, "vocab": 2, "extra": 2}
    weights = {"vocab": 3.0, "extra": 0.5}
    p = plan(sizes, ranks_per_node=8, nodes_per_domain=2, weights=weights, top=15)
    assert p.search == "best-first" and p.candidates == math.factorial(7)
    full = plan(
        sizes, ranks_per_node=8, nodes_per_domain=2, weights=weights, candidates=list(all_orders(sizes))
    )
    assert full.candidates == math.factorial(7)
    assert [lay.cost for lay in p.layouts] == pytest.approx(
        [lay.cost for lay in full.layouts[:15]], rel=1e-12
    )
    assert p.best.cost == full.best.cost
    assert len(p.layouts) == 15


def test_a_small_plan_keeps_every_order_and_top_cuts_it() -> None:
    sizes = {"pp": 2, "dp": 2, "cp": 1, "tp": 2}
    assert len(plan(sizes, ranks_per_node=2).layouts) == 6
    assert [lay.order for lay in plan(sizes, ranks_per_node=2, top=2).layouts] == [
        lay.order for lay in plan(sizes, ranks_per_node=2).layouts[:2]
    ]
    # size-1 axes stay in their slot in every candidate
    assert all(lay.order[2] == "cp" for lay in plan(sizes, ranks_per_node=2).layouts)


def test_tensor_parallelism_stays_in_the_node_by_default() -> None:
    p = plan({"pp": 4, "dp": 0, "tp": 8}, world_size=1024, ranks_per_node=8)
    tp = next(a for a in p.best.axes if a.name == "tp")
    assert tp.stride == 1 and tp.nodes == 1 and tp.tier == "intra-node"
    assert not p.best.warnings
    worst = p.layouts[-1]
    assert any("tp (tensor-parallel) groups cross nodes" in w for w in worst.warnings)


def test_expert_groups_fit_a_64_rank_domain_and_megatrons_default_order_does_not() -> None:
    sizes = {"tp": 8, "cp": 2, "ep": 8, "dp": 0, "pp": 8}
    p = plan(
        sizes,
        order="tp-cp-ep-dp-pp",
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=8,
        model={"params": 1.2e12, "hidden": 12288, "seq_len": 8192, "micro_batch": 1, "layers": 96},
    )
    ep = next(a for a in p.best.axes if a.name == "ep")
    assert ep.domains == 1 and ep.nodes == 8
    assert p.given == ("pp", "dp", "ep", "cp", "tp") and p.given_rank is not None and p.given_rank > 1
    given_ep = next(a for a in p.given_layout.axes if a.name == "ep")
    assert given_ep.domains > 1
    assert any("ep (expert-parallel) groups cross NVLink domains" in w for w in p.given_layout.warnings)
    assert p.best.cost < p.given_layout.cost


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
        assert p.demands[name].bytes == pytest.approx(nbytes, rel=1e-12), name
        assert p.demands[name].source == "model"
    lay = p.best
    total = 0.0
    for rep in lay.axes:
        tier = DEFAULT_TIERS[rep.tier]
        total += rep.messages * tier.latency + want[rep.name] / tier.bandwidth
    assert lay.cost == pytest.approx(total, rel=1e-12)
    assert p.units == "seconds"
    assert sum(a.share for a in lay.axes) == pytest.approx(1.0)


def test_weights_override_the_model_and_the_defaults() -> None:
    p = plan({"dp": 2, "tp": 2}, ranks_per_node=2, model=MODEL, weights={"dp": 5.0})
    assert p.demands["dp"].source == "weight" and p.demands["dp"].bytes == pytest.approx(5e9)
    assert p.demands["tp"].source == "model" and p.units == "relative"
    q = plan({"dp": 2, "tp": 2}, ranks_per_node=2, weights={"tp": 0.0})
    assert q.best.order == ("tp", "dp")  # tensor weighs nothing now: data goes inside the node


def test_tiers_can_be_overridden() -> None:
    slow = plan({"dp": 4, "tp": 2}, ranks_per_node=2, tiers={"inter-domain": {"bandwidth": 1e9}})
    fast = plan({"dp": 4, "tp": 2}, ranks_per_node=2, tiers={"inter-domain": (400e9, 1e-6)})
    assert slow.tiers["inter-domain"].bandwidth == 1e9 and fast.tiers["inter-domain"].latency == 1e-6
    assert slow.best.cost > fast.best.cost


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
    assert best.megatron_order == "tp-dp-pp"
    sizes = {"tp": 4, "dp": 4, "pp": 2}
    assert (
        ProcessTopology.from_order(best.megatron_order, rename=MEGATRON_TO_DEEPSPEED, **sizes)
        == best.topology
    )
    assert best.mesh_shape == tuple(best.topology.dims) and best.mesh_dim_names == tuple(best.topology.axes)
    q = plan({"tp": 2, "xx": 2}, ranks_per_node=2, weights={"xx": 1.0})
    assert ProcessTopology.from_order(q.best.megatron_order, tp=2, xx=2) == q.best.topology


def test_order_string_with_free_size() -> None:
    p = plan({"tp": 4, "dp": 0, "pp": 2}, order="tp-cp-ep-dp-pp", world_size=64, ranks_per_node=4)
    assert p.sizes == {"pp": 2, "dp": 8, "ep": 1, "cp": 1, "tp": 4}
    assert p.given == ("pp", "dp", "ep", "cp", "tp") and p.candidates == 6
    assert all(lay.order[2:4] == ("ep", "cp") for lay in p.layouts)
    q = plan({"tp": 2}, order="tp-dp", ranks_per_node=2)  # a name without a size gets 1
    assert q.sizes == {"dp": 1, "tp": 2} and q.world_size == 2 and len(q.layouts) == 1


def test_a_single_rank() -> None:
    p = plan({"dp": 1, "tp": 1}, ranks_per_node=8)
    assert len(p.layouts) == 1 and p.best.cost == 0 and p.best.communicators_per_rank == 0
    assert p.best.new_group_calls == {"global": 0, "local": 0, "split": 0}
    assert p.warnings == ["1 ranks on nodes of 8 ranks leave 1 on the last node"]


def test_hierarchical_split_keeps_the_ranks_and_fits_the_node() -> None:
    p = plan({"pp": 2, "dp": 16, "tp": 4}, ranks_per_node=8, model=MODEL, candidates=["tp-dp-pp"])
    (split,) = [s for s in p.suggestions if s.level == "node"]
    assert (split.axis, split.outer, split.inner) == ("dp", 8, 2)
    assert split.inner_tier == "intra-node" and split.outer_tier == "inter-domain"
    assert split.split_cost < split.flat_cost
    old, new = p.best.topology, split.topology
    a = sorted(map(sorted, old.groups("dp").tolist()))
    b = sorted(map(sorted, new.groups(["dp_outer", "dp_inner"]).tolist()))
    assert a == b
    assert enumerated_span(new, "dp_inner", 8) == 1


def test_the_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # WORLD_SIZE and LOCAL_WORLD_SIZE are the command line's to read, not the library's.
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


# ----------------------------------------------------------------------------- JSON
def test_json_round_trip() -> None:
    p = plan({"pp": 2, "dp": 16, "tp": 4}, ranks_per_node=8, nodes_per_domain=2, model=MODEL)
    d = p.to_dict()
    text = json.dumps(d)
    back = json.loads(text)
    assert back == d
    assert Plan.from_dict(back) == p
    assert d["schema"] == "proctopo.plan/1"
    assert set(d) == {
        "schema",
        "world_size",
        "ranks_per_node",
        "nodes_per_domain",
        "nodes",
        "domains",
        "sizes",
        "given",
        "demands",
        "tiers",
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
    lay = d["layouts"][0]
    assert set(lay["axes"][0]) == {
        "name",
        "kind",
        "size",
        "group_size",
        "stride",
        "nodes",
        "domains",
        "tier",
        "bytes",
        "messages",
        "cost",
        "share",
    }
    assert lay["megatron_order"] == p.best.megatron_order and lay["mesh_shape"] == list(p.best.mesh_shape)
    with pytest.raises(InvalidArgumentError, match="schema"):
        Plan.from_dict({**d, "schema": "other/9"})


def test_render_names_the_best_layout() -> None:
    p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
    text = p.render()
    assert "best: ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 2, 4])" in text
    assert "init_device_mesh(device, (2, 2, 4), mesh_dim_names=('pp', 'dp', 'tp'))" in text
    assert "new_group calls per rank  global 20  local 3  split 3" in text
    assert "\x1b" not in text


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
            "unknown tier 'rack'",
        ),
        ({"sizes": {"tp": 2, "dp": 2}, "model": {"params": 1e9}}, InvalidArgumentError, "model needs hidden"),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "heads": 8}},
            InvalidArgumentError,
            "no field 'heads'",
        ),
        (
            {"sizes": {"tp": 2, "dp": 2}, "model": {**MODEL, "layers": 0}},
            InvalidArgumentError,
            "layers must be positive, got 0",
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
        ({"sizes": {"tp": 2, "dp": 2}, "candidates": ["tp-xx"]}, UnknownAxisError, "'xx'"),
        ({"sizes": {"tp": 2, "dp": 2}, "groups": [("tp", "zz")]}, UnknownAxisError, "unknown axis 'zz'"),
        ({"sizes": {"tp": 2, "dp": 2}, "top": 0}, InvalidArgumentError, "top must be at least 1, got 0"),
        ({"sizes": {"xx": 2}, "order": "tp-dp"}, UnknownAxisError, "unknown axis 'xx'"),
        ({}, InvalidArgumentError, "needs the axis sizes"),
    ],
)
def test_bad_input_gives_a_clear_error(kwargs: dict[str, Any], error: type[Exception], text: str) -> None:
    kwargs.setdefault("ranks_per_node", 2)
    with pytest.raises(error, match=text):
        plan(**kwargs)


def test_ranks_per_node_is_needed() -> None:
    with pytest.raises(TypeError, match="ranks_per_node"):
        plan({"tp": 2})  # type: ignore[call-arg]


def test_sixteen_thousand_ranks() -> None:
    p = plan(
        {"tp": 8, "cp": 2, "ep": 8, "dp": 0, "pp": 8},
        order="tp-cp-ep-dp-pp",
        world_size=16384,
        ranks_per_node=8,
        nodes_per_domain=9,
        model={**MODEL, "params": 1.2e12},
    )
    assert p.sizes["dp"] == 16 and len(p.layouts) == 120
    best = p.best
    assert best.topology.world_size() == 16384
    tp = next(a for a in best.axes if a.name == "tp")
    assert tp.nodes == 1
    assert best.new_group_calls["local"] == 5
    assert best.new_group_calls["global"] == sum(16384 // n for n in (8, 2, 8, 16, 8))
    assert np.isfinite(best.cost)


def test_refit_uses_fewer_nodes_per_domain_when_that_keeps_groups_inside() -> None:
    sizes = {"dp": 0, "ep": 2, "tp": 4}
    p = plan(sizes, world_size=48, ranks_per_node=4, nodes_per_domain=3)
    assert any(a.name == "ep" and a.domains == 2 for a in p.best.axes)
    refit = p.refit
    assert refit is not None and (refit.nodes_per_domain, refit.spare_nodes, refit.domains) == (2, 1, 6)
    topo = refit.topology
    assert enumerated_span(topo, "ep", 4 * 2) == 1
    filled = dict(zip(p.sizes, p.sizes.values()))
    oracle = min(oracle_cost(filled, o, 4, 2) for o in all_orders(filled))
    assert refit.cost == pytest.approx(oracle, rel=1e-12) and refit.cost < p.best.cost
    assert plan(sizes, world_size=48, ranks_per_node=4, nodes_per_domain=2).refit is None


def test_proctopo_plan_is_the_planners_function() -> None:
    import types

    import proctopo
    from proctopo import planner

    assert proctopo.plan is planner.plan is plan and isinstance(proctopo.plan, types.FunctionType)
    assert type(planner) is types.ModuleType  # a plain package, not a callable module
    called = proctopo.plan({"tp": 2, "dp": 2}, ranks_per_node=2)
    assert isinstance(called, planner.Plan) and called == plan({"tp": 2, "dp": 2}, ranks_per_node=2)
    modules = {"api", "inputs", "model", "render", "results", "search", "suggest"}
    public = {name for name in vars(planner) if not name.startswith("_")} - modules - {"annotations"}
    assert set(planner.__all__) == public
