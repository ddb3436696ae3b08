"""Known values of DeepSpeed's ProcessTopology, re-expressed as facts about proctopo."""

from __future__ import annotations

import pickle

import proctopo
import pytest
from proctopo import (
    PipeDataParallelTopology,
    PipeModelDataParallelTopology,
    ProcessTopology,
    WorldSizeOverflowError,
    prime_factors,
)
from proctopo.topology import _prime_factors


def test_2d_ranks_and_axis_lists() -> None:
    topo = ProcessTopology(axes=["row", "col"], dims=[2, 2])
    assert topo.world_size() == 4
    assert [topo.get_rank(row=r, col=c) for r in (0, 1) for c in (0, 1)] == [0, 1, 2, 3]
    assert topo.get_axis_list(axis="row", idx=0) == [0, 1]
    assert topo.get_axis_list(axis="row", idx=1) == [2, 3]
    assert topo.get_axis_list(axis="col", idx=0) == [0, 2]
    assert topo.get_axis_list(axis="col", idx=1) == [1, 3]


def test_dims_and_names() -> None:
    topo = ProcessTopology(axes=["a", "b", "c"], dims=[2, 3, 4])
    assert topo.world_size() == 24
    assert [topo.get_dim(a) for a in "abc"] == [2, 3, 4]
    assert topo.get_dim("d") == 0
    assert topo.get_dim(["unhashable"]) == 0  # type: ignore[arg-type]
    assert topo.get_axis_names() == ["a", "b", "c"]
    assert topo.axes == ["a", "b", "c"] and topo.dims == [2, 3, 4]


def test_3d_coordinates() -> None:
    topo = ProcessTopology(axes=["a", "b", "c"], dims=[2, 2, 2])
    expect = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    for rank, coord in enumerate(expect):
        assert topo.get_coord(rank) == coord
        assert topo.get_rank(a=coord[0], b=coord[1], c=coord[2]) == rank
    c = topo.get_coord(rank=5)
    assert (c.a, c.b, c.c) == (1, 0, 1)
    assert type(c).__name__ == "ProcessCoord"
    assert c._asdict() == {"a": 1, "b": 0, "c": 1}
    assert c._replace(a=0) == (0, 0, 1)
    assert c == (1, 0, 1) and hash(c) == hash((1, 0, 1))
    assert isinstance(c, topo.ProcessCoord)


def test_comm_lists() -> None:
    topo = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 2, 2])
    assert topo.get_axis_comm_lists("pipe") == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert topo.get_axis_comm_lists("data") == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert topo.get_axis_comm_lists("model") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert topo.get_axis_comm_lists("jeff") == []


def test_filter_match() -> None:
    topo = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 2, 2])
    assert topo.filter_match(pipe=0, data=1) == [2, 3]
    assert [topo.get_coord(r) for r in topo.filter_match(pipe=0, data=1)] == [(0, 1, 0), (0, 1, 1)]
    assert topo.filter_match() == list(range(8))
    assert topo.filter_match(model=1) == [1, 3, 5, 7]
    assert topo.filter_match(pipe=2) == []  # out of range matches nothing, as upstream
    assert topo.filter_match(pipe=-1) == []
    assert topo.filter_match(pipe=1, data=0, model=1) == [5]


def test_rank_repr() -> None:
    topo = ProcessTopology(axes=["a", "b"], dims=[2, 2])
    assert [topo.get_rank_repr(rank=r) for r in range(4)] == [
        "a_00-b_00",
        "a_00-b_01",
        "a_01-b_00",
        "a_01-b_01",
    ]
    assert topo.get_rank_repr(rank=3, inner_sep="+") == "a+01-b+01"
    assert topo.get_rank_repr(rank=3, inner_sep="🤗", outer_sep="_JEFF_") == "a🤗01_JEFF_b🤗01"
    assert topo.get_rank_repr(rank=3, omit_axes=["a"]) == "b_01"
    assert topo.get_rank_repr(rank=3, omit_axes=["a", "b"]) == ""
    topo = ProcessTopology(axes=["pipe", "data"], dims=[2, 2])
    assert [topo.get_rank_repr(rank=r) for r in range(4)] == [""] * 4
    assert topo.get_rank_repr(rank=3, omit_axes=["pipe"]) == "data_01"
    assert topo.get_rank_repr(rank=2, omit_axes=[]) == "pipe_01-data_00"
    topo = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 2, 2])
    assert [topo.get_rank_repr(rank=r) for r in range(8)] == ["model_00", "model_01"] * 4
    big = ProcessTopology(axes=["model"], dims=[123])
    assert big.get_rank_repr(rank=122) == "model_122"
    assert big.get_rank_repr(rank=7) == "model_07"


