"""Process topologies: DeepSpeed's ``ProcessTopology`` API over proctopo's C++ core.

A topology lays the ranks of a job on a row-major grid of named axes (the last
axis varies fastest). Every method returns exactly what DeepSpeed's
``deepspeed.runtime.pipe.topology.ProcessTopology`` returns for valid input,
but nothing is stored per rank: each answer costs O(number of axes) or
O(size of the answer). This module never imports torch.
"""

from __future__ import annotations

import keyword
from collections import namedtuple
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from functools import lru_cache
from itertools import count
from typing import TYPE_CHECKING, Any, TypeVar, Union

from . import _core
from ._core import Topology as _Topology
from .errors import GridSizeError, InvalidTopologyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MEGATRON_TO_DEEPSPEED",
    "PipeDataParallelTopology",
    "PipeModelDataParallelTopology",
    "ProcessTopology",
    "check_axis_names",
    "check_rank",
    "check_sizes",
    "dims_create",
    "parse_order",
    "prime_factors",
]

#: Megatron's short axis names and DeepSpeed's long ones, for ``from_order(..., rename=...)``.
MEGATRON_TO_DEEPSPEED = {"tp": "model", "pp": "pipe", "dp": "data", "cp": "context", "ep": "expert"}
AxesArg = Union[str, Sequence[str]]
_T = TypeVar("_T", bound="ProcessTopology")


@lru_cache(maxsize=1024)
def _coord_class(axes: tuple[str, ...]) -> type[tuple[int, ...]]:
    """One ``ProcessCoord`` namedtuple class per axis tuple (creating one costs ~50 µs)."""
    for name in axes:
        # The one rule the core does not own: names become namedtuple fields and keywords.
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise InvalidTopologyError(
                f"axis name {name!r} is not allowed: axis names become ProcessCoord fields and "
                "keyword arguments, so they must be Python identifiers, not keywords, and not "
                "start with '_'"
            )
    return namedtuple("ProcessCoord", axes)


