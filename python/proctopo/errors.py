"""Every exception proctopo raises.

Each class also subclasses the built-in exception that DeepSpeed raised (or would
have raised) for the same mistake, so ``except`` clauses written for DeepSpeed keep
working, and none of them relies on ``assert`` (which ``python -O`` removes). The
compiled core raises the topology errors directly: its binding translates each C++
exception to the class here, so a rule and its message live once, in the core.

============================  =============================================  ==========================
class                         raised for                                     also an instance of
============================  =============================================  ==========================
ProctopoError                 base of everything below                       Exception
InvalidArgumentError          an argument that breaks a rule                 ValueError
InvalidTopologyError          axes and sizes that do not form a topology     ValueError
WorldSizeOverflowError        a world size past 2**63 - 1                    ValueError, OverflowError
UnknownAxisError              an axis name the topology does not have        ValueError, AttributeError,
                                                                             TypeError
CoordinateOutOfRangeError     a coordinate outside its axis                  ValueError, IndexError,
                                                                             AssertionError
RankOutOfRangeError           a rank outside ``[0, world_size)``             ValueError, IndexError
GridSizeError                 a topology whose size is not the group's size  ValueError, AssertionError
GroupCreationError            a process group that cannot be created         RuntimeError
TopologyMismatchError         ranks of one grid given different settings     RuntimeError
GridTimeoutError              a set-up collective that missed its timeout    TimeoutError
PeerLostError                 a set-up collective whose peer closed the      TimeoutError, ConnectionError
                              connection (a rank died)
PlacementError                a locality rule the measured placement         RuntimeError
                              breaks, or no placement measured
GridStateError                a call before set-up, twice, or after teardown RuntimeError
GridDestroyedError            a group of a grid after ``grid.destroy()``     RuntimeError
GroupNotCreatedError          ``get_group`` of a group never created         RuntimeError, LookupError
UnsupportedPeerError          an installed megatron-core or DeepSpeed that   ImportError
                              proctopo was not tested with
============================  =============================================  ==========================

>>> import proctopo
>>> try:
...     proctopo.ProcessTopology(["pipe", "data"], [2, 2]).get_coord(9)
... except IndexError as exc:
...     print(type(exc).__name__, exc)
RankOutOfRangeError rank 9 is not in the topology: ranks run from 0 to 3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "CoordinateOutOfRangeError",
    "GridDestroyedError",
    "GridSizeError",
    "GridStateError",
    "GridTimeoutError",
    "GroupCreationError",
    "GroupNotCreatedError",
    "InvalidArgumentError",
    "InvalidTopologyError",
    "PeerLostError",
    "PlacementError",
    "ProctopoError",
    "RankOutOfRangeError",
    "TopologyMismatchError",
    "UnknownAxisError",
    "UnsupportedPeerError",
    "WorldSizeOverflowError",
]


class ProctopoError(Exception):
    """Base class of every error proctopo raises."""


class InvalidArgumentError(ProctopoError, ValueError):
    """An argument that breaks a rule of the topology."""


class InvalidTopologyError(InvalidArgumentError):
    """Axes and sizes that do not form a topology."""


class WorldSizeOverflowError(InvalidTopologyError, OverflowError):
    """A world size (or another product of sizes) past ``2**63 - 1``."""


class UnknownAxisError(InvalidArgumentError, AttributeError, TypeError):
    """An axis name the topology does not have.

    DeepSpeed raised ``AttributeError``, ``ValueError`` or ``TypeError`` here,
    depending on the method.
    """


class CoordinateOutOfRangeError(InvalidArgumentError, IndexError, AssertionError):
    """A coordinate outside its axis (DeepSpeed's ``get_rank`` raised ``AssertionError``)."""


class RankOutOfRangeError(InvalidArgumentError, IndexError):
    """A rank outside ``[0, world_size)`` (DeepSpeed's ``get_coord`` raised ``ValueError``)."""


class GridSizeError(InvalidTopologyError, AssertionError):
    """The topology's size differs from the number of ranks it is laid over.

    Also an ``AssertionError``: DeepSpeed fails the same case with
    ``assert self._is_grid_valid()``.
    """


class GroupCreationError(ProctopoError, RuntimeError):
    """A process group could not be created (or not with the strategy asked for)."""


class TopologyMismatchError(ProctopoError, RuntimeError):
    """Ranks of one grid were given different topologies or settings."""


class GridTimeoutError(ProctopoError, TimeoutError):
    """A collective of the grid set-up did not finish within its timeout."""


class PeerLostError(GridTimeoutError, ConnectionError):
    """A collective of the grid set-up failed because a peer closed its connection (a rank died).

    Also a :class:`GridTimeoutError`, the error such a failure was reported as before.
    """


class PlacementError(ProctopoError, RuntimeError):
    """Where the ranks run breaks a locality rule (a group of an axis kept inside a host or
    NVLink domain spans several), no assignment of ranks satisfies the rules, or the
    placement was asked for but never measured."""


class GridStateError(ProctopoError, RuntimeError):
    """A call at the wrong point of a grid's life: before it is set up, a second time,
    or after it was torn down."""


class GridDestroyedError(GridStateError):
    """A grid's process groups were asked for after ``grid.destroy()``."""


class GroupNotCreatedError(GridStateError, LookupError):
    """A grid was asked for a process group it never created.

    Getters never create: a group comes from the grid's construction (its axes
    and ``groups=``) or from an explicit, collective ``create_group`` call, and
    the message names that call.
    """


class UnsupportedPeerError(ProctopoError, ImportError):
    """An installed peer (megatron-core, DeepSpeed) that proctopo was not tested with.

    Either its version is not one the module driving it was tested with, or the
    internals that module relies on differ from those of the tested releases.
    Raised before the peer's state is touched. Also an ``ImportError``, as a
    missing peer is, so ``except ImportError`` keeps catching it. Every such
    refusal is worded by :meth:`of`.

    >>> exc = UnsupportedPeerError.of("DeepSpeed", "0.18.0", module="proctopo.deepspeed",
    ...                               tested=["0.19.8"], package="deepspeed")
    >>> print(exc)  # doctest: +NORMALIZE_WHITESPACE
    DeepSpeed 0.18.0 is not supported: proctopo.deepspeed was tested with DeepSpeed 0.19.8;
    install it (pip install 'deepspeed==0.19.8')
    >>> isinstance(exc, ImportError)
    True
    """

    @classmethod
    def of(
        cls,
        peer: str,
        version: str,
        *,
        module: str,
        tested: Sequence[str],
        package: str = "",
        problem: str = "",
        series: Sequence[str] = (),
        requires: Mapping[str, str] | None = None,
        instead: str = "",
        why: str = "",
    ) -> UnsupportedPeerError:
        """The error for ``peer`` at ``version``, in the one wording of every such refusal.

        ``<peer> <version> is not supported: [<problem>; ]<module> was tested with
        <peer> <tested>; install it|one of them (pip install '<package>==<v>', ...)
        [, or <instead>][. <why>]``

        Args:
            peer: The peer's name as people write it (``"megatron-core"``, ``"DeepSpeed"``).
            version: The installed version (or a phrase saying it is unknown).
            module: The proctopo module that refuses it (``"proctopo.megatron"``).
            tested: The versions tested, in the order to recommend them.
            package: pip's name of the peer (default: ``peer`` in lower case).
            problem: What differs from the tested releases (empty: the version itself is untested).
            series: Release series taken whole (``"0.19"``: any ``0.19.x``).
            requires: What a tested version needs, by version (``{"0.19.2": "Python 3.12 or newer"}``).
            instead: What to do instead of installing a tested release.
            why: Why other releases are refused (a sentence).
        """
        name = package or peer.lower()
        versions = " and ".join(filter(None, [", ".join(tested[:-1]), tested[-1]]))
        if series:
            versions += f" (any {' or '.join(f'{s}.x' for s in series)} is taken)"
        pins = "; or ".join(
            f"pip install '{name}=={v}'" + (f", on {requires[v]}" if requires and v in requires else "")
            for v in tested
        )
        which = "it" if len(tested) == 1 else "one of them"
        message = f"{peer} {version} is not supported: "
        if problem:
            message += f"{problem}; "
        message += f"{module} was tested with {peer} {versions}; install {which} ({pins})"
        if instead:
            message += f", or {instead}"
        if why:
            message += f". {why}"
        return cls(message)