def test_specialised_topologies() -> None:
    t = PipeDataParallelTopology(num_pp=2, num_dp=3)
    assert t.get_axis_names() == ["pipe", "data"] and t.dims == [2, 3]
    t = PipeModelDataParallelTopology(num_pp=2, num_mp=3, num_dp=4)
    assert t.get_axis_names() == ["pipe", "data", "model"] and t.dims == [2, 4, 3]
    assert t.get_coord(23) == (1, 3, 2)
    assert isinstance(t, ProcessTopology)


def test_prime_factors() -> None:
    assert prime_factors(1) == []
    assert prime_factors(12) == [2, 2, 3]
    assert _prime_factors(97) == [97]
    assert prime_factors(2**62) == [2] * 62
    with pytest.raises(WorldSizeOverflowError, match="n 18446744073709551616 does not fit"):
        prime_factors(2**64)
    for n in range(1, 500):
        f = prime_factors(n)
        prod = 1
        for p in f:
            prod *= p
        assert prod == n and f == sorted(f)
    with pytest.raises(ValueError):
        prime_factors(0)
    with pytest.raises(ValueError):
        prime_factors(-3)


def test_mapping_is_a_read_only_view() -> None:
    topo = ProcessTopology(axes=["pipe", "data"], dims=[2, 3])
    m = topo.mapping
    expect = {topo.ProcessCoord(p, d): p * 3 + d for p in range(2) for d in range(3)}
    assert dict(m) == expect and m == expect
    assert list(m.keys()) == list(expect.keys())
    assert list(m.values()) == list(range(6))
    assert list(m.items()) == list(expect.items())
    assert len(m) == 6 and (1, 2) in m and (2, 0) not in m and "x" not in m
    assert m[(1, 1)] == 4
    with pytest.raises(KeyError):
        m[(0, 3)]
    with pytest.raises(TypeError):
        m[(0, 0)] = 1  # type: ignore[index]


def test_empty_axes_like_upstream() -> None:
    topo = ProcessTopology(axes=[], dims=[])
    assert topo.world_size() == 1
    assert topo.get_coord(0) == ()
    assert topo.get_rank() == 0
    assert topo.filter_match() == [0]


def test_str_is_short_and_objects_compare() -> None:
    topo = PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=16384)
    assert str(topo) == "PipeModelDataParallelTopology(axes=['pipe', 'data', 'model'], dims=[8, 16384, 8])"
    assert topo == ProcessTopology(["pipe", "data", "model"], [8, 16384, 8])
    assert topo != ProcessTopology(["pipe", "data", "model"], [8, 8, 16384])
    assert len({topo, ProcessTopology(["pipe", "data", "model"], [8, 16384, 8])}) == 1
    back = pickle.loads(pickle.dumps(topo))
    assert type(back) is PipeModelDataParallelTopology and back == topo


def test_attributes_cannot_desync() -> None:
    topo = ProcessTopology(axes=["pipe", "data"], dims=[2, 3])
    topo.dims.append(5)
    topo.axes.append("model")
    assert topo.dims == [2, 3] and topo.axes == ["pipe", "data"] and topo.world_size() == 6


def test_million_ranks_answer_at_once() -> None:
    topo = PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=16384)
    assert topo.world_size() == 1_048_576
    assert topo.get_coord(1_048_575) == (7, 16383, 7)
    assert topo.get_rank(pipe=7, data=16383, model=7) == 1_048_575
    assert topo.get_axis_list("pipe", 7)[:3] == [917504, 917505, 917506]
    assert topo.group_of(1_048_575, "data")[:2].tolist() == [7 * 131072 + 7, 7 * 131072 + 15]


def test_public_names() -> None:
    for name in proctopo.__all__:
        assert hasattr(proctopo, name), name


def test_mapping_iterates_in_constant_memory() -> None:
    t = ProcessTopology(["a", "b"], [2**61, 2])
    it = iter(t.mapping)
    assert [next(it), next(it), next(it)] == [(0, 0), (0, 1), (1, 0)]
    assert list(zip(t.mapping.items(), range(2)))[1] == (((0, 1), 1), 1)
