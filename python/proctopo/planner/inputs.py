"""The planner's vocabulary and inputs: kinds of parallelism, link tiers, the model description, axis sizes.

Everything :func:`proctopo.plan` takes is read and checked here: the axis sizes
(with free ones filled as ``dims_create`` fills them), each axis's kind from its
name, the link tiers of the alpha-beta model and a short model description.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from ..errors import InvalidArgumentError
from ..machine import TIER_NAMES
from ..topology import ProcessTopology, dims_create

__all__ = [
    "COMMUNICATOR_BYTES",
    "DEFAULT_TIERS",
    "DEFAULT_WEIGHTS",
    "KINDS",
    "TIER_NAMES",
    "Demand",
    "ModelSpec",
    "Tier",
    "kind_of",
]

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

ALIASES: dict[str, str] = {
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
    if name in ALIASES:
        return ALIASES[name]
    for suffix in _SPLIT_SUFFIXES:
        if name.endswith(suffix):
            return ALIASES.get(name[: -len(suffix)])
    return None


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


def resolve_sizes(
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
            raise InvalidArgumentError(f"the free axes {free} (size 0) need a world size to fill them")
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


def resolve_tiers(tiers: Mapping[str, Any] | None) -> dict[str, Tier]:
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
