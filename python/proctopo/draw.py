"""Pictures of a layout: ranks laid out by node (and domain), coloured by their group along an axis.

:func:`layout` turns a topology into a :class:`Picture`: rows of rank cells, one row
per node when the ranks per node are known (nodes framed by domain when the nodes
per domain are known too), otherwise one row per run of the last axis, framed by the
slower axes. With ``group`` every cell carries its group along those axes: a letter
(``a``, ``b``, ..., ``z``, ``aa``, ...) and a colour, both the same for every member
of a group wherever it is drawn, and a legend names each group's ranks. A picture
holds at most ``limit`` ranks: past that it shows the first rows and the last one and
says how many it left out, so a large world is drawn as a summary; choose the ranks
to draw with :func:`select` (one node, or one slice such as ``pipe=0``).

The same picture renders as text (:func:`write_text`; coloured with rich when it is
installed and the output is a terminal), SVG (:func:`svg`, written directly, no
dependency), HTML (:func:`html`, one self-contained file with the SVG inline), PNG
(:func:`png`, needs matplotlib) and a JSON-ready dict (:func:`to_dict`).

>>> from proctopo import ProcessTopology
>>> topo = ProcessTopology(['pipe', 'data', 'model'], [2, 2, 2])
>>> pic = layout(topo, group=['data'], ranks_per_node=4)
>>> [[(c.rank, label(c.group)) for c in row.cells] for row in pic.rows]
[[(0, 'a'), (1, 'b'), (2, 'a'), (3, 'b')], [(4, 'c'), (5, 'd'), (6, 'c'), (7, 'd')]]
"""

from __future__ import annotations

import bisect
import colorsys
import html as _html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import InvalidArgumentError, ProctopoError
from .machine import BlockPlacement
from .topology import ProcessTopology

__all__ = [
    "FORMATS",
    "Cell",
    "Group",
    "Picture",
    "Row",
    "color",
    "html",
    "label",
    "layout",
    "png",
    "select",
    "svg",
    "to_dict",
    "write_text",
]

#: The formats a picture renders to.
FORMATS = ("text", "svg", "png", "html")

#: The fill of a cell that belongs to no coloured group.
NEUTRAL = "#e6e6e6"

#: The pip command that installs the optional drawing dependencies.
PIP_DRAW = "pip install 'proctopo[draw]'"


def label(i: int) -> str:
    """A short name for group number ``i``: a..z, then aa..zz, then aaa, ... (no name skipped).

    >>> [label(i) for i in (0, 25, 26, 27, 51, 52, 701, 702)]
    ['a', 'z', 'aa', 'ab', 'az', 'ba', 'zz', 'aaa']
    """
    text = ""
    i += 1
    while i > 0:
        i, r = divmod(i - 1, 26)
        text = chr(ord("a") + r) + text
    return text


def color(i: int) -> str:
    """A light fill colour for group number ``i`` (``#rrggbb``); neighbouring numbers differ most.

    Hues step round the colour circle by the golden ratio, so consecutive groups get
    far-apart hues and no two of the first dozen look alike.

    >>> color(0), color(1) != color(0)
    ('#e0a3a3', True)
    """
    hue = (i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.76, 0.5)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass(frozen=True)
class Cell:
    """One rank in a picture.

    Attributes:
        rank: The rank.
        column: Its column: the local rank on its node, or its coordinate along the last axis.
        group: Its row in ``topo.groups(group_axes)``, None when the picture has no group axes.
    """

    rank: int
    column: int
    group: int | None


