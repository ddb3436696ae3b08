"""The planner's vocabulary and inputs: kinds of traffic, conventions, exposed fractions, the model, sizes.

Everything :func:`proctopo.plan` takes is read and checked here: the axis sizes
(with free ones filled as ``dims_create`` fills them), each axis's kind from its
name and the stack's convention, the machine (:mod:`proctopo.machine`) and its link
overrides, the exposed fraction of each kind of traffic, and a short model
description whose numbers may be written as people write them (``70B``, ``1.5T``).
One rule lives here for every number that reaches a cost: it must be finite, and
so must every cost it makes (:func:`check_costs_finite`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from ..errors import InvalidArgumentError
from ..machine import Level, Machine, positive_int
from ..machine import machine as load_machine
from ..topology import ProcessTopology, check_sizes, dims_create, parse_order

__all__ = [
    "COMMUNICATOR_BYTES",
    "CONVENTIONS",
    "DEFAULT_WEIGHTS",
    "EXPOSED",
    "KINDS",
    "MAX_LISTED_ENTRIES",
    "Demand",
    "ModelSpec",
    "check_listed",
    "kind_of",
    "parse_quantity",
]

#: Kinds of traffic the planner knows: tensor-parallel all-reduces, context-parallel
#: K/V exchange, expert all-to-alls, data-parallel gradient all-reduce, FSDP's
#: all-gathers and reduce-scatter, pipeline sends.
KINDS: tuple[str, ...] = ("tensor", "context", "expert", "data", "fsdp", "pipe")

#: The fraction of each kind's communication time that the step waits for (the rest
#: overlaps compute), by default. Reasons (docs/plan.md, "Overlap"):
#:
#: - tensor 1.0: Megatron's tensor-parallel all-reduces (or reduce-scatter and
#:   all-gather with sequence parallelism) sit between the matrix multiplications
#:   that need their result; hiding them takes explicit overlap (``--tp-comm-overlap``).
#: - context 1.0: ring attention passes K/V chunks while it computes on the last one,
#:   but how much it hides depends on the attention's compute, which the planner does
#:   not model; it charges all of it.
#: - expert 1.0: token dispatch and combine wait for routing and feed the experts.
#: - pipe 1.0: a stage cannot start a micro-batch before its activations arrive;
#:   pipeline sends are on the critical path.
#: - data 0.2 and fsdp 0.2: gradients are reduced bucket by bucket while the backward
#:   pass goes on (PyTorch DDP, Li et al. 2020; Megatron's ``overlap_grad_reduce``;
#:   FSDP prefetches its all-gathers and overlaps its reduce-scatters); the last
#:   bucket, and with gradient accumulation all that the last micro-batch's backward
#:   cannot cover, is left. 20% is an assumption, not a measurement: pass your own.
EXPOSED: dict[str, float] = {
    "tensor": 1.0,
    "context": 1.0,
    "expert": 1.0,
    "data": 0.2,
    "fsdp": 0.2,
    "pipe": 1.0,
}

#: Default per-axis traffic by kind, without a model: gigabytes each rank all-reduces
#: per step with its group. They encode the usual intensity ranking (tensor > context
#: > expert > data > pipe), a factor 2 apart; they are assumptions, not measurements.
#: Pass ``model=`` to estimate from a model, or ``weights=`` to give your own.
DEFAULT_WEIGHTS: dict[str, float] = {
    "tensor": 16.0,
    "context": 8.0,
    "expert": 4.0,
    "data": 2.0,
    "fsdp": 2.0,
    "pipe": 1.0,
}

#: Device memory of one NCCL communicator, per rank: 688 MiB, the larger of the two
#: figures measured with PyTorch on 4 x A100 over NVLink in
#: https://github.com/NVIDIA/nccl/issues/964 (544 MiB for a group of 2 GPUs, 688 MiB
#: for larger groups). One measurement on one machine, not a law: override with
#: ``communicator_bytes=``.
COMMUNICATOR_BYTES: int = 688 * 2**20

#: How the axes are read: ``"megatron"`` (Megatron's tokens; ``ep`` subdivides
#: ``dp x cp``, as :func:`proctopo.megatron.layout` derives it), ``"torchtitan"``
#: (``dp_shard`` is FSDP, ``dp_replicate`` its replicas), ``"deepspeed"``
#: (``pipe``/``data``/``model``) or ``"generic"`` (each axis an axis of one grid).
CONVENTIONS: tuple[str, ...] = ("megatron", "torchtitan", "deepspeed", "generic")

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
    "dp_replicate": "data",
    "fsdp": "fsdp",
    "dp_shard": "fsdp",
    "pp": "pipe",
    "pipe": "pipe",
}
_SPLIT_SUFFIXES = ("_outer", "_inner")

#: Megatron's order tokens with a size of their own (``dp`` is derived).
MEGATRON_TOKENS: tuple[str, ...] = ("tp", "cp", "ep", "dp", "pp")
#: Each convention's order, fastest first, by kind: the tie-break's last word.
CONVENTIONAL_KINDS: tuple[str, ...] = ("tensor", "context", "expert", "fsdp", "data", "pipe")

SizesArg = Union[Mapping[str, Any], None]
GroupArg = Union[str, Sequence[str]]


def kind_of(name: str) -> str | None:
    """The kind of traffic an axis name stands for, or ``None`` for a name the planner does not know.

    Megatron's short names, DeepSpeed's long ones and torchtitan's ``dp_shard`` (FSDP)
    and ``dp_replicate`` are known; ``<name>_outer`` and ``<name>_inner`` (a split
    axis) take the kind of ``<name>``.

    >>> kind_of("tp"), kind_of("model"), kind_of("dp_shard"), kind_of("dp_outer"), kind_of("vocab")
    ('tensor', 'tensor', 'fsdp', 'data', None)
    """
    if name in ALIASES:
        return ALIASES[name]
    for suffix in _SPLIT_SUFFIXES:
        if name.endswith(suffix):
            return ALIASES.get(name[: -len(suffix)])
    return None


#: The kinds every stack lays out outside tensor parallelism, slower than it: context, FSDP,
#: data and pipeline. Expert parallelism is not among them: its groups belong to another
#: layout than the tensor groups (Megatron's expert layout, with its own etp; torchtitan's
#: expert layout, whose ep takes its ranks from dp_shard, cp and tp), so a tensor axis
#: outside it is no reversal.
OUTSIDE_TENSOR: tuple[str, ...] = ("context", "fsdp", "data", "pipe")


def innermost_first(outermost: str, innermost: str) -> bool:
    """Whether axes so named, ``outermost`` laid out slowest and ``innermost`` fastest, look
    listed the other way round: a tensor axis outside a context, FSDP, data or pipeline one
    (:data:`OUTSIDE_TENSOR`), the order of a list written innermost first.

    >>> innermost_first("tp", "dp_shard"), innermost_first("model", "cp"), innermost_first("dp", "tp")
    (True, True, False)
    >>> innermost_first("tp", "ep"), innermost_first("tp", "vocab")
    (False, False)
    """
    return kind_of(outermost) == "tensor" and kind_of(innermost) in OUTSIDE_TENSOR


# --------------------------------------------------------------------------- numbers people type
_SUFFIX = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "B": 10**9,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
}
_QUANTITY = re.compile(
    r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(Ki|Mi|Gi|[KMBGT]?)\s*$"
)


def parse_quantity(value: Any, what: str, *, whole: bool = False) -> float | int:
    """A count as people write it: ``70e9``, ``70B``, ``1.5T``, ``8Ki`` (8192); checked finite.

    The suffixes ``K``, ``M``, ``B`` (or ``G``) and ``T`` are 10**3, 10**6, 10**9 and
    10**12; ``Ki``, ``Mi`` and ``Gi`` are 2**10, 2**20 and 2**30 (so a sequence of
    8,192 tokens is ``8Ki`` or ``8192``; ``8K`` is 8,000). ``whole`` asks for an integer.

    Raises:
        InvalidArgumentError: text that is no such number, a value that is not finite
            (or too large for a float), or not whole when ``whole`` asks for it.

    >>> parse_quantity("70B", "params"), parse_quantity("1.5T", "params")
    (70000000000.0, 1500000000000.0)
    >>> parse_quantity("8Ki", "seq_len", whole=True)
    8192
    >>> parse_quantity("1e309", "params")
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: params must be a finite number, got '1e309'
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a number, got {value!r}")
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if match is None:
            raise InvalidArgumentError(
                f"{what} must be a number such as 70e9, 70B, 1.5T or 8Ki, got {value!r}"
            )
        digits, suffix = match.groups()
        scale = _SUFFIX[suffix]
        if whole and re.fullmatch(r"[0-9]+", digits):
            return _checked(int(digits) * scale, value, what, whole)
        try:
            number: float | int = float(digits) * scale
        except OverflowError:
            number = math.inf
        return _checked(number, value, what, whole)
    if not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{what} must be a number, got {value!r}")
    return _checked(value, value, what, whole)


