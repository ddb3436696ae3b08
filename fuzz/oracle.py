"""A pure-Python model of proctopo's topology API: what each call must return or raise.

Written from the documented rules alone (row-major mixed radix, the last axis fastest;
Python's exact integers, so no overflow can hide here) and sharing no code with proctopo.
Every function returns the expected value or raises :class:`Raises` naming the exception
class the real call must raise, in the order the real call checks its arguments.
"""

from __future__ import annotations

import keyword
import operator
from itertools import product
from typing import Any

I64 = 2**63 - 1  # the largest rank_t
LIMIT = 4096  # the harness asks for no enumeration larger than this


class Raises(Exception):
    """The real call must raise the exception class called ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Boom(Exception):
    """Raised by the harness's own ``__index__``: it must reach the caller unchanged."""


def fits(v: int) -> bool:
    return -(2**63) <= v <= I64


def index(v: Any) -> int:
    """The integer an argument stands for: ints, bools and anything with ``__index__``, never a float."""
    if isinstance(v, float) or not hasattr(type(v), "__index__"):
        raise Raises("TypeError")
    try:
        return int(operator.index(v))
    except Boom:
        raise Raises("Boom") from None
    except TypeError:
        raise Raises("TypeError") from None


def _names(v: Any) -> list[str]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise Raises("TypeError")
    out = list(v)
    if any(not isinstance(n, str) for n in out):
        raise Raises("TypeError")
    return out


def _sizes(v: Any) -> list[int]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise Raises("TypeError")
    return [index(d) for d in v]


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24 (the first 13 prime bases)."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for p in bases:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


