"""The ``proctopo`` command: look at a layout before a job runs, check it, draw it, or run it.

    proctopo show pipe=2 data=2 model=2          rank -> coordinates -> groups
    proctopo show --rank 5 pipe=2 data=2 model=2 one rank: its groups and pipeline neighbours
    proctopo check pipe=8 data=128 model=8 --world-size 8192 --ranks-per-node 8 --intra-node model
    proctopo draw pipe=2 data=4 model=2 --group data --ranks-per-node 4 -o layout.svg
    proctopo plan pipe=4 data=0 model=8 --world-size 512 --ranks-per-node 8   orders ranked by cost
    proctopo run --nproc 8 pipe=2 data=2 model=2 a real gloo job on this machine

Every subcommand takes its axes the same way: ``name=size`` words, slowest axis first,
``pipe=2 data=2 model=2`` when none are given, or ``--order tp-cp-dp-pp`` (a Megatron
order string, fastest axis first) with the sizes as words. Any axis names go:
DeepSpeed's, Megatron's and torchtitan's alike; words that look written innermost
first (a tensor axis outermost; a context, data, FSDP or pipeline axis innermost) get
a one-line warning. ``show``, ``check``, ``draw`` and ``plan`` print JSON with
``--json`` (the schemas are in docs/cli.md and docs/plan.md).
Under a launcher, ``RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE`` stand in for
``--rank``, ``--world-size`` and ``--ranks-per-node`` (the options win). This module
never imports torch (``run`` loads it in the processes it starts).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO, cast

from . import __version__, demo, planner
from . import draw as drawing
from . import hosts as hosting
from .comm import check_timeout
from .errors import GridSizeError, InvalidArgumentError, ProctopoError, UnknownAxisError
from .groups import CPU_STRATEGIES
from .hosts import Hosts, from_slurm, read_hostfile
from .machine import BlockPlacement, Placement
from .planner.inputs import check_listed, innermost_first
from .planner.search import DEFAULT_TOP
from .topology import ProcessTopology, check_axis_names, parse_order

#: The axes of every subcommand when none are given.
DEFAULT_AXES: tuple[str, ...] = ("pipe=2", "data=2", "model=2")


def _split_word(
    spec: str, what: str = "axis", value: str = "size", example: str = "data=4"
) -> tuple[str, int]:
    """``name=value`` with the value in plain decimal digits (``0``-``9``), as ``(name, value)``."""
    name, sep, digits = spec.partition("=")
    if not sep or not (digits.isascii() and digits.isdigit()):
        raise InvalidArgumentError(
            f"{what} {spec!r} must be written name={value}, the {value} in decimal digits (e.g. {example})"
        )
    return name, int(digits)


def parse_axes(specs: Sequence[str], order: str | None = None) -> ProcessTopology:
    """Build a topology from ``name=size`` words, slowest axis first, or laid out by ``order``.

    A word is a name, ``=`` and a size in plain decimal digits (``0``-``9``). The
    topology's own rules (names, sizes of at least 1, the world size fitting in 64
    bits) are checked by :class:`ProcessTopology` itself. With ``order``, a Megatron
    order string (fastest axis first), the axes are the order's and the words give
    their sizes (1 for an axis without a word).

    >>> parse_axes(["pipe=2", "data=4"])
    ProcessTopology(axes=['pipe', 'data'], dims=[2, 4])
    >>> parse_axes(["tp=2", "cp=2", "pp=4"], order="tp-cp-dp-pp")
    ProcessTopology(axes=['pp', 'dp', 'cp', 'tp'], dims=[4, 1, 2, 2])
    >>> parse_axes(["pipe=1_6"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidArgumentError: axis 'pipe=1_6' must be written name=size, the size in decimal...
    >>> parse_axes(["pipe=0"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidTopologyError: axis 'pipe' has size 0...
    """
    pairs = [_split_word(spec) for spec in specs]
    if order is None:
        return ProcessTopology([n for n, _ in pairs], [d for _, d in pairs])
    sizes: dict[str, int] = {}
    for name, size in pairs:
        if name in sizes:
            raise InvalidArgumentError(f"axis {name!r} has two sizes; with --order each axis takes one word")
        sizes[name] = size
    names = parse_order(order)[::-1]  # slowest first, as the axes of a topology
    topo = ProcessTopology(names, [sizes.get(n, 1) for n in names])
    with suggest_axes(sizes, names):
        topo.axis_indices(list(sizes))  # a word for an axis the order does not name
    return topo


def parse_coords(specs: Iterable[str]) -> list[tuple[str, int]]:
    """``name=index`` words (each may hold several, joined by ``,``) as ``(name, index)`` pairs.

    >>> parse_coords(["pipe=0,data=1", "model=3"])
    [('pipe', 0), ('data', 1), ('model', 3)]
    """
    return [
        _split_word(word, "slice", "index", "pipe=0") for spec in specs for word in spec.split(",") if word
    ]


def _axis_list(text: str) -> list[str]:
    """``model,expert`` as ``['model', 'expert']``."""
    return [a for a in text.split(",") if a]


@contextmanager
def suggest_axes(words: Iterable[str], names: Iterable[str]) -> Iterator[None]:
    """Add "did you mean" to an :class:`UnknownAxisError` raised inside: the closest of ``names``
    for each of ``words`` that is not one of them.

    >>> topo = parse_axes(["pipe=2", "model=2"])
    >>> with suggest_axes(["modle"], topo.axes):
    ...     topo.axis_indices(["modle"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.UnknownAxisError: unknown axis 'modle'; the axes are [...] (did you mean 'model'?)
    """
    try:
        yield
    except UnknownAxisError as exc:
        names = list(names)
        unknown = [w for w in dict.fromkeys(words) if w not in names]
        close = {w: difflib.get_close_matches(w, names, n=1) for w in unknown}
        hints = [f"{m[0]!r}" if len(unknown) == 1 else f"{m[0]!r} for {w!r}" for w, m in close.items() if m]
        if not hints:
            raise
        raise UnknownAxisError(f"{exc} (did you mean {', '.join(hints)}?)") from None


def convention_warning(
    words: Sequence[str], world_size: int | None = None, ranks_per_node: int | None = None
) -> str | None:
    """A one-line warning when ``name=size`` words look written innermost first, else None.

    The words list the slowest axis first. Megatron order strings list the fastest
    first, and a user used to them may type ``tp=8 dp=16`` meaning tensor parallelism
    innermost. Words whose first and last axes of size other than 1 read so in the
    planner's vocabulary (:func:`proctopo.planner.inputs.innermost_first`: a tensor
    axis first and a context, data, FSDP or pipeline axis last) look like that, unless
    the tensor axis's groups are known to stay on one node (an outermost axis's groups
    span nodes exactly when the job does; then the order costs nothing). The warning
    says which convention was used and how to write the other one.

    >>> print(convention_warning(["tp=2", "cp=2", "pp=2"]))  # doctest: +NORMALIZE_WHITESPACE
    tp=2 cp=2 pp=2 puts tp outermost and pp innermost (name=size words are slowest first); for tp
    innermost, as the Megatron order tp-cp-pp means, add --order tp-cp-pp or write pp=2 cp=2 tp=2
    >>> convention_warning(["pp=2", "cp=2", "tp=2"]) is None
    True
    >>> convention_warning(["tp=8", "dp=2"], world_size=16, ranks_per_node=16) is None  # one node
    True
    """
    pairs = [_split_word(w) for w in words]
    sized = [name for name, size in pairs if size != 1]
    if len(sized) < 2:
        return None
    first, last = sized[0], sized[-1]
    if not innermost_first(first, last):
        return None
    if world_size is not None and ranks_per_node is not None:
        if BlockPlacement(world_size, ranks_per_node).nodes == 1:
            return None
    order = "-".join(name for name, _ in pairs)
    return (
        f"{' '.join(words)} puts {first} outermost and {last} innermost (name=size words are slowest "
        f"first); for {first} innermost, as the Megatron order {order} means, add --order {order} "
        f"or write {' '.join(reversed(words))}"
    )


def topology_json(topo: ProcessTopology) -> dict[str, Any]:
    """The ``topology`` object of every JSON document: axes, dims, strides, world size and shape text.

    >>> topology_json(ProcessTopology(['pipe', 'data'], [2, 3]))
    {'axes': ['pipe', 'data'], 'dims': [2, 3], 'strides': [3, 1], 'world_size': 6, 'shape': 'pipe=2 x data=3'}
    """
    return {
        "axes": topo.get_axis_names(),
        "dims": topo.dims,
        "strides": list(topo.strides),
        "world_size": topo.world_size(),
        "shape": topo.shape_text(),
    }


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first number in ``value`` that JSON cannot hold (inf, -inf, nan), with its path."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, v in items:
        found = _non_finite(v, where)
        if found is not None:
            return found
    return None


def json_text(doc: dict[str, Any]) -> str:
    """``doc`` as the JSON every command prints: indented, and strict (no ``Infinity`` or ``NaN``).

    Raises:
        InvalidArgumentError: a number in ``doc`` is not finite (its field is named); the
            inputs were too large or too small for the arithmetic.

    >>> print(json_text({"a": [1, 2.5]}))
    {
      "a": [
        1,
        2.5
      ]
    }
    >>> json_text({"layouts": [{"cost": float("inf")}]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proctopo.errors.InvalidArgumentError: the result's layouts[0].cost is inf, which JSON cannot hold: ...
    """
    try:
        return json.dumps(doc, indent=2, allow_nan=False)
    except ValueError:
        found = _non_finite(doc)
        if found is None:
            raise
        raise InvalidArgumentError(
            f"the result's {found[0]} is {found[1]}, which JSON cannot hold: an input is too large or "
            "too small for the arithmetic (each must keep every result finite)"
        ) from None


def _dump(doc: dict[str, Any], out: TextIO) -> None:
    print(json_text(doc), file=out)


# ---------------------------------------------------------------------------- show


#: Groups larger than this are listed by their first ranks only (JSON: "ranks" holds the
#: first GROUP_LIST_LIMIT and "size" the whole), so any world is shown in bounded memory.
GROUP_LIST_LIMIT = 4096


def _ranks_text(ranks: Sequence[int], limit: int = 8, size: int | None = None) -> str:
    size = len(ranks) if size is None else size
    shown = ", ".join(str(r) for r in ranks[:limit])
    more = f", ... ({size} ranks)" if size > limit else ""
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
    print(f"topology   {topo.shape_text()} ({topo.world_size()} ranks)", file=out)
    print("strides    " + "  ".join(f"{a}={s}" for a, s in zip(axes, topo.strides)), file=out)
    print(file=out)
    width = max([4, *(len(a) for a in axes)])
    w = topo.world_size()
    shown = list(range(min(w, limit))) + ([w - 1] if w > limit else [])
    cells = [[_ranks_text(topo.group_head(r, a, 4), 4, topo.get_dim(a)) for a in axes] for r in shown]
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
        size = topo.get_dim(a)
        count = w // size
        others = [b for b in axes if b != a]
        firsts = topo.group_head(0, others, 3)  # the first rank of each of the first 3 groups
        rows = [_ranks_text(topo.group_head(f, a, 4), 4, size) for f in firsts]
        more = f" ... ({count} groups)" if count > 3 else ""
        print(f"{a:>{width}} groups: {count} x {size} ranks: {' '.join(rows)}{more}", file=out)


def show_json(topo: ProcessTopology, limit: int = 16) -> dict[str, Any]:
    """``proctopo show --json``: the first ``limit`` ranks with their coordinates and groups.

    >>> doc = show_json(ProcessTopology(['pipe', 'data'], [2, 2]), limit=1)
    >>> doc['ranks']
    [{'rank': 0, 'coord': {'pipe': 0, 'data': 0}, 'groups': {'pipe': [0, 2], 'data': [0, 1]}}]
    >>> doc['ranks_left_out'], doc['groups']['data']
    (3, {'count': 2, 'size': 2})
    """
    axes, dims = topo.get_axis_names(), topo.dims
    w = topo.world_size()
    ranks = [
        {
            "rank": r,
            "coord": dict(zip(axes, topo.get_coord(r))),
            "groups": {a: topo.group_head(r, a, GROUP_LIST_LIMIT) for a in axes},
        }
        for r in range(min(w, limit))
    ]
    return {
        "schema": "proctopo.show/1",
        "topology": topology_json(topo),
        "ranks": ranks,
        "ranks_left_out": w - len(ranks),
        "groups": {a: {"count": w // d, "size": d} for a, d in zip(axes, dims)},
    }


def rank_json(topo: ProcessTopology, rank: int, ranks_per_node: int | None = None) -> dict[str, Any]:
    """``proctopo show --rank R --json``: one rank's coordinates, groups and pipeline neighbours.

    Its group along each axis, DeepSpeed's model-parallel group (every axis but
    ``data``), its previous and next pipeline stage (null at either end, and no
    ``pipeline`` without a ``pipe`` axis) and, given the ranks per node, its node.

    Raises:
        RankOutOfRangeError: the rank is not in the topology.

    >>> doc = rank_json(ProcessTopology(['pipe', 'data', 'model'], [2, 2, 2]), 5, ranks_per_node=2)
    >>> doc['coord'], doc['groups']['data']['ranks'], doc['model_parallel_group']['ranks']
    ({'pipe': 1, 'data': 0, 'model': 1}, [5, 7], [0, 1, 4, 5])
    >>> doc['pipeline']
    {'stage': 1, 'stages': 2, 'prev': 1, 'next': None}
    >>> doc['node']
    {'index': 2, 'local_rank': 1, 'ranks_per_node': 2, 'count': 4}
    """
    axes = topo.get_axis_names()
    coord = topo.get_coord(rank)
    w = topo.world_size()

    def group(names: Sequence[str]) -> dict[str, Any]:
        index, position = topo.group_index(rank, names)
        size = topo.group_size(names)
        return {
            "ranks": topo.group_head(rank, names, GROUP_LIST_LIMIT),
            "size": size,
            "index": index,
            "count": w // size,
            "position": position,
        }

    ds_axes = [a for a in axes if a != "data"]
    pipeline = None
    if "pipe" in axes:
        prev, nxt = (topo.shift(rank, "pipe", d, periodic=False) for d in (-1, 1))
        pipeline = {
            "stage": coord.pipe,
            "stages": topo.get_dim("pipe"),
            "prev": None if prev < 0 else prev,
            "next": None if nxt < 0 else nxt,
        }
    node = None
    if ranks_per_node:
        machine = BlockPlacement(w, ranks_per_node)
        node = {
            "index": machine.node_of(rank),
            "local_rank": machine.local_rank(rank),
            "ranks_per_node": ranks_per_node,
            "count": machine.nodes,
        }
    return {
        "schema": "proctopo.show/1",
        "topology": topology_json(topo),
        "rank": rank,
        "coord": dict(zip(axes, coord)),
        "groups": {a: group([a]) for a in axes},
        "model_parallel_group": {"axes": ds_axes, **group(ds_axes)},
        "pipeline": pipeline,
        "node": node,
    }


def _print_rank(doc: dict[str, Any], out: TextIO) -> None:
    topo = doc["topology"]
    shape = topo["shape"]
    print(f"rank {doc['rank']} of {shape} ({topo['world_size']} ranks)", file=out)
    rows = [("coordinates", " ".join(f"{a}={c}" for a, c in doc["coord"].items()))]
    entries = [(f"{a} group", g) for a, g in doc["groups"].items()]
    mp = doc["model_parallel_group"]
    entries.append(
        ("model-parallel", {**mp, "note": f"every axis but data: {'+'.join(mp['axes']) or 'none'}"})
    )
    for name, g in entries:
        where = f"group {g['index']} of {g['count']}, member {g['position']}"
        note = f"; {g['note']}" if "note" in g else ""
        rows.append((name, f"{_ranks_text(g['ranks'], 16, g['size'])}  ({where}{note})"))
    p = doc["pipeline"]
    if p is not None:
        prev = "none" if p["prev"] is None else f"rank {p['prev']}"
        nxt = "none" if p["next"] is None else f"rank {p['next']}"
        rows.append(
            ("pipeline", f"stage {p['stage']} of {p['stages']}: previous stage {prev}, next stage {nxt}")
        )
    n = doc["node"]
    if n is not None:
        rows.append(
            ("node", f"{n['index']} of {n['count']}, local rank {n['local_rank']} of {n['ranks_per_node']}")
        )
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}", file=out)


# ---------------------------------------------------------------------------- check


def check(
    topo: ProcessTopology,
    world_size: int | None = None,
    ranks_per_node: int | None = None,
    *,
    nodes_per_domain: int | None = None,
    intra_node: Sequence[str] = (),
    intra_domain: Sequence[str] = (),
    allow_partial_node: bool = False,
    hosts: Hosts | None = None,
) -> dict[str, Any]:
    """Check a layout against a world size and locality rules; the report (``proctopo.check/1``).

    ``report["ok"]`` is False when a rule is broken; ``report["violations"]`` says which
    and why. For each axis the report gives the most nodes (and domains) one of its
    groups spans. Nodes are ``ranks_per_node`` consecutive ranks (the block model), or,
    with ``hosts`` (a hostfile, Slurm's environment: :mod:`proctopo.hosts`), the hosts
    the launch puts the ranks on; their names are in the report and its messages, and
    the hosts' ranks are the world size checked.

    Raises:
        UnknownAxisError: ``intra_node`` or ``intra_domain`` names an axis the topology lacks.
        InvalidArgumentError: ``intra_node`` without ``ranks_per_node`` or ``hosts``,
            ``intra_domain`` or ``nodes_per_domain`` without both; ``world_size`` or
            ``ranks_per_node`` with ``hosts``.

    >>> r = check(parse_axes(["pipe=2", "data=4", "model=16"]), 128, 8, intra_node=["model"])
    >>> r["ok"], [v["message"] for v in r["violations"]]  # doctest: +NORMALIZE_WHITESPACE
    (False, ['model groups of 16 ranks (stride 1) span up to 2 nodes of 8 ranks; --intra-node model
    needs each inside one node'])
    >>> from proctopo.hosts import Hosts
    >>> cyclic = Hosts.from_counts([("n1", 2), ("n2", 2)], source="Slurm", distribution="cyclic")
    >>> r = check(parse_axes(["data=2", "model=2"]), intra_node=["model"], hosts=cyclic)
    >>> [v["message"] for v in r["violations"]]  # doctest: +NORMALIZE_WHITESPACE
    ['model groups of 2 ranks (stride 1) span up to 2 hosts: model group [0, 1] spans hosts n1, n2;
    --intra-node model needs each inside one host']
    """
    w = topo.world_size()
    if hosts is not None:
        hosts.refuse_overrides({"world_size": world_size, "ranks_per_node": ranks_per_node})
        if nodes_per_domain:
            hosts = hosts.in_domains(nodes_per_domain)
    elif (intra_node or intra_domain or nodes_per_domain) and not ranks_per_node:
        raise InvalidArgumentError(
            "locality rules need the ranks per node (--ranks-per-node or LOCAL_WORLD_SIZE)"
        )
    if intra_domain and not nodes_per_domain:
        raise InvalidArgumentError("--intra-domain needs the nodes per domain (--nodes-per-domain)")
    with suggest_axes([*intra_node, *intra_domain], topo.get_axis_names()):
        topo.axis_indices(list(intra_node))
        topo.axis_indices(list(intra_domain))
    violations: list[dict[str, Any]] = []
    checked = world_size if hosts is None else hosts.world_size
    try:
        if checked is not None:
            topo.check_world_size(
                checked, "the world size" if hosts is None else f"the world size of {hosts.source}"
            )
    except GridSizeError as exc:
        violations.append({"rule": "world_size", "axis": None, "message": str(exc)})
    nodes = domains = last = None
    machine: Placement | None = None
    if hosts is not None:
        machine = hosts.placement
    elif ranks_per_node:
        machine = BlockPlacement(w, ranks_per_node, nodes_per_domain or 1)
    # The hosts place their own ranks: when those are not the topology's, no group has a place.
    spans = machine is not None and machine.world_size == w
    unit = "host" if hosts is not None else "node"
    if machine is not None:
        nodes = machine.nodes
        last = len(machine.ranks_of_node(nodes - 1))
        partial = machine.partial_node()
        if partial is not None and not allow_partial_node:
            accepts = "a partial last node"
            if hosts is not None:
                partial += f", host {hosts.short_node()}"
                accepts = "hosts of fewer ranks"
            violations.append(
                {
                    "rule": "partial_node",
                    "axis": None,
                    "message": f"{partial} (--allow-partial-node accepts {accepts})",
                }
            )
        if nodes_per_domain:
            domains = machine.domains
    axes_report = []
    for a, d, stride in zip(topo.get_axis_names(), topo.dims, topo.strides):
        entry: dict[str, Any] = {"name": a, "size": d, "stride": stride, "groups": w // d}
        # The most nodes (domains) one group spans: the block model's closed form, O(log) per
        # axis, or the hosts' listed placement.
        span = machine.span(stride, d) if machine is not None and spans else None
        entry["nodes"] = None if span is None else span.nodes
        entry["domains"] = span.domains if span is not None and nodes_per_domain else None
        if hosts is not None:  # the first group spanning the most hosts, and its hosts
            entry["widest_group"] = None
            if span is not None and span.nodes > 1:
                entry["widest_group"] = _widest(hosts, topo, a, "node")
        axes_report.append(entry)
        if a in intra_node and entry["nodes"] is not None and entry["nodes"] > 1:
            size = f"nodes of {ranks_per_node} ranks" if hosts is None else "hosts"
            violations.append(
                {
                    "rule": "intra_node",
                    "axis": a,
                    "message": f"{a} groups of {d} ranks (stride {stride}) span up to {entry['nodes']} "
                    f"{size}{_example(a, entry.get('widest_group'))}; --intra-node {a} needs each inside "
                    f"one {unit}",
                }
            )
        if a in intra_domain and entry["domains"] is not None and entry["domains"] > 1:
            example = None if hosts is None else _widest(hosts, topo, a, "domain")
            violations.append(
                {
                    "rule": "intra_domain",
                    "axis": a,
                    "message": f"{a} groups of {d} ranks (stride {stride}) span up to {entry['domains']} "
                    f"domains of {nodes_per_domain} {unit}s{_example(a, example)}; --intra-domain {a} "
                    "needs each inside one domain",
                }
            )
    if hosts is not None:  # the size of a full host, when the hosts are the block placement
        ranks_per_node = machine.ranks_per_node if isinstance(machine, BlockPlacement) else None
    return {
        "schema": "proctopo.check/1",
        "ok": not violations,
        "topology": topology_json(topo),
        "world_size": checked,
        "ranks_per_node": ranks_per_node,
        "nodes": nodes,
        "last_node_ranks": last,
        "nodes_per_domain": nodes_per_domain,
        "domains": domains,
        "hosts": None if hosts is None else hosts.to_dict(),
        "rules": {
            "intra_node": list(intra_node),
            "intra_domain": list(intra_domain),
            "allow_partial_node": allow_partial_node,
        },
        "axes": axes_report,
        "violations": violations,
    }


def _widest(hosts: Hosts, topo: ProcessTopology, axis: str, level: str) -> dict[str, Any] | None:
    """``{"ranks", "hosts"}`` of the first group along ``axis`` spanning the most hosts (or domains)."""
    ranks = hosts.widest_group(topo, axis, level)
    return None if ranks is None else {"ranks": ranks, "hosts": hosts.hosts_of(ranks)}


def _example(axis: str, widest: dict[str, Any] | None) -> str:
    """``: model group [0, 1] spans hosts n1, n2`` for a group and its hosts, else ``""``."""
    if widest is None:
        return ""
    return f": {axis} group {_ranks_text(widest['ranks'])} spans hosts {', '.join(widest['hosts'])}"


_RULE_TAG = {
    "world_size": "MISMATCH",
    "partial_node": "PARTIAL NODE",
    "intra_node": "SPANS NODES",
    "intra_domain": "SPANS DOMAINS",
}


def _print_check(report: dict[str, Any], out: TextIO) -> None:
    topo = report["topology"]
    shape = topo["shape"]
    describe = f"{shape} ({topo['world_size']} ranks)"
    n = len(report["violations"])
    print(f"ok: {describe}" if report["ok"] else f"FAILED: {describe}: {n} rule(s) broken", file=out)
    rpn = report["ranks_per_node"]
    hosts = report["hosts"]
    if hosts is not None:
        names = hosts["names"]
        shown = ", ".join(f"{n} {_ranks_text(r, 4)}" for n, r in zip(names[:8], hosts["ranks"]))
        more = f", ... ({len(names) - 8} more)" if len(names) > 8 else ""
        domains = (
            f", {report['domains']} domain(s) of {report['nodes_per_domain']} hosts"
            if report["domains"]
            else ""
        )
        layout = hosts["distribution"] + ("" if hosts["is_block"] else ", not the block placement")
        print(f"{len(names)} host(s) ({hosts['source']}, {layout}){domains}: {shown}{more}", file=out)
        for a in report["axes"]:
            if a["nodes"] is None:
                continue  # the hosts hold another number of ranks (a broken rule, said below)
            where = "inside one host" if a["nodes"] == 1 else f"across up to {a['nodes']} hosts"
            if a["widest_group"] is not None:
                g = a["widest_group"]
                where += f", e.g. {_ranks_text(g['ranks'])} on {', '.join(g['hosts'])}"
            if a["domains"] is not None:
                where += ", inside one domain" if a["domains"] == 1 else f", up to {a['domains']} domains"
            print(f"  {a['name']}: groups of {a['size']}, stride {a['stride']}: {where}", file=out)
    elif rpn:
        domains = (
            f", {report['domains']} domain(s) of {report['nodes_per_domain']} nodes"
            if report["domains"]
            else ""
        )
        print(f"{report['nodes']} node(s) of {rpn} ranks{domains}", file=out)
        for a in report["axes"]:
            where = "inside one node" if a["nodes"] == 1 else f"across up to {a['nodes']} nodes"
            if a["domains"] is not None:
                where += ", inside one domain" if a["domains"] == 1 else f", up to {a['domains']} domains"
            print(f"  {a['name']}: groups of {a['size']}, stride {a['stride']}: {where}", file=out)


# ---------------------------------------------------------------------------- arguments


def _at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer of at least ``low``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return convert


_positive = _at_least(1)
_index = _at_least(0)


def _seconds(text: str) -> float:
    """argparse type: a timeout in seconds, by the one rule for timeouts (``comm.check_timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    try:
        check_timeout(value, "the timeout")
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _strategy(text: str) -> str:
    """argparse type: a group_creation strategy the job's processes (gloo on CPU) can use."""
    if text in CPU_STRATEGIES:
        return text
    if text == "split":
        raise argparse.ArgumentTypeError(
            "'split' needs a backend that splits communicators (NCCL on GPUs); proctopo run uses gloo on "
            f"CPU: choose {', '.join(CPU_STRATEGIES)}"
        )
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(CPU_STRATEGIES)})")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number") from None
    return value


def _weight(text: str) -> tuple[str, float]:
    """argparse type: ``AXIS=GB``, gigabytes each rank all-reduces with its group per step."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} must be written AXIS=GB, e.g. data=2.5")
    return name, _number(value, text)


def _tier(text: str) -> tuple[str, dict[str, float]]:
    """argparse type: ``LEVEL=BANDWIDTH[,LATENCY[,OVERSUBSCRIPTION]]``: bytes/s, s per message, a ratio."""
    name, sep, value = text.partition("=")
    parts = value.split(",")
    if not sep or not name or not 1 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be written LEVEL=BANDWIDTH[,LATENCY[,OVERSUBSCRIPTION]], e.g. network=50e9"
        )
    fields = dict(zip(("bandwidth", "latency", "oversubscription"), (_number(v, text) for v in parts)))
    return name, fields


def _exposed(text: str) -> tuple[str, float]:
    """argparse type: ``KIND=FRACTION``, the part of a kind's (or axis's) communication a step waits for."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} must be written KIND=FRACTION, e.g. data=0.1")
    return name, _number(value, text)


def _model(text: str) -> dict[str, Any]:
    """argparse type: a model description: ``params=7e9,hidden=4096,...``, a JSON object, or a JSON file."""
    if text.lstrip().startswith("{"):
        source = text
    elif "=" in text:
        fields: dict[str, Any] = {}
        for word in text.split(","):
            key, sep, value = word.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"{word!r} must be written FIELD=VALUE, e.g. hidden=4096")
            fields[key.strip()] = value.strip()  # the planner reads the number (70B, 8Ki, 4096, ...)
        return fields
    else:
        try:
            with open(text, encoding="utf-8") as f:
                source = f.read()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}: {exc.strerror}") from None
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a model description is a JSON object")
    return value


def _environ(value: Any, name: str, kind: Callable[[str], int]) -> Any:
    """``value`` if an option gave it, else the launcher's environment variable ``name`` (if set)."""
    if value is not None:
        return value
    text = os.environ.get(name, "")
    if not text:
        return None
    try:
        return kind(text)
    except argparse.ArgumentTypeError as exc:
        raise InvalidArgumentError(f"environment variable {name}: {exc}") from None


_EXAMPLES = {
    "show": """examples:
  proctopo show pipe=2 data=2 model=2
  proctopo show pipe=8 data=128 model=8 --limit 4
  proctopo show --rank 5 pipe=2 data=2 model=2 --ranks-per-node 4
  proctopo show --rank $RANK --json pipe=2 data=4     (in a torchrun job script)""",
    "check": """exit status: 0 when every rule holds, 1 when one is broken (each reason on stderr),
2 for bad arguments.

examples:
  proctopo check pipe=8 data=128 model=8 --world-size 8192 --ranks-per-node 8 --intra-node model
  proctopo check pipe=4 data=16 model=8 expert=2 --ranks-per-node 8 --nodes-per-domain 4 \\
      --intra-node model --intra-domain expert
  proctopo check --json pipe=2 data=4     (under torchrun: WORLD_SIZE and LOCAL_WORLD_SIZE are used)""",
    "draw": """The format follows the output file's suffix (.svg, .png, .html, .txt) unless --format is given;
png needs matplotlib and coloured text needs rich (pip install 'proctopo[draw]').

examples:
  proctopo draw pipe=2 data=4 model=2 --group data --ranks-per-node 4
  proctopo draw pipe=2 data=4 model=2 --group model --ranks-per-node 8 -o layout.svg
  proctopo draw pipe=8 data=128 model=8 --group data --ranks-per-node 8 --slice pipe=0 -o pipe0.html
  proctopo draw pipe=8 data=128 model=8 --group model --ranks-per-node 8 --node 3""",
    "plan": """Times are seconds per step; the model, its defaults and sources, the machine presets and
the JSON schema (proctopo.plan/2) are described in docs/plan.md and docs/machine.md.

examples:
  proctopo plan pipe=4 data=0 model=8 --world-size 512 --ranks-per-node 8
  proctopo plan tp=8 cp=1 pp=16 dp=0 --order tp-cp-pp-dp --world-size 16384 --machine meta-h100-roce \\
      --model params=405B,hidden=16384,seq_len=8Ki,micro_batch=1,layers=126,global_batch=2048
  proctopo plan tp=8 cp=2 ep=8 pp=8 dp=0 --megatron --world-size 16384 --machine gb200-nvl72 --emit megatron
  proctopo plan dp_replicate=2 dp_shard=0 tp=8 --world-size 512 --machine hgx-h100 --emit torchtitan
  proctopo plan pp=4 dp=0 tp=8 --hostfile hostfile --machine hgx-h100     (ranks filling the hosts in order)
  proctopo plan tp=8 dp=16 --ranks-per-node 8 --weight dp=6 --tier network=25e9,12e-6 --exposed data=0.5""",
    "run": """A PipelineParallelGrid when the axes include pipe and data (DeepSpeed), else a ProcessGrid
over the axes as named (Megatron's tp, cp, pp, ..., torchtitan's dp_shard, dp_replicate, ...).

examples:
  proctopo run
  proctopo run --nproc 4 pipe=2 data=2 --strategy global
  proctopo run tp=2 cp=2 pp=2 --order tp-cp-pp
  proctopo run dp_replicate=2 dp_shard=2 tp=2
  torchrun --standalone --nproc-per-node 8 -m proctopo run""",
}


def _hosts_option(p: argparse.ArgumentParser) -> None:
    """``--hostfile FILE`` or ``--slurm``: the launch's hosts (read by :func:`_read_hosts`)."""
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument(
        "--hostfile",
        metavar="FILE",
        help="the ranks on the hosts of a DeepSpeed/MPI hostfile ('host slots=N' lines), host by host in "
        "file order, instead of --ranks-per-node",
    )
    hosts.add_argument(
        "--slurm",
        action="store_true",
        help="the ranks on the hosts of this Slurm job (SLURM_JOB_NODELIST, SLURM_TASKS_PER_NODE, "
        "SLURM_DISTRIBUTION: block, cyclic or plane), instead of --ranks-per-node "
        f"(needs {hosting.PIP_SLURM})",
    )


def _read_hosts(args: argparse.Namespace) -> Hosts | None:
    """The hosts of ``--hostfile`` or ``--slurm`` (Slurm's variables from this process's environment),
    with ``--nodes-per-domain``; None without either. ``--world-size`` and ``--ranks-per-node``
    are refused with them (the hosts give both), and ``WORLD_SIZE``/``LOCAL_WORLD_SIZE`` not read."""
    if args.hostfile is None and not args.slurm:
        return None
    hosts = read_hostfile(args.hostfile) if args.hostfile is not None else from_slurm(os.environ)
    hosts.refuse_overrides(
        {
            "--world-size": getattr(args, "world_size", None),
            "--ranks-per-node": getattr(args, "ranks_per_node", None),
        }
    )
    return hosts.in_domains(args.nodes_per_domain) if args.nodes_per_domain else hosts


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``proctopo`` (all subcommands)."""
    top = argparse.ArgumentParser(
        prog="proctopo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Look at a layout of named axes before a job runs, check it, draw it, plan it, or run "
        "it. Every command takes the axes as name=size words, slowest first, or as sizes for --order, a "
        "Megatron order string (fastest first). DeepSpeed's names (pipe, data, model, ...), Megatron's "
        "(tp, cp, ep, dp, pp, ...) and torchtitan's (dp_replicate, dp_shard, cp, tp, ...) all go.",
        epilog="examples:\n  proctopo show pipe=2 data=2 model=2\n"
        "  proctopo check pipe=8 data=128 model=8 --ranks-per-node 8 --intra-node model\n"
        "  proctopo draw pipe=2 data=4 model=2 --group data --ranks-per-node 4 -o layout.svg\n"
        "  proctopo plan pipe=4 data=0 model=8 --world-size 512 --ranks-per-node 8\n"
        "  proctopo run --nproc 4\n\n'proctopo COMMAND --help' describes each command.",
    )
    top.add_argument("--version", action="version", version=f"proctopo {__version__}")
    sub = top.add_subparsers(dest="command", metavar="{show,check,draw,plan,run}")

    def command(
        name: str, text: str, description: str | None = None, sizes: str = ""
    ) -> argparse.ArgumentParser:
        """A subcommand taking the axes (``sizes`` says more of the sizes) and ``--order``."""
        p = sub.add_parser(
            name,
            help=text,
            description=description or text,
            epilog=_EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "axes",
            nargs="*",
            metavar="name=size",
            help=f"axes, slowest first, or the sizes of --order's axes{sizes} "
            f"(default {' '.join(DEFAULT_AXES)})",
        )
        order_option(p)
        return p

    def order_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--order",
            metavar="ORDER",
            help="a Megatron order string, fastest axis first (e.g. tp-cp-dp-pp): the axes in that order, "
            "their sizes from the name=size words (1 without one)",
        )

    def placement_options(p: argparse.ArgumentParser, world_size: bool = True) -> None:
        """``--world-size`` (unless ``world_size`` is false) and ``--ranks-per-node``, as every command
        reads them: the launcher's variables stand in for them (the options win)."""
        if world_size:
            p.add_argument("--world-size", type=_positive, help="ranks in the job (default: $WORLD_SIZE)")
        p.add_argument(
            "--ranks-per-node", type=_positive, help="ranks on each node (default: $LOCAL_WORLD_SIZE)"
        )

    def json_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--json", action="store_true", help="print JSON (schema in docs/cli.md) instead of text"
        )

    p = command("show", "print rank -> coordinates -> groups, or one rank's groups and neighbours")
    p.add_argument("--limit", type=_positive, default=16, help="ranks to list (default 16)")
    p.add_argument(
        "--rank",
        type=_index,
        help="show this rank: coordinates, every group it is in, pipeline neighbours (default: $RANK if set)",
    )
    placement_options(p, world_size=False)
    json_option(p)
    p = command("check", "check a layout against a world size and locality rules")
    placement_options(p)
    p.add_argument("--nodes-per-domain", type=_positive, help="nodes in each domain (a rack, a switch, ...)")
    p.add_argument(
        "--intra-node",
        type=_axis_list,
        default=[],
        metavar="AXES",
        help="axes whose groups must stay on one node",
    )
    p.add_argument(
        "--intra-domain",
        type=_axis_list,
        default=[],
        metavar="AXES",
        help="axes whose groups must stay in one domain (needs --nodes-per-domain)",
    )
    p.add_argument("--allow-partial-node", action="store_true", help="accept a last node that is not full")
    _hosts_option(p)
    json_option(p)
    p = command("draw", "draw the ranks by node, coloured by group, as text, SVG, PNG or HTML")
    p.add_argument(
        "--group", type=_axis_list, default=[], metavar="AXES", help="colour by the groups along these axes"
    )
    placement_options(p, world_size=False)
    p.add_argument("--nodes-per-domain", type=_positive, help="nodes in each domain: nodes framed by domain")
    p.add_argument(
        "--slice",
        action="append",
        default=[],
        metavar="AXIS=I",
        help="draw only these coordinates, e.g. pipe=0",
    )
    p.add_argument(
        "--node", type=_index, help="draw only this node (needs --ranks-per-node, or the host at this place)"
    )
    _hosts_option(p)
    p.add_argument(
        "--format", choices=drawing.FORMATS, help="text, svg, png or html (default: from -o, else text)"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of the standard output")
    p.add_argument(
        "--limit",
        type=_positive,
        default=256,
        help=f"ranks drawn before the picture becomes a summary (default 256, at most {drawing.LIMIT_MAX})",
    )
    p.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the text picture (needs rich; auto: on a terminal)",
    )
    json_option(p)
    p = command(
        "plan",
        "rank the orders of the axes on a machine by the communication a step waits for",
        "Rank the orders of the axes on a machine (node, NVLink domain, network levels) by the "
        "communication time each training step waits for (alpha-beta per level, less what overlaps "
        "compute), with each order's communicator budget; or print the best layout for a launcher (--emit).",
        sizes="; size 0 is filled from the world size",
    )
    placement_options(p)
    p.add_argument(
        "--machine",
        metavar="NAME|FILE",
        help=f"the machine: a preset ({', '.join(planner.PRESETS)}) or a JSON/TOML machine file "
        "(docs/machine.md), whose ranks per node stand in for $LOCAL_WORLD_SIZE; default: nodes on "
        "NVLink, domains of --nodes-per-domain nodes, one network",
    )
    p.add_argument(
        "--nodes-per-domain", type=_positive, help="nodes per NVLink domain (default: the machine's, else 1)"
    )
    _hosts_option(p)
    p.add_argument(
        "--megatron",
        action="store_const",
        const="megatron",
        dest="convention",
        help="read the axes as Megatron's tp, cp, ep, dp, pp (and etp): ep subdivides dp x cp, orders are "
        "initialize_model_parallel's (also implied by an --order of Megatron's tokens)",
    )
    p.add_argument(
        "--convention",
        choices=planner.CONVENTIONS,
        help="how the axes are read (default: from the names and --order)",
    )
    p.add_argument(
        "--weight",
        type=_weight,
        action="append",
        default=[],
        metavar="AXIS=GB",
        help="gigabytes each rank all-reduces per step along AXIS (instead of the default or the model's)",
    )
    p.add_argument(
        "--model",
        type=_model,
        metavar="DESCRIPTION",
        help="the model, to estimate each axis's traffic: FIELD=VALUE,... or a JSON object or file "
        "(fields params, hidden, seq_len, micro_batch, layers, global_batch, ...; 70B, 1.5T, 8Ki accepted)",
    )
    p.add_argument(
        "--exposed",
        type=_exposed,
        action="append",
        default=[],
        metavar="KIND=FRACTION",
        help="the part of a kind's communication the step waits for (tensor, context, expert, data, fsdp, "
        "pipe, or an axis name), instead of the default (docs/plan.md)",
    )
    p.add_argument(
        "--tier",
        type=_tier,
        action="append",
        default=[],
        metavar="LEVEL=BW[,LAT[,OVER]]",
        help="a machine level's bandwidth (bytes/s per rank), latency (s) and oversubscription, by the "
        "machine's level names (node, domain, network, leaf, ...)",
    )
    p.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="ORDER",
        help="rank only these orders (order strings, fastest axis first; repeat the option)",
    )
    p.add_argument("--top", type=_positive, help="layouts to keep")
    p.add_argument(
        "--group",
        type=_axis_list,
        action="append",
        default=[],
        metavar="AXES",
        help="an extra set of axes whose groups the job makes too, e.g. dp,cp (counted in the budget)",
    )
    p.add_argument("--communicator-bytes", type=_index, help="device memory of one communicator")
    p.add_argument("--limit", type=_positive, default=10, help="layouts listed in the text (default 10)")
    p.add_argument(
        "--emit",
        choices=list(planner.EMITTERS),
        help="print the best layout for a launcher instead: Megatron-LM's arguments, torchtitan's "
        "[parallelism], DeepSpeed's topology, or shell variables",
    )
    json_option(p)
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
        type=_strategy,
        metavar="{" + ",".join(CPU_STRATEGIES) + "}",
        help="group_creation of the grid (default auto; split needs NCCL on GPUs, so it is not offered here)",
    )
    p.add_argument(
        "--timeout", type=_seconds, default=120.0, help="seconds before the run counts as hung (default 120)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    return top


# ---------------------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> int:
    words = args.axes
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


def _show(args: argparse.Namespace) -> int:
    topo = parse_axes(args.axes or DEFAULT_AXES)
    rank = _environ(args.rank, "RANK", _index)
    if rank is None:
        if args.json:
            _dump({**show_json(topo, args.limit), "warnings": args.warnings}, sys.stdout)
        else:
            show(topo, limit=args.limit)
        return 0
    doc = rank_json(topo, rank, _environ(args.ranks_per_node, "LOCAL_WORLD_SIZE", _positive))
    if args.json:
        _dump({**doc, "warnings": args.warnings}, sys.stdout)
    else:
        _print_rank(doc, sys.stdout)
    return 0


def _check(args: argparse.Namespace) -> int:
    topo = parse_axes(args.axes or DEFAULT_AXES)
    hosts = _read_hosts(args)
    report = check(
        topo,
        None if hosts else _environ(args.world_size, "WORLD_SIZE", _positive),
        None if hosts else _environ(args.ranks_per_node, "LOCAL_WORLD_SIZE", _positive),
        nodes_per_domain=args.nodes_per_domain,
        intra_node=args.intra_node,
        intra_domain=args.intra_domain,
        allow_partial_node=args.allow_partial_node,
        hosts=hosts,
    )
    if args.json:
        _dump(report, sys.stdout)
    else:
        _print_check(report, sys.stdout)
    for v in report["violations"]:
        print(f"{_RULE_TAG[v['rule']]}: {v['message']}", file=sys.stderr)
    return 0 if report["ok"] else 1


_SUFFIXES = {".svg": "svg", ".png": "png", ".html": "html", ".htm": "html", ".txt": "text"}


def _draw(args: argparse.Namespace) -> int:
    topo = parse_axes(args.axes or DEFAULT_AXES)
    output = None if args.output in (None, "-") else args.output
    fmt = args.format or _SUFFIXES.get(os.path.splitext(output or "")[1].lower(), "text")
    if fmt == "png" and output is None and not args.json:
        raise InvalidArgumentError("a PNG is written to a file: give -o FILE.png")
    coords = parse_coords(args.slice)
    names = topo.get_axis_names()
    hosts = _read_hosts(args)
    with suggest_axes([*args.group, *(n for n, _ in coords)], names):
        if hosts is not None:
            pic = hosting.picture(topo, hosts, args.group, coords, args.node, limit=args.limit)
        else:
            ranks_per_node = _environ(args.ranks_per_node, "LOCAL_WORLD_SIZE", _positive)
            ranks = (
                drawing.select(topo, coords, args.node, ranks_per_node)
                if coords or args.node is not None
                else None
            )
            pic = drawing.layout(
                topo, args.group, ranks_per_node, args.nodes_per_domain, ranks, limit=args.limit
            )
    if fmt == "png" and not args.json:
        try:
            drawing.png(pic, output or "")
        except OSError as exc:
            raise _CannotWrite(output or "", exc) from None
        return 0
    if args.json:
        doc = {
            "schema": "proctopo.draw/1",
            "topology": topology_json(topo),
            **drawing.to_dict(pic),
            "hosts": None if hosts is None else hosts.to_dict(),
        }
        text = json_text(doc)
        text += "\n"
    elif fmt == "svg":
        text = drawing.svg(pic)
    elif fmt == "html":
        text = drawing.html(pic)
    else:
        if output is None:
            drawing.write_text(pic, sys.stdout, args.color)
            return 0
        with _output_file(output) as f:
            drawing.write_text(pic, f, args.color)
        return 0
    if output is None:
        sys.stdout.write(text)
    else:
        with _output_file(output) as f:
            f.write(text)
    return 0


def _plan(args: argparse.Namespace) -> int:
    words = args.axes or ([] if args.order else list(DEFAULT_AXES))
    pairs = [_split_word(w) for w in words]
    names = [n for n, _ in pairs]
    if names:
        check_axis_names(names)  # repeated or invalid names, in the topology's words
    axes = names + ([t for t in parse_order(args.order) if t not in names] if args.order else [])
    hosts = _read_hosts(args)
    if hosts is not None:
        if not isinstance(hosts.placement, BlockPlacement):
            raise InvalidArgumentError(
                "plan prices ranks that fill their nodes in order, the same number on each but the last; "
                f"{hosts.describe()} places them otherwise: see that placement with proctopo check"
            )
        world_size, ranks_per_node = hosts.world_size, hosts.placement.ranks_per_node
    else:
        world_size = _environ(args.world_size, "WORLD_SIZE", _positive)
        ranks_per_node = args.ranks_per_node
    if hosts is None and args.machine is None:  # a machine or the hosts say the ranks per node
        ranks_per_node = _environ(ranks_per_node, "LOCAL_WORLD_SIZE", _positive)
        if ranks_per_node is None:
            raise InvalidArgumentError(
                "plan needs ranks_per_node (or LOCAL_WORLD_SIZE in the environment), or a machine: "
                f"--machine {next(iter(planner.PRESETS))} or a machine file"
            )
    # Layouts the result can hold: no more than asked for (top; else the candidates given, or the
    # default) nor than there are orders of the axes whose size is not 1 (10! is beyond any top).
    kept = args.top if args.top is not None else (len(args.candidate) or DEFAULT_TOP)
    orders = len(args.candidate) or math.factorial(min(sum(d != 1 for _, d in pairs), 10))
    check_listed(min(kept, orders), len(axes))
    asked = [n for n, _ in args.weight] + [a for g in args.group for a in g]
    with suggest_axes(asked, axes):
        result = planner.plan(
            dict(pairs) if pairs else None,
            order=args.order,
            world_size=world_size,
            ranks_per_node=ranks_per_node,
            nodes_per_domain=args.nodes_per_domain,
            machine=args.machine,
            convention=args.convention,
            weights=dict(args.weight) or None,
            model=args.model,
            exposed=dict(args.exposed) or None,
            tiers=_levels(args.tier),
            candidates=args.candidate or None,
            top=args.top,
            groups=args.group,
            communicator_bytes=args.communicator_bytes,
        )
    if args.emit is not None:
        print(planner.emit(result, args.emit))
    elif args.json:
        _dump(result.to_dict(), sys.stdout)
    else:
        print(result.render(limit=args.limit))
    return 0


def _levels(tiers: list[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]] | None:
    """``--tier`` options by level; a level named twice takes the fields of both, the later winning."""
    out: dict[str, dict[str, float]] = {}
    for name, fields in tiers:
        out.setdefault(name, {}).update(fields)
    return out or None


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "show": _show,
    "check": _check,
    "draw": _draw,
    "plan": _plan,
    "run": _run,
}