def _checked(number: float | int, given: Any, what: str, whole: bool) -> float | int:
    try:
        as_float = float(number)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float):
        raise InvalidArgumentError(f"{what} must be a finite number, got {given!r}")
    if whole:
        if isinstance(number, float):
            if not number.is_integer():
                raise InvalidArgumentError(f"{what} must be a whole number, got {given!r}")
            return int(number)
        return int(number)
    return as_float


# --------------------------------------------------------------------------- the model
#: Names other tools give the model's fields (Megatron-LM's arguments), and the field each is.
MODEL_ALIASES: dict[str, str] = {
    "hidden_size": "hidden",
    "seq_length": "seq_len",
    "sequence_length": "seq_len",
    "num_layers": "layers",
    "micro_batch_size": "micro_batch",
    "global_batch_size": "global_batch",
    "num_microbatches": "microbatches",
    "moe_router_topk": "moe_topk",
}
_WHOLE_FIELDS = frozenset(
    (
        "hidden",
        "seq_len",
        "micro_batch",
        "layers",
        "microbatches",
        "global_batch",
        "bytes_per_value",
        "grad_bytes",
        "moe_topk",
        "moe_layers",
        "kv_hidden",
    )
)


@dataclass(frozen=True)
class ModelSpec:
    """A short model description from which :func:`plan` estimates each axis's traffic.

    Every number may be given as text with a suffix (``params="70B"``, ``seq_len="8Ki"``,
    see :func:`parse_quantity`); it is stored as a number.

    Attributes:
        params: Parameters of the whole model.
        hidden: Hidden size ``h``.
        seq_len: Sequence length ``s`` (tokens per sample).
        micro_batch: Micro-batch size ``b`` (samples).
        layers: Transformer layers ``L``.
        microbatches: Micro-batches per step per pipeline ``m``. Default: from
            ``global_batch``, else 4 x the pipeline size (which keeps the pipeline
            bubble ``(p-1)/m`` under 25%).
        global_batch: Samples per step over the whole job; with ``micro_batch`` and
            the data-parallel size it gives ``microbatches``.
        bytes_per_value: Bytes per activation and parameter value (2: bf16).
        grad_bytes: Bytes per gradient value in the data-parallel reduction (2: bf16).
        moe_topk: Experts each token is routed to (2, as in GShard and Mixtral).
        moe_layers: Layers with experts (default: all).
        expert_params: Parameters inside experts (part of ``params``), whose
            gradients are also sharded over the expert axis (default 0: a dense model).
        kv_hidden: Width of K (and of V): key/value heads x head size (default:
            ``hidden``; less with grouped-query attention).

    >>> ModelSpec.from_value({"params": "70B", "hidden_size": 8192, "seq_len": "8Ki", "micro_batch": 1,
    ...                       "layers": 80}).seq_len
    8192
    """

    params: float
    hidden: int
    seq_len: int
    micro_batch: int
    layers: int
    microbatches: int | None = None
    global_batch: int | None = None
    bytes_per_value: int = 2
    grad_bytes: int = 2
    moe_topk: int = 2
    moe_layers: int | None = None
    kv_hidden: int | None = None
    expert_params: float = 0.0

    def __post_init__(self) -> None:
        optional = ("microbatches", "global_batch", "moe_layers", "kv_hidden")
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            number = parse_quantity(value, f"model {name}", whole=name in _WHOLE_FIELDS)
            object.__setattr__(self, name, number)
            if name == "expert_params":
                if not 0 <= number <= self.params:
                    raise InvalidArgumentError(f"model expert_params must be in [0, params], got {value!r}")
            elif not number > 0:
                raise InvalidArgumentError(f"model {name} must be positive, got {value!r}")
        if self.moe_layers is not None and self.moe_layers > self.layers:
            raise InvalidArgumentError(
                f"model moe_layers must be at most layers ({self.layers}), got {self.moe_layers}"
            )

    @classmethod
    def from_value(cls, value: ModelSpec | Mapping[str, Any]) -> ModelSpec:
        """A :class:`ModelSpec` from itself or from a mapping of its field names (or :data:`MODEL_ALIASES`).

        Raises:
            InvalidArgumentError: a key that is not a field, a field given twice, or a
                missing required one.
        """
        if isinstance(value, ModelSpec):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(f"model must be a ModelSpec or a mapping, got {type(value).__name__}")
        known = set(cls.__dataclass_fields__)
        fields: dict[str, Any] = {}
        for key, v in value.items():
            name = MODEL_ALIASES.get(key, key)
            if name not in known:
                raise InvalidArgumentError(
                    f"model has no field {key!r}; the fields are {', '.join(cls.__dataclass_fields__)}"
                )
            if name in fields:
                raise InvalidArgumentError(f"model {name} is given twice (as {key!r} too)")
            fields[name] = v
        missing = [k for k in ("params", "hidden", "seq_len", "micro_batch", "layers") if k not in fields]
        if missing:
            raise InvalidArgumentError(f"model needs {', '.join(missing)} (got {sorted(value)})")
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def check_stages(self, pipe: int) -> None:
        """Raise unless every one of ``pipe`` pipeline stages can hold a layer (``layers >= pipe``).

        The layers need not divide evenly: the planner prices ``layers / pipe`` per stage,
        and megatron-core's uneven split (``num_layers_in_first_pipeline_stage``, ``..._last_...``)
        takes any count of at least one layer per stage. Only its custom layouts and
        ``account_for_embedding_in_pipeline_split`` / ``..._loss_...`` give a stage no
        transformer layer, which the planner does not model.

        Raises:
            InvalidArgumentError: fewer layers than stages, both named.

        >>> ModelSpec(7e9, 4096, 4096, 1, 30).check_stages(16)  # not a multiple: 30 layers over 16 stages
        >>> ModelSpec(7e9, 4096, 4096, 1, 12).check_stages(16)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        proctopo.errors.InvalidArgumentError: model layers 12 is fewer than the 16 pipeline stages: ...
        """
        if self.layers < pipe:
            raise InvalidArgumentError(
                f"model layers {self.layers} is fewer than the {pipe} pipeline stages: each stage holds one "
                "layer at least (the layers need not divide evenly)"
            )

    def microbatches_for(self, pipe: int, data: int) -> int:
        """Micro-batches per step per pipeline, given the pipeline and data-parallel sizes (the
        model read for that pipeline: its stages checked by :meth:`check_stages` first).

        Raises:
            InvalidArgumentError: fewer layers than pipeline stages; ``global_batch`` is not
                a multiple of ``micro_batch`` x the data-parallel size, or disagrees with
                ``microbatches``.

        >>> ModelSpec(405e9, 16384, 8192, 1, 126, global_batch=2048).microbatches_for(16, 128)
        16
        """
        self.check_stages(pipe)
        if self.global_batch is None:
            return self.microbatches if self.microbatches is not None else 4 * pipe
        per_step = self.micro_batch * data
        m, rest = divmod(self.global_batch, per_step)
        if rest or m == 0:
            raise InvalidArgumentError(
                f"model global_batch {self.global_batch} is not a multiple of micro_batch x "
                f"data-parallel size = {self.micro_batch} x {data} = {per_step}"
            )
        if self.microbatches is not None and self.microbatches != m:
            raise InvalidArgumentError(
                f"model microbatches {self.microbatches} disagrees with global_batch / (micro_batch x "
                f"data-parallel size) = {self.global_batch} / {per_step} = {m}"
            )
        return m


