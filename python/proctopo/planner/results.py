"""What the planner returns: a :class:`Plan` of ranked :class:`Layout` s, each demand's :class:`AxisReport`,
and the :class:`Split` and :class:`Refit` suggestions; each converts to and from a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from ..machine import BlockPlacement, Machine
from ..topology import MEGATRON_TO_DEEPSPEED, ProcessTopology
from .inputs import Demand
from .render import render_plan

__all__ = ["SCHEMA", "AxisReport", "Layout", "Plan", "Refit", "Split"]

#: Version tag of the dictionaries :meth:`Plan.to_dict` returns (see docs/plan.md).
SCHEMA = "proctopo.plan/2"

_MEGATRON_NAME = {long: short for short, long in MEGATRON_TO_DEEPSPEED.items()}


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class AxisReport:
    """How one demand of a layout sits on the machine: an axis's traffic over its groups.

    Attributes:
        name: The axis (or, in Megatron's convention, ``etp`` and ``edp`` for the
            expert layout's share of ``tp``'s and ``dp``'s traffic).
        kind: Its kind of traffic (``None`` when unknown).
        size: Ranks in each of its groups.
        stride: Rank distance between neighbours along the group's fastest axis.
        group: The axes whose groups carry it (``("dp", "cp")``: Megatron's dense gradients).
        layout: ``"dense"`` or ``"expert"`` in Megatron's convention, else ``""``.
        spans: For each level of the machine but the top, the most units of it one group touches.
        tier: The name of the level whose links its groups use.
        bytes, messages: Its traffic per rank per step.
        exposed_fraction: The part of its time the step waits for.
        time: Seconds per step its traffic takes on that level.
        exposed: Seconds per step the step waits for it (``time * exposed_fraction``).
        share: Its fraction of the layout's exposed seconds (0 when they are 0).
    """

    name: str
    kind: str | None
    size: int
    stride: int
    group: tuple[str, ...]
    layout: str
    spans: tuple[int, ...]
    tier: str
    bytes: float
    messages: float
    exposed_fraction: float
    time: float
    exposed: float
    share: float

    @property
    def nodes(self) -> int:
        """The most nodes one of its groups spans."""
        return self.spans[0]

    @property
    def domains(self) -> int:
        """The most NVLink domains one of its groups spans."""
        return self.spans[1]

    @property
    def group_size(self) -> int:
        """Ranks in each group (its size)."""
        return self.size

    def to_dict(self, levels: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "stride": self.stride,
            "group": list(self.group),
            "layout": self.layout,
            "spans": dict(zip(levels, self.spans)) if levels else list(self.spans),
            "nodes": self.nodes,
            "domains": self.domains,
            "tier": self.tier,
            "bytes": self.bytes,
            "messages": self.messages,
            "exposed_fraction": self.exposed_fraction,
            "time": self.time,
            "exposed": self.exposed,
            "share": self.share,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AxisReport:
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        spans = d["spans"]
        fields["spans"] = tuple(spans.values() if isinstance(spans, Mapping) else spans)
        fields["group"] = tuple(d["group"])
        return cls(**fields)


def megatron_order_of(order: Sequence[str]) -> str:
    """The Megatron order string of axes given slowest first: fastest first, Megatron's short names."""
    mapped = [_MEGATRON_NAME.get(a, a) for a in order]
    names = mapped if len(set(mapped)) == len(mapped) else list(order)
    return "-".join(reversed(names))


@dataclass(frozen=True)
class Layout:
    """One order of the axes, placed on the machine and costed.

    Attributes:
        order: Axis names, slowest first (the topology's axes; Megatron's dense layout).
        dims: Axis sizes in that order.
        megatron_order: The order string, fastest axis first, with Megatron's names
            (``model`` -> ``tp``, ...): in Megatron's convention, the ``order=`` that
            ``initialize_model_parallel`` takes.
        rank: Its place: 1 + the number of orders whose exposed time is smaller
            (orders of equal exposed time share a rank).
        ties: Orders with this exposed time (all of them, when ``ties_exact``; else
            at least this many: the search stopped inside the group).
        ties_exact: Whether ``ties`` counts every such order.
        exposed: Seconds per step the step waits for communication (what layouts are
            ranked by): each demand's time on its level times its exposed fraction.
        total: Seconds per step all the communication takes, overlapped or not.
        axes: One :class:`AxisReport` per demand over groups of more than one rank,
            in ``order`` (a layout leaves out axes of size 1).
        communicators_per_rank: Distinct rank sets of at least 2 ranks among each
            rank's groups (one per axis of size > 1, plus the extra ``groups=`` kinds).
        communicator_memory_bytes: ``communicators_per_rank`` x the per-communicator figure.
        new_group_calls: Process-group calls per rank that
            ``proctopo.ProcessGrid(layout.topology, group_creation=...)`` makes:
            ``{"global": ..., "local": ..., "split": ...}``.
        warnings: Placement problems, e.g. tensor groups that leave the NVLink domain.
        expert_order, expert_dims: Megatron's expert layout (slowest first), else ``None``.
        tie_break: The tie-break's measure, in seconds per step: the exposed time were each
            demand's groups to cost what its *average* group costs (a group that reaches a
            level's links pays for them; a group inside one unit does not). Among layouts of
            equal ``exposed`` the smaller comes first, then the one closest to the stack's
            conventional order (docs/plan.md, "Ties"). ``None`` when not known (a dictionary
            written without it).
    """

    order: tuple[str, ...]
    dims: tuple[int, ...]
    megatron_order: str
    rank: int
    ties: int
    ties_exact: bool
    exposed: float
    total: float
    axes: list[AxisReport]
    communicators_per_rank: int
    communicator_memory_bytes: int
    new_group_calls: dict[str, int]
    warnings: list[str]
    expert_order: tuple[str, ...] | None = None
    expert_dims: tuple[int, ...] | None = None
    tie_break: float | None = None

    @property
    def cost(self) -> float:
        """The exposed seconds per step (what layouts are ranked by)."""
        return self.exposed

    @property
    def topology(self) -> ProcessTopology:
        """The :class:`~proctopo.ProcessTopology` of this layout (Megatron's dense layout)."""
        return ProcessTopology(list(self.order), list(self.dims))

    @property
    def expert_topology(self) -> ProcessTopology | None:
        """Megatron's expert layout, or ``None``."""
        if self.expert_order is None or self.expert_dims is None:
            return None
        return ProcessTopology(list(self.expert_order), list(self.expert_dims))

    @property
    def mesh_shape(self) -> tuple[int, ...]:
        """``mesh_shape`` for ``init_device_mesh`` (row-major, slowest first, as the topology)."""
        return self.dims

    @property
    def mesh_dim_names(self) -> tuple[str, ...]:
        """``mesh_dim_names`` for ``init_device_mesh``."""
        return self.order

    def axis(self, name: str) -> AxisReport:
        """The report of demand ``name``.

        Raises:
            InvalidArgumentError: no demand of that name (axes of size 1 have none).
        """
        for a in self.axes:
            if a.name == name:
                return a
        raise InvalidArgumentError(
            f"the layout has no traffic on {name!r} (axes of size 1 carry none); "
            f"it has {[a.name for a in self.axes]}"
        )

    def to_dict(self, levels: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "dims": list(self.dims),
            "megatron_order": self.megatron_order,
            "mesh_shape": list(self.mesh_shape),
            "mesh_dim_names": list(self.mesh_dim_names),
            "rank": self.rank,
            "ties": self.ties,
            "ties_exact": self.ties_exact,
            "exposed": self.exposed,
            "total": self.total,
            "axes": [a.to_dict(levels) for a in self.axes],
            "communicators_per_rank": self.communicators_per_rank,
            "communicator_memory_bytes": self.communicator_memory_bytes,
            "new_group_calls": dict(self.new_group_calls),
            "warnings": list(self.warnings),
            "expert_order": None if self.expert_order is None else list(self.expert_order),
            "expert_dims": None if self.expert_dims is None else list(self.expert_dims),
            "tie_break": self.tie_break,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Layout:
        return cls(
            order=tuple(d["order"]),
            dims=tuple(d["dims"]),
            megatron_order=d["megatron_order"],
            rank=d["rank"],
            ties=d["ties"],
            ties_exact=d["ties_exact"],
            exposed=d["exposed"],
            total=d["total"],
            axes=[AxisReport.from_dict(a) for a in d["axes"]],
            communicators_per_rank=d["communicators_per_rank"],
            communicator_memory_bytes=d["communicator_memory_bytes"],
            new_group_calls=dict(d["new_group_calls"]),
            warnings=list(d["warnings"]),
            expert_order=None if d["expert_order"] is None else tuple(d["expert_order"]),
            expert_dims=None if d["expert_dims"] is None else tuple(d["expert_dims"]),
            tie_break=d.get("tie_break"),
        )


class _Arranged:
    """A suggested layout given as ``order`` and ``dims`` (slowest first), and how to use it."""

    order: tuple[str, ...]
    dims: tuple[int, ...]

    @property
    def topology(self) -> ProcessTopology:
        """The suggested layout as a topology."""
        return ProcessTopology(list(self.order), list(self.dims))

    @property
    def megatron_order(self) -> str:
        """Its Megatron order string, fastest axis first."""
        return megatron_order_of(self.order)


@dataclass(frozen=True)
class Split(_Arranged):
    """A suggestion: split an axis of the best layout into outer x inner, the inner part in a node or domain.

    The two new axes sit where the axis was (``<axis>_outer`` just slower than
    ``<axis>_inner``), so the ranks do not move: the group of both new axes together
    is exactly the old group. The collective runs in two levels instead: over the
    ``inner`` group on the fast level with the full volume, then over the ``outer``
    group on the slow level with ``1/inner`` of it (reduce-scatter, all-reduce,
    all-gather for gradients). That adds one or two communicator kinds per rank.

    Attributes:
        axis: The axis split.
        level: The machine level ``inner`` fits in (``"node"`` or ``"domain"``).
        outer, inner: The two sizes (``outer * inner`` is the axis size).
        order, dims: The layout with the split (slowest first).
        inner_tier, outer_tier: The levels whose links the two new axes use.
        flat_cost, split_cost: Exposed seconds per step of the axis before and after.
        text: One sentence for people.
    """

    axis: str
    level: str
    outer: int
    inner: int
    order: tuple[str, ...]
    dims: tuple[int, ...]
    inner_tier: str
    outer_tier: str
    flat_cost: float
    split_cost: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "level": self.level,
            "outer": self.outer,
            "inner": self.inner,
            "order": list(self.order),
            "dims": list(self.dims),
            "megatron_order": self.megatron_order,
            "inner_tier": self.inner_tier,
            "outer_tier": self.outer_tier,
            "flat_cost": self.flat_cost,
            "split_cost": self.split_cost,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Split:
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        fields["order"], fields["dims"] = tuple(d["order"]), tuple(d["dims"])
        return cls(**fields)


@dataclass(frozen=True)
class Refit(_Arranged):
    """A suggestion: use only some nodes of each NVLink domain so that groups stop crossing domains.

    A domain of 72 ranks cannot hold aligned blocks of 16 or more ranks (a power of
    two) without some block straddling two domains; using 64 of the 72 (8 of 9
    nodes of 8) fixes that, at the price of idle nodes and, unless the job has
    domains to spare, more domains than it fills now.

    Attributes:
        nodes_per_domain: Nodes of each domain to use.
        spare_nodes: Nodes of each domain left out.
        domains: Domains the job then needs.
        more_domains: How many more domains than the job fills now (0: none more).
        more_nodes: How many more nodes the job then occupies, the idle ones included.
        order, dims: The best layout with that placement (slowest first).
        cost: Its exposed seconds per step.
        text: One sentence for people.
    """

    nodes_per_domain: int
    spare_nodes: int
    domains: int
    more_domains: int
    more_nodes: int
    order: tuple[str, ...]
    dims: tuple[int, ...]
    cost: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes_per_domain": self.nodes_per_domain,
            "spare_nodes": self.spare_nodes,
            "domains": self.domains,
            "more_domains": self.more_domains,
            "more_nodes": self.more_nodes,
            "order": list(self.order),
            "dims": list(self.dims),
            "megatron_order": self.megatron_order,
            "cost": self.cost,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Refit:
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        fields["order"], fields["dims"] = tuple(d["order"]), tuple(d["dims"])
        return cls(**fields)


@dataclass(frozen=True)
class Plan:
    """The result of :func:`plan`: the layouts, best first, and what they were computed from.

    Attributes:
        world_size: Ranks in the job.
        machine: The :class:`~proctopo.machine.Machine` (levels, sizes, links).
        convention: How the axes were read (:data:`~proctopo.planner.CONVENTIONS`).
        sizes: Axis sizes (free ones filled), in the order given, slowest first.
        given: The order given (``sizes``' order, or the ``order`` string's), slowest first.
        demands: Each axis's traffic (:class:`Demand` s).
        traffic: Where the traffic figures come from: ``"model"``, ``"weights"``
            (all given), ``"default"`` (:data:`~proctopo.planner.DEFAULT_WEIGHTS`,
            assumptions) or ``"mixed"``.
        communicator_bytes: Memory per communicator used for the budget.
        search: How the candidates were chosen (``"all"``, ``"subsets"`` or ``"given"``).
        candidates: Number of orders there are (or were given).
        layouts: The layouts kept, best (least exposed time) first.
        given_layout: The layout of the order given, ranked or not.
        given_rank: Its rank (``None`` when it is not among the layouts kept).
        suggestions: :class:`Split` suggestions for the best layout.
        refit: A :class:`Refit` suggestion (fewer nodes per domain), or ``None``.
        warnings: Notes about the machine (partial nodes or domains) and the plan.
    """

    world_size: int
    machine: Machine
    convention: str
    sizes: dict[str, int]
    given: tuple[str, ...]
    demands: dict[str, list[Demand]]
    traffic: str
    communicator_bytes: int
    search: str
    candidates: int
    layouts: list[Layout]
    given_layout: Layout
    given_rank: int | None
    suggestions: list[Split] = field(default_factory=list)
    refit: Refit | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> Layout:
        """The layout ranked first (its tie-break's pick among equal ones)."""
        return self.layouts[0]

    @property
    def decided_by(self) -> str | None:
        """What put :attr:`best` first among the orders that tie with it at rank 1.

        ``"exposed"`` when no order ties with it; ``"average group"`` when its
        :attr:`Layout.tie_break` is smaller than the next tied layout's; ``"convention"``
        when that is equal too (the stack's conventional order decided); ``None`` when the
        layouts kept cannot tell (the next tied order was not kept, or a tie-break is unknown).
        """
        best = self.best
        if best.ties <= 1:
            return "exposed"
        runner = self.layouts[1] if len(self.layouts) > 1 and self.layouts[1].rank == 1 else None
        if runner is None or best.tie_break is None or runner.tie_break is None:
            return None
        return "average group" if best.tie_break < runner.tie_break else "convention"

    @property
    def ranks_per_node(self) -> int:
        return self.machine.ranks_per_node

    @property
    def nodes_per_domain(self) -> int:
        return self.machine.nodes_per_domain

    @property
    def placement(self) -> BlockPlacement:
        """Where the ranks sit: in order, ``ranks_per_node`` to a node, ``nodes_per_domain`` to a domain."""
        return self.machine.placement(self.world_size)

    @property
    def nodes(self) -> int:
        """Number of nodes (the last may be partial)."""
        return self.placement.nodes

    @property
    def domains(self) -> int:
        """Number of NVLink domains (the last may be partial)."""
        return self.placement.domains

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; the schema is documented in docs/plan.md (``"schema"`` names it)."""
        levels = [lv.name for lv in self.machine.levels[:-1]]
        return {
            "schema": SCHEMA,
            "world_size": self.world_size,
            "machine": self.machine.to_dict(),
            "ranks_per_node": self.ranks_per_node,
            "nodes_per_domain": self.nodes_per_domain,
            "nodes": self.nodes,
            "domains": self.domains,
            "convention": self.convention,
            "sizes": dict(self.sizes),
            "given": list(self.given),
            "demands": {k: [d.to_dict() for d in v] for k, v in self.demands.items()},
            "traffic": self.traffic,
            "units": "seconds per step",
            "communicator_bytes": self.communicator_bytes,
            "search": self.search,
            "candidates": self.candidates,
            "layouts": [lay.to_dict(levels) for lay in self.layouts],
            "given_layout": self.given_layout.to_dict(levels),
            "given_rank": self.given_rank,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "refit": None if self.refit is None else self.refit.to_dict(),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict`'s dictionary (e.g. after ``json.loads``).

        Raises:
            InvalidArgumentError: the dictionary is of another schema.
        """
        if d.get("schema") != SCHEMA:
            raise InvalidArgumentError(f"not a {SCHEMA} dictionary (schema {d.get('schema')!r})")
        return cls(
            world_size=d["world_size"],
            machine=Machine.from_dict(d["machine"]),
            convention=d["convention"],
            sizes=dict(d["sizes"]),
            given=tuple(d["given"]),
            demands={k: [Demand.from_dict(x) for x in v] for k, v in d["demands"].items()},
            traffic=d["traffic"],
            communicator_bytes=d["communicator_bytes"],
            search=d["search"],
            candidates=d["candidates"],
            layouts=[Layout.from_dict(x) for x in d["layouts"]],
            given_layout=Layout.from_dict(d["given_layout"]),
            given_rank=d["given_rank"],
            suggestions=[Split.from_dict(x) for x in d["suggestions"]],
            refit=None if d["refit"] is None else Refit.from_dict(d["refit"]),
            warnings=list(d["warnings"]),
        )

    def render(self, limit: int = 10) -> str:
        """The plan as plain text for a terminal: the ranking, then the best layout in detail.

        >>> from proctopo import plan
        >>> print(plan({"dp": 2, "tp": 2}, ranks_per_node=2).render())  # doctest: +ELLIPSIS
        4 ranks = 2 nodes x 2 ranks; machine default: node 2 ranks 450 GB/s 3.4 us | domain = node | ...
        ...
        """
        return render_plan(self, limit)
