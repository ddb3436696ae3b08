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
import operator
from collections.abc import Iterator, Sequence
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
    "Selection",
    "check_layout",
    "color",
    "html",
    "label",
    "layout",
    "legend_of",
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

#: The most ranks one picture draws (``limit`` of :func:`layout`, ``draw --limit``): every
#: renderer's work and output grow with the ranks drawn, never with the world.
LIMIT_MAX = 4096

#: The most pixels a PNG has along either side (matplotlib's Agg canvas).
PNG_MAX_PIXELS = 65535


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
        columns: Column headings (``model=0``, ...), empty when rows are nodes; when the
            columns drawn lie far apart (past the column limit), the heading of each
            column drawn (``model=40``, ``local 40``), side by side.
        rows: The rows drawn.
        legend: The groups of the ranks drawn, by index.
        legend_more: Groups of the ranks drawn left out of the legend.
        ranks_selected: Ranks chosen for the picture.
        ranks_drawn: Ranks in its cells.
        places: The columns drawn, ascending, when they lie far apart and are drawn side
            by side; empty when each cell sits at its own column.
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
    places: tuple[int, ...] = ()

    def place(self, c: Cell) -> int:
        """Where a cell is drawn, counted in cells from the left."""
        return bisect.bisect_left(self.places, c.column) if self.places else c.column

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


class Selection(Sequence[int]):
    """The ranks whose coordinates on some axes are given, ascending, without listing them.

    Its length, an item, the position of a rank and the number of nodes it touches
    (:meth:`count_blocks`) each cost O(axes), not O(ranks), so a slice of any world is
    drawn in time and memory bounded by the picture's limit. Slicing (step 1) gives a
    window of it, still unlisted.

    >>> sel = Selection(ProcessTopology(['pipe', 'data', 'model'], [2, 3, 4]), {'data': 1})
    >>> len(sel), list(sel), sel[-1], sel.position(13)
    (8, [4, 5, 6, 7, 16, 17, 18, 19], 19, 4)
    >>> sel.count_blocks(8), list(sel[2:5]), sel[2:5].count_blocks(8)
    (2, [6, 7, 16], 2)
    """

    #: The recursion of :meth:`count_blocks` evaluates at most this many sub-sums; past that it
    #: refuses (a node size whose remainders cycle slowly against strides of huge axes).
    BUDGET = 1 << 16

    def __init__(
        self, topo: ProcessTopology, where: dict[str, int], start: int = 0, stop: int | None = None
    ) -> None:
        strides, dims = topo.strides, topo.dims
        self._world = topo.world_size()
        index = {a: i for i, a in enumerate(topo.get_axis_names())}
        self._base = sum(c * strides[index[a]] for a, c in where.items())
        # The free axes, slowest first, as runs (size, stride); neighbouring free axes merge.
        runs: list[tuple[int, int]] = []
        for i, (d, st) in enumerate(zip(dims, strides)):
            if topo.get_axis_names()[i] in where or d == 1:
                continue
            if runs and runs[-1][1] == d * st:
                runs[-1] = (runs[-1][0] * d, st)
            else:
                runs.append((d, st))
        self._runs = runs
        counts = [1] * (len(runs) + 1)  # counts[k]: points of the runs k..
        spans = [0] * (len(runs) + 1)  # spans[k]: last point minus first point of the runs k..
        for k in range(len(runs) - 1, -1, -1):
            counts[k] = counts[k + 1] * runs[k][0]
            spans[k] = spans[k + 1] + (runs[k][0] - 1) * runs[k][1]
        self._counts, self._spans = counts, spans
        total = counts[0]
        self._start = min(max(start, 0), total)
        self._stop = max(self._start, min(total if stop is None else stop, total))

    def _rank(self, i: int) -> int:
        """The rank at position ``i`` of the whole selection."""
        rank = self._base
        for d, st in reversed(self._runs):
            i, c = divmod(i, d)
            rank += c * st
        return rank

    def _below(self, rank: int) -> int:
        """How many ranks of the whole selection are below ``rank``."""
        if rank <= self._base:
            return 0
        below, rest = 0, rank - self._base
        for k, (d, st) in enumerate(self._runs):
            c = rest // st
            if c >= d:  # past the last point of this run: every point of it is below
                return below + self._counts[k]
            below += c * self._counts[k + 1]
            rest -= c * st
            if rest > self._spans[k + 1]:  # between two points of this run
                return below + self._counts[k + 1]
        return below + (1 if rest > 0 else 0)

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, i: Any) -> Any:
        n = len(self)
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            if step != 1:
                raise InvalidArgumentError(f"a selection is sliced with step 1, got step {step}")
            return Selection._window(self, self._start + lo, self._start + max(lo, hi))
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"position {i} is not in a selection of {n} ranks")
        return self._rank(self._start + i)

    def _window(self, start: int, stop: int) -> Selection:
        other = object.__new__(Selection)
        other.__dict__.update(self.__dict__)
        other._start, other._stop = start, stop
        return other

    def __iter__(self) -> Iterator[int]:
        return (self._rank(i) for i in range(self._start, self._stop))

    def position(self, rank: int) -> int:
        """How many ranks of the selection are below ``rank`` (where ``bisect_left`` would put it)."""
        return min(max(self._below(rank) - self._start, 0), len(self))

    def count_blocks(self, size: int) -> int:
        """How many runs of ``size`` consecutive ranks (``[0, size)``, ``[size, 2 size)``, ...)
        hold a rank of the selection: the nodes it touches, for ``size`` ranks per node.

        Exact, in O(axes) sub-sums for the usual shapes
        (:meth:`proctopo.machine.BlockPlacement.count_nodes_of_runs` counts them).

        Raises:
            InvalidArgumentError: ``size`` below 1, or the count would take more than
                :attr:`BUDGET` sub-sums (then draw one node, or fix more axes).
        """
        if size < 1:
            raise InvalidArgumentError(f"a block holds at least 1 rank, got {size}")
        nodes = BlockPlacement(self._world, size).count_nodes_of_runs(
            self._base, self._runs, self._start, self._stop, self.BUDGET
        )
        if nodes is None:
            raise InvalidArgumentError(
                f"counting the nodes of this selection would take more than {self.BUDGET:,} steps "
                f"(nodes of {size:,} ranks whose remainders repeat slowly against the strides): "
                "draw one node (--node) or fix more axes (--slice)"
            )
        return nodes


