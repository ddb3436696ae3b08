"""The ``proctopo`` command: look at a layout before a job runs, or run it.

    proctopo show pipe=2 data=2 model=2          rank -> coordinates -> groups
    proctopo check pipe=8 data=128 model=8 --world-size 8192 --ranks-per-node 8
    proctopo draw pipe=2 data=4 model=2 --group data   the grid as a picture, groups lettered
    proctopo run --nproc 8 pipe=2 data=2 model=2 a real gloo job on this machine

Every subcommand takes its axes the same way: ``name=size`` words, slowest axis first,
``pipe=2 data=2 model=2`` when none are given. This module never imports torch (``run``
loads it in the processes it starts).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from . import demo
from .errors import GridSizeError, InvalidArgumentError, ProctopoError
from .topology import ProcessTopology

#: The axes of every subcommand when none are given.
DEFAULT_AXES: tuple[str, ...] = ("pipe=2", "data=2", "model=2")


def parse_axes(specs: Sequence[str]) -> ProcessTopology:
    """Build a topology from ``name=size`` words, slowest axis first.

    A word is a name, ``=`` and a size in plain decimal digits (``0``-``9``). The
    topology's own rules (names, sizes of at least 1, the world size fitting in 64
    bits) are checked by :class:`ProcessTopology` itself.

    >>> parse_axes(["pipe=2", "data=4"])
    ProcessTopology(axes=['pipe', 'data'], dims=[2, 4])
    >>> parse_axes(["pipe=1_6"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidArgumentError: axis 'pipe=1_6' must be written name=size, the size in decimal...
    >>> parse_axes(["pipe=0"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidTopologyError: axis 'pipe' has size 0...
    """
    axes: list[str] = []
    dims: list[int] = []
    for spec in specs:
        name, sep, size = spec.partition("=")
        if not sep or not (size.isascii() and size.isdigit()):
            raise InvalidArgumentError(
                f"axis {spec!r} must be written name=size, the size in decimal digits (e.g. data=4)"
            )
        axes.append(name)
        dims.append(int(size))
    return ProcessTopology(axes, dims)


def _ranks_text(ranks: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(r) for r in ranks[:limit])
    more = f", ... ({len(ranks)} ranks)" if len(ranks) > limit else ""
    return f"[{shown}{more}]"


def show(topo: ProcessTopology, limit: int = 16, out: TextIO | None = None) -> None:
    """Print a layout: sizes and strides, one row per rank (up to ``limit``), the groups of each axis.

    >>> show(ProcessTopology(['pipe', 'data'], [2, 2]), limit=1)  # doctest: +ELLIPSIS
    topology   pipe=2 x data=2 (4 ranks)
    strides    pipe=2  data=1
    ...
    """
    out = out or sys.stdout
    axes = topo.get_axis_names()
    print(f"topology   {topo._core.describe()}", file=out)
    print("strides    " + "  ".join(f"{a}={s}" for a, s in zip(axes, topo.strides)), file=out)
    print(file=out)
    width = max([4, *(len(a) for a in axes)])
    w = topo.world_size()
    shown = list(range(min(w, limit))) + ([w - 1] if w > limit else [])
    cells = [[_ranks_text(topo.group_of(r, a).tolist(), 4) for a in axes] for r in shown]
    cols = [max([len(a) + 6, *(len(row[i]) for row in cells)]) for i, a in enumerate(axes)]
    head = "rank".rjust(8) + "".join(a.rjust(width + 2) for a in axes) + "   "
    print(head + "   ".join(f"{a}-group".ljust(c) for a, c in zip(axes, cols)).rstrip(), file=out)
    for r, row in zip(shown, cells):
        if w > limit and r == w - 1:
            print(f"{'...':>8}  ({w - limit - 1} more)", file=out)
        coord = topo.get_coord(r)
        text = f"{r:8d}" + "".join(str(c).rjust(width + 2) for c in coord) + "   "
        print(text + "   ".join(g.ljust(c) for g, c in zip(row, cols)).rstrip(), file=out)
    print(file=out)
    for a in axes:
        table = topo.groups(a)
        rows = [_ranks_text(g, 4) for g in table[:3].tolist()]
        more = f" ... ({table.shape[0]} groups)" if table.shape[0] > 3 else ""
        print(
            f"{a:>{width}} groups: {table.shape[0]} x {table.shape[1]} ranks: {' '.join(rows)}{more}",
            file=out,
        )


def _label(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba', ...: a short name for a group number."""
    text = ""
    while True:
        text = chr(ord("a") + i % 26) + text
        i //= 26
        if i == 0:
            return text


def draw(
    topo: ProcessTopology,
    group: str | None = None,
    ranks_per_node: int | None = None,
    limit: int = 256,
    out: TextIO | None = None,
) -> None:
    """Draw the grid: one panel per value of the slower axes, the last two axes as rows and columns.

    Each cell is a rank; with ``group`` its group along that axis (or axes, joined by
    ``,``) is lettered, so the members of one group share a letter; with
    ``ranks_per_node`` the node number follows as ``@n``.

    >>> draw(ProcessTopology(['pipe', 'data', 'model'], [2, 2, 2]), group='data')
    pipe=0
                model=0  model=1
      data=0        0 a      1 b
      data=1        2 a      3 b
    <BLANKLINE>
    pipe=1
                model=0  model=1
      data=0        4 c      5 d
      data=1        6 c      7 d
    <BLANKLINE>
    """
    out = out or sys.stdout
    axes, dims = topo.get_axis_names(), topo.dims
    w = topo.world_size()
    if w > limit:
        raise ProctopoError(f"draw shows at most {limit} ranks (--limit); this topology has {w}")
    group_axes = [a for a in group.split(",") if a] if group else []
    rows_axis = axes[-2] if len(axes) >= 2 else None
    cols_axis = axes[-1] if axes else None
    n_rows = dims[-2] if len(axes) >= 2 else 1
    n_cols = dims[-1] if axes else 1

    def cell(r: int) -> str:
        text = str(r)
        if group_axes:
            text += " " + _label(topo.group_index(r, group_axes)[0])
        if ranks_per_node:
            text += f" @{r // ranks_per_node}"
        return text

    cells = [cell(r) for r in range(w)]
    width = max(len(c) for c in cells)
    if cols_axis:
        width = max(width, len(f"{cols_axis}={n_cols - 1}"))
    head = (len(f"{rows_axis}={n_rows - 1}") if rows_axis else 0) + 4
    for first in range(0, w, n_rows * n_cols):
        if len(axes) > 2:
            coord = topo.get_coord(first)
            print(" ".join(f"{a}={c}" for a, c in zip(axes[:-2], coord[:-2])), file=out)
        if cols_axis:
            print(" " * head + "".join(f"{cols_axis}={c}".rjust(width + 2) for c in range(n_cols)), file=out)
        for i in range(n_rows):
            label = f"  {rows_axis}={i}" if rows_axis else ""
            row = "".join(cells[first + i * n_cols + j].rjust(width + 2) for j in range(n_cols))
            print(label.ljust(head) + row, file=out)
        if len(axes) > 2:
            print(file=out)


def check(
    topo: ProcessTopology, world_size: int | None, ranks_per_node: int | None, out: TextIO | None = None
) -> int:
    """Check a layout against a world size and report how each axis's groups sit on nodes.

    Returns 0 when the layout fits, 1 when it does not.
    """
    out = out or sys.stdout
    status = 0
    w = topo.world_size()
    try:
        if world_size is not None:
            topo.check_world_size(world_size)
    except GridSizeError as exc:
        print(f"MISMATCH: {exc}", file=out)
        status = 1
    else:
        print(f"ok: {topo._core.describe()}", file=out)
    if ranks_per_node:
        nodes = -(-w // ranks_per_node)
        print(f"{nodes} node(s) of {ranks_per_node} ranks", file=out)
        import numpy as np

        for a, stride in zip(topo.get_axis_names(), topo.strides):
            node = topo.groups(a) // ranks_per_node  # rows ascend, so count the steps
            worst = int(np.count_nonzero(np.diff(node, axis=1), axis=1).max()) + 1
            where = "inside one node" if worst == 1 else f"across up to {worst} nodes"
            print(f"  {a}: groups of {node.shape[1]}, stride {stride}: {where}", file=out)
    return status


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``proctopo`` (all subcommands)."""
    top = argparse.ArgumentParser(
        prog="proctopo",
        description="Look at a layout of named axes (pipe, data, model, ...) before a job runs, or run it. "
        "Every command takes the axes as name=size words, slowest first.",
    )
    sub = top.add_subparsers(dest="command", metavar="{show,check,draw,run}")

    def command(name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=description or text)
        p.add_argument(
            "axes",
            nargs="*",
            metavar="name=size",
            help=f"axes, slowest first (default {' '.join(DEFAULT_AXES)})",
        )
        return p

    p = command("show", "print rank -> coordinates -> groups")
    p.add_argument("--limit", type=_positive, default=16, help="ranks to list (default 16)")
    p = command("check", "check a layout against a world size and report how groups sit on nodes")
    p.add_argument("--world-size", type=_positive, help="the number of ranks the layout must fill")
    p.add_argument("--ranks-per-node", type=_positive, help="ranks on each node")
    p = command("draw", "draw the grid, groups lettered and nodes numbered")
    p.add_argument("--group", help="letter the groups along this axis (or axes, joined by ',')")
    p.add_argument("--ranks-per-node", type=_positive, help="show each rank's node as @n")
    p.add_argument("--limit", type=_positive, default=256, help="largest world to draw (default 256)")
    p = command(
        "run",
        "run a real grid over local CPU processes and prove every group (needs torch)",
        demo.__doc__.split("\n\n")[0] if demo.__doc__ else None,
    )
    p.add_argument(
        "--nproc",
        type=_positive,
        help="processes to start (default: the product of the axes; with --nproc and no axes, "
        "DeepSpeed's default split of that many ranks)",
    )
    p.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "global", "local", "split"],
        help="group_creation of the grid (default auto)",
    )
    p.add_argument(
        "--timeout", type=_seconds, default=120.0, help="seconds before the run counts as hung (default 120)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``proctopo`` and ``python -m proctopo``; returns the exit status.

    Mistakes in the options end in argparse's usage message (``SystemExit(2)``); a
    layout that breaks a rule prints ``proctopo <command>: error: <why>`` and returns 2.
    """
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    command = args.command or "show"
    words = getattr(args, "axes", None) or []
    try:
        if command == "run":
            topo: ProcessTopology | None
            if words:
                topo = parse_axes(words)
            elif args.nproc is None and not demo.under_launcher():
                topo = parse_axes(DEFAULT_AXES)
            else:
                topo = None  # DeepSpeed's default split of the world size
            if topo is not None and args.nproc is not None:
                topo.check_world_size(args.nproc, "--nproc")
            return demo.run(topo, args.nproc, args.strategy, args.timeout, args.quiet)
        topo = parse_axes(words or DEFAULT_AXES)
        if command == "show":
            show(topo, limit=getattr(args, "limit", 16))
            return 0
        if command == "draw":
            draw(topo, args.group, args.ranks_per_node, args.limit)
            return 0
        return check(topo, args.world_size, args.ranks_per_node)
    except ProctopoError as exc:
        print(f"proctopo {command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away, e.g. `proctopo show ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