class ProcessTopology:
    """A grid of named axes over the ranks of a job; DeepSpeed's ``ProcessTopology``.

    The axis order defines the layout: row-major, so with ``axes=['x', 'y']`` the
    coordinates ``(x, y)`` and ``(x, y + 1)`` have adjacent ranks.

    Args:
        axes: axis names, slowest-varying first. Each must be a Python identifier.
        dims: the size of each axis, at least 1.

    Raises:
        InvalidTopologyError: a size below 1, a repeated or invalid name, or a
            different number of axes and sizes.
        WorldSizeOverflowError: the product of the sizes is past ``2**63 - 1``.
        TypeError: a name that is not a str or a size that is not an integer.

    >>> topo = ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 2, 2])
    >>> topo.get_rank(pipe=1, data=0, model=1)
    5
    >>> topo.get_coord(5)
    ProcessCoord(pipe=1, data=0, model=1)
    """

    __slots__ = ("ProcessCoord", "__weakref__", "_core")
    ProcessCoord: type[Any]  #: the namedtuple class of coordinates, one field per axis
    _core: _Topology

    def __init__(self, axes: Sequence[str], dims: Sequence[int]) -> None:
        _adopt(self, _core.Topology(axes, dims))

    @classmethod
    def from_order(
        cls, order: str, *, rename: Mapping[str, str] | None = None, **sizes: int
    ) -> ProcessTopology:
        """Build a topology from a Megatron order string such as ``"tp-cp-ep-dp-pp"``.

        Megatron lists the fastest-varying axis first, so the axes here are the
        names reversed. Axes without a size get size 1. ``rename`` maps names, e.g.
        :data:`MEGATRON_TO_DEEPSPEED` gives DeepSpeed's ``pipe``/``data``/``model``.

        Raises:
            InvalidArgumentError: an empty or repeated name in ``order``.
            UnknownAxisError: a size given for a name that is not in ``order``.

        >>> ProcessTopology.from_order("tp-dp-pp", tp=2, dp=3, pp=2)
        ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 3, 2])
        >>> ProcessTopology.from_order("tp-dp-pp", tp=2, pp=2, rename=MEGATRON_TO_DEEPSPEED).axes
        ['pipe', 'data', 'model']
        """
        return _adopt(cls.__new__(cls), _Topology.from_order(order, sizes, rename or None))

    # ----------------------------------------------------------------- DeepSpeed API
    @property
    def axes(self) -> list[str]:
        """The axis names, slowest first (a fresh list; the topology cannot be mutated)."""
        return self._core.axes

    @property
    def dims(self) -> list[int]:
        """The axis sizes, in axis order (a fresh list)."""
        return self._core.dims

    def get_rank(self, **coord_kwargs: int) -> int:
        """Return the rank at a full coordinate, given as one keyword per axis.

        Raises:
            InvalidArgumentError: not exactly one coordinate per axis.
            UnknownAxisError: a keyword that is not an axis.
            CoordinateOutOfRangeError: a coordinate outside its axis (also an AssertionError).
            TypeError: a coordinate that is not an integer.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_rank(x=1, y=2)
        5
        """
        return self._core.rank_of_kwargs(coord_kwargs)

    def get_axis_names(self) -> list[str]:
        """Return the axis names in topology order.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 2]).get_axis_names()
        ['pipe', 'data']
        """
        return self._core.axes

    def get_rank_repr(
        self,
        rank: int,
        omit_axes: Iterable[str] = ("data", "pipe"),
        inner_sep: str = "_",
        outer_sep: str = "-",
    ) -> str:
        """Return a text form of a rank's coordinate, as used in checkpoint names.

        Axes in ``omit_axes`` (by default ``data`` and ``pipe``) are left out; each
        coordinate is printed with at least two digits.

        >>> topo = ProcessTopology(axes=['a', 'b'], dims=[2, 2])
        >>> topo.get_rank_repr(rank=3)
        'a_01-b_01'
        >>> topo.get_rank_repr(rank=3, omit_axes=['a'])
        'b_01'
        """
        omit = [a for a in omit_axes if isinstance(a, str)]
        return self._core.rank_repr(rank, omit, str(inner_sep), str(outer_sep))

    def get_dim(self, axis: str) -> int:
        """Return the size of an axis, or 0 when the topology has no such axis.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_dim('y')
        3
        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_dim('z')
        0
        """
        return self._core.dim(axis) if isinstance(axis, str) else 0

    def get_coord(self, rank: int) -> Any:
        """Return the coordinate of a rank as a ``ProcessCoord`` namedtuple.

        Raises:
            RankOutOfRangeError: the rank is not in ``[0, world_size)`` (also a ValueError).
            TypeError: the rank is not an integer.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_coord(rank=4)
        ProcessCoord(x=1, y=1)
        """
        return tuple.__new__(self.ProcessCoord, self._core.coord_of(rank))

    def get_axis_comm_lists(self, axis: str) -> list[list[int]]:
        """Return the rank lists of the groups along one axis ([] for an unknown axis).

        Each list holds the ranks that agree on every other axis; the lists are
        ordered by the other axes, row-major.

        >>> ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 2, 2]).get_axis_comm_lists('pipe')
        [[0, 4], [1, 5], [2, 6], [3, 7]]
        """
        if self.get_dim(axis) == 0:
            return []
        return self._core.groups([axis]).tolist()  # type: ignore[no-any-return]

    def filter_match(self, **filter_kwargs: int) -> list[int]:
        """Return the ranks, ascending, whose coordinates equal every given value.

        A value outside its axis matches nothing.

        Raises:
            UnknownAxisError: a keyword that is not an axis (also an AttributeError).
            TypeError: a value that is not an integer.

        >>> ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 2, 2]).filter_match(pipe=0, data=1)
        [2, 3]
        """
        return self._core.match_kwargs(filter_kwargs)

    def get_axis_list(self, axis: str, idx: int) -> list[int]:
        """Return the ranks, ascending, whose coordinate along ``axis`` is ``idx``.

        Raises:
            UnknownAxisError: the topology has no such axis (also a ValueError).

        >>> topo = ProcessTopology(axes=['x', 'y'], dims=[2, 3])
        >>> topo.get_axis_list(axis='x', idx=0)
        [0, 1, 2]
        >>> topo.get_axis_list(axis='y', idx=0)
        [0, 3]
        """
        return self._core.match_kwargs({axis: idx})

    def world_size(self) -> int:
        """Return the number of ranks, the product of the axis sizes.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).world_size()
        6
        """
        return self._core.world_size

    def check_world_size(self, size: int, what: str = "the world size") -> None:
        """Raise unless the topology has exactly ``size`` ranks; ``what`` names them in the error.

        Raises:
            GridSizeError: the sizes multiply to another number (also an AssertionError,
                as DeepSpeed's grid asserted it).

        >>> ProcessTopology(['pipe', 'data'], [2, 3]).check_world_size(4)
        Traceback (most recent call last):
          ...
        proctopo.errors.GridSizeError: pipe * data = 2 * 3 = 6, but the world size is 4
        """
        w = self._core.world_size
        if w != size:
            axes, dims = self._core.axes, self._core.dims
            raise GridSizeError(
                f"{' * '.join(axes)} = {' * '.join(map(str, dims))} = {w}, but {what} is {size}"
            )

    @property
    def mapping(self) -> Mapping[Any, int]:
        """``{ProcessCoord: rank}`` for every rank, as a read-only view computed on demand.

        Same keys, values and order as DeepSpeed's dict, in O(1) memory.
        """
        return _CoordMapping(self)

    # ----------------------------------------------------------------- NumPy-native extras
    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self._core.ndim

    @property
    def strides(self) -> tuple[int, ...]:
        """Row-major strides: how far apart in rank two neighbours along each axis are."""
        return tuple(self._core.strides)

    def axis_indices(self, axes: AxesArg) -> list[int]:
        """Return the positions of one axis or several, in the order given.

        Raises:
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: an axis given twice.

        >>> ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 2, 2]).axis_indices(['model', 'pipe'])
        [2, 0]
        """
        return self._core.axis_indices(axes)

    def ranks(self, coords: npt.ArrayLike) -> np.ndarray:
        """Return the ranks of ``n`` coordinates given as an ``(n, ndim)`` integer array.

        >>> topo = ProcessTopology(axes=['x', 'y'], dims=[2, 3])
        >>> topo.ranks([[0, 1], [1, 2]]).tolist()
        [1, 5]
        """
        return self._core.ranks(coords)

    def coords(self, ranks: npt.ArrayLike) -> np.ndarray:
        """Return the ``(n, ndim)`` coordinates of ``n`` ranks.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).coords([1, 5]).tolist()
        [[0, 1], [1, 2]]
        """
        return self._core.coords(ranks)

    def groups(self, axes: AxesArg) -> np.ndarray:
        """Return the groups along one axis or a set of axes as a 2-D array.

        Row ``i`` holds the ranks that agree on every other axis; rows are ordered
        by the other axes, and inside a row the given axes vary in topology order
        (both row-major). ``groups(axis).tolist() == get_axis_comm_lists(axis)``.

        Raises:
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: an axis given twice.

        >>> topo = ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 2, 2])
        >>> topo.groups('pipe').tolist()
        [[0, 4], [1, 5], [2, 6], [3, 7]]
        >>> topo.groups(['model', 'pipe']).tolist()
        [[0, 1, 4, 5], [2, 3, 6, 7]]
        """
        return self._core.groups(axes)

    def group_of(self, rank: int, axes: AxesArg) -> np.ndarray:
        """Return the row of ``groups(axes)`` that holds ``rank``, without building the others.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_of(6, 'pipe').tolist()
        [2, 6]
        """
        return self._core.group_of(rank, axes)

    def group_list(self, rank: int, axes: AxesArg) -> list[int]:
        """``group_of(rank, axes)`` as a list of ints, without NumPy (for small groups on hot paths).

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_list(6, 'pipe')
        [2, 6]
        """
        return self._core.group_list(rank, axes)

    def group_head(self, rank: int, axes: AxesArg, count: int) -> list[int]:
        """The first ``count`` ranks of ``group_list(rank, axes)``, without building the group.

        O(count x axes) whatever the group's size, for showing part of a group of
        billions of ranks.

        >>> ProcessTopology(axes=['a', 'b'], dims=[3037000499, 3037000499]).group_head(5, 'a', 3)
        [5, 3037000504, 6074001003]
        """
        return self._core.group_head(rank, axes, count)

    def group_size(self, axes: AxesArg) -> int:
        """Return the number of ranks in each group over one axis or a set of axes.

        The product of their sizes: 1 for no axes, the world size for all of them.

        Raises:
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: an axis given twice.

        >>> topo = ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 3, 4])
        >>> topo.group_size('data'), topo.group_size(['pipe', 'model']), topo.group_size([])
        (3, 8, 1)
        """
        return self._core.group_size(axes)

    def shape_text(self, axes: AxesArg | None = None) -> str:
        """Return the sizes as text, ``"pipe=2 x data=4"``: every axis in order, or the given ones.

        Raises:
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: an axis given twice.

        >>> topo = ProcessTopology(axes=['pipe', 'data', 'model'], dims=[2, 4, 2])
        >>> topo.shape_text()
        'pipe=2 x data=4 x model=2'
        >>> topo.shape_text(['model', 'pipe'])
        'model=2 x pipe=2'
        """
        return self._core.shape_text(axes)

    def group_index(self, rank: int, axes: AxesArg) -> tuple[int, int]:
        """Return ``(row, column)`` of ``rank`` in ``groups(axes)``.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_index(6, 'pipe')
        (2, 1)
        """
        return self._core.group_index(rank, axes)

    def shift(self, rank: int, axis: str, delta: int = 1, periodic: bool = True) -> int:
        """Return the rank ``delta`` steps along ``axis``; past the edge, wrap or return -1.

        >>> topo = ProcessTopology(axes=['pipe', 'data'], dims=[4, 2])
        >>> topo.shift(6, 'pipe'), topo.shift(6, 'pipe', periodic=False)
        (0, -1)
        """
        return self._core.shift(rank, axis, delta, bool(periodic))

    # ----------------------------------------------------------------- object protocol
    def __repr__(self) -> str:
        return f"{type(self).__name__}(axes={self._core.axes}, dims={self._core.dims})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessTopology):
            return NotImplemented
        return self._core == other._core

    def __hash__(self) -> int:
        return hash(self._core)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._core))


