"""Simulate one rank of any world, without torch: a recording stand-in for ``torch.distributed``.

:class:`RecordingComm` plays a single rank of a world of any size (a million
ranks is fine) and implements :class:`proctopo.comm.Comm`, so
:class:`proctopo.PipelineParallelGrid` runs on it exactly as it would run on
``torch.distributed``, in one process and with no torch installed. It creates no
communicator: each ``new_group`` / ``split_group`` call is counted and returns
at once, so you can check a layout, count the process-group calls a rank would
make, or time the grid's own Python work before launching a real job.

Pass it as ``comm=`` and read the grid as usual; ``calls`` holds the call
counts and ``groups`` the groups this rank received. Here rank 40,000 of a
65,536-rank job (pipe 8, data 1024, model 8):

>>> import proctopo
>>> from proctopo.testing import RecordingComm
>>> topo = proctopo.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=1024)
>>> comm = RecordingComm(rank=40_000, world_size=topo.world_size())
>>> grid = proctopo.PipelineParallelGrid(topo, group_creation="local", comm=comm)
>>> comm.calls
{'new_group': 4, 'split_group': 0, 'local_new_group': 4, 'collective': 1, 'destroy': 0, 'spacer': 0}
>>> grid.coord
ProcessCoord(pipe=4, data=904, model=0)
>>> grid.get_pipe_parallel_group().ranks
[7232, 15424, 23616, 31808, 40000, 48192, 56384, 64576]
>>> grid.get_data_parallel_group()
RecordedGroup('local', 1024 ranks: 32768, 32776, ..., 40952)
>>> [group.kind for group in comm.groups]
['local', 'local', 'local', 'local']

The recorder also answers the calls DeepSpeed's grid makes through
``deepspeed.comm`` (``get_rank()``, ``get_world_size()``, ``new_group(ranks=...)``),
so the same object can stand in for ``deepspeed.comm`` when comparing with
DeepSpeed's own ``PipelineParallelGrid``. Collectives (the grid's fingerprint
check) behave as if every rank agreed; subclass and override
:meth:`RecordingComm.exchange` / :meth:`RecordingComm.allgather_bytes` to
play disagreeing peers.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .comm import NameLedger, torch_private
from .errors import GroupCreationError, InvalidArgumentError
from .groups import LOCATION_WORDS, encode_location
from .topology import check_rank

__all__ = ["GroupCount", "RecordedGroup", "RecordingComm", "counting_groups"]


class RecordedGroup:
    """A group made by :class:`RecordingComm`: its global ranks and how it was made.

    Attributes:
        ranks: Global ranks, in group-rank order (a ``range`` for the whole world).
        kind: ``"global"`` (``new_group``), ``"local"`` (``new_group`` with local
            synchronisation), ``"split"`` (``split_group``), ``"pad"`` (a
            single-rank group that keeps the registry count in step), ``"parent"``
            (the parent group) or ``"non-member"`` (what a rank outside a group gets).
        backend: The backend asked for (``None``: the parent's).
        name: The name torch would give it: ``(sorted ranks, registry count)`` for
            a locally synchronised or split group, ``None`` otherwise.
        alive: False once destroyed.

    >>> group = RecordedGroup([4, 5], "local")
    >>> group.size(), group.ranks
    (2, [4, 5])
    """

    __slots__ = ("alive", "backend", "kind", "name", "ranks")

    def __init__(
        self,
        ranks: Sequence[int],
        kind: str,
        *,
        backend: str | None = None,
        name: tuple[tuple[int, ...], int] | None = None,
    ) -> None:
        self.ranks: Sequence[int] = ranks if isinstance(ranks, range) else list(ranks)
        self.kind = kind
        self.backend = backend
        self.name = name
        self.alive = True

    def size(self) -> int:
        """Number of ranks, like ``ProcessGroup.size()``."""
        return len(self.ranks)

    def __repr__(self) -> str:
        n = len(self.ranks)
        if n <= 16:
            shown = str(list(self.ranks))
        else:
            r = self.ranks
            shown = f"{n} ranks: {r[0]}, {r[1]}, ..., {r[-1]}"
        return f"RecordedGroup({self.kind!r}, {shown})"


class RecordingComm:
    """A stand-in for ``torch.distributed`` that plays one rank and records calls.

    It implements :class:`proctopo.comm.Comm`. ``new_group`` and ``split_group``
    create nothing: they count the call and return a :class:`RecordedGroup` to a
    member of the group (``None`` to a non-member of a locally synchronised
    group, :attr:`NON_MEMBER` to a non-member of a global one, as torch does).

    It also plays torch's naming of locally synchronised and split groups (the
    sorted ranks plus the number of groups registered on the rank): a name that
    a live group holds raises :class:`proctopo.GroupCreationError`, as torch
    refuses it, and so does a multi-rank name that a destroyed group held,
    where torch would pick up the dead group's rendezvous keys and hang. Like
    :class:`proctopo.comm.TorchComm`, it steers clear of both with a
    :class:`proctopo.comm.NameLedger`; ``calls["spacer"]`` counts the spacer
    groups that took.

    Args:
        rank: The global rank to play.
        world_size: Ranks in the default group.
        parent_ranks: Global ranks of the parent group (the grid's
            ``process_group``), ``None`` for the whole world.
        backend: Backend name to report. ``"mpi"`` rules out local
            synchronisation, as with torch.
        can_split: Whether :meth:`split_support` reports that splitting works
            (with ``backend="nccl"`` this plays NCCL on a bound device, where
            ``group_creation="auto"`` picks ``"split"``).
        hosts: The host name of every global rank, rank 0 first, as the grid's
            set-up exchange reports them (default: every rank on ``"localhost"``).
        domains: The NVLink-domain identity of every global rank (default: unknown).

    Raises:
        InvalidTopologyError: ``world_size`` is below 1.
        RankOutOfRangeError: ``rank`` is not in ``[0, world_size)``.

    Attributes:
        calls: Call counts: ``new_group`` (all of them, spacers included),
            ``local_new_group`` (those with local synchronisation),
            ``split_group``, ``collective`` (fingerprint exchanges),
            ``destroy`` (groups destroyed) and ``spacer`` (single-rank groups
            made and destroyed at once to give a group an unused name).
        groups: The groups this rank received, in creation order (destroyed ones
            included, with ``alive`` False).

    >>> comm = RecordingComm(rank=5, world_size=8)
    >>> comm.new_group([4, 5], local=True).ranks
    [4, 5]
    >>> comm.new_group([0, 1], local=True) is None
    True
    >>> comm.calls["new_group"], comm.calls["local_new_group"], len(comm.groups)
    (2, 2, 1)
    """

    #: What ``new_group`` returns to a rank outside a globally created group.
    NON_MEMBER = RecordedGroup((), "non-member")

    def __init__(
        self,
        rank: int,
        world_size: int,
        *,
        parent_ranks: Sequence[int] | None = None,
        backend: str = "gloo",
        can_split: bool = False,
        hosts: Sequence[str] | None = None,
        domains: Sequence[str | None] | None = None,
    ) -> None:
        check_rank(rank, world_size)  # the core's size and rank rules
        for what, given in (("hosts", hosts), ("domains", domains)):
            if given is not None and len(given) != world_size:
                raise InvalidArgumentError(
                    f"{what} must name one entry per global rank: {len(given)} given for {world_size} ranks"
                )
        self._hosts = None if hosts is None else [str(h) for h in hosts]
        self._domains = None if domains is None else list(domains)
        self._rank = rank
        self._world = world_size
        self._parent_ranks = list(parent_ranks) if parent_ranks is not None else None
        self.backend = backend
        self._can_split = can_split
        self.calls: dict[str, int] = {
            "new_group": 0,
            "split_group": 0,
            "local_new_group": 0,
            "collective": 0,
            "destroy": 0,
            "spacer": 0,
        }
        self.groups: list[RecordedGroup] = []
        self._count = 1  # the default group
        self._ledger = NameLedger()
        self._live_names: set[tuple[tuple[int, ...], int]] = set()
        self._dead_names: set[tuple[tuple[int, ...], int]] = set()
        whole: Sequence[int] = range(world_size) if self._parent_ranks is None else self._parent_ranks
        self._parent = RecordedGroup(whole, "parent")

    # -- deepspeed.comm style
    def get_rank(self, group: Any = None) -> int:
        """The global rank played (``deepspeed.comm.get_rank``)."""
        return self._rank

    def get_world_size(self, group: Any = None) -> int:
        """The world size (``deepspeed.comm.get_world_size``)."""
        return self._world

    # -- Comm protocol: identity
    def global_rank(self) -> int:
        """The global rank played."""
        return self._rank

    def grid_rank(self) -> int:
        """The played rank's position in the parent group, -1 when it is not a member."""
        if self._parent_ranks is None:
            return self._rank
        return self._parent_ranks.index(self._rank) if self._rank in self._parent_ranks else -1

    def grid_size(self) -> int:
        """Number of ranks in the parent group."""
        return self._parent.size()

    def world_size(self) -> int:
        """Number of ranks in the default group."""
        return self._world

    def parent(self) -> Any:
        """The parent group, a :class:`RecordedGroup` of kind ``"parent"``."""
        return self._parent

    def parent_ranks(self) -> Sequence[int] | None:
        """``parent_ranks`` as given (``None`` for the whole world)."""
        return self._parent_ranks

    # -- Comm protocol: group creation
    def _register(self, ranks: Sequence[int], kind: str, backend: str | None, hashed: bool) -> RecordedGroup:
        name = None
        if hashed:
            name = (tuple(sorted(ranks)), self._count)
            if name in self._live_names:
                raise GroupCreationError(
                    f"torch would refuse the group {list(name[0])[:16]}: a live group already has its name "
                    f"(same ranks, {name[1]} groups registered)"
                )
            if name in self._dead_names and len(name[0]) > 1:
                raise GroupCreationError(
                    f"the group {list(name[0])[:16]} would get the name of a destroyed group (same ranks, "
                    f"{name[1]} groups registered); torch would reuse its stale rendezvous keys and hang"
                )
            self._live_names.add(name)
        group = RecordedGroup(ranks, kind, backend=backend, name=name)
        self.groups.append(group)
        self._count += 1
        return group

    def _spacer(self) -> RecordedGroup:
        self.calls["new_group"] += 1
        self.calls["local_new_group"] += 1
        self.calls["spacer"] += 1
        return self._register([self._rank], "spacer", "gloo", hashed=True)

    def new_group(
        self,
        ranks: Sequence[int] | None = None,
        *,
        local: bool = False,
        timeout: float | None = None,
        backend: str | None = None,
        desc: str | None = None,
    ) -> Any:
        """Record a ``new_group`` call over global ``ranks`` (``None``: the whole world).

        Returns:
            A :class:`RecordedGroup` when the played rank is a member; otherwise
            ``None`` for ``local=True`` and :attr:`NON_MEMBER` for a global group.
        """
        if ranks is None:
            ranks = range(self._world)
        if local and self._rank not in ranks:  # O(group size), as torch's own checks
            self.calls["new_group"] += 1
            self.calls["local_new_group"] += 1
            return None
        if not local:
            self.calls["new_group"] += 1
            if self._rank not in ranks:
                return self.NON_MEMBER
            return self._register(ranks, "global", backend, hashed=False)

        def create() -> RecordedGroup:
            self.calls["new_group"] += 1
            self.calls["local_new_group"] += 1
            return self._register(ranks, "local", backend, hashed=True)

        return self._ledger.create(ranks, self._count, create, self._spacer, self.destroy_group)

    def split_group(self, grid_ranks: list[int] | None, *, timeout: float | None = None) -> Any:
        """Record a ``split_group`` call; ``grid_ranks`` are positions in the parent group.

        ``None`` takes part in the split without a part and returns ``None``.
        """
        if grid_ranks is None:
            self.calls["split_group"] += 1
            return None
        ranks = grid_ranks if self._parent_ranks is None else [self._parent_ranks[r] for r in grid_ranks]

        def create() -> RecordedGroup:
            self.calls["split_group"] += 1
            return self._register(ranks, "split", None, hashed=True)

        return self._ledger.create(ranks, self._count, create, self._spacer, self.destroy_group)

    def destroy_group(self, group: Any) -> None:
        """Record the destruction of a group this rank received.

        Raises:
            GroupCreationError: ``group`` is the parent, a non-member handle or
                already destroyed.
        """
        if not isinstance(group, RecordedGroup) or group.kind in ("parent", "non-member") or not group.alive:
            raise GroupCreationError(f"cannot destroy {group!r}: not a live group this rank created")
        group.alive = False
        self.calls["destroy"] += 1
        self._count -= 1
        if group.name is not None:
            self._live_names.discard(group.name)
            self._dead_names.add(group.name)

    def normalize_backend(self, backend: str | None) -> str | None:
        """``None`` for the played backend (or ``None``), else the lower-case name."""
        if backend is None or str(backend).lower() == self.backend.lower():
            return None
        return str(backend).lower()

    def default_device_type(self) -> str:
        """``"cuda"`` when the played backend is NCCL, else ``"cpu"``."""
        return "cuda" if "nccl" in self.backend.lower() else "cpu"

    def split_support(self) -> str | None:
        """None when made with ``can_split=True``, else the reason splitting is out."""
        return None if self._can_split else f"the recorder plays a {self.backend!r} group that cannot split"

    def local_support(self) -> str | None:
        """None unless the backend is ``"mpi"``."""
        return "the MPI backend does not support local synchronization" if self.backend == "mpi" else None

    def order_support(self) -> None:
        """None: a recorded group keeps the order of the ranks it was given."""
        return None

    def group_count(self) -> int:
        """Groups this rank holds: the default group plus every live group it received."""
        return self._count

    def live_groups(self) -> list[RecordedGroup]:
        """The groups this rank received that are not destroyed, in creation order."""
        return [g for g in self.groups if g.alive and g.kind != "spacer"]

    def pad_group(self) -> RecordedGroup:
        """Record a locally synchronised group of the played rank alone, and return it."""

        def create() -> RecordedGroup:
            self.calls["new_group"] += 1
            self.calls["local_new_group"] += 1
            return self._register([self._rank], "pad", "gloo", hashed=True)

        return self._ledger.create([self._rank], self._count, create, self._spacer, self.destroy_group)

    def group_ranks(self, group: Any) -> list[int]:
        """Global ranks of a :class:`RecordedGroup`."""
        return list(group.ranks)

    def location_of(self, rank: int) -> tuple[str, str | None]:
        """``(host, domain)`` of global rank ``rank``, as given at construction."""
        host = "localhost" if self._hosts is None else self._hosts[rank]
        return host, None if self._domains is None else self._domains[rank]

    def location(self) -> tuple[str, str | None]:
        """``(host, domain)`` of the rank played."""
        return self.location_of(self._rank)

    # -- Comm protocol: collectives, as if every rank agreed
    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        """Count a collective and answer as if every rank sent the same header.

        The grid's only block is a rank's location (see
        :func:`proctopo.groups.verify_and_locate`): each rank's row is its own
        host and domain, as given at construction.
        """
        import numpy as np

        self.calls["collective"] += 1
        ranks = self._parent.ranks
        blocks = np.empty((len(ranks), len(block)), dtype=np.int64)
        if not len(block):
            return list(header), blocks
        if len(block) != LOCATION_WORDS:
            raise ValueError(
                f"RecordingComm plays location blocks of {LOCATION_WORDS} words, not {len(block)}"
            )
        if self._hosts is None and self._domains is None:
            blocks[:] = block
            return list(header), blocks
        words: dict[tuple[str, str | None], list[int]] = {}
        for i, g in enumerate(ranks):
            where = self.location_of(g)
            if where not in words:
                words[where] = encode_location(*where)
            blocks[i] = words[where]
        return list(header), blocks

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        """Count a collective and return ``data`` once per parent rank."""
        self.calls["collective"] += 1
        return [data] * self._parent.size()


