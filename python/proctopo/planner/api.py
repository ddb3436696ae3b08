"""The planner's entry point, :func:`plan`: read the inputs, rank the orders, build the :class:`Plan`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from ..machine import BlockPlacement, positive_int
from ..topology import ProcessTopology
from .inputs import COMMUNICATOR_BYTES, GroupArg, ModelSpec, SizesArg, resolve_sizes, resolve_tiers
from .model import Context, demands_of
from .results import Plan
from .search import rank_orders
from .suggest import refit, splits


def plan(
    sizes: SizesArg = None,
    *,
    order: str | None = None,
    world_size: int | None = None,
    ranks_per_node: int,
    nodes_per_domain: int | None = None,
    weights: Mapping[str, float] | None = None,
    model: ModelSpec | Mapping[str, Any] | None = None,
    tiers: Mapping[str, Any] | None = None,
    candidates: Sequence[str | Sequence[str]] | None = None,
    top: int | None = None,
    groups: Sequence[GroupArg] = (),
    communicator_bytes: int | None = None,
) -> Plan:
    """Rank the orders of the axes on a machine by an alpha-beta communication cost.

    Args:
        sizes: ``{axis: size}``, slowest axis first (the order given); ``0`` marks a
            free size, filled as ``dims_create`` (MPI_Dims_create) fills it. Names
            such as ``tp``/``model``, ``cp``/``context``, ``ep``/``expert``,
            ``dp``/``data``, ``pp``/``pipe`` have default traffic; others need ``weights``.
        order: A Megatron order string, fastest axis first (``"tp-cp-ep-dp-pp"``);
            its axes and order replace ``sizes``' order, names without a size get 1.
        world_size: Number of ranks (default: the product of the sizes; needed when
            a size is free).
        ranks_per_node: Ranks on each node; ranks fill the nodes in order
            (:class:`~proctopo.machine.BlockPlacement`).
        nodes_per_domain: Nodes per NVLink domain (rack); default 1 (the domain is the node).
        weights: ``{axis: gigabytes all-reduced per rank per step}``, overriding the
            defaults and the model's estimate for those axes.
        model: A :class:`ModelSpec` (or a mapping of its fields) to estimate every
            axis's traffic in bytes; costs are then in seconds per step.
        tiers: Overrides of :data:`DEFAULT_TIERS`: ``{"inter-domain": {"bandwidth": 100e9}}``,
            a :class:`Tier` or a ``(bandwidth, latency)`` pair.
        candidates: Orders to rank instead of all of them: Megatron strings (fastest
            first) or sequences of names (slowest first).
        top: Layouts to keep (default: all up to :data:`FULL_SEARCH_AXES` axes of
            size > 1, else 20). Beyond that many axes only the best ``top`` are built.
        groups: Extra sets of axes whose groups the job also makes (e.g. ``[("dp", "cp")]``),
            counted in the communicator budget and the ``new_group`` calls.
        communicator_bytes: Memory per communicator (default :data:`COMMUNICATOR_BYTES`).

    Returns:
        A :class:`Plan` with ``layouts`` ranked by cost, cheapest first.

    Raises:
        InvalidArgumentError: a negative size, sizes that do not divide the world,
            ``ranks_per_node`` or ``nodes_per_domain`` below 1, an unknown tier,
            an axis of unknown kind without a weight, a bad model description.
        GridSizeError: fixed sizes whose product is not the world size.
        UnknownAxisError: a weight, group or candidate naming an axis that is not there.

    >>> p = plan({"tp": 8, "dp": 0}, world_size=64, ranks_per_node=8)
    >>> p.sizes, p.best.order, p.best.axes[1].tier
    ({'tp': 8, 'dp': 8}, ('dp', 'tp'), 'intra-node')
    >>> p.best.new_group_calls
    {'global': 16, 'local': 2, 'split': 2}
    >>> plan({"tp": 8, "dp": 8}, ranks_per_node=0)
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: ranks_per_node must be at least 1, got 0
    """
    if world_size is not None:
        world_size = positive_int("world_size", world_size)
    rpn = positive_int("ranks_per_node", ranks_per_node)
    npd = 1 if nodes_per_domain is None else positive_int("nodes_per_domain", nodes_per_domain)
    if top is not None:
        top = positive_int("top", top)
    comm_bytes = COMMUNICATOR_BYTES if communicator_bytes is None else communicator_bytes
    if isinstance(comm_bytes, bool) or not isinstance(comm_bytes, int) or comm_bytes < 0:
        raise InvalidArgumentError(f"communicator_bytes must be an integer of at least 0, got {comm_bytes!r}")

    names, dims, world = resolve_sizes(sizes, order, world_size)
    topo = ProcessTopology(names, dims)
    spec = None if model is None else ModelSpec.from_value(model)
    demands = demands_of(names, dims, weights, spec, topo)
    tier_map = resolve_tiers(tiers)
    extra: list[tuple[str, ...]] = []
    for g in groups:
        axes = [g] if isinstance(g, str) else list(g)
        topo.axis_indices(axes)  # unknown or repeated names fail here
        extra.append(tuple(axes))
    machine = BlockPlacement(world, rpn, npd)
    ctx = Context(topo, machine, demands, tier_map, comm_bytes, extra)

    orders, search, count = rank_orders(ctx, candidates, top)
    layouts = [ctx.layout(o) for o in orders]
    given = tuple(names)
    given_layout = next((lay for lay in layouts if lay.order == given), None) or ctx.layout(given)
    rank = next((i for i, lay in enumerate(layouts, 1) if lay.order == given), None)
    notes = [note for note in (machine.partial_node(), machine.partial_domain()) if note is not None]
    return Plan(
        world_size=world,
        ranks_per_node=rpn,
        nodes_per_domain=npd,
        sizes=dict(zip(names, dims)),
        given=given,
        demands=demands,
        tiers=tier_map,
        units=ctx.units,
        communicator_bytes=comm_bytes,
        search=search,
        candidates=count,
        layouts=layouts,
        given_layout=given_layout,
        given_rank=rank,
        suggestions=splits(ctx, layouts[0]),
        refit=refit(ctx, candidates, layouts[0]),
        warnings=notes,
    )
