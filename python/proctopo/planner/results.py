"""What the planner returns: a :class:`Plan` of ranked :class:`Layout` s, each axis's :class:`AxisReport`,
and the :class:`Split` and :class:`Refit` suggestions; each converts to and from a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from ..machine import BlockPlacement
from ..topology import MEGATRON_TO_DEEPSPEED, ProcessTopology
from .inputs import Demand, Tier
from .render import render_plan

__all__ = ["SCHEMA", "AxisReport", "Layout", "Plan", "Refit", "Split"]

#: Version tag of the dictionaries :meth:`Plan.to_dict` returns (see docs/plan.md).
SCHEMA = "proctopo.plan/1"

_MEGATRON_NAME = {long: short for short, long in MEGATRON_TO_DEEPSPEED.items()}


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class AxisReport:
    """How one axis of a layout sits on the machine.

    Attributes:
        name: Axis name.
        kind: Its kind of parallelism (``None`` when unknown).
        size: Axis size, which is also the size of each of its groups.
        stride: Rank distance between neighbours along the axis.
        nodes: The most nodes one of its groups spans.
        domains: The most NVLink domains one of its groups spans.
        tier: The slowest tier its groups use (:data:`TIER_NAMES`).
        bytes, messages: Its traffic per rank per step (see :class:`Demand`).
        cost: Seconds per step on that tier.
        share: Its fraction of the layout's cost (0 when the cost is 0).
    """

    name: str
    kind: str | None
    size: int
    stride: int
    nodes: int
    domains: int
    tier: str
    bytes: float
    messages: float
    cost: float
    share: float

    @property
    def group_size(self) -> int:
        """Ranks in each group of the axis (its size)."""
        return self.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "group_size": self.size,
            "stride": self.stride,
            "nodes": self.nodes,
            "domains": self.domains,
            "tier": self.tier,
            "bytes": self.bytes,
            "messages": self.messages,
            "cost": self.cost,
            "share": self.share,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AxisReport:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def megatron_order_of(order: Sequence[str]) -> str:
    """The Megatron order string of axes given slowest first: fastest first, Megatron's short names."""
    mapped = [_MEGATRON_NAME.get(a, a) for a in order]
    names = mapped if len(set(mapped)) == len(mapped) else list(order)
    return "-".join(reversed(names))


