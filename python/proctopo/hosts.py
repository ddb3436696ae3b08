"""Where a launch will put the ranks, read before it starts: a hostfile, or Slurm's job environment.

A :class:`Hosts` is the names of the hosts of a job and a :mod:`proctopo.machine`
placement of its ranks on them (node ``i`` is host ``names[i]``): the
:class:`~proctopo.machine.BlockPlacement` when the ranks fill the hosts in order, the
same number on each but the last, else a :class:`~proctopo.machine.ListedPlacement`.
``proctopo check``, ``draw`` and ``plan`` use it instead of the block model of
``--ranks-per-node``.

- :func:`read_hostfile` reads a DeepSpeed/MPI hostfile (``host slots=N`` lines) and
  places ranks host by host in file order, as DeepSpeed's launcher and ``mpirun``'s
  default by-slot mapping do.
- :func:`from_slurm` reads ``SLURM_JOB_NODELIST``, ``SLURM_TASKS_PER_NODE`` and
  ``SLURM_DISTRIBUTION`` from a mapping (the command line passes ``os.environ``; no
  function here reads the environment itself) and places the tasks by Slurm's block,
  cyclic or plane distribution. Host lists are expanded by python-hostlist (the
  ``slurm`` extra: ``pip install 'proctopo[slurm]'``), imported only then.
- The arithmetic of those distributions, the node of every rank, is
  :mod:`proctopo.machine`'s (:func:`~proctopo.machine.place`,
  :meth:`Placement.from_counts <proctopo.machine.Placement.from_counts>`).

Nothing here imports torch.

>>> h = parse_hostfile("node1 slots=2  # the first\\nnode2 slots=2\\n")
>>> h
[('node1', 2), ('node2', 2)]
>>> hosts = Hosts.from_counts(h, source="hosts.txt")
>>> hosts.placement, hosts.host_of(3)
(BlockPlacement(world_size=4, ranks_per_node=2, nodes_per_domain=1), 'node2')
>>> place([2, 2, 1], "cyclic")  # Slurm's cyclic distribution over an uneven host
[0, 1, 2, 0, 1]
>>> Hosts.from_counts(h, source="slurm", distribution="cyclic").hosts_of([0, 1])
['node1', 'node2']
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, ProctopoError
from .machine import DISTRIBUTIONS, ENUMERATION_LIMIT, BlockPlacement, Placement, place

if TYPE_CHECKING:
    from .draw import Picture
    from .topology import AxesArg, ProcessTopology

__all__ = [
    "DISTRIBUTIONS",
    "PIP_SLURM",
    "SLURM_VARIABLES",
    "Hosts",
    "from_slurm",
    "parse_hostfile",
    "parse_slurm_distribution",
    "picture",
    "place",
    "read_hostfile",
]

#: The pip command that installs python-hostlist, which expands Slurm's host lists.
PIP_SLURM = "pip install 'proctopo[slurm]'"

#: The variables of Slurm's environment :func:`from_slurm` reads.
SLURM_VARIABLES = (
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_TASKS_PER_NODE",
    "SLURM_DISTRIBUTION",
    "SLURM_DIST_PLANESIZE",
)

_SLOTS = re.compile(r"(?:slots|max_slots|max-slots)=")


# --------------------------------------------------------------------------- hosts
@dataclass(frozen=True)
class Hosts:
    """The hosts of a job and where its ranks sit on them.

    Attributes:
        names: The host of each node of ``placement``, node 0 first.
        placement: The node of every rank (:mod:`proctopo.machine`).
        source: Where the hosts were read, in words (``"hostfile hosts.txt"``, ``"Slurm"``).
        distribution: How ranks went round the hosts: ``"block"``, ``"cyclic"`` or ``"plane=N"``.

    Raises:
        InvalidArgumentError: another number of names than the placement has nodes, or a
            name repeated.
    """

    names: tuple[str, ...]
    placement: Placement
    source: str
    distribution: str = "block"

    def __post_init__(self) -> None:
        if len(self.names) != self.placement.nodes:
            raise InvalidArgumentError(
                f"{len(self.names)} host names for a placement on {self.placement.nodes} nodes"
            )
        seen: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if name in seen:
                raise InvalidArgumentError(f"host {name!r} is named twice (nodes {seen[name]} and {i})")
            seen[name] = i

    @classmethod
    def from_counts(
        cls,
        entries: Sequence[tuple[str, int]],
        *,
        source: str,
        distribution: str = "block",
        plane: int | None = None,
        nodes_per_domain: int = 1,
    ) -> Hosts:
        """The hosts ``entries`` (``(name, ranks)`` pairs, in order), ranks placed by ``distribution``.

        The placement is :meth:`Placement.from_counts <proctopo.machine.Placement.from_counts>`'s:
        a :class:`~proctopo.machine.BlockPlacement` (closed form, any size) when the ranks fill
        the hosts in order, the same number on each but the last; else a
        :class:`~proctopo.machine.ListedPlacement`.

        Raises:
            InvalidArgumentError: see :func:`~proctopo.machine.place`; a host named twice.
        """
        names = tuple(name for name, _ in entries)
        placement = Placement.from_counts([n for _, n in entries], distribution, plane, nodes_per_domain)
        label = f"plane={plane}" if distribution == "plane" else distribution
        return cls(names, placement, source, label)

    # ------------------------------------------------------------------ questions
    def refuse_overrides(self, given: Mapping[str, object]) -> None:
        """Raise when a count the hosts already give (the world size, the ranks per node) was given too.

        ``given`` maps each such setting's name (as the caller knows it: ``world_size``,
        ``--ranks-per-node``) to its value, None when not given.

        Raises:
            InvalidArgumentError: naming the settings given.
        """
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise InvalidArgumentError(
                f"{self.source} gives the ranks and the host of each, so {' and '.join(named)} "
                f"cannot be given with it; leave {'them' if len(named) > 1 else 'it'} out"
            )

    @property
    def world_size(self) -> int:
        """Ranks in the job."""
        return self.placement.world_size

    def host_of(self, rank: int) -> str:
        """The host rank ``rank`` runs on.

        Raises:
            RankOutOfRangeError: a rank outside ``[0, world_size)``.
        """
        return self.names[self.placement.node_of(rank)]

    def hosts_of(self, ranks: Sequence[int]) -> list[str]:
        """The distinct hosts of ``ranks``, in the order their first rank appears."""
        return list(dict.fromkeys(self.host_of(r) for r in ranks))

    def in_domains(self, nodes_per_domain: int) -> Hosts:
        """The same hosts, every ``nodes_per_domain`` consecutive ones forming a domain."""
        return replace(self, placement=self.placement.in_domains(nodes_per_domain))

    def widest_group(self, topo: ProcessTopology, axes: AxesArg, level: str = "node") -> list[int] | None:
        """The first group of ``topo`` over ``axes`` that spans the most hosts (``level="node"``) or
        domains (``"domain"``), when some group spans more than one; else None.

        Found by listing the groups, so only up to :data:`~proctopo.machine.ENUMERATION_LIMIT`
        ranks (None past that: the span is still known, from :meth:`Placement.span_of`).

        Raises:
            GridSizeError: the topology has another number of ranks than the hosts.
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: a level other than ``"node"`` and ``"domain"``.
        """
        topo.check_world_size(self.world_size, f"the world size of {self.source}")
        topo.axis_indices(axes)
        if self.world_size > ENUMERATION_LIMIT:
            return None
        groups = topo.groups(axes)
        row = self.placement.widest(groups, level)
        return None if row is None else [int(r) for r in groups[row]]

    def short_node(self) -> str | None:
        """The last host holding the fewest ranks when that is fewer than a full host holds, else None."""
        node = self.placement.short_node()
        return None if node is None else self.names[node]

    def describe(self, limit: int = 8) -> str:
        """The hosts in one line: ``"2 hosts (hostfile h.txt, block): node1 [0, 1], node2 [2, 3]"``."""
        p = self.placement
        n = p.nodes
        shown = []
        for i in range(min(n, limit)):
            ranks = p.ranks_of_node(i)
            head = ", ".join(str(r) for r in ranks[:4])
            more = f", ... ({len(ranks)} ranks)" if len(ranks) > 4 else ""
            shown.append(f"{self.names[i]} [{head}{more}]")
        tail = f", ... ({n - limit} more hosts)" if n > limit else ""
        return f"{n} host{'s' * (n != 1)} ({self.source}, {self.distribution}): {', '.join(shown)}{tail}"

    def to_dict(self, limit: int = 4096) -> dict[str, Any]:
        """A JSON-ready dict: ``{"source", "distribution", "is_block", "names", "counts", "ranks"}``:
        in the order of ``names``, the number of ranks of each host and its first ``limit`` ranks
        (all of them up to that many), so the dict stays bounded whatever the slots."""
        p = self.placement
        members = [p.ranks_of_node(i) for i in range(p.nodes)]
        return {
            "source": self.source,
            "distribution": self.distribution,
            "is_block": p.is_block,
            "names": list(self.names),
            "counts": [len(m) for m in members],
            "ranks": [list(m[:limit]) for m in members],
        }


# --------------------------------------------------------------------------- hostfiles
def parse_hostfile(text: str, source: str = "hostfile") -> list[tuple[str, int]]:
    """The ``(host, slots)`` entries of a DeepSpeed/MPI hostfile, in file order.

    One host a line, ``host slots=N``; ``#`` starts a comment (a whole line or the end
    of one); blank lines are skipped. Open MPI's ``max_slots=M`` (or ``max-slots=M``)
    may follow and is ignored: a launcher starts one rank per slot.

    Raises:
        InvalidArgumentError: naming ``source``, the line and the rule: a line without
            ``slots=N``, slots not a whole number or below 1, a field that is not known,
            a host listed twice, or no host at all.

    >>> parse_hostfile("# two hosts\\nworker-0 slots=8\\n\\nworker-1 slots=8 max_slots=8\\n")
    [('worker-0', 8), ('worker-1', 8)]
    >>> parse_hostfile("a slots=2\\na slots=2", "h.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: h.txt line 2: host 'a' is listed again (first on line 1); ...
    """
    entries: list[tuple[str, int]] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{source} line {number}"
        host, fields = words[0], words[1:]
        if "=" in host:
            raise InvalidArgumentError(
                f"{where}: {raw.strip()!r} does not start with a host name; each line is 'host slots=N'"
            )
        slots = None
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep or not _SLOTS.fullmatch(key + sep):
                raise InvalidArgumentError(
                    f"{where}: {field!r} is not a field of a hostfile line; each line is 'host slots=N' "
                    "(max_slots=M may follow)"
                )
            if not (value.isascii() and value.isdigit()):
                raise InvalidArgumentError(f"{where}: {field!r}: {key} must be a whole number, e.g. {key}=8")
            if key == "slots":
                if slots is not None:
                    raise InvalidArgumentError(f"{where}: host {host!r} is given slots twice")
                slots = int(value)
        if slots is None:
            raise InvalidArgumentError(f"{where}: host {host!r} has no slots=N; each line is 'host slots=N'")
        if slots < 1:
            raise InvalidArgumentError(
                f"{where}: host {host!r} has slots={slots}; every host needs at least 1 slot"
            )
        if host in first_line:
            raise InvalidArgumentError(
                f"{where}: host {host!r} is listed again (first on line {first_line[host]}); each host "
                "takes one line"
            )
        first_line[host] = number
        entries.append((host, slots))
    if not entries:
        raise InvalidArgumentError(f"{source} lists no host; each line is 'host slots=N'")
    return entries


def read_hostfile(path: str | os.PathLike[str], nodes_per_domain: int = 1) -> Hosts:
    """The hosts of a DeepSpeed/MPI hostfile (:func:`parse_hostfile`), ranks placed host by host.

    Raises:
        InvalidArgumentError: the file cannot be read or is not UTF-8 text, or a line
            breaks a rule of :func:`parse_hostfile`.
    """
    name = os.fsdecode(path)
    source = f"hostfile {name}"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {source}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    return Hosts.from_counts(parse_hostfile(text, source), source=source, nodes_per_domain=nodes_per_domain)


# --------------------------------------------------------------------------- Slurm
def parse_slurm_distribution(text: str | None, plane_size: str | None = None) -> tuple[str, int | None]:
    """Slurm's ``SLURM_DISTRIBUTION`` (and ``SLURM_DIST_PLANESIZE``) as ``(distribution, plane)``.

    Only the node level counts (the part before ``:``; the socket and core levels say
    where a task sits inside its node), and ``,Pack`` or ``,NoPack`` is ignored. Unset,
    empty or ``*`` is Slurm's default, block. ``plane=N`` gives its size in the value,
    ``plane`` alone in ``plane_size``.

    Raises:
        InvalidArgumentError: a distribution other than block, cyclic and plane (``arbitrary``
            among them), or a plane without its size.

    >>> parse_slurm_distribution("cyclic:block"), parse_slurm_distribution("plane", "4")
    (('cyclic', None), ('plane', 4))
    >>> parse_slurm_distribution("arbitrary")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: SLURM_DISTRIBUTION 'arbitrary' is not one proctopo places: ...
    """
    node_level = (text or "").split(",", 1)[0].split(":", 1)[0].strip()
    if node_level in ("", "*", "block"):
        return "block", None
    if node_level == "cyclic":
        return "cyclic", None
    kind, sep, size = node_level.partition("=")
    if kind == "plane":
        value = size if sep else (plane_size or "")
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            shown = f"plane={size!r}" if sep else f"plane with SLURM_DIST_PLANESIZE {plane_size!r}"
            raise InvalidArgumentError(
                f"SLURM_DISTRIBUTION {text!r}: {shown} is not a plane size; it must be a whole number "
                "of at least 1"
            )
        return "plane", int(value)
    raise InvalidArgumentError(
        f"SLURM_DISTRIBUTION {text!r} is not one proctopo places: it reads block, cyclic and plane=N "
        "(arbitrary takes its hosts from SLURM_HOSTFILE, one line per task)"
    )


def from_slurm(environ: Mapping[str, str], nodes_per_domain: int = 1) -> Hosts:
    """The hosts of a Slurm job and its tasks' placement, from Slurm's variables in ``environ``.

    ``SLURM_JOB_NODELIST`` (or the older ``SLURM_NODELIST``) names the nodes, expanded by
    python-hostlist; ``SLURM_TASKS_PER_NODE`` (``2(x3),1``: three nodes of 2 tasks, then
    one of 1) gives each node's tasks in that order; ``SLURM_DISTRIBUTION`` how the task
    ranks go round them (:func:`parse_slurm_distribution`). The command line passes
    ``os.environ``.

    Raises:
        InvalidArgumentError: a variable missing or malformed, another number of nodes than
            of task counts, a node without tasks, or a distribution proctopo does not place.
        ProctopoError: python-hostlist is not installed (says how to install it).

    >>> env = {"SLURM_JOB_NODELIST": "gpu[01-02],cpu7", "SLURM_TASKS_PER_NODE": "2(x2),1",
    ...        "SLURM_DISTRIBUTION": "cyclic"}
    >>> h = from_slurm(env)  # doctest: +SKIP
    >>> [h.host_of(r) for r in range(5)]  # doctest: +SKIP
    ['gpu01', 'gpu02', 'cpu7', 'gpu01', 'gpu02']
    """
    names_var = "SLURM_JOB_NODELIST" if environ.get("SLURM_JOB_NODELIST") else "SLURM_NODELIST"
    nodelist = environ.get(names_var, "")
    tasks = environ.get("SLURM_TASKS_PER_NODE", "")
    missing = [
        v for v, value in (("SLURM_JOB_NODELIST", nodelist), ("SLURM_TASKS_PER_NODE", tasks)) if not value
    ]
    if missing:
        raise InvalidArgumentError(
            f"--slurm reads the job's placement from Slurm's environment, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: run it inside a Slurm allocation "
            "(salloc, sbatch or srun)"
        )
    distribution, plane = parse_slurm_distribution(
        environ.get("SLURM_DISTRIBUTION"), environ.get("SLURM_DIST_PLANESIZE")
    )
    hostlist = _hostlist()
    try:
        names = hostlist.expand_hostlist(nodelist)
    except hostlist.BadHostlist as exc:
        raise InvalidArgumentError(f"{names_var} {nodelist!r} is not a Slurm host list: {exc}") from None
    try:
        counts = hostlist.parse_slurm_tasks_per_node(tasks)
    except hostlist.BadHostlist as exc:
        raise InvalidArgumentError(
            f"SLURM_TASKS_PER_NODE {tasks!r} is not a list of task counts such as 2(x3),1: {exc}"
        ) from None
    if len(names) != len(counts):
        raise InvalidArgumentError(
            f"{names_var} {nodelist!r} names {len(names)} nodes, but SLURM_TASKS_PER_NODE {tasks!r} "
            f"gives task counts for {len(counts)}"
        )
    for name, count in zip(names, counts):
        if count < 1:
            raise InvalidArgumentError(
                f"SLURM_TASKS_PER_NODE {tasks!r} gives node {name!r} {count} tasks; every node of the "
                "job runs at least 1"
            )
    return Hosts.from_counts(
        list(zip(names, counts)),
        source="Slurm",
        distribution=distribution,
        plane=plane,
        nodes_per_domain=nodes_per_domain,
    )


def _hostlist() -> Any:
    """python-hostlist, imported on first use."""
    try:
        import hostlist  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ProctopoError(
            f"--slurm expands Slurm's host lists with python-hostlist, which is not installed: {PIP_SLURM}"
        ) from None
    return hostlist


# --------------------------------------------------------------------------- pictures
def picture(
    topo: ProcessTopology,
    hosts: Hosts,
    group: Sequence[str] = (),
    where: Sequence[tuple[str, int]] = (),
    node: int | None = None,
    *,
    limit: int = 256,
    columns: int = 32,
    legend_limit: int = 32,
) -> Picture:
    """A :class:`proctopo.draw.Picture` with one row per host, labelled by its name.

    The arguments are those of :func:`proctopo.draw.layout` and :func:`proctopo.draw.select`,
    with the hosts in place of the ranks per node (``node`` is a host's position, from 0).
    A cell's column is its rank's place among the ranks of its host (its ``LOCAL_RANK``);
    with domains, hosts are framed by domain.

    Raises:
        GridSizeError: the topology has another number of ranks than the hosts.
        UnknownAxisError, CoordinateOutOfRangeError, InvalidArgumentError: as
            :func:`proctopo.draw.layout` and :func:`proctopo.draw.select`; a host past the last.

    >>> from proctopo import ProcessTopology
    >>> h = Hosts.from_counts([("a", 2), ("b", 2)], source="test", distribution="cyclic")
    >>> pic = picture(ProcessTopology(["data", "model"], [2, 2]), h, ["model"])
    >>> [(row.label, [c.rank for c in row.cells]) for row in pic.rows]
    [('a', [0, 2]), ('b', [1, 3])]
    """
    from . import draw

    topo.check_world_size(hosts.world_size, f"the world size of {hosts.source}")
    p = hosts.placement
    npd = p.nodes_per_domain
    if node is not None:
        p._check_node(node)
    w = topo.world_size()
    if isinstance(p, BlockPlacement):
        chosen = draw.select(topo, where, node, p.ranks_per_node)
        pic = draw.layout(
            topo,
            group,
            p.ranks_per_node,
            npd if npd > 1 else None,
            chosen,
            limit=limit,
            columns=columns,
            legend_limit=legend_limit,
        )
        rows = tuple(replace(row, **_row_labels(hosts, row.cells[0].rank)) for row in pic.rows)
        return replace(pic, title=_title(topo, hosts, group), rows=rows)
    return _listed_picture(topo, hosts, list(group), where, node, limit, columns, legend_limit, w)


def _row_labels(hosts: Hosts, rank: int) -> dict[str, Any]:
    p = hosts.placement
    block = None
    if p.nodes_per_domain > 1:
        d = p.domain_of(rank)
        members = p.nodes_of_domain(d)
        first, last = hosts.names[members[0]], hosts.names[members[-1]]
        block = f"domain {d} (host {first})" if first == last else f"domain {d} (hosts {first}-{last})"
    return {"label": hosts.host_of(rank), "block": block}


def _title(topo: ProcessTopology, hosts: Hosts, group: Sequence[str]) -> str:
    p = hosts.placement
    n, d = p.nodes, p.domains
    title = f"{topo.shape_text()} ({topo.world_size()} ranks) on {n} host{'s' * (n != 1)}"
    title += f" ({hosts.source}, {hosts.distribution})"
    if p.nodes_per_domain > 1:
        title += f", {d} domain{'s' * (d != 1)} of {p.nodes_per_domain} hosts"
    if group:
        title += f"; coloured by {'+'.join(group)} group"
    return title


def _listed_picture(
    topo: ProcessTopology,
    hosts: Hosts,
    group: list[str],
    where: Sequence[tuple[str, int]],
    node: int | None,
    limit: int,
    columns: int,
    legend_limit: int,
    w: int,
) -> Picture:
    """The picture of hosts whose ranks are listed (any pattern); O(world) like the placement."""
    import numpy as np

    from . import draw

    draw.check_layout(topo, group, limit=limit, columns=columns, legend_limit=legend_limit)
    p = hosts.placement
    columns = min(columns, limit)
    wanted = np.ones(w, dtype=bool)
    if where:  # the chosen ranks: the first of them (the slice's rules checked) and its group over the rest
        free = [a for a in topo.axes if a not in dict(where)]
        wanted[:] = False
        wanted[topo.group_of(draw.select(topo, where)[0], free)] = True
    host_rows: list[tuple[int, list[int]]] = []  # (host, chosen ranks on it)
    for i in range(p.nodes) if node is None else [node]:
        on = [r for r in p.ranks_of_node(i) if wanted[r]]
        if on:
            host_rows.append((i, on))
    chosen = sum(len(on) for _, on in host_rows)

    def row(i: int, on: list[int], skipped: int = 0) -> draw.Row:
        local = {r: j for j, r in enumerate(p.ranks_of_node(i))}
        cells = tuple(
            draw.Cell(r, local[r], topo.group_index(r, group)[0] if group else None) for r in on[:columns]
        )
        return draw.Row(**_row_labels(hosts, on[0]), cells=cells, more=len(on) - len(cells), skipped=skipped)

    kept: list[tuple[int, list[int]]] = []
    drawn = 0
    for i, on in host_rows:
        n = min(len(on), columns)
        if kept and drawn + n > limit:
            break
        kept.append((i, on))
        drawn += n
    skipped = 0
    if len(kept) < len(host_rows):  # a summary: the first hosts that fit with the last, then the last
        last = host_rows[-1]
        n_last = min(len(last[1]), columns)
        while len(kept) > 1 and drawn + n_last > limit:
            drawn -= min(len(kept.pop()[1]), columns)
        skipped = len(host_rows) - len(kept) - 1
        kept.append(last)
        drawn += n_last
    rows = [row(i, on, skipped if k == len(kept) - 1 else 0) for k, (i, on) in enumerate(kept)]
    used = sorted({c.column for r in rows for c in r.cells})
    places: tuple[int, ...] = ()
    headings: tuple[str, ...] = ()
    if used and used[-1] >= columns:
        places = tuple(used)
        headings = tuple(f"local {j}" for j in used)

    legend, groups = draw.legend_of(topo, rows, group, legend_limit)
    notes: list[str] = []
    if drawn < chosen:
        more = sum(r_.more for r_ in rows)
        notes.append(
            f"showing {drawn} of {chosen} {'chosen ' if where or node is not None else ''}ranks: left out "
            f"{skipped} host{'s' * (skipped != 1)}"
            + (f" and {more} ranks past column {columns}" if more else "")
            + "; draw one host or one slice to see the rest"
        )
    if groups > legend_limit:
        notes.append(f"the legend lists the first {legend_limit} of {groups} groups")
    return draw.Picture(
        title=_title(topo, hosts, group),
        notes=tuple(notes),
        topo=topo,
        group_axes=tuple(group),
        ranks_per_node=None,
        nodes_per_domain=p.nodes_per_domain if p.nodes_per_domain > 1 else None,
        columns=headings,
        rows=tuple(rows),
        legend=legend,
        legend_more=max(0, groups - legend_limit),
        ranks_selected=chosen,
        ranks_drawn=drawn,
        places=places,
    )