def select(
    topo: ProcessTopology,
    where: Sequence[tuple[str, int]] = (),
    node: int | None = None,
    ranks_per_node: int | None = None,
) -> Sequence[int]:
    """The ranks to draw, ascending: those with the coordinates ``where`` and, with ``node``, on that node.

    The ranks are not listed: a ``range``, or a :class:`Selection` for coordinates, so
    choosing costs O(axes) whatever the size of the world.

    Raises:
        UnknownAxisError: ``where`` names an axis the topology does not have.
        InvalidArgumentError: ``where`` names an axis twice; ``node`` without
            ``ranks_per_node``, or past the last node.
        CoordinateOutOfRangeError: a coordinate of ``where`` outside its axis.

    >>> topo = ProcessTopology(['pipe', 'data'], [2, 4])
    >>> list(select(topo, [('data', 1)])), select(topo, node=1, ranks_per_node=4)
    ([1, 5], range(4, 8))
    >>> select(topo, node=2, ranks_per_node=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: node 2 is not in the layout: 8 ranks on nodes of 4 ranks are ...
    """
    w = topo.world_size()
    ranks: range | Selection = range(w)
    if where:
        topo.axis_indices([a for a, _ in where])  # unknown or repeated axes, in the topology's words
        full = {a: 0 for a in topo.get_axis_names()}
        full.update(where)
        topo.get_rank(**full)  # a coordinate out of its axis, in the topology's words
        ranks = Selection(topo, dict(where))
    if node is not None:
        if not ranks_per_node:
            raise InvalidArgumentError("a node is chosen by its number, so the ranks per node must be given")
        on_node = BlockPlacement(w, ranks_per_node).ranks_of_node(node)
        if isinstance(ranks, range):
            ranks = on_node
        else:
            ranks = ranks[ranks.position(on_node.start) : ranks.position(on_node.stop)]
    return ranks


def check_layout(
    topo: ProcessTopology,
    group: Sequence[str] = (),
    *,
    limit: int = 256,
    columns: int = 32,
    legend_limit: int = 32,
) -> None:
    """Check the arguments every picture shares (:func:`layout`'s, and the hosts' picture's).

    Raises:
        UnknownAxisError: a group axis the topology does not have.
        InvalidArgumentError: a group axis named twice, a limit below 1, or ``limit`` above
            :data:`LIMIT_MAX`.

    >>> check_layout(ProcessTopology(['pipe', 'data'], [2, 2]), ['data'], limit=0)
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: the limits of a picture must be at least 1
    """
    if min(limit, columns, legend_limit) < 1:
        raise InvalidArgumentError("the limits of a picture must be at least 1")
    if limit > LIMIT_MAX:
        raise InvalidArgumentError(
            f"a picture draws at most {LIMIT_MAX} ranks, got a limit of {limit}; draw one node or "
            "one slice to see more of a large world"
        )
    if group:
        topo.axis_indices(list(group))  # unknown or repeated axes, in the topology's words


