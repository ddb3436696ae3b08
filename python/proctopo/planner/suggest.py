"""Suggestions for the best layout: split an axis into outer x inner levels, or use fewer nodes per domain."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..machine import TIER_NAMES, BlockPlacement
from .model import Context
from .render import seconds_text
from .results import Layout, Refit, Split
from .search import rank_orders


def refit(ctx: Context, candidates: Sequence[str | Sequence[str]] | None, best: Layout) -> Refit | None:
    """Fewer nodes per domain that let the best layout's domain-crossing axes fit, if that lowers the cost.

    Tried from ``nodes_per_domain - 1`` down to half of it (at least 2): the first
    that gives a cheaper best layout is kept (the fewest spare nodes).
    """
    machine = ctx.machine
    npd = machine.nodes_per_domain
    crossing = [a.name for a in best.axes if a.domains > 1 and a.cost > 0]
    if npd < 3 or not crossing:
        return None
    for used in range(npd - 1, max(2, (npd + 1) // 2) - 1, -1):  # down to half the domain, at least 2
        fewer = BlockPlacement(machine.world_size, machine.ranks_per_node, used)
        sub = ctx.with_machine(fewer)
        orders, _, _ = rank_orders(sub, candidates, 1)
        cost = sub.cost(orders[0])
        if cost < best.cost * (1 - 1e-9):
            lay = sub.layout(orders[0])
            fitted = [a.name for a in lay.axes if a.name in crossing and a.domains == 1]
            domains = fewer.domains
            what = (
                f"the {', '.join(fitted)} groups stay inside one domain" if fitted else "fewer groups cross"
            )
            text = (
                f"use {used} of the {npd} nodes of each NVLink domain ({fewer.ranks_per_domain} ranks per "
                f"domain, {npd - used} spare node(s) each, {domains} domains): {what}, and the best order "
                f"{lay.megatron_order} costs {seconds_text(cost, ctx.units)} "
                f"instead of {seconds_text(best.cost, ctx.units)}; "
                f"the launcher must then place ranks contiguously on the used nodes of each domain"
            )
            return Refit(used, npd - used, domains, lay.order, lay.dims, cost, text)
    return None


def splits(ctx: Context, best: Layout) -> list[Split]:
    """Outer x inner splits of the best layout's data/context axes that put ``inner`` in a node or domain."""
    out: list[Split] = []
    for report in best.axes:
        n, s, name = report.size, report.stride, report.name
        d = ctx.demands[name]
        splittable = d.kind in ("data", "context") or (d.kind is None and d.source == "weight")
        if not splittable or report.cost == 0:
            continue
        machine = ctx.machine
        for level, block, spanned in (
            ("node", machine.ranks_per_node, report.nodes),
            ("domain", machine.ranks_per_domain, report.domains),
        ):
            if level == "domain" and machine.nodes_per_domain == 1:
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
            inner_tier, outer_tier = machine.span(s, inner).tier, machine.span(s * inner, outer).tier
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
                f"of it; {name} cost {seconds_text(report.cost, ctx.units)} -> "
                f"{seconds_text(split_cost, ctx.units)} per step, for 2 more communicators per rank "
                "(1 if the flat group is no longer used)"
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