# --------------------------------------------------------------------------- traffic
@dataclass(frozen=True)
class Demand:
    """One kind of traffic of one group, per rank and per step.

    Attributes:
        kind: One of :data:`KINDS`, or ``None`` for an axis of no known kind.
        bytes: Bytes each rank sends per step.
        messages: Messages (latency terms) per step.
        exposed: The fraction of its time the step waits for (:data:`EXPOSED`).
        source: ``"model"`` (from a :class:`ModelSpec`), ``"weight"`` (``weights=``)
            or ``"default"`` (:data:`DEFAULT_WEIGHTS`).
        group: The axes whose groups carry it (one axis, or e.g. ``("dp", "cp")`` for
            Megatron's dense gradients), in the layout ``layout``.
        layout: ``"dense"`` or ``"expert"`` (Megatron's two layouts), else ``""``.
        what: What it is, in words.
    """

    kind: str | None
    bytes: float
    messages: float
    exposed: float
    source: str
    group: tuple[str, ...] = ()
    layout: str = ""
    what: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bytes": self.bytes,
            "messages": self.messages,
            "exposed": self.exposed,
            "source": self.source,
            "group": list(self.group),
            "layout": self.layout,
            "what": self.what,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Demand:
        return cls(**{**d, "group": tuple(d["group"])})