@dataclass(frozen=True)
class Row:
    """One row of a picture: a node, or a run of the last axis.

    Attributes:
        label: ``"node 3"``, or the coordinate of the second-to-last axis (``"data=1"``).
        block: The heading of the frame the row sits in (``"domain 0 (nodes 0-3)"``,
            or the coordinates of the slower axes, ``"pipe=0"``); None without frames.
        cells: The ranks drawn, left to right.
        more: Ranks of the row past the column limit, left out at its end.
        skipped: Rows left out just before this one (a summary of a large world).
    """

    label: str
    block: str | None
    cells: tuple[Cell, ...]
    more: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Group:
    """A legend entry: one group along the picture's group axes.

    Attributes:
        index: Its row in ``topo.groups(group_axes)``; ``label(index)`` and ``color(index)``.
        size: Its number of ranks.
        ranks: Its first ranks (all of them when it has at most 16).
        where: The coordinates its members share on the other axes.
    """

    index: int
    size: int
    ranks: tuple[int, ...]
    where: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        """The group's letters."""
        return label(self.index)

    @property
    def color(self) -> str:
        """The group's fill colour."""
        return color(self.index)

    def ranks_text(self) -> str:
        """``[0, 2, 4, 6]``, or ``[0, 8, ..., 56] (8 ranks)`` when only the first ranks are kept."""
        if len(self.ranks) == self.size:
            return "[" + ", ".join(map(str, self.ranks)) + "]"
        head = ", ".join(map(str, self.ranks[:3]))
        return f"[{head}, ...] ({self.size} ranks)"

    def where_text(self) -> str:
        """``pipe=0 model=1``: the coordinates its members share."""
        return " ".join(f"{a}={c}" for a, c in self.where)


@dataclass(frozen=True)
class Picture:
    """What :func:`layout` produces and every renderer draws.

    Attributes:
        title: One line naming the layout, the nodes and the colouring.
        notes: Lines that say what was left out, if anything.
        topo: The topology drawn.
        group_axes: The axes whose groups colour the cells (empty: no colouring).
        ranks_per_node: Ranks per node (rows are nodes), or None.
        nodes_per_domain: Nodes per domain (frames are domains), or None.
        columns: Column headings (``model=0``, ...), empty when rows are nodes.
        rows: The rows drawn.
        legend: The groups of the ranks drawn, by index.
        legend_more: Groups of the ranks drawn left out of the legend.
        ranks_selected: Ranks chosen for the picture.
        ranks_drawn: Ranks in its cells.
    """

    title: str
    notes: tuple[str, ...]
    topo: ProcessTopology
    group_axes: tuple[str, ...]
    ranks_per_node: int | None
    nodes_per_domain: int | None
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    legend: tuple[Group, ...]
    legend_more: int
    ranks_selected: int
    ranks_drawn: int

    @property
    def row_noun(self) -> str:
        """What a row is, in the plural: ``"nodes"`` or ``"rows"``."""
        return "nodes" if self.ranks_per_node else "rows"

    @property
    def placement(self) -> BlockPlacement | None:
        """Where the ranks sit, when the ranks per node are known."""
        if not self.ranks_per_node:
            return None
        return BlockPlacement(self.topo.world_size(), self.ranks_per_node, self.nodes_per_domain or 1)


def select(
    topo: ProcessTopology,
    where: Sequence[tuple[str, int]] = (),
    node: int | None = None,
    ranks_per_node: int | None = None,
) -> Sequence[int]:
    """The ranks to draw, ascending: those with the coordinates ``where`` and, with ``node``, on that node.

    Raises:
        UnknownAxisError: ``where`` names an axis the topology does not have.
        InvalidArgumentError: ``where`` names an axis twice; ``node`` without
            ``ranks_per_node``, or past the last node.
        CoordinateOutOfRangeError: a coordinate of ``where`` outside its axis.

    >>> topo = ProcessTopology(['pipe', 'data'], [2, 4])
    >>> select(topo, [('data', 1)]), select(topo, node=1, ranks_per_node=4)
    ([1, 5], range(4, 8))
    >>> select(topo, node=2, ranks_per_node=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: node 2 is not in the layout: 8 ranks on nodes of 4 ranks are ...
    """
    w = topo.world_size()
    ranks: Sequence[int] = range(w)
    if where:
        topo.axis_indices([a for a, _ in where])  # unknown or repeated axes, in the topology's words
        full = {a: 0 for a in topo.get_axis_names()}
        full.update(where)
        topo.get_rank(**full)  # a coordinate out of its axis, in the topology's words
        ranks = topo.filter_match(**dict(where))
    if node is not None:
        if not ranks_per_node:
            raise InvalidArgumentError("a node is chosen by its number, so the ranks per node must be given")
        on_node = BlockPlacement(w, ranks_per_node).ranks_of_node(node)
        if isinstance(ranks, range):
            ranks = on_node
        else:
            ranks = [r for r in ranks if r in on_node]
    return ranks


