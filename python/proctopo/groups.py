"""Process-group creation for :class:`proctopo.ProcessGrid` (and :class:`proctopo.PipelineParallelGrid`).

This module turns "the group of this rank over these axes" into process-group
API calls: it chooses the strategy (:func:`resolve_strategy`), checks that all
ranks were given the same settings (:func:`verify_and_align`) and creates the
groups (:class:`GroupBuilder`). It reaches the communication library only
through a :class:`proctopo.comm.Comm` (``torch.distributed`` via
:class:`proctopo.comm.TorchComm`, or :class:`proctopo.testing.RecordingComm` to
play one rank of a simulated world), and imports no torch itself.

Strategies (``group_creation=``):

``"global"``
    Every rank calls ``new_group`` for every group, in one fixed order
    (DeepSpeed's behaviour; O(number of groups) calls per rank).
``"local"``
    Each rank creates only the groups it belongs to, with
    ``new_group(..., use_local_synchronization=True)``: one call per distinct
    group kind, O(axes) calls per rank.
``"split"``
    One ``split_group`` per group kind on the parent group. Needs a backend that
    can split communicators (NCCL) and a default group bound to a device.
``"auto"``
    ``"split"`` where the backend can split, ``"global"`` for MPI (which cannot
    synchronise locally) or where a bound device makes local creation unsafe,
    ``"local"`` otherwise.

:data:`CPU_STRATEGIES` are those a backend that cannot split communicators (gloo
on CPU) can run:

>>> CPU_STRATEGIES
('auto', 'global', 'local')
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from .comm import Comm
from .errors import (
    GridDestroyedError,
    GroupCreationError,
    InvalidArgumentError,
    ProctopoError,
    TopologyMismatchError,
)

if TYPE_CHECKING:
    from .topology import ProcessTopology

__all__ = [
    "CPU_STRATEGIES",
    "DEFAULT_VERIFY_TIMEOUT",
    "MAIN",
    "MISSING",
    "PARENT",
    "STRATEGIES",
    "GroupBuilder",
    "decode_hosts",
    "encode_location",
    "fingerprint",
    "one_host",
    "resolve_strategy",
    "verify_and_align",
    "verify_and_locate",
]

#: Accepted values of ``group_creation``.
STRATEGIES = ("auto", "global", "local", "split")

#: The strategies that work on a backend that cannot split communicators (gloo on
#: CPU): every one of :data:`STRATEGIES` but ``"split"``, which needs NCCL.
CPU_STRATEGIES = tuple(s for s in STRATEGIES if s != "split")

#: Seconds to wait for the fingerprint exchange when no timeout is given.
DEFAULT_VERIFY_TIMEOUT = 600.0


# ------------------------------------------------------------------ strategy, verify


def resolve_strategy(requested: str, comm: Comm, *, whole_world: bool) -> str:
    """The strategy to use for ``requested`` on ``comm``.

    Args:
        requested: One of :data:`STRATEGIES`.
        comm: The communication layer.
        whole_world: Whether the parent group is the whole default group.

    Returns:
        ``"global"``, ``"local"`` or ``"split"``.

    Raises:
        InvalidArgumentError: ``requested`` is not a known strategy (also a ValueError).
        GroupCreationError: the strategy cannot work here; the message says why
            and what to use instead.

    >>> from proctopo.testing import RecordingComm
    >>> resolve_strategy("auto", RecordingComm(0, 8), whole_world=True)
    'local'
    """
    if requested not in STRATEGIES:
        raise InvalidArgumentError(
            f"group_creation must be one of {', '.join(map(repr, STRATEGIES))}; got {requested!r}"
        )
    split_why = comm.split_support()
    local_why = comm.local_support()
    if requested == "auto":
        if split_why is None:
            return "split"
        if local_why is None:
            return "local"
        if not whole_world:
            raise GroupCreationError(
                f"no strategy can build groups inside this process_group: 'split' is out ({split_why}), "
                f"'local' is out ({local_why}) and 'global' needs every rank of the default group"
            )
        return "global"
    if requested == "split" and split_why is not None:
        raise GroupCreationError(
            f"group_creation='split' is not possible here: {split_why}. "
            "Use group_creation='local' (or 'auto', which picks the fastest strategy that works)"
        )
    if requested == "local" and local_why is not None:
        raise GroupCreationError(f"group_creation='local' is not possible here: {local_why}")
    if requested == "global" and not whole_world:
        raise GroupCreationError(
            "group_creation='global' makes every rank of the default group call new_group for every "
            "group, but only the members of process_group build this grid; "
            "use group_creation='local' or 'auto'"
        )
    return requested


def fingerprint(description: dict[str, Any]) -> int:
    """A 62-bit hash of a grid description (JSON with sorted keys).

    >>> fingerprint({"axes": ["pipe"], "dims": [2]}) == fingerprint({"dims": [2], "axes": ["pipe"]})
    True
    """
    blob = json.dumps(description, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little") & ((1 << 62) - 1)


#: What every rank must do alike, said when the construction's descriptions differ.
BUILD_RULE = (
    "Every rank must build the grid with the same topology, layouts, process group, group_creation and "
    "extra groups"
)


def _describe_difference(mine: dict[str, Any], descriptions: list[dict[str, Any]], rule: str) -> str:
    base = descriptions[0]
    differing = [i for i, d in enumerate(descriptions) if d != base]
    first = differing[0]
    other = descriptions[first]
    fields = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
    detail = "; ".join(
        f"{k}: grid rank 0 has {base.get(k)!r}, grid rank {first} has {other.get(k)!r}" for k in fields
    )
    shown = ", ".join(map(str, differing[:8])) + (", ..." if len(differing) > 8 else "")
    return (
        f"ranks of one grid were given different settings ({len(differing)} of {len(descriptions)} ranks "
        f"differ from grid rank 0: {shown}). {detail}. This rank has {mine!r}. {rule}"
    )


#: Bytes of a host name carried in the exchange (a longer one is shortened to a prefix
#: and a hash); 7 bytes a word keep every word non-negative, as a maximum needs.
_NAME_BYTES = 63
_WORD_BYTES = 7
_HOST_WORDS = _NAME_BYTES // _WORD_BYTES
#: Words each grid rank fills in the exchange: its host name, then a hash of its domain identity.
LOCATION_WORDS = _HOST_WORDS + 1


def encode_location(host: str, domain: str | None) -> list[int]:
    """The :data:`LOCATION_WORDS` non-negative words one rank puts in the set-up exchange.

    >>> decode_hosts([encode_location("node1", None), encode_location("n" * 80, "rack7")])[0][0]
    'node1'
    """
    raw = b"\x01" + host.encode("utf-8", "surrogateescape")  # the marker tells "" from not reported
    if len(raw) > _NAME_BYTES:
        digest = hashlib.blake2b(raw, digest_size=8).hexdigest()
        raw = raw[: _NAME_BYTES - 17] + b"~" + digest.encode()
    raw = raw.ljust(_NAME_BYTES, b"\x00")
    words = [int.from_bytes(raw[i : i + _WORD_BYTES], "big") for i in range(0, _NAME_BYTES, _WORD_BYTES)]
    if domain is None:
        return [*words, 0]
    hashed = int.from_bytes(hashlib.blake2b(domain.encode(), digest_size=8).digest(), "little")
    return [*words, (hashed & ((1 << 62) - 1)) + 1]


def decode_hosts(blocks: Any) -> tuple[list[str], Any, Any] | None:
    """Host names, node of each rank and domain of each rank from the exchange's location blocks.

    Args:
        blocks: One row of :data:`LOCATION_WORDS` words per grid rank.

    Returns:
        ``(hosts, node_of_rank, domain_of_rank)``: the distinct host names numbered
        as first seen, each rank's index into them (a NumPy array), and each rank's
        domain numbered as first seen, or ``None`` when some rank gave none;
        ``None`` instead of all three when some rank reported no host (a comm
        that does not play the exchange's location blocks).

    >>> hosts, nodes, domains = decode_hosts([encode_location(h, None) for h in "abab"])
    >>> hosts, nodes.tolist(), domains
    (['a', 'b'], [0, 1, 0, 1], None)
    """
    import numpy as np

    arr = np.asarray(blocks, dtype=np.int64).reshape(-1, LOCATION_WORDS)
    if np.count_nonzero(arr[:, 0]) < len(arr):  # every reported host starts with the marker byte
        return None

    def first_seen(rows: Any) -> tuple[Any, Any]:
        rows = np.ascontiguousarray(rows)
        # Each row as one opaque value: unique over them is a 1-D sort, not a row-wise one.
        keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # unique rows renumbered by first appearance
        rank_of = np.empty_like(order)
        rank_of[order] = np.arange(order.size)
        return rank_of[inverse.reshape(-1)], first[order]

    nodes, firsts = first_seen(arr[:, :_HOST_WORDS])
    hosts = []
    for i in firsts.tolist():
        raw = b"".join(int(w).to_bytes(_WORD_BYTES, "big") for w in arr[i, :_HOST_WORDS].tolist())
        raw = raw.rstrip(b"\x00")
        hosts.append(raw[1:].decode("utf-8", "surrogateescape"))
    domain_words = arr[:, _HOST_WORDS]
    domains = None if np.count_nonzero(domain_words) < len(arr) else first_seen(domain_words[:, None])[0]
    return hosts, nodes, domains


def one_host(blocks: Any) -> bool:
    """Whether every rank's location block from the exchange names the same host.

    >>> one_host([encode_location("a", None), encode_location("a", "x")])
    True
    """
    import numpy as np

    hosts = np.asarray(blocks, dtype=np.int64).reshape(-1, LOCATION_WORDS)[:, :_HOST_WORDS]
    return not np.count_nonzero(hosts != hosts[0])


def verify_and_align(
    comm: Comm,
    description: dict[str, Any],
    *,
    strategy: str,
    timeout: float | None,
    rule: str = BUILD_RULE,
) -> list[Any]:
    """Compare ``description`` across the parent group and even out group counts.

    :func:`verify_and_locate` without the placement: one exchange of the five
    header words (the maximum of the fingerprint, of its negation and of the group
    count). Each
    later creation call (:meth:`proctopo.ProcessGrid.create_group`,
    :meth:`proctopo.ProcessGrid.new_groups`) makes this check.

    Returns:
        The single-rank groups this rank created to even out the counts.

    Raises:
        TopologyMismatchError: the descriptions differ.
        GridTimeoutError: a rank did not take part within ``timeout``.
        PeerLostError: a rank's connection closed during the exchange.
    """
    pads, _ = verify_and_locate(
        comm, description, strategy=strategy, timeout=timeout, rule=rule, stacklevel=4
    )
    return pads


def verify_and_locate(
    comm: Comm,
    description: dict[str, Any],
    *,
    strategy: str,
    timeout: float | None,
    rule: str = BUILD_RULE,
    location: tuple[str, str | None] | None = None,
    stacklevel: int = 3,
) -> tuple[list[Any], Any]:
    """Compare ``description`` across the parent group, even out group counts, and learn where ranks run.

    One exchange (:meth:`proctopo.comm.Comm.exchange`) does it all: every rank
    learns the maximum of the headers, ``[fingerprint, -fingerprint, count,
    -count, unknown]``, so every rank learns at once whether all agree (equal
    maxima of ``h`` and ``-h``); with ``location``, each grid rank also gives a
    block of :data:`LOCATION_WORDS` words with its host and domain identity, and
    every rank gets every rank's block. Without it the exchange carries the five
    header words alone. Only when the fingerprints differ are the descriptions
    gathered so that the error names the difference (and ends with ``rule``,
    what every rank must do alike); every rank raises the same error, none waits
    forever. The grid's construction makes this exchange.

    For ``"local"`` and ``"split"``, ranks that have registered fewer process
    groups than others create single-rank groups until the counts agree, so the
    names torch derives for locally synchronised groups match between members.

    Returns:
        The single-rank groups this rank created to even out the counts (the
        grid owns them and destroys them with its other groups), and, with
        ``location``, every grid rank's location block, one row per grid rank,
        for :func:`decode_hosts` (``None`` without ``location``, or when some
        rank reported no host: a comm that does not play the location blocks).

    Raises:
        TopologyMismatchError: the descriptions differ.
        GridTimeoutError: a rank did not take part within ``timeout``.
        PeerLostError: a rank's connection closed during the exchange.
    """
    wait = DEFAULT_VERIFY_TIMEOUT if timeout is None else timeout
    fp = fingerprint(description)
    count = comm.group_count()
    known = count is not None
    c = count if count is not None else 0
    header = [fp, -fp, c, -c, 0 if known else 1]
    block = [] if location is None else encode_location(*location)
    reduced, blocks = comm.exchange(header, block, timeout=wait)
    hi_fp, neg_lo_fp, hi_c, neg_lo_c, any_unknown = (int(v) for v in reduced)
    if hi_fp != -neg_lo_fp:
        gathered = comm.allgather_bytes(json.dumps(description, sort_keys=True).encode(), timeout=wait)
        descriptions = [json.loads(b.decode()) for b in gathered]
        raise TopologyMismatchError(_describe_difference(description, descriptions, rule))
    import numpy as np

    # Every reported host starts with a marker word (counted, not .all(): NumPy's reduction
    # methods cost a first-call import that the grid's construction need not pay).
    where = None if location is None or np.count_nonzero(blocks[:, 0]) < len(blocks) else blocks
    if strategy in ("local", "split") and not any_unknown and hi_c != -neg_lo_c:
        missing = hi_c - c
        if missing:
            warnings.warn(
                f"this rank has created {c} process groups, others up to {hi_c}; torch names locally "
                f"synchronised groups from that count, so proctopo creates {missing} single-rank "
                "group(s) to even it out. Create groups on every rank alike to avoid this",
                RuntimeWarning,
                stacklevel=stacklevel,
            )
        return [comm.pad_group() for _ in range(missing)], where
    return [], where


# --------------------------------------------------------------------------- builder

#: Name of the main layout (the grid's own topology); ``None`` means it too.
MAIN = "main"

#: A set of ranks as the registry keys it: (backend or None for the parent's, sorted global ranks).
SetKey = tuple[Optional[str], tuple[int, ...]]


class _Missing:
    """The type of :data:`MISSING`."""

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`GroupBuilder.find` returns for a group the grid does not hold.
MISSING: Any = _Missing()


class _Parent:
    """The type of :data:`PARENT`."""

    def __repr__(self) -> str:
        return "PARENT"


#: What the builder keeps in place of the parent group: the group itself is asked of
#: the comm when handed out, so that no grid keeps the default group alive (see
#: :meth:`proctopo.comm.TorchComm.parent`).
PARENT: Any = _Parent()


class GroupBuilder:
    """Creates and shares the process groups of one grid.

    Groups come in *families*: the groups of a set of axes of a layout (one per
    combination of the other coordinates; every rank is in exactly one), or an
    explicit list of disjoint rank lists (:meth:`family`). Every family is
    created in one pass that every rank of the grid makes alike.

    Identical rank sets share one group, wherever they come from: the registry
    is keyed by (backend, sorted global ranks). Whether a whole family is a
    duplicate is decided from data every rank holds alike: the groups of a set
    of axes of a row-major layout tile the grid ranks by translates of the
    group that holds grid rank 0, and such a tiling is unique, so two
    (layout, axes) families are the same partition exactly when the groups of
    grid rank 0 are equal (an O(group size) test); an explicit family is a
    duplicate when its sorted lists are equal. Every rank knows every family,
    so every rank also finds alike which rank sets of a new family exist
    already. When all of them do, nothing is created anywhere. Otherwise the
    members of existing sets reuse their group and, with a locally synchronised
    strategy, register a single-rank *pad* group instead, so that every rank's
    count of registered groups (which torch names such groups from) stays in
    step with the others; a rank in none of the family's groups pads too.

    Args:
        comm: The communication layer.
        topo: The main topology, laid over the grid ranks; it must have as many
            ranks as ``comm``'s parent group.
        strategy: ``"global"``, ``"local"`` or ``"split"`` (already resolved).
        timeout: Seconds for each creation call, ``None`` for torch's default.

    >>> from proctopo import ProcessTopology
    >>> from proctopo.testing import RecordingComm
    >>> builder = GroupBuilder(RecordingComm(5, 8), ProcessTopology(["pipe", "data", "model"], [2, 1, 4]),
    ...                        "local", None)
    >>> builder.key(["model", "data", "pipe"]), builder.key("data")
    (('pipe', 'model'), ())
    >>> builder.members(builder.key("model"))
    [4, 5, 6, 7]
    """

    def __init__(self, comm: Comm, topo: ProcessTopology, strategy: str, timeout: float | None) -> None:
        self.comm = comm
        self.topo = topo
        self.layouts: dict[str, ProcessTopology] = {MAIN: topo}
        self.strategy = strategy
        self.timeout = timeout
        self.full_key: tuple[str, ...] = self.key(topo.get_axis_names())
        self.grid_rank = comm.grid_rank()
        self.global_rank = comm.global_rank()
        self.grid_size = comm.grid_size()
        parent = comm.parent_ranks()
        self.parent: list[int] | None = None if parent is None else [int(r) for r in parent]
        self._np_parent: Any = None
        self._grid_of: dict[int, int] | None = None
        #: The comm's parent index of each grid rank after :meth:`reorder` (None: the same numbers).
        self._launch: list[int] | None = None
        #: This rank's handle per family key (None: in none of the family's groups).
        self.families: dict[tuple[Any, ...], Any] = {}
        #: Handle per rank set this rank is a member of.
        self.handles: dict[SetKey, Any] = {}
        #: Created (layout, axes key, backend, group size) families, for :meth:`_exists`.
        self._axis_families: list[tuple[str, tuple[str, ...], str | None, int]] = []
        #: Every rank set of every explicit family created (all ranks hold it alike).
        self._explicit_sets: set[SetKey] = set()
        #: Groups this rank created, in creation order: (handle, is_pad).
        self.owned: list[tuple[Any, bool]] = []
        self.calls = 0
        self.destroyed = False

    def reorder(self, order: list[int]) -> None:
        """Put the comm's parent rank ``order[i]`` at grid rank ``i`` (before any group exists).

        The one mapping from grid ranks to global ranks (:attr:`parent`) follows,
        and so does everything built on it: members, tables, explicit families.
        """
        parent = self.parent
        self.parent = [order[i] if parent is None else parent[order[i]] for i in range(len(order))]
        self._launch = list(order)
        self._np_parent = None
        self._grid_of = None
        self.grid_rank = self._grid_rank_of(self.global_rank)

    # ------------------------------------------------------------------ layouts, keys
    def layout(self, name: str | None) -> ProcessTopology:
        """The topology of a layout (``None`` or ``"main"``: the main one).

        Raises:
            InvalidArgumentError: no layout of that name.
        """
        topo = self.layouts.get(MAIN if name is None else name)
        if topo is None:
            known = ", ".join(repr(n) for n in self.layouts)
            raise InvalidArgumentError(f"no layout named {name!r}; the grid has {known}")
        return topo

    def key(self, axes: str | Sequence[str], layout: str | None = None) -> tuple[str, ...]:
        """The canonical key of a set of axes: those of size > 1, in topology order.

        Raises:
            UnknownAxisError: an axis is not in the topology.
            InvalidArgumentError: an axis is named twice.
        """
        topo = self.topo if layout is None else self.layout(layout)
        positions = sorted(topo.axis_indices(axes))  # the topology owns the axis rules
        names, dims = topo.get_axis_names(), topo.dims
        return tuple(names[i] for i in positions if dims[i] > 1)

    def to_global(self, table: Any) -> Any:
        """Map a NumPy array of grid ranks to global ranks (unchanged without a process group)."""
        if self.parent is None:
            return table
        if self._np_parent is None:
            import numpy as np

            self._np_parent = np.asarray(self.parent, dtype=np.int64)
        return self._np_parent[table]

    def grid_members(self, key: tuple[str, ...], layout: str | None = None) -> list[int]:
        """Grid ranks of this rank's group of kind ``key``, ascending (row-major over ``key``).

        O(group size) in the core, returned as a list: the per-rank path of
        ``"local"`` and ``"split"`` needs neither NumPy nor a table of the whole grid.
        """
        topo = self.topo if layout is None else self.layout(layout)
        return topo.group_list(self.grid_rank, list(key))

    def _globals(self, grid_ranks: list[int]) -> list[int]:
        parent = self.parent
        return grid_ranks if parent is None else [parent[r] for r in grid_ranks]

    def members(self, key: tuple[str, ...], layout: str | None = None) -> list[int]:
        """Global ranks of this rank's group of kind ``key``, in group order."""
        if not key:
            return [self.global_rank]
        return self._globals(self.grid_members(key, layout))

    def _grid_rank_of(self, global_rank: int) -> int:
        if self.parent is None:
            return global_rank
        if self._grid_of is None:
            self._grid_of = {g: i for i, g in enumerate(self.parent)}
        return self._grid_of.get(global_rank, -1)

    # ------------------------------------------------------------------ the registry
    def _check_alive(self) -> None:
        if self.destroyed:
            raise GridDestroyedError(
                "this grid was destroyed (grid.destroy()): its process groups are gone; build a new grid"
            )

    def _exists(self, setkey: SetKey) -> bool:
        """Whether a rank set is already a group of this grid, decided alike on every rank.

        Every rank knows every family (each was created by all of them), so the
        answer is the same everywhere, whether or not this rank is in the set.
        """
        if setkey in self._explicit_sets:
            return True
        backend, ranks = setkey
        member = self._grid_rank_of(ranks[0]) if ranks else -1
        if member < 0:
            return False
        for layout, key, fam_backend, size in self._axis_families:
            if fam_backend != backend or size != len(ranks):
                continue
            row = self.layouts[layout].group_list(member, list(key)) if key else [member]
            if len(row) == len(ranks) and sorted(self._globals(row)) == list(ranks):
                return True
        return False

    def _family(
        self, key: tuple[str, ...], layout: str | None, backend: str | None
    ) -> tuple[str, str | None, tuple[int, ...], tuple[Any, ...]]:
        """(layout name, normalised backend, group of grid rank 0, family key) of a (layout, axes) family."""
        name = MAIN if layout is None else layout
        topo = self.layout(name)
        backend = self.comm.normalize_backend(backend)
        origin = tuple(self._globals(topo.group_list(0, list(key)))) if key else (self._globals([0])[0],)
        return name, backend, origin, ("axes", backend, tuple(sorted(origin)))

    def find(self, key: tuple[str, ...], layout: str | None = None, backend: str | None = None) -> Any:
        """This rank's group of kind ``key`` of a layout if the grid holds it, else :data:`MISSING`.

        Makes no call and changes nothing: a family made before (from any layout
        or explicit family with the same rank sets), the parent group for the
        whole grid, or a family every group of which an explicit family holds.
        """
        self._check_alive()
        name, backend, origin, fkey = self._family(key, layout, backend)
        if fkey in self.families:
            return self.resolve(self.families[fkey])
        if len(origin) == self.grid_size and backend is None:
            return self.resolve(PARENT)  # the whole grid: the parent group itself
        if self._covered(name, key, backend, len(origin)):
            return self.handles[(backend, tuple(sorted(self.members(key, name))))]
        return MISSING

    def get(self, key: tuple[str, ...], layout: str | None = None, backend: str | None = None) -> Any:
        """This rank's group of kind ``key`` of a layout, creating the family if needed (a collective)."""
        self._check_alive()
        name, backend, origin, fkey = self._family(key, layout, backend)
        if fkey in self.families:
            return self.resolve(self.families[fkey])
        members = self.members(key, name)
        setkey: SetKey = (backend, tuple(sorted(members)))
        if self._launch is not None and key:
            self._check_order(key, name)
        if len(origin) == self.grid_size and backend is None:
            handle = PARENT  # the whole grid: the parent group itself, no call
        elif self._covered(name, key, backend, len(origin)):
            handle = self.handles[setkey]  # explicit families made every group already: no call anywhere
        elif self.strategy == "global":
            handle = self._create_global_axes(key, name, setkey, backend)
        else:
            handle = self._create_own(members, setkey, backend, None, grid_row=self.grid_members(key, name))
        self.families[fkey] = handle
        self._axis_families.append((name, key, backend, len(origin)))
        return self.resolve(handle)

    def _check_order(self, key: tuple[str, ...], layout: str) -> None:
        """In a reordered grid, refuse a family whose groups cannot keep the grid's order.

        Group rank ``i`` must be the ``i``-th member in grid order, so that torch's
        group ranks and collectives agree with the grid's coordinates (and with a
        DeviceMesh exported from it). A group whose global ranks are not ascending
        needs ranks kept in the order given, which ``split_group`` and older torch
        do not do. Every rank checks the whole family, so every rank reaches the
        same verdict before any call.
        """
        import numpy as np

        table = self.to_global(self.layout(layout).groups(list(key)))
        falling = np.flatnonzero((np.diff(table, axis=1) < 0).any(axis=1))
        if not falling.size:
            return
        why: str | None = (
            "group_creation='split' makes groups with torch's split_group, which sorts their ranks"
            if self.strategy == "split"
            else self.comm.order_support()
        )
        if why is None:
            return
        row = table[int(falling[0])].tolist()
        raise GroupCreationError(
            f"the reordered grid's groups of {list(key)} hold their global ranks in grid order, e.g. "
            f"{row[:16]}, which is not ascending, so each group must keep that order (group rank i the i-th "
            f"member, as the grid's coordinates and a DeviceMesh exported from it say); but {why}. Use "
            "group_creation='local' with torch 2.13 or later, or build the grid without reorder"
        )

    def hold(self, handle: Any) -> Any:
        """What to keep of a group from :meth:`get` or :meth:`find`: :data:`PARENT` for the parent."""
        return PARENT if handle is not None and handle is self.comm.parent() else handle

    def resolve(self, handle: Any) -> Any:
        """The group a kept handle stands for (the parent group, asked of the comm, for :data:`PARENT`).

        Raises:
            GridDestroyedError: the parent group no longer exists
                (``torch.distributed.destroy_process_group()`` was called).
        """
        if handle is not PARENT:
            return handle
        parent = self.comm.parent()
        if parent is None:
            raise GridDestroyedError(
                "the grid's parent group, the default process group, was destroyed "
                "(torch.distributed.destroy_process_group()): the grid's process groups are gone"
            )
        return parent

    def _covered(self, layout: str, key: tuple[str, ...], backend: str | None, size: int) -> bool:
        """Whether explicit families already hold every group of this (layout, axes) family.

        Decided alike on every rank, in O(total size of the explicit families).
        """
        if not self._explicit_sets:
            return False
        topo = self.layouts[layout]
        found = 0
        for fam_backend, ranks in self._explicit_sets:
            if fam_backend != backend or len(ranks) != size:
                continue
            member = self._grid_rank_of(ranks[0])
            row = topo.group_list(member, list(key)) if key else [member]
            if sorted(self._globals(row)) == list(ranks):
                found += 1
        return found * size == self.grid_size

    def family(
        self, rank_lists: Sequence[Sequence[int]], backend: str | None = None, name: str | None = None
    ) -> Any:
        """This rank's group of an explicit family of disjoint global rank lists (a collective).

        The lists must already be validated: non-empty, disjoint, members of the parent.
        Returns ``None`` when this rank is in none of them.
        """
        self._check_alive()
        backend = self.comm.normalize_backend(backend)
        canonical = tuple(sorted(tuple(sorted(int(r) for r in row)) for row in rank_lists))
        fkey: tuple[Any, ...] = ("explicit", backend, canonical)
        if fkey in self.families:
            held = self.families[fkey]
            return None if held is None else self.resolve(held)
        mine = next((row for row in canonical if self.global_rank in row), None)
        # Every rank knows every family, so every rank finds the same new sets.
        new = [row for row in canonical if not self._exists((backend, row))]
        if backend is None and len(canonical[0]) == self.grid_size:
            handle = PARENT  # one list of every grid rank: the parent group itself, no call
        elif not new:
            handle = None if mine is None else self.handles[(backend, mine)]  # nothing to create anywhere
        elif self.strategy == "global":
            handle = None if mine is None or mine in new else self.handles[(backend, mine)]
            for row in new:
                h = self._call(list(row), (backend, row), backend, name, local=False)
                if row is mine:
                    handle = h
        elif mine is None:
            handle = self._create_own(None, None, backend, name, grid_row=None)
        else:
            grid_row = [self._grid_rank_of(r) for r in mine]
            handle = self._create_own(list(mine), (backend, mine), backend, name, grid_row=grid_row)
        self.families[fkey] = handle
        self._explicit_sets.update((backend, row) for row in canonical)
        return None if handle is None else self.resolve(handle)

    # ------------------------------------------------------------------ creation
    def _call(
        self, ranks: list[int], setkey: SetKey, backend: str | None, desc: str | None, *, local: bool
    ) -> Any:
        """One ``new_group`` call; registers the handle when this rank is a member."""
        self.calls += 1
        try:
            handle = self.comm.new_group(ranks, local=local, timeout=self.timeout, backend=backend, desc=desc)
        except ProctopoError:
            raise
        except Exception as exc:
            raise self._failure(ranks, exc) from exc
        if self.global_rank in setkey[1]:
            self.handles[setkey] = handle
            self.owned.append((handle, False))
        return handle

    def _failure(self, ranks: Sequence[int], exc: Exception) -> GroupCreationError:
        return GroupCreationError(
            f"creating the group {list(ranks)[:16]} with strategy {self.strategy!r} failed on global rank "
            f"{self.global_rank}: {type(exc).__name__}: {exc}"
        )

    def _pad(self) -> None:
        self.calls += 1
        self.owned.append((self.comm.pad_group(), True))

    def _create_own(
        self,
        members: list[int] | None,
        setkey: SetKey | None,
        backend: str | None,
        desc: str | None,
        *,
        grid_row: list[int] | None,
    ) -> Any:
        """``"local"`` / ``"split"``: create this rank's own group, or reuse it and keep the count in step.

        A split child always has the parent's backend; a group of another backend is
        created with local synchronisation instead.
        """
        split = self.strategy == "split" and backend is None
        if setkey is None or members is None or setkey in self.handles:
            # Reused (every member of the set holds it alike, each was a member when it
            # was made) or in none of the family's groups: take part in the split, if
            # any, and register a pad so the count stays in step.
            if split:
                self.calls += 1
                self.comm.split_group(None, timeout=self.timeout)
            self._pad()
            return None if setkey is None else self.handles.get(setkey)
        if not split:
            return self._call(members, setkey, backend, desc, local=True)
        self.calls += 1
        if self._launch is not None and grid_row is not None:
            grid_row = sorted(self._launch[r] for r in grid_row)  # the comm splits by its own parent order
        try:
            handle = self.comm.split_group(grid_row, timeout=self.timeout)
        except ProctopoError:
            raise
        except Exception as exc:
            raise self._failure(members, exc) from exc
        self.handles[setkey] = handle
        self.owned.append((handle, False))
        return handle

    def _create_global_axes(
        self, key: tuple[str, ...], layout: str, mine: SetKey, backend: str | None
    ) -> Any:
        """``"global"``: every rank calls ``new_group`` for every new group of the family, in table order."""
        topo = self.layout(layout)
        handle = None
        if not key:
            rows: Any = ([r] for r in (range(topo.world_size()) if self.parent is None else self.parent))
        else:
            rows = self.to_global(topo.groups(list(key))).tolist()
        for row in rows:
            setkey: SetKey = (backend, tuple(sorted(row)))
            if self._explicit_sets and self._exists(setkey):
                if setkey == mine:
                    handle = self.handles[setkey]
                continue
            h = self._call(row, setkey, backend, None, local=False)
            if setkey == mine:
                handle = h
        return handle

    # ------------------------------------------------------------------ teardown
    @property
    def communicators(self) -> int:
        """Distinct live groups this rank created and is a member of (pads not counted)."""
        return sum(1 for _, pad in self.owned if not pad)

    def destroy(self) -> None:
        """Destroy every group this rank created, newest first; the parent is never touched."""
        if self.destroyed:
            return
        self.destroyed = True
        owned, self.owned = self.owned, []
        self.handles.clear()
        self.families.clear()
        errors = []
        for handle, _ in reversed(owned):
            try:
                self.comm.destroy_group(handle)
            except Exception as exc:  # keep going: free what can be freed
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            raise GroupCreationError(
                f"destroying {len(errors)} of {len(owned)} groups failed on global rank "
                f"{self.global_rank}: {'; '.join(errors[:4])}"
            )
