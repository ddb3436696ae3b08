"""The traffic model: each axis's demands (bytes and messages per rank per step) and what they cost.

An axis's demands come from a :class:`~proctopo.planner.ModelSpec` (the formulas of
docs/plan.md), from ``weights=`` or from :data:`~proctopo.planner.DEFAULT_WEIGHTS`,
read in the stack's convention (Megatron's ``dp`` carries the dense gradients over
``dp x cp`` and the expert gradients over the expert data-parallel axis; torchtitan's
``dp_shard`` is FSDP). A demand moving over a group costs the alpha-beta time of the
level whose links the group uses (:meth:`proctopo.machine.Machine.reach`), of which
the step waits for the exposed fraction.

:class:`Costing` prices one axis at one stride: its exposed seconds (what layouts are
ranked by), its total seconds, and the tie-break's measure, the same in every order
so that equal layouts compare equal: both are kept as integers of a fixed unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..errors import InvalidArgumentError
from ..machine import Machine
from ..topology import ProcessTopology
from .inputs import ALIASES, DEFAULT_WEIGHTS, KINDS, Demand, ModelSpec, kind_of

if TYPE_CHECKING:
    import numpy as np

_GB = 1e9
#: The keys of the ranking are integers of 2**-44 of the most any layout could cost, so
#: that sums are exact (equal layouts tie exactly) and fit 64 bits for up to 2**19 terms.
_KEY_BITS = 44
#: The most (stride, size) geometries a Costing keeps (memory stays bounded when no two repeat).
_CACHE_LIMIT = 1 << 16


# --------------------------------------------------------------------------- traffic of one kind
def _ring_all_reduce(nbytes: float, n: int) -> tuple[float, float]:
    """Bytes and messages per rank of a ring all-reduce of ``nbytes`` over a group of ``n``:
    ``2(n-1)/n * nbytes`` bytes in ``2(n-1)`` steps (reduce-scatter, then all-gather)."""
    if n <= 1:
        return 0.0, 0.0
    return 2 * (n - 1) / n * nbytes, 2.0 * (n - 1)


def _traffic(kind: str, n: int, sizes: Mapping[str, int], model: ModelSpec, m: int) -> tuple[float, float]:
    """Bytes and messages per rank per step of ``kind`` over a group of ``n`` (docs/plan.md)."""
    if n <= 1:
        return 0.0, 0.0
    t, c, e, p, f = sizes["tensor"], sizes["context"], sizes["expert"], sizes["pipe"], sizes["fsdp"]
    b, s, h, bv = model.micro_batch, model.seq_len, model.hidden, model.bytes_per_value
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
    held = (model.params - model.expert_params + model.expert_params / e) / (t * p)  # parameters per rank
    if kind == "data":  # ring all-reduce of this rank's gradients (FSDP-sharded ones), once per step
        return _ring_all_reduce(held / f * model.grad_bytes, n)
    if kind == "fsdp":  # all-gather forward and backward, reduce-scatter of the gradients, per step
        volume = (n - 1) / n * held * (2 * bv + model.grad_bytes)
        return volume, 3 * (n - 1) * stage_layers
    # pipe: one activation forward and one gradient backward per micro-batch, scattered over tp
    return 2 * m * b * s * h * bv / (t * c), 2 * m


def _all_reduce(
    kind: str | None,
    nbytes: float,
    n: int,
    exposed: float,
    source: str,
    group: tuple[str, ...],
    layout: str = "",
    what: str = "",
) -> Demand:
    """The demand of a ring all-reduce of ``nbytes`` per rank per step over ``group``'s groups of ``n``."""
    ring_bytes, messages = _ring_all_reduce(nbytes, n)
    return Demand(kind, ring_bytes, messages, exposed, source, group, layout, what)


def _weight(kind: str | None, w: float, n: int, source: str, exposed: float, axis: str) -> Demand:
    """An all-reduce of ``w`` GB per rank per step over a group of ``n``: ``2(n-1)/n * w`` bytes."""
    return _all_reduce(kind, w * _GB, n, exposed, source, (axis,))


