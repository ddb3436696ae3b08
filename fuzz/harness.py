"""Differential fuzz target: every answer of proctopo's topology API against fuzz/oracle.py.

``run_one(data)`` turns a byte string into a topology (valid or not: small worlds, worlds
near 2**32, 2**62 and 2**63, axes of size 1, one huge axis, sizes that overflow or break a
rule) and a sequence of calls on it, each argument given as a plain int, a bool, a NumPy
integer, an IntEnum member, an int subclass, an object with ``__index__``, an int past 64
bits, or junk. It raises AssertionError when a call returns another value than the oracle,
or raises another exception class than the one the oracle names; a crash of the process is
a failure too. Queries stay O(1)-sized on large worlds: coordinates, shifts, group_index,
and groups or matches only where they hold at most 4096 ranks.

fuzz/run.py drives it with atheris; tests/test_fuzz_regressions.py replays the seed corpus
(fuzz/corpus) and every input that once failed (fuzz/regressions) without atheris.
"""

from __future__ import annotations

import enum
import pickle
from collections.abc import Callable
from fractions import Fraction
from itertools import islice
from typing import Any

import numpy as np
import oracle as O
import proctopo
from proctopo import errors

I64 = O.I64
LIMIT = O.LIMIT

# ---------------------------------------------------------------------------- byte source


