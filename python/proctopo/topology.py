"""Process topologies: DeepSpeed's ``ProcessTopology`` API over proctopo's C++ core.

A topology lays the ranks of a job on a row-major grid of named axes (the last
axis varies fastest). Every method returns exactly what DeepSpeed's
``deepspeed.runtime.pipe.topology.ProcessTopology`` returns for valid input,
but nothing is stored per rank: each answer costs O(number of axes) or
O(size of the answer). This module never imports torch.
"""

from __future__ import annotations

import keyword
import operator
from collections import namedtuple
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from functools import lru_cache
from itertools import count, product
from typing import TYPE_CHECKING, Any, Union

from . import _core
from .errors import (
    InvalidArgumentError,
    InvalidTopologyError,
    RankOutOfRangeError,
    UnknownAxisError,
    WorldSizeOverflowError,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MEGATRON_TO_DEEPSPEED",
    "PipeDataParallelTopology",
    "PipeModelDataParallelTopology",
    "ProcessTopology",
    "dims_create",
    "prime_factors",
]

_INT64_MAX = 2**63 - 1

#: Megatron's short axis names and DeepSpeed's long ones, for ``from_order(..., rename=...)``.
MEGATRON_TO_DEEPSPEED = {"tp": "model", "pp": "pipe", "dp": "data", "cp": "context", "ep": "expert"}
AxesArg = Union[str, Sequence[str]]


@lru_cache(maxsize=1024)
def _coord_class(axes: tuple[str, ...]) -> type[tuple[int, ...]]:
    """One ``ProcessCoord`` namedtuple class per axis tuple (creating one costs ~50 µs)."""
    return namedtuple("ProcessCoord", axes)


