"""Differential test: proctopo against the real DeepSpeed ProcessTopology on random layouts."""

from __future__ import annotations

import random

import pytest
from helpers import require
from proctopo import ProcessTopology

pytestmark = pytest.mark.torch  # DeepSpeed is the oracle of every test here

NAMES = ["pipe", "data", "model", "expert", "sequence", "x"]


def _random_topologies(count: int, seed: int) -> list[tuple[list[str], list[int]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 4)
        names = rng.sample(NAMES, n)
        dims = [rng.randint(1, 5) for _ in range(n)]
        out.append((names, dims))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_every_method_matches_deepspeed(seed: int) -> None:
    ds = require("deepspeed.runtime.pipe.topology")
    rng = random.Random(1000 + seed)
    for axes, dims in _random_topologies(40, seed):
        ref = ds.ProcessTopology(axes=list(axes), dims=list(dims))
        ours = ProcessTopology(axes=list(axes), dims=list(dims))
        assert ours.world_size() == ref.world_size()
        assert ours.get_axis_names() == ref.get_axis_names()
        assert ours.axes == ref.axes and ours.dims == ref.dims
        assert dict(ours.mapping) == ref.mapping
        assert list(ours.mapping.items()) == list(ref.mapping.items())
        for a in [*axes, "nope", "data", "pipe", "model"]:
            assert ours.get_dim(a) == ref.get_dim(a)
            assert ours.get_axis_comm_lists(a) == ref.get_axis_comm_lists(a)
        for r in range(ref.world_size()):
            c = ours.get_coord(r)
            assert c == ref.get_coord(r) and c._fields == ref.get_coord(r)._fields
            assert ours.get_rank(**c._asdict()) == ref.get_rank(**c._asdict())
            assert ours.get_rank_repr(r) == ref.get_rank_repr(r)
            omit = rng.sample(axes, rng.randint(0, len(axes)))
            assert ours.get_rank_repr(r, omit_axes=omit, inner_sep=":", outer_sep="/") == ref.get_rank_repr(
                r, omit_axes=omit, inner_sep=":", outer_sep="/"
            )
        for a, d in zip(axes, dims):
            for idx in range(-1, d + 1):
                assert ours.get_axis_list(a, idx) == ref.get_axis_list(a, idx)
        for _ in range(10):
            crit = {a: rng.randint(-1, d) for a, d in zip(axes, dims) if rng.random() < 0.5}
            assert ours.filter_match(**crit) == ref.filter_match(**crit)


def test_prime_factors_and_specialisations_match_deepspeed() -> None:
    ds = require("deepspeed.runtime.pipe.topology")
    from proctopo import PipeDataParallelTopology, PipeModelDataParallelTopology, prime_factors

    for n in range(1, 300):
        assert prime_factors(n) == ds._prime_factors(n)
    for pp, mp, dp in [(1, 1, 1), (2, 3, 4), (4, 1, 2), (3, 2, 1)]:
        a = PipeModelDataParallelTopology(num_pp=pp, num_mp=mp, num_dp=dp)
        b = ds.PipeModelDataParallelTopology(num_pp=pp, num_mp=mp, num_dp=dp)
        assert a.mapping == b.mapping and a.get_axis_names() == b.get_axis_names()
        a2 = PipeDataParallelTopology(num_pp=pp, num_dp=dp)
        b2 = ds.PipeDataParallelTopology(num_pp=pp, num_dp=dp)
        assert a2.mapping == b2.mapping


def test_deepspeed_except_clauses_still_catch() -> None:
    ds = require("deepspeed.runtime.pipe.topology")
    ref = ds.ProcessTopology(axes=["pipe", "data"], dims=[2, 2])
    ours = ProcessTopology(axes=["pipe", "data"], dims=[2, 2])
    cases = [
        (lambda t: t.get_rank(pipe=2, data=0), AssertionError),
        (lambda t: t.get_rank(pipe=0), ValueError),
        (lambda t: t.get_coord(4), ValueError),
        (lambda t: t.filter_match(model=0), AttributeError),
        (lambda t: t.get_axis_list("model", 0), ValueError),
        (lambda t: t.get_rank(pipe=0, model=0), TypeError),
    ]
    for call, exc in cases:
        with pytest.raises(exc):
            call(ref)  # what DeepSpeed raises...
        with pytest.raises(exc):
            call(ours)  # ...proctopo raises too (a subclass with a clearer message)