class Source:
    """Reads choices from the fuzzer's bytes; past the end every read is 0 (the first choice)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk.ljust(n, b"\0")

    def u8(self) -> int:
        return self.take(1)[0]

    def below(self, n: int) -> int:
        """A number in [0, n)."""
        if n <= 1:
            return 0
        return int.from_bytes(self.take((n.bit_length() + 7) // 8 + 1), "little") % n

    def pick(self, seq: Any) -> Any:
        return seq[self.below(len(seq))]

    def chance(self, k: int) -> bool:
        """True about once in k reads (never on exhausted input)."""
        return self.u8() % k == k - 1

    def bits(self, n: int) -> int:
        """A number of exactly n bits (0 for n == 0)."""
        if n == 0:
            return 0
        return (1 << (n - 1)) | (int.from_bytes(self.take((n + 7) // 8), "little") & ((1 << (n - 1)) - 1))


# ---------------------------------------------------------------------------- argument forms


class Index:
    """An object that is an integer only through ``__index__``."""

    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v

    def __repr__(self) -> str:
        return f"Index({self.v})"


class BadIndex:
    """``__index__`` returns a non-int: a TypeError."""

    def __index__(self) -> Any:
        return "seven"

    def __repr__(self) -> str:
        return "BadIndex()"


class BoomIndex:
    """``__index__`` raises: that exception must reach the caller unchanged."""

    def __index__(self) -> int:
        raise O.Boom("from __index__")

    def __repr__(self) -> str:
        return "BoomIndex()"


class MyInt(int):
    """An int subclass."""


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
JUNK: list[Callable[[int], Any]] = [
    float,
    str,
    lambda v: None,
    lambda v: np.float64(1.0),
    lambda v: np.float32(2.0),
    lambda v: Fraction(v, 1),
    lambda v: b"1",
    lambda v: [v],
    lambda v: BadIndex(),
    lambda v: BoomIndex(),
    lambda v: 1.5,
]


def encode(src: Source, v: int, junk: int = 0) -> Any:
    """``v`` in one of the forms an integer argument may take; junk about once in ``junk`` reads."""
    if junk and src.chance(junk):
        return src.pick(JUNK)(v)
    form = src.u8() % 10
    if form == 5 and v in (0, 1):
        return bool(v)
    if form == 6:
        fitting = [t for t in INT_DTYPES if np.iinfo(t).min <= v <= np.iinfo(t).max]
        if fitting:
            return src.pick(fitting)(v)
    if form == 7:
        return enum.IntEnum("Stage", [("V", v)]).V
    if form == 8:
        return Index(v)
    if form == 9:
        return MyInt(v)
    return v


# ---------------------------------------------------------------------------- comparison

EXC: dict[str, type[BaseException]] = {
    "TypeError": TypeError,
    "Boom": O.Boom,
    **{name: getattr(errors, name) for name in errors.__all__},
}


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        assert v.dtype == np.int64, f"array of dtype {v.dtype}"
        return v.tolist()
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _exact_ints(v: Any) -> bool:
    """Every number in a result is a plain int (no bool, no NumPy scalar)."""
    if isinstance(v, (list, tuple)):
        return all(_exact_ints(x) for x in v)
    return v is None or type(v) is int or isinstance(v, str)


def check(what: str, real: Callable[[], Any], model: Callable[[], Any], mention: str | None = None) -> Any:
    """Run ``real`` and ``model``; both return the same value or raise the same class."""
    try:
        want, want_exc = model(), None
    except O.Raises as r:
        want, want_exc = None, r.name
    try:
        got = real()
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise
        if want_exc is None:
            raise AssertionError(f"{what}: raised {type(exc).__name__}: {exc}; expected {want!r}") from exc
        if type(exc) is not EXC[want_exc]:
            raise AssertionError(f"{what}: raised {type(exc).__name__}: {exc}; expected {want_exc}") from exc
        if want_exc != "Boom" and not str(exc):
            raise AssertionError(f"{what}: {type(exc).__name__} without a message") from exc
        if mention is not None and mention not in str(exc):
            raise AssertionError(f"{what}: message {str(exc)!r} does not mention {mention!r}") from exc
        return None
    if want_exc is not None:
        raise AssertionError(f"{what}: returned {_short(got)}; expected {want_exc}")
    plain = _plain(got)
    if plain != want:
        raise AssertionError(f"{what}: returned {_short(plain)}; expected {_short(want)}")
    if isinstance(want, bool):
        if type(got) is not bool:
            raise AssertionError(f"{what}: returned {_short(got)}, not a bool")
    elif not isinstance(got, np.ndarray) and not _exact_ints(plain):
        raise AssertionError(f"{what}: returned {_short(got)}, not plain ints")
    return got


def _int_like(v: Any) -> bool:
    try:
        O.index(v)
    except O.Raises:
        return False
    return True


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 300 else text[:300] + "..."


# ---------------------------------------------------------------------------- factoring


def _rho(n: int) -> int:
    """A factor of an odd composite n (Pollard-Brent; harness set-up only)."""
    from math import gcd

    c = 1
    while True:
        y, r, q, g, x, ys = 2, 1, 1, 1, 2, 2
        f = lambda v, c=c: (v * v + c) % n  # noqa: E731
        while g == 1:
            x = y
            for _ in range(r):
                y = f(y)
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(128, r - k)):
                    y = f(y)
                    q = q * abs(x - y) % n
                g = gcd(q, n)
                k += 128
            r *= 2
        if g == n:
            g = 1
            while g == 1:
                ys = f(ys)
                g = gcd(abs(x - ys), n)
        if g != n:
            return g
        c += 1


def factorize(n: int) -> list[int]:
    out: list[int] = []
    for p in (2, 3, 5, 7, 11, 13):
        while n % p == 0:
            out.append(p)
            n //= p
    stack = [n] if n > 1 else []
    while stack:
        m = stack.pop()
        if O.is_prime(m):
            out.append(m)
        else:
            d = _rho(m)
            stack += [d, m // d]
    return sorted(out)


#: World sizes at the edges of the core's arithmetic (32-bit fast path, 62 and 63 bits),
#: each with its prime factors, so that they can be split over axes in any way.
SPECIAL_WORLDS = {
    n: factorize(n) for base in (2**32, 2**62, 2**63 - 1) for n in range(base - 2, min(base + 3, I64 + 1))
}
for n in (3037000499**2, 3037000493**2, 2**63 - 25, (2**31 - 1) * (2**32 - 5)):
    SPECIAL_WORLDS[n] = factorize(n)
HUGE_AXES = [2**63 - 1, 2**63 - 2, 2**62, 2**62 + 1, 2**32 + 1, 2**32, 2**32 - 1, 2**31 - 1, 3037000499]
PRIMES = [2, 3, 5, 7, 11, 13, 31, 127, 8191, 65537, 2**31 - 1, 2**31 - 19, 4294967291, 2**61 - 1]
NAMES = ["pipe", "data", "model", "x", "y", "z", "ctx", "ep", "tp", "sp", "w1", "w2"]
BAD_NAMES: list[Any] = ["", "1x", "_a", "class", "a-b", 3, None, b"x"]

# ---------------------------------------------------------------------------- topologies


def gen_topology(src: Source) -> tuple[Any, Any, str]:
    """(axes argument, dims argument, regime) for a ProcessTopology."""
    regime = src.pick(["small", "small", "ones", "special", "huge", "random", "invalid"])
    dims: list[int]
    if regime == "small":
        dims = [1 + src.below(4 if src.u8() % 4 else 7) for _ in range(src.below(6))]
    elif regime == "ones":
        dims = [1] * (1 + src.below(8))
        for _ in range(src.below(3)):
            dims[src.below(len(dims))] = 1 + src.below(5)
    elif regime == "special":
        world = src.pick(sorted(SPECIAL_WORLDS))
        k = 1 + src.below(4)
        dims = [1] * k
        for p in SPECIAL_WORLDS[world]:
            dims[src.below(k)] *= p
    elif regime == "huge":
        dims = [src.pick(HUGE_AXES) if src.u8() % 4 else 2**40 + src.below(2**63 - 2**40)]
        if src.chance(3):
            dims.insert(src.below(2), 1 + src.below(3))
    elif regime == "random":
        dims = [max(1, src.bits(src.below(64))) for _ in range(1 + src.below(4))]
    else:
        dims = [1 + src.below(4) for _ in range(1 + src.below(4))]
    for _ in range(src.below(3) if regime != "small" else 0):
        dims.insert(src.below(len(dims) + 1), 1)
    dims = dims[: len(NAMES)]
    names: list[Any] = []
    pool = list(NAMES)
    for _ in dims:
        names.append(pool.pop(src.below(len(pool))))
    sizes: list[Any] = [encode(src, d) for d in dims]
    axes_arg: Any = names
    dims_arg: Any = sizes
    if regime == "invalid":
        broken = src.below(12)
        i = src.below(len(names))
        if broken == 0:
            sizes[i] = encode(src, src.pick([0, -1, -(2**63), -(2**70), False]))
        elif broken == 1:
            sizes[i] = encode(src, src.pick([2**63, 2**64 - 1, 2**64, 2**100]))
        elif broken == 2:
            sizes.append(encode(src, 2))
        elif broken == 3:
            names.append(src.pick(NAMES))
        elif broken == 4 and len(names) > 1:
            names[i] = names[(i + 1) % len(names)]
        elif broken == 5:
            names[i] = src.pick(BAD_NAMES)
        elif broken == 6:
            sizes[i] = encode(src, dims[i], junk=1)
        elif broken == 7:
            axes_arg = src.pick(["pipe", b"pipe", None, 3, {"pipe": 1}])
        elif broken == 8:
            dims_arg = src.pick(["2", b"\x02", None, 3])
        elif broken == 9:
            axes_arg, dims_arg = tuple(names), tuple(sizes)
        elif broken == 10:
            dims_arg = np.array(dims, dtype=np.uint64 if max(dims) > I64 else np.int64)
        else:
            sizes[i] = encode(src, 2**62 if src.u8() % 2 else 3037000500)
            sizes.append(encode(src, 2**62))
            names.append("extra")
    return axes_arg, dims_arg, regime


def gen_rank(src: Source, world: int) -> int:
    choice = src.u8() % 16
    if choice < 8:
        return src.below(world)
    return src.pick(
        [
            0,
            world - 1,
            world,
            -1,
            I64,
            I64 + 1,
            2**64 - 1,
            2**64 + src.below(99),
            -(2**63),
            -(2**63) - 1,
            2**100 + src.below(2**70),
            -src.below(2**64),
        ]
    )


def gen_coord(src: Source, size: int) -> int:
    choice = src.u8() % 16
    if choice < 11:
        return src.below(size)
    return src.pick([size - 1, size, -1, I64, 2**64, -(2**70), size + src.below(2**62)])


def gen_axes(src: Source, topo: O.Topo, limit: int | None) -> Any:
    """An axes argument: a subset of the axes (product of sizes up to ``limit``), or a mistake."""
    n = len(topo.axes)
    order = list(range(n))
    chosen: list[str] = []
    total = 1
    while order:
        i = order.pop(src.below(len(order)))
        if src.u8() % 2 and (limit is None or total * topo.dims[i] <= limit):
            chosen.append(topo.axes[i])
            total *= topo.dims[i]
    mistake = src.u8() % 24
    if mistake == 0:
        chosen.append(src.pick(["nope", "", "Pipe"]))
    elif mistake == 1 and chosen:
        chosen.append(chosen[0])
    elif mistake == 2:
        return src.pick([None, 3, b"pipe", [3], ["pipe", None]])
    elif mistake == 3:
        return src.pick(["nope", ""])
    if len(chosen) == 1 and src.u8() % 2:
        return chosen[0]
    return tuple(chosen) if src.u8() % 4 == 0 else chosen


# ---------------------------------------------------------------------------- queries


def query(src: Source, t: Any, m: O.Topo) -> None:
    """One call on the real topology ``t``, checked against the model ``m``."""
    w = m.world
    kind = src.u8() % 18
    if kind == 0:
        r = gen_rank(src, w)
        rank = encode(src, r, junk=12)
        got = check(
            f"get_coord({rank!r})",
            lambda: t.get_coord(rank),
            lambda: m.get_coord(rank),
            mention=f"rank {r} " if not 0 <= r < w and _int_like(rank) else None,
        )
        if got is not None:
            assert type(got)._fields == tuple(m.axes), type(got)._fields
    elif kind == 1:
        kw: dict[str, Any] = {}
        order = list(range(len(m.axes)))
        while order:
            i = order.pop(src.below(len(order)))
            if src.chance(16):
                continue  # a missing axis
            kw[m.axes[i]] = encode(src, gen_coord(src, m.dims[i]), junk=16)
        if src.chance(12):
            kw[src.pick(["nope", "Pipe", "pipe_"])] = 0
        check(f"get_rank(**{kw})", lambda: t.get_rank(**kw), lambda: m.get_rank(kw))
    elif kind == 2:
        kw = {}
        free = 1
        for i in sorted(range(len(m.axes)), key=lambda _: src.u8()):
            if free * m.dims[i] <= LIMIT and src.u8() % 2:
                free *= m.dims[i]
            else:
                kw[m.axes[i]] = encode(src, gen_coord(src, m.dims[i]), junk=20)
        if src.chance(16):
            kw[src.pick(["nope", "Pipe"])] = 0
        if m.match_size(kw) <= LIMIT:
            check(f"filter_match(**{kw})", lambda: t.filter_match(**kw), lambda: m.filter_match(kw))
    elif kind == 3:
        i = src.below(len(m.axes)) if m.axes else 0
        name: Any = m.axes[i] if m.axes and src.u8() % 8 else src.pick(["nope", 3, None])
        idx = gen_coord(src, m.dims[i] if m.axes else 1)
        v = encode(src, idx, junk=16)
        if m.match_size({name: v} if isinstance(name, str) else {}) <= LIMIT or not isinstance(name, str):
            check(
                f"get_axis_list({name!r}, {v!r})",
                lambda: t.get_axis_list(name, v),
                lambda: m.filter_match({name: v}),
            )
    elif kind == 4 and w <= LIMIT:
        axes = gen_axes(src, m, None)
        check(f"groups({axes!r})", lambda: t.groups(axes), lambda: m.groups(axes))
    elif kind == 5 and w <= LIMIT:
        name = src.pick([*m.axes, "nope", None, 3]) if m.axes else "nope"
        check(
            f"get_axis_comm_lists({name!r})",
            lambda: t.get_axis_comm_lists(name),
            lambda: m.get_axis_comm_lists(name),
        )
    elif kind in (6, 7):
        r = gen_rank(src, w)
        axes = gen_axes(src, m, LIMIT)
        rank = encode(src, r, junk=16)
        method = src.pick(["group_of", "group_list", "group_head"])
        if method == "group_head":
            count = encode(src, src.pick([0, 1, 2, 3, 5, 16, -1, 2**70, -(2**70)]), junk=16)
            check(
                f"group_head({rank!r}, {axes!r}, {count!r})",
                lambda: t.group_head(rank, axes, count),
                lambda: m.group_head(rank, axes, count),
            )
        else:
            check(
                f"{method}({rank!r}, {axes!r})",
                lambda: getattr(t, method)(rank, axes),
                lambda: m.group_of(rank, axes),
            )
        sized = gen_axes(src, m, None) if src.chance(4) else None
        check(f"group_size({axes!r})", lambda: t.group_size(axes), lambda: m.group_size(axes))
        check(f"shape_text({sized!r})", lambda: t.shape_text(sized), lambda: m.shape_text(sized))
    elif kind == 8:
        r = gen_rank(src, w)
        axes = gen_axes(src, m, None)
        rank = encode(src, r, junk=16)
        check(
            f"group_index({rank!r}, {axes!r})",
            lambda: t.group_index(rank, axes),
            lambda: m.group_index(rank, axes),
        )
    elif kind in (9, 10):
        r = gen_rank(src, w)
        name = src.pick(m.axes) if m.axes and src.u8() % 12 else src.pick(["nope", None, 3])
        size = m.dims[m.axes.index(name)] if name in m.axes else 2
        delta = src.pick(
            [
                1,
                -1,
                0,
                2,
                -2,
                size,
                -size,
                size - 1,
                1 - size,
                size + 1,
                I64,
                -(2**63),
                2**70 + src.below(99),
                -(2**70),
                src.below(2**64) - 2**63,
                src.below(5) - 2,
            ]
        )
        periodic = src.pick([True, False, 0, 1, None, "yes"])
        rank = encode(src, r, junk=20)
        d = encode(src, delta, junk=20)
        check(
            f"shift({rank!r}, {name!r}, {d!r}, {periodic!r})",
            lambda: t.shift(rank, name, d, periodic),
            lambda: m.shift(rank, name, d, bool(periodic)),
        )
    elif kind == 11:
        r = gen_rank(src, w)
        omit = [a for a in m.axes if src.u8() % 3 == 0] + (
            [src.pick([None, 3, "nope"])] if src.chance(4) else []
        )
        inner, outer = src.pick(["_", "-", "", "::", 3]), src.pick(["-", "_", "", " ", None])
        rank = encode(src, r, junk=20)
        call = src.u8() % 3
        if call == 0:
            check(
                f"get_rank_repr({rank!r})",
                lambda: t.get_rank_repr(rank),
                lambda: m.get_rank_repr(rank, ["data", "pipe"], "_", "-"),
            )
        else:
            check(
                f"get_rank_repr({rank!r}, {omit!r}, {inner!r}, {outer!r})",
                lambda: t.get_rank_repr(rank, omit_axes=omit, inner_sep=inner, outer_sep=outer),
                lambda: m.get_rank_repr(rank, omit, inner, outer),
            )
    elif kind == 12:
        bulk(src, t, m)
    elif kind == 13:
        mapping(src, t, m)
    elif kind == 14:
        name = src.pick([*m.axes, "nope", None, 3, ""]) if m.axes else "nope"
        check(f"get_dim({name!r})", lambda: t.get_dim(name), lambda: m.get_dim(name))
    elif kind == 16:
        axes = gen_axes(src, m, None)
        check(f"axis_indices({axes!r})", lambda: t.axis_indices(axes), lambda: m._axes_arg(axes))
    elif kind == 17:
        size = encode(src, src.pick([w, w, w + 1, w - 1, 0, -w, 2**64 + w]), junk=8)

        def model() -> None:
            if m.world != size:
                raise O.Raises("GridSizeError")

        check(f"check_world_size({size!r})", lambda: t.check_world_size(size), model)
        assert repr(t) == f"{type(t).__name__}(axes={m.axes}, dims={m.dims})", repr(t)
    else:
        same_object(t, m)


def bulk(src: Source, t: Any, m: O.Topo) -> None:
    """ranks() and coords() on small arrays of several dtypes and shapes."""
    n = src.below(6)
    dtype = src.pick([np.int64, np.int64, np.int32, np.uint8, np.uint64, np.int8, np.float64])
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None

    def value(v: int) -> int:
        if info is None:
            return v if abs(v) < 2**52 else 0
        return min(max(v, int(info.min)), int(info.max))

    if src.u8() % 2:
        flat = [value(gen_coord(src, d)) for _ in range(n) for d in m.dims]
        shape: tuple[int, ...] = (n, len(m.dims))
        if src.chance(8):
            shape = (len(flat),)
        arr = np.array(flat, dtype=dtype).reshape(shape)
        kind, size = np.dtype(dtype).kind, np.dtype(dtype).itemsize
        check(f"ranks({arr!r})", lambda: t.ranks(arr), lambda: m.ranks(kind, size, shape, flat))
    else:
        flat = [value(gen_rank(src, m.world)) for _ in range(n)]
        shape = (n,) if not src.chance(8) else (n, 1)
        arr = np.array(flat, dtype=dtype).reshape(shape)
        kind, size = np.dtype(dtype).kind, np.dtype(dtype).itemsize
        check(f"coords({arr!r})", lambda: t.coords(arr), lambda: m.coords(kind, size, shape, flat))


def mapping(src: Source, t: Any, m: O.Topo) -> None:
    """The read-only {ProcessCoord: rank} view: lookups, membership, length, first items."""
    view = t.mapping
    coord = tuple(encode(src, gen_coord(src, d), junk=16) for d in m.dims)
    if src.chance(8):
        coord = coord[:-1]

    def model() -> Any:
        try:
            return m.get_rank(dict(zip(m.axes, coord))) if len(coord) == len(m.dims) else "KeyError"
        except O.Raises as r:
            if r.name == "Boom":
                raise
            return "KeyError"

    def real() -> Any:
        try:
            return view[coord]
        except KeyError:
            return "KeyError"

    check(f"mapping[{coord!r}]", real, model)
    check(f"{coord!r} in mapping", lambda: coord in view, lambda: model() != "KeyError")
    assert len(view) == m.world, (len(view), m.world)
    k = src.below(4)
    first = list(islice(view.items(), k))
    want = [(tuple(m.coord(r)), r) for r in range(min(k, m.world))]
    assert [(tuple(c), r) for c, r in first] == want, (first, want)


def same_object(t: Any, m: O.Topo) -> None:
    """Attributes, pickling, equality and hashing."""
    assert t.axes == m.axes and t.get_axis_names() == m.axes, (t.axes, m.axes)
    assert t.dims == m.dims and t.world_size() == m.world and t.ndim == len(m.dims), (t.dims, m.dims)
    assert list(t.strides) == m.strides, (t.strides, m.strides)
    copy = pickle.loads(pickle.dumps(t))
    assert copy == t and hash(copy) == hash(t) and type(copy) is type(t), repr(copy)
    assert repr(copy) == repr(t)


# ---------------------------------------------------------------------------- scenarios


def topology_scenario(src: Source) -> None:
    axes, dims, regime = gen_topology(src)
    maker = src.u8() % 8
    if maker == 0 and regime == "small":
        dims = list(dims)[:2] + [1] * (2 - len(list(dims)[:2]))
        check(
            f"PipeDataParallelTopology({dims!r})",
            lambda: proctopo.PipeDataParallelTopology(num_pp=dims[0], num_dp=dims[1]).dims,
            lambda: O.Topo(["pipe", "data"], dims).dims,
        )
        return
    if maker == 1 and regime == "small":
        dims = list(dims)[:3] + [1] * (3 - len(list(dims)[:3]))
        check(
            f"PipeModelDataParallelTopology({dims!r})",
            lambda: (
                proctopo.PipeModelDataParallelTopology(num_pp=dims[0], num_mp=dims[1], num_dp=dims[2]).axes
            ),
            lambda: O.Topo(["pipe", "data", "model"], [dims[0], dims[2], dims[1]]).axes,
        )
        return
    made: list[Any] = []

    def real() -> Any:
        made.append(proctopo.ProcessTopology(axes, dims))
        return (made[0].axes, made[0].dims)

    models: list[O.Topo] = []

    def model() -> Any:
        models.append(O.Topo(axes, dims))
        return (models[0].axes, models[0].dims)

    check(f"ProcessTopology({axes!r}, {dims!r})", real, model)
    if made and models:
        queries(src, made[0], models[0])


def queries(src: Source, t: Any, m: O.Topo) -> None:
    for _ in range(src.below(24)):
        query(src, t, m)


def from_order_scenario(src: Source) -> None:
    tokens = ["tp", "cp", "ep", "dp", "pp", "x"]
    chosen = [tokens.pop(src.below(len(tokens))) for _ in range(1 + src.below(5))]
    order: Any = "-".join(chosen)
    broken = src.u8() % 16
    if broken == 0:
        order = src.pick(["", "-" + order, order + "-", order.replace("-", "--", 1), None, 3])
    elif broken == 1:
        order = order + "-" + chosen[0]
    sizes: dict[str, Any] = {}
    for name in chosen:
        if src.u8() % 2:
            sizes[name] = encode(
                src, 1 + src.below(4) if src.u8() % 8 else src.pick([0, -1, 2**63, 2**62]), 24
            )
    if src.chance(12):
        sizes[src.pick(["zz", "pipe"])] = 2
    rename: dict[str, Any] | None = None
    if src.u8() % 2:
        rename = dict(proctopo.MEGATRON_TO_DEEPSPEED)
        if src.chance(6):
            rename[src.pick(chosen)] = src.pick(["model", "1a", "_x", 3, ""])
    made: list[Any] = []
    models: list[O.Topo] = []

    def real() -> Any:
        made.append(proctopo.ProcessTopology.from_order(order, rename=rename, **sizes))
        return (made[0].axes, made[0].dims)

    def model() -> Any:
        models.append(O.from_order(order, rename, sizes))
        return (models[0].axes, models[0].dims)

    check(f"from_order({order!r}, rename={rename!r}, **{sizes!r})", real, model)
    if made and models:
        queries(src, made[0], models[0])


def prime_factors_scenario(src: Source) -> None:
    how = src.u8() % 6
    known: list[int] | None = None
    if how == 0:
        n = 1 + src.below(10**6)
        known = factorize(n)
    elif how in (1, 2):
        known, n = [], 1
        for _ in range(src.below(12)):
            p = src.pick(PRIMES)
            if n * p <= I64:
                known.append(p)
                n *= p
        known.sort()
    elif how == 3:
        n = src.bits(1 + src.below(63))
    elif how == 4:
        n = src.pick(sorted(SPECIAL_WORLDS))
        known = SPECIAL_WORLDS[n]
    else:
        n = src.pick([0, -1, -(2**63), I64 + 1, 2**64, 2**100])
    arg = encode(src, n, junk=16)

    def model() -> Any:
        O.prime_factors(arg)
        return known if known is not None else "checked below"

    def real() -> Any:
        got = proctopo.prime_factors(arg)
        if known is not None:
            return got
        product = 1
        for p in got:
            product *= p
        assert product == n, f"prime_factors({n}) = {got}: the product is {product}"
        assert got == sorted(got), f"prime_factors({n}) = {got}: not ascending"
        assert all(O.is_prime(p) for p in got), f"prime_factors({n}) = {got}: not all prime"
        return "checked below"

    check(f"prime_factors({arg!r})", real, model)


def dims_create_scenario(src: Source) -> None:
    entries: list[Any] = []
    raw: list[int] = []
    for _ in range(src.below(6)):
        v = 0 if src.u8() % 3 else 1 + src.below(6)
        if src.chance(16):
            v = src.pick([-1, -(2**63), 2**63, 2**70, 2**62, 2**40])
        raw.append(v)
        entries.append(encode(src, v, junk=24))
    fixed = 1
    for v in raw:
        if v > 0:
            fixed *= v
    rest: list[int] | None
    how = src.u8() % 8
    if how < 4:
        rest, product = [], 1
        for _ in range(src.below(10)):
            p = src.pick(PRIMES[:6]) if src.u8() % 4 else src.pick(PRIMES)
            rest.append(p)
            product *= p
        n = fixed * product
    elif how == 4:
        n, rest = src.bits(1 + src.below(63)), None
    elif how == 5:
        n, rest = src.pick(sorted(SPECIAL_WORLDS)), None
    elif how == 6:
        n, rest = src.pick([0, -1, -5, I64 + 1, 2**64, 2**80]), None
    else:
        n, rest = fixed * (1 + src.below(50)) + src.below(2), None
    arg = encode(src, n, junk=24)
    dims: Any = entries if src.u8() % 8 else tuple(entries)
    if src.chance(24):
        dims = src.pick([None, 3, "00"])

    def model() -> Any:
        r = rest
        if r is None and O.fits(n) and n >= 1 and fixed <= n and n % fixed == 0:
            r = factor_checked(n // fixed)  # the real factoring, itself checked
        return O.dims_create(arg, dims, r)

    check(f"dims_create({arg!r}, {dims!r})", lambda: proctopo.dims_create(arg, dims), model)


def factor_checked(n: int) -> list[int]:
    """proctopo.prime_factors(n), after checking it against the product and a primality test."""
    got = proctopo.prime_factors(n)
    product = 1
    for p in got:
        product *= p
    assert product == n and got == sorted(got) and all(O.is_prime(p) for p in got), (n, got)
    return list(got)


def parse_axes_scenario(src: Source) -> None:
    """The command's name=size words, then queries on the topology they make."""
    from proctopo import cli

    pieces = [
        "pipe",
        "data",
        "model",
        "x",
        "=",
        "=",
        "2",
        "4",
        "0",
        "1",
        "07",
        "_",
        "-",
        "+",
        " ",
        "\u0662",
        "3037000499",
        "99999999999999999999",
        "9223372036854775807",
        "",
        "class",
        "é",
    ]
    words = []
    for _ in range(src.below(5)):
        if src.u8() % 4:
            words.append(f"{src.pick(NAMES)}={1 + src.below(6)}")
        else:
            words.append("".join(src.pick(pieces) for _ in range(1 + src.below(4))))
    made: list[Any] = []
    models: list[O.Topo] = []

    def real() -> Any:
        made.append(cli.parse_axes(words))
        return (made[0].axes, made[0].dims)

    def model() -> Any:
        models.append(O.parse_axes(words))
        return (models[0].axes, models[0].dims)

    check(f"parse_axes({words!r})", real, model)
    if made and models:
        queries(src, made[0], models[0])


SCENARIOS = [topology_scenario] * 5 + [
    from_order_scenario,
    prime_factors_scenario,
    dims_create_scenario,
    parse_axes_scenario,
]


def run_one(data: bytes) -> None:
    """The fuzz target: one input, several scenarios."""
    src = Source(data)
    for _ in range(1 + src.below(3)):
        src.pick(SCENARIOS)(src)
