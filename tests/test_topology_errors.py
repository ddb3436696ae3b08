"""Every bad input raises a clear error naming the value and the rule, never via assert."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import (
    CoordinateOutOfRangeError,
    InvalidArgumentError,
    InvalidTopologyError,
    ProcessTopology,
    ProctopoError,
    RankOutOfRangeError,
    UnknownAxisError,
    WorldSizeOverflowError,
    parse_order,
)

T = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 3, 4])


@pytest.mark.parametrize(
    ("axes", "dims", "exc", "text"),
    [
        (["a", "b"], [2, 0], InvalidTopologyError, "axis 'b' has size 0; every size must be at least 1"),
        (["a"], [-3], InvalidTopologyError, "axis 'a' has size -3"),
        (["a"], [2, 3], InvalidTopologyError, "1 axes ['a'] and 2 sizes [2, 3]"),
        (["a", "b"], [2], InvalidTopologyError, "2 axes"),
        (["a", "a"], [2, 2], InvalidTopologyError, "axis name 'a' appears twice"),
        (["1x"], [2], InvalidTopologyError, "'1x' is not allowed"),
        (["_a"], [2], InvalidTopologyError, "'_a' is not allowed"),
        (["class"], [2], InvalidTopologyError, "'class' is not allowed"),
        (["a", "b"], [2**40, 2**40], WorldSizeOverflowError, "1099511627776 * 1099511627776"),
        (["a"], [2**64], WorldSizeOverflowError, "does not fit in a signed 64-bit integer"),
        (["a"], [2.0], TypeError, "the size of axis 'a' must be an integer, got 2.0"),
        (["a"], ["2"], TypeError, "got '2'"),
        ("ab", [2], TypeError, "axes must be a list"),
        ([3], [2], TypeError, "axis 0 must be named by a str"),
        (["a"], 2, TypeError, "dims must be a list"),
    ],
)
def test_bad_construction(axes: object, dims: object, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc) as info:
        ProcessTopology(axes, dims)  # type: ignore[arg-type]
    assert text in str(info.value)


def test_class_hierarchy() -> None:
    assert issubclass(WorldSizeOverflowError, OverflowError) and issubclass(
        WorldSizeOverflowError, ValueError
    )
    assert issubclass(CoordinateOutOfRangeError, AssertionError) and issubclass(
        CoordinateOutOfRangeError, ValueError
    )
    assert issubclass(UnknownAxisError, AttributeError) and issubclass(UnknownAxisError, ValueError)
    assert issubclass(RankOutOfRangeError, ValueError) and issubclass(RankOutOfRangeError, IndexError)
    for cls in (InvalidTopologyError, UnknownAxisError, RankOutOfRangeError, CoordinateOutOfRangeError):
        assert issubclass(cls, ProctopoError) and issubclass(cls, InvalidArgumentError)


@pytest.mark.parametrize(
    ("call", "exc", "text"),
    [
        (
            lambda: T.get_rank(pipe=2, data=0, model=0),
            CoordinateOutOfRangeError,
            "coordinate 2 is out of range for axis 'pipe' of size 2 (valid: 0..1)",
        ),
        (lambda: T.get_rank(pipe=0, data=-1, model=0), CoordinateOutOfRangeError, "coordinate -1"),
        (lambda: T.get_rank(pipe=0, data=0, model=2**80), CoordinateOutOfRangeError, str(2**80)),
        (lambda: T.get_rank(pipe=0, data=0), InvalidArgumentError, "missing 'model'"),
        (lambda: T.get_rank(pipe=0, data=0, model=0, foo=1), UnknownAxisError, "unknown axis 'foo'"),
        (lambda: T.get_rank(pipe=0, data=0, mdl=0), UnknownAxisError, "unknown axis 'mdl'; the axes are"),
        (lambda: T.get_rank(pipe=0.0, data=0, model=0), TypeError, "axis 'pipe' must be an integer, got 0.0"),
        (lambda: T.get_rank(pipe="0", data=0, model=0), TypeError, "got '0' (str)"),
        (
            lambda: T.get_coord(24),
            RankOutOfRangeError,
            "rank 24 is not in the topology: ranks run from 0 to 23",
        ),
        (lambda: T.get_coord(-1), RankOutOfRangeError, "rank -1"),
        (lambda: T.get_coord(2**70), RankOutOfRangeError, str(2**70)),
        (lambda: T.get_coord(1.0), TypeError, "rank must be an integer, got 1.0"),
        (lambda: T.get_coord(None), TypeError, "rank must be an integer, got None"),
        (lambda: T.filter_match(modle=0), UnknownAxisError, "unknown axis 'modle'"),
        (lambda: T.filter_match(pipe=0.5), TypeError, "the value for axis 'pipe' must be an integer"),
        (lambda: T.get_axis_list("modle", 0), UnknownAxisError, "unknown axis 'modle'"),
        (lambda: T.get_axis_list("pipe", "0"), TypeError, "must be an integer"),
        (lambda: T.get_rank_repr(99), RankOutOfRangeError, "rank 99"),
        (lambda: T.groups("modle"), UnknownAxisError, "unknown axis 'modle'"),
        (lambda: T.groups(["pipe", "pipe"]), InvalidArgumentError, "axis 'pipe' is listed twice"),
        (lambda: T.groups([0]), TypeError, "axes must be an axis name or a list of axis names, got [0]"),
        (lambda: T.group_of(0, None), TypeError, "got None"),
        (lambda: T.group_of(24, "pipe"), RankOutOfRangeError, "rank 24"),
        (lambda: T.group_index(0, ["x"]), UnknownAxisError, "unknown axis 'x'"),
        (lambda: T.shift(0, "x"), UnknownAxisError, "unknown axis 'x'"),
        (lambda: T.shift(99, "pipe"), RankOutOfRangeError, "rank 99"),
        (lambda: T.shift(0, "pipe", 0.5), TypeError, "delta must be an integer"),
        (lambda: T.ranks([[0, 0]]), InvalidArgumentError, "shape (n, 3)"),
        (
            lambda: T.ranks([[0, 0, 4]]),
            CoordinateOutOfRangeError,
            "coordinate 4 is out of range for axis 'model'",
        ),
        (lambda: T.ranks([[0.5, 0, 0]]), TypeError, "coords must hold integers, got dtype float64"),
        (lambda: T.coords([[0]]), InvalidArgumentError, "1-D"),
        (lambda: T.coords([0, 24]), RankOutOfRangeError, "rank 24"),
        (
            lambda: T.coords(np.array([2**63], dtype=np.uint64)),
            RankOutOfRangeError,
            "rank 9223372036854775808 is not in the topology",
        ),
        (
            lambda: T.ranks(np.array([[0, 0, 2**64 - 1]], dtype=np.uint64)),
            CoordinateOutOfRangeError,
            "coordinate 18446744073709551615 is out of range for axis 'model'",
        ),
    ],
)
def test_bad_queries(call: object, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc) as info:
        call()  # type: ignore[operator]
    assert text in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ProcessTopology(["pipe", "\udcff"], [2, 2]),
        lambda: T.get_dim("\udcff"),
        lambda: T.group_size(["pipe", "\udcff"]),
        lambda: T.get_rank(**{"\udcff": 1}),
        lambda: T.groups("\udcff"),
        lambda: parse_order("tp-\udcff"),
    ],
)
def test_text_without_a_utf8_form_is_named(call: object) -> None:
    # A lone surrogate (what os.fsdecode makes of undecodable bytes) has no UTF-8 form.
    with pytest.raises(InvalidArgumentError, match=r"udcff' is not valid text: it holds a lone surrogate"):
        call()  # type: ignore[operator]


def test_numpy_integers_and_bools_are_accepted() -> None:
    assert T.get_rank(pipe=np.int8(1), data=np.uint16(2), model=np.int64(3)) == 23
    assert T.get_coord(np.int32(23)) == (1, 2, 3)
    assert T.get_rank(pipe=True, data=0, model=0) == 12
    assert T.filter_match(pipe=np.int64(1), data=np.uint8(2)) == [20, 21, 22, 23]
    assert T.coords(np.array([23], dtype=np.uint8)).tolist() == [[1, 2, 3]]
    assert T.ranks(np.zeros((0, 3), dtype=np.int64)).tolist() == []
    assert T.coords([]).shape == (0, 3)
    assert T.shift(0, "pipe", 2**70 + 1) == 12
    assert T.shift(0, "pipe", 2**70, periodic=False) == -1


def test_errors_survive_python_O() -> None:
    code = (
        "import proctopo\n"
        "t = proctopo.ProcessTopology(['pipe', 'data'], [2, 2])\n"
        "try:\n    t.get_rank(pipe=5, data=0)\nexcept AssertionError as e:\n    print('raised', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("raised coordinate 5 is out of range")


def test_failed_calls_leave_the_topology_intact() -> None:
    t = ProcessTopology(axes=["pipe", "data"], dims=[2, 3])
    for bad in (lambda: t.get_rank(pipe=9, data=0), lambda: t.groups("x"), lambda: t.ranks([[5, 5]])):
        with pytest.raises(ProctopoError):
            bad()
    assert t.get_axis_comm_lists("data") == [[0, 1, 2], [3, 4, 5]] and t.world_size() == 6


_JUNK = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.sampled_from([np.int64(2), np.uint64(2**64 - 1), np.float32(1.0), np.int8(-1), object()]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["get_rank", "get_coord", "filter_match", "get_axis_list", "groups", "group_of", "shift", "rank_repr"]
    ),
    _JUNK,
    _JUNK,
)
def test_junk_arguments_raise_only_clear_errors(method: str, a: object, b: object) -> None:
    """Whatever crosses into the core comes back as a value or a TypeError/ProctopoError."""
    t = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 3, 4])
    calls = {
        "get_rank": lambda: t.get_rank(pipe=a, data=b, model=0),
        "get_coord": lambda: t.get_coord(a),
        "filter_match": lambda: t.filter_match(pipe=a, model=b),
        "get_axis_list": lambda: t.get_axis_list("data", a),
        "groups": lambda: t.groups(a),  # type: ignore[arg-type]
        "group_of": lambda: t.group_of(a, "pipe"),
        "shift": lambda: t.shift(a, "pipe", b),
        "rank_repr": lambda: t.get_rank_repr(a, omit_axes=["pipe"], inner_sep=b),
    }
    try:
        calls[method]()
    except (TypeError, ProctopoError) as exc:
        assert str(exc)
    assert t.get_axis_comm_lists("data") == [
        [0, 4, 8],
        [1, 5, 9],
        [2, 6, 10],
        [3, 7, 11],
        [12, 16, 20],
        [13, 17, 21],
        [14, 18, 22],
        [15, 19, 23],
    ]


def test_shift_wraps_without_overflow_near_the_64_bit_limit() -> None:
    t = ProcessTopology(["x", "y"], [2**62 + 1, 1])
    assert t.shift(2**62, "x", 2**62) == 2**62 - 1  # (2**62 + 2**62) mod (2**62 + 1)
    assert t.shift(2**62, "x", -(2**63) + 1) == (2**62 - (2**63 - 1)) % (2**62 + 1)
    big = ProcessTopology(["x"], [2**63 - 1])
    assert big.shift(2**63 - 2, "x", 1) == 0
    assert big.shift(2**63 - 2, "x", 2**62, periodic=False) == -1
    assert big.shift(0, "x", -(2**63) + 1, periodic=False) == -1
    assert big.shift(1, "x", 2**63 - 3, periodic=False) == 2**63 - 2


def test_int_subclasses_and_index_types_convert_exactly() -> None:
    import enum
    from fractions import Fraction

    class Stage(enum.IntEnum):
        FIRST = 0
        LAST = 1

    assert T.get_rank(pipe=Stage.LAST, data=0, model=0) == 12
    assert T.get_coord(Stage.LAST) == (0, 0, 1)
    assert ProcessTopology(["a"], [Stage.LAST]).dims == [1]
    for bad in (np.float32(2.7), Fraction(2, 1), 2.0):
        with pytest.raises(TypeError, match="the size of axis 'a' must be an integer"):
            ProcessTopology(["a"], [bad])  # type: ignore[list-item]
    with pytest.raises(RankOutOfRangeError, match="rank 18446744073709551615 is not in the topology"):
        T.coords(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(TypeError, match="ranks must hold integers, got dtype float64"):
        T.coords(np.array([1.0]))


def test_sizes_wider_than_64_bits_are_named_exactly() -> None:
    with pytest.raises(InvalidTopologyError, match=r"axis 'b' has size -1267650600228229401496703205376;"):
        ProcessTopology(["a", "b"], [2, -(2**100)])
    with pytest.raises(
        WorldSizeOverflowError, match=r"the world size 2 \* 1267650600228229401496703205376 does"
    ):
        ProcessTopology(["a", "b"], [2, 2**100])
    with pytest.raises(
        InvalidTopologyError, match=r"2 axes \['a', 'b'\] and 1 sizes \[1267650600228229401496703205376\]"
    ):
        ProcessTopology(["a", "b"], [2**100])


def test_many_axes_and_repeated_names() -> None:
    names = [f"a{i}" for i in range(20_000)]
    t = ProcessTopology(names, [1] * len(names))
    assert t.world_size() == 1 and t.get_coord(0) == (0,) * 20_000
    with pytest.raises(InvalidTopologyError, match=r"axis name 'a7' appears twice \(positions 7 and 19999\)"):
        ProcessTopology([*names[:-1], "a7"], [1] * len(names))


def test_core_objects_hash_like_they_compare() -> None:
    from proctopo import _core

    a, b = _core.Topology(["x", "y"], [2, 3]), _core.Topology(["x", "y"], [2, 3])
    assert a == b and hash(a) == hash(b) and a != _core.Topology(["x", "y"], [3, 2])
    assert len({a, b}) == 1
    assert (a == "x") is False


def test_uninitialised_core_objects_raise_instead_of_reading_garbage() -> None:
    from proctopo import _core

    t = _core.Topology.__new__(_core.Topology)
    for call in (lambda: t.world_size, lambda: t == t, lambda: t.match_kwargs({}), lambda: hash(t)):
        with pytest.raises(TypeError, match="never initialised"):
            call()
    with pytest.raises(TypeError, match="never initialised"):
        _ = _core.Topology(["a"], [2]) == t


def test_wrong_argument_types_get_named_not_a_signature_dump() -> None:
    from proctopo import _core

    cases = [
        (lambda: T.shift(0, None), "axis names must be str, got None"),  # type: ignore[arg-type]
        (lambda: T._core.dim(None), "axis names must be str, got None"),  # type: ignore[arg-type]
        (lambda: T.get_rank_repr(0, omit_axes=[None]), None),  # DeepSpeed skips non-str names
        (lambda: _core.parse_order(3), "order must be a str, got 3"),  # type: ignore[arg-type]
        (lambda: _core.Topology.coord_of(5, 1), "expected a proctopo._core.Topology, got 5"),
    ]
    for call, text in cases:
        if text is None:
            assert call() == "pipe_00-data_00-model_00"
            continue
        with pytest.raises(TypeError) as info:
            call()
        assert text in str(info.value) and "incompatible function arguments" not in str(info.value)


def test_enumeration_near_the_top_of_the_64_bit_range() -> None:
    t = ProcessTopology(["a", "b", "c"], [2, 2**60, 3])
    top = t.world_size() - 1
    assert t.filter_match(a=1, b=2**60 - 1) == [top - 2, top - 1, top]
    assert t.group_list(top, ["a", "c"]) == [
        r for r in (top - 3 * 2**60 - 2, top - 3 * 2**60 - 1, top - 3 * 2**60, top - 2, top - 1, top)
    ]
    assert t.shift(top, "b", 1) == top - (2**60 - 1) * 3


def test_prime_factors_of_large_primes_and_semiprimes() -> None:
    from proctopo import prime_factors

    assert prime_factors(2**61 - 1) == [2**61 - 1]
    assert prime_factors(2**63 - 25) == [2**63 - 25]
    assert prime_factors((2**31 - 1) * (2**31 - 19)) == [2**31 - 19, 2**31 - 1]
    assert prime_factors(2**62) == [2] * 62


# Names no topology accepts, each holding a character a C string or a plain quote would lose.
ODD_NAMES = ["pi\x00pe", "a\nb\tc\rd", "it's", "both'\"", "back\\slash", "\x85nel\x7f", "x\x1f"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_every_error_that_quotes_a_name_carries_it_whole(name: str) -> None:
    """The core writes a name as Python's repr does (escaped, quoted): no text is cut at a NUL."""
    from proctopo import _core

    q = repr(name)
    twice, empty = f"{name}-dp-{name}", f"{name}--dp"
    other = _core.Topology([name, "c"], [2, 2])  # the core alone has no rule on the characters
    cases: list[tuple[object, type[Exception], str]] = [
        (lambda: T.get_rank(**{name: 1, "data": 0, "model": 0}), UnknownAxisError,
         f"unknown axis {q}; the axes are ['pipe', 'data', 'model']"),
        (lambda: T.axis_indices([name]), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: T.group_size([name]), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: T.shape_text([name]), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: T.group_head(0, name, 2), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: T.filter_match(**{name: 0}), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: T.groups([name]), UnknownAxisError, f"unknown axis {q}; the axes are"),
        (lambda: ProcessTopology.from_order("tp-dp", tp=2, **{name: 2}), UnknownAxisError,
         f"unknown axis {q}"),
        (lambda: other.axis_indices([name, name]), InvalidArgumentError, f"axis {q} is listed twice"),
        (lambda: other.rank_of_kwargs({"c": 0}), InvalidArgumentError, f"missing {q}; use filter_match()"),
        (lambda: other.rank_of_kwargs({name: 5, "c": 0}), CoordinateOutOfRangeError,
         f"coordinate 5 is out of range for axis {q} of size 2 (valid: 0..1)"),
        (lambda: other.rank_of_kwargs({name: 0.5, "c": 0}), TypeError,
         f"the coordinate for axis {q} must be an integer, got 0.5"),
        (lambda: other.match_kwargs({name: "0"}), TypeError, f"the value for axis {q} must be an integer"),
        (lambda: other.dim("x" + name), None, ""),  # DeepSpeed's get_dim: 0, no error
        (lambda: _core.Topology([name], [0]), InvalidTopologyError,
         f"axis {q} has size 0; every size must be at least 1"),
        (lambda: _core.Topology([name, name], [2, 2]), InvalidTopologyError,
         f"axis name {q} appears twice (positions 0 and 1); names must be unique"),
        (lambda: _core.check_sizes({name: 2**64}), WorldSizeOverflowError, f"the size of axis {q} {2**64}"),
        (lambda: _core.Topology([name], [2.0]), TypeError, f"the size of axis {q} must be an integer"),
        (lambda: _core.Topology(["a", "b"], [2]), InvalidTopologyError, "2 axes ['a', 'b'] and 1 sizes"),
        (lambda: _core.check_sizes({name: 0}), InvalidTopologyError, f"axis {q} has size 0"),
        (lambda: _core.check_axis_names([name, name]), InvalidTopologyError, f"axis name {q} appears twice"),
        (lambda: _core.Topology.from_order("a-" + name, {name: 2.0}), TypeError,
         f"the size of axis {q} must be an integer"),
        (lambda: _core.parse_order(twice), InvalidArgumentError, f"order {twice!r} names {q} twice"),
        (lambda: _core.parse_order(empty), InvalidArgumentError, f"order {empty!r} has an empty name"),
        (lambda: _core.Topology([name, "c"], [2, 2]).coord_of(4), RankOutOfRangeError,
         "rank 4 is not in the topology: ranks run from 0 to 3"),
    ]  # fmt: skip
    for call, exc, text in cases:
        if exc is None:
            assert call() == 0  # type: ignore[operator]
            continue
        with pytest.raises(exc) as info:
            call()  # type: ignore[operator]
        assert text in str(info.value), (name, text, str(info.value))
        assert "\x00" not in str(info.value)