def resolve_exposed(exposed: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, float]:
    """The exposed fraction of each kind (and of any axis named), defaults first.

    Raises:
        InvalidArgumentError: a key that is neither a kind nor an axis, a fraction outside [0, 1].
    """
    out: dict[str, float] = dict(EXPOSED)
    for key, value in (exposed or {}).items():
        if key not in EXPOSED and key not in names:
            raise InvalidArgumentError(
                f"exposed fraction for {key!r}: not a kind of traffic ({', '.join(KINDS)}) nor an axis "
                f"({', '.join(names)})"
            )
        number = parse_quantity(value, f"the exposed fraction of {key!r}")
        if not 0 <= number <= 1:
            raise InvalidArgumentError(
                f"the exposed fraction of {key!r} must be in [0, 1] (0: hidden, 1: all on the step), "
                f"got {value!r}"
            )
        out[key] = float(number)
    return out


def check_costs_finite(demands: Mapping[str, Sequence[Demand]], machine: Machine) -> None:
    """Raise unless every demand, over every level of the machine, costs a finite time.

    The one home of the rule that no figure may make a cost infinite (a weight of
    1e308 GB, a bandwidth of 1e-300 bytes/s, a model of 1e300 parameters): such a plan
    would rank nothing and print ``inf``. Checked once, before any search.

    Raises:
        InvalidArgumentError: names the axis, the level and the figures.
    """
    for axis, items in demands.items():
        for d in items:
            if not (math.isfinite(d.bytes) and math.isfinite(d.messages)):
                raise InvalidArgumentError(
                    f"the traffic of axis {axis!r} ({d.what or d.kind}) is not finite ({d.bytes!r} bytes, "
                    f"{d.messages!r} messages per step): the inputs behind it are too large"
                )
            for level in machine.levels:
                t = level.time(d.bytes, d.messages)
                if not math.isfinite(t):
                    raise InvalidArgumentError(
                        f"the traffic of axis {axis!r} ({d.bytes:.3g} bytes, {d.messages:.3g} messages "
                        f"per step) takes an infinite time over level {level.name!r} "
                        f"({level.effective_bandwidth!r} bytes/s, {level.latency!r} s per message): "
                        "a figure is out of range"
                    )


