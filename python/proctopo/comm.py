"""The communication layer under :class:`proctopo.PipelineParallelGrid`.

The grid reaches a communication library only through the small :class:`Comm`
protocol defined here. :class:`TorchComm` implements it over
``torch.distributed`` and is what the grid uses by default;
:class:`proctopo.testing.RecordingComm` implements it without any library, to
play one rank of a simulated world. Anything else with the same methods works
too.

Two numberings appear: *grid ranks* are positions in the parent group (the
``process_group`` handed to the grid, or the whole world); *global ranks* are
ranks of the default group, which ``new_group`` takes.

Importing this module does not import torch; making a :class:`TorchComm` does.

>>> from proctopo.comm import Comm
>>> from proctopo.testing import RecordingComm
>>> isinstance(RecordingComm(rank=0, world_size=2), Comm)
True
"""

from __future__ import annotations

import datetime
import functools
import importlib
import math
import numbers
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import GridTimeoutError, GroupCreationError, InvalidArgumentError, PeerLostError

__all__ = [
    "TESTED_TORCH",
    "TESTED_TORCH_SERIES",
    "TORCH_PRIVATE",
    "Comm",
    "NameLedger",
    "TorchComm",
    "check_timeout",
    "missing_torch_private",
    "naming_counter",
    "peer_lost",
    "torch_private",
]

_T = TypeVar("_T")

#: Longest timeout accepted, in seconds: ``timedelta.max`` itself means "no limit",
#: which a wait that must fail rather than hang cannot honour.
_MAX_TIMEOUT = datetime.timedelta.max.total_seconds()


def check_timeout(value: datetime.timedelta | float | None, name: str = "timeout") -> float | None:
    """A timeout in seconds, checked: the one rule for every timeout proctopo takes.

    A timeout is a number of seconds or a ``datetime.timedelta``, finite, above
    0 and below ``timedelta.max`` (a wait that must end cannot be unbounded).
    ``None`` stays ``None``: the caller's default applies.

    Args:
        value: The timeout as given.
        name: How the message names it (an argument or an option, e.g. ``"--timeout"``).

    Returns:
        The timeout in seconds, or ``None``.

    Raises:
        InvalidArgumentError: a number or ``timedelta`` outside the range (also a ValueError).
        TypeError: neither a number (``bool`` is not one here) nor a ``timedelta``.

    >>> check_timeout(datetime.timedelta(minutes=2)), check_timeout(5), check_timeout(None)
    (120.0, 5.0, None)
    >>> try:
    ...     check_timeout(0, "--timeout")
    ... except ValueError as exc:
    ...     print(exc)
    --timeout must be a finite number of seconds above 0 and below timedelta.max, got 0
    """
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be a number of seconds or a datetime.timedelta, got {value!r}")
    if not (math.isfinite(seconds) and 0 < seconds < _MAX_TIMEOUT):
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds above 0 and below timedelta.max, got {value!r}"
        )
    return seconds


# ------------------------------------------------------------------ torch's private names

#: The torch release series proctopo is tested with: the test suite runs on each, and
#: proves there that every name of :data:`TORCH_PRIVATE` exists.
TESTED_TORCH_SERIES = ("2.13", "2.14")

#: The torch releases proctopo is tested with, as the messages say it.
TESTED_TORCH = "torch " + " and ".join(f"{series}.x" for series in TESTED_TORCH_SERIES)

