"""Layouts in each stack's terms: one grid of named axes, or Megatron's dense and expert layouts.

:class:`GridLayouts` reads the axes as one grid (the generic, DeepSpeed and torchtitan
conventions): an order is a permutation of the axes of size > 1, and each axis's
traffic runs over its own groups, so its cost depends only on its stride (the search
over subsets rests on that). :class:`MegatronLayouts` reads Megatron's tokens: an
order is the string ``initialize_model_parallel`` takes, from which
:func:`proctopo.megatron.layout` derives the dense and the expert layouts exactly as
megatron-core does; every order megatron-core accepts is priced (at most 120).

Both price demands with a :class:`~proctopo.planner.model.Costing`, build
:class:`~proctopo.planner.results.Layout` s, and order axes by the stack's
conventional order for the last word of the tie-break.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError
from ..machine import Machine
from ..topology import ProcessTopology, parse_order
from .inputs import CONVENTIONAL_KINDS, Demand
from .model import Costing, Priced
from .results import AxisReport, Layout, megatron_order_of

if TYPE_CHECKING:
    import numpy as np

_MEGATRON_KIND = {"tp": "tensor", "cp": "context", "ep": "expert", "dp": "data", "pp": "pipe"}


def conventional_ranks(
    moving: Sequence[str], names: Sequence[str], kinds: Mapping[str, str | None]
) -> list[int]:
    """Each moving axis's place in the conventional order, fastest first: by kind (tensor, context,
    expert, fsdp, data, pipe; unknown kinds last), then as given."""

    def key(a: str) -> tuple[int, int]:
        kind = kinds.get(a)
        place = CONVENTIONAL_KINDS.index(kind) if kind in CONVENTIONAL_KINDS else len(CONVENTIONAL_KINDS)
        return place, len(names) - 1 - list(names).index(a)

    ordered = sorted(moving, key=key)
    return [ordered.index(a) for a in moving]


def _warnings(report: AxisReport, machine: Machine) -> list[str]:
    """Placement problems, by the level a group's links are on (never contradicting its cost)."""
    out = []
    network = 2  # the first level above the NVLink domain
    tier = [lv.name for lv in machine.levels].index(report.tier)
    if report.kind in ("tensor", "context", "expert") and tier >= network:
        fast = machine.levels[0 if machine.nodes_per_domain == 1 else 1]
        level = machine.levels[tier]
        out.append(
            f"{report.name} ({report.kind}-parallel) groups leave the NVLink domain: each group of "
            f"{report.size} spans up to {report.domains} domains, so its traffic goes over the {level.name} "
            f"links at {level.effective_bandwidth / 1e9:.3g} GB/s per rank instead of "
            f"{fast.bandwidth / 1e9:.3g} GB/s"
            + (
                " (NCCL all-to-alls over groups spanning two NVL72 racks have been seen to stall)"
                if report.kind == "expert" and machine.nodes_per_domain > 1
                else ""
            )
        )
    return out


def _report(
    name: str, demand: Demand, priced: Priced, size: int, stride: int, machine: Machine, total: float
) -> AxisReport:
    return AxisReport(
        name=name,
        kind=demand.kind,
        size=size,
        stride=stride,
        group=demand.group,
        layout=demand.layout,
        spans=priced.spans,
        tier=machine.levels[priced.tier].name,
        bytes=demand.bytes,
        messages=demand.messages,
        exposed_fraction=demand.exposed,
        time=priced.time,
        exposed=priced.exposed,
        share=priced.exposed / total if total > 0 else 0.0,
    )


def _layout(
    machine: Machine,
    comm_bytes: int,
    budget: tuple[int, dict[str, int]],
    reports: list[AxisReport],
    **fields: Any,
) -> Layout:
    """A layout from its axis reports and its group budget (communicators per rank, calls):
    the reports' warnings, the communicators' memory; ``fields`` are the rest of it."""
    comms, calls = budget
    return Layout(
        axes=reports,
        communicators_per_rank=comms,
        communicator_memory_bytes=comms * comm_bytes,
        new_group_calls=calls,
        warnings=[w for r in reports for w in _warnings(r, machine)],
        **fields,
    )