def _as_int(value: object, what: str) -> int:
    """``operator.index`` with an error that names the value (bool and NumPy integers pass)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})") from None


def _check_axes(axes: object) -> list[str]:
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Iterable):
        raise TypeError(f"axes must be a list of axis names, got {axes!r}")
    names = list(axes)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"axis {i} must be named by a str, got {name!r} ({type(name).__name__})")
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise InvalidTopologyError(
                f"axis name {name!r} is not allowed: axis names become ProcessCoord fields and "
                "keyword arguments, so they must be Python identifiers, not keywords, and not "
                "start with '_'"
            )
    return names


def _check_dims(names: list[str], dims: object) -> list[int]:
    # The core checks sizes too, but only once they fit in 64 bits; Python ints may not,
    # so sizes and the world size are bounded here, with the exact product in the message.
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Iterable):
        raise TypeError(f"dims must be a list of axis sizes, got {dims!r}")
    sizes = list(dims)
    if len(sizes) != len(names):
        raise InvalidTopologyError(
            f"a topology needs one size per axis, but got {len(names)} axes {names} "
            f"and {len(sizes)} sizes {sizes}"
        )
    out = [_as_int(d, f"the size of axis {a!r}") for a, d in zip(names, sizes)]
    for a, d in zip(names, out):
        if d < 1:
            raise InvalidTopologyError(f"axis {a!r} has size {d}; every size must be at least 1")
    world = 1
    for d in out:
        world *= d
    if world > _INT64_MAX:
        product_text = " * ".join(str(d) for d in out)
        raise WorldSizeOverflowError(
            f"the world size {product_text} = {world} does not fit in a signed 64-bit integer"
        )
    return out


def _axis_list(axes: AxesArg) -> list[str]:
    if isinstance(axes, str):
        return [axes]
    names = list(axes) if isinstance(axes, Iterable) else None
    if names is None or not all(isinstance(a, str) for a in names):
        raise TypeError(f"axes must be an axis name or a list of axis names, got {axes!r}")
    return names


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

    __slots__ = ("ProcessCoord", "__weakref__", "_axes", "_core", "_dims", "_pos")

    def __init__(self, axes: Sequence[str], dims: Sequence[int]) -> None:
        names = _check_axes(axes)
        sizes = _check_dims(names, dims)
        self._core = _core.Topology(names, sizes)  # validates the rest (e.g. repeated names)
        self._axes = names
        self._dims = sizes
        self._pos = {a: i for i, a in enumerate(names)}
        #: The namedtuple class of coordinates, with one field per axis.
        self.ProcessCoord = _coord_class(tuple(names))

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
        if not isinstance(order, str):
            raise TypeError(f"order must be a str such as 'tp-dp-pp', got {order!r}")
        tokens = _core.parse_order(order)
        unknown = sorted(set(sizes) - set(tokens))
        if unknown:
            raise UnknownAxisError(f"size given for {unknown[0]!r}, which is not in the order {order!r}")
        dims = [sizes.get(t, 1) for t in tokens]
        names = [rename.get(t, t) for t in tokens] if rename else tokens
        return _rebuild(cls, names, dims)

    # ----------------------------------------------------------------- DeepSpeed API
    @property
    def axes(self) -> list[str]:
        """The axis names, slowest first (a fresh list; the topology cannot be mutated)."""
        return list(self._axes)

    @property
    def dims(self) -> list[int]:
        """The axis sizes, in axis order (a fresh list)."""
        return list(self._dims)

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
        return self._core.rank_of_kwargs(coord_kwargs, self._axes)

    def get_axis_names(self) -> list[str]:
        """Return the axis names in topology order.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 2]).get_axis_names()
        ['pipe', 'data']
        """
        return list(self._axes)

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
        try:
            return self._core.rank_repr(rank, omit, str(inner_sep), str(outer_sep))
        except TypeError:
            self._explain_rank(rank)
            raise

    def get_dim(self, axis: str) -> int:
        """Return the size of an axis, or 0 when the topology has no such axis.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_dim('y')
        3
        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_dim('z')
        0
        """
        try:
            i = self._pos.get(axis)
        except TypeError:  # unhashable: certainly not an axis
            return 0
        return 0 if i is None else self._dims[i]

    def get_coord(self, rank: int) -> Any:
        """Return the coordinate of a rank as a ``ProcessCoord`` namedtuple.

        Raises:
            RankOutOfRangeError: the rank is not in ``[0, world_size)`` (also a ValueError).
            TypeError: the rank is not an integer.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).get_coord(rank=4)
        ProcessCoord(x=1, y=1)
        """
        try:
            return tuple.__new__(self.ProcessCoord, self._core.coord_of(rank))
        except TypeError:
            self._explain_rank(rank)
            raise

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
        partial = [_core.ANY] * len(self._axes)
        for name, value in filter_kwargs.items():
            i = self._pos.get(name)
            if i is None:
                raise UnknownAxisError(f"unknown axis {name!r}; the axes are {self._axes}")
            v = _as_int(value, f"the value for axis {name!r}")
            if not 0 <= v < self._dims[i]:
                return []
            partial[i] = v
        return self._core.match(partial).tolist()  # type: ignore[no-any-return]

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
        if self.get_dim(axis) == 0:
            raise UnknownAxisError(f"unknown axis {axis!r}; the axes are {self._axes}")
        return self.filter_match(**{axis: idx})

    def world_size(self) -> int:
        """Return the number of ranks, the product of the axis sizes.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).world_size()
        6
        """
        return self._core.world_size

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
        return len(self._axes)

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
        return self._core.axis_indices(_axis_list(axes))

    def ranks(self, coords: npt.ArrayLike) -> np.ndarray:
        """Return the ranks of ``n`` coordinates given as an ``(n, ndim)`` integer array.

        >>> topo = ProcessTopology(axes=['x', 'y'], dims=[2, 3])
        >>> topo.ranks([[0, 1], [1, 2]]).tolist()
        [1, 5]
        """
        arr = _int_array(coords, "coords")
        if arr.ndim != 2 or arr.shape[1] != self.ndim:
            raise InvalidArgumentError(
                f"coords must have shape (n, {self.ndim}), one column per axis {self._axes}, "
                f"got shape {arr.shape}"
            )
        return self._core.ranks(arr)

    def coords(self, ranks: npt.ArrayLike) -> np.ndarray:
        """Return the ``(n, ndim)`` coordinates of ``n`` ranks.

        >>> ProcessTopology(axes=['x', 'y'], dims=[2, 3]).coords([1, 5]).tolist()
        [[0, 1], [1, 2]]
        """
        arr = _int_array(ranks, "ranks")
        if arr.ndim != 1:
            raise InvalidArgumentError(f"ranks must be a 1-D array, got shape {arr.shape}")
        return self._core.coords(arr)

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
        return self._core.groups(_axis_list(axes))

    def group_of(self, rank: int, axes: AxesArg) -> np.ndarray:
        """Return the row of ``groups(axes)`` that holds ``rank``, without building the others.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_of(6, 'pipe').tolist()
        [2, 6]
        """
        try:
            return self._core.group_of(rank, _axis_list(axes))
        except TypeError:
            self._explain_rank(rank)
            raise

    def group_list(self, rank: int, axes: AxesArg) -> list[int]:
        """``group_of(rank, axes)`` as a list of ints, without NumPy (for small groups on hot paths).

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_list(6, 'pipe')
        [2, 6]
        """
        try:
            return self._core.group_list(rank, _axis_list(axes))
        except TypeError:
            self._explain_rank(rank)
            raise

    def group_index(self, rank: int, axes: AxesArg) -> tuple[int, int]:
        """Return ``(row, column)`` of ``rank`` in ``groups(axes)``.

        >>> ProcessTopology(axes=['pipe', 'data'], dims=[2, 4]).group_index(6, 'pipe')
        (2, 1)
        """
        try:
            return self._core.group_index(rank, _axis_list(axes))
        except TypeError:
            self._explain_rank(rank)
            raise

    def shift(self, rank: int, axis: str, delta: int = 1, periodic: bool = True) -> int:
        """Return the rank ``delta`` steps along ``axis``; past the edge, wrap or return -1.

        >>> topo = ProcessTopology(axes=['pipe', 'data'], dims=[4, 2])
        >>> topo.shift(6, 'pipe'), topo.shift(6, 'pipe', periodic=False)
        (0, -1)
        """
        d = _as_int(delta, "delta")
        if not -_INT64_MAX <= d <= _INT64_MAX and self.get_dim(axis):
            # Far past any axis: only the remainder matters when wrapping.
            d = d % self.get_dim(axis) if periodic else self.get_dim(axis)
        try:
            return self._core.shift(rank, axis, d, bool(periodic))
        except TypeError:
            self._explain_rank(rank)
            raise

    # ----------------------------------------------------------------- object protocol
    def __repr__(self) -> str:
        return f"{type(self).__name__}(axes={self._axes}, dims={self._dims})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessTopology):
            return NotImplemented
        return self._axes == other._axes and self._dims == other._dims

    def __hash__(self) -> int:
        return hash((tuple(self._axes), tuple(self._dims)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._axes, self._dims))

    # ----------------------------------------------------------------- error diagnosis
    def _explain_rank(self, rank: object) -> None:
        r = _as_int(rank, "rank")
        if not 0 <= r < self.world_size():
            raise RankOutOfRangeError(
                f"rank {r} is not in the topology: ranks run from 0 to {self.world_size() - 1}"
            )


def _rebuild(cls: type[ProcessTopology], axes: list[str], dims: list[int]) -> ProcessTopology:
    obj = cls.__new__(cls)
    ProcessTopology.__init__(obj, axes, dims)
    return obj


def _int_array(values: npt.ArrayLike, what: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(values)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise InvalidArgumentError(f"{what} holds {int(arr.max())}, past 2**63 - 1")
    return arr


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
            return t._core.rank_of(list(key))
        except (TypeError, ValueError):
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[Any]:
        make = self._topo.ProcessCoord._make  # type: ignore[attr-defined]
        return map(make, product(*(range(d) for d in self._topo._dims)))

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

    >>> prime_factors(12)
    [2, 2, 3]
    """
    n = _as_int(n, "n")
    if n < 1:
        raise InvalidArgumentError(f"prime_factors needs a positive integer, got {n}")
    if n <= _INT64_MAX:
        return _core.prime_factors(n)
    out: list[int] = []
    p = 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        out.append(n)
    return out


_prime_factors = prime_factors


def dims_create(n: int, dims: Sequence[int]) -> list[int]:
    """Fill the zero entries of ``dims`` so their product with the rest is ``n`` (MPI_Dims_create).

    The free entries come out as balanced as the greedy rule of MPICH and Open MPI
    makes them, in non-increasing order; positive entries stay as given.

    Raises:
        InvalidArgumentError: ``n`` below 1, a negative entry, or fixed entries that
            do not divide ``n``.

    >>> dims_create(16, [0, 0, 0])
    [4, 2, 2]
    >>> dims_create(12, [0, 3])
    [4, 3]
    """
    n = _as_int(n, "n")
    entries = [_as_int(d, f"dims[{i}]") for i, d in enumerate(dims)]
    if not all(-_INT64_MAX <= v <= _INT64_MAX for v in (n, *entries)):
        raise WorldSizeOverflowError(f"dims_create({n}, {entries}): values must fit in 64 bits")
    return _core.dims_create(n, entries)


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
