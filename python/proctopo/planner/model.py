"""The traffic model: each axis's demand (bytes and messages per rank per step) and a layout's cost.

An axis's demand comes from a :class:`~proctopo.planner.ModelSpec` (the formulas of
docs/plan.md), from ``weights=`` or from :data:`~proctopo.planner.DEFAULT_WEIGHTS`.
:class:`Context` places an order of the axes on the machine (the spans come from
:mod:`proctopo.machine`), charges each axis at the tier its groups reach and counts
the communicators and ``new_group`` calls of the layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..errors import InvalidArgumentError
from ..machine import BlockPlacement
from ..topology import ProcessTopology
from .inputs import ALIASES, DEFAULT_WEIGHTS, KINDS, Demand, ModelSpec, Tier, kind_of
from .results import AxisReport, Layout

_GB = 1e9


def model_demand(kind: str, n: int, kind_sizes: Mapping[str, int], model: ModelSpec) -> tuple[float, float]:
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


def demands_of(
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
                f"axis {n!r} is of no kind the planner knows ({', '.join(sorted(ALIASES))}); "
                f"give its traffic with weights={{{n!r}: <GB per step>}}"
            )
        elif model is not None:
            nbytes, messages = model_demand(kind, d, kind_sizes, model)
            out[n] = Demand(kind, nbytes, messages, "model")
            continue
        else:
            w, source = DEFAULT_WEIGHTS[kind], "default"
        out[n] = Demand(kind, 2 * (d - 1) / d * w * _GB, 2.0 * (d - 1), source)
    return out


class Context:
    """Everything a layout's evaluation needs; per-axis results are cached by (axis, stride)."""

    def __init__(
        self,
        topo: ProcessTopology,
        machine: BlockPlacement,
        demands: dict[str, Demand],
        tiers: dict[str, Tier],
        comm_bytes: int,
        groups: list[tuple[str, ...]],
    ) -> None:
        names = topo.axes
        self.topo, self.names, self.dims, self.world = topo, names, topo.dims, machine.world_size
        self.size = dict(zip(names, self.dims))
        self.machine = machine
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

    def with_machine(self, machine: BlockPlacement) -> Context:
        """The same job on another machine."""
        return Context(self.topo, machine, self.demands, self.tiers, self.comm_bytes, self.groups)

    def axis(self, name: str, stride: int) -> tuple[int, int, str, float]:
        """(nodes, domains, tier, cost) of an axis at a stride."""
        key = (name, stride)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        n = self.size[name]
        span = self.machine.span(stride, n)
        d = self.demands[name]
        cost = self.tiers[span.tier].time(d.bytes, d.messages) if n > 1 else 0.0
        hit = (span.nodes, span.domains, span.tier, cost)
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
            ranks = self.topo.group_size(sorted(key))
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
        if kind in ("tensor", "expert", "context") and domains > 1 and self.machine.nodes_per_domain > 1:
            out.append(
                f"{name} ({kind}-parallel) groups cross NVLink domains: each group of {n} spans up to "
                f"{domains} domains of {self.machine.ranks_per_domain} ranks"
                + (
                    " (NCCL all-to-alls over groups spanning two NVL72 racks have been seen to stall)"
                    if kind == "expert"
                    else ""
                )
            )
        return out