#: The exit status when the output cannot be written: the file of ``-o`` cannot be created or
#: written, or the standard output fails (closed, a full disk, an encoding that cannot hold the text).
EXIT_CANNOT_WRITE = 3


class _CannotWrite(Exception):
    """The output could not be written; ``main`` reports it and returns :data:`EXIT_CANNOT_WRITE`."""

    def __init__(self, where: str, cause: Exception) -> None:
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        super().__init__(f"cannot write {where}: {reason}")


class _Stdout:
    """The standard output while a command runs: a write that fails names the standard output
    (:class:`_CannotWrite`), as does a write to a closed standard output (``None``); a reader
    that is gone is :class:`BrokenPipeError` (ended quietly). Everything else is the stream's own."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if self.stream is None:
            if text:
                raise _CannotWrite("the standard output", OSError(errno.EBADF, "it is closed"))
            return 0
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, UnicodeEncodeError) as exc:
            raise _CannotWrite("the standard output", exc) from None

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _CannotWrite("the standard output", exc) from None

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def discard(self) -> None:
        """Send what is still buffered to the null device, so nothing fails again at exit."""
        try:
            fd = self.stream.fileno() if self.stream is not None else -1
        except (OSError, ValueError, AttributeError):
            fd = -1  # not a file (a test's capture): nothing is flushed at exit
        if fd >= 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextmanager
def _output_file(path: str) -> Iterator[TextIO]:
    """``path`` opened for the output (UTF-8 text); failing to create or write it is :class:`_CannotWrite`."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            yield f
    except OSError as exc:
        raise _CannotWrite(path, exc) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``proctopo`` and ``python -m proctopo``; returns the exit status.

    Without a command it prints the help. Mistakes in the options end in argparse's
    usage message (``SystemExit(2)``); a layout that breaks a rule of the topology, or
    an argument that is not UTF-8 text, prints ``proctopo <command>: error: <why>`` and
    returns 2; ``check`` returns 1 when the layout breaks one of the rules it was asked
    to check. Output that cannot be written (``-o`` in a missing directory, a full disk)
    prints ``proctopo <command>: error: cannot write <where>: <why>`` and returns
    :data:`EXIT_CANNOT_WRITE` (3), as does output for a closed standard output
    (``proctopo check >&-``). A reader that goes away (``proctopo show ... | head``) ends
    the command quietly with status 1.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    out = _Stdout(sys.stdout)
    saved = sys.stdout
    sys.stdout = cast(TextIO, out)
    try:
        try:
            return _main(words)
        finally:
            sys.stdout = saved
            out.flush()  # a closed pipe shows here at the latest, not at interpreter exit
    except BrokenPipeError:
        out.discard()  # no second error at exit
        return 1
    except _CannotWrite as exc:  # in argparse's own output (--help, --version) or the last flush
        out.discard()
        name = words[0] if words and words[0] in _COMMANDS else None
        print(f"proctopo{f' {name}' if name else ''}: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE


def _settle_axes(args: argparse.Namespace) -> list[str]:
    """Lay ``--order`` out as ``name=size`` words, slowest first (``plan`` takes it as it is); the warnings.

    Every command then reads ``args.axes`` alike. The warning (see :func:`convention_warning`)
    is for words given without ``--order``, and not for ``plan`` in Megatron's convention, whose
    orders do not follow the words.
    """
    if args.order is not None and args.command != "plan":
        topo = parse_axes(args.axes, args.order)
        args.axes = [f"{a}={d}" for a, d in zip(topo.axes, topo.dims)]
        args.order = None
        return []
    if args.order is not None or not args.axes:
        return []
    if args.command == "plan" and args.convention == "megatron":
        return []  # Megatron's orders are initialize_model_parallel's, whatever order the words are in
    sizes = [_split_word(w)[1] for w in args.axes]
    world = math.prod(sizes) if all(sizes) else getattr(args, "world_size", None)
    ranks_per_node = getattr(args, "ranks_per_node", None)
    hosts = getattr(args, "hostfile", None) is not None or getattr(args, "slurm", False)
    if ranks_per_node is None and not hosts:  # as the command reads them
        try:
            ranks_per_node = _environ(None, "LOCAL_WORLD_SIZE", _positive)
        except InvalidArgumentError:
            ranks_per_node = None  # the command that uses it says what is wrong
    text = convention_warning(args.axes, world, ranks_per_node)
    return [] if text is None else [text]


#: Options whose values are paths, where any bytes go (not only UTF-8 text).
_PATH_OPTIONS = frozenset({"output", "hostfile", "machine"})


def _check_text(args: argparse.Namespace) -> None:
    """Every argument but a path is UTF-8 text (names, sizes, orders): a clear error naming the
    first that is not, instead of a failure where the text meets the core.

    The command line holds bytes; Python keeps those that are not UTF-8 as lone surrogates.
    """

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from strings(k)
                yield from strings(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from strings(v)

    for dest, value in vars(args).items():
        if dest in _PATH_OPTIONS:
            continue
        for text in strings(value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                try:
                    shown = repr(os.fsencode(text))
                except UnicodeEncodeError:
                    shown = ascii(text)
                option = "name=size" if dest == "axes" else "--" + dest.replace("_", "-")
                raise InvalidArgumentError(
                    f"argument {option}: {shown} is not UTF-8 text; names, sizes and options are read "
                    "as UTF-8"
                ) from None


def _main(argv: list[str]) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return 0
    try:
        _check_text(args)
        args.warnings = _settle_axes(args)
        if os.environ.get("RANK", "0") in ("", "0"):  # under a launcher, rank 0 speaks for the job
            for text in args.warnings:
                print(f"proctopo {args.command}: warning: {text}", file=sys.stderr)
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a failing standard output is reported here, in the command's name
        return status
    except ProctopoError as exc:
        print(f"proctopo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except _CannotWrite as exc:
        if isinstance(sys.stdout, _Stdout):
            sys.stdout.discard()
        print(f"proctopo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
