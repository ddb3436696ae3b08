"""Process-group creation for :class:`proctopo.PipelineParallelGrid`.

This module turns "the group of this rank over these axes" into process-group
API calls. It talks to ``torch.distributed`` only through a small *comm* object
(:class:`TorchComm` by default), so the same code runs against the real
library, against :class:`RecordingComm` (a recording stand-in used by the tests
and by ``bench/grid_sim.py`` to play one rank of a million-rank world), or
against anything else with the same methods.

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

torch is imported only when a :class:`TorchComm` is made.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import GridTimeoutError, GroupCreationError, ProctopoError, TopologyMismatchError

__all__ = [
    "STRATEGIES",
    "Comm",
    "RecordedGroup",
    "RecordingComm",
    "TorchComm",
    "fingerprint",
    "resolve_strategy",
]

#: Accepted values of ``group_creation``.
STRATEGIES = ("auto", "global", "local", "split")

#: Seconds to wait for the fingerprint exchange when no timeout is given.
DEFAULT_VERIFY_TIMEOUT = 600.0


def _seconds(timeout: datetime.timedelta | float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
    else:
        seconds = float(timeout)
    if not seconds > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return seconds


class Comm(Protocol):
    """What the grid needs from a communication library.

    Ranks called *grid ranks* are positions in the parent group (the
    ``process_group`` handed to the grid, or the whole world); *global ranks* are
    ranks of the default group, which ``new_group`` takes.
    """

    backend: str

    def global_rank(self) -> int:
        """This process's rank in the default group."""
        ...

    def grid_rank(self) -> int:
        """This process's rank in the parent group, -1 when not a member."""
        ...

    def grid_size(self) -> int:
        """Number of ranks in the parent group."""
        ...

    def world_size(self) -> int:
        """Number of ranks in the default group."""
        ...

    def parent(self) -> Any:
        """Handle of the parent group."""
        ...

    def parent_ranks(self) -> Sequence[int] | None:
        """Global rank of each grid rank, or None when they are equal."""
        ...

    def new_group(self, ranks: list[int], *, local: bool = False, timeout: float | None = None) -> Any:
        """``torch.distributed.new_group`` over global ranks."""
        ...

    def split_group(self, grid_ranks: list[int], *, timeout: float | None = None) -> Any:
        """``torch.distributed.split_group`` of the parent; ``grid_ranks`` is this rank's part."""
        ...

    def split_support(self) -> str | None:
        """None when the parent can be split, else the reason it cannot."""
        ...

    def local_support(self) -> str | None:
        """None when ``use_local_synchronization=True`` is safe, else the reason it is not."""
        ...

    def group_count(self) -> int | None:
        """Process groups this rank has registered so far (torch names local groups from it)."""
        ...

    def pad_group(self) -> None:
        """Create one single-rank group, to even out :meth:`group_count` across ranks."""
        ...

    def allreduce_max(self, values: list[int], *, timeout: float) -> list[int]:
        """Element-wise maximum of small integer vectors over the parent group."""
        ...

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        """Every parent rank's ``data``, in grid-rank order."""
        ...

    def group_ranks(self, group: Any) -> list[int]:
        """Global ranks of a group, in group-rank order."""
        ...


# --------------------------------------------------------------------------- torch