def layout(
    topo: ProcessTopology,
    group: Sequence[str] = (),
    ranks_per_node: int | None = None,
    nodes_per_domain: int | None = None,
    ranks: Sequence[int] | None = None,
    *,
    limit: int = 256,
    columns: int = 32,
    legend_limit: int = 32,
) -> Picture:
    """Lay out ranks for a picture.

    Args:
        topo: The topology.
        group: Axes whose groups colour and letter the cells (their joint group when several).
        ranks_per_node: Ranks per node: rows are nodes. Without it, rows are runs of the
            last axis, framed by the coordinates of the slower axes.
        nodes_per_domain: Nodes per domain (needs ``ranks_per_node``): nodes framed by domain.
        ranks: The ranks to draw, ascending (default: all; see :func:`select`).
        limit: At most this many ranks are drawn: the first rows that fit, then the last row.
        columns: At most this many ranks of a row are drawn.
        legend_limit: At most this many legend entries.

    Raises:
        UnknownAxisError: a group axis the topology does not have.
        InvalidArgumentError: ``nodes_per_domain`` without ``ranks_per_node``, or a limit below 1.
    """
    if nodes_per_domain and not ranks_per_node:
        raise InvalidArgumentError("nodes are grouped in domains only when the ranks per node are given")
    if min(limit, columns, legend_limit) < 1:
        raise InvalidArgumentError("the limits of a picture must be at least 1")
    axes, dims = topo.get_axis_names(), topo.dims
    group_axes = list(group)
    if group_axes:
        topo.axis_indices(group_axes)  # unknown or repeated axes, in the topology's words
    w = topo.world_size()
    chosen: Sequence[int] = range(w) if ranks is None else ranks
    columns = min(columns, limit)

    # Rows are blocks of consecutive ranks: nodes, or runs of the last axis (a block of
    # dims[-1] ranks), so the machine's arithmetic places both.
    rows_of = BlockPlacement(w, ranks_per_node or dims[-1], nodes_per_domain or 1)
    if ranks_per_node:

        def row_label(r: int) -> str:
            return f"node {rows_of.node_of(r)}"

        def block_label(r: int) -> str | None:
            if not nodes_per_domain:
                return None
            d = rows_of.domain_of(r)
            nodes = rows_of.nodes_of_domain(d)
            return f"domain {d} (nodes {nodes[0]}-{nodes[-1]})"

        headings: tuple[str, ...] = ()
    else:

        def row_label(r: int) -> str:
            return f"{axes[-2]}={topo.get_coord(r)[-2]}" if len(axes) >= 2 else ""

        def block_label(r: int) -> str | None:
            if len(axes) < 3:
                return None
            coord = topo.get_coord(r)
            return " ".join(f"{a}={c}" for a, c in zip(axes[:-2], coord[:-2]))

        headings = tuple(f"{axes[-1]}={j}" for j in range(min(dims[-1], columns)))

    def make_row(lo: int, hi: int, skipped: int = 0) -> Row:
        shown = [chosen[i] for i in range(lo, min(hi, lo + columns))]
        cells = tuple(
            Cell(r, rows_of.local_rank(r), topo.group_index(r, group_axes)[0] if group_axes else None)
            for r in shown
        )
        first = shown[0]
        return Row(row_label(first), block_label(first), cells, (hi - lo) - len(shown), skipped)

    bounds: list[tuple[int, int, int]] = []  # (lo, hi, rows skipped before) indices into chosen
    drawn = 0
    lo = 0
    while lo < len(chosen):
        hi = bisect.bisect_left(chosen, rows_of.ranks_of_node(rows_of.node_of(chosen[lo])).stop, lo)
        n = min(hi - lo, columns)
        if bounds and drawn + n > limit:
            break
        bounds.append((lo, hi, 0))
        drawn += n
        lo = hi
    if lo < len(chosen):  # a summary: the first rows that fit with the last one, then the last
        last_lo = bisect.bisect_left(chosen, rows_of.ranks_of_node(rows_of.node_of(chosen[-1])).start)
        n_last = min(len(chosen) - last_lo, columns)
        while len(bounds) > 1 and drawn + n_last > limit:
            lo_, hi_, _ = bounds.pop()
            drawn -= min(hi_ - lo_, columns)
        bounds.append((last_lo, len(chosen), rows_of.count_nodes(chosen) - len(bounds) - 1))
        drawn += n_last
    rows = [make_row(lo_, hi_, skipped) for lo_, hi_, skipped in bounds]

    legend: list[Group] = []
    seen = sorted({c.group for row in rows for c in row.cells if c.group is not None})
    first_rank: dict[int, int] = {}
    for row in rows:
        for c in row.cells:
            if c.group is not None:
                first_rank.setdefault(c.group, c.rank)
    others = [i for i, a in enumerate(axes) if a not in group_axes]
    group_size = topo.group_size(group_axes)
    for g in seen[:legend_limit]:
        first = topo.group_head(first_rank[g], group_axes, 16)  # not the whole group
        coord = topo.get_coord(first_rank[g])
        legend.append(Group(g, group_size, tuple(first), tuple((axes[i], coord[i]) for i in others)))

    title = topo._core.describe()
    if ranks_per_node:
        nodes = rows_of.nodes
        title += f" on {nodes} node{'s' * (nodes != 1)} of {ranks_per_node} ranks"
        if nodes_per_domain:
            domains = rows_of.domains
            title += f", {domains} domain{'s' * (domains != 1)} of {nodes_per_domain} nodes"
    if group_axes:
        title += f"; coloured by {'+'.join(group_axes)} group"
    notes: list[str] = []
    if drawn < len(chosen):
        noun = "nodes" if ranks_per_node else "rows"
        what = f"{len(chosen)} chosen ranks" if ranks is not None else f"{len(chosen)} ranks"
        notes.append(
            f"showing {drawn} of {what}: left out {sum(r.skipped for r in rows)} {noun}"
            + (
                f" and {sum(r.more for r in rows)} ranks past column {columns}"
                if any(r.more for r in rows)
                else ""
            )
            + "; draw one node or one slice to see the rest"
        )
    if len(seen) > legend_limit:
        notes.append(f"the legend lists the first {legend_limit} of {len(seen)} groups")
    return Picture(
        title=title,
        notes=tuple(notes),
        topo=topo,
        group_axes=tuple(group_axes),
        ranks_per_node=ranks_per_node,
        nodes_per_domain=nodes_per_domain,
        columns=headings,
        rows=tuple(rows),
        legend=tuple(legend),
        legend_more=max(0, len(seen) - legend_limit),
        ranks_selected=len(chosen),
        ranks_drawn=drawn,
    )