#: Every private (or undocumented) name of torch that proctopo uses, in one place:
#: ``(owner, name, what for)``, the owner a module or a class given by its dotted path.
#: The code reaches each through :func:`torch_private`; a test checks that every one
#: exists in the installed torch, and :class:`TorchComm` warns, naming
#: :data:`TESTED_TORCH`, when one is missing.
TORCH_PRIVATE: tuple[tuple[str, str, str], ...] = (
    (
        "torch.distributed.distributed_c10d",
        "_get_default_group",
        "the default group, whose bound device split_group needs",
    ),
    ("torch.distributed.ProcessGroup", "bound_device_id", "the device the default group is bound to"),
    (
        "torch.distributed.ProcessGroup",
        "_get_backend",
        "the parent group's backend, asked whether it can split",
    ),
    ("torch._C._distributed_c10d.Backend", "supports_splitting", "whether a backend can split communicators"),
    ("torch.distributed.distributed_c10d", "_world", "the registry of process groups"),
    (
        "torch.distributed.distributed_c10d",
        "_hash_ranks_to_str",
        "how torch names a locally synchronised group: which count it reads (see naming_counter)",
    ),
    (
        "torch.distributed.distributed_c10d._World",
        "pg_names",
        "the registered groups, whose number names locally synchronised groups up to torch 2.13",
    ),
    (
        "torch.distributed.distributed_c10d._World",
        "group_count",
        "the count of creation calls that names locally synchronised groups from torch 2.14 on",
    ),
    ("torch.distributed.Backend", "_plugins", "proctopo.torchtitan: whether the fake backend is registered"),
    ("torch.testing._internal.distributed.fake_pg", "", "proctopo.torchtitan: registers the fake backend"),
)


def torch_private(owner: str, name: str = "") -> Any:
    """The torch object ``owner.name`` of :data:`TORCH_PRIVATE` (``owner`` alone for ``name=""``).

    Raises:
        InvalidArgumentError: ``(owner, name)`` is not in the table (a use not listed there).
        ImportError, AttributeError: the installed torch does not have it.

    >>> torch_private("torch.distributed.distributed_c10d", "_world")  # doctest: +SKIP
    <torch.distributed.distributed_c10d._World object at 0x...>
    """
    if not any(o == owner and n == name for o, n, _ in TORCH_PRIVATE):
        raise InvalidArgumentError(f"{owner}.{name} is not listed in proctopo.comm.TORCH_PRIVATE")
    obj = _owner(owner)
    return getattr(obj, name) if name else obj


@functools.cache
def _owner(owner: str) -> Any:
    """The module or class ``owner`` (a dotted path): its longest importable prefix, then attributes.

    Cached: a failed import of a class's path searches the file system, and the
    grid asks for these owners on every group it creates. A failure is not cached.
    """
    parts = owner.split(".")
    # The longest prefix already imported, then attributes: a class's path tried as a
    # module would be looked for on the file system first.
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None:
            try:
                return functools.reduce(getattr, parts[i:], module)
            except AttributeError:
                break  # a submodule not imported yet: import it below
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            if i == 1:
                raise
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(owner)  # pragma: no cover - the loop returns or raises at i == 1


def missing_torch_private(*, modules: bool = True) -> list[str]:
    """The names of :data:`TORCH_PRIVATE` that the installed torch lacks, as ``owner.name``.

    ``modules=False`` leaves out the private modules (entries without a name), which
    are looked for on the file system; what imports one says so when it is gone.
    """
    import importlib.util

    missing = []
    for owner, name, _ in TORCH_PRIVATE:
        if not (name or modules):
            continue
        try:
            if name:
                torch_private(owner, name)
            elif importlib.util.find_spec(owner) is None:  # a module: found, not imported
                raise ImportError(owner)
        except (ImportError, AttributeError):
            missing.append(f"{owner}.{name}" if name else owner)
    return missing


def naming_counter() -> str | None:
    """Which count the installed torch names locally synchronised groups from.

    torch names a group made with ``use_local_synchronization=True`` (and a
    ``split_group`` child) ``sha1("<sorted ranks joined by _>_<count>")``, its
    ``_hash_ranks_to_str``, and prefixes the group's rendezvous keys with that name.

    * ``"pg_names"`` (torch 2.13): the count is ``len(_world.pg_names)``, the groups
      registered on the calling rank now. Destroying groups lowers it, so a group
      built again can get the name of a destroyed one (see :class:`NameLedger`).
    * ``"group_count"`` (torch 2.14): the count is ``_world.group_count``, which every
      group creation on the calling rank raises by one and only the destruction of
      the default group resets: no name comes back while the default group lives.

    ``None`` when the naming function reads neither (a torch proctopo does not know).
    """
    try:
        hashing = torch_private("torch.distributed.distributed_c10d", "_hash_ranks_to_str")
        names = set(hashing.__code__.co_names)
    except (ImportError, AttributeError):
        return None
    if "_world" in names and "pg_names" in names:
        return "pg_names"
    if "_world" in names and "group_count" in names:
        return "group_count"
    return None