#: The most axis entries a plan's layouts list: layouts kept x axes named. Each layout
#: lists every axis, size 1 or not, in its order, its sizes and its mesh (the topology
#: it stands for), so this bounds the result and its JSON (about 65 bytes an entry,
#: 17 MB at the bound).
MAX_LISTED_ENTRIES = 1 << 18


def check_listed(layouts: int, axes: int) -> None:
    """Raise unless ``layouts`` layouts of ``axes`` axes each stay within :data:`MAX_LISTED_ENTRIES`.

    Raises:
        InvalidArgumentError: names both numbers, their product and the most layouts allowed.

    >>> check_listed(1000, 262)
    >>> check_listed(1000, 2007)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidArgumentError: 1000 layouts (top) x 2007 axes = 2007000 axis entries, ...
    """
    if layouts * axes > MAX_LISTED_ENTRIES:
        most = MAX_LISTED_ENTRIES // axes
        fix = f"keep at most {most} layouts (top={most}), or name" if most else "name"
        raise InvalidArgumentError(
            f"{layouts} layouts (top) x {axes} axes = {layouts * axes} axis entries, but a plan lists at "
            f"most {MAX_LISTED_ENTRIES} (each layout lists every axis): {fix} fewer axes (an axis of "
            "size 1 changes no layout)"
        )


