"""Hypothesis properties with NumPy (row-major, order='C') as the independent oracle."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import ProcessTopology, _core

NAMES = ["pipe", "data", "model", "expert", "context", "seq"]


@st.composite
def topologies(draw: st.DrawFn, max_world: int = 4096) -> ProcessTopology:
    n = draw(st.integers(min_value=1, max_value=5))
    names = draw(st.permutations(NAMES))[:n]
    dims: list[int] = []
    world = 1
    for _ in range(n):
        d = draw(st.integers(min_value=1, max_value=max(1, min(9, max_world // world))))
        dims.append(d)
        world *= d
    return ProcessTopology(names, dims)


@settings(max_examples=150, deadline=None)
@given(topologies(), st.data())
def test_rank_coord_round_trip(topo: ProcessTopology, data: st.DataObject) -> None:
    w = topo.world_size()
    assert w == int(np.prod(topo.dims))
    ranks = np.array(data.draw(st.lists(st.integers(0, w - 1), min_size=1, max_size=50)))
    oracle = np.stack(np.unravel_index(ranks, topo.dims), axis=1)
    coords = topo.coords(ranks)
    assert coords.dtype == np.int64
    np.testing.assert_array_equal(coords, oracle)
    np.testing.assert_array_equal(topo.ranks(coords), ranks)
    np.testing.assert_array_equal(topo.ranks(oracle), np.ravel_multi_index(tuple(oracle.T), topo.dims))
    for r in ranks[:10].tolist():
        c = topo.get_coord(r)
        assert list(c) == oracle[ranks.tolist().index(r)].tolist()
        assert topo.get_rank(**c._asdict()) == r


@settings(max_examples=150, deadline=None)
@given(topologies(), st.data())
def test_groups_are_the_numpy_partition(topo: ProcessTopology, data: st.DataObject) -> None:
    names = topo.get_axis_names()
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    table = topo.groups(chosen)
    # Oracle: move the chosen axes last (in topology order), flatten the rest row-major.
    grid = np.arange(topo.world_size()).reshape(topo.dims)
    vary = sorted(names.index(a) for a in chosen)
    other = [i for i in range(len(names)) if i not in vary]
    expect = grid.transpose(other + vary).reshape(-1, int(np.prod([topo.dims[i] for i in vary])))
    np.testing.assert_array_equal(table, expect)
    # A partition: disjoint, covering, equal sizes.
    assert sorted(table.ravel().tolist()) == list(range(topo.world_size()))
    r = data.draw(st.integers(0, topo.world_size() - 1))
    row, col = topo.group_index(r, chosen)
    assert table[row, col] == r
    np.testing.assert_array_equal(topo.group_of(r, chosen), table[row])
    if len(chosen) == 1:
        assert table.tolist() == topo.get_axis_comm_lists(chosen[0])


@settings(max_examples=150, deadline=None)
@given(topologies(), st.data())
def test_filter_match_equals_numpy_mask(topo: ProcessTopology, data: st.DataObject) -> None:
    names = topo.get_axis_names()
    crit = {
        a: data.draw(st.integers(-1, topo.get_dim(a)))
        for a in data.draw(st.lists(st.sampled_from(names), unique=True))
    }
    coords = np.stack(np.unravel_index(np.arange(topo.world_size()), topo.dims), axis=1)
    mask = np.ones(topo.world_size(), dtype=bool)
    for a, v in crit.items():
        mask &= coords[:, names.index(a)] == v
    assert topo.filter_match(**crit) == np.flatnonzero(mask).tolist()
    a = data.draw(st.sampled_from(names))
    idx = data.draw(st.integers(-1, topo.get_dim(a)))
    assert topo.get_axis_list(a, idx) == np.flatnonzero(coords[:, names.index(a)] == idx).tolist()


@settings(max_examples=100, deadline=None)
@given(topologies(max_world=512), st.data())
def test_shift_and_repr(topo: ProcessTopology, data: st.DataObject) -> None:
    names = topo.get_axis_names()
    r = data.draw(st.integers(0, topo.world_size() - 1))
    a = data.draw(st.sampled_from(names))
    delta = data.draw(st.integers(-20, 20))
    i, d = names.index(a), topo.get_dim(a)
    c = list(topo.get_coord(r))
    wrapped = c.copy()
    wrapped[i] = (c[i] + delta) % d
    assert topo.shift(r, a, delta) == topo.get_rank(**dict(zip(names, wrapped)))
    edge = topo.shift(r, a, delta, periodic=False)
    assert edge == (topo.get_rank(**dict(zip(names, wrapped))) if 0 <= c[i] + delta < d else -1)
    omit = data.draw(st.lists(st.sampled_from([*names, "data", "pipe"])))
    expect = "-".join(f"{n}_{v:02d}" for n, v in zip(names, c) if n not in omit)
    assert topo.get_rank_repr(r, omit_axes=omit) == expect


def test_mapping_iterates_like_itertools_product() -> None:
    topo = ProcessTopology(["a", "b", "c"], [2, 3, 2])
    keys = list(topo.mapping)
    assert keys == list(itertools.product(range(2), range(3), range(2)))
    assert [topo.mapping[k] for k in keys] == list(range(12))


_ARGS = st.one_of(
    st.integers(min_value=-3, max_value=40),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.sampled_from([np.int64(3), np.uint8(1), 1.0, "1", None, 2**63, -(2**63)]),
)
_AXES = st.one_of(
    st.sampled_from([*NAMES, "nope"]),
    st.lists(st.sampled_from([*NAMES, "nope"]), max_size=3),
    st.lists(st.sampled_from(NAMES), max_size=3).map(tuple),
    st.sampled_from([None, 3, b"pipe"]),
)


def _outcome(call: object) -> tuple[str, object]:
    try:
        return "value", call()  # type: ignore[operator]
    except Exception as exc:  # the class and the message must agree, whatever they are
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(topologies(max_world=512), st.data())
def test_fast_entries_give_what_the_python_methods_give(topo: ProcessTopology, data: st.DataObject) -> None:
    """Every fast entry of the core answers (value or error) exactly as the method it wraps."""
    names = topo.axes
    kw = data.draw(st.dictionaries(st.sampled_from([*names, "nope"]), _ARGS, max_size=len(names) + 1))
    full = {a: data.draw(st.integers(-1, topo.get_dim(a))) for a in names}
    rank, axis, axes = data.draw(_ARGS), data.draw(st.sampled_from([*names, "nope", 5])), data.draw(_AXES)
    cls = type(topo)
    calls = {
        "get_coord": ((rank,), {}),
        "get_rank": ((), full if data.draw(st.booleans()) else kw),
        "filter_match": ((), kw),
        "get_axis_list": ((axis, rank), {}),
        "get_axis_comm_lists": ((axis,), {}),
        "group_list": ((rank, axes), {}),
    }
    assert set(calls) == set(_core.fast_method_names)  # every entry of the core's table is tried
    for name, (args, kwargs) in calls.items():
        fast = getattr(cls, name)
        slow = fast.__wrapped__
        assert fast is not slow and slow.__name__ == name
        got = _outcome(lambda f=fast, a=args, k=kwargs: f(topo, *a, **k))  # type: ignore[misc]
        want = _outcome(lambda f=slow, a=args, k=kwargs: f(topo, *a, **k))  # type: ignore[misc]
        assert got == want, (name, args, kwargs)
        if name == "get_coord" and got[0] == "value":
            assert type(got[1]) is topo.ProcessCoord
    assert _outcome(lambda: topo.get_coord(rank=0)) == ("value", topo.get_coord(0))