class AxisCosts:
    """The ranking's integers of each moving axis of a grid at a stride
    (:data:`~proctopo.planner.search.Evaluate`), and at many strides at once (``many``, which
    the search over subsets asks for)."""

    def __init__(self, costing: Costing, demands: Sequence[Demand], sizes: Sequence[int]) -> None:
        self.costing, self.demands, self.sizes = costing, list(demands), list(sizes)

    def __call__(self, i: int, stride: int) -> tuple[int, int]:
        """Moving axis ``i`` at ``stride``."""
        p = self.costing.axis(self.demands[i], stride, self.sizes[i])
        return p.key, p.tight

    def many(self, i: int, strides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moving axis ``i`` at each of ``strides``: the keys and the tie-break measures, as int64 arrays."""
        return self.costing.axis_many(self.demands[i], strides, self.sizes[i])


class GridLayouts:
    """Orders of one grid's axes: each axis's traffic over its own groups."""

    def __init__(
        self,
        topology: ProcessTopology,
        demands: Mapping[str, list[Demand]],
        machine: Machine,
        world: int,
        comm_bytes: int,
        groups: Sequence[tuple[str, ...]],
        kinds: Mapping[str, str | None],
    ) -> None:
        self.topology = topology  # the axes as given, slowest first
        self.names, self.dims = topology.axes, topology.dims
        self.size = dict(zip(self.names, self.dims))
        self.machine, self.world, self.comm_bytes, self.groups = machine, world, comm_bytes, list(groups)
        self.moving = [n for n, d in zip(self.names, self.dims) if d > 1]
        self.demand = {n: demands[n][0] for n in self.moving}
        self.costing = Costing(machine, world, list(self.demand.values()))
        self.conv = conventional_ranks(self.moving, self.names, kinds)
        self.moving_sizes = [self.size[n] for n in self.moving]
        self.evaluate = AxisCosts(self.costing, [self.demand[n] for n in self.moving], self.moving_sizes)

    def full_order(self, fastest_first: Sequence[int]) -> tuple[str, ...]:
        """All axes, slowest first: the moving ones as given, each size-1 axis in its own slot."""
        it = iter(self.moving[i] for i in reversed(fastest_first))
        return tuple(next(it) if d > 1 else n for n, d in zip(self.names, self.dims))

    def indices(self, order: Sequence[str]) -> tuple[int, ...]:
        """The moving axes of ``order`` (slowest first, all axes) as indices, fastest first."""
        return tuple(self.moving.index(a) for a in reversed(order) if self.size[a] > 1)

    def layout(self, order: Sequence[str], rank: int, ties: int, exact: bool) -> Layout:
        stride = 1
        strides: dict[str, int] = {}
        for a in reversed(order):
            strides[a] = stride
            stride *= self.size[a]
        priced = {a: self.costing.axis(self.demand[a], strides[a], self.size[a]) for a in self.moving}
        exposed = sum(priced[a].exposed for a in self.moving)
        total = sum(priced[a].time for a in self.moving)
        reports = [
            _report(a, self.demand[a], priced[a], self.size[a], strides[a], self.machine, exposed)
            for a in order
            if self.size[a] > 1
        ]
        return _layout(
            self.machine,
            self.comm_bytes,
            self.group_budget(order),
            reports,
            order=tuple(order),
            dims=tuple(self.size[n] for n in order),
            megatron_order=megatron_order_of(order),
            rank=rank,
            ties=ties,
            ties_exact=exact,
            exposed=exposed,
            total=total,
            tie_break=sum(priced[a].tight for a in self.moving) * self.costing.unit,
        )

    def group_budget(self, order: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Communicators per rank and ProcessGrid's calls per strategy for a layout."""
        kinds: list[frozenset[str]] = [frozenset([a]) if self.size[a] > 1 else frozenset() for a in order]
        kinds += [frozenset(a for a in g if self.size[a] > 1) for g in self.groups]
        return _budget((self.topology.group_size(list(key)) for key in dict.fromkeys(kinds)), self.world)


class _NotOneRun(Exception):
    """A demand over a set of axes that is not one run of ranks (Megatron's dp and cp apart)."""


class MegatronLayouts:
    """Megatron's orders: each priced over the dense and expert layouts megatron-core derives from it."""

    def __init__(
        self,
        sizes: Mapping[str, int],
        given: Sequence[str],
        demands: Mapping[str, list[Demand]],
        machine: Machine,
        world: int,
        comm_bytes: int,
    ) -> None:
        self.sizes = dict(sizes)
        self.given = list(given)  # tokens, fastest first
        self.demands = demands
        self.machine, self.world, self.comm_bytes = machine, world, comm_bytes
        t, c, e, p, dp = (self.sizes.get(k, 1) for k in ("tp", "cp", "ep", "pp", "dp"))
        self.etp = self.sizes.get("etp", t)
        edp = world // (self.etp * e * p) if world % (self.etp * e * p) == 0 else 0
        if edp == 0:
            raise InvalidArgumentError(
                f"cannot derive the expert data-parallel size: world size {world} is not a multiple of "
                f"etp * ep * pp = {self.etp} * {e} * {p} = {self.etp * e * p}"
            )
        self.edp = edp
        moving = {"tp": max(t, self.etp), "cp": c, "ep": e, "dp": max(dp, edp), "pp": p}
        self.moving = [tok for tok in self.given if moving[tok] > 1]
        all_demands = [d for items in demands.values() for d in items]
        self.costing = Costing(machine, world, all_demands)
        kinds = {tok: _MEGATRON_KIND[tok] for tok in self.moving}
        self.conv = conventional_ranks(self.moving, self.given[::-1], kinds)
        self._skipped: set[tuple[ProcessTopology, ProcessTopology]] = set()
        self._cache: dict[str, tuple[int, int, list[tuple[str, Demand, Priced, int, int]]] | None] = {}

    @property
    def skipped(self) -> int:
        """Distinct layouts left out: their dp x cp groups are not one run of ranks."""
        return len(self._skipped)

    def order_string(self, fastest_first: Sequence[int]) -> str:
        it = iter(self.moving[i] for i in fastest_first)
        return "-".join(next(it) if tok in self.moving else tok for tok in self.given)

    def indices(self, order: str) -> tuple[int, ...]:
        tokens = [t.lower() for t in parse_order(order)]  # as megatron-core (and layout) read it
        return tuple(self.moving.index(tok) for tok in tokens if tok in self.moving)

    def candidates(self) -> list[tuple[int, ...]]:
        """Every order of the moving tokens that megatron-core accepts, as indices fastest first; orders
        that give the same dense and expert layouts (the dense layout leaves ep out, the expert one cp)
        count once, as the one nearest Megatron's order."""
        chosen: dict[tuple[object, object], tuple[int, ...]] = {}
        for perm in sorted(itertools.permutations(range(len(self.moving))), key=self._conventional):
            text = self.order_string(perm)
            if self.price(text) is not None:
                chosen.setdefault(self.layouts_of(text), perm)
        return list(chosen.values())

    def _conventional(self, perm: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.conv[i] for i in perm)

    def layouts_of(self, order: str) -> tuple[ProcessTopology, ProcessTopology]:
        from ..megatron import layout

        lay = layout(
            self.world,
            tensor_model_parallel_size=self.sizes.get("tp", 1),
            pipeline_model_parallel_size=self.sizes.get("pp", 1),
            context_parallel_size=self.sizes.get("cp", 1),
            expert_model_parallel_size=self.sizes.get("ep", 1),
            expert_tensor_parallel_size=self.etp,
            order=order,
        )
        return lay.dense, lay.expert

    def price(self, order: str) -> tuple[int, int, list[tuple[str, Demand, Priced, int, int]]] | None:
        """The ranking's integers and each demand priced, or ``None`` when megatron-core refuses the order."""
        if order in self._cache:
            return self._cache[order]
        try:
            dense, expert = self.layouts_of(order)
        except InvalidArgumentError:
            self._cache[order] = None
            return None
        items = []
        key = tight = 0
        for token, demands in self.demands.items():
            for d in demands:
                topo = expert if d.layout == "expert" else dense
                size = topo.group_size(list(d.group))
                indices = sorted(topo.axis_indices(list(d.group)))
                stride = min(topo.strides[i] for i in indices if topo.dims[i] > 1) if size > 1 else 1
                try:
                    priced = self._price(d, topo, stride, size)
                except _NotOneRun:
                    self._skipped.add((dense, expert))
                    self._cache[order] = None
                    return None
                name = {"etp": "etp", "edp": "edp"}.get(d.group[0], token)
                items.append((name, d, priced, size, stride))
                key += priced.key
                tight += priced.tight
        self._cache[order] = (key, tight, items)
        return self._cache[order]

    def _price(self, d: Demand, topo: ProcessTopology, stride: int, size: int) -> Priced:
        if size <= 1:
            return self.costing.axis(d, 1, 1)
        dims = topo.dims
        chosen = sorted(i for i in topo.axis_indices(list(d.group)) if dims[i] > 1)
        if chosen != [i for i in range(chosen[0], chosen[-1] + 1) if dims[i] > 1]:
            # dp and cp apart (tp or pp between them): not one run of ranks, whose reach would need
            # listing every group; such orders are left out whatever the world size, and counted
            raise _NotOneRun
        return self.costing.axis(d, stride, size)  # one run of axes: closed form

    def evaluate_order(self, fastest_first: Sequence[int]) -> tuple[int, int]:
        priced = self.price(self.order_string(fastest_first))
        assert priced is not None  # only orders megatron-core accepts are ranked
        return priced[0], priced[1]

    def layout(self, order: str, rank: int, ties: int, exact: bool) -> Layout:
        priced = self.price(order)
        if priced is None:
            raise InvalidArgumentError(f"megatron-core refuses the order {order!r} for these sizes")
        dense, expert = self.layouts_of(order)
        _, tight, items = priced
        exposed = sum(p.exposed for _, _, p, _, _ in items)
        total = sum(p.time for _, _, p, _, _ in items)
        reports = [
            _report(name, d, p, size, stride, self.machine, exposed)
            for name, d, p, size, stride in items
            if size > 1 and (d.bytes or d.messages)
        ]
        return _layout(
            self.machine,
            self.comm_bytes,
            self.group_budget(order),
            reports,
            order=tuple(dense.axes),
            dims=tuple(dense.dims),
            megatron_order=order,
            rank=rank,
            ties=ties,
            ties_exact=exact,
            exposed=exposed,
            total=total,
            expert_order=tuple(expert.axes),
            expert_dims=tuple(expert.dims),
            tie_break=tight * self.costing.unit,
        )

    def group_budget(self, order: str) -> tuple[int, dict[str, int]]:
        """Communicators per rank and the calls per strategy of megatron-core's group kinds, each distinct
        rank set once (as :func:`proctopo.megatron.create_groups` makes them; its two embedding families
        are not counted).

        Two families of groups over axes hold the same rank sets exactly when the group of rank 0 is
        the same set (a family tiles the ranks with translates of it, and the tiling of ``[0, W)`` by
        translates of a set holding 0 is unique), and that set is its axes' runs of ``(stride, size)``.
        """
        from ..megatron import EXPERT_LAYOUT, GROUPS, GTP_GROUPS

        dense, expert = self.layouts_of(order)
        kinds: dict[tuple[tuple[int, int], ...], int] = {}
        for kind, (name, axes) in GROUPS.items():
            if kind in GTP_GROUPS:
                continue
            topo = expert if name == EXPERT_LAYOUT else dense
            present = [a for a in axes if a in topo.axes]
            kinds.setdefault(_runs(topo, present), topo.group_size(present))
        return _budget(kinds.values(), self.world)


def _budget(sizes: Iterable[int], world: int) -> tuple[int, dict[str, int]]:
    """Communicators per rank and ProcessGrid's calls per strategy for families of groups of
    these sizes (each size one distinct family)."""
    communicators = global_calls = local_calls = 0
    for size in sizes:
        if size > 1:
            communicators += 1
        if size == world:  # the whole grid: the parent group itself, no call
            continue
        global_calls += world // size
        local_calls += 1
    return communicators, {"global": global_calls, "local": local_calls, "split": local_calls}


def _runs(topo: ProcessTopology, axes: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """The group of rank 0 over ``axes`` as its runs ``(stride, size)``, merged where they touch."""
    parts = sorted((topo.strides[i], topo.dims[i]) for i in topo.axis_indices(list(axes)) if topo.dims[i] > 1)
    merged: list[tuple[int, int]] = []
    for stride, size in parts:
        if merged and merged[-1][0] * merged[-1][1] == stride:
            merged[-1] = (merged[-1][0], merged[-1][1] * size)
        else:
            merged.append((stride, size))
    return tuple(merged)
