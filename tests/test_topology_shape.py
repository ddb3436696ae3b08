"""The small shape rules: group size, shape text, Megatron order strings, group heads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import InvalidArgumentError, ProcessTopology, UnknownAxisError, parse_order
from test_topology_props import topologies


def test_group_size_is_the_product_over_the_axes() -> None:
    topo = ProcessTopology(["pipe", "data", "model"], [2, 3, 4])
    assert topo.group_size("data") == 3
    assert topo.group_size(["model", "pipe"]) == 8
    assert topo.group_size(("pipe", "data", "model")) == 24
    assert topo.group_size([]) == 1
    huge = ProcessTopology(["a", "b"], [3037000499, 3037000499])
    assert huge.group_size(["a", "b"]) == 3037000499**2  # exact, no table built


@pytest.mark.parametrize(
    ("axes", "exc", "text"),
    [
        ("nope", UnknownAxisError, "unknown axis 'nope'; the axes are ['pipe', 'data']"),
        (["data", "nope"], UnknownAxisError, "unknown axis 'nope'"),
        (["data", "data"], InvalidArgumentError, "axis 'data' is listed twice"),
    ],
)
def test_group_size_and_shape_text_refuse_bad_axes(axes: object, exc: type[Exception], text: str) -> None:
    topo = ProcessTopology(["pipe", "data"], [2, 4])
    for call in (topo.group_size, topo.shape_text, topo.groups):
        with pytest.raises(exc) as info:
            call(axes)  # type: ignore[operator]
        assert text in str(info.value)


def test_shape_text() -> None:
    topo = ProcessTopology(["pipe", "data", "model"], [2, 4, 1])
    assert topo.shape_text() == "pipe=2 x data=4 x model=1"
    assert topo.shape_text("data") == "data=4"
    assert topo.shape_text(["model", "pipe"]) == "model=1 x pipe=2"
    assert topo.shape_text([]) == "(no axes)"
    assert ProcessTopology([], []).shape_text() == "(no axes)"
    assert topo._core.describe() == f"{topo.shape_text()} (8 ranks)"


def test_parse_order_lists_the_names_as_written() -> None:
    assert parse_order("tp-cp-ep-dp-pp") == ["tp", "cp", "ep", "dp", "pp"]
    assert parse_order("tp") == ["tp"]
    assert ProcessTopology.from_order("tp-cp-dp-pp").axes == parse_order("tp-cp-dp-pp")[::-1]
    with pytest.raises(InvalidArgumentError, match=r"^order 'tp--dp' has an empty name"):
        parse_order("tp--dp")
    with pytest.raises(InvalidArgumentError, match=r"^order 'tp-dp-tp' names 'tp' twice$"):
        parse_order("tp-dp-tp")
    with pytest.raises(TypeError, match=r"^order must be a str, got 3$"):
        parse_order(3)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(topologies(), st.data())
def test_group_size_and_head_agree_with_the_group(topo: ProcessTopology, data: st.DataObject) -> None:
    names = topo.axes
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    size = topo.group_size(chosen)
    assert size == int(np.prod([topo.get_dim(a) for a in chosen], dtype=np.int64))
    assert topo.groups(chosen).shape == (topo.world_size() // size, size)
    rank = data.draw(st.integers(0, topo.world_size() - 1))
    group = topo.group_list(rank, chosen)
    count = data.draw(st.integers(0, size + 2))
    assert topo.group_head(rank, chosen, count) == group[:count]