class NameLedger:
    """Keeps the names of locally synchronised groups unique for the life of a process.

    torch names a group made with ``use_local_synchronization=True`` (and a
    ``split_group`` child) from its sorted ranks and the number of process groups
    registered on the calling rank at that moment, and uses that name as the
    prefix of the group's keys in the default store. Destroying groups lowers the
    number, so building the same groups again would give them the names of
    destroyed groups, whose rendezvous keys are still in the store: gloo then
    connects to addresses that are gone and the job hangs.

    The ledger remembers at which registry counts each rank set was created.
    When a rank set of two or more ranks comes up again at a count it already
    used, :meth:`create` first registers as many single-rank *spacer* groups as
    it takes to reach an unused count, creates the group there, and destroys the
    spacers at once. The net change of the registry is one group, as with a
    plain call, so creation passes stay uniform across ranks. Every member of a
    group takes the same decision: each member created every earlier group of
    that rank set at the same count, so their ledgers agree on it.

    A single-rank group is created at the current count without spacers: no
    other process reads its keys, so a destroyed group's name is harmless to
    it, and keeping its name at its place in the registry means no later
    spacer (itself a single-rank group) can run into the name of a live one.

    >>> ledger = NameLedger()
    >>> ledger.spacers((0, 1), 3), ledger.record((0, 1), 3), ledger.spacers((0, 1), 3)
    (0, None, 1)
    >>> ledger.record((5,), 3), ledger.spacers((5,), 3)
    (None, 0)
    """

    def __init__(self) -> None:
        self._used: dict[tuple[int, ...], set[int]] = {}

    def spacers(self, ranks: tuple[int, ...], count: int) -> int:
        """Spacer groups needed before ``ranks`` gets a name it never had, at registry ``count``."""
        if len(ranks) < 2:
            return 0
        used = self._used.get(ranks, ())
        extra = 0
        while count + extra in used:
            extra += 1
        return extra

    def record(self, ranks: tuple[int, ...], count: int) -> None:
        """Note that ``ranks`` was created at registry ``count``."""
        if len(ranks) > 1:
            self._used.setdefault(ranks, set()).add(count)

    def create(
        self,
        ranks: Sequence[int],
        count: int,
        create: Callable[[], _T],
        spacer: Callable[[], Any],
        destroy: Callable[[Any], None],
    ) -> _T:
        """Create the group of ``ranks`` (sorted) under a name it never had.

        Args:
            ranks: Global ranks of the group.
            count: Groups registered on this rank now.
            create: Makes the group (called once).
            spacer: Registers one single-rank group and returns it.
            destroy: Destroys a spacer.
        """
        key = tuple(sorted(ranks))
        extra = self.spacers(key, count)
        made = []
        try:
            for _ in range(extra):
                made.append(spacer())
            handle = create()
        finally:
            for group in reversed(made):
                destroy(group)
        self.record(key, count + extra)
        return handle


#: Most bytes grid rank 0 sends in the set-up exchange's hand-out when it sends the result
#: to every rank itself (one hop); a larger result goes down a binomial tree instead.
#: 4 MiB: a grid of 228 ranks with their location blocks, of 104,857 without.
DIRECT_BYTES = 4 << 20

#: The environment variable a launcher sets to this process's NVLink-domain identity (any
#: text; ranks with the same text share a domain), read when no domain is given.
DOMAIN_VARIABLE = "PROCTOPO_DOMAIN"

#: One ledger per process: torch's registry (and so its names) is per process.
_LEDGER = NameLedger()

