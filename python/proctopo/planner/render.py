"""The plan as plain text for a terminal, and the small formatters of its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import Plan


def render_plan(plan: Plan, limit: int = 10) -> str:
    """The ranking (the first ``limit`` layouts and the given one), then the best layout in detail."""
    lines: list[str] = []
    out = lines.append
    machine = plan.placement
    domain = (
        "NVLink domain = one node"
        if machine.nodes_per_domain == 1
        else f"NVLink domains of {machine.nodes_per_domain} nodes "
        f"({machine.ranks_per_domain} ranks; {machine.domains} domains)"
    )
    out(f"{plan.world_size:,} ranks = {machine.nodes:,} nodes x {machine.ranks_per_node} ranks; {domain}")
    source = (
        "costs from the model (seconds per step)"
        if plan.units == "seconds"
        else "costs from default weights (relative units)"
        if all(d.source == "default" for d in plan.demands.values())
        else "costs from weights (relative units)"
    )
    axes_text = " ".join(f"{k}={v}" for k, v in plan.sizes.items())
    out(f"axes {axes_text}; {source}; orders: {plan.candidates:,} ({plan.search})")
    for w in plan.warnings:
        out(f"note: {w}")
    out("")
    names = list(plan.sizes)
    head = ["#", "megatron order", "cost/step", *names]
    rows = []
    for i, lay in enumerate(plan.layouts[:limit], 1):
        tiers = {a.name: a.tier for a in lay.axes}
        rows.append(
            [str(i), lay.megatron_order, seconds_text(lay.cost, plan.units), *(tiers[n] for n in names)]
        )
    given_shown = plan.given_rank is not None and plan.given_rank <= limit
    if not given_shown:
        lay = plan.given_layout
        tiers = {a.name: a.tier for a in lay.axes}
        rank = "-" if plan.given_rank is None else str(plan.given_rank)
        rows.append(
            [
                rank,
                lay.megatron_order + " (given)",
                seconds_text(lay.cost, plan.units),
                *(tiers[n] for n in names),
            ]
        )
    lines.extend(table_lines(head, rows, right={0}))
    if given_shown:
        out(f"the given order {plan.given_layout.megatron_order} ranks #{plan.given_rank}")
    best = plan.best
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
            seconds_text(a.cost, plan.units),
            f"{100 * a.share:.1f}%",
        ]
        for a in best.axes
    ]
    lines.extend(
        "  " + line
        for line in table_lines(
            ["axis", "kind", "size", "stride", "nodes", "domains", "tier", "cost", "share"],
            detail,
            right={2, 3, 4, 5, 7, 8},
        )
    )
    calls = best.new_group_calls
    out(
        f"  communicators per rank  {best.communicators_per_rank} "
        f"(~{bytes_text(best.communicator_memory_bytes)} at {bytes_text(plan.communicator_bytes)} each)"
    )
    out(
        f"  new_group calls per rank  global {calls['global']:,}  local {calls['local']:,}  "
        f"split {calls['split']:,}"
    )
    for w in best.warnings:
        out(f"  warning: {w}")
    for s in plan.suggestions:
        out(f"  suggestion: {s.text}")
    if plan.refit is not None:
        out(f"  suggestion: {plan.refit.text}")
    return "\n".join(lines)


def seconds_text(value: float, units: str) -> str:
    """A cost as text: with a unit when ``units`` is ``"seconds"``, else 4 significant digits.

    >>> seconds_text(0.0123, "seconds"), seconds_text(0.0123, "relative")
    ('12.3 ms', '0.0123')
    """
    if units != "seconds":
        return f"{value:.4g}"
    if value == 0:
        return "0 s"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def bytes_text(n: float) -> str:
    """A memory size in binary units: ``bytes_text(688 * 2**20) == '688 MiB'``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def table_lines(head: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> list[str]:
    """A plain-text table, columns padded to their widest cell; ``right`` lists right-aligned columns."""
    right = set(right)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(head)] + [line(r) for r in rows]