# The methods named in _core.fast_method_names are served by fast entries of the compiled
# core (vectorcall, no kwargs dict, results built in one pass). Each handles the common call
# (exact ints, known axes) and hands every other call, and every error, to the Python method
# above, kept as its ``__wrapped__``: the same values, the same errors.
_core.install_fast_methods(ProcessTopology)


def _adopt(topo: _T, core: _Topology) -> _T:
    """Give ``topo`` its core object (checked already) and its ``ProcessCoord`` class."""
    topo.ProcessCoord = _coord_class(tuple(core.axes))
    topo._core = core
    return topo


def _rebuild(cls: type[ProcessTopology], core: _Topology) -> ProcessTopology:
    """Unpickle: the core object carries the state (the binding pickles it)."""
    return _adopt(cls.__new__(cls), core)


class _CoordMapping(Mapping[Any, int]):
    """Read-only ``{ProcessCoord: rank}`` view of a topology, O(1) memory."""

    __slots__ = ("_topo",)

    def __init__(self, topo: ProcessTopology) -> None:
        self._topo = topo

    def __getitem__(self, key: Any) -> int:
        t = self._topo
        if not isinstance(key, tuple) or len(key) != t.ndim:
            raise KeyError(key)
        try:
            return t._core.rank_of_kwargs(dict(zip(t._core.axes, key)))
        except (TypeError, ValueError):
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[Any]:
        # Rank by rank, O(1) memory whatever the sizes (itertools.product would hold every axis).
        return map(self._topo.get_coord, range(self._topo.world_size()))

    def __len__(self) -> int:
        return self._topo.world_size()

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def keys(self) -> KeysView[Any]:
        return KeysView(self)

    def values(self) -> ValuesView[int]:
        return _RankValues(self)

    def items(self) -> ItemsView[Any, int]:
        return _CoordItems(self)

    def __repr__(self) -> str:
        return f"<mapping of {self._topo!r}: {len(self)} coordinates>"