class TorchComm:
    """:class:`Comm` over ``torch.distributed`` (imported here, lazily).

    Args:
        process_group: The parent group; ``None`` means the default group.

    Raises:
        GroupCreationError: ``torch.distributed`` is not initialised, or this
            process is not a member of ``process_group``.
    """

    def __init__(self, process_group: Any = None) -> None:
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise GroupCreationError(
                "torch.distributed is not initialised: call "
                "torch.distributed.init_process_group(...) before building a PipelineParallelGrid"
            )
        self._torch = torch
        self._dist = dist
        self._group: Any = process_group if process_group is not None else dist.group.WORLD
        self._whole = process_group is None or process_group is dist.group.WORLD
        self._global_rank = int(dist.get_rank())
        self._world_size = int(dist.get_world_size())
        if self._whole:
            self._grid_rank = self._global_rank
            self._grid_size = self._world_size
            self._parent_ranks: list[int] | None = None
        else:
            self._grid_rank = int(dist.get_rank(self._group))
            if self._grid_rank < 0:
                raise GroupCreationError(
                    f"global rank {self._global_rank} is not a member of process_group; "
                    "only its members build the grid"
                )
            self._parent_ranks = [int(r) for r in dist.get_process_group_ranks(self._group)]
            self._grid_size = len(self._parent_ranks)
            if self._parent_ranks == list(range(self._world_size)):
                self._parent_ranks = None
        self.backend = str(dist.get_backend(self._group))

    # -- identity
    def global_rank(self) -> int:
        return self._global_rank

    def grid_rank(self) -> int:
        return self._grid_rank

    def grid_size(self) -> int:
        return self._grid_size

    def world_size(self) -> int:
        return self._world_size

    def parent(self) -> Any:
        return self._group

    def parent_ranks(self) -> Sequence[int] | None:
        return self._parent_ranks

    # -- capabilities
    def _bound_device(self) -> Any:
        default = self._dist.distributed_c10d._get_default_group()
        return getattr(default, "bound_device_id", None)

    def split_support(self) -> str | None:
        device = self._bound_device()
        if device is None:
            return (
                f"the default process group (backend {self.backend!r}) is not bound to a device; "
                "split_group needs init_process_group(..., device_id=torch.device('cuda', local_rank)) "
                "and a backend that can split communicators (NCCL)"
            )
        try:
            backend = self._group._get_backend(device)
            ok = bool(getattr(backend, "supports_splitting", False))
        except Exception as exc:  # pragma: no cover - depends on the build
            return f"cannot query the {self.backend!r} backend for splitting: {exc}"
        if not ok:
            return f"the {self.backend!r} backend of the parent group cannot split communicators"
        return None

    def local_support(self) -> str | None:
        if "mpi" in self.backend.lower():
            return "the MPI backend does not support use_local_synchronization=True"
        if self._bound_device() is not None and "nccl" in self.backend.lower():
            return (
                "the default group is bound to a device, so torch creates NCCL subgroups with "
                "ncclCommSplit, which every rank of the parent must enter; "
                "use_local_synchronization=True would leave non-members out and hang "
                "(use 'split' or 'global')"
            )
        return None

    def group_count(self) -> int | None:
        try:
            return len(self._dist.distributed_c10d._world.pg_names)
        except Exception:  # pragma: no cover - private API moved
            return None

    def pad_group(self) -> None:
        # A gloo group of one: cheap, never a device split, and it advances the
        # count torch names locally synchronised groups from.
        self._dist.new_group([self._global_rank], backend="gloo", use_local_synchronization=True)

    # -- group creation
    def _td(self, timeout: float | None) -> datetime.timedelta | None:
        return None if timeout is None else datetime.timedelta(seconds=timeout)

    def new_group(self, ranks: list[int], *, local: bool = False, timeout: float | None = None) -> Any:
        return self._dist.new_group(ranks=ranks, timeout=self._td(timeout), use_local_synchronization=local)

    def split_group(self, grid_ranks: list[int], *, timeout: float | None = None) -> Any:
        return self._dist.split_group(
            parent_pg=self._group, split_ranks=[grid_ranks], timeout=self._td(timeout)
        )

    def group_ranks(self, group: Any) -> list[int]:
        return [int(r) for r in self._dist.get_process_group_ranks(group)]

    # -- small collectives with a timeout
    def _device(self) -> Any:
        if "nccl" in self.backend.lower() and self._torch.cuda.is_available():
            return self._torch.device("cuda", self._torch.cuda.current_device())
        return self._torch.device("cpu")

    def _wait(self, work: Any, timeout: float, what: str) -> None:
        try:
            work.wait(timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:
            raise GridTimeoutError(
                f"{what} did not complete within {timeout:g} s on global rank {self._global_rank} "
                f"({type(exc).__name__}: {exc}). Every rank of the grid must build it at the same "
                "point with verify=True; a rank that crashed, skipped the check or is building a "
                "different group leaves the others waiting"
            ) from exc

    def allreduce_max(self, values: list[int], *, timeout: float) -> list[int]:
        torch = self._torch
        t = torch.tensor(values, dtype=torch.int64, device=self._device())
        work = self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self._group, async_op=True)
        self._wait(work, timeout, "the topology fingerprint exchange (all_reduce)")
        return [int(v) for v in t.cpu().tolist()]

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        torch = self._torch
        (length,) = self.allreduce_max([len(data)], timeout=timeout)
        buf = torch.zeros(length + 8, dtype=torch.uint8, device=self._device())
        payload = len(data).to_bytes(8, "little") + data
        buf[: len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        out = [torch.empty_like(buf) for _ in range(self._grid_size)]
        work = self._dist.all_gather(out, buf, group=self._group, async_op=True)
        self._wait(work, timeout, "the topology description exchange (all_gather)")
        result = []
        for t in out:
            raw = bytes(t.cpu().tolist())
            n = int.from_bytes(raw[:8], "little")
            result.append(raw[8 : 8 + n])
        return result


# ------------------------------------------------------------------------ recorder


class RecordedGroup:
    """A group made by :class:`RecordingComm`: its ranks and how it was made."""

    __slots__ = ("kind", "ranks")

    def __init__(self, ranks: Sequence[int], kind: str) -> None:
        self.ranks: Sequence[int] = ranks if isinstance(ranks, range) else list(ranks)
        self.kind = kind

    def size(self) -> int:
        """Number of ranks, like ``ProcessGroup.size()``."""
        return len(self.ranks)

    def __repr__(self) -> str:
        return f"RecordedGroup({self.kind}, {self.ranks if len(self.ranks) <= 16 else len(self.ranks)})"


class RecordingComm:
    """A stand-in for ``torch.distributed`` that plays one rank and records calls.

    It creates nothing: ``new_group`` and ``split_group`` return
    :class:`RecordedGroup` objects for groups this rank belongs to and count the
    calls. It also answers DeepSpeed's ``deepspeed.comm`` calls
    (``get_rank()``, ``get_world_size()``, ``new_group(ranks)``), so one recorder
    can stand in for both libraries. Collectives behave as if every rank agreed.

    Args:
        rank: The global rank to play.
        world_size: Ranks in the default group.
        parent_ranks: Global ranks of the parent group, ``None`` for the whole world.
        backend: Backend name to report (``"nccl"`` with ``can_split=True`` lets
            ``"auto"`` pick ``"split"``).
        can_split: Whether :meth:`split_support` reports that splitting works.
        keep_ranks: Keep rank lists of groups this rank is not in (off by
            default to keep memory flat when simulating a huge world).

    >>> comm = RecordingComm(rank=5, world_size=8)
    >>> comm.new_group([4, 5], local=True).ranks
    [4, 5]
    >>> comm.calls["new_group"]
    1
    """

    NON_MEMBER = RecordedGroup((), "non-member")

    def __init__(
        self,
        rank: int,
        world_size: int,
        *,
        parent_ranks: Sequence[int] | None = None,
        backend: str = "gloo",
        can_split: bool = False,
        keep_ranks: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self._rank = rank
        self._world = world_size
        self._parent_ranks = list(parent_ranks) if parent_ranks is not None else None
        self.backend = backend
        self._can_split = can_split
        self._keep = keep_ranks
        self.calls: dict[str, int] = {"new_group": 0, "split_group": 0, "local_new_group": 0, "collective": 0}
        self.groups: list[RecordedGroup] = []
        self.count = 1  # the default group
        whole: Sequence[int] = range(world_size) if self._parent_ranks is None else self._parent_ranks
        self._parent = RecordedGroup(whole, "parent")
        self._parent_size = len(whole)

    # deepspeed.comm / torch.distributed style
    def get_rank(self, group: Any = None) -> int:
        """Global rank (DeepSpeed ``dist.get_rank``)."""
        return self._rank

    def get_world_size(self, group: Any = None) -> int:
        """World size (DeepSpeed ``dist.get_world_size``)."""
        return self._world

    # Comm protocol
    def global_rank(self) -> int:
        return self._rank

    def grid_rank(self) -> int:
        if self._parent_ranks is None:
            return self._rank
        return self._parent_ranks.index(self._rank) if self._rank in self._parent_ranks else -1

    def grid_size(self) -> int:
        return self._parent_size

    def world_size(self) -> int:
        return self._world

    def parent(self) -> Any:
        return self._parent

    def parent_ranks(self) -> Sequence[int] | None:
        return self._parent_ranks

    def new_group(
        self,
        ranks: Sequence[int] | None = None,
        *,
        local: bool = False,
        timeout: float | None = None,
        **_: Any,
    ) -> Any:
        """Record a ``new_group`` call; returns a group only to members."""
        self.calls["new_group"] += 1
        if local:
            self.calls["local_new_group"] += 1
        if ranks is None:
            ranks = range(self._world)
        if self._rank in ranks:  # O(group size), as torch's own checks
            group = RecordedGroup(ranks, "local" if local else "global")
            self.groups.append(group)
            self.count += 1
            return group
        if local:
            return None
        if self._keep:
            self.groups.append(RecordedGroup(ranks, "non-member"))
        return self.NON_MEMBER

    def split_group(self, grid_ranks: list[int], *, timeout: float | None = None) -> Any:
        self.calls["split_group"] += 1
        ranks = grid_ranks if self._parent_ranks is None else [self._parent_ranks[r] for r in grid_ranks]
        group = RecordedGroup(ranks, "split")
        self.groups.append(group)
        self.count += 1
        return group

    def split_support(self) -> str | None:
        return None if self._can_split else f"the recorder plays a {self.backend!r} group that cannot split"

    def local_support(self) -> str | None:
        return "the MPI backend does not support local synchronization" if self.backend == "mpi" else None

    def group_count(self) -> int | None:
        return self.count

    def pad_group(self) -> None:
        self.new_group([self._rank], local=True)

    def allreduce_max(self, values: list[int], *, timeout: float) -> list[int]:
        self.calls["collective"] += 1
        return list(values)

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        self.calls["collective"] += 1
        return [data] * self._parent_size

    def group_ranks(self, group: Any) -> list[int]:
        return list(group.ranks)


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
        ValueError: ``requested`` is not a known strategy.
        GroupCreationError: the strategy cannot work here; the message says why
            and what to use instead.

    >>> resolve_strategy("auto", RecordingComm(0, 8), whole_world=True)
    'local'
    """
    if requested not in STRATEGIES:
        raise ValueError(
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
        topo: A :class:`proctopo.ProcessTopology` laid over the grid ranks.
        strategy: ``"global"``, ``"local"`` or ``"split"`` (already resolved).
        timeout: Seconds for each creation call, ``None`` for torch's default.
    """

    def __init__(self, comm: Comm, topo: Any, strategy: str, timeout: float | None) -> None:
        self.comm = comm
        self.topo = topo
        self.strategy = strategy
        self.timeout = timeout
        self._axes: list[str] = list(topo.get_axis_names())
        self._dims: list[int] = [int(topo.get_dim(a)) for a in self._axes]
        self.full_key: tuple[str, ...] = tuple(a for a, d in zip(self._axes, self._dims) if d > 1)
        self.grid_rank = comm.grid_rank()
        self.global_rank = comm.global_rank()
        parent = comm.parent_ranks()
        self.parent: list[int] | None = None if parent is None else [int(r) for r in parent]
        self._np_parent: Any = None
        self.handles: dict[tuple[str, ...], Any] = {}
        self.order: list[tuple[str, ...]] = []
        self.calls = 0

    def key(self, axes: str | Sequence[str]) -> tuple[str, ...]:
        """The canonical key of a set of axes.

        Raises:
            UnknownAxisError: an axis is not in the topology.
            InvalidArgumentError: an axis is named twice.
        """
        from .errors import InvalidArgumentError, UnknownAxisError

        names = [axes] if isinstance(axes, str) else list(axes)
        for a in names:
            if a not in self._axes:
                raise UnknownAxisError(f"unknown axis {a!r}: the topology has axes {self._axes}")
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"axes must be distinct, got {names}")
        chosen = set(names)
        return tuple(a for a in self.full_key if a in chosen)

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
        return self.topo.group_list(self.grid_rank, list(key))  # type: ignore[no-any-return]

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
            self.order.append(key)
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
        import numpy as np

        new_group = self.comm.new_group
        timeout = self.timeout
        mine = None
        if not key:
            n = self.comm.grid_size()
            ranks = range(n) if self.parent is None else self.parent
            me = self.global_rank
            for r in ranks:
                h = new_group([r], local=False, timeout=timeout)
                if r == me:
                    mine = h
            self.calls += n
            return mine
        axes = list(key)
        table = np.asarray(self.topo.groups(axes))
        my_row = int(self.topo.group_index(self.grid_rank, axes)[0])
        table = self.to_global(table)
        for i, row in enumerate(table.tolist()):
            h = new_group(row, local=False, timeout=timeout)
            if i == my_row:
                mine = h
        self.calls += int(table.shape[0])
        return mine