#: The torch versions already warned about (see :func:`_warn_missing_private`).
_WARNED: set[str] = set()


def _warn_missing_private(version: str) -> None:
    """Warn once per torch version when it lacks names of :data:`TORCH_PRIVATE`.

    A release of :data:`TESTED_TORCH_SERIES` is not searched: the test suite has
    found every name there, and the search would cost each process's first grid.
    """
    if version in _WARNED or ".".join(version.split(".")[:2]) in TESTED_TORCH_SERIES:
        return
    _WARNED.add(version)
    missing = missing_torch_private(modules=False)  # the names a grid reaches, not torchtitan's module
    if missing:
        warnings.warn(
            f"torch {version} lacks private names proctopo uses ({', '.join(missing)}); proctopo is "
            f"tested with {TESTED_TORCH}. What needs them is refused with a message "
            "(group_creation='local' when torch's naming is unknown, 'split' when the backend cannot "
            "be asked); group_creation='global' works on any torch",
            RuntimeWarning,
            stacklevel=4,
        )


#: Words of a failed collective's error text that mean a peer's connection is gone.
_PEER_GONE = re.compile(
    r"connection (?:closed|reset)(?: by peer)?|broken pipe|connection refused|socket closed|"
    r"end of file|peer (?:closed|disconnected|hung up)",
    re.IGNORECASE,
)
_PEER_RANK = re.compile(r"\b(?:from |peer |remote )?rank[ :=]+(\d+)", re.IGNORECASE)
_PEER_ADDR = re.compile(r"\[([0-9A-Fa-f.:]+)\]:(\d+)")


def peer_lost(exc: BaseException) -> str | None:
    """What a failed collective's error says about a lost peer, or ``None`` when it says nothing.

    gloo and torch report a rank that died as a closed or reset connection; the
    text names the peer's rank where it knows it, else often its address.

    >>> peer_lost(RuntimeError("[pair.cc:534] Connection closed by peer [127.0.0.1]:4711"))
    'a peer closed the connection (peer 127.0.0.1:4711; its rank is not in the error)'
    >>> peer_lost(RuntimeError("Connection reset by peer: recv from rank 3"))
    'a peer closed the connection (rank 3)'
    >>> peer_lost(RuntimeError("Timed out waiting 6000ms")) is None
    True
    """
    text = str(exc)
    if not _PEER_GONE.search(text):
        return None
    rank = _PEER_RANK.search(text)
    if rank is not None:
        return f"a peer closed the connection (rank {rank.group(1)})"
    addr = _PEER_ADDR.search(text)
    if addr is not None:
        peer = f"{addr.group(1)}:{addr.group(2)}"
        return f"a peer closed the connection (peer {peer}; its rank is not in the error)"
    return "a peer closed the connection (the error names no rank)"