class _RankValues(ValuesView[int]):
    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._mapping)))  # type: ignore[attr-defined]


class _CoordItems(ItemsView[Any, int]):
    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return zip(self._mapping, count())  # type: ignore[attr-defined]


def prime_factors(n: int) -> list[int]:
    """Return the prime factors of a positive integer, ascending, with repetition; O(sqrt n).

    Raises:
        InvalidArgumentError: ``n`` is below 1 (also a ValueError, as in DeepSpeed).
        WorldSizeOverflowError: ``n`` is past ``2**63 - 1``.

    >>> prime_factors(12)
    [2, 2, 3]
    """
    return _core.prime_factors(n)


_prime_factors = prime_factors  # DeepSpeed's module-level name for the same function


def check_axis_names(names: Sequence[str]) -> None:
    """Raise unless ``names`` can name the axes of a topology, as its constructor would.

    Raises:
        InvalidTopologyError: an empty, repeated or invalid name (see :class:`ProcessTopology`).
        TypeError: ``names`` is not a list of str.

    >>> check_axis_names(["pipe", "data"])
    >>> check_axis_names(["pipe", "pipe"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidTopologyError: axis name 'pipe' appears twice (positions 0 and 1); ...
    """
    _core.check_axis_names(names)
    _coord_class(tuple(names))


