"""Hardware-aware ranking of axis orders, and the communicator budget of each (pure arithmetic).

Given the sizes of the parallel axes (some may be left free, ``0``, and filled as
MPI's ``Dims_create`` fills them) and the machine (ranks per node, nodes per NVLink
domain), :func:`plan` places every candidate order of the axes on the ranks, finds
for each axis how many nodes and NVLink domains one of its groups spans, and
ranks the orders by an alpha-beta cost: each axis's per-step traffic (from default
weights, your own, or a short model description) moves over the slowest link tier
its groups touch. Each :class:`Layout` is usable as it is: its
:class:`~proctopo.ProcessTopology`, its Megatron order string (fastest axis first),
and the shape and names for ``torch.distributed.device_mesh.init_device_mesh``.

Spans are computed in closed form from the stride, the size and the node (or
domain) size, never by listing groups, so a plan of 16,384 ranks answers in a few
milliseconds. The model, its defaults and their sources are in ``docs/plan.md``.

>>> p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
>>> best = p.layouts[0]
>>> best.megatron_order, best.mesh_shape, best.mesh_dim_names
('tp-dp-pp', (2, 2, 4), ('pp', 'dp', 'tp'))
>>> [(a.name, a.nodes, a.tier) for a in best.axes]
[('pp', 2, 'inter-domain'), ('dp', 2, 'inter-domain'), ('tp', 1, 'intra-node')]
>>> best.topology
ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 2, 4])

This module never imports torch.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import os
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import InvalidArgumentError
from .topology import MEGATRON_TO_DEEPSPEED, ProcessTopology, dims_create

__all__ = [
    "COMMUNICATOR_BYTES",
    "DEFAULT_TIERS",
    "DEFAULT_WEIGHTS",
    "FULL_SEARCH_AXES",
    "KINDS",
    "SCHEMA",
    "TIER_NAMES",
    "AxisReport",
    "Demand",
    "Layout",
    "ModelSpec",
    "Plan",
    "Refit",
    "Split",
    "Tier",
    "blocks_spanned",
    "kind_of",
    "plan",
]

#: Version tag of the dictionaries :meth:`Plan.to_dict` returns (see docs/plan.md).
SCHEMA = "proctopo.plan/1"

#: The link tiers, fastest first: the tier of an axis is the slowest one its groups use.
TIER_NAMES: tuple[str, ...] = ("intra-node", "intra-domain", "inter-domain")

#: Kinds of parallelism the planner knows, most communication-intensive first.
KINDS: tuple[str, ...] = ("tensor", "context", "expert", "data", "pipe")

#: Default per-axis weights by kind: gigabytes each rank all-reduces per step with its
#: group. They encode the usual intensity ranking (tensor > context > expert > data >
#: pipe), a factor 2 apart; they are not measurements. Pass ``model=`` to estimate.
DEFAULT_WEIGHTS: dict[str, float] = {"tensor": 16.0, "context": 8.0, "expert": 4.0, "data": 2.0, "pipe": 1.0}

#: Device memory of one NCCL communicator, per rank: 688 MiB, the larger of the two
#: figures measured with PyTorch on 4 x A100 over NVLink in
#: https://github.com/NVIDIA/nccl/issues/964 (544 MiB for a group of 2 GPUs, 688 MiB
#: for larger groups). Override with ``communicator_bytes=``.
COMMUNICATOR_BYTES: int = 688 * 2**20

#: Up to this many axes of size > 1, every order is evaluated; beyond, a best-first
#: search returns the ``top`` best orders exactly without building the others.
FULL_SEARCH_AXES = 6

_ALIASES: dict[str, str] = {
    "tp": "tensor",
    "tensor": "tensor",
    "model": "tensor",
    "mp": "tensor",
    "cp": "context",
    "context": "context",
    "sequence": "context",
    "ep": "expert",
    "expert": "expert",
    "dp": "data",
    "data": "data",
    "fsdp": "data",
    "dp_shard": "data",
    "dp_replicate": "data",
    "pp": "pipe",
    "pipe": "pipe",
}
_SPLIT_SUFFIXES = ("_outer", "_inner")
_MEGATRON_NAME = {long: short for short, long in MEGATRON_TO_DEEPSPEED.items()}
_GB = 1e9

SizesArg = Union[Mapping[str, int], None]
GroupArg = Union[str, Sequence[str]]


def kind_of(name: str) -> str | None:
    """The kind of parallelism an axis name stands for, or ``None`` for a name the planner does not know.

    Megatron's short names, DeepSpeed's long ones and torchtitan's ``dp_shard`` /
    ``dp_replicate`` are known; ``<name>_outer`` and ``<name>_inner`` (a split axis)
    take the kind of ``<name>``.

    >>> kind_of("tp"), kind_of("model"), kind_of("dp_outer"), kind_of("vocab")
    ('tensor', 'tensor', 'data', None)
    """
    if name in _ALIASES:
        return _ALIASES[name]
    for suffix in _SPLIT_SUFFIXES:
        if name.endswith(suffix):
            return _ALIASES.get(name[: -len(suffix)])
    return None


# --------------------------------------------------------------------------- spans
def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a*i + b) / m) for i in range(n))`` for ``n >= 0``, ``m >= 1``, ``a, b >= 0``.

    Euclid-like, O(log m) levels. After taking the whole parts out, ``a, b < m`` and
    the sum counts the lattice points ``(i, j)`` with ``1 <= j``, ``j*m <= a*i + b``
    and ``i < n``. Counting them by ``j`` instead gives ``J*n`` minus
    ``sum(ceil((j*m - b) / a) for j in 1..J)``, ``J = floor((a*(n-1) + b) / m)``:
    a sum of the same form with ``a`` and ``m`` swapped, as in Euclid's algorithm.
    """
    if n <= 0:
        return 0
    total = (a // m) * (n * (n - 1) // 2) + (b // m) * n
    a, b = a % m, b % m
    j = (a * (n - 1) + b) // m
    if j == 0:
        return total
    return total + j * n - _floor_sum(j, a, m, m - b + a - 1)


def blocks_spanned(stride: int, size: int, world_size: int, block: int) -> int:
    """The most blocks of ``block`` consecutive ranks that one group of an axis touches.

    The axis has ``size`` and ``stride`` in a row-major topology of ``world_size``
    ranks; its groups are ``{b + k*stride : k < size}`` for every base rank ``b``
    whose coordinate along the axis is 0. Block ``j`` holds ranks
    ``[j*block, (j+1)*block)`` (a node when ``block`` is the ranks per node, an
    NVLink domain when it is the ranks per domain); the last block may be partial.
    The answer is the maximum over the groups, in O(log block) whatever the size of
    the world: a stride of at least ``block`` puts every member in its own block;
    a smaller stride cannot skip a block, so a group spans
    ``floor((b + L) / block) - floor(b / block) + 1`` blocks with
    ``L = (size - 1) * stride``, one more than ``floor(L / block) + 1`` exactly when
    some base ``b`` has ``b mod block`` large enough, which a floor sum counts.

    >>> blocks_spanned(1, 8, 64, 8), blocks_spanned(8, 8, 64, 8), blocks_spanned(1, 8, 72, 12)
    (1, 8, 2)
    """
    if size <= 1:
        return 1
    if stride >= block:
        return size
    extent = (size - 1) * stride
    whole, rest = divmod(extent, block)
    if rest == 0:
        return whole + 1
    # A base b = hi*period + lo (lo < stride, hi < count) touches one block more when
    # b mod block >= block - rest; over lo that holds for some lo iff
    # (hi*period) mod block >= threshold.
    threshold = block - rest - stride + 1
    if threshold <= 0:
        return whole + 2
    period = stride * size
    count = world_size // period
    hits = _floor_sum(count, block, period, block - threshold) - _floor_sum(count, block, period, 0)
    return whole + 2 if hits > 0 else whole + 1


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Tier:
    """One link tier of the alpha-beta model: ``time = messages * latency + bytes / bandwidth``.

    Attributes:
        name: ``"intra-node"``, ``"intra-domain"`` or ``"inter-domain"``.
        bandwidth: Bytes per second each rank sends over this tier (one direction).
        latency: Seconds per message (per ring step).
    """

    name: str
    bandwidth: float
    latency: float

    def time(self, nbytes: float, messages: float) -> float:
        """Seconds to move ``nbytes`` in ``messages`` messages over this tier.

        >>> Tier("x", 1e9, 1e-6).time(2e9, 10)
        2.00001
        """
        return messages * self.latency + nbytes / self.bandwidth

    def to_dict(self) -> dict[str, Any]:
        return {"bandwidth": self.bandwidth, "latency": self.latency}


#: Default tiers (sources in docs/plan.md): NVLink 4 on H100 SXM, 900 GB/s per GPU both
#: ways, so 450 GB/s each way, inside a node and across an NVLink domain that spans
#: nodes (an NVLink Switch domain gives each GPU the same NVLink bandwidth to every
#: GPU in it); InfiniBand NDR, 400 Gb/s = 50 GB/s per GPU, between domains.
#: Latencies per ring step are NCCL's own tuning figures for the ring algorithm
#: with the Simple protocol: 3.4 us over NVLink, 9.6 us over the network.
DEFAULT_TIERS: dict[str, Tier] = {
    "intra-node": Tier("intra-node", 450e9, 3.4e-6),
    "intra-domain": Tier("intra-domain", 450e9, 3.4e-6),
    "inter-domain": Tier("inter-domain", 50e9, 9.6e-6),
}


@dataclass(frozen=True)
class ModelSpec:
    """A short model description from which :func:`plan` estimates each axis's traffic.

    Attributes:
        params: Parameters of the whole model.
        hidden: Hidden size ``h``.
        seq_len: Sequence length ``s`` (tokens per sample).
        micro_batch: Micro-batch size ``b`` (samples).
        layers: Transformer layers ``L``.
        microbatches: Micro-batches per step per pipeline ``m`` (default: 4 x the
            pipeline size, which keeps the pipeline bubble ``(p-1)/m`` under 25%).
        bytes_per_value: Bytes per activation value (2: bf16).
        grad_bytes: Bytes per gradient value in the data-parallel reduction (2: bf16).
        moe_topk: Experts each token is routed to (2, as in GShard and Mixtral).
        moe_layers: Layers with experts (default: all).
        expert_params: Parameters inside experts (part of ``params``), whose
            gradients are also sharded over the expert axis (default 0: a dense model).
        kv_hidden: Width of K (and of V): key/value heads x head size (default:
            ``hidden``; less with grouped-query attention).

    >>> ModelSpec.from_value({"params": 7e9, "hidden": 4096, "seq_len": 4096, "micro_batch": 1,
    ...                       "layers": 32}).layers
    32
    """

    params: float
    hidden: int
    seq_len: int
    micro_batch: int
    layers: int
    microbatches: int | None = None
    bytes_per_value: int = 2
    grad_bytes: int = 2
    moe_topk: int = 2
    moe_layers: int | None = None
    kv_hidden: int | None = None
    expert_params: float = 0.0

    def __post_init__(self) -> None:
        optional = ("microbatches", "moe_layers", "kv_hidden")
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"model {name} must be a number, got {value!r}")
            if name == "expert_params":
                if not 0 <= value <= self.params:
                    raise InvalidArgumentError(f"model expert_params must be in [0, params], got {value!r}")
            elif not value > 0:
                raise InvalidArgumentError(f"model {name} must be positive, got {value!r}")

    @classmethod
    def from_value(cls, value: ModelSpec | Mapping[str, Any]) -> ModelSpec:
        """A :class:`ModelSpec` from itself or from a mapping of its field names.

        Raises:
            InvalidArgumentError: a key that is not a field, or a missing required one.
        """
        if isinstance(value, ModelSpec):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"model must be a ModelSpec or a mapping, got {type(value).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = [k for k in value if k not in known]
        if unknown:
            raise InvalidArgumentError(
                f"model has no field {unknown[0]!r}; the fields are {', '.join(cls.__dataclass_fields__)}"
            )
        missing = [k for k in ("params", "hidden", "seq_len", "micro_batch", "layers") if k not in value]
        if missing:
            raise InvalidArgumentError(f"model needs {', '.join(missing)} (got {sorted(value)})")
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Demand:
    """The traffic of one axis's group, per rank and per step.

    Attributes:
        kind: ``"tensor"``, ``"context"``, ``"expert"``, ``"data"``, ``"pipe"`` or ``None``.
        bytes: Bytes each rank sends per step.
        messages: Messages (latency terms) per step.
        source: ``"model"`` (from a :class:`ModelSpec`), ``"weight"`` (``weights=``)
            or ``"default"`` (:data:`DEFAULT_WEIGHTS`).
    """

    kind: str | None
    bytes: float
    messages: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bytes": self.bytes, "messages": self.messages, "source": self.source}


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