# --------------------------------------------------------------------------- sizes and machine
def resolve_sizes(
    sizes: SizesArg, order: str | None, world_size: int | None, megatron: bool
) -> tuple[list[str], list[int], int, ProcessTopology | None]:
    """Axis names (slowest first), filled sizes, the world size and the grid they make (its
    topology checks every rule).

    With ``megatron``, ``dp`` is Megatron's derived size (``world / (tp * cp * pp)``) and
    ``ep`` (with ``etp``) is not a factor of the world: the result lists the tokens
    slowest first, ``dp`` filled, ``ep`` and ``etp`` as given, and no grid (megatron-core
    derives two layouts from an order).
    """
    if sizes is None and order is None:
        raise InvalidArgumentError("plan needs the axis sizes, e.g. plan({'tp': 8, 'dp': 0}, world_size=64)")
    given = dict(sizes or {})
    for name, size in given.items():
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"the size of axis {name!r} must be an integer, got {size!r}")
    if megatron:
        return (*_megatron_sizes(given, order, world_size), None)
    if order is not None:
        names = parse_order(order)[::-1]  # slowest first, as the axes of a topology
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
    if order is not None:
        topo.axis_indices(list(given))  # a size for a name the order does not name fails here
    if world_size is not None:
        topo.check_world_size(world_size)
    return names, dims, topo.world_size(), topo


