"""The plan as plain text for a terminal, and the small formatters of its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..machine import seconds_text
from .inputs import CONVENTIONAL_KINDS

if TYPE_CHECKING:
    from .results import Layout, Plan

_CONVENTION_TEXT = {
    "megatron": "Megatron (orders are initialize_model_parallel's order strings; ep subdivides dp x cp, "
    "with etp, as megatron-core derives it)",
    "torchtitan": "torchtitan (dp_shard is FSDP: all-gathers and reduce-scatter; dp_replicate all-reduces "
    "the sharded gradients)",
    "deepspeed": "DeepSpeed (pipe, data, model: one grid)",
    "generic": "one grid of named axes (each axis's traffic over its own groups)",
}

_TRAFFIC_TEXT = {
    "model": "traffic from the model",
    "weights": "traffic from the weights given (GB per rank per step)",
    "default": "traffic from default weights (assumed GB per rank per step, not a model: pass --model)",
    "mixed": "traffic from the model and the weights given",
}


def _columns(plan: Plan) -> list[str]:
    """The demands shown as columns: the given axes' order, then any others (etp, edp)."""
    names: list[str] = []
    for lay in [*plan.layouts, plan.given_layout]:
        for a in lay.axes:
            if a.name not in names:
                names.append(a.name)
    given = [n for n in plan.given if n in names]
    return given + [n for n in names if n not in given]


def _ties(lay: Layout) -> str:
    return f"{lay.ties:,}" if lay.ties_exact else f"{lay.ties:,}+"


def _tie_text(plan: Plan) -> str:
    """Which key of the tie-break put the best layout first (:attr:`Plan.decided_by`)."""
    best = plan.best
    decided = plan.decided_by
    if decided is None:
        return (
            "first comes the one whose average group is cheapest (fewest groups reach the slower levels), "
            "then the one closest to the convention's order"
        )
    runner = plan.layouts[1]
    assert best.tie_break is not None and runner.tie_break is not None  # decided_by compared them
    if decided == "average group":
        return (
            f"the average group decided: {best.megatron_order}'s exposed time at each group's average cost "
            f"is {seconds_text(best.tie_break)}, {runner.megatron_order}'s {seconds_text(runner.tie_break)} "
            "(fewer of its groups reach the slower levels)"
        )
    return (
        f"their average groups cost the same ({seconds_text(best.tie_break)}), so the convention's order "
        f"decided: {best.megatron_order} is the closest to the conventional order ({_CONVENTIONAL_TEXT})"
    )


#: The tie-break's last word, for people.
_CONVENTIONAL_TEXT = ", ".join("FSDP" if k == "fsdp" else k for k in CONVENTIONAL_KINDS) + ", fastest first"