# ---------------------------------------------------------------------------- text


def _cell_text(pic: Picture, c: Cell) -> str:
    return f"{c.rank} {label(c.group)}" if c.group is not None else str(c.rank)


def _text_lines(pic: Picture) -> list[list[tuple[str, str | None]]]:
    """The text picture as lines of (text, fill colour or None) pieces."""
    lines: list[list[tuple[str, str | None]]] = [[(pic.title, None)]]
    lines += [[(note, None)] for note in pic.notes]
    cells = [_cell_text(pic, c) for row in pic.rows for c in row.cells]
    width = max([len(t) for t in cells] + [len(h) for h in pic.columns] + [1])
    label_w = max([len(r.label) for r in pic.rows] + [0]) + 2
    for i, row in enumerate(pic.rows):
        if i == 0 or row.block != pic.rows[i - 1].block:
            if row.block is not None:
                if i > 0:
                    lines.append([])
                lines.append([(row.block, None)])
            if pic.columns:
                lines.append([(" " * label_w + "".join(h.rjust(width + 2) for h in pic.columns), None)])
        if row.skipped:
            lines.append([(f"{'...':>{label_w}}  ({row.skipped} more {pic.row_noun})", None)])
        pieces: list[tuple[str, str | None]] = [(("  " + row.label).ljust(label_w), None)]
        column = 0
        for c in row.cells:
            text = _cell_text(pic, c)
            pieces.append((" " * ((c.column - column) * (width + 2) + 2 + width - len(text)), None))
            pieces.append((text, color(c.group) if c.group is not None else None))
            column = c.column + 1
        if row.more:
            pieces.append((f"  ... +{row.more}", None))
        lines.append(pieces)
    if pic.legend:
        lines.append([])
        lines.append([(f"groups along {'+'.join(pic.group_axes)}:", None)])
        lab_w = max(len(g.label) for g in pic.legend)
        for g in pic.legend:
            where = f"  {g.where_text()}" if g.where else ""
            lines.append(
                [("  ", None), (f" {g.label.ljust(lab_w)} ", g.color), (f"  {g.ranks_text()}{where}", None)]
            )
        if pic.legend_more:
            lines.append([(f"  ... and {pic.legend_more} more groups", None)])
    return lines