def _megatron_sizes(
    given: dict[str, int], order: str | None, world_size: int | None
) -> tuple[list[str], list[int], int]:
    tokens = list(MEGATRON_TOKENS)
    unknown = [n for n in given if n not in (*tokens, "etp")]
    if unknown:
        raise InvalidArgumentError(
            f"axis {unknown[0]!r} is not one of Megatron's ({', '.join(tokens)}, and etp for expert tensor "
            "parallelism); without --megatron (or a Megatron order string) any names are planned as one grid"
        )
    written = parse_order(order) if order is not None else []
    strange = [t for t in written if t not in tokens]
    if strange:
        raise InvalidArgumentError(
            f"order {order!r} names {strange[0]!r}; Megatron's tokens are {', '.join(tokens)}"
        )
    dense = {t: given.get(t, 1) for t in ("tp", "cp", "pp")}
    check_sizes(dense)  # sizes below 1 fail here, in the core's words
    dp = given.get("dp", 0)
    if dp == 0:
        if world_size is None:
            raise InvalidArgumentError(
                "Megatron's dp is derived from the world size: give world_size (or dp)"
            )
        try:
            dp = dims_create(world_size, [*dense.values(), 0])[-1]
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(
                f"cannot derive dp from world size {world_size} and tp * cp * pp = "
                f"{' * '.join(map(str, dense.values()))} = {math.prod(dense.values())}: {exc}"
            ) from None
    # Megatron's dense grid: its sizes (dp's too) and their product, the world size.
    grid = ProcessTopology(["pp", "dp", "cp", "tp"], [dense["pp"], dp, dense["cp"], dense["tp"]])
    if world_size is None:
        world_size = grid.world_size()
    else:
        grid.check_world_size(world_size)
    ep, etp = given.get("ep", 1), given.get("etp", dense["tp"])
    check_sizes({"ep": ep, "etp": etp})
    # The order as written (megatron-core completes it), else Megatron's default order.
    order_tokens = written if order is not None else ["tp", "cp", "ep", "dp", "pp"]
    names = order_tokens[::-1]
    dims = [{"dp": dp, "ep": ep}.get(t, dense.get(t, 1)) for t in names]
    if etp != dense["tp"] or "etp" in given:
        names.append("etp")
        dims.append(etp)
    return names, dims, world_size


#: The names the command line and older plans used for the default machine's levels.
LEVEL_ALIASES: dict[str, str] = {"intra-node": "node", "intra-domain": "domain", "inter-domain": "network"}


def resolve_machine(
    spec: Any,
    ranks_per_node: int | None,
    nodes_per_domain: int | None,
    tiers: Mapping[str, Any] | None,
) -> Machine:
    """The machine: a preset, a file, a mapping or a :class:`~proctopo.machine.Machine` (else the default
    machine of ``ranks_per_node`` and ``nodes_per_domain``), with the counts and links given replacing
    its own.

    ``tiers`` maps a level name (or ``intra-node``/``intra-domain``/``inter-domain``
    for the default machine's levels) to ``{"bandwidth": ..., "latency": ...,
    "oversubscription": ...}``, a :class:`~proctopo.machine.Level` or a ``(bandwidth, latency)`` pair.
    """
    if ranks_per_node is not None:
        ranks_per_node = positive_int("ranks_per_node", ranks_per_node)
    if nodes_per_domain is not None:
        nodes_per_domain = positive_int("nodes_per_domain", nodes_per_domain)
    if spec is None:
        if ranks_per_node is None:
            raise InvalidArgumentError(
                "plan needs ranks_per_node, or a machine (a preset such as 'hgx-h100', or a machine file)"
            )
        m = Machine.default(ranks_per_node, nodes_per_domain or 1)
    else:
        m = load_machine(spec).with_counts(ranks_per_node, nodes_per_domain)
    changes: dict[str, dict[str, Any]] = {}
    for name, value in (tiers or {}).items():
        level = LEVEL_ALIASES.get(name, name) if name not in [lv.name for lv in m.levels] else name
        m.index(level)  # an unknown level fails here, naming the machine's levels
        if isinstance(value, Level):
            fields: dict[str, Any] = {
                "bandwidth": value.bandwidth,
                "latency": value.latency,
                "oversubscription": value.oversubscription,
            }
        elif isinstance(value, Mapping):
            fields = dict(value)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            fields = {"bandwidth": value[0], "latency": value[1]}
        else:
            raise InvalidArgumentError(
                f"level {name!r} must be given as a Level, a mapping of bandwidth/latency/oversubscription "
                f"or a (bandwidth, latency) pair, got {value!r}"
            )
        changes.setdefault(level, {}).update(fields)
    return m.with_links(changes) if changes else m