class Topo:
    """The model of one ``ProcessTopology(axes, dims)``; construction raises like the real one."""

    def __init__(self, axes: Any, dims: Any) -> None:
        names = _names(axes)
        raw = _sizes(dims)
        if len(names) != len(raw):
            raise Raises("InvalidTopologyError")
        for name, d in zip(names, raw):
            if name == "" or d < 1:
                raise Raises("InvalidTopologyError")
        if len(set(names)) != len(names):
            raise Raises("InvalidTopologyError")
        world = 1
        for d in raw:
            world *= d
        if world > I64 or any(not fits(d) for d in raw):
            raise Raises("WorldSizeOverflowError")
        for name in names:  # the names become namedtuple fields and keywords
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
                raise Raises("InvalidTopologyError")
        self.axes = names
        self.dims = raw
        self.world = world
        self.strides = [1] * len(raw)
        for i in range(len(raw) - 2, -1, -1):
            self.strides[i] = self.strides[i + 1] * raw[i + 1]

    # ------------------------------------------------------------------ helpers
    def axis(self, name: Any) -> int:
        if not isinstance(name, str):
            raise Raises("TypeError")
        if name not in self.axes:
            raise Raises("UnknownAxisError")
        return self.axes.index(name)

    def _rank_arg(self, rank: Any) -> int:
        r = index(rank)
        if not fits(r):
            raise Raises("RankOutOfRangeError")
        return r

    def _check_rank(self, r: int) -> None:
        if not 0 <= r < self.world:
            raise Raises("RankOutOfRangeError")

    def _axes_arg(self, v: Any) -> list[int]:
        if isinstance(v, str):
            return [self.axis(v)]
        if isinstance(v, bytes) or not hasattr(v, "__iter__"):
            raise Raises("TypeError")
        items = list(v)
        if any(not isinstance(n, str) for n in items):
            raise Raises("TypeError")
        out: list[int] = []
        for n in items:
            i = self.axis(n)
            if i in out:
                raise Raises("InvalidArgumentError")
            out.append(i)
        return out

    def coord(self, r: int) -> list[int]:
        return [(r // s) % d for s, d in zip(self.strides, self.dims)]

    def rank(self, coord: list[int]) -> int:
        return sum(c * s for c, s in zip(coord, self.strides))

    def _row(self, base: list[int], free: list[int]) -> list[int]:
        """Ranks of the coordinates equal to ``base`` off ``free``, the free axes row-major."""
        out = []
        for values in product(*(range(self.dims[i]) for i in sorted(free))):
            c = list(base)
            for i, v in zip(sorted(free), values):
                c[i] = v
            out.append(self.rank(c))
        return out

    # ------------------------------------------------------------------ the API
    def get_coord(self, rank: Any) -> tuple[int, ...]:
        r = self._rank_arg(rank)
        self._check_rank(r)
        return tuple(self.coord(r))

    def get_rank(self, kwargs: dict[str, Any]) -> int:
        coord: dict[int, int] = {}
        for name, v in kwargs.items():
            i = self.axis(name)
            c = index(v)
            if not fits(c):
                raise Raises("CoordinateOutOfRangeError")
            coord[i] = c
        if len(coord) != len(self.axes):
            raise Raises("InvalidArgumentError")
        for i, d in enumerate(self.dims):
            if not 0 <= coord[i] < d:
                raise Raises("CoordinateOutOfRangeError")
        return self.rank([coord[i] for i in range(len(self.dims))])

    def match_size(self, kwargs: dict[str, Any]) -> int:
        """How many ranks filter_match(**kwargs) returns (0 when a value is outside its axis)."""
        n = 1
        fixed = {}
        for name, v in kwargs.items():
            if isinstance(name, str) and name in self.axes:
                fixed[self.axes.index(name)] = v
        for i, d in enumerate(self.dims):
            if i not in fixed:
                n *= d
            else:
                try:
                    c = index(fixed[i])
                except Raises:
                    return 0
                if not 0 <= c < d:
                    return 0
        return n

    def filter_match(self, kwargs: dict[str, Any]) -> list[int]:
        base = [0] * len(self.dims)
        fixed: set[int] = set()
        empty = False
        for name, v in kwargs.items():
            i = self.axis(name)
            c = index(v)
            if not 0 <= c < self.dims[i]:
                empty = True
            base[i] = c
            fixed.add(i)
        if empty:
            return []
        return sorted(self._row(base, [i for i in range(len(self.dims)) if i not in fixed]))

    def groups(self, axes: Any) -> list[list[int]]:
        sel = self._axes_arg(axes)
        other = [i for i in range(len(self.dims)) if i not in sel]
        rows = []
        for values in product(*(range(self.dims[i]) for i in other)):
            base = [0] * len(self.dims)
            for i, v in zip(other, values):
                base[i] = v
            rows.append(self._row(base, sel))
        return rows

    def group_of(self, rank: Any, axes: Any) -> list[int]:
        r = self._rank_arg(rank)
        sel = self._axes_arg(axes)
        self._check_rank(r)
        return self._row(self.coord(r), sel)

    def group_head(self, rank: Any, axes: Any, count: Any) -> list[int]:
        r = self._rank_arg(rank)
        sel = self._axes_arg(axes)
        n = index(count)
        self._check_rank(r)
        if n < 0:
            raise Raises("InvalidArgumentError")
        return self._row(self.coord(r), sel)[:n]

    def group_size(self, axes: Any) -> int:
        size = 1
        for i in self._axes_arg(axes):
            size *= self.dims[i]
        return size

    def shape_text(self, axes: Any) -> str:
        sel = range(len(self.dims)) if axes is None else self._axes_arg(axes)
        return " x ".join(f"{self.axes[i]}={self.dims[i]}" for i in sel) or "(no axes)"

    def group_index(self, rank: Any, axes: Any) -> tuple[int, int]:
        r = self._rank_arg(rank)
        sel = set(self._axes_arg(axes))
        self._check_rank(r)
        c = self.coord(r)
        row = col = 0
        for i, d in enumerate(self.dims):
            if i in sel:
                col = col * d + c[i]
            else:
                row = row * d + c[i]
        return row, col

    def shift(self, rank: Any, axis: Any, delta: Any, periodic: bool) -> int:
        r = self._rank_arg(rank)
        a = self.axis(axis)
        k = index(delta)
        self._check_rank(r)
        c, d = self.coord(r)[a], self.dims[a]
        if periodic:
            n = (c + k) % d
        elif 0 <= c + k < d:
            n = c + k
        else:
            return -1
        return r + (n - c) * self.strides[a]

    def get_rank_repr(self, rank: Any, omit: list[Any], inner: Any, outer: Any) -> str:
        r = self._rank_arg(rank)
        self._check_rank(r)
        skip = {a for a in omit if isinstance(a, str)}
        c = self.coord(r)
        return str(outer).join(f"{a}{inner}{c[i]:02d}" for i, a in enumerate(self.axes) if a not in skip)

    def get_dim(self, axis: Any) -> int:
        if not isinstance(axis, str) or axis not in self.axes:
            return 0
        return self.dims[self.axes.index(axis)]

    def get_axis_comm_lists(self, axis: Any) -> list[list[int]]:
        if self.get_dim(axis) == 0:
            return []
        return self.groups([axis])

    def ranks(self, kind: str, itemsize: int, shape: tuple[int, ...], flat: list[int]) -> list[int]:
        """``ranks(array)`` for an array of dtype kind/itemsize, shape and row-major values."""
        size = len(flat)
        if not (kind in "iu" or (size == 0 and kind == "f")):
            raise Raises("TypeError")
        if kind == "u" and itemsize == 8 and size and max(flat) > I64:
            raise Raises("CoordinateOutOfRangeError")
        if len(shape) != 2 or shape[1] != len(self.dims):
            raise Raises("InvalidArgumentError")
        out = []
        n = len(self.dims)
        for k in range(shape[0]):
            row = flat[k * n : (k + 1) * n]
            if any(not 0 <= c < d for c, d in zip(row, self.dims)):
                raise Raises("CoordinateOutOfRangeError")
            out.append(self.rank(row))
        return out

    def coords(self, kind: str, itemsize: int, shape: tuple[int, ...], flat: list[int]) -> list[list[int]]:
        """``coords(array)``, as :meth:`ranks`."""
        size = len(flat)
        if not (kind in "iu" or (size == 0 and kind == "f")):
            raise Raises("TypeError")
        if kind == "u" and itemsize == 8 and size and max(flat) > I64:
            raise Raises("RankOutOfRangeError")
        if len(shape) != 1:
            raise Raises("InvalidArgumentError")
        for r in flat:
            self._check_rank(r)
        return [self.coord(r) for r in flat]


def from_order(order: Any, rename: dict[str, Any] | None, sizes: dict[str, Any]) -> Topo:
    """``ProcessTopology.from_order(order, rename=rename, **sizes)``."""
    if not isinstance(order, str):
        raise Raises("TypeError")
    tokens: list[str] = []
    for token in order.split("-"):
        if token == "" or token in tokens:
            raise Raises("InvalidArgumentError")
        tokens.append(token)
    tokens.reverse()
    for name in sizes:
        if name not in tokens:
            raise Raises("UnknownAxisError")
    dims = [sizes.get(t, 1) for t in tokens]
    names = [rename.get(t, t) for t in tokens] if rename else tokens
    return Topo(names, dims)


def prime_factors(n: Any) -> list[int] | None:
    """The checks of ``prime_factors(n)`` before any factoring; None when it must succeed."""
    v = index(n)
    if not fits(v):
        raise Raises("WorldSizeOverflowError")
    if v < 1:
        raise Raises("InvalidArgumentError")
    return None


def dims_create(n: Any, dims: Any, rest_factors: list[int] | None) -> list[int] | None:
    """``dims_create(n, dims)``; ``rest_factors`` is the prime factorisation of n divided by the
    fixed entries, when the caller built n that way.

    Returns the exact answer when ``rest_factors`` is given (or no entry is free), else None
    after every error check.
    """
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise Raises("TypeError")
    entries = []
    for d in dims:
        v = index(d)
        if not fits(v):
            raise Raises("WorldSizeOverflowError")
        entries.append(v)
    total = index(n)
    if not fits(total):
        raise Raises("WorldSizeOverflowError")
    if total < 1 or any(e < 0 for e in entries):
        raise Raises("InvalidArgumentError")
    fixed = 1
    for e in entries:
        if e > 0:
            fixed *= e
    if fixed > total or total % fixed:
        raise Raises("InvalidArgumentError")
    rest = total // fixed
    free = [i for i, e in enumerate(entries) if e == 0]
    if not free:
        if rest != 1:
            raise Raises("InvalidArgumentError")
        return entries
    if rest_factors is None:
        return None
    product_of_factors = 1
    for p in rest_factors:
        product_of_factors *= p
    assert product_of_factors == rest, "the harness's factorisation is not of n / fixed"
    # The greedy rule of MPICH and Open MPI: the largest prime first, onto the smallest entry.
    f = [1] * len(free)
    for p in sorted(rest_factors, reverse=True):
        f[f.index(min(f))] *= p
    f.sort(reverse=True)
    out = list(entries)
    for i, v in zip(free, f):
        out[i] = v
    return out


def parse_axes(words: list[str]) -> Topo:
    """``proctopo.cli.parse_axes(words)``: ``name=size`` words, the size in ASCII digits."""
    names, sizes = [], []
    for word in words:
        name, sep, size = word.partition("=")
        if not sep or not size or any(c not in "0123456789" for c in size):
            raise Raises("InvalidArgumentError")
        names.append(name)
        sizes.append(int(size))
    return Topo(names, sizes)