class GroupCount:
    """What :func:`counting_groups` counted on this rank over its block.

    Attributes:
        new_group: Calls of torch's ``new_group``, from any module.
        split_group: Calls of torch's ``split_group``.
        in_calls: Wall seconds spent inside those calls.
        before: Process groups registered on this rank when the block began.
        after: Process groups registered when it ended (``before`` until then).
        made: Names of the groups registered during the block that were still
            registered at its end.
    """

    __slots__ = ("after", "before", "in_calls", "made", "new_group", "split_group")

    def __init__(self, before: int) -> None:
        self.new_group = 0
        self.split_group = 0
        self.in_calls = 0.0
        self.before = before
        self.after = before
        self.made: list[Any] = []

    @property
    def communicators(self) -> int:
        """Growth of the registry over the block: the communicators the block made and kept."""
        return self.after - self.before

    @property
    def calls(self) -> int:
        """Group-creation calls of either kind."""
        return self.new_group + self.split_group

    def __repr__(self) -> str:
        return (
            f"GroupCount(new_group={self.new_group}, split_group={self.split_group}, "
            f"communicators={self.communicators})"
        )


@contextlib.contextmanager
def counting_groups() -> Iterator[GroupCount]:
    """Count the process groups the block makes on this rank, and the calls that make them.

    While the block runs, every module attribute that holds torch's ``new_group`` or
    ``split_group`` is replaced by a counting wrapper: DeviceMesh, DeepSpeed and
    megatron-core reach the functions under their own names. Import the stack
    before the block, so that its modules hold the functions when the block
    starts. The registry is torch's ``_world.pg_names`` (a name of
    :data:`proctopo.comm.TORCH_PRIVATE`).

    >>> with counting_groups() as count:  # doctest: +SKIP
    ...     grid = ProcessGrid(topology)
    >>> count.new_group, count.communicators  # doctest: +SKIP
    (4, 4)
    """
    import torch.distributed.distributed_c10d as c10d

    world = torch_private("torch.distributed.distributed_c10d", "_world")
    originals: dict[str, Callable[..., Any]] = {"new_group": c10d.new_group, "split_group": c10d.split_group}
    # Identities, not the groups: holding a group would keep it alive past its destruction.
    ids_before = {id(pg) for pg in world.pg_names}
    count = GroupCount(len(world.pg_names))
    active = [True]  # a wrapper some module kept past the block counts no more

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            if not active[0]:
                return fn(*args, **kwargs)
            setattr(count, name, getattr(count, name) + 1)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                count.in_calls += time.perf_counter() - start

        return counted

    wrappers = {name: wrap(name, fn) for name, fn in originals.items()}
    by_id = {id(fn): name for name, fn in originals.items()}
    patched: list[tuple[Any, str, Any]] = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            name = by_id.get(id(value))
            if name is not None and value is originals[name]:
                patched.append((module, attr, value))
                setattr(module, attr, wrappers[name])
    try:
        yield count
    finally:
        active[0] = False
        for module, attr, value in patched:
            setattr(module, attr, value)
        count.after = len(world.pg_names)
        count.made = [pg for pg in world.pg_names if id(pg) not in ids_before]