@dataclass(frozen=True)
class Layout:
    """One order of the axes, placed on the machine and costed.

    Attributes:
        order: Axis names, slowest first (the topology's axes).
        dims: Axis sizes in that order.
        cost: Seconds per step under the model (relative units without a model).
        axes: One :class:`AxisReport` per axis, in ``order``.
        communicators_per_rank: Distinct rank sets of at least 2 ranks among each
            rank's groups (one per axis of size > 1, plus the extra ``groups=`` kinds).
        communicator_memory_bytes: ``communicators_per_rank`` x the per-communicator figure.
        new_group_calls: Process-group calls per rank that
            ``proctopo.ProcessGrid(layout.topology, group_creation=...)`` makes:
            ``{"global": ..., "local": ..., "split": ...}``.
        warnings: Placement problems, e.g. tensor groups that cross nodes.
    """

    order: tuple[str, ...]
    dims: tuple[int, ...]
    cost: float
    axes: list[AxisReport]
    communicators_per_rank: int
    communicator_memory_bytes: int
    new_group_calls: dict[str, int]
    warnings: list[str]

    @property
    def topology(self) -> ProcessTopology:
        """The :class:`~proctopo.ProcessTopology` of this layout."""
        return ProcessTopology(list(self.order), list(self.dims))

    @property
    def megatron_order(self) -> str:
        """Order string, fastest axis first, with Megatron's names (``model`` -> ``tp``, ...).

        ``ProcessTopology.from_order(layout.megatron_order, **sizes)`` rebuilds the
        topology (with ``rename=MEGATRON_TO_DEEPSPEED`` when the axes have DeepSpeed's names).
        """
        return megatron_order_of(self.order)

    @property
    def mesh_shape(self) -> tuple[int, ...]:
        """``mesh_shape`` for ``init_device_mesh`` (row-major, slowest first, as the topology)."""
        return self.dims

    @property
    def mesh_dim_names(self) -> tuple[str, ...]:
        """``mesh_dim_names`` for ``init_device_mesh``."""
        return self.order

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "dims": list(self.dims),
            "megatron_order": self.megatron_order,
            "mesh_shape": list(self.mesh_shape),
            "mesh_dim_names": list(self.mesh_dim_names),
            "cost": self.cost,
            "axes": [a.to_dict() for a in self.axes],
            "communicators_per_rank": self.communicators_per_rank,
            "communicator_memory_bytes": self.communicator_memory_bytes,
            "new_group_calls": dict(self.new_group_calls),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Layout:
        return cls(
            order=tuple(d["order"]),
            dims=tuple(d["dims"]),
            cost=d["cost"],
            axes=[AxisReport.from_dict(a) for a in d["axes"]],
            communicators_per_rank=d["communicators_per_rank"],
            communicator_memory_bytes=d["communicator_memory_bytes"],
            new_group_calls=dict(d["new_group_calls"]),
            warnings=list(d["warnings"]),
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
    ``inner`` group on the fast tier with the full volume, then over the ``outer``
    group on the slow tier with ``1/inner`` of it (reduce-scatter, all-reduce,
    all-gather for gradients). That adds one or two communicator kinds per rank.

    Attributes:
        axis: The axis split.
        level: ``"node"`` or ``"domain"``: what ``inner`` fits in.
        outer, inner: The two sizes (``outer * inner`` is the axis size).
        order, dims: The layout with the split (slowest first).
        inner_tier, outer_tier: The tiers of the two new axes.
        flat_cost, split_cost: Seconds per step of the axis before and after.
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
    nodes of 8) fixes that, at the price of idle nodes and more domains.

    Attributes:
        nodes_per_domain: Nodes of each domain to use.
        spare_nodes: Nodes of each domain left out.
        domains: Domains the job then needs.
        order, dims: The best layout with that placement (slowest first).
        cost: Its cost.
        text: One sentence for people.
    """

    nodes_per_domain: int
    spare_nodes: int
    domains: int
    order: tuple[str, ...]
    dims: tuple[int, ...]
    cost: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes_per_domain": self.nodes_per_domain,
            "spare_nodes": self.spare_nodes,
            "domains": self.domains,
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
        world_size, ranks_per_node, nodes_per_domain: The machine.
        sizes: Axis sizes (free ones filled), in the order given, slowest first.
        given: The order given (``sizes``' order, or the ``order`` string's), slowest first.
        demands: Each axis's traffic (:class:`Demand`).
        tiers: The link tiers used (:class:`Tier`).
        units: ``"seconds"`` (costs from a model) or ``"relative"`` (from weights).
        communicator_bytes: Memory per communicator used for the budget.
        search: How the candidates were chosen (``"all"``, ``"best-first"`` or ``"given"``).
        candidates: Number of orders considered.
        layouts: The layouts kept, best (cheapest) first.
        given_layout: The layout of the order given, ranked or not.
        given_rank: Its 1-based place in ``layouts`` (``None`` when not kept).
        suggestions: :class:`Split` suggestions for the best layout.
        refit: A :class:`Refit` suggestion (fewer nodes per domain), or ``None``.
        warnings: Notes about the machine (partial nodes or domains).
    """

    world_size: int
    ranks_per_node: int
    nodes_per_domain: int
    sizes: dict[str, int]
    given: tuple[str, ...]
    demands: dict[str, Demand]
    tiers: dict[str, Tier]
    units: str
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
        """The cheapest layout."""
        return self.layouts[0]

    @property
    def placement(self) -> BlockPlacement:
        """Where the ranks sit: in order, ``ranks_per_node`` to a node, ``nodes_per_domain`` to a domain."""
        return BlockPlacement(self.world_size, self.ranks_per_node, self.nodes_per_domain)

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
        return {
            "schema": SCHEMA,
            "world_size": self.world_size,
            "ranks_per_node": self.ranks_per_node,
            "nodes_per_domain": self.nodes_per_domain,
            "nodes": self.nodes,
            "domains": self.domains,
            "sizes": dict(self.sizes),
            "given": list(self.given),
            "demands": {k: v.to_dict() for k, v in self.demands.items()},
            "tiers": {k: v.to_dict() for k, v in self.tiers.items()},
            "units": self.units,
            "communicator_bytes": self.communicator_bytes,
            "search": self.search,
            "candidates": self.candidates,
            "layouts": [lay.to_dict() for lay in self.layouts],
            "given_layout": self.given_layout.to_dict(),
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
            ranks_per_node=d["ranks_per_node"],
            nodes_per_domain=d["nodes_per_domain"],
            sizes=dict(d["sizes"]),
            given=tuple(d["given"]),
            demands={k: Demand(**v) for k, v in d["demands"].items()},
            tiers={k: Tier(k, v["bandwidth"], v["latency"]) for k, v in d["tiers"].items()},
            units=d["units"],
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
        4 ranks = 2 nodes x 2 ranks; NVLink domain = one node
        axes dp=2 tp=2; costs from default weights (relative units); orders: 2 (all)
        <BLANKLINE>
          #  megatron order  cost/step  dp            tp
          1  tp-dp           0.07558    inter-domain  intra-node
          2  dp-tp           0.3245     intra-node    inter-domain
        the given order tp-dp ranks #1
        ...
        """
        return render_plan(self, limit)
