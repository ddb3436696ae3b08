"""Megatron order strings and MPI_Dims_create, with megatron-core's RankGenerator as the oracle."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from helpers import require
from proctopo import (
    MEGATRON_TO_DEEPSPEED,
    InvalidArgumentError,
    ProcessTopology,
    UnknownAxisError,
    WorldSizeOverflowError,
    dims_create,
)

pytestmark = pytest.mark.torch  # megatron-core is the oracle of the rank generator test


def test_from_order_reverses_megatron_order() -> None:
    t = ProcessTopology.from_order("tp-cp-ep-dp-pp", tp=2, dp=3, pp=2)
    assert t.axes == ["pp", "dp", "ep", "cp", "tp"] and t.dims == [2, 3, 1, 1, 2]
    t = ProcessTopology.from_order("tp-dp-pp", tp=8, dp=4, pp=2, rename=MEGATRON_TO_DEEPSPEED)
    assert t.axes == ["pipe", "data", "model"] and t.dims == [2, 4, 8]
    assert t == ProcessTopology(["pipe", "data", "model"], [2, 4, 8])


@pytest.mark.parametrize(
    ("order", "sizes", "exc", "text"),
    [
        ("tp--dp", {}, InvalidArgumentError, "has an empty name"),
        ("tp-dp-tp", {}, InvalidArgumentError, "names 'tp' twice"),
        ("tp-dp", {"pp": 2}, UnknownAxisError, "unknown axis 'pp'; the axes are ['dp', 'tp']"),
        ("tp-dp", {"tp": 0}, InvalidArgumentError, "axis 'tp' has size 0"),
    ],
)
def test_from_order_errors(order: str, sizes: dict[str, int], exc: type[Exception], text: str) -> None:
    with pytest.raises(exc) as info:
        ProcessTopology.from_order(order, **sizes)
    assert text in str(info.value)


def test_groups_match_megatron_rank_generator() -> None:
    ps = require("megatron.core.parallel_state")
    rng = random.Random(7)
    tokens = ["tp", "cp", "ep", "dp", "pp"]
    for _ in range(30):
        sizes = {t: rng.choice([1, 2, 3]) for t in tokens}
        sizes[rng.choice(["ep", "cp"])] = 1  # RankGenerator allows only one of them above 1
        order = "-".join(rng.sample(tokens, len(tokens)))
        gen = ps.RankGenerator(
            tp=sizes["tp"], ep=sizes["ep"], dp=sizes["dp"], pp=sizes["pp"], cp=sizes["cp"], order=order
        )
        topo = ProcessTopology.from_order(order, **sizes)
        for k in (1, 2):
            for subset in itertools.combinations(tokens, k):
                assert topo.groups(list(subset)).tolist() == gen.get_ranks("-".join(subset)), (order, subset)


def test_dims_create_like_mpi() -> None:
    assert dims_create(6, [0, 0]) == [3, 2]
    assert dims_create(7, [0, 0]) == [7, 1]
    assert dims_create(6, [0, 3, 0]) == [2, 3, 1]
    assert dims_create(16, [0, 0, 0]) == [4, 2, 2]
    with pytest.raises(InvalidArgumentError, match="does not divide 7"):
        dims_create(7, [0, 3, 0])
    with pytest.raises(InvalidArgumentError, match="entries must be 0"):
        dims_create(8, [-2, 0])
    with pytest.raises(TypeError):
        dims_create(8.0, [0])  # type: ignore[arg-type]
    for n in range(1, 200):
        d = dims_create(n, [0, 0, 0])
        assert d[0] * d[1] * d[2] == n and d == sorted(d, reverse=True)


def test_dims_create_rejects_values_past_64_bits() -> None:
    for args, name in (((2**64, [0]), "n"), ((8, [-(2**70), 0]), "dims[0]"), ((8, [0, 2**70]), "dims[1]")):
        with pytest.raises(
            WorldSizeOverflowError, match=rf"^{re.escape(name)} -?\d+ does not fit in a signed 64-bit"
        ):
            dims_create(*args)  # type: ignore[arg-type]


def test_dims_create_never_overflows() -> None:
    # Fixed entries whose product passes 2**63 - 1 are reported, never wrapped (or divided by zero).
    for dims in ([3, 2**62, 2], [3, 2**62], [2**62, 2**62, 0]):
        with pytest.raises(InvalidArgumentError, match="multiply to more than 9223372036854775807"):
            dims_create(2**63 - 1, dims)
