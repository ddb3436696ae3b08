"""Process-group creation for :class:`proctopo.PipelineParallelGrid`.

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
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .comm import Comm
from .errors import GroupCreationError, InvalidArgumentError, ProctopoError, TopologyMismatchError

# The recorder lives in proctopo.testing; its earlier import path, proctopo.groups, still works.
from .testing import RecordingComm as RecordingComm

if TYPE_CHECKING:
    from .topology import ProcessTopology

__all__ = [
    "DEFAULT_VERIFY_TIMEOUT",
    "STRATEGIES",
    "GroupBuilder",
    "fingerprint",
    "resolve_strategy",
    "verify_and_align",
]

#: Accepted values of ``group_creation``.
STRATEGIES = ("auto", "global", "local", "split")

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


def _describe_difference(mine: dict[str, Any], descriptions: list[dict[str, Any]]) -> str:
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
        f"differ from grid rank 0: {shown}). {detail}. This rank has {mine!r}. Every rank must build "
        "PipelineParallelGrid with the same topology, process group, group_creation and extra groups"
    )


def verify_and_align(
    comm: Comm, description: dict[str, Any], *, strategy: str, timeout: float | None
) -> None:
    """Compare ``description`` across the parent group and even out group counts.

    One small all-reduce (maximum of the fingerprint, of its negation and of the
    group count) tells every rank at once whether all agree. Only when they do
    not, the descriptions are gathered so that the error names the difference;
    every rank raises the same error, none waits forever.

    For ``"local"`` and ``"split"``, ranks that have registered fewer process
    groups than others create single-rank groups until the counts agree, so the
    names torch derives for locally synchronised groups match between members.

    Raises:
        TopologyMismatchError: the descriptions differ.
        GridTimeoutError: a rank did not take part within ``timeout`` seconds.
    """
    wait = DEFAULT_VERIFY_TIMEOUT if timeout is None else timeout
    fp = fingerprint(description)
    count = comm.group_count()
    known = count is not None
    c = count if count is not None else 0
    hi_fp, neg_lo_fp, hi_c, neg_lo_c, any_unknown = comm.allreduce_max(
        [fp, -fp, c, -c, 0 if known else 1], timeout=wait
    )
    if hi_fp != -neg_lo_fp:
        gathered = comm.allgather_bytes(json.dumps(description, sort_keys=True).encode(), timeout=wait)
        descriptions = [json.loads(b.decode()) for b in gathered]
        raise TopologyMismatchError(_describe_difference(description, descriptions))
    if strategy in ("local", "split") and not any_unknown and hi_c != -neg_lo_c:
        missing = hi_c - c
        if missing:
            warnings.warn(
                f"this rank has created {c} process groups, others up to {hi_c}; torch names locally "
                f"synchronised groups from that count, so proctopo creates {missing} single-rank "
                "group(s) to even it out. Create groups on every rank alike to avoid this",
                RuntimeWarning,
                stacklevel=3,
            )
        for _ in range(missing):
            comm.pad_group()


# --------------------------------------------------------------------------- builder


class GroupBuilder:
    """Creates the process groups of one grid, one *kind* (set of axes) at a time.

    A kind is written as the tuple of its axes, in topology order, that have
    more than one rank: the group of a rank over ``("data",)`` is the ranks that
    differ from it only in the data coordinate. Axes of size 1 are dropped, so
    kinds with the same rank sets share one key and are created once. The empty
    key is the single-rank group; the key of all non-trivial axes is the parent
    group itself and needs no call.

    Args:
        comm: The communication layer.
        topo: The topology laid over the grid ranks; it must have as many ranks
            as ``comm``'s parent group.
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
        self.strategy = strategy
        self.timeout = timeout
        self.full_key: tuple[str, ...] = self.key(topo.get_axis_names())
        self.grid_rank = comm.grid_rank()
        self.global_rank = comm.global_rank()
        parent = comm.parent_ranks()
        self.parent: list[int] | None = None if parent is None else [int(r) for r in parent]
        self._np_parent: Any = None
        self.handles: dict[tuple[str, ...], Any] = {}
        self.calls = 0

    def key(self, axes: str | Sequence[str]) -> tuple[str, ...]:
        """The canonical key of a set of axes: those of size > 1, in topology order.

        Raises:
            UnknownAxisError: an axis is not in the topology.
            InvalidArgumentError: an axis is named twice.
        """
        positions = sorted(self.topo.axis_indices(axes))  # the topology owns the axis rules
        names, dims = self.topo.get_axis_names(), self.topo.dims
        return tuple(names[i] for i in positions if dims[i] > 1)

    def to_global(self, table: Any) -> Any:
        """Map a NumPy array of grid ranks to global ranks (unchanged without a process group)."""
        if self.parent is None:
            return table
        if self._np_parent is None:
            import numpy as np

            self._np_parent = np.asarray(self.parent, dtype=np.int64)
        return self._np_parent[table]

    def grid_members(self, key: tuple[str, ...]) -> list[int]:
        """Grid ranks of this rank's group of kind ``key``, ascending (row-major over ``key``).

        O(group size) in the core, returned as a list: the per-rank path of
        ``"local"`` and ``"split"`` needs neither NumPy nor a table of the whole grid.
        """
        return self.topo.group_list(self.grid_rank, list(key))

    def members(self, key: tuple[str, ...]) -> list[int]:
        """Global ranks of this rank's group of kind ``key``, in group order."""
        if not key:
            return [self.global_rank]
        grid = self.grid_members(key)
        if self.parent is None:
            return grid
        parent = self.parent
        return [parent[r] for r in grid]

    def get(self, key: tuple[str, ...]) -> Any:
        """The handle for ``key``, creating it (a collective over the grid) if needed."""
        handle = self.handles.get(key)
        if handle is None and key not in self.handles:
            handle = self._create(key)
            self.handles[key] = handle
        return handle

    def _create(self, key: tuple[str, ...]) -> Any:
        if key == self.full_key and key:
            return self.comm.parent()
        try:
            if self.strategy == "local":
                self.calls += 1
                return self.comm.new_group(self.members(key), local=True, timeout=self.timeout)
            if self.strategy == "split":
                self.calls += 1
                row = self.grid_members(key) if key else [self.grid_rank]
                return self.comm.split_group(row, timeout=self.timeout)
            return self._create_global(key)
        except ProctopoError:
            raise
        except Exception as exc:
            raise GroupCreationError(
                f"creating the {'+'.join(key) or 'single-rank'} group {self.members(key)[:16]} "
                f"with strategy {self.strategy!r} failed on global rank {self.global_rank}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _create_global(self, key: tuple[str, ...]) -> Any:
        new_group = self.comm.new_group
        timeout = self.timeout
        mine = None
        if not key:
            n = self.topo.world_size()
            ranks = range(n) if self.parent is None else self.parent
            me = self.global_rank
            for r in ranks:
                h = new_group([r], local=False, timeout=timeout)
                if r == me:
                    mine = h
            self.calls += n
            return mine
        axes = list(key)
        table = self.to_global(self.topo.groups(axes))
        my_row = self.topo.group_index(self.grid_rank, axes)[0]
        for i, row in enumerate(table.tolist()):
            h = new_group(row, local=False, timeout=timeout)
            if i == my_row:
                mine = h
        self.calls += int(table.shape[0])
        return mine
