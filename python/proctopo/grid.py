"""``ProcessGrid`` and ``PipelineParallelGrid``: the process groups of a topology, in O(axes) calls.

:class:`ProcessGrid` is the generic grid: the group of any set of axes of the
main topology or of another layout of the same ranks, explicit families of
groups, a torch ``DeviceMesh`` made of its groups, and
:meth:`ProcessGrid.destroy`.
Identical rank sets share one communicator wherever they come from.

:class:`PipelineParallelGrid`, built on it, is a drop-in for
``deepspeed.runtime.pipe.topology.PipelineParallelGrid``: every attribute and
getter DeepSpeed has returns the same value, and the process groups contain the
same ranks. On top of that it

* creates each rank's groups with O(axes) process-group calls
  (``group_creation="local"`` or ``"split"``) instead of one call per group of
  the whole world, and shares identical rank sets;
* serves any extra axis (``get_sequence_parallel_group()`` when the topology has
  a ``sequence`` axis, likewise ``context``, ``expert``, ...), DeepSpeed's
  ``get_sequence_data_parallel_group()``, and the group of any set of axes
  created at construction or with :meth:`PipelineParallelGrid.create_group`;
* lays the topology over the ranks of ``process_group`` when one is given;
* checks, with one small collective, that all ranks were given the same
  topology before creating any group, so a mismatch fails at once with an
  error naming the difference instead of hanging; each later creation call
  makes the same check;
* never creates a group in a getter: ``get_group`` returns what exists or
  raises :class:`proctopo.GroupNotCreatedError` naming the call that creates it.

Rank lists (``dp_group``, ``pipe_groups``, ``p2p_groups``, ``stage_to_global``,
...) hold *global* ranks, the ranks ``torch.distributed`` takes. Without a
``process_group`` the grid ranks and the global ranks are the same numbers.

torch is imported when a grid is built, never when this module is imported.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from .comm import Comm, TorchComm, check_timeout
from .errors import (
    GridSizeError,
    GroupCreationError,
    GroupNotCreatedError,
    InvalidArgumentError,
    PlacementError,
    UnknownAxisError,
)
from .groups import (
    MAIN,
    MISSING,
    GroupBuilder,
    decode_hosts,
    fingerprint,
    one_host,
    resolve_strategy,
    verify_and_align,
    verify_and_locate,
)
from .machine import MeasuredPlacement
from .topology import PipeDataParallelTopology, ProcessTopology, prime_factors

__all__ = ["PipelineParallelGrid", "ProcessGrid"]

_GETTER = re.compile(r"get_(\w+)_parallel_(rank|world_size|group_ranks|group)")


def _as_proctopo(topology: Any) -> ProcessTopology:
    if isinstance(topology, ProcessTopology):
        return topology
    if hasattr(topology, "get_axis_names") and hasattr(topology, "get_dim"):
        axes = list(topology.get_axis_names())
        return ProcessTopology(axes, [int(topology.get_dim(a)) for a in axes])
    raise TypeError(
        "topology must be a proctopo.ProcessTopology (or any object with get_axis_names() and "
        f"get_dim(), such as DeepSpeed's), got {type(topology).__name__}"
    )


#: One entry of ``groups=``: an axis, a sequence of axes, or ``(layout_name, axes)``.
GroupSpec = Union[str, Sequence[Any]]


def _make_comm(process_group: Any, comm: Comm | None) -> Comm:
    if comm is None:
        return TorchComm(process_group)
    if process_group is not None:
        raise InvalidArgumentError(
            "pass either process_group or comm, not both (a comm carries its own parent group)"
        )
    return comm


def _split_spec(spec: GroupSpec) -> tuple[str | None, str | Sequence[str]]:
    """``(layout, axes)`` of one ``groups=`` entry; a pair whose second item is not a str names a layout."""
    if (
        isinstance(spec, (tuple, list))
        and len(spec) == 2
        and isinstance(spec[0], str)
        and not isinstance(spec[1], str)
        and isinstance(spec[1], (tuple, list))
    ):
        return spec[0], spec[1]
    return None, spec


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Warn once per process for each distinct message."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _axes_text(axes: Any) -> str:
    return f"axis {axes!r}" if isinstance(axes, str) else f"axes {list(axes)!r}"


def _rule_axes(pt: ProcessTopology, name: str, given: Any) -> list[Any]:
    """The entries of a locality rule, checked against the topology (each an axis or a list of axes)."""
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, (list, tuple)):
        raise TypeError(f"{name} must be a sequence of axes (or of sets of axes), got {given!r}")
    out: list[Any] = []
    for axes in given:
        pt.axis_indices(axes)  # the topology owns the axis rules
        out.append(axes if isinstance(axes, str) else list(axes))
    return out


class ProcessGrid:
    """The process groups of a topology of named axes, for any training stack.

    Building it is a collective: every rank of the grid (the whole world, or the
    ranks of ``process_group``) builds it with the same arguments at the same
    point of the program, like ``torch.distributed.new_group``. It creates the
    group of each axis of ``topology`` (in topology order), then the ``groups``
    entries in the order given. Any other group is created by an explicit
    collective call, :meth:`create_group` (or :meth:`new_groups` for a family of
    rank lists), which every rank makes alike and which is checked across ranks
    as the construction is. Getters never create: :meth:`get_group` returns a
    group the grid holds, or raises :class:`proctopo.GroupNotCreatedError`
    naming the call that creates it.

    Identical rank sets share one communicator wherever they come from (any
    layout, any set of axes, an explicit family of :meth:`new_groups`): the
    registry is keyed by the sorted ranks and the backend (``None`` is the
    parent's backend, and naming it explicitly is the same). The group of all
    grid ranks is the parent group itself.

    Args:
        topology: The main :class:`proctopo.ProcessTopology` (or any object with
            ``get_axis_names()`` and ``get_dim()``, such as DeepSpeed's).
        process_group: Lay the grid over this group's ranks instead of the whole
            world (grid rank ``i`` is the group's ``i``-th rank). Rank lists are
            global ranks either way.
        group_creation: ``"auto"`` (default), ``"global"``, ``"local"`` or
            ``"split"``; see :mod:`proctopo.groups`.
        verify: Compare a fingerprint of the settings across ranks before
            creating groups (one small all-reduce), here and at each later
            :meth:`create_group` and :meth:`new_groups`. All ranks must agree on it.
        timeout: Seconds (or a ``timedelta``) for the fingerprint exchange and
            each group creation: finite, above 0, below ``timedelta.max``.
            ``None`` waits at most 600 s for the exchange and gives groups
            torch's default.
        groups: Sets of axes whose groups are created up front: ``"data"``,
            ``("data", "context")``, ``[]`` (each rank alone) or
            ``(layout_name, axes)`` with ``axes`` a list or tuple, e.g.
            ``("expert", ["expert"])``.
        layouts: ``{name: topology}``: other factorizations of the same ranks
            (see :meth:`add_layout`). The main topology is the layout ``None``,
            also called ``"main"``.
        comm: The communication layer (default: ``torch.distributed`` through
            :class:`proctopo.comm.TorchComm`); a
            :class:`proctopo.testing.RecordingComm` simulates one rank of any
            world without torch. Excludes ``process_group``.
        intra_node: Axes (or sets of axes, as for ``groups``) whose groups must
            each lie inside one host; checked on the measured placement before
            any group is created (see :meth:`check_placement`).
        intra_domain: Axes whose groups must each lie inside one NVLink domain
            (each host is its own domain where no domain identity is known).
        reorder: Let the grid choose which rank takes which grid position, as
            ``MPI_Cart_create(reorder=1)``: ranks sorted by host (hosts in the
            order their first rank appears) fill the grid in row-major order, so
            the fastest axes fall inside hosts. Nothing changes when the ranks
            already are in that order (a block placement).
        domain: This rank's NVLink-domain identity, as the launcher knows it;
            ``None``: what the comm reports (torch's: the environment variable
            ``PROCTOPO_DOMAIN`` when it is set, else nothing).

    The placement (``grid.placement``) is measured in the fingerprint exchange,
    so ``verify=False`` leaves it unknown: ``grid.placement`` then raises
    :class:`proctopo.errors.PlacementError`, and ``intra_node``,
    ``intra_domain`` and ``reorder`` are refused.

    Raises:
        GridSizeError: a topology's size is not the number of grid ranks.
        UnknownAxisError: an entry of ``groups`` names an axis its layout lacks.
        InvalidArgumentError: an unknown ``group_creation`` or layout, an axis
            named twice, layouts whose shared axes enumerate differently, a
            ``timeout`` that is not finite and positive, or both
            ``process_group`` and ``comm``.
        GroupCreationError: the strategy cannot work here, this rank is not in
            ``process_group``, or a group could not be created.
        TopologyMismatchError: ranks were given different settings.
        GridTimeoutError: a rank did not join the fingerprint exchange in time
            (:class:`proctopo.errors.PeerLostError` when its connection closed).
        PlacementError: a group of an ``intra_node`` / ``intra_domain`` axis
            spans hosts / domains (raised on every rank), or ``reorder`` cannot
            satisfy the rules.

    >>> from proctopo.testing import RecordingComm
    >>> topo = ProcessTopology(["pipe", "data", "model"], [2, 2, 2])
    >>> grid = ProcessGrid(topo, groups=[("data", "model")], comm=RecordingComm(rank=5, world_size=8))
    >>> grid.get_group_ranks("data"), grid.get_group(["data", "model"]).ranks
    ([5, 7], [4, 5, 6, 7])
    >>> grid.group_creation_calls, grid.communicators
    (4, 4)
    """

    def __init__(
        self,
        topology: Any,
        process_group: Any = None,
        *,
        group_creation: str = "auto",
        verify: bool = True,
        timeout: datetime.timedelta | float | None = None,
        groups: Sequence[GroupSpec] = (),
        layouts: Mapping[str, Any] | None = None,
        comm: Comm | None = None,
        intra_node: Sequence[str | Sequence[str]] = (),
        intra_domain: Sequence[str | Sequence[str]] = (),
        reorder: bool = False,
        domain: str | None = None,
    ) -> None:
        seconds = check_timeout(timeout)
        comm = _make_comm(process_group, comm)
        self._comm = comm
        self.global_rank: int = comm.global_rank()
        self.world_size: int = comm.grid_size()
        self.grid_rank: int = comm.grid_rank()
        if self.grid_rank < 0:
            raise GroupCreationError(
                f"global rank {self.global_rank} is not a member of process_group "
                f"(ranks {list(comm.parent_ranks() or [])[:16]}); only its members build the grid"
            )
        pt = _as_proctopo(topology)
        self._check_size(pt, "")
        self._pt = pt
        rules = (_rule_axes(pt, "intra_node", intra_node), _rule_axes(pt, "intra_domain", intra_domain))
        if not verify and (any(rules) or reorder):
            raise InvalidArgumentError(
                "intra_node, intra_domain and reorder need the placement measured in the fingerprint "
                "exchange, which verify=False skips; pass verify=True"
            )
        self._placement: MeasuredPlacement | None = None
        #: Every grid rank's location block from the exchange, until decoded into _placement.
        self._blocks: Any = None
        whole = comm.parent_ranks() is None and self.world_size == comm.world_size()
        self.strategy: str = resolve_strategy(group_creation, comm, whole_world=whole)
        builder = GroupBuilder(comm, pt, self.strategy, seconds)
        self._builder = builder
        self._verify = verify
        self._seconds = seconds
        self._fingerprint = 0  # of the construction's description, when verified
        #: Explicit creation calls made so far (create_group, new_groups), for their check.
        self._creations = 0
        for name, layout in (layouts or {}).items():
            self.add_layout(name, layout)

        plan: list[tuple[str | None, tuple[str, ...]]] = [(None, builder.key(a)) for a in pt.get_axis_names()]
        for spec in groups:
            layout_name, axes = _split_spec(spec)
            builder.layout(layout_name)  # an unknown layout fails here, before any collective
            plan.append((layout_name, builder.key(axes, layout_name)))
        unique = list(dict.fromkeys(plan))

        if verify:
            parent = comm.parent_ranks()
            description: dict[str, Any] = {
                "axes": pt.get_axis_names(),
                "dims": pt.dims,
                "strategy": self.strategy,
                "grid_size": self.world_size,
                "world_size": comm.world_size(),
                "process_group": None
                if parent is None
                else hashlib.blake2b(repr(list(parent)).encode(), digest_size=8).hexdigest(),
                "groups": [list(k) if n is None else [n, list(k)] for n, k in unique],
            }
            if len(builder.layouts) > 1:
                description["layouts"] = {
                    n: [t.get_axis_names(), t.dims] for n, t in builder.layouts.items() if n != MAIN
                }
            if any(rules) or reorder:
                description["placement"] = {
                    "intra_node": rules[0],
                    "intra_domain": rules[1],
                    "reorder": reorder,
                }
            host, reported = comm.location()
            pads, found = verify_and_locate(
                comm,
                description,
                strategy=self.strategy,
                timeout=seconds,
                location=(host, reported if domain is None else str(domain)),
            )
            builder.owned.extend((pad, True) for pad in pads)
            self._fingerprint = fingerprint(description)
            self._blocks = found
            if found is not None:
                # The placement is decoded when asked for, except where construction needs it:
                # the rules, reorder, and grid rank 0's report of a launch over several hosts
                # out of block order.
                if any(rules) or reorder or (self.grid_rank == 0 and not one_host(found)):
                    self._locate(reorder, rules)
            elif any(rules) or reorder:
                raise PlacementError(
                    "intra_node, intra_domain and reorder need every rank's host, but the comm did not "
                    f"report them in the fingerprint exchange ({type(comm).__name__})"
                )

        for layout_name, key in unique:
            builder.get(key, layout_name)

    def _check_size(self, pt: ProcessTopology, layout: str) -> None:
        where = "the world size" if self._comm.parent_ranks() is None else "the process group's size"
        try:
            pt.check_world_size(self.world_size, where)
        except GridSizeError as exc:
            if not layout:
                raise
            raise GridSizeError(f"{layout}{exc}") from None

    # ------------------------------------------------------------------ placement
    def _measured(self) -> tuple[list[str], Any, MeasuredPlacement]:
        """The launch's placement from the exchange's blocks: each rank's host, domains, placement."""
        decoded = decode_hosts(self._blocks)
        assert decoded is not None  # the construction kept only blocks where every rank reported
        names, nodes, domains = decoded
        hosts = [names[i] for i in nodes.tolist()]
        return hosts, domains, MeasuredPlacement(hosts, None if domains is None else domains.tolist())

    def _locate(self, reorder: bool, rules: tuple[list[Any], list[Any]]) -> None:
        """Build the placement from the exchange, reorder if asked, check the rules, and warn."""
        import numpy as np

        hosts, domains, launch = self._measured()
        order = self._reorder(launch, rules) if reorder else None
        if order is None or np.array_equal(order, np.arange(self.world_size)):
            self._placement = launch
        else:
            self._builder.reorder(order.tolist())
            self.grid_rank = self._builder.grid_rank
            self._placement = MeasuredPlacement(
                [hosts[i] for i in order.tolist()], None if domains is None else domains[order].tolist()
            )
        self.check_placement(intra_node=rules[0], intra_domain=rules[1])
        # Reported only once the rules hold: a broken rule is the error, not also a warning.
        if launch.nodes > 1 and not launch.is_block and not reorder and self.grid_rank == 0:
            _warn_once(
                f"the ranks of this job are not in block order over its {launch.nodes} hosts "
                f"({launch.pattern()}), as the computed placement (rank r on node r // ranks per node) "
                "assumes; grid.placement holds where they are. Build the grid with reorder=True to "
                "place the grid by host"
            )

    def _reorder(self, launch: MeasuredPlacement, rules: tuple[list[Any], list[Any]]) -> Any:
        """Launch positions in grid order: ranks sorted by (domain, host, rank), the sizes checked."""
        import numpy as np

        n = self.world_size
        ranks = np.arange(n)
        nodes = launch.node_ids(ranks)
        doms = launch.domain_ids(ranks)
        order = np.lexsort((ranks, nodes, doms))
        for level, axes_list, counts in (
            ("host", rules[0], np.bincount(nodes)),
            ("domain", rules[1], np.bincount(doms)),
        ):
            for axes in axes_list:
                size = self._pt.group_size(axes)
                bad = [int(c) for c in counts if c % size]
                if bad:
                    raise PlacementError(
                        f"reorder cannot keep the groups of {_axes_text(axes)} inside one {level}: they "
                        f"hold {size} ranks, and a {level} holding {bad[0]} ranks cannot be filled by whole "
                        f"groups ({level} sizes: {', '.join(map(str, counts[:8].tolist()))}"
                        f"{', ...' if len(counts) > 8 else ''}); every {level} must hold a multiple "
                        f"of {size} ranks"
                    )
        return order

    @property
    def placement(self) -> MeasuredPlacement:
        """Where the grid's ranks run, measured at construction, over *grid* ranks.

        Position ``i`` of the placement is grid rank ``i``, so
        ``grid.placement.span_of(grid.topology, axis)`` is the span of the grid's
        groups of ``axis``; :meth:`global_rank_of` names the process there.

        Raises:
            PlacementError: the grid was built with ``verify=False``, which skips
                the exchange that measures it.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["data", "model"], [2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(0, 4, hosts=["a", "b", "a", "b"]), reorder=True)
        >>> grid.placement.hosts, grid.placement.is_block, grid.get_group_ranks("model")
        (['a', 'b'], True, [0, 2])
        """
        if self._placement is None and self._blocks is not None:
            self._placement = self._measured()[2]
        if self._placement is None:
            why = (
                "it was built with verify=False, which skips the exchange that measures it"
                if not self._verify
                else "its comm did not report the ranks' hosts in the fingerprint exchange"
            )
            raise PlacementError(f"the grid's placement is unknown: {why}")
        return self._placement

    def check_placement(
        self,
        *,
        intra_node: Sequence[str | Sequence[str]] = (),
        intra_domain: Sequence[str | Sequence[str]] = (),
    ) -> None:
        """Check that every group of each ``intra_node`` axis lies inside one host, and of each
        ``intra_domain`` axis inside one domain. Every rank reaches the same verdict (no collective).

        Raises:
            PlacementError: a group spans hosts (domains); the message names the
                axis, one such group, its global ranks and their hosts.
            UnknownAxisError: an axis the topology does not have.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["data", "model"], [2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(1, 4, hosts=["a", "b", "a", "b"]))
        >>> grid.check_placement(intra_node=["model"])  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        proctopo.errors.PlacementError: the groups of axis 'model' must each lie inside one host,
        but the group of global ranks [0, 1] spans 2 hosts: rank 0 on 'a', rank 1 on 'b'
        (placement: cyclic over 2 hosts)
        """
        placement = self.placement
        for level, given in (("host", intra_node), ("domain", intra_domain)):
            for axes in _rule_axes(self._pt, f"intra_{'node' if level == 'host' else level}", given):
                key = self._builder.key(axes)
                if not key:
                    continue
                table = self._pt.groups(list(key))
                ids = placement.node_ids(table) if level == "host" else placement.domain_ids(table)
                spread = (ids != ids[:, :1]).any(axis=1)
                if not spread.any():
                    continue
                row = table[int(spread.argmax())].tolist()
                members = self._builder._globals(row)
                where = ", ".join(f"rank {g} on {placement.host_of(r)!r}" for g, r in zip(members[:16], row))
                count = len(set(ids[int(spread.argmax())].tolist()))
                raise PlacementError(
                    f"the groups of {_axes_text(axes)} must each lie inside one {level}, but the group of "
                    f"global ranks {members[:16]} spans {count} {level}s: {where} "
                    f"(placement: {placement.pattern()})"
                )

    def global_rank_of(self, coord: Any) -> int:
        """The global rank at a grid position: a coordinate tuple (or ``ProcessCoord``) or ``{axis: index}``.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["data", "model"], [2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(0, 4, hosts=["a", "b", "a", "b"]), reorder=True)
        >>> grid.global_rank_of((0, 1)), grid.coord_of_global(1)
        (2, ProcessCoord(data=1, model=0))
        """
        if isinstance(coord, Mapping):
            grid_rank = self._pt.get_rank(**coord)
        else:
            grid_rank = self._pt.get_rank(**dict(zip(self._pt.get_axis_names(), coord)))
        return self._builder._globals([grid_rank])[0]

    def coord_of_global(self, rank: int) -> Any:
        """The grid position (a ``ProcessCoord``) of a global rank.

        Raises:
            InvalidArgumentError: ``rank`` is not a rank of the grid.
        """
        grid_rank = self._builder._grid_rank_of(int(rank))
        if grid_rank < 0 or grid_rank >= self.world_size:
            raise InvalidArgumentError(f"global rank {rank} is not a rank of this grid")
        return self._pt.get_coord(grid_rank)

    # ------------------------------------------------------------------ layouts
    @property
    def topology(self) -> ProcessTopology:
        """The main topology (layout ``None``, also called ``"main"``)."""
        return self._pt

    @property
    def coord(self) -> Any:
        """This rank's coordinates in the main topology (a ``ProcessCoord`` namedtuple).

        >>> from proctopo.testing import RecordingComm
        >>> ProcessGrid(ProcessTopology(["pipe", "data"], [2, 2]), comm=RecordingComm(2, 4)).coord
        ProcessCoord(pipe=1, data=0)
        """
        return self._pt.get_coord(self.grid_rank)

    def layout(self, name: str | None = None) -> ProcessTopology:
        """The topology of a layout; ``None`` or ``"main"`` is the main one.

        Raises:
            InvalidArgumentError: the grid has no layout of that name.
        """
        return self._builder.layout(name)

    def add_layout(self, name: str, topology: Any) -> None:
        """Add another factorization of the same ranks, e.g. an expert layout beside the dense one.

        Nothing is created (its groups come with :meth:`get_group` ``(..., layout=name)``),
        so this is not a collective, but every rank must add the same layouts.
        An axis both layouts have (same name) must enumerate identically: same
        size and the same groups. Because a row-major layout's groups of an axis
        tile the ranks by translates of the group of rank 0, comparing the
        groups of rank 0 decides it, in O(group size).

        Raises:
            InvalidArgumentError: ``name`` is not a new non-empty str other than
                ``"main"``, or a shared axis enumerates differently (the message
                names the axis and where the groups first differ).
            GridSizeError: the layout's size is not the number of grid ranks.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "model"], [2, 2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(0, 8))
        >>> grid.add_layout("expert", ProcessTopology(["pipe", "expert", "model"], [2, 2, 2]))
        >>> try:
        ...     grid.add_layout("bad", ProcessTopology(["pipe", "model", "data"], [2, 2, 2]))
        ... except InvalidArgumentError as exc:
        ...     for part in str(exc).split(": "):
        ...         print(part)
        axis 'model' enumerates differently in layout 'bad' and the main layout
        rank 0's 'model' group is [0, 1] in the main layout but [0, 2] in 'bad' (first difference at member 1
        rank 1 against rank 2); shared axes must hold the same groups
        """
        if not isinstance(name, str) or not name or name == MAIN or name in self._builder.layouts:
            raise InvalidArgumentError(
                f"a layout name must be a new non-empty str other than {MAIN!r}; got {name!r} "
                f"(the grid has {', '.join(map(repr, self._builder.layouts))})"
            )
        pt = _as_proctopo(topology)
        self._check_size(pt, f"layout {name!r}: ")
        main = self._pt
        for axis in pt.get_axis_names():
            if axis not in main.get_axis_names():
                continue
            mine, theirs = main.group_list(0, axis), pt.group_list(0, axis)
            if mine != theirs:
                pos = next(
                    (i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs))
                )
                first = (
                    f"member {pos}: rank {mine[pos]} against rank {theirs[pos]}"
                    if pos < min(len(mine), len(theirs))
                    else f"member {pos}: the groups hold {len(mine)} and {len(theirs)} ranks"
                )
                raise InvalidArgumentError(
                    f"axis {axis!r} enumerates differently in layout {name!r} and the main layout: rank 0's "
                    f"{axis!r} group is {mine[:16]} in the main layout but {theirs[:16]} in {name!r} "
                    f"(first difference at {first}); shared axes must hold the same groups"
                )
        self._builder.layouts[name] = pt

    # ------------------------------------------------------------------ groups
    def get_group(
        self, axes: str | Sequence[str], *, layout: str | None = None, backend: str | None = None
    ) -> Any:
        """This rank's process group over a set of axes of a layout; never creates one.

        The group holds the ranks whose coordinates equal this rank's on every
        other axis of that layout. It is returned when the grid holds it: made
        at construction (each axis, the ``groups=`` entries) or by
        :meth:`create_group`, shared with any layout or family of the same ranks
        and backend, or the parent group itself for all grid ranks. This makes
        no call to the communication library, so any rank may call it at any
        time.

        Args:
            axes: An axis name or a sequence of them; ``[]`` is this rank alone.
            layout: The layout (``None``: the main topology).
            backend: The backend (``None``: the parent's).

        Raises:
            GroupNotCreatedError: the grid holds no such group; the message
                names the :meth:`create_group` call (or the ``groups=`` entry)
                that creates it.
            UnknownAxisError: the layout has no such axis.
            InvalidArgumentError: an axis named twice, or an unknown layout.
            GridDestroyedError: the grid was destroyed.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_group("data").ranks
        [1, 3]
        >>> try:
        ...     grid.get_group(["data", "sequence"])
        ... except GroupNotCreatedError as exc:
        ...     print(str(exc).split("same point: ")[-1])
        grid.create_group(['data', 'sequence']), or build the grid with groups=[['data', 'sequence']]
        """
        self._builder._check_alive()
        handle = self._builder.find(self._builder.key(axes, layout), layout, backend)
        if handle is MISSING:
            raise GroupNotCreatedError(self._not_created(axes, layout, backend))
        return handle

    def _not_created(self, axes: str | Sequence[str], layout: str | None, backend: str | None) -> str:
        """What :class:`GroupNotCreatedError` says: the group, and the call that creates it."""
        listed = [axes] if isinstance(axes, str) else list(axes)
        shown = repr(axes) if isinstance(axes, str) else repr(listed)
        what = f"the grid holds no group over {shown}"
        call = f"grid.create_group({shown}"
        if layout is not None:
            what += f" of layout {layout!r}"
            call += f", layout={layout!r}"
        if backend is not None:
            what += f" with backend {backend!r}"
            call += f", backend={backend!r}"
        call += ")"
        if backend is None:  # groups= entries take the parent's backend
            call += f", or build the grid with groups=[{shown if layout is None else repr((layout, listed))}]"
        return (
            f"{what}: getters never create groups, groups come from the grid's construction or from an "
            f"explicit collective call; create it on every rank of the grid, at the same point: {call}"
        )

    def create_group(
        self, axes: str | Sequence[str], *, layout: str | None = None, backend: str | None = None
    ) -> Any:
        """Create this rank's group over a set of axes (the whole family, one group per rank), and return it.

        A collective, like ``new_group``: every rank of the grid calls it with the
        same arguments, in the same order as its other creation calls. With
        ``verify`` (the default) the ranks first compare a fingerprint of the call,
        as at construction, so a rank asking for another group fails at once with
        :class:`proctopo.TopologyMismatchError` (or, when a rank never calls it,
        :class:`proctopo.GridTimeoutError` after ``timeout``) instead of hanging.
        A group the grid already holds is returned after that check, and nothing
        is created. Afterwards :meth:`get_group` returns it on every rank.

        Args:
            axes: An axis name or a sequence of them; ``[]`` is this rank alone.
            layout: The layout (``None``: the main topology).
            backend: The backend (``None``: the parent's).

        Raises:
            UnknownAxisError: the layout has no such axis (before any collective).
            InvalidArgumentError: an axis named twice, or an unknown layout.
            TopologyMismatchError: ranks asked for different groups.
            GridTimeoutError: a rank did not take part within ``timeout``.
            GroupCreationError: a group could not be created.
            GridDestroyedError: the grid was destroyed.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.create_group(["data", "sequence"]).ranks
        [0, 1, 2, 3]
        >>> grid.get_group(["sequence", "data"]) is grid.create_group(["data", "sequence"])
        True
        """
        self._builder._check_alive()
        key = self._builder.key(axes, layout)  # the axis and layout rules, before any collective
        self._check_creation(
            {
                "create_group": {
                    "layout": MAIN if layout is None else layout,
                    "axes": list(key),
                    "backend": self._comm.normalize_backend(backend),
                }
            }
        )
        return self._builder.get(key, layout, backend)

    def _check_creation(self, call: dict[str, Any]) -> None:
        """The construction's fingerprint check, for one explicit creation call."""
        number = self._creations
        self._creations += 1
        if not self._verify:
            return
        description = {"grid": self._fingerprint, "creation": number, **call}
        pads = verify_and_align(
            self._comm,
            description,
            strategy=self.strategy,
            timeout=self._seconds,
            rule=(
                "Every rank of the grid must make the same create_group and new_groups calls, "
                "with the same arguments, in the same order"
            ),
        )
        self._builder.owned.extend((pad, True) for pad in pads)

    def get_group_ranks(self, axes: str | Sequence[str], *, layout: str | None = None) -> list[int]:
        """Global ranks of :meth:`get_group`, in group order (computed, nothing created).

        >>> from proctopo.testing import RecordingComm
        >>> grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, 4]), comm=RecordingComm(6, 8))
        >>> grid.get_group_ranks("data")
        [4, 5, 6, 7]
        """
        return self._builder.members(self._builder.key(axes, layout), layout)

    def get_axis_rank(self, axes: str | Sequence[str], *, layout: str | None = None) -> int:
        """This rank's position in its group over ``axes`` (for one axis, its coordinate).

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = ProcessGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_axis_rank("data"), grid.get_axis_rank(["sequence", "data"])
        (1, 3)
        """
        key = self._builder.key(axes, layout)
        if isinstance(axes, str):
            return int(getattr(self.layout(layout).get_coord(self.grid_rank), axes))
        return self._builder.members(key, layout).index(self.global_rank)

    def get_axis_world_size(self, axes: str | Sequence[str], *, layout: str | None = None) -> int:
        """Number of ranks in this rank's group over ``axes`` (the product of their sizes)."""
        return self.layout(layout).group_size(axes)

    def new_groups(
        self, rank_lists: Sequence[Sequence[int]], *, backend: str | None = None, name: str | None = None
    ) -> Any:
        """Create an explicit family of disjoint groups, e.g. Megatron's embedding groups.

        A collective: every rank of the grid calls it with the same lists, in
        the same order as its other creation calls, and with ``verify`` the
        ranks first compare a fingerprint of the call, as :meth:`create_group`
        does. Rank sets that already exist are shared, not created again; the
        same family asked for twice is created once.

        Args:
            rank_lists: Disjoint non-empty lists of global ranks of the grid.
                They need not cover every rank.
            backend: The backend (``None``: the parent's).
            name: A label for the family (torch's ``group_desc``).

        Returns:
            This rank's group, or ``None`` when it is in none of the lists.

        Raises:
            InvalidArgumentError: an empty list, a rank twice, or a rank that is
                not a grid rank (checked before any collective).
            TypeError: ``rank_lists`` is not a sequence of sequences of ints.
            TopologyMismatchError: ranks gave different lists, names or backends.
            GridTimeoutError: a rank did not take part within ``timeout``.
            GridDestroyedError: the grid was destroyed.

        >>> from proctopo.testing import RecordingComm
        >>> grid = ProcessGrid(ProcessTopology(["pipe", "data"], [4, 2]), comm=RecordingComm(6, 8))
        >>> grid.new_groups([[0, 6], [1, 7]], name="embedding").ranks
        [0, 6]
        >>> grid.new_groups([[0, 6], [1, 7]]) is grid.new_groups([[1, 7], [6, 0]])
        True
        """
        self._builder._check_alive()
        if isinstance(rank_lists, (str, bytes)) or not isinstance(rank_lists, Sequence):
            raise TypeError(f"rank_lists must be a sequence of lists of global ranks, got {rank_lists!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        parent = self._comm.parent_ranks()
        members = None if parent is None else set(parent)
        seen: dict[int, int] = {}
        rows: list[list[int]] = []
        for i, row in enumerate(rank_lists):
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                raise TypeError(f"rank_lists[{i}] must be a list of global ranks, got {row!r}")
            if not row:
                raise InvalidArgumentError(f"rank_lists[{i}] is empty; every group needs at least one rank")
            ints: list[int] = []
            for r in row:
                if isinstance(r, bool) or not isinstance(r, numbers.Integral):
                    raise TypeError(f"rank_lists[{i}] holds {r!r}, not an integer rank")
                r = int(r)
                if members is None and not 0 <= r < self.world_size:
                    raise InvalidArgumentError(
                        f"rank {r} in rank_lists[{i}] is not in the grid: "
                        f"ranks run from 0 to {self.world_size - 1}"
                    )
                if members is not None and r not in members:
                    raise InvalidArgumentError(
                        f"rank {r} in rank_lists[{i}] is not a member of the grid's process_group"
                    )
                if r in seen:
                    where = "twice in it" if seen[r] == i else f"also in rank_lists[{seen[r]}]"
                    raise InvalidArgumentError(
                        f"rank {r} of rank_lists[{i}] is {where}; the groups must be disjoint"
                    )
                seen[r] = i
                ints.append(r)
            rows.append(ints)
        lists = json.dumps(sorted(sorted(row) for row in rows), separators=(",", ":")).encode()
        self._check_creation(
            {
                "new_groups": {
                    "name": name,
                    "backend": self._comm.normalize_backend(backend),
                    "groups": len(rows),
                    "rank_lists": hashlib.blake2b(lists, digest_size=8).hexdigest(),
                }
            }
        )
        return self._builder.family(rows, backend, name)

    def device_mesh(
        self,
        dims: Sequence[str | Sequence[str]] | None = None,
        *,
        device_type: str | None = None,
        intra_node: Sequence[str | Sequence[str]] = (),
        intra_domain: Sequence[str | Sequence[str]] = (),
    ) -> Any:
        """A ``torch.distributed.device_mesh.DeviceMesh`` over this rank's slice of the grid.

        Built with ``DeviceMesh.from_group`` from groups the grid holds; it creates
        none (a dimension whose group the grid does not hold raises
        :class:`proctopo.GroupNotCreatedError`); ``intra_node``/``intra_domain`` are
        checked first, as :meth:`check_placement` does. See
        :func:`proctopo.device_mesh.device_mesh`.
        """
        from .device_mesh import device_mesh

        return device_mesh(
            self, dims, device_type=device_type, intra_node=intra_node, intra_domain=intra_domain
        )

    @property
    def group_creation_calls(self) -> int:
        """Process-group creation calls this rank made for the grid so far (pads included)."""
        return self._builder.calls

    @property
    def communicators(self) -> int:
        """Distinct live process groups this rank created for the grid (not the parent, not pads)."""
        return self._builder.communicators

    @property
    def destroyed(self) -> bool:
        """Whether :meth:`destroy` was called."""
        return self._builder.destroyed

    def destroy(self) -> None:
        """Destroy every process group this grid created, and nothing else.

        Never the default group nor a ``process_group`` given to the grid. Call
        it on every rank of the grid; it waits for no other rank. A second call
        does nothing; afterwards every method that returns a process group
        raises :class:`proctopo.GridDestroyedError` (ranks and sizes still
        answer). A grid built again later gets fresh group names, never those of
        the destroyed groups (see :class:`proctopo.comm.NameLedger`).

        >>> from proctopo.testing import RecordingComm
        >>> comm = RecordingComm(0, 4)
        >>> grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, 2]), comm=comm)
        >>> grid.destroy(); grid.destroy()
        >>> comm.calls["destroy"], comm.live_groups()
        (2, [])
        """
        self._builder.destroy()

    def __repr__(self) -> str:
        shape = self._pt.shape_text()
        layouts = [n for n in self._builder.layouts if n != MAIN]
        extra = f"; layouts {layouts}" if layouts else ""
        return (
            f"{type(self).__name__}({shape}; global rank {self.global_rank} at {tuple(self.coord)}; "
            f"group_creation={self.strategy!r}{extra})"
        )


class PipelineParallelGrid:
    """Process groups for every axis of a topology; DeepSpeed's ``mpu``.

    Every rank of the grid must build it, at the same point of the program
    (it is a collective, like ``torch.distributed.new_group``).

    Args:
        topology: A :class:`proctopo.ProcessTopology` (or DeepSpeed topology)
            with at least the axes ``pipe`` and ``data``. ``None`` splits the
            world size's prime factors alternately into pipe and data, as
            DeepSpeed does.
        process_group: Lay the topology over this group's ranks instead of the
            whole world (grid rank ``i`` is the group's ``i``-th rank).
        group_creation: ``"auto"`` (default), ``"global"``, ``"local"`` or
            ``"split"``; see :mod:`proctopo.groups`.
        verify: Compare a fingerprint of the settings across ranks before
            creating groups (one small all-reduce). All ranks must agree on it.
        timeout: Seconds (or a ``timedelta``) for the fingerprint exchange and
            each group creation, finite, above 0 and below ``timedelta.max``;
            ``None`` waits at most 600 s for the exchange and uses torch's
            default for group creation.
        groups: Extra sets of axes whose groups are created with the others,
            e.g. ``[("data", "context")]`` (any entry :class:`ProcessGrid` takes).
            Every axis's group, DeepSpeed's model-parallel and slice groups and,
            with a ``sequence`` axis, the sequence-data group are always created.
        layouts: Other factorizations of the same ranks, ``{name: topology}``
            (see :meth:`ProcessGrid.add_layout`).
        comm: The communication layer (default: ``torch.distributed`` via
            :class:`proctopo.comm.TorchComm`); to simulate one rank of any
            world without torch, pass a :class:`proctopo.testing.RecordingComm`.
            Excludes ``process_group``.
        reorder: Only ``False``: the grid keeps DeepSpeed's identity mapping
            (grid rank ``r`` is global rank ``r``); anything else is refused.

    Raises:
        GridSizeError: the topology's size is not the number of ranks.
        UnknownAxisError: the topology lacks ``pipe`` or ``data``, or an extra
            group names an axis it does not have.
        InvalidArgumentError: an unknown ``group_creation``, a ``timeout`` that
            is not finite and positive, both ``process_group`` and ``comm``, or
            ``reorder`` other than ``False``.
        GroupCreationError: the strategy cannot work on this backend, or a
            group could not be created.
        TopologyMismatchError: ranks were given different settings.
        GridTimeoutError: a rank did not join the fingerprint exchange in time.

    >>> from proctopo.testing import RecordingComm
    >>> topo = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 2, 2])
    >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(rank=5, world_size=8))
    >>> grid.stage_id, grid.data_parallel_id, grid.get_slice_parallel_rank()
    (1, 0, 1)
    >>> grid.dp_group, grid.pp_group, grid.slice_group
    ([5, 7], [1, 5], [4, 5])
    >>> grid.stage_to_global(0)
    1
    """

    def __init__(
        self,
        topology: Any = None,
        process_group: Any = None,
        *,
        group_creation: str = "auto",
        verify: bool = True,
        timeout: datetime.timedelta | float | None = None,
        groups: Sequence[GroupSpec] = (),
        layouts: Mapping[str, Any] | None = None,
        comm: Comm | None = None,
        reorder: bool = False,
    ) -> None:
        if reorder is not False:
            raise InvalidArgumentError(
                f"PipelineParallelGrid(reorder={reorder!r}): DeepSpeed's grid maps grid rank r to global "
                "rank r (stage_to_global, the pipeline's send and receive peers and its checkpoints rely on "
                "it), so it keeps that identity mapping and cannot reorder; build a ProcessGrid with "
                "reorder=True for a grid placed by host"
            )
        check_timeout(timeout)  # a bad timeout fails before torch is touched
        comm = _make_comm(process_group, comm)
        if topology is None:
            num_pp = num_dp = 1
            for idx, prime in enumerate(prime_factors(comm.grid_size())):
                if idx % 2 == 0:
                    num_pp *= int(prime)
                else:
                    num_dp *= int(prime)
            topology = PipeDataParallelTopology(num_pp=num_pp, num_dp=num_dp)
        self._topo = topology
        pt = _as_proctopo(topology)
        self._pt = pt
        axes = pt.get_axis_names()
        missing = [a for a in ("pipe", "data") if a not in axes]
        if missing:
            raise UnknownAxisError(
                f"PipelineParallelGrid needs the axes 'pipe' and 'data'; the topology has {axes} "
                f"(missing {missing}). Add a missing axis with size 1, e.g. "
                f"ProcessTopology(axes={missing + axes}, dims={[1] * len(missing) + pt.dims})"
            )
        self.data_parallel_size: int = max(pt.get_dim("data"), 1)
        self.pipe_parallel_size: int = max(pt.get_dim("pipe"), 1)
        self.model_parallel_size: int = max(pt.get_dim("model"), 1)
        self.slice_parallel_size: int = self.model_parallel_size

        # The fixed creation order: one group per axis (ProcessGrid's own), DeepSpeed's
        # model-parallel group (every axis but data), the slice group, DeepSpeed's
        # sequence-data group when there is a sequence axis, then the caller's extras.
        ds_model_axes = [a for a in axes if a != "data"]
        slice_axes: str | list[str] = "model" if self.model_parallel_size > 1 else []
        sequence_data: list[GroupSpec] = [["sequence", "data"]] if "sequence" in axes else []
        grid = ProcessGrid(
            pt,
            group_creation=group_creation,
            verify=verify,
            timeout=timeout,
            groups=[ds_model_axes, slice_axes, *sequence_data, *groups],
            layouts=layouts,
            comm=comm,
        )
        self._grid = grid
        self._comm = comm
        self.global_rank: int = grid.global_rank
        self.world_size: int = grid.world_size
        self.grid_rank: int = grid.grid_rank
        self.strategy: str = grid.strategy

        coord = pt.get_coord(self.grid_rank)
        self.stage_id: int = int(coord.pipe)
        self.data_parallel_id: int = int(coord.data)

        ds_ranks = sorted(grid.get_group_ranks(ds_model_axes))
        hold = grid._builder.hold  # the parent group is asked for when handed out, never kept
        self._ds_model_proc_group: Any = hold(grid.get_group(ds_model_axes))
        self.ds_model_rank: int = ds_ranks.index(self.global_rank)
        self.ds_model_world_size: int = len(ds_ranks)

        self.dp_group: list[int] = grid.get_group_ranks("data")
        self._dp_proc_group: Any = hold(grid.get_group("data"))
        self.is_first_stage: bool = self.stage_id == 0
        self.is_last_stage: bool = self.stage_id == (self.pipe_parallel_size - 1)
        self.pp_group: list[int] = grid.get_group_ranks("pipe")
        self._pp_proc_group: Any = hold(grid.get_group("pipe"))
        self.slice_group: list[int] = grid.get_group_ranks(slice_axes)
        self._slice_proc_group: Any = hold(grid.get_group(slice_axes))
        self.mp_group: list[int] = []
        self._lazy: dict[str, list[list[int]]] = {}

    # ------------------------------------------------------------ the generic grid
    @property
    def process_grid(self) -> ProcessGrid:
        """The :class:`ProcessGrid` under this grid (its layouts, families, DeviceMesh export)."""
        return self._grid

    def _alive(self, handle: Any) -> Any:
        builder = self._grid._builder
        builder._check_alive()
        return builder.resolve(handle)

    @property
    def dp_proc_group(self) -> Any:
        """The data-parallel process group."""
        return self._alive(self._dp_proc_group)

    @property
    def pp_proc_group(self) -> Any:
        """The pipeline process group."""
        return self._alive(self._pp_proc_group)

    @property
    def slice_proc_group(self) -> Any:
        """The process group of the ``model`` axis (this rank alone without one)."""
        return self._alive(self._slice_proc_group)

    @property
    def ds_model_proc_group(self) -> Any:
        """DeepSpeed's model-parallel process group (every axis but ``data``)."""
        return self._alive(self._ds_model_proc_group)

    def layout(self, name: str | None = None) -> ProcessTopology:
        """See :meth:`ProcessGrid.layout`."""
        return self._grid.layout(name)

    def add_layout(self, name: str, topology: Any) -> None:
        """See :meth:`ProcessGrid.add_layout`."""
        self._grid.add_layout(name, topology)

    def new_groups(
        self, rank_lists: Sequence[Sequence[int]], *, backend: str | None = None, name: str | None = None
    ) -> Any:
        """See :meth:`ProcessGrid.new_groups`."""
        return self._grid.new_groups(rank_lists, backend=backend, name=name)

    def device_mesh(
        self,
        dims: Sequence[str | Sequence[str]] | None = None,
        *,
        device_type: str | None = None,
        intra_node: Sequence[str | Sequence[str]] = (),
        intra_domain: Sequence[str | Sequence[str]] = (),
    ) -> Any:
        """See :meth:`ProcessGrid.device_mesh`."""
        return self._grid.device_mesh(
            dims, device_type=device_type, intra_node=intra_node, intra_domain=intra_domain
        )

    @property
    def communicators(self) -> int:
        """See :attr:`ProcessGrid.communicators`."""
        return self._grid.communicators

    @property
    def destroyed(self) -> bool:
        """Whether :meth:`destroy` was called."""
        return self._grid.destroyed

    def destroy(self) -> None:
        """See :meth:`ProcessGrid.destroy`."""
        self._grid.destroy()

    # ------------------------------------------------------------ whole-grid lists
    def _table(self, axis: str) -> list[list[int]]:
        import numpy as np

        if axis not in self._pt.get_axis_names():
            return []
        table = np.asarray(self._pt.groups(axis))
        return self._grid._builder.to_global(table).tolist()  # type: ignore[no-any-return]

    def _cached(self, name: str, make: Callable[[], list[list[int]]]) -> list[list[int]]:
        value = self._lazy.get(name)
        if value is None:
            value = self._lazy[name] = make()
        return value

    @property
    def dp_groups(self) -> list[list[int]]:
        """Every data-parallel group (``get_axis_comm_lists('data')``), built on first use."""
        return self._cached("dp_groups", lambda: self._table("data"))

    @property
    def pipe_groups(self) -> list[list[int]]:
        """Every pipeline group (``get_axis_comm_lists('pipe')``), built on first use."""
        return self._cached("pipe_groups", lambda: self._table("pipe"))

    @property
    def model_groups(self) -> list[list[int]]:
        """Every model (tensor-slicing) group (``get_axis_comm_lists('model')``), built on first use."""
        return self._cached("model_groups", lambda: self._table("model"))

    @property
    def p2p_groups(self) -> list[list[int]]:
        """``[rank, next stage's rank]`` for every rank, wrapping at the last stage.

        Built in O(N) with NumPy on first use (DeepSpeed's loop is O(N^2)).
        """
        return self._cached("p2p_groups", self._build_p2p_groups)

    def _build_p2p_groups(self) -> list[list[int]]:
        import numpy as np

        # Each rank's buddy is the next member of its pipeline group, wrapping at the end.
        table = np.asarray(self._pt.groups("pipe"))
        buddy = np.empty(self.world_size, dtype=np.int64)
        buddy[table] = np.roll(table, -1, axis=1)
        pairs = np.stack([np.arange(self.world_size, dtype=np.int64), buddy], axis=1)
        return self._grid._builder.to_global(pairs).tolist()  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ DeepSpeed
    def get_stage_id(self) -> int:
        """This rank's pipeline stage (its ``pipe`` coordinate)."""
        return self.stage_id

    def get_data_parallel_id(self) -> int:
        """This rank's ``data`` coordinate."""
        return self.data_parallel_id

    def _is_grid_valid(self) -> bool:
        return self._pt.world_size() == self.world_size

    def stage_to_global(self, stage_id: int, **kwargs: int) -> int:
        """Global rank of the given stage with this rank's other coordinates.

        Args:
            stage_id: The pipeline stage.
            **kwargs: Other coordinates to replace, e.g. ``data=0``.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(axes=["pipe", "data"], dims=[4, 2])
        >>> PipelineParallelGrid(topo, comm=RecordingComm(3, 8)).stage_to_global(3, data=0)
        6
        """
        me = self._pt.get_coord(self.grid_rank)
        rank = int(self._pt.get_rank(**me._replace(pipe=stage_id, **kwargs)._asdict()))
        return self._to_global(rank)

    def _to_global(self, grid_rank: int) -> int:
        parent = self._grid._builder.parent
        return grid_rank if parent is None else parent[grid_rank]

    def topology(self) -> Any:
        """The topology given to the grid (or the default one it made)."""
        return self._topo

    def get_global_rank(self) -> int:
        """This process's global rank."""
        return self.global_rank

    def get_pipe_parallel_rank(self) -> int:
        """The pipeline stage of this rank."""
        return self.stage_id

    def get_pipeline_model_parallel_rank(self) -> int:
        """Megatron name of :meth:`get_pipe_parallel_rank`."""
        return self.stage_id

    def get_pipe_parallel_world_size(self) -> int:
        """Number of pipeline stages."""
        return self.pipe_parallel_size

    def get_pipeline_model_parallel_world_size(self) -> int:
        """Megatron name of :meth:`get_pipe_parallel_world_size`."""
        return self.pipe_parallel_size

    def get_pipe_parallel_group(self) -> Any:
        """The group of this rank's pipeline (same coordinates except ``pipe``)."""
        return self.pp_proc_group

    def get_pipeline_model_parallel_group(self) -> Any:
        """Megatron name of :meth:`get_pipe_parallel_group`."""
        return self.pp_proc_group

    def get_data_parallel_rank(self) -> int:
        """This rank's ``data`` coordinate."""
        return self.data_parallel_id

    def get_data_parallel_world_size(self) -> int:
        """Number of data-parallel replicas."""
        return self.data_parallel_size

    def get_data_parallel_group(self) -> Any:
        """The group of ranks that differ from this one only in ``data``."""
        return self.dp_proc_group

    def get_data_parallel_group_ranks(self) -> list[int]:
        """Global ranks of :meth:`get_data_parallel_group`."""
        return self.dp_group

    def get_model_parallel_rank(self) -> int:
        """Rank in DeepSpeed's model-parallel group (every axis but ``data``)."""
        return self.ds_model_rank

    def get_model_parallel_world_size(self) -> int:
        """Size of DeepSpeed's model-parallel group (every axis but ``data``)."""
        return self.ds_model_world_size

    def get_model_parallel_group(self) -> Any:
        """DeepSpeed's model-parallel group: ranks with this rank's ``data`` coordinate."""
        return self.ds_model_proc_group

    def get_slice_parallel_rank(self) -> int:
        """This rank's ``model`` coordinate (0 without a model axis)."""
        if "model" in self._pt.get_axis_names():
            return int(self._pt.get_coord(self.grid_rank).model)
        return 0

    def get_tensor_model_parallel_rank(self) -> int:
        """Megatron name of :meth:`get_slice_parallel_rank`."""
        return self.get_slice_parallel_rank()

    def get_slice_parallel_world_size(self) -> int:
        """Size of the ``model`` axis (1 without one)."""
        return self.slice_parallel_size

    def get_tensor_model_parallel_world_size(self) -> int:
        """Megatron name of :meth:`get_slice_parallel_world_size`."""
        return self.slice_parallel_size

    def get_slice_parallel_group(self) -> Any:
        """Group over the ``model`` axis (this rank alone without model parallelism)."""
        return self.slice_proc_group

    def get_tensor_model_parallel_group(self) -> Any:
        """Megatron name of :meth:`get_slice_parallel_group`."""
        return self.slice_proc_group

    def get_tensor_model_parallel_src_rank(self) -> int:
        """Global rank of ``model`` coordinate 0 in this rank's tensor-parallel group."""
        return self.slice_group[0]

    # ------------------------------------------------------------------ any axes
    @property
    def coord(self) -> Any:
        """This rank's coordinates (a ``ProcessCoord`` namedtuple).

        >>> from proctopo.testing import RecordingComm
        >>> PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, 2]), comm=RecordingComm(2, 4)).coord
        ProcessCoord(pipe=1, data=0)
        """
        return self._pt.get_coord(self.grid_rank)

    def get_axis_rank(self, axes: str | Sequence[str], *, layout: str | None = None) -> int:
        """This rank's position in its group over ``axes``.

        For one axis that is the coordinate along it; for several, the index in
        :meth:`get_group_ranks` (row-major over those axes).

        Raises:
            UnknownAxisError: the topology has no such axis.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_axis_rank("data"), grid.get_axis_rank(["sequence", "data"])
        (1, 3)
        """
        return self._grid.get_axis_rank(axes, layout=layout)

    def get_axis_world_size(self, axes: str | Sequence[str], *, layout: str | None = None) -> int:
        """Number of ranks in this rank's group over ``axes`` (the product of their sizes).

        Raises:
            UnknownAxisError: the topology has no such axis.
        """
        return self._grid.get_axis_world_size(axes, layout=layout)

    def get_group(
        self, axes: str | Sequence[str], *, layout: str | None = None, backend: str | None = None
    ) -> Any:
        """This rank's process group over a set of axes; never creates one (:meth:`ProcessGrid.get_group`).

        The group holds the ranks whose coordinates equal this rank's on every
        other axis. Groups made when the grid was built, or later with
        :meth:`create_group`, are returned; any other raises
        :class:`proctopo.GroupNotCreatedError`, which names the call that creates it.

        Args:
            axes: An axis name or a sequence of them; ``[]`` is this rank alone.
            layout: The layout (``None``: the main topology).
            backend: The backend (``None``: the parent's).

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_group(["data", "sequence"]).ranks  # DeepSpeed's sequence-data group, always made
        [0, 1, 2, 3]
        """
        return self._grid.get_group(axes, layout=layout, backend=backend)

    def create_group(
        self, axes: str | Sequence[str], *, layout: str | None = None, backend: str | None = None
    ) -> Any:
        """Create the group over a set of axes as a checked collective (:meth:`ProcessGrid.create_group`).

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "context"], [2, 2, 2])
        >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.create_group(["data", "context"]).ranks
        [0, 1, 2, 3]
        >>> grid.get_context_data_parallel_group().ranks
        [0, 1, 2, 3]
        """
        return self._grid.create_group(axes, layout=layout, backend=backend)

    def get_group_ranks(self, axes: str | Sequence[str], *, layout: str | None = None) -> list[int]:
        """Global ranks of :meth:`get_group` (computed, nothing created).

        >>> from proctopo.testing import RecordingComm
        >>> grid = PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, 4]), comm=RecordingComm(6, 8))
        >>> grid.get_group_ranks("data")
        [4, 5, 6, 7]
        """
        return self._grid.get_group_ranks(axes, layout=layout)

    @property
    def group_creation_calls(self) -> int:
        """``new_group``/``split_group`` calls this rank made for the grid so far."""
        return self._grid.group_creation_calls

    def _axes_of(self, spec: str) -> str | list[str] | None:
        pt = self.__dict__.get("_pt")
        if pt is None:
            return None
        names = pt.get_axis_names()
        if spec in names:
            return spec
        parts = spec.split("_")
        if len(parts) > 1 and all(p in names for p in parts) and len(set(parts)) == len(parts):
            return parts  # e.g. get_sequence_data_parallel_group: sequence and data together
        return None

    def __getattr__(self, name: str) -> Any:
        # get_<axes>_parallel_{rank,world_size,group,group_ranks} for any axis of the
        # topology, or several joined by '_' (DeepSpeed's get_sequence_data_parallel_*).
        if not name.startswith("_"):
            m = _GETTER.fullmatch(name)
            if m is not None:
                axes, what = self._axes_of(m.group(1)), m.group(2)
                if axes is not None:
                    if what == "rank":
                        return lambda: self.get_axis_rank(axes)
                    if what == "world_size":
                        return lambda: self.get_axis_world_size(axes)
                    if what == "group":
                        return lambda: self.get_group(axes)
                    return lambda: self.get_group_ranks(axes)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        pt = self.__dict__.get("_pt")
        if pt is not None:
            for a in pt.get_axis_names():
                for what in ("rank", "world_size", "group", "group_ranks"):
                    names.add(f"get_{a}_parallel_{what}")
        return sorted(names)

    def __repr__(self) -> str:
        shape = self._pt.shape_text()
        return (
            f"PipelineParallelGrid({shape}; global rank {self.global_rank} at "
            f"{tuple(self.coord)}; group_creation={self.strategy!r})"
        )