def render_plan(plan: Plan, limit: int = 10) -> str:
    """The ranking (the first ``limit`` layouts and the given one), then the best layout in detail."""
    lines: list[str] = []
    out = lines.append
    machine, placement = plan.machine, plan.placement
    out(
        f"{plan.world_size:,} ranks = {placement.nodes:,} nodes x {machine.ranks_per_node} ranks"
        + (f" in {placement.domains:,} NVLink domains" if machine.nodes_per_domain > 1 else "")
        + f"; machine {machine.name}: {machine.describe()}"
    )
    out(f"convention: {_CONVENTION_TEXT[plan.convention]}")
    axes_text = " ".join(f"{k}={v}" for k, v in plan.sizes.items())
    fractions = {d.kind or name: d.exposed for name, items in plan.demands.items() for d in items if d.bytes}
    exposed_text = ", ".join(f"{k} {v:g}" for k, v in fractions.items())
    out(f"axes {axes_text}; {_TRAFFIC_TEXT[plan.traffic]}; exposed fractions: {exposed_text or '-'}")
    out(f"orders: {plan.candidates:,} ({plan.search}); times are seconds per step")
    for w in plan.warnings:
        out(f"note: {w}")
    out("")
    names = _columns(plan)
    head = ["rank", "tied", "order (fastest first)", "exposed", "all comm", *names]
    rows = []
    shown = plan.layouts[:limit]

    def row(lay: Layout, label: str) -> list[str]:
        tiers = {a.name: a.tier for a in lay.axes}
        return [
            str(lay.rank),
            _ties(lay),
            label,
            seconds_text(lay.exposed),
            seconds_text(lay.total),
            *(tiers.get(n, "-") for n in names),
        ]

    for lay in shown:
        rows.append(
            row(
                lay,
                lay.megatron_order
                + (
                    " (given)"
                    if lay.order == plan.given_layout.order
                    and lay.megatron_order == plan.given_layout.megatron_order
                    else ""
                ),
            )
        )
    given_shown = any(lay.megatron_order == plan.given_layout.megatron_order for lay in shown)
    if not given_shown:
        lay = plan.given_layout
        rows.append(row(lay, lay.megatron_order + " (given)"))
        if plan.given_rank is None:
            rows[-1][0] = "-"
            rows[-1][1] = "-"
    lines.extend(table_lines(head, rows, right={0, 1}))
    best = plan.best
    if best.ties > 1:
        out(
            f"{_ties(best)} orders tie at rank 1 (the same exposed time, set by each axis's slowest "
            f"group); {_tie_text(plan)}"
        )
    if plan.given_rank is None:
        out(f"the given order {plan.given_layout.megatron_order} is not among the {len(plan.layouts)} kept")
    else:
        out(f"the given order {plan.given_layout.megatron_order} ranks #{plan.given_rank}")
    out("")
    out(f"best: {best.topology!r}")
    out(f"  order            {best.megatron_order} (fastest first)")
    if best.expert_topology is not None:
        out(f"  expert layout    {best.expert_topology!r}")
    out(
        f"  device mesh      init_device_mesh(device, {best.mesh_shape}, "
        f"mesh_dim_names={best.mesh_dim_names!r})"
    )
    bounded = [
        (i, lv.name) for i, lv in enumerate(machine.levels[:-1]) if i == 0 or lv.size != 1
    ]  # a level of one unit of the level below repeats it
    detail = [
        [
            a.name,
            a.kind or "-",
            f"{a.size:,}",
            f"{a.stride:,}",
            *(f"{a.spans[i]:,}" for i, _ in bounded),
            a.tier,
            volume_text(a.bytes),
            seconds_text(a.time),
            f"{seconds_text(a.exposed)} ({a.exposed_fraction:.0%})",
            f"{100 * a.share:.1f}%",
        ]
        for a in best.axes
    ]
    lines.extend(
        "  " + line
        for line in table_lines(
            [
                "axis",
                "kind",
                "size",
                "stride",
                *(f"{n}s" for _, n in bounded),
                "tier",
                # a model's figures are each rank's, per step (the weights' are said so above)
                "traffic per rank per step" if plan.traffic in ("model", "mixed") else "traffic",
                "time",
                "exposed",
                "share",
            ],
            detail,
            right=set(range(2, 4 + len(bounded))) | {k + len(bounded) for k in (5, 6, 7, 8)},
        )
    )
    out(
        f"  communication per step: {seconds_text(best.exposed)} exposed (the step waits for it), "
        f"{seconds_text(best.total)} in all"
    )
    if best.tie_break is not None:
        out(f"  tie-break        {seconds_text(best.tie_break)} exposed at each group's average cost")
    calls = best.new_group_calls
    out(
        f"  communicators per rank  {best.communicators_per_rank} "
        f"(~{bytes_text(best.communicator_memory_bytes)} of device memory at "
        f"{bytes_text(plan.communicator_bytes)} each: one measurement, see docs/plan.md)"
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


def volume_text(n: float) -> str:
    """Bytes moved, in decimal units as bandwidths are.

    >>> volume_text(2e9), volume_text(512)
    ('2 GB', '512 B')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def bytes_text(n: float) -> str:
    """A size in binary units: ``bytes_text(688 * 2**20) == '688 MiB'``."""
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