def _megatron_order(order: Sequence[str]) -> str:
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
        return _megatron_order(self.order)

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
        return _megatron_order(self.order)


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
    def nodes(self) -> int:
        """Number of nodes (the last may be partial)."""
        return -(-self.world_size // self.ranks_per_node)

    @property
    def domains(self) -> int:
        """Number of NVLink domains (the last may be partial)."""
        return -(-self.nodes // self.nodes_per_domain)

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
        lines: list[str] = []
        out = lines.append
        domain = (
            "NVLink domain = one node"
            if self.nodes_per_domain == 1
            else f"NVLink domains of {self.nodes_per_domain} nodes "
            f"({self.nodes_per_domain * self.ranks_per_node} ranks; {self.domains} domains)"
        )
        out(f"{self.world_size:,} ranks = {self.nodes:,} nodes x {self.ranks_per_node} ranks; {domain}")
        source = (
            "costs from the model (seconds per step)"
            if self.units == "seconds"
            else "costs from default weights (relative units)"
            if all(d.source == "default" for d in self.demands.values())
            else "costs from weights (relative units)"
        )
        axes_text = " ".join(f"{k}={v}" for k, v in self.sizes.items())
        out(f"axes {axes_text}; {source}; orders: {self.candidates:,} ({self.search})")
        for w in self.warnings:
            out(f"note: {w}")
        out("")
        names = list(self.sizes)
        head = ["#", "megatron order", "cost/step", *names]
        rows = []
        for i, lay in enumerate(self.layouts[:limit], 1):
            tiers = {a.name: a.tier for a in lay.axes}
            rows.append(
                [str(i), lay.megatron_order, _seconds(lay.cost, self.units), *(tiers[n] for n in names)]
            )
        given_shown = self.given_rank is not None and self.given_rank <= limit
        if not given_shown:
            lay = self.given_layout
            tiers = {a.name: a.tier for a in lay.axes}
            rank = "-" if self.given_rank is None else str(self.given_rank)
            rows.append(
                [
                    rank,
                    lay.megatron_order + " (given)",
                    _seconds(lay.cost, self.units),
                    *(tiers[n] for n in names),
                ]
            )
        lines.extend(_table(head, rows, right={0}))
        if given_shown:
            out(f"the given order {self.given_layout.megatron_order} ranks #{self.given_rank}")
        best = self.best
        out("")
        out(f"best: {best.topology!r}")
        out(f"  megatron order   {best.megatron_order}")
        out(
            f"  device mesh      init_device_mesh(device, {best.mesh_shape}, "
            f"mesh_dim_names={best.mesh_dim_names!r})"
        )
        detail = [
            [
                a.name,
                a.kind or "-",
                str(a.size),
                f"{a.stride:,}",
                str(a.nodes),
                str(a.domains),
                a.tier,
                _seconds(a.cost, self.units),
                f"{100 * a.share:.1f}%",
            ]
            for a in best.axes
        ]
        lines.extend(
            "  " + line
            for line in _table(
                ["axis", "kind", "size", "stride", "nodes", "domains", "tier", "cost", "share"],
                detail,
                right={2, 3, 4, 5, 7, 8},
            )
        )
        calls = best.new_group_calls
        out(
            f"  communicators per rank  {best.communicators_per_rank} "
            f"(~{_bytes(best.communicator_memory_bytes)} at {_bytes(self.communicator_bytes)} each)"
        )
        out(
            f"  new_group calls per rank  global {calls['global']:,}  local {calls['local']:,}  "
            f"split {calls['split']:,}"
        )
        for w in best.warnings:
            out(f"  warning: {w}")
        for s in self.suggestions:
            out(f"  suggestion: {s.text}")
        if self.refit is not None:
            out(f"  suggestion: {self.refit.text}")
        return "\n".join(lines)


def _seconds(value: float, units: str) -> str:
    if units != "seconds":
        return f"{value:.4g}"
    if value == 0:
        return "0 s"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _bytes(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _table(head: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> list[str]:
    right = set(right)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(head)] + [line(r) for r in rows]


# --------------------------------------------------------------------------- the planner
def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(f"{name}={text!r} is not an integer") from None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)  # int and NumPy integers
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if number < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, got {number}")
    return number


def _resolve_sizes(
    sizes: SizesArg, order: str | None, world_size: int | None
) -> tuple[list[str], list[int], int]:
    """Axis names (slowest first), filled sizes and the world size; the topology checks every rule."""
    if sizes is None and order is None:
        raise InvalidArgumentError("plan needs the axis sizes, e.g. plan({'tp': 8, 'dp': 0}, world_size=64)")
    given = dict(sizes or {})
    for name, size in given.items():
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"the size of axis {name!r} must be an integer, got {size!r}")
    if order is not None:
        # The topology owns the order string and its names: a size for a name not in it fails here.
        ones: dict[str, Any] = dict.fromkeys(given, 1)
        names = ProcessTopology.from_order(order, **ones).axes
        raw = [given.get(n, 1) for n in names]
    else:
        names = list(given)
        raw = list(given.values())
    if not names:
        raise InvalidArgumentError("plan needs at least one axis")
    if any(d == 0 for d in raw):
        if world_size is None:
            free = [n for n, d in zip(names, raw) if d == 0]
            raise InvalidArgumentError(
                f"the free axes {free} (size 0) need a world size: pass world_size= or set WORLD_SIZE"
            )
        try:
            dims = dims_create(world_size, raw)
        except InvalidArgumentError as exc:  # add which entry is which axis
            text = ", ".join(f"{n}={d}" for n, d in zip(names, raw))
            raise type(exc)(f"{exc} (axes {text})") from None
    else:
        dims = raw
    topo = ProcessTopology(names, dims)  # sizes below 1 and invalid names fail here
    if world_size is not None:
        topo.check_world_size(world_size)
    return names, dims, topo.world_size()


def _model_demand(kind: str, n: int, kind_sizes: Mapping[str, int], model: ModelSpec) -> tuple[float, float]:
    """Bytes and messages per rank per step of an axis of ``kind`` and size ``n`` (see docs/plan.md)."""
    if n <= 1:
        return 0.0, 0.0
    t, c, e, p = kind_sizes["tensor"], kind_sizes["context"], kind_sizes["expert"], kind_sizes["pipe"]
    b, s, h, bv = model.micro_batch, model.seq_len, model.hidden, model.bytes_per_value
    m = model.microbatches if model.microbatches is not None else 4 * p
    stage_layers = model.layers / p
    activation = b * (s / c) * h * bv  # one layer's activations on one rank, per micro-batch
    if kind == "tensor":  # 2 all-reduces forward + 2 backward per layer (Megatron-LM)
        ops = 4 * stage_layers * m
        return ops * 2 * (n - 1) / n * activation, ops * 2 * (n - 1)
    if kind == "context":  # ring exchange of K/V chunks: forward n-1 steps, backward 2(n-1)
        kv = model.kv_hidden if model.kv_hidden is not None else h
        chunk = 2 * b * (s / c) * (kv / t) * bv
        steps = 3 * (n - 1) * stage_layers * m
        return steps * chunk, steps
    if kind == "expert":  # dispatch + combine, forward and backward: 4 all-to-alls per MoE layer
        moe_layers = (model.moe_layers if model.moe_layers is not None else model.layers) / p
        tokens = b * s / (c * t)
        per_all_to_all = model.moe_topk * tokens * h * bv * (n - 1) / n
        ops = 4 * moe_layers * m
        return ops * per_all_to_all, ops * (n - 1)
    if kind == "data":  # ring all-reduce of this rank's gradients, once per step
        held = model.params - model.expert_params + model.expert_params / e
        grads = held * model.grad_bytes / (t * p)
        return 2 * (n - 1) / n * grads, 2 * (n - 1)
    # pipe: one activation forward and one gradient backward per micro-batch, scattered over tp
    return 2 * m * b * s * h * bv / (t * c), 2 * m


def _demands(
    names: Sequence[str],
    dims: Sequence[int],
    weights: Mapping[str, float] | None,
    model: ModelSpec | None,
    topo: ProcessTopology,
) -> dict[str, Demand]:
    weights = dict(weights or {})
    if weights:
        topo.axis_indices(list(weights))  # unknown axis names fail here, with the topology's text
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise TypeError(f"the weight of axis {name!r} must be a number, got {w!r}")
        if not (w >= 0 and math.isfinite(w)):
            raise InvalidArgumentError(
                f"the weight of axis {name!r} must be finite and at least 0, got {w!r}"
            )
    kinds = {n: kind_of(n) for n in names}
    kind_sizes = dict.fromkeys(KINDS, 1)
    for n, d in zip(names, dims):
        k = kinds[n]
        if k is not None:
            kind_sizes[k] *= d
    out: dict[str, Demand] = {}
    for n, d in zip(names, dims):
        kind = kinds[n]
        if n in weights:
            w, source = float(weights[n]), "weight"
        elif kind is None:
            if d == 1:
                out[n] = Demand(None, 0.0, 0.0, "default" if model is None else "model")
                continue
            raise InvalidArgumentError(
                f"axis {n!r} is of no kind the planner knows ({', '.join(sorted(_ALIASES))}); "
                f"give its traffic with weights={{{n!r}: <GB per step>}}"
            )
        elif model is not None:
            nbytes, messages = _model_demand(kind, d, kind_sizes, model)
            out[n] = Demand(kind, nbytes, messages, "model")
            continue
        else:
            w, source = DEFAULT_WEIGHTS[kind], "default"
        out[n] = Demand(kind, 2 * (d - 1) / d * w * _GB, 2.0 * (d - 1), source)
    return out


def _resolve_tiers(tiers: Mapping[str, Any] | None) -> dict[str, Tier]:
    out = dict(DEFAULT_TIERS)
    for name, value in (tiers or {}).items():
        if name not in out:
            raise InvalidArgumentError(f"unknown tier {name!r}; the tiers are {', '.join(TIER_NAMES)}")
        base = out[name]
        if isinstance(value, Tier):
            bandwidth, latency = value.bandwidth, value.latency
        elif isinstance(value, Mapping):
            unknown = [k for k in value if k not in ("bandwidth", "latency")]
            if unknown:
                raise InvalidArgumentError(
                    f"tier {name!r}: unknown field {unknown[0]!r} (bandwidth, latency)"
                )
            bandwidth = value.get("bandwidth", base.bandwidth)
            latency = value.get("latency", base.latency)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            bandwidth, latency = value
        else:
            raise TypeError(
                f"tier {name!r} must be a Tier, a mapping with bandwidth/latency or a (bandwidth, latency) "
                f"pair, got {value!r}"
            )
        if not (isinstance(bandwidth, (int, float)) and bandwidth > 0 and math.isfinite(bandwidth)):
            raise InvalidArgumentError(
                f"tier {name!r}: bandwidth must be a positive number, got {bandwidth!r}"
            )
        if not (isinstance(latency, (int, float)) and latency >= 0 and math.isfinite(latency)):
            raise InvalidArgumentError(f"tier {name!r}: latency must be at least 0, got {latency!r}")
        out[name] = Tier(name, float(bandwidth), float(latency))
    return out


def _tier_of(nodes: int, domains: int) -> str:
    """The slowest tier a group spanning ``nodes`` nodes and ``domains`` domains uses."""
    return TIER_NAMES[0] if nodes == 1 else TIER_NAMES[1] if domains == 1 else TIER_NAMES[2]


class _Context:
    """Everything a layout's evaluation needs; per-axis results are cached by (axis, stride)."""

    def __init__(
        self,
        names: list[str],
        dims: list[int],
        world: int,
        rpn: int,
        npd: int,
        demands: dict[str, Demand],
        tiers: dict[str, Tier],
        comm_bytes: int,
        groups: list[tuple[str, ...]],
    ) -> None:
        self.names, self.dims, self.world = names, dims, world
        self.size = dict(zip(names, dims))
        self.rpn, self.npd = rpn, npd
        self.domain_ranks = rpn * npd
        self.demands, self.tiers, self.comm_bytes = demands, tiers, comm_bytes
        self.groups = groups
        #: seconds when every demand comes from the model, else relative units
        self.units = "seconds" if all(d.source == "model" for d in demands.values()) else "relative"
        self._cache: dict[tuple[str, int], tuple[int, int, str, float]] = {}
        # heaviest axes first, by their cost on the fastest tier: the tie-break of equal costs
        fast = tiers["intra-node"]
        self.by_demand = sorted(
            names, key=lambda n: (-fast.time(demands[n].bytes, demands[n].messages), names.index(n))
        )

    def axis(self, name: str, stride: int) -> tuple[int, int, str, float]:
        """(nodes, domains, tier, cost) of an axis at a stride."""
        key = (name, stride)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        n = self.size[name]
        nodes = blocks_spanned(stride, n, self.world, self.rpn)
        domains = blocks_spanned(stride, n, self.world, self.domain_ranks) if self.npd > 1 else nodes
        tier = _tier_of(nodes, domains)
        d = self.demands[name]
        cost = self.tiers[tier].time(d.bytes, d.messages) if n > 1 else 0.0
        hit = (nodes, domains, tier, cost)
        self._cache[key] = hit
        return hit

    def strides(self, order: Sequence[str]) -> list[int]:
        out = [1] * len(order)
        acc = 1
        for i in range(len(order) - 1, -1, -1):
            out[i] = acc
            acc *= self.size[order[i]]
        return out

    def cost(self, order: Sequence[str]) -> float:
        """Total cost, summed in the given axis order (so equal layouts give equal floats)."""
        stride = dict(zip(order, self.strides(order)))
        return sum(self.axis(n, stride[n])[3] for n in self.names)

    def tie_key(self, order: Sequence[str]) -> tuple[tuple[int, int], ...]:
        """Among equal costs, prefer the heaviest axis spanning the fewest domains, then nodes."""
        stride = dict(zip(order, self.strides(order)))
        spans = (self.axis(n, stride[n]) for n in self.by_demand)
        return tuple((domains, nodes) for nodes, domains, _, _ in spans)

    def group_budget(self, order: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Communicators per rank and ProcessGrid's calls per strategy for a layout."""
        kinds: list[frozenset[str]] = [frozenset([a]) if self.size[a] > 1 else frozenset() for a in order]
        kinds += [frozenset(a for a in g if self.size[a] > 1) for g in self.groups]
        communicators = global_calls = local_calls = 0
        for key in dict.fromkeys(kinds):
            ranks = math.prod(self.size[a] for a in key)
            if ranks > 1:
                communicators += 1
            if ranks == self.world:  # the whole grid: the parent group itself, no call
                continue
            global_calls += self.world // ranks
            local_calls += 1
        return communicators, {"global": global_calls, "local": local_calls, "split": local_calls}

    def layout(self, order: Sequence[str]) -> Layout:
        strides = self.strides(order)
        info = [self.axis(n, s) for n, s in zip(order, strides)]
        by_name = {n: (s, i) for n, s, i in zip(order, strides, info)}
        total = self.cost(order)
        reports = []
        warnings: list[str] = []
        for n in order:
            stride, (nodes, domains, tier, cost) = by_name[n]
            d = self.demands[n]
            reports.append(
                AxisReport(
                    name=n,
                    kind=d.kind,
                    size=self.size[n],
                    stride=stride,
                    nodes=nodes,
                    domains=domains,
                    tier=tier,
                    bytes=d.bytes,
                    messages=d.messages,
                    cost=cost,
                    share=cost / total if total > 0 else 0.0,
                )
            )
            warnings.extend(self._warnings(n, d.kind, nodes, domains))
        comms, calls = self.group_budget(order)
        return Layout(
            order=tuple(order),
            dims=tuple(self.size[n] for n in order),
            cost=total,
            axes=reports,
            communicators_per_rank=comms,
            communicator_memory_bytes=comms * self.comm_bytes,
            new_group_calls=calls,
            warnings=warnings,
        )

    def _warnings(self, name: str, kind: str | None, nodes: int, domains: int) -> list[str]:
        n = self.size[name]
        out = []
        if kind == "tensor" and nodes > 1:
            out.append(
                f"{name} (tensor-parallel) groups cross nodes: each group of {n} spans up to {nodes} nodes, "
                "so its per-layer all-reduces leave the node"
            )
        if kind in ("tensor", "expert", "context") and domains > 1 and self.npd > 1:
            out.append(
                f"{name} ({kind}-parallel) groups cross NVLink domains: each group of {n} spans up to "
                f"{domains} domains of {self.domain_ranks} ranks"
                + (
                    " (NCCL all-to-alls over groups spanning two NVL72 racks have been seen to stall)"
                    if kind == "expert"
                    else ""
                )
            )
        return out


def _candidate_orders(
    names: list[str], dims: list[int], candidates: Sequence[str | Sequence[str]] | None
) -> tuple[list[tuple[str, ...]], str]:
    """All orders of the axes of size > 1 (size-1 axes keep their slots), or the candidates given."""
    topo = ProcessTopology(names, dims)
    if candidates is not None:
        orders: list[tuple[str, ...]] = []
        for cand in candidates:
            if isinstance(cand, str):
                seq = ProcessTopology.from_order(cand).axes  # fastest first, as Megatron writes it
            else:
                seq = list(cand)
            topo.axis_indices(seq)  # unknown or repeated names fail here
            moving = [a for a in seq if topo.get_dim(a) > 1]
            missing = [a for a, d in zip(names, dims) if d > 1 and a not in moving]
            if missing:
                raise InvalidArgumentError(f"candidate order {cand!r} leaves out the axes {missing}")
            orders.append(_fill(names, dims, moving))
        if not orders:
            raise InvalidArgumentError("candidates= is empty")
        return list(dict.fromkeys(orders)), "given"
    moving = [a for a, d in zip(names, dims) if d > 1]
    return [_fill(names, dims, list(p)) for p in itertools.permutations(moving)], "all"


def _fill(names: Sequence[str], dims: Sequence[int], moving: Sequence[str]) -> tuple[str, ...]:
    """The order with the axes of size > 1 in ``moving``'s order and each size-1 axis in its own slot."""
    it = iter(moving)
    return tuple(next(it) if d > 1 else n for n, d in zip(names, dims))


def _best_first(ctx: _Context, names: list[str], dims: list[int], top: int) -> list[tuple[str, ...]]:
    """The ``top`` cheapest orders (and every order tied with the last), exactly, without building all.

    An axis's cost depends only on its stride, the product of the sizes of the axes
    faster than it, i.e. on the *set* of faster axes. Building orders from the
    fastest axis outwards, ``rest[S]``, the cheapest way to place the axes not in
    ``S`` around a set ``S`` of fast axes, is a dynamic programme over subsets;
    with it as an exact heuristic, a best-first search pops complete orders in
    ascending cost, so it stops after the ``top``-th.
    """
    moving = [a for a, d in zip(names, dims) if d > 1]
    k = len(moving)
    full = (1 << k) - 1
    prod = [1] * (1 << k)
    for mask in range(1, 1 << k):
        low = (mask & -mask).bit_length() - 1
        prod[mask] = prod[mask & (mask - 1)] * ctx.size[moving[low]]
    cost = [[ctx.axis(moving[i], prod[mask])[3] for i in range(k)] for mask in range(1 << k)]
    rest = [0.0] * (1 << k)
    for mask in range(full - 1, -1, -1):
        rest[mask] = min(cost[mask][i] + rest[mask | (1 << i)] for i in range(k) if not mask & (1 << i))
    heap: list[tuple[float, int, int, tuple[int, ...]]] = [(rest[0], 0, 0, ())]
    counter = itertools.count(1)
    found: list[tuple[str, ...]] = []
    limit = math.inf
    while heap:
        key, _, mask, seq = heapq.heappop(heap)
        if key > limit:
            break
        if mask == full:
            found.append(_fill(names, dims, [moving[i] for i in reversed(seq)]))
            if len(found) == top:
                limit = key * (1 + 1e-12) + 1e-300  # keep the orders tied with the last one
            continue
        spent = key - rest[mask]
        for i in range(k):
            if not mask & (1 << i):
                nxt = mask | (1 << i)
                heapq.heappush(heap, (spent + cost[mask][i] + rest[nxt], next(counter), nxt, (*seq, i)))
    return found


def _rank(
    ctx: _Context,
    names: list[str],
    dims: list[int],
    candidates: Sequence[str | Sequence[str]] | None,
    top: int | None,
) -> tuple[list[tuple[str, ...]], str, int]:
    """The orders kept, cheapest first; how they were found; how many orders there were."""
    moving = sum(1 for d in dims if d > 1)
    if candidates is None and moving > FULL_SEARCH_AXES:
        if moving > 16:
            raise InvalidArgumentError(f"{moving} axes of size > 1 are too many to plan (at most 16)")
        orders = _best_first(ctx, names, dims, top or 20)
        search, count = "best-first", math.factorial(moving)
    else:
        orders, search = _candidate_orders(names, dims, candidates)
        count = len(orders)
    index = {o: i for i, o in enumerate(orders)}
    orders.sort(key=lambda o: (ctx.cost(o), ctx.tie_key(o), index[o]))
    if top is not None or search == "best-first":
        orders = orders[: top or 20]
    return orders, search, count


def _refit(
    ctx: _Context,
    names: list[str],
    dims: list[int],
    candidates: Sequence[str | Sequence[str]] | None,
    best: Layout,
) -> Refit | None:
    """Fewer nodes per domain that let the best layout's domain-crossing axes fit, if that lowers the cost.

    Tried from ``nodes_per_domain - 1`` down to half of it (at least 2): the first
    that gives a cheaper best layout is kept (the fewest spare nodes).
    """
    npd = ctx.npd
    crossing = [a.name for a in best.axes if a.domains > 1 and a.cost > 0]
    if npd < 3 or not crossing:
        return None
    for used in range(npd - 1, max(2, -(-npd // 2)) - 1, -1):
        sub = _Context(
            names, dims, ctx.world, ctx.rpn, used, ctx.demands, ctx.tiers, ctx.comm_bytes, ctx.groups
        )
        orders, _, _ = _rank(sub, names, dims, candidates, 1)
        cost = sub.cost(orders[0])
        if cost < best.cost * (1 - 1e-9):
            lay = sub.layout(orders[0])
            fitted = [a.name for a in lay.axes if a.name in crossing and a.domains == 1]
            nodes = -(-ctx.world // ctx.rpn)
            domains = -(-nodes // used)
            what = (
                f"the {', '.join(fitted)} groups stay inside one domain" if fitted else "fewer groups cross"
            )
            text = (
                f"use {used} of the {npd} nodes of each NVLink domain ({used * ctx.rpn} ranks per domain, "
                f"{npd - used} spare node(s) each, {domains} domains): {what}, and the best order "
                f"{lay.megatron_order} costs {_seconds(cost, ctx.units)} "
                f"instead of {_seconds(best.cost, ctx.units)}; "
                f"the launcher must then place ranks contiguously on the used nodes of each domain"
            )
            return Refit(used, npd - used, domains, lay.order, lay.dims, cost, text)
    return None


def _splits(ctx: _Context, best: Layout) -> list[Split]:
    """Outer x inner splits of the best layout's data/context axes that put ``inner`` in a node or domain."""
    out: list[Split] = []
    for report in best.axes:
        n, s, name = report.size, report.stride, report.name
        d = ctx.demands[name]
        splittable = d.kind in ("data", "context") or (d.kind is None and d.source == "weight")
        if not splittable or report.cost == 0:
            continue
        for level, block, spanned in (
            ("node", ctx.rpn, report.nodes),
            ("domain", ctx.domain_ranks, report.domains),
        ):
            if level == "domain" and ctx.npd == 1:
                continue
            if spanned <= 1 or s >= block or block % s:
                continue
            inner = math.gcd(n, block // s)
            if not 1 < inner < n:
                continue
            outer = n // inner
            inner_name, outer_name = f"{name}_inner", f"{name}_outer"
            if inner_name in ctx.size or outer_name in ctx.size:
                continue
            i_nodes = blocks_spanned(s, inner, ctx.world, ctx.rpn)
            i_domains = blocks_spanned(s, inner, ctx.world, ctx.domain_ranks) if ctx.npd > 1 else i_nodes
            o_nodes = blocks_spanned(s * inner, outer, ctx.world, ctx.rpn)
            o_domains = (
                blocks_spanned(s * inner, outer, ctx.world, ctx.domain_ranks) if ctx.npd > 1 else o_nodes
            )
            inner_tier, outer_tier = _tier_of(i_nodes, i_domains), _tier_of(o_nodes, o_domains)
            if TIER_NAMES.index(inner_tier) >= TIER_NAMES.index(report.tier):
                continue
            ring = (n - 1) / n
            inner_part = (inner - 1) / inner / ring
            outer_part = (outer - 1) / outer / ring / inner
            split_cost = ctx.tiers[inner_tier].time(d.bytes * inner_part, d.messages * (inner - 1) / (n - 1))
            split_cost += ctx.tiers[outer_tier].time(d.bytes * outer_part, d.messages * (outer - 1) / (n - 1))
            if not split_cost < report.cost:
                continue
            pos = best.order.index(name)
            order = (*best.order[:pos], outer_name, inner_name, *best.order[pos + 1 :])
            dims = (*best.dims[:pos], outer, inner, *best.dims[pos + 1 :])
            text = (
                f"split {name}={n} into {outer_name}={outer} x {inner_name}={inner}: the {name} groups keep "
                f"their ranks (the group of [{outer_name}, {inner_name}] is the old {name} group), but the "
                f"collective runs in two levels, over {inner} ranks {'inside one ' + level} "
                f"({inner_tier}) with the full volume, then over {outer} ranks ({outer_tier}) with 1/{inner} "
                f"of it; {name} cost {_seconds(report.cost, ctx.units)} -> {_seconds(split_cost, ctx.units)} "
                f"per step, for 2 more communicators per rank (1 if the flat group is no longer used)"
            )
            out.append(
                Split(
                    name,
                    level,
                    outer,
                    inner,
                    order,
                    dims,
                    inner_tier,
                    outer_tier,
                    report.cost,
                    split_cost,
                    text,
                )
            )
    return out


def plan(
    sizes: SizesArg = None,
    *,
    order: str | None = None,
    world_size: int | None = None,
    ranks_per_node: int | None = None,
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
        world_size: Number of ranks (default: ``WORLD_SIZE`` when set, else the
            product of the sizes; needed when a size is free).
        ranks_per_node: Ranks on each node (default: ``LOCAL_WORLD_SIZE``); rank
            ``r`` is on node ``r // ranks_per_node``.
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
    if world_size is None:
        world_size = _env_int("WORLD_SIZE")
    if world_size is not None:
        world_size = _positive_int("world_size", world_size)
    if ranks_per_node is None:
        ranks_per_node = _env_int("LOCAL_WORLD_SIZE")
        if ranks_per_node is None:
            raise InvalidArgumentError("plan needs ranks_per_node (or LOCAL_WORLD_SIZE in the environment)")
    rpn = _positive_int("ranks_per_node", ranks_per_node)
    npd = 1 if nodes_per_domain is None else _positive_int("nodes_per_domain", nodes_per_domain)
    if top is not None:
        top = _positive_int("top", top)
    comm_bytes = COMMUNICATOR_BYTES if communicator_bytes is None else communicator_bytes
    if isinstance(comm_bytes, bool) or not isinstance(comm_bytes, int) or comm_bytes < 0:
        raise InvalidArgumentError(f"communicator_bytes must be an integer of at least 0, got {comm_bytes!r}")

    names, dims, world = _resolve_sizes(sizes, order, world_size)
    topo = ProcessTopology(names, dims)
    spec = None if model is None else ModelSpec.from_value(model)
    demands = _demands(names, dims, weights, spec, topo)
    tier_map = _resolve_tiers(tiers)
    extra: list[tuple[str, ...]] = []
    for g in groups:
        axes = [g] if isinstance(g, str) else list(g)
        topo.axis_indices(axes)  # unknown or repeated names fail here
        extra.append(tuple(axes))
    ctx = _Context(names, dims, world, rpn, npd, demands, tier_map, comm_bytes, extra)

    orders, search, count = _rank(ctx, names, dims, candidates, top)
    layouts = [ctx.layout(o) for o in orders]
    given = tuple(names)
    given_layout = next((lay for lay in layouts if lay.order == given), None) or ctx.layout(given)
    rank = next((i for i, lay in enumerate(layouts, 1) if lay.order == given), None)

    notes: list[str] = []
    if world % rpn:
        notes.append(f"{world} ranks do not fill nodes of {rpn}: the last node holds {world % rpn}")
    nodes = -(-world // rpn)
    if npd > 1 and nodes % npd:
        notes.append(
            f"{nodes} nodes do not fill NVLink domains of {npd}: the last domain holds {nodes % npd} nodes"
        )
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
        suggestions=_splits(ctx, layouts[0]),
        refit=_refit(ctx, names, dims, candidates, layouts[0]),
        warnings=notes,
    )


class _PlanModule(types.ModuleType):
    """This module, callable: ``proctopo.plan(...)`` is :func:`plan`, and ``proctopo.plan.Plan`` etc. stay."""

    def __call__(self, *args: Any, **kwargs: Any) -> Plan:
        return plan(*args, **kwargs)


sys.modules[__name__].__class__ = _PlanModule