def write_text(pic: Picture, out: TextIO, color_mode: str = "auto") -> None:
    """Write the picture as text: each cell its rank and group letter, rows labelled.

    ``color_mode`` is ``"auto"`` (colour when rich is installed and ``out`` is a
    terminal; rich also honours ``NO_COLOR``), ``"always"`` (colour whenever rich is
    installed) or ``"never"``. Without rich the text is the same, without colour.

    >>> import io, proctopo
    >>> buf = io.StringIO()
    >>> write_text(layout(proctopo.ProcessTopology(['data', 'model'], [2, 2]), ['data']), buf, 'never')
    >>> print(buf.getvalue().rstrip())
    data=2 x model=2 (4 ranks); coloured by data group
              model=0  model=1
      data=0      0 a      1 b
      data=1      2 a      3 b
    <BLANKLINE>
    groups along data:
       a   [0, 2]  model=0
       b   [1, 3]  model=1
    """
    lines = _text_lines(pic)
    console = _rich_console(out, color_mode) if color_mode != "never" else None
    if console is None:
        for pieces in lines:
            print("".join(t for t, _ in pieces).rstrip(), file=out)
        return
    from rich.text import Text

    for pieces in lines:
        text = Text(no_wrap=True, end="\n")
        for t, fill in pieces:
            text.append(t, style=f"black on {fill}" if fill else None)
        text.rstrip()
        console.print(text, soft_wrap=True)


def _rich_console(out: TextIO, color_mode: str) -> Any:
    """A rich Console writing to ``out``, or None when rich is missing or colour is off."""
    try:
        from rich.console import Console
    except ImportError:
        return None
    if color_mode == "always":
        return Console(file=out, force_terminal=True, color_system="truecolor", highlight=False)
    console = Console(file=out, highlight=False)
    return console if console.is_terminal and console.color_system else None


# ---------------------------------------------------------------------------- shapes

_CHAR = 7.3  # width of a character of the 12 px monospace font, in px
_CELL_H = 26.0
_GAP = 4.0
_PAD = 16.0
_FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str = "none"
    dashed: bool = False
    kind: str = ""
    data: tuple[tuple[str, str], ...] = ()
    tip: str = ""


@dataclass(frozen=True)
class _Text:
    x: float
    y: float
    text: str
    size: float = 12.0
    anchor: str = "start"
    bold: bool = False
    fill: str = "#222222"


@dataclass(frozen=True)
class _Scene:
    width: int
    height: int
    shapes: tuple[_Rect | _Text, ...]


