"""The planner's entry point, :func:`plan`: read the inputs, rank the orders, build the :class:`Plan`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Union

from ..errors import InvalidArgumentError
from ..machine import Machine, positive_int
from ..topology import parse_order
from .inputs import (
    COMMUNICATOR_BYTES,
    CONVENTIONS,
    MEGATRON_TOKENS,
    GroupArg,
    ModelSpec,
    SizesArg,
    check_costs_finite,
    check_listed,
    kind_of,
    resolve_exposed,
    resolve_machine,
    resolve_sizes,
)
from .layouts import GridLayouts, MegatronLayouts
from .model import demands_of, megatron_demands
from .results import Layout, Plan
from .search import (
    DEFAULT_TOP,
    FULL_SEARCH_AXES,
    Ranked,
    check_axes,
    check_top,
    rank_all,
    rank_best,
    rank_scored,
)
from .suggest import refit, splits

Planner = Union[GridLayouts, MegatronLayouts]

#: A plan keeps every order (up to FULL_SEARCH_AXES axes of size > 1) while that many orders
#: times all the axes (each layout's order lists every axis, its topology) stays within this;
#: beyond, it keeps the best DEFAULT_TOP unless ``top`` says otherwise.
KEEP_ALL_ENTRIES = 1 << 16

_DEEPSPEED = frozenset(("pipe", "data", "model"))


def _convention(convention: str | None, names: Sequence[str], order: str | None) -> str:
    if convention is not None:
        if convention not in CONVENTIONS:
            raise InvalidArgumentError(
                f"unknown convention {convention!r}; the conventions are {', '.join(CONVENTIONS)}"
            )
        return convention
    if order is not None and all(t in MEGATRON_TOKENS for t in parse_order(order)):
        return "megatron"
    if any(n in ("dp_shard", "dp_replicate") for n in names):
        return "torchtitan"
    if any(n in _DEEPSPEED for n in names):
        return "deepspeed"
    return "generic"


def _ranked(
    planner: Planner, candidates: Sequence[str | Sequence[str]] | None, top: int | None
) -> tuple[list[Ranked], str, int]:
    """The orders kept, best first; how they were found; how many there are."""
    if isinstance(planner, MegatronLayouts):
        if candidates is not None:
            orders = []
            for cand in candidates:
                text = cand if isinstance(cand, str) else "-".join(reversed(list(cand)))
                if planner.price(text) is None:
                    raise InvalidArgumentError(
                        f"megatron-core refuses the candidate order {text!r} for these sizes"
                    )
                orders.append(planner.indices(text))
            orders = list(dict.fromkeys(orders))
            search = "given"
        else:
            orders = planner.candidates()
            search = "all"
        # Megatron's orders are priced whole (two layouts), so they are ranked by their own sums.
        scored = []
        for o in orders:
            key, tight = planner.evaluate_order(o)
            scored.append((o, key, tight))
        ranked = rank_scored(scored, planner.conv)
        return (ranked[:top] if top is not None else ranked), search, len(orders)
    k = len(planner.moving)
    if candidates is not None:
        orders = [planner.indices(_candidate(planner, c)) for c in candidates]
        if not orders:
            raise InvalidArgumentError("candidates= is empty")
        orders = list(dict.fromkeys(orders))
        ranked = rank_all(planner.moving_sizes, planner.evaluate, planner.conv, orders)
        return (ranked[:top] if top is not None else ranked), "given", len(orders)
    check_axes(k)
    if k <= FULL_SEARCH_AXES:
        if top is None and math.factorial(k) * len(planner.names) > KEEP_ALL_ENTRIES:
            top = DEFAULT_TOP  # every layout lists every axis: keep all of them only while that is small
        ranked = rank_all(planner.moving_sizes, planner.evaluate, planner.conv)
        return (ranked[:top] if top is not None else ranked), "all", math.factorial(k)
    return (
        rank_best(planner.moving_sizes, planner.evaluate, planner.conv, top or DEFAULT_TOP),
        "subsets",
        math.factorial(k),
    )


def _candidate(planner: GridLayouts, cand: str | Sequence[str]) -> tuple[str, ...]:
    """A candidate (an order string, fastest first, or names slowest first) as all axes, slowest first."""
    seq = parse_order(cand)[::-1] if isinstance(cand, str) else list(cand)
    planner.topology.axis_indices(seq)  # unknown or repeated names fail here
    moving = [a for a in seq if planner.size[a] > 1]
    missing = [a for a in planner.moving if a not in moving]
    if missing:
        raise InvalidArgumentError(f"candidate order {cand!r} leaves out the axes {missing}")
    it = iter(moving)
    return tuple(next(it) if planner.size[n] > 1 else n for n in planner.names)


def _layout(planner: Planner, r: Ranked) -> Layout:
    if isinstance(planner, MegatronLayouts):
        return planner.layout(planner.order_string(r.order), r.rank, r.ties, r.exact)
    return planner.layout(planner.full_order(r.order), r.rank, r.ties, r.exact)


def plan(
    sizes: SizesArg = None,
    *,
    order: str | None = None,
    world_size: int | None = None,
    ranks_per_node: int | None = None,
    nodes_per_domain: int | None = None,
    machine: str | Machine | Mapping[str, Any] | None = None,
    convention: str | None = None,
    weights: Mapping[str, float] | None = None,
    model: ModelSpec | Mapping[str, Any] | None = None,
    exposed: Mapping[str, float] | None = None,
    tiers: Mapping[str, Any] | None = None,
    candidates: Sequence[str | Sequence[str]] | None = None,
    top: int | None = None,
    groups: Sequence[GroupArg] = (),
    communicator_bytes: int | None = None,
) -> Plan:
    """Rank the orders of the axes on a machine by the communication time each step waits for.

    Args:
        sizes: ``{axis: size}``, slowest axis first (the order given); ``0`` marks a
            free size, filled as ``dims_create`` (MPI_Dims_create) fills it. Names
            such as ``tp``/``model``, ``cp``/``context``, ``ep``/``expert``,
            ``dp``/``data``, ``dp_shard``/``fsdp``, ``dp_replicate``, ``pp``/``pipe``
            have default traffic; others need ``weights``.
        order: An order string, fastest axis first (``"tp-cp-ep-dp-pp"``): its axes
            and order replace ``sizes``' order, names without a size get 1. Made of
            Megatron's tokens, it means Megatron's layouts (``convention="megatron"``).
        world_size: Number of ranks (default: the product of the sizes; needed when
            a size is free, and in Megatron's convention unless ``dp`` is given).
        ranks_per_node: Ranks on each node (default: the machine's).
        nodes_per_domain: Nodes per NVLink domain (default: the machine's; 1 without one).
        machine: A preset name (:data:`proctopo.machine.PRESETS`: ``"hgx-h100"``,
            ``"gb200-nvl72"``, ...), a JSON (or TOML) machine file, a mapping, or a
            :class:`~proctopo.machine.Machine`. Default: nodes of ``ranks_per_node``
            on NVLink, domains of ``nodes_per_domain``, one InfiniBand network above.
        convention: How the axes are read (:data:`~proctopo.planner.CONVENTIONS`);
            default: ``"megatron"`` for an order string of Megatron's tokens,
            ``"torchtitan"`` with ``dp_shard``/``dp_replicate``, ``"deepspeed"`` with
            ``pipe``/``data``/``model``, else ``"generic"``.
        weights: ``{axis: gigabytes all-reduced per rank per step}``, overriding the
            defaults and the model's estimate for those axes.
        model: A :class:`ModelSpec` (or a mapping of its fields, numbers such as
            ``"70B"`` accepted) to estimate every axis's traffic.
        exposed: Exposed fractions by kind of traffic (or by axis), replacing
            :data:`~proctopo.planner.EXPOSED`'s: ``{"data": 0.05}``.
        tiers: Overrides of the machine's links by level name
            (``{"network": {"bandwidth": 100e9}}``, a :class:`~proctopo.machine.Level`
            or a ``(bandwidth, latency)`` pair; ``intra-node``, ``intra-domain`` and
            ``inter-domain`` name the default machine's levels).
        candidates: Orders to rank instead of all of them: order strings (fastest
            first) or sequences of names (slowest first).
        top: Layouts to keep (at most :data:`~proctopo.planner.MAX_TOP`; default:
            every order up to :data:`FULL_SEARCH_AXES` axes of size > 1, else 20).
        groups: Extra sets of axes whose groups the job also makes (e.g. ``[("dp", "cp")]``),
            counted in the communicator budget and the ``new_group`` calls.
        communicator_bytes: Memory per communicator (default :data:`COMMUNICATOR_BYTES`).

    Returns:
        A :class:`Plan` with ``layouts`` ranked by exposed time, least first.

    Raises:
        InvalidArgumentError: a negative size, sizes that do not divide the world,
            ``ranks_per_node`` or ``nodes_per_domain`` below 1, an unknown level or
            machine, an axis of unknown kind without a weight, a bad model, a figure
            that makes a cost infinite, more than 16 axes of size > 1.
        GridSizeError: fixed sizes whose product is not the world size.
        UnknownAxisError: a weight, group or candidate naming an axis that is not there.

    >>> p = plan({"tp": 8, "dp": 0}, world_size=64, ranks_per_node=8)
    >>> p.sizes, p.best.order, p.best.axis("tp").tier
    ({'tp': 8, 'dp': 8}, ('dp', 'tp'), 'node')
    >>> p.best.new_group_calls
    {'global': 16, 'local': 2, 'split': 2}
    >>> plan({"tp": 8, "dp": 8}, ranks_per_node=0)
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: ranks_per_node must be at least 1, got 0
    """
    if world_size is not None:
        world_size = positive_int("world_size", world_size)
    if top is not None:
        top = positive_int("top", top)
        check_top(top)
    comm_bytes = COMMUNICATOR_BYTES if communicator_bytes is None else communicator_bytes
    if isinstance(comm_bytes, bool) or not isinstance(comm_bytes, int) or comm_bytes < 0:
        raise InvalidArgumentError(f"communicator_bytes must be an integer of at least 0, got {comm_bytes!r}")
    the_machine = resolve_machine(machine, ranks_per_node, nodes_per_domain, tiers)
    names_given = list(sizes or {}) + ([] if order is None else parse_order(order))
    conv = _convention(convention, names_given, order)
    megatron = conv == "megatron"
    names, dims, world, grid = resolve_sizes(sizes, order, world_size, megatron)
    spec = None if model is None else ModelSpec.from_value(model)
    fractions = resolve_exposed(exposed, names)
    notes: list[str] = []
    planner: Planner
    if megatron:
        if groups:
            raise InvalidArgumentError(
                "groups= counts a grid's extra groups; Megatron's groups are megatron-core's"
            )
        token_sizes = dict(zip(names, dims))
        demands = megatron_demands(token_sizes, world, weights, spec, fractions)
        check_costs_finite(demands, the_machine)
        given_tokens = [n for n in reversed(names) if n != "etp"]

        def make(m: Machine) -> Planner:
            return MegatronLayouts(token_sizes, given_tokens, demands, m, world, comm_bytes)

    else:
        assert grid is not None  # every convention but Megatron's reads the axes as one grid
        topo = grid
        demands = demands_of(names, dims, weights, spec, topo, fractions)
        check_costs_finite(demands, the_machine)
        extra: list[tuple[str, ...]] = []
        for g in groups:
            axes = [g] if isinstance(g, str) else list(g)
            topo.axis_indices(axes)  # unknown or repeated names fail here
            extra.append(tuple(axes))
        kinds = {n: kind_of(n) for n in names}
        if (
            conv == "generic"
            and dict(zip(names, dims)).get("ep", 1) > 1
            and set(names) <= set(MEGATRON_TOKENS)
        ):
            notes.append(
                "ep is planned as an axis of its own (one grid, as DeepSpeed-MoE or a DeviceMesh dimension); "
                "for Megatron's meaning, where ep subdivides dp x cp, pass an order string or --megatron"
            )

        def make(m: Machine) -> Planner:
            return GridLayouts(topo, demands, m, world, comm_bytes, extra, kinds)

    planner = make(the_machine)
    ranked, search, count = _ranked(planner, candidates, top)
    if not ranked:
        raise InvalidArgumentError(
            f"megatron-core accepts none of the orders of {', '.join(names)} for these sizes"
        )
    check_listed(len(ranked), len(names))  # each layout lists every axis
    layouts = [_layout(planner, r) for r in ranked]
    given_layout, given_rank = _given(planner, layouts, names)
    if isinstance(planner, MegatronLayouts) and planner.skipped:
        notes.append(
            f"{planner.skipped} order(s) megatron-core accepts are left out: they put tp or pp between dp "
            "and cp, so the dense gradients' dp x cp groups are not one run of ranks, which the planner "
            "does not price"
        )
    placement = the_machine.placement(world)
    notes = [n for n in (placement.partial_node(), placement.partial_domain()) if n is not None] + notes
    traffic = _traffic_source(demands)

    def best_of(m: Machine) -> Layout:
        other = make(m)
        return _layout(other, _ranked(other, candidates, 1)[0][0])

    return Plan(
        world_size=world,
        machine=the_machine,
        convention=conv,
        sizes=dict(zip(names, dims)),
        given=tuple(names),
        demands=demands,
        traffic=traffic,
        communicator_bytes=comm_bytes,
        search=search,
        candidates=count,
        layouts=layouts,
        given_layout=given_layout,
        given_rank=given_rank,
        suggestions=splits(planner, layouts[0]) if isinstance(planner, GridLayouts) else [],
        refit=refit(the_machine, world, layouts[0], best_of),
        warnings=notes,
    )


def _given(planner: Planner, layouts: list[Layout], names: Sequence[str]) -> tuple[Layout, int | None]:
    if isinstance(planner, MegatronLayouts):
        text = "-".join(planner.given)
        dense, expert = planner.layouts_of(text)  # an order megatron-core refuses fails here, with its reason
        hit = next((lay for lay in layouts if (lay.topology, lay.expert_topology) == (dense, expert)), None)
        if hit is not None:
            return hit, hit.rank
        if planner.price(text) is None:
            raise InvalidArgumentError(
                f"the given order {text!r} puts tp or pp between dp and cp: the dense gradients' dp x cp "
                "groups are not one run of ranks, which the planner does not price"
            )
        return planner.layout(text, 0, 0, False), None
    given = tuple(names)
    hit = next((lay for lay in layouts if lay.order == given), None)
    if hit is not None:
        return hit, hit.rank
    return planner.layout(given, 0, 0, False), None


def _traffic_source(demands: Mapping[str, list[Any]]) -> str:
    sources = {d.source for items in demands.values() for d in items if d.bytes or d.messages}
    if not sources:
        return "default"
    if len(sources) == 1:
        return {"model": "model", "weight": "weights", "default": "default"}[sources.pop()]
    return "model" if sources == {"model"} else "mixed"