@runtime_checkable
class Comm(Protocol):
    """What the grid needs from a communication library.

    Methods take and return *global* ranks unless they say *grid* ranks.
    """

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

    def new_group(
        self,
        ranks: list[int],
        *,
        local: bool = False,
        timeout: float | None = None,
        backend: str | None = None,
        desc: str | None = None,
    ) -> Any:
        """``torch.distributed.new_group`` over global ranks.

        With ``local=True`` the group gets a name no group of this process had
        before (see :class:`NameLedger`); a non-member gets ``None``.
        """
        ...

    def split_group(self, grid_ranks: list[int] | None, *, timeout: float | None = None) -> Any:
        """``torch.distributed.split_group`` of the parent; ``grid_ranks`` is this rank's part.

        ``None`` takes part in the split without joining a group (returns ``None``).
        """
        ...

    def destroy_group(self, group: Any) -> None:
        """Destroy a group this layer created (never the parent or the default group)."""
        ...

    def normalize_backend(self, backend: str | None) -> str | None:
        """``None`` when ``backend`` is the parent's own (or ``None``), else its canonical name."""
        ...

    def default_device_type(self) -> str:
        """The device type the parent's backend works on: ``"cuda"`` for NCCL, else ``"cpu"``."""
        ...

    def split_support(self) -> str | None:
        """None when the parent can be split, else the reason it cannot."""
        ...

    def local_support(self) -> str | None:
        """None when ``use_local_synchronization=True`` is safe, else the reason it is not."""
        ...

    def order_support(self) -> str | None:
        """None when ``new_group`` keeps the order of the ranks it is given, else the reason it cannot.

        A group's rank ``i`` is then ``ranks[i]``, which a reordered grid needs when a
        group's ranks are not in ascending order.
        """
        ...

    def group_count(self) -> int | None:
        """Process groups this rank has registered so far (torch names local groups from it)."""
        ...

    def pad_group(self) -> Any:
        """Create (and return) one single-rank group, to keep :meth:`group_count` in step across ranks."""
        ...

    def location(self) -> tuple[str, str | None]:
        """Where this process runs: its host name and NVLink-domain identity (``None``: unknown)."""
        ...

    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        """The grid's set-up exchange over the parent group.

        Every grid rank gives a ``header`` of small integers and a ``block`` of
        non-negative words (each the same length on every rank). Every rank gets
        back the element-wise maximum of the headers, and every rank's block as
        a NumPy int64 array of shape ``(grid size, len(block))`` in grid-rank
        order (see :func:`proctopo.groups.verify_and_locate`).
        """
        ...

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        """Every parent rank's ``data``, in grid-rank order."""
        ...

    def group_ranks(self, group: Any) -> list[int]:
        """Global ranks of a group, in group-rank order."""
        ...