def _scene(pic: Picture) -> _Scene:
    """Place every rect and text of the picture, in px (y grows downwards)."""
    shapes: list[_Rect | _Text] = []
    right = 0.0

    def text(
        x: float, y: float, s: str, size: float = 12.0, anchor: str = "start", bold: bool = False
    ) -> None:
        nonlocal right
        shapes.append(_Text(x, y, s, size, anchor, bold))
        span = len(s) * _CHAR * size / 12
        right = max(right, x + (span if anchor == "start" else span / 2 if anchor == "middle" else 0))

    placement = pic.placement
    y = _PAD
    text(_PAD, y + 15, pic.title, 15, bold=True)
    y += 26
    for note in pic.notes:
        text(_PAD, y + 12, note)
        y += 18
    y += 6
    cells = [_cell_text(pic, c) for row in pic.rows for c in row.cells]
    cell_w = max(
        [40.0, *(len(t) * _CHAR + 14 for t in cells), *(len(h) * _CHAR * 11 / 12 + 8 for h in pic.columns)]
    )
    label_w = max([len(r.label) for r in pic.rows] + [0]) * _CHAR + 14
    ncols = max([c.column + 1 for row in pic.rows for c in row.cells] + [len(pic.columns), 1])
    x0 = _PAD + 10 + label_w
    grid_right = x0 + ncols * (cell_w + _GAP) + (60 if any(r.more for r in pic.rows) else 0)
    right = max(right, grid_right + 10)

    def headings() -> None:
        nonlocal y
        if pic.columns:
            for j, h in enumerate(pic.columns):
                text(x0 + j * (cell_w + _GAP) + cell_w / 2, y + 12, h, 11, "middle")
            y += 18

    frames: list[tuple[str, float, float]] = []  # block heading, top, bottom
    block: str | None = None
    for i, row in enumerate(pic.rows):
        if row.block is not None and row.block != block:
            y += 12 if frames else 0
            frames.append((row.block, y, y))
            text(_PAD + 8, y + 17, row.block, 12, bold=True)
            y += 24
            headings()
        elif i == 0:
            headings()
        block = row.block
        if row.skipped:
            text(x0, y + 15, f"... {row.skipped} more {pic.row_noun} ...", 12)
            y += 22
        text(_PAD + 10, y + _CELL_H / 2 + 4, row.label, 12)
        for c in row.cells:
            x = x0 + c.column * (cell_w + _GAP)
            coord = " ".join(
                f"{a}={v}" for a, v in zip(pic.topo.get_axis_names(), pic.topo.get_coord(c.rank))
            )
            data: tuple[tuple[str, str], ...] = (("rank", str(c.rank)),)
            tip = f"rank {c.rank}: {coord}"
            if c.group is not None:
                data += (("group", label(c.group)),)
                tip += f"; {'+'.join(pic.group_axes)} group {label(c.group)}"
            if placement is not None:
                tip += f"; node {placement.node_of(c.rank)}"
            fill = color(c.group) if c.group is not None else NEUTRAL
            shapes.append(_Rect(x, y, cell_w, _CELL_H, fill, "#666666", kind="rank", data=data, tip=tip))
            text(x + cell_w / 2, y + _CELL_H / 2 + 4, _cell_text(pic, c), 12, "middle")
        if row.more:
            text(x0 + ncols * (cell_w + _GAP) + 4, y + _CELL_H / 2 + 4, f"+{row.more}", 11)
        y += _CELL_H + _GAP
        if frames:
            frames[-1] = (frames[-1][0], frames[-1][1], y)
    for _, top, bottom in frames:
        shapes.insert(
            0, _Rect(_PAD, top, grid_right - _PAD, bottom - top + 4, "none", "#999999", True, "frame")
        )
    if pic.legend:
        y += 14
        text(_PAD, y + 13, f"groups along {'+'.join(pic.group_axes)}", 13, bold=True)
        y += 22
        for g in pic.legend:
            shapes.append(
                _Rect(_PAD, y, 26, 16, g.color, "#666666", kind="legend", data=(("group", g.label),))
            )
            text(_PAD + 13, y + 12, g.label, 11, "middle")
            where = f"  {g.where_text()}" if g.where else ""
            text(_PAD + 36, y + 12, f"{g.ranks_text()}{where}", 12)
            y += 21
        if pic.legend_more:
            text(_PAD, y + 12, f"... and {pic.legend_more} more groups", 12)
            y += 21
    return _Scene(int(right + _PAD + 0.999), int(y + _PAD + 0.999), tuple(shapes))


def svg(pic: Picture) -> str:
    """The picture as an SVG document: one ``rect`` of class ``rank`` per rank drawn (with
    ``data-rank`` and ``data-group``), one of class ``legend`` per legend entry (``data-group``).

    >>> import proctopo
    >>> text = svg(layout(proctopo.ProcessTopology(['pipe', 'data'], [2, 2]), ['data']))
    >>> text.count('class="rank"'), text.count('class="legend"')
    (4, 2)
    """
    scene = _scene(pic)
    esc = _html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width}" height="{scene.height}" '
        f'viewBox="0 0 {scene.width} {scene.height}" font-family="{_FONT}">',
        f"<title>{esc(pic.title)}</title>",
        f'<rect class="background" width="{scene.width}" height="{scene.height}" fill="#ffffff"/>',
    ]
    for s in scene.shapes:
        if isinstance(s, _Rect):
            attrs = f'class="{s.kind}" x="{s.x:g}" y="{s.y:g}" width="{s.w:g}" height="{s.h:g}" rx="3" '
            attrs += f'fill="{s.fill}" stroke="{s.stroke}"'
            if s.dashed:
                attrs += ' stroke-dasharray="4 3"'
            attrs += "".join(f' data-{k}="{esc(v)}"' for k, v in s.data)
            tip = f"<title>{esc(s.tip)}</title>" if s.tip else ""
            out.append(f"<rect {attrs}>{tip}</rect>" if tip else f"<rect {attrs}/>")
        else:
            weight = ' font-weight="bold"' if s.bold else ""
            out.append(
                f'<text x="{s.x:g}" y="{s.y:g}" font-size="{s.size:g}" text-anchor="{s.anchor}" '
                f'fill="{s.fill}"{weight}>{esc(s.text)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html(pic: Picture) -> str:
    """The picture as one self-contained HTML page: the SVG inline, nothing fetched.

    >>> import proctopo
    >>> page = html(layout(proctopo.ProcessTopology(['pipe', 'data'], [2, 2])))
    >>> page.startswith('<!DOCTYPE html>') and '<svg ' in page and 'src=' not in page
    True
    """
    esc = _html.escape
    notes = "".join(f"<p>{esc(n)}</p>" for n in pic.notes)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(pic.title)}</title>\n"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "rect.rank:hover{stroke:#000;stroke-width:2}</style>\n</head>\n<body>\n"
        f'<h1 style="font-size:18px">{esc(pic.title)}</h1>\n{notes}\n'
        f"{svg(pic)}"
        "<p>Hover over a rank for its coordinates, group and node.</p>\n</body>\n</html>\n"
    )