def _check_weights(weights: Mapping[str, float], names: Sequence[str]) -> None:
    for name, w in weights.items():
        if name not in names:
            raise InvalidArgumentError(f"unknown axis {name!r} in weights; the axes are {list(names)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise TypeError(f"the weight of axis {name!r} must be a number, got {w!r}")
        if not (w >= 0 and math.isfinite(w)):
            raise InvalidArgumentError(
                f"the weight of axis {name!r} must be finite and at least 0, got {w!r}"
            )


def demands_of(
    names: Sequence[str],
    dims: Sequence[int],
    weights: Mapping[str, float] | None,
    model: ModelSpec | None,
    topo: ProcessTopology,
    exposed: Mapping[str, float],
) -> dict[str, list[Demand]]:
    """Each axis's demand, over its own groups: the generic, DeepSpeed and torchtitan conventions."""
    weights = dict(weights or {})
    if weights:
        topo.axis_indices(list(weights))  # unknown axis names fail here, with the topology's text
    _check_weights(weights, names)
    kinds = {n: kind_of(n) for n in names}
    sizes = dict.fromkeys(KINDS, 1)
    for n, d in zip(names, dims):
        k = kinds[n]
        if k is not None:
            sizes[k] *= d
    m = 1
    if model is not None:
        m = model.microbatches_for(sizes["pipe"], sizes["data"] * sizes["fsdp"])
    out: dict[str, list[Demand]] = {}
    for n, d in zip(names, dims):
        kind = kinds[n]
        fraction = exposed.get(n, exposed.get(kind or "", 1.0))
        if n in weights:
            out[n] = [_weight(kind, float(weights[n]), d, "weight", fraction, n)]
        elif kind is None:
            if d > 1:
                raise InvalidArgumentError(
                    f"axis {n!r} is of no kind the planner knows ({', '.join(sorted(ALIASES))}); "
                    f"give its traffic with weights={{{n!r}: <GB per step>}}"
                )
            out[n] = [Demand(None, 0.0, 0.0, fraction, "default" if model is None else "model", (n,))]
        elif model is not None:
            nbytes, messages = _traffic(kind, d, sizes, model, m)
            out[n] = [Demand(kind, nbytes, messages, fraction, "model", (n,), "", _WHAT[kind])]
        else:
            demand = _weight(kind, DEFAULT_WEIGHTS[kind], d, "default", fraction, n)
            out[n] = [Demand(kind, demand.bytes, demand.messages, fraction, "default", (n,), "", _WHAT[kind])]
    return out


_WHAT = {
    "tensor": "tensor-parallel all-reduces",
    "context": "context-parallel K/V ring",
    "expert": "expert all-to-alls",
    "data": "gradient all-reduce",
    "fsdp": "FSDP all-gathers and reduce-scatter",
    "pipe": "pipeline sends",
}
_WHAT_EXPERT_TENSOR = "expert tensor-parallel all-reduces"


def megatron_demands(
    sizes: Mapping[str, int],
    world: int,
    weights: Mapping[str, float] | None,
    model: ModelSpec | None,
    exposed: Mapping[str, float],
) -> dict[str, list[Demand]]:
    """Each Megatron token's demands, over Megatron's groups (``proctopo.megatron.layout``'s two layouts).

    ``tp``: the tensor-parallel all-reduces of attention and of dense MLPs over the
    dense ``tp`` groups, and of the experts' MLPs over the expert ``etp`` groups;
    ``cp``: the K/V ring over ``cp``; ``ep``: the all-to-alls over the expert ``ep``
    groups; ``dp``: the dense gradients over ``dp x cp`` and the expert gradients over
    the expert data-parallel axis ``edp``; ``pp``: the pipeline sends.
    """
    weights = dict(weights or {})
    _check_weights(weights, [n for n in sizes if n != "etp"])
    t, c, ep, dp, p = (sizes.get(k, 1) for k in ("tp", "cp", "ep", "dp", "pp"))
    etp = sizes.get("etp", t)
    edp = world // (etp * ep * p)
    out: dict[str, list[Demand]] = {}
    fraction = {tok: exposed.get(tok, exposed[ALIASES[tok]]) for tok in ("tp", "cp", "ep", "dp", "pp")}
    main = {
        "tp": ("dense", ("tp",), t),
        "cp": ("dense", ("cp",), c),
        "ep": ("expert", ("ep",), ep),
        "dp": ("dense", ("dp", "cp"), dp * c),
        "pp": ("dense", ("pp",), p),
    }
    for tok, (layout, group, n) in main.items():
        kind = ALIASES[tok]
        if tok in weights or model is None:
            w, source = (
                (float(weights[tok]), "weight") if tok in weights else (DEFAULT_WEIGHTS[kind], "default")
            )
            if tok == "tp" and ep > 1:
                # with experts, the MLPs' half of the tensor-parallel traffic runs over the expert etp
                half = w / 2 * _GB
                out[tok] = [
                    _all_reduce(kind, half, t, fraction[tok], source, ("tp",), "dense", _WHAT[kind]),
                    _all_reduce(
                        kind, half, etp, fraction[tok], source, ("etp",), "expert", _WHAT_EXPERT_TENSOR
                    ),
                ]
                continue
            out[tok] = [_all_reduce(kind, w * _GB, n, fraction[tok], source, group, layout, _WHAT[kind])]
    if model is None:
        return out
    m = model.microbatches_for(p, dp)
    moe = model.expert_params > 0
    moe_layers = (model.moe_layers if model.moe_layers is not None else model.layers) if moe else 0
    kinds = {"tensor": t, "context": c, "expert": ep, "pipe": p, "fsdp": 1}

    def traffic(kind: str, n: int, **changes: float) -> tuple[float, float]:
        spec = ModelSpec(**{**model.to_dict(), **changes})
        return _traffic(kind, n, kinds, spec, m)

    if "tp" not in out:
        # attention's 2 all-reduces per layer and the dense MLPs' 2 per dense layer (of the 4 per layer)
        share = (2 * model.layers + 2 * (model.layers - moe_layers)) / (4 * model.layers)
        nbytes, messages = traffic("tensor", t)
        items = [
            Demand(
                "tensor",
                nbytes * share,
                messages * share,
                fraction["tp"],
                "model",
                ("tp",),
                "dense",
                _WHAT["tensor"],
            )
        ]
        if (
            moe_layers and etp > 1
        ):  # the experts' MLPs: 2 all-reduces per MoE layer over etp, of k routed copies
            e_bytes, e_messages = _traffic("tensor", etp, {**kinds, "tensor": t}, model, m)
            scale = 2 * moe_layers / (4 * model.layers)
            items.append(
                Demand(
                    "tensor",
                    e_bytes * scale * model.moe_topk,
                    e_messages * scale,
                    fraction["tp"],
                    "model",
                    ("etp",),
                    "expert",
                    _WHAT_EXPERT_TENSOR,
                )
            )
        out["tp"] = items
    if "cp" not in out:
        nbytes, messages = traffic("context", c)
        out["cp"] = [
            Demand("context", nbytes, messages, fraction["cp"], "model", ("cp",), "dense", _WHAT["context"])
        ]
    if "ep" not in out:
        nbytes, messages = traffic("expert", ep, moe_layers=max(moe_layers, 1)) if moe_layers else (0.0, 0.0)
        out["ep"] = [
            Demand("expert", nbytes, messages, fraction["ep"], "model", ("ep",), "expert", _WHAT["expert"])
        ]
    if "dp" not in out:
        dense_grads = (model.params - model.expert_params) * model.grad_bytes / (t * p)
        items = [
            _all_reduce(
                "data",
                dense_grads,
                dp * c,
                fraction["dp"],
                "model",
                ("dp", "cp"),
                "dense",
                "dense gradient all-reduce over dp x cp",
            )
        ]
        if model.expert_params > 0 and edp > 1:
            expert_grads = model.expert_params * model.grad_bytes / (etp * ep * p)
            items.append(
                _all_reduce(
                    "data",
                    expert_grads,
                    edp,
                    fraction["dp"],
                    "model",
                    ("edp",),
                    "expert",
                    "expert gradient all-reduce over edp",
                )
            )
        out["dp"] = items
    if "pp" not in out:
        nbytes, messages = traffic("pipe", p)
        out["pp"] = [
            Demand("pipe", nbytes, messages, fraction["pp"], "model", ("pp",), "dense", _WHAT["pipe"])
        ]
    return out


# --------------------------------------------------------------------------- pricing
class Priced(NamedTuple):
    """One demand over one group on the machine."""

    spans: tuple[int, ...]
    tier: int
    time: float  # seconds per step, all of it
    exposed: float  # seconds per step the step waits for
    key: int  # ``exposed`` in the ranking's integer unit
    tight: int  # the tie-break's measure in its integer unit


class Costing:
    """Prices demands over groups of a machine, with the integer units that make equal layouts tie exactly.

    ``key`` is the exposed time of the worst group (each group's collectives run at the
    pace of its slowest link, and the step waits for the slowest group), in units of
    ``2**-44`` of :attr:`bound`, the most any layout's exposed time could be (every
    demand at its slowest level), so sums of up to 2**19 terms are exact integers.
    ``tight`` is the exposed time of the *average* group in the same unit: a group
    touching more than one unit of level ``i`` uses the links above it, and the
    fraction of groups that do is exact in closed form
    (:meth:`proctopo.machine.Machine.reach_and_crossing`). Ties in ``key`` go to the smaller
    ``tight``: the layout whose groups stay inside the lower levels more often
    (docs/plan.md, "Ties").
    """

    def __init__(self, machine: Machine, world: int, demands: Sequence[Demand]) -> None:
        self.machine, self.world = machine, world
        levels = machine.levels
        slowest = [max(lv.time(d.bytes, d.messages) * d.exposed for lv in levels) for d in demands]
        self.bound = sum(slowest)
        unit = self.bound / 2.0**_KEY_BITS
        self.unit = unit if unit > 0 else 1.0  # no demand, or so little that the unit underflows
        self._geometry: dict[tuple[int, int], tuple[tuple[int, ...], int, tuple[float, ...]]] = {}
        self._times: dict[int, tuple[Demand, list[float]]] = {}  # by id, the demand held so the id stays its

    def geometry(self, stride: int, size: int) -> tuple[tuple[int, ...], int, tuple[float, ...]]:
        """Spans, tier and crossing fractions of the groups of ``size`` ranks ``stride`` apart (cached)."""
        key = (stride, size)
        hit = self._geometry.get(key)
        if hit is None:
            reach, crossing = self.machine.reach_and_crossing(stride, size, self.world)
            hit = (reach.spans, reach.tier, crossing)
            if len(self._geometry) < _CACHE_LIMIT:  # axes of one size share strides; distinct sizes rarely do
                self._geometry[key] = hit
        return hit

    def reach(self, stride: int, size: int) -> tuple[tuple[int, ...], int]:
        spans, tier, _ = self.geometry(stride, size)
        return spans, tier

    def _times_of(self, demand: Demand) -> list[float]:
        """Each level's time for ``demand`` (cached by the demand's identity)."""
        held = self._times.get(id(demand))
        if held is None:
            times = [lv.time(demand.bytes, demand.messages) for lv in self.machine.levels]
            held = self._times[id(demand)] = (demand, times)
        return held[1]

    def price(self, demand: Demand, spans: tuple[int, ...], tier: int, crossing: Sequence[float]) -> Priced:
        levels = self.machine.levels
        if not (demand.bytes or demand.messages):
            return Priced(spans, tier, 0.0, 0.0, 0, 0)
        level = levels[tier]
        time = level.time(demand.bytes, demand.messages)
        exposed = time * demand.exposed
        # The latency and the bandwidth terms are counted apart, so that layouts which move the same
        # demands over the same links in another arrangement tie exactly (an axis's latency term
        # equals another's when their message counts do, whatever their bytes).
        latency = demand.messages * level.latency * demand.exposed
        bandwidth = demand.bytes / level.effective_bandwidth * demand.exposed
        key = round(latency / self.unit) + round(bandwidth / self.unit)
        # the average group: the first level's time, plus each level's step up for the groups that cross
        times = self._times_of(demand)
        average = times[0] + sum(c * (times[i + 1] - times[i]) for i, c in enumerate(crossing))
        tight = average * demand.exposed
        return Priced(spans, tier, time, exposed, key, round(tight / self.unit))

    def axis_many(self, demand: Demand, strides: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`axis`'s ``key`` and ``tight`` at many strides at once (int64 arrays), value for value.

        The geometry comes from :meth:`proctopo.machine.Machine.reach_and_crossing_many`; ``key``
        depends only on the tier, so it is :meth:`price`'s for each level, looked up; ``tight``
        repeats :meth:`price`'s float operations in the same order on arrays, so it rounds alike.
        """
        import numpy as np

        strides = np.asarray(strides, dtype=np.int64).reshape(-1)
        if not (demand.bytes or demand.messages):
            zero = np.zeros(strides.size, dtype=np.int64)
            return zero, zero.copy()
        _, tier, crossing = self.machine.reach_and_crossing_many(strides, size, self.world)
        levels = self.machine.levels
        flat = tuple(1 for _ in range(len(levels) - 1))
        by_tier = np.array(
            [self.price(demand, flat, t, (0.0,) * len(flat)).key for t in range(len(levels))], dtype=np.int64
        )
        times = self._times_of(demand)
        average = np.zeros(strides.size, dtype=np.float64)
        for i in range(crossing.shape[0]):  # as price's sum: left to right, from 0
            average = average + crossing[i] * (times[i + 1] - times[i])
        tight = (times[0] + average) * demand.exposed
        return by_tier[tier], np.rint(tight / self.unit).astype(np.int64)

    def axis(self, demand: Demand, stride: int, size: int) -> Priced:
        """A demand over the groups of one axis (or one run of axes) of ``size`` ranks ``stride`` apart."""
        spans, tier, crossing = self.geometry(stride, size)
        return self.price(demand, spans, tier, crossing)