class TorchComm:
    """:class:`Comm` over ``torch.distributed`` (imported here, lazily).

    Args:
        process_group: The parent group; ``None`` means the default group.
        domain: This process's NVLink-domain identity, as the launcher knows it;
            ``None``: the value of the environment variable :data:`DOMAIN_VARIABLE`
            when it is set and not empty, else unknown.

    Raises:
        GroupCreationError: ``torch.distributed`` is not initialised, or this
            process is not a member of ``process_group``.
    """

    def __init__(self, process_group: Any = None, *, domain: str | None = None) -> None:
        self._domain = domain
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise GroupCreationError(
                "torch.distributed is not initialised: call "
                "torch.distributed.init_process_group(...) before building a PipelineParallelGrid"
            )
        self._torch = torch
        self._dist = dist
        _warn_missing_private(torch.__version__)
        #: Which count torch names locally synchronised groups from (see naming_counter).
        self.naming: str | None = naming_counter()
        whole = process_group is None or process_group is dist.group.WORLD
        # The default group is looked up when needed, never held: a reference kept past
        # destroy_process_group() defers its destruction to interpreter shutdown (see parent()).
        self._group: Any = None if whole else process_group
        self._global_rank = int(dist.get_rank())
        self._world_size = int(dist.get_world_size())
        if whole:
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
        self.backend = str(dist.get_backend(self.parent()))

    # -- identity
    def global_rank(self) -> int:
        """This process's rank in the default group."""
        return self._global_rank

    def grid_rank(self) -> int:
        """This process's rank in the parent group."""
        return self._grid_rank

    def grid_size(self) -> int:
        """Number of ranks in the parent group."""
        return self._grid_size

    def world_size(self) -> int:
        """Number of ranks in the default group."""
        return self._world_size

    def parent(self) -> Any:
        """The parent group (``group.WORLD`` without a ``process_group``; ``None`` once it is destroyed).

        The default group is read from torch at each call, never kept. Kept, it would
        outlive ``destroy_process_group()`` and be destroyed only at interpreter
        shutdown. Destroying it inside that call releases the GIL while its gloo
        threads stop, which lets the worker threads of other groups drop their last
        references to the tensors of finished collectives. Those drops need the GIL.
        A worker that gets the GIL only once the interpreter is finalising is ended
        by Python inside a destructor, and the process aborts ("terminate called
        without an active exception").
        """
        return self._dist.group.WORLD if self._group is None else self._group

    def parent_ranks(self) -> Sequence[int] | None:
        """Global rank of each grid rank, or None when they are equal."""
        return self._parent_ranks

    # -- capabilities
    def _bound_device(self) -> Any:
        try:
            default = torch_private("torch.distributed.distributed_c10d", "_get_default_group")()
        except AttributeError:  # pragma: no cover - a torch without it (warned at construction)
            return None
        return getattr(default, "bound_device_id", None)  # TORCH_PRIVATE

    def split_support(self) -> str | None:
        """None when the default group is bound to a device and the backend can split."""
        device = self._bound_device()
        if device is None:
            return (
                f"the default process group (backend {self.backend!r}) is not bound to a device; "
                "split_group needs init_process_group(..., device_id=torch.device('cuda', local_rank)) "
                "and a backend that can split communicators (NCCL)"
            )
        try:
            backend = self.parent()._get_backend(device)  # TORCH_PRIVATE
            ok = bool(getattr(backend, "supports_splitting", False))  # TORCH_PRIVATE
        except Exception as exc:  # pragma: no cover - depends on the build
            return f"cannot query the {self.backend!r} backend for splitting: {exc}"
        if not ok:
            return f"the {self.backend!r} backend of the parent group cannot split communicators"
        return None

    def local_support(self) -> str | None:
        """None unless the backend is MPI, NCCL on a bound device, or torch names groups unknowingly."""
        if "mpi" in self.backend.lower():
            return "the MPI backend does not support use_local_synchronization=True"
        if self._bound_device() is not None and "nccl" in self.backend.lower():
            return (
                "the default group is bound to a device, so torch creates NCCL subgroups with "
                "ncclCommSplit, which every rank of the parent must enter; "
                "use_local_synchronization=True would leave non-members out and hang "
                "(use 'split' or 'global')"
            )
        if self.naming is None:
            return (
                f"torch {self._torch.__version__} names locally synchronised groups in a way proctopo "
                f"does not know (it is tested with {TESTED_TORCH}), so it cannot keep their names "
                "equal across members and apart from destroyed groups (use 'global')"
            )
        return None

    def order_support(self) -> str | None:
        """None when torch's ``new_group`` takes ``sort_ranks=False`` (torch 2.13 on)."""
        import inspect

        if "sort_ranks" in inspect.signature(self._dist.new_group).parameters:
            return None
        return (
            f"torch {self._torch.__version__} sorts a new group's ranks (new_group's sort_ranks=False, "
            "which keeps them in the order given, came with torch 2.13)"
        )

    def group_count(self) -> int | None:
        """The count torch names this rank's next locally synchronised group from (None if unknown).

        ``len(_world.pg_names)`` or ``_world.group_count``, as :func:`naming_counter` finds.
        """
        if self.naming is None:
            return None
        world = torch_private("torch.distributed.distributed_c10d", "_world")
        if self.naming == "pg_names":
            return len(world.pg_names)
        return int(world.group_count)

    def _single(self) -> Any:
        # A gloo group of this rank alone: cheap, never a device split, and it
        # advances the count torch names locally synchronised groups from.
        return self._dist.new_group([self._global_rank], backend="gloo", use_local_synchronization=True)

    def _created(self, ranks: Sequence[int], create: Callable[[], _T]) -> _T:
        """``create()`` under a name the rank set never had (see :class:`NameLedger`).

        Names come back only where torch names from the registered groups (``"pg_names"``):
        a count that never falls (``"group_count"``) needs no ledger, and spacers would
        raise it on the members alone.
        """
        count = self.group_count()
        if count is None or self.naming != "pg_names":
            return create()
        try:
            return _LEDGER.create(ranks, count, create, self._single, self._dist.destroy_process_group)
        except ValueError as exc:
            if "group name" not in str(exc):
                raise
            raise GroupCreationError(
                f"torch gives the group {sorted(ranks)[:16]} (or a spacer group of rank "
                f"{self._global_rank} alone) the name of a group that is still alive: names come from "
                f"the ranks and the number of registered groups ({count} now), which fell because other "
                "groups were destroyed while later ones live on. Destroy grids in the reverse order of "
                f"their creation ({exc})"
            ) from exc

    def pad_group(self) -> Any:
        """Create a gloo group of this rank alone, under a name it never had, and return it."""
        return self._created([self._global_rank], self._single)

    # -- group creation
    @staticmethod
    def _td(timeout: float | None) -> datetime.timedelta | None:
        return None if timeout is None else datetime.timedelta(seconds=timeout)

    def normalize_backend(self, backend: str | None) -> str | None:
        """``None`` for the parent's backend (or ``None``), else the lower-case name."""
        if backend is None:
            return None
        name = str(backend).lower()
        return None if name == self.backend.lower() else name

    def default_device_type(self) -> str:
        """``"cuda"`` when the parent's backend is NCCL (alone or per device), else ``"cpu"``."""
        return "cuda" if "nccl" in self.backend.lower() else "cpu"

    def new_group(
        self,
        ranks: list[int],
        *,
        local: bool = False,
        timeout: float | None = None,
        backend: str | None = None,
        desc: str | None = None,
    ) -> Any:
        """``torch.distributed.new_group(ranks, use_local_synchronization=local)``.

        With ``local=True`` only members call torch (a non-member gets ``None``),
        and the group is created under a name no group of this process had.
        Ranks not in ascending order (a reordered grid's) are kept in the order
        given (``sort_ranks=False``), so that group rank ``i`` is ``ranks[i]``; the
        grid refuses such a group beforehand where :meth:`order_support` says torch
        cannot keep it.
        """
        dist = self._dist
        falling = any(a > b for a, b in zip(ranks, ranks[1:]))
        ordered: dict[str, Any] = {"sort_ranks": False} if falling else {}

        def create() -> Any:
            return dist.new_group(
                ranks=ranks,
                timeout=self._td(timeout),
                backend=backend,
                use_local_synchronization=local,
                group_desc=desc,
                **ordered,
            )

        if not local:
            return create()
        if self._global_rank not in ranks:
            return None
        return self._created(ranks, create)

    def split_group(self, grid_ranks: list[int] | None, *, timeout: float | None = None) -> Any:
        """``torch.distributed.split_group`` of the parent with this rank's part (``None``: no part)."""
        dist = self._dist
        if grid_ranks is None:
            # Every rank of the parent enters a split; a rank without a part names a
            # part it is not in, and torch hands it no group.
            if self._grid_size > 1:
                other = 1 if self._grid_rank == 0 else 0
                dist.split_group(parent_pg=self._group, split_ranks=[[other]], timeout=self._td(timeout))
            return None
        parent = self._parent_ranks
        members = grid_ranks if parent is None else [parent[r] for r in grid_ranks]
        return self._created(
            members,
            lambda: dist.split_group(
                parent_pg=self._group, split_ranks=[grid_ranks], timeout=self._td(timeout)
            ),
        )

    def destroy_group(self, group: Any) -> None:
        """``torch.distributed.destroy_process_group(group)``; refuses the parent and the default group."""
        dist = self._dist
        if group is None or group is self.parent() or group is dist.group.WORLD:
            raise GroupCreationError("refusing to destroy the parent or the default process group")
        if group == dist.GroupMember.NON_GROUP_MEMBER:
            return
        dist.destroy_process_group(group)

    def group_ranks(self, group: Any) -> list[int]:
        """``torch.distributed.get_process_group_ranks(group)``."""
        return [int(r) for r in self._dist.get_process_group_ranks(group)]

    def location(self) -> tuple[str, str | None]:
        """``(socket.gethostname(), domain)``: the host, and the domain given at construction or
        named by :data:`DOMAIN_VARIABLE`."""
        return socket.gethostname(), self._domain or os.environ.get(DOMAIN_VARIABLE) or None

    # -- small collectives with a timeout
    def _device(self) -> Any:
        if "nccl" in self.backend.lower() and self._torch.cuda.is_available():
            return self._torch.device("cuda", self._torch.cuda.current_device())
        return self._torch.device("cpu")

    def _wait(self, work: Any, timeout: float, what: str, limit: float | None = None) -> None:
        """Wait for ``work`` at most ``timeout`` s; ``limit``, when given, is the time the error names."""
        try:
            work.wait(timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:
            lost = peer_lost(exc)
            if lost is not None:
                raise PeerLostError(
                    f"{what} failed on global rank {self._global_rank}: {lost} "
                    f"({type(exc).__name__}: {exc}). That rank probably exited or crashed before "
                    "building the grid; its own output says why"
                ) from exc
            raise GridTimeoutError(
                f"{what} did not complete within {timeout if limit is None else limit:g} s on global "
                f"rank {self._global_rank} "
                f"({type(exc).__name__}: {exc}). Every rank of the grid must build it at the same "
                "point with verify=True; a rank that crashed, skipped the check or is building a "
                "different group leaves the others waiting"
            ) from exc

    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        """The set-up exchange as a gather to grid rank 0 and a hand-out from it.

        Grid rank 0 receives every rank's header and block (a gather: one hop) and
        takes the maximum of the headers. It then sends the result, the maximum and
        every block, to every rank itself (a scatter of copies: one hop) when that
        is at most :data:`DIRECT_BYTES` in all, else by gloo's binomial-tree
        broadcast (``log2(grid size)`` hops). A ring all-reduce of the same words
        would make ``2 (grid size - 1)`` steps one after another; on ranks that
        share cores each step, and each hop of a tree, waits for a process to be
        scheduled while the ranks already served start creating their groups.
        Every rank other than grid rank 0 sends one row and receives
        ``len(header) + grid size * len(block)`` words. Both steps together wait
        at most ``timeout``.
        """
        import numpy as np

        torch, dist = self._torch, self._dist
        deadline = time.monotonic() + timeout
        device = self._device()
        on_host = device.type == "cpu"
        h, b, n = len(header), len(block), self._grid_size
        root = self._parent_ranks[0] if self._parent_ranks is not None else 0
        # The words are arranged in NumPy and lent to torch without a copy on the CPU: a
        # grid is often the first thing to run these steps in a process, and torch's
        # operators pay a first-call cost that NumPy's do not.

        def lend(array: Any) -> Any:
            tensor = torch.from_numpy(array)
            return tensor if on_host else tensor.to(device)

        row = np.array([*header, *block], dtype=np.int64)
        rows = np.empty((n, h + b), dtype=np.int64) if self._grid_rank == 0 else None
        received = None if rows is None else [lend(r) for r in rows]
        what = "the fingerprint exchange (gather to grid rank 0)"
        work = dist.gather(lend(row), received, dst=root, group=self._group, async_op=True)
        self._wait(work, timeout, what)
        result = np.empty(h + n * b, dtype=np.int64)
        if rows is not None:
            if not on_host:
                rows = np.stack([t.cpu().numpy() for t in received])  # type: ignore[union-attr]
            np.maximum.reduce(rows[:, :h], axis=0, out=result[:h])
            result[h:] = rows[:, h:].reshape(-1)
        sent = lend(result)
        if n * result.size * 8 <= DIRECT_BYTES:
            what = "the fingerprint exchange (scatter from grid rank 0)"
            copies = None if rows is None else [sent] * n
            target = torch.empty_like(sent) if rows is not None else sent
            work = dist.scatter(target, copies, src=root, group=self._group, async_op=True)
        else:
            what = "the fingerprint exchange (broadcast from grid rank 0)"
            work = dist.broadcast(sent, src=root, group=self._group, async_op=True)
        left = max(deadline - time.monotonic(), 0.001)
        self._wait(work, left, what, timeout)
        if not on_host and rows is None:
            result = sent.cpu().numpy()
        return [int(v) for v in result[:h].tolist()], result[h:].reshape(n, b)

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        """All-gather of byte strings, padded to the longest one."""
        torch = self._torch
        (length,), _ = self.exchange([len(data)], [], timeout=timeout)
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