def png(pic: Picture, path: str) -> None:
    """Write the picture as a PNG file (needs matplotlib: ``pip install 'proctopo[draw]'``).

    Raises:
        ProctopoError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ProctopoError(
            f"PNG needs matplotlib, which is not installed: {PIP_DRAW} (SVG, HTML and text need nothing)"
        ) from None
    scene = _scene(pic)
    dpi = 100
    fig = Figure(figsize=(scene.width / dpi, scene.height / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, scene.width)
    ax.set_ylim(scene.height, 0)
    ax.set_axis_off()
    pt = 72 / dpi  # a px of the scene in points
    for s in scene.shapes:
        if isinstance(s, _Rect):
            ax.add_patch(
                Rectangle(
                    (s.x, s.y),
                    s.w,
                    s.h,
                    facecolor=s.fill if s.fill != "none" else "none",
                    edgecolor=s.stroke if s.stroke != "none" else "none",
                    linewidth=0.8,
                    linestyle=(0, (4, 3)) if s.dashed else "solid",
                )
            )
        else:
            ax.text(
                s.x,
                s.y,
                s.text,
                fontsize=s.size * pt,
                ha={"start": "left", "middle": "center", "end": "right"}[s.anchor],
                va="baseline",
                family="monospace",
                weight="bold" if s.bold else "normal",
                color=s.fill,
            )
    fig.savefig(path, format="png", dpi=dpi, facecolor="white")


def to_dict(pic: Picture) -> dict[str, Any]:
    """The picture as a JSON-ready dict (the body of ``proctopo draw --json``; see docs/cli.md).

    >>> import proctopo
    >>> d = to_dict(layout(proctopo.ProcessTopology(['pipe', 'data'], [2, 2]), ['data']))
    >>> d['rows'][0]['cells'][1], d['legend'][1]['ranks']
    ({'rank': 1, 'column': 1, 'group': 0, 'label': 'a', 'color': '#e0a3a3'}, [2, 3])
    """

    def cell(c: Cell) -> dict[str, Any]:
        d: dict[str, Any] = {"rank": c.rank, "column": c.column}
        if c.group is not None:
            d.update(group=c.group, label=label(c.group), color=color(c.group))
        return d

    return {
        "title": pic.title,
        "notes": list(pic.notes),
        "group_axes": list(pic.group_axes),
        "ranks_per_node": pic.ranks_per_node,
        "nodes_per_domain": pic.nodes_per_domain,
        "ranks_selected": pic.ranks_selected,
        "ranks_drawn": pic.ranks_drawn,
        "columns": list(pic.columns),
        "rows": [
            {
                "label": r.label,
                "block": r.block,
                "skipped_before": r.skipped,
                "cells": [cell(c) for c in r.cells],
                "more": r.more,
            }
            for r in pic.rows
        ],
        "legend": [
            {
                "group": g.index,
                "label": g.label,
                "color": g.color,
                "size": g.size,
                "ranks": list(g.ranks),
                "where": dict(g.where),
            }
            for g in pic.legend
        ],
        "legend_more": pic.legend_more,
    }