def check_sizes(sizes: Mapping[str, int]) -> None:
    """Raise unless every value of ``sizes`` can be the size of the axis it is keyed by.

    Raises:
        InvalidTopologyError: a size below 1.
        WorldSizeOverflowError: a size past ``2**63 - 1``.
        TypeError: a size that is not an integer.

    >>> check_sizes({"tp": 2, "pp": 0})
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidTopologyError: axis 'pp' has size 0; every size must be at least 1
    """
    _core.check_sizes(sizes)


def check_rank(rank: int, world_size: int) -> None:
    """Raise unless ``rank`` is one of the ranks ``0 .. world_size - 1`` of a world of at least one.

    Raises:
        InvalidTopologyError: ``world_size`` is below 1.
        RankOutOfRangeError: ``rank`` is outside the world (also a ValueError).
        TypeError: an argument that is not an integer.

    >>> check_rank(8, 8)
    Traceback (most recent call last):
      ...
    proctopo.errors.RankOutOfRangeError: rank 8 is not in the topology: ranks run from 0 to 7
    """
    _core.check_rank(rank, world_size)


def parse_order(order: str) -> list[str]:
    """Return the axis names of a Megatron order string as written: fastest-varying first.

    ``"tp-cp-dp-pp"`` gives ``['tp', 'cp', 'dp', 'pp']``; :class:`ProcessTopology`'s
    axes are these names reversed (see :meth:`ProcessTopology.from_order`).

    Raises:
        InvalidArgumentError: an empty or repeated name.
        TypeError: ``order`` is not a str.

    >>> parse_order("tp-cp-dp-pp")
    ['tp', 'cp', 'dp', 'pp']
    """
    return _core.parse_order(order)[::-1]  # the core gives them slowest first, as axes


def dims_create(n: int, dims: Sequence[int]) -> list[int]:
    """Fill the zero entries of ``dims`` so their product with the rest is ``n`` (MPI_Dims_create).

    The free entries come out as balanced as the greedy rule of MPICH and Open MPI
    makes them, in non-increasing order; positive entries stay as given.

    Raises:
        InvalidArgumentError: ``n`` below 1, a negative entry, or fixed entries that
            do not divide ``n``.
        WorldSizeOverflowError: a value past the 64-bit range.

    >>> dims_create(16, [0, 0, 0])
    [4, 2, 2]
    >>> dims_create(12, [0, 3])
    [4, 3]
    """
    return _core.dims_create(n, dims)


class PipeDataParallelTopology(ProcessTopology):
    """Pipeline and data parallelism: axes ``['pipe', 'data']``.

    Data parallelism is the fast axis, so gradient all-reduces stay on neighbouring
    ranks (typically one node) and pipeline traffic crosses nodes.

    >>> PipeDataParallelTopology(num_pp=2, num_dp=4).get_coord(5)
    ProcessCoord(pipe=1, data=1)
    """

    __slots__ = ()

    def __init__(self, num_pp: int, num_dp: int) -> None:
        super().__init__(axes=["pipe", "data"], dims=[num_pp, num_dp])


class PipeModelDataParallelTopology(ProcessTopology):
    """Pipeline, data and model (tensor) parallelism: axes ``['pipe', 'data', 'model']``.

    Note the argument order (pipe, model, data) differs from the axis order, as upstream.

    >>> PipeModelDataParallelTopology(num_pp=2, num_mp=2, num_dp=3).get_axis_names()
    ['pipe', 'data', 'model']
    """

    __slots__ = ()

    def __init__(self, num_pp: int, num_mp: int, num_dp: int) -> None:
        super().__init__(axes=["pipe", "data", "model"], dims=[num_pp, num_dp, num_mp])
