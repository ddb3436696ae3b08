"""Suggestions for the best layout: split an axis into outer x inner levels, or use fewer nodes per domain.

Both are bounded: a split is tried once per axis and level; a refit tries at most
:data:`REFIT_TRIES` numbers of nodes per domain, each the largest that aligns the
groups of one domain-crossing axis with the domains (found in closed form), and
runs one search for each.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..machine import Machine, seconds_text
from .layouts import GridLayouts
from .results import Layout, Refit, Split

#: The most numbers of nodes per domain a refit evaluates.
REFIT_TRIES = 3


def refit(machine: Machine, world: int, best: Layout, best_of: Callable[[Machine], Layout]) -> Refit | None:
    """Fewer nodes per domain that let the best layout's domain-crossing groups fit, if that lowers its cost.

    A group of an axis is a window of ``stride * size`` consecutive ranks (with the
    axes faster than it); such windows fit whole domains exactly when the ranks per
    domain are a multiple of the window, so for each crossing axis the largest
    ``used < nodes_per_domain`` with ``used * ranks_per_node`` a multiple of the
    window is the candidate (closed form: a multiple of ``window / gcd(window,
    ranks_per_node)``). The candidates with the fewest spare nodes are tried first;
    the first that gives a cheaper best layout is kept.
    """
    npd, rpn = machine.nodes_per_domain, machine.ranks_per_node
    if npd < 2:
        return None
    candidates: set[int] = set()
    for a in best.axes:
        if a.domains <= 1 or a.exposed <= 0:
            continue
        window = a.stride * a.size
        step = window // math.gcd(window, rpn)
        used = (npd - 1) // step * step
        if used >= 1:
            candidates.add(used)
    placement = machine.placement(world)
    for used in sorted(candidates, reverse=True)[:REFIT_TRIES]:
        fewer = machine.with_counts(nodes_per_domain=used)
        lay = best_of(fewer)
        if not lay.exposed < best.exposed * (1 - 1e-9):
            continue
        crossing = {a.name for a in best.axes if a.domains > 1}
        fitted = [a.name for a in lay.axes if a.name in crossing and a.domains == 1]
        domains = fewer.placement(world).domains
        more_domains = max(0, domains - placement.domains)
        occupied = domains * npd  # whole domains, the spare nodes included
        more_nodes = max(0, occupied - placement.domains * npd)
        what = f"the {', '.join(fitted)} groups stay inside one domain" if fitted else "fewer groups cross"
        idle = domains * npd - placement.nodes
        cost = (
            f"this needs {domains:,} domains, {more_domains:,} more than the {placement.domains:,} the job "
            f"fills now: {occupied:,} nodes ({idle:,} of them idle) instead of {placement.domains * npd:,}"
            if more_domains
            else f"the {placement.domains:,} domains the job fills hold it ({idle:,} nodes idle)"
        )
        text = (
            f"use {used} of the {npd} nodes of each NVLink domain ({used * rpn} ranks per domain, "
            f"{npd - used} spare node(s) each): {what}, and the best order {lay.megatron_order} exposes "
            f"{seconds_text(lay.exposed)} per step instead of {seconds_text(best.exposed)}; {cost}; "
            "the launcher must then place ranks contiguously on the used nodes of each domain"
        )
        return Refit(
            used, npd - used, domains, more_domains, more_nodes, lay.order, lay.dims, lay.exposed, text
        )
    return None


def splits(planner: GridLayouts, best: Layout) -> list[Split]:
    """Outer x inner splits of the best layout's data/context axes that put ``inner`` in a node or domain."""
    out: list[Split] = []
    machine, costing = planner.machine, planner.costing
    levels = machine.levels
    for report in best.axes:
        n, s, name = report.size, report.stride, report.name
        d = planner.demand[name]
        splittable = d.kind in ("data", "fsdp", "context") or (d.kind is None and d.source == "weight")
        if not splittable or report.exposed == 0:
            continue
        for i, block in enumerate(machine.blocks[:2]):
            level = levels[i].name
            if i == 1 and machine.nodes_per_domain == 1:
                continue
            if report.spans[i] <= 1 or s >= block or block % s:
                continue
            inner = math.gcd(n, block // s)
            if not 1 < inner < n:
                continue
            outer = n // inner
            inner_name, outer_name = f"{name}_inner", f"{name}_outer"
            if inner_name in planner.size or outer_name in planner.size:
                continue
            inner_reach = costing.reach(s, inner)
            outer_reach = costing.reach(s * inner, outer)
            tier = [lv.name for lv in levels].index(report.tier)
            if inner_reach[1] >= tier:
                continue
            ring = (n - 1) / n
            inner_part = (inner - 1) / inner / ring
            outer_part = (outer - 1) / outer / ring / inner
            inner_level, outer_level = levels[inner_reach[1]], levels[outer_reach[1]]
            split_time = inner_level.time(d.bytes * inner_part, d.messages * (inner - 1) / (n - 1))
            split_time += outer_level.time(d.bytes * outer_part, d.messages * (outer - 1) / (n - 1))
            split_cost = split_time * d.exposed
            if not split_cost < report.exposed:
                continue
            pos = best.order.index(name)
            order = (*best.order[:pos], outer_name, inner_name, *best.order[pos + 1 :])
            dims = (*best.dims[:pos], outer, inner, *best.dims[pos + 1 :])
            text = (
                f"split {name}={n} into {outer_name}={outer} x {inner_name}={inner}: the {name} groups keep "
                f"their ranks (the group of [{outer_name}, {inner_name}] is the old {name} group), but the "
                f"collective runs in two levels, over {inner} ranks inside one {level} "
                f"({inner_level.name} links) with the full volume, then over {outer} ranks "
                f"({outer_level.name} links) with 1/{inner} of it; {name} exposes "
                f"{seconds_text(report.exposed)} -> {seconds_text(split_cost)} per step, for 2 more "
                "communicators per rank (1 if the flat group is no longer used)"
            )
            out.append(
                Split(
                    name,
                    level,
                    outer,
                    inner,
                    order,
                    dims,
                    inner_level.name,
                    outer_level.name,
                    report.exposed,
                    split_cost,
                    text,
                )
            )
    return out