def legend_of(
    topo: ProcessTopology, rows: Sequence[Row], group_axes: Sequence[str], limit: int = 32
) -> tuple[tuple[Group, ...], int]:
    """The legend of the cells of ``rows``: their first ``limit`` groups, by index, and how many there are.

    Each entry lists its group's first 16 ranks (not the whole group) and the coordinates
    its members share, taken from the first rank of it drawn.

    >>> topo = ProcessTopology(['pipe', 'data'], [2, 2])
    >>> legend, groups = legend_of(topo, layout(topo, ['data']).rows, ['data'], limit=1)
    >>> [(g.label, g.ranks, g.where) for g in legend], groups
    ([('a', (0, 1), (('pipe', 0),))], 2)
    """
    axes = topo.get_axis_names()
    first_rank: dict[int, int] = {}
    for row in rows:
        for c in row.cells:
            if c.group is not None:
                first_rank.setdefault(c.group, c.rank)
    others = [i for i, a in enumerate(axes) if a not in group_axes]
    size = topo.group_size(list(group_axes))
    legend = []
    for g in sorted(first_rank)[:limit]:
        first = topo.group_head(first_rank[g], list(group_axes), 16)
        coord = topo.get_coord(first_rank[g])
        legend.append(Group(g, size, tuple(first), tuple((axes[i], coord[i]) for i in others)))
    return tuple(legend), len(first_rank)


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
        limit: At most this many ranks are drawn (1 to :data:`LIMIT_MAX`): the first rows
            that fit, then the last row.
        columns: At most this many ranks of a row are drawn.
        legend_limit: At most this many legend entries.

    Raises:
        UnknownAxisError: a group axis the topology does not have.
        InvalidArgumentError: ``nodes_per_domain`` without ``ranks_per_node``, a limit below 1,
            or ``limit`` above :data:`LIMIT_MAX`.
    """
    if nodes_per_domain and not ranks_per_node:
        raise InvalidArgumentError("nodes are grouped in domains only when the ranks per node are given")
    check_layout(topo, group, limit=limit, columns=columns, legend_limit=legend_limit)
    axes, dims = topo.get_axis_names(), topo.dims
    group_axes = list(group)
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

    def position(rank: int, lo: int = 0) -> int:
        """Where ``rank`` goes in ``chosen`` (bisect_left), in O(axes) for a :class:`Selection`."""
        if isinstance(chosen, Selection):
            return max(lo, chosen.position(rank))
        return bisect.bisect_left(chosen, rank, lo)

    def count_rows() -> int:
        if isinstance(chosen, Selection):
            return chosen.count_blocks(rows_of.ranks_per_node)
        return rows_of.count_nodes(chosen)

    # Each pass draws at least one rank, so the work is bounded by the limit, not the world.
    bounds: list[tuple[int, int, int]] = []  # (lo, hi, rows skipped before) indices into chosen
    drawn = 0
    lo = 0
    while lo < len(chosen):
        hi = position(rows_of.ranks_of_node(rows_of.node_of(chosen[lo])).stop, lo)
        n = min(hi - lo, columns)
        if bounds and drawn + n > limit:
            break
        bounds.append((lo, hi, 0))
        drawn += n
        lo = hi
    if lo < len(chosen):  # a summary: the first rows that fit with the last one, then the last
        last_lo = position(rows_of.ranks_of_node(rows_of.node_of(chosen[-1])).start)
        n_last = min(len(chosen) - last_lo, columns)
        while len(bounds) > 1 and drawn + n_last > limit:
            lo_, hi_, _ = bounds.pop()
            drawn -= min(hi_ - lo_, columns)
        bounds.append((last_lo, len(chosen), count_rows() - len(bounds) - 1))
        drawn += n_last
    rows = [make_row(lo_, hi_, skipped) for lo_, hi_, skipped in bounds]
    used = sorted({c.column for row in rows for c in row.cells})
    places: tuple[int, ...] = ()
    if used and used[-1] >= columns:  # columns far apart (a slice): only those drawn, side by side
        places = tuple(used)
        headings = tuple(f"local {j}" if ranks_per_node else f"{axes[-1]}={j}" for j in used)

    legend, groups = legend_of(topo, rows, group_axes, legend_limit)

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
    if groups > legend_limit:
        notes.append(f"the legend lists the first {legend_limit} of {groups} groups")
    return Picture(
        title=title,
        notes=tuple(notes),
        topo=topo,
        group_axes=tuple(group_axes),
        ranks_per_node=ranks_per_node,
        nodes_per_domain=nodes_per_domain,
        columns=headings,
        rows=tuple(rows),
        legend=legend,
        legend_more=max(0, groups - legend_limit),
        ranks_selected=len(chosen),
        ranks_drawn=drawn,
        places=places,
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
            place = pic.place(c)
            pieces.append((" " * ((place - column) * (width + 2) + 2 + width - len(text)), None))
            pieces.append((text, color(c.group) if c.group is not None else None))
            column = place + 1
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
    ncols = max([pic.place(c) + 1 for row in pic.rows for c in row.cells] + [len(pic.columns), 1])
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
            x = x0 + pic.place(c) * (cell_w + _GAP)
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
        InvalidArgumentError: the picture is wider or taller than a PNG holds
            (:data:`PNG_MAX_PIXELS`).
        ProctopoError: matplotlib is not installed.
    """
    scene = _scene(pic)
    if max(scene.width, scene.height) > PNG_MAX_PIXELS:
        raise InvalidArgumentError(
            f"the picture is {scene.width} x {scene.height} px, more than a PNG holds "
            f"({PNG_MAX_PIXELS} px a side): draw fewer ranks (--limit), or SVG or HTML"
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ProctopoError(
            f"PNG needs matplotlib, which is not installed: {PIP_DRAW} (SVG, HTML and text need nothing)"
        ) from None
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
