"""PipelineParallelGrid in one process, on a recording comm layer.

The differential tests build DeepSpeed 0.19.8's own PipelineParallelGrid with
its comm layer (``deepspeed.comm``) replaced by the same recorder, for every
rank of many topologies, and compare every attribute, getter and process group.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import proctopo
import pytest
from helpers import require
from proctopo import GridSizeError, GroupCreationError, TopologyMismatchError
from proctopo.grid import PipelineParallelGrid, ProcessGrid
from proctopo.groups import fingerprint, resolve_strategy
from proctopo.testing import RecordingComm

pytestmark = pytest.mark.torch  # DeepSpeed's grid is the oracle of the parity tests here


def _topologies() -> list[tuple[list[str] | None, list[int] | None, int]]:
    out: list[tuple[list[str] | None, list[int] | None, int]] = []
    for axes in (
        ["pipe", "data"],
        ["data", "pipe"],
        ["pipe", "data", "model"],
        ["model", "pipe", "data"],
        ["data", "model", "pipe"],
        ["pipe", "data", "sequence", "model"],
        ["pipe", "expert", "data", "model"],
    ):
        for dims in itertools.product([1, 2, 3], repeat=len(axes)):
            n = 1
            for d in dims:
                n *= d
            if len(axes) == 4 and n > 24:
                continue
            out.append((axes, list(dims), n))
    out += [(None, None, n) for n in range(1, 37)]  # DeepSpeed's default split
    out += [(["pipe", "data", "model"], [4, 3, 2], 24), (["pipe", "data"], [5, 7], 35)]
    return out


TOPOLOGIES = _topologies()


@pytest.fixture(scope="module")
def oracle() -> Any:
    """DeepSpeed's grid on the recorder (tests/helpers/ds_oracle.py; needs deepspeed)."""
    require("deepspeed.runtime.pipe.topology")
    from helpers import ds_oracle

    return ds_oracle


def _ours(
    axes: Any, dims: Any, rank: int, n: int, strategy: str, ds_topo: Any = None
) -> PipelineParallelGrid:
    if axes is None:
        topo = None
    elif ds_topo is not None:
        topo = ds_topo(axes, dims)
    else:
        topo = proctopo.ProcessTopology(axes, dims)
    comm = RecordingComm(rank, n, can_split=strategy == "split")
    return PipelineParallelGrid(topo, group_creation=strategy, comm=comm)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("strategy", ["global", "local", "split"])
def test_every_attribute_and_getter_equals_deepspeed(strategy: str, oracle: Any) -> None:
    compared = 0
    for axes, dims, n in TOPOLOGIES:
        for rank in range(n):
            ds, rec = oracle.ds_grid(rank, n, axes, dims)
            mine = _ours(axes, dims, rank, n, strategy)
            where = f"{axes}={dims} rank {rank}"
            names = list(oracle.DS_VALUE_ATTRS) + [a for a in ("mp_group", "model_groups") if hasattr(ds, a)]
            for name in names:
                assert _same(getattr(mine, name), getattr(ds, name)), (
                    where,
                    name,
                    getattr(mine, name),
                    getattr(ds, name),
                )
            for name in oracle.DS_VALUE_GETTERS:
                want = oracle.ds_with_recorder(ds, rec, name)
                assert _same(getattr(mine, name)(), want), (where, name)
            for name in oracle.DS_GROUP_ATTRS:
                assert sorted(mine._comm.group_ranks(getattr(mine, name))) == sorted(
                    rec.group_ranks(getattr(ds, name))
                ), (where, name)
            for name in oracle.DS_GROUP_GETTERS:
                assert sorted(mine._comm.group_ranks(getattr(mine, name)())) == sorted(
                    rec.group_ranks(getattr(ds, name)())
                ), (where, name)
            names_ds = ds._topo.get_axis_names()
            for stage in range(mine.pipe_parallel_size):
                assert mine.stage_to_global(stage) == ds.stage_to_global(stage), (where, stage)
                if "data" in names_ds:
                    for d in range(mine.data_parallel_size):
                        assert mine.stage_to_global(stage, data=d) == ds.stage_to_global(stage, data=d)
            assert mine.topology().get_axis_names() == names_ds
            assert [mine.topology().get_dim(a) for a in names_ds] == [ds._topo.get_dim(a) for a in names_ds]
            compared += 1
    assert compared > 1000


def test_deepspeed_topology_objects_are_accepted(oracle: Any) -> None:
    for axes, dims, n in TOPOLOGIES[::7]:
        if axes is None:
            continue
        for rank in range(n):
            ds, _ = oracle.ds_grid(rank, n, axes, dims)
            mine = _ours(axes, dims, rank, n, "local", ds_topo=oracle.ds_topology_of)
            assert mine.topology() is mine._topo
            assert type(mine._topo).__module__.startswith("deepspeed")
            for name in oracle.DS_VALUE_ATTRS:
                assert _same(getattr(mine, name), getattr(ds, name)), name


def test_default_topology_splits_prime_factors_like_deepspeed(oracle: Any) -> None:
    for n in (1, 2, 12, 64, 360, 1024):
        grid = PipelineParallelGrid(comm=RecordingComm(0, n))
        ds, _ = oracle.ds_grid(0, n, None, None)
        assert grid.topology().get_axis_names() == ["pipe", "data"]
        assert (grid.pipe_parallel_size, grid.data_parallel_size) == (
            ds.pipe_parallel_size,
            ds.data_parallel_size,
        )


def test_stage_to_global_errors_like_deepspeed(oracle: Any) -> None:
    mine = _ours(["pipe", "data"], [2, 2], 0, 4, "local")
    ds, _ = oracle.ds_grid(0, 4, ["pipe", "data"], [2, 2])
    for bad in ({"stage_id": 2}, {"stage_id": 0, "data": 5}):
        with pytest.raises(AssertionError):
            ds.stage_to_global(**bad)
        with pytest.raises(AssertionError):
            mine.stage_to_global(**bad)
    with pytest.raises(ValueError):
        ds.stage_to_global(0, nope=1)
    with pytest.raises(ValueError):
        mine.stage_to_global(0, nope=1)


# ----------------------------------------------------------------------- strategies


def _calls(
    axes: list[str], dims: list[int], strategy: str, rank: int = 0, **kw: Any
) -> tuple[PipelineParallelGrid, RecordingComm]:
    n = 1
    for d in dims:
        n *= d
    comm = RecordingComm(rank, n, **kw)
    grid = PipelineParallelGrid(proctopo.ProcessTopology(axes, dims), group_creation=strategy, comm=comm)
    return grid, comm


@pytest.mark.parametrize(
    ("axes", "dims"),
    [
        (["pipe", "data", "model"], [2, 3, 2]),
        (["pipe", "data", "model"], [1, 4, 1]),
        (["pipe", "data"], [3, 1]),
        (["pipe", "data", "sequence", "model"], [2, 2, 2, 2]),
        (["pipe", "expert", "data", "context", "model"], [2, 3, 2, 1, 2]),
    ],
)
def test_local_makes_at_most_axes_plus_two_calls_and_each_is_local(axes: list[str], dims: list[int]) -> None:
    n = 1
    for d in dims:
        n *= d
    for rank in range(n):
        grid, comm = _calls(axes, dims, "local", rank)
        assert comm.calls["new_group"] == comm.calls["local_new_group"] == grid.group_creation_calls
        assert comm.calls["new_group"] <= len(axes) + 2
        assert comm.calls["split_group"] == 0
        # every group created is the one this rank belongs to, and no rank set twice
        made = [tuple(g.ranks) for g in comm.groups]
        assert len(made) == len(set(made))
        assert all(rank in g for g in made)


def test_local_call_counts_follow_the_distinct_rank_sets() -> None:
    # 2x3x2: pipe, data, model, and pipe+model (DeepSpeed's model-parallel group)
    assert _calls(["pipe", "data", "model"], [2, 3, 2], "local")[1].calls["new_group"] == 4
    # pipe=1, model=1: the data group is the whole world (reused), the rest is one
    # single-rank group shared by pipe, model, slice and model-parallel.
    grid, comm = _calls(["pipe", "data", "model"], [1, 4, 1], "local")
    assert comm.calls["new_group"] == 1
    assert grid.dp_proc_group is comm.parent()
    assert grid.pp_proc_group is grid.slice_proc_group is grid.ds_model_proc_group
    # two axes: DeepSpeed's model-parallel group is the pipe group; no model axis
    # means a single-rank slice group
    grid, comm = _calls(["pipe", "data"], [2, 2], "local")
    assert comm.calls["new_group"] == 3 and grid.ds_model_proc_group is grid.pp_proc_group
    assert comm.group_ranks(grid.slice_proc_group) == [0]


def test_global_calls_new_group_for_every_group_like_deepspeed(oracle: Any) -> None:
    for axes, dims in (
        (["pipe", "data", "model"], [2, 3, 2]),
        (["pipe", "data", "model"], [3, 2, 1]),
        (["pipe", "data"], [4, 2]),
    ):
        n = 1
        for d in dims:
            n *= d
        for rank in range(n):
            _, comm = _calls(axes, dims, "global", rank)
            _, rec = oracle.ds_grid(rank, n, axes, dims)
            assert comm.calls["local_new_group"] == 0
            ours, theirs = comm.calls["new_group"], rec.calls["new_group"]
            assert ours <= theirs
            if all(d > 1 for d in dims) and len(dims) == 3:
                assert ours == theirs  # no rank set repeats: the same calls
            assert len(comm.groups) == len({tuple(g.ranks) for g in comm.groups})


def test_split_calls_split_group_once_per_kind() -> None:
    grid, comm = _calls(["pipe", "data", "model"], [2, 3, 2], "split", 7, can_split=True)
    assert comm.calls == {
        "new_group": 0,
        "split_group": 4,
        "local_new_group": 0,
        "collective": 1,
        "destroy": 0,
        "spacer": 0,
    }
    assert grid.strategy == "split"


def test_auto_picks_split_then_local_then_global() -> None:
    assert (
        resolve_strategy("auto", RecordingComm(0, 4, backend="nccl", can_split=True), whole_world=True)
        == "split"
    )
    assert resolve_strategy("auto", RecordingComm(0, 4), whole_world=True) == "local"
    assert resolve_strategy("auto", RecordingComm(0, 4, backend="mpi"), whole_world=True) == "global"
    with pytest.raises(GroupCreationError, match="no strategy"):
        resolve_strategy("auto", RecordingComm(0, 4, backend="mpi"), whole_world=False)


def test_impossible_strategies_are_explained() -> None:
    with pytest.raises(GroupCreationError, match=r"'split' is not possible here.*cannot split"):
        _calls(["pipe", "data"], [2, 2], "split")
    with pytest.raises(GroupCreationError, match=r"'local' is not possible here.*MPI"):
        _calls(["pipe", "data"], [2, 2], "local", backend="mpi")
    with pytest.raises(ValueError, match="group_creation must be one of"):
        _calls(["pipe", "data"], [2, 2], "fast")
    comm = RecordingComm(1, 8, parent_ranks=[1, 3, 5, 7])
    with pytest.raises(GroupCreationError, match="group_creation='global'"):
        PipelineParallelGrid(
            proctopo.ProcessTopology(["pipe", "data"], [2, 2]), group_creation="global", comm=comm
        )


# ------------------------------------------------------------------- any axes, groups


def test_extra_axes_have_getters_and_every_subset_a_group() -> None:
    axes, dims = ["pipe", "data", "sequence", "model"], [2, 2, 2, 2]
    topo = proctopo.ProcessTopology(axes, dims)
    for rank in range(16):
        grid, comm = _calls(axes, dims, "local", rank)
        coord = topo.get_coord(rank)
        assert grid.get_sequence_parallel_rank() == coord.sequence
        assert grid.get_sequence_parallel_world_size() == 2
        assert grid.get_sequence_parallel_group_ranks() == topo.group_of(rank, "sequence").tolist()
        assert (
            comm.group_ranks(grid.get_sequence_parallel_group()) == topo.group_of(rank, "sequence").tolist()
        )
        assert "get_sequence_parallel_group" in dir(grid)
        # DeepSpeed's get_sequence_data_parallel_*: sequence and data together
        seq_dp = topo.group_of(rank, ["sequence", "data"]).tolist()
        assert grid.get_sequence_data_parallel_group_ranks() == seq_dp
        assert comm.group_ranks(grid.get_sequence_data_parallel_group()) == seq_dp
        assert grid.get_sequence_data_parallel_world_size() == 4
        assert grid.get_sequence_data_parallel_rank() == seq_dp.index(rank)
        assert grid.get_axis_rank(["data", "sequence"]) == seq_dp.index(rank)
        before = comm.calls["new_group"]
        missing = 0
        for k in range(5):
            for subset in itertools.combinations(axes, k):
                fixed = {a: getattr(coord, a) for a in axes if a not in subset}
                want = topo.filter_match(**fixed)
                assert grid.get_group_ranks(list(subset)) == want
                try:
                    held = grid.get_group(list(subset))
                except proctopo.GroupNotCreatedError:
                    missing += 1
                    held = grid.create_group(list(subset))
                    assert grid.create_group(list(reversed(subset))) is held  # made once
                assert comm.group_ranks(held) == want
                assert grid.get_group(list(reversed(subset))) is held
        # 16 subsets; 6 came with the grid (4 axes, pipe+sequence+model, sequence+data), the
        # whole set is the parent
        assert missing == comm.calls["new_group"] - before == 16 - 6 - 1
    grid, _ = _calls(["pipe", "data"], [2, 2], "local")
    assert not hasattr(grid, "get_sequence_parallel_group")
    assert not hasattr(grid, "get_sequence_data_parallel_group")
    assert not hasattr(grid, "get_data_data_parallel_group")
    with pytest.raises(AttributeError):
        grid.get_expert_parallel_rank()
    with pytest.raises(proctopo.UnknownAxisError, match="'expert'"):
        grid.get_group("expert")
    with pytest.raises(proctopo.InvalidArgumentError, match="'data' is listed twice"):
        grid.get_group(["data", "data"])


def test_axis_errors_are_the_topologys_own() -> None:
    """The grid translates nothing: an unknown or repeated axis fails with the topology's error."""
    grid, _ = _calls(["pipe", "data", "model"], [2, 2, 2], "local")
    for bad in ("expert", ["data", "expert"], ["model", "model"], ["pipe", "data", "pipe"]):
        with pytest.raises(proctopo.InvalidArgumentError) as ours:
            grid.get_group(bad)
        with pytest.raises(proctopo.InvalidArgumentError) as topos:
            grid._pt.axis_indices(bad)
        assert type(ours.value) is type(topos.value)
        assert str(ours.value) == str(topos.value)
        for getter in (grid.get_group_ranks, grid.get_axis_rank, grid.get_axis_world_size):
            with pytest.raises(type(topos.value), match=re.escape(str(topos.value))):
                getter(bad)


def test_extra_groups_are_made_with_the_grid() -> None:
    comm = RecordingComm(5, 16)
    topo = proctopo.ProcessTopology(["pipe", "data", "context", "model"], [2, 2, 2, 2])
    grid = PipelineParallelGrid(topo, groups=[("data", "context"), "context"], comm=comm)
    made = comm.calls["new_group"]
    assert comm.group_ranks(grid.get_group(["context", "data"])) == [1, 3, 5, 7]
    assert comm.calls["new_group"] == made


def test_tensor_model_parallel_src_rank_is_the_first_of_the_slice_group() -> None:
    for rank in range(12):
        grid, _ = _calls(["pipe", "data", "model"], [1, 3, 4], "local", rank)
        assert grid.get_tensor_model_parallel_src_rank() == (rank // 4) * 4  # Megatron's formula
    grid, _ = _calls(["pipe", "data"], [2, 2], "local", 3)
    assert grid.get_tensor_model_parallel_src_rank() == 3


def test_process_group_ranks_are_translated_to_global_ranks() -> None:
    members = [2, 3, 6, 7, 10, 11, 14, 15]
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 4])
    for i, rank in enumerate(members):
        comm = RecordingComm(rank, 16, parent_ranks=members)
        grid = PipelineParallelGrid(topo, comm=comm)
        assert (grid.global_rank, grid.grid_rank, grid.world_size) == (rank, i, 8)
        assert grid.dp_group == [members[r] for r in topo.group_of(i, "data").tolist()]
        assert grid.pp_group == [members[r] for r in topo.group_of(i, "pipe").tolist()]
        assert grid.dp_groups == [[members[r] for r in g] for g in topo.get_axis_comm_lists("data")]
        assert grid.p2p_groups[i] == [rank, members[topo.shift(i, "pipe")]]
        assert grid.stage_to_global(0) == members[topo.get_rank(pipe=0, data=i % 4)]
        assert comm.group_ranks(grid.dp_proc_group) == grid.dp_group
        assert comm.group_ranks(grid.get_group(["pipe", "data"])) == members  # the parent itself
    with pytest.raises(GroupCreationError, match="not a member"):
        PipelineParallelGrid(topo, comm=RecordingComm(0, 16, parent_ranks=members))


# --------------------------------------------------------------------------- errors


def test_wrong_size_is_a_clear_error_and_still_an_assertion_error(oracle: Any) -> None:
    with pytest.raises(
        GridSizeError, match=r"pipe \* data \* model = 2 \* 3 \* 2 = 12, but the world size is 16"
    ) as info:
        PipelineParallelGrid(proctopo.PipeModelDataParallelTopology(2, 2, 3), comm=RecordingComm(0, 16))
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ValueError)
    with pytest.raises(AssertionError):  # DeepSpeed: assert self._is_grid_valid()
        oracle.ds_grid(0, 16, ["pipe", "data", "model"], [2, 3, 2])


def test_missing_pipe_or_data_axis_is_named(oracle: Any) -> None:
    with pytest.raises(proctopo.UnknownAxisError, match=r"missing \['pipe'\]") as info:
        PipelineParallelGrid(proctopo.ProcessTopology(["data", "model"], [2, 2]), comm=RecordingComm(0, 4))
    assert isinstance(info.value, AttributeError)  # what DeepSpeed raised
    with pytest.raises(AttributeError):
        oracle.ds_grid(0, 4, ["data", "model"], [2, 2])


def test_process_group_and_comm_are_exclusive_and_timeout_must_be_positive() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    with pytest.raises(proctopo.InvalidArgumentError, match="either process_group or comm"):
        PipelineParallelGrid(topo, object(), comm=RecordingComm(0, 4))
    for bad in (0, -1.5, datetime.timedelta(0), datetime.timedelta.min):
        with pytest.raises(proctopo.InvalidArgumentError, match="timeout must be a finite number of seconds"):
            PipelineParallelGrid(topo, comm=RecordingComm(0, 4), timeout=bad)


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
        (datetime.timedelta.max, "datetime.timedelta(days=999999999"),
        (1e300, "1e+300"),
    ],
)
def test_timeout_must_be_finite(bad: Any, shown: str) -> None:
    """A timeout no wait can honour is refused up front, naming the value, before any collective."""
    comm = RecordingComm(0, 4)
    with pytest.raises(
        proctopo.InvalidArgumentError, match="timeout must be a finite number of seconds"
    ) as info:
        PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 2]), comm=comm, timeout=bad)
    assert f"got {shown}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert comm.calls == {
        "new_group": 0,
        "split_group": 0,
        "local_new_group": 0,
        "collective": 0,
        "destroy": 0,
        "spacer": 0,
    }


def test_timeout_accepts_seconds_and_timedeltas_and_refuses_other_types() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    for ok in (0.5, 3, datetime.timedelta(minutes=2), 86_400 * 365.0):
        assert PipelineParallelGrid(topo, comm=RecordingComm(0, 4), timeout=ok).strategy == "local"
    for bad in ("30", True, [5]):
        with pytest.raises(TypeError, match=r"timeout must be a number of seconds or a datetime\.timedelta"):
            PipelineParallelGrid(topo, comm=RecordingComm(0, 4), timeout=bad)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (3, 3.0), (0.25, 0.25), (datetime.timedelta(minutes=2), 120.0), (1e9, 1e9)],
)
def test_check_timeout_is_the_one_rule(value: Any, seconds: float | None) -> None:
    from proctopo.comm import check_timeout

    assert check_timeout(value) == seconds


@pytest.mark.parametrize(
    "bad", [0, -1, float("nan"), float("inf"), datetime.timedelta(0), datetime.timedelta.max]
)
def test_check_timeout_names_the_argument_and_the_value(bad: Any) -> None:
    from proctopo.comm import check_timeout

    with pytest.raises(proctopo.InvalidArgumentError) as info:
        check_timeout(bad, "--timeout")
    assert str(info.value) == (
        f"--timeout must be a finite number of seconds above 0 and below timedelta.max, got {bad!r}"
    )
    with pytest.raises(TypeError) as wrong:
        check_timeout("5", "grace")
    assert str(wrong.value) == "grace must be a number of seconds or a datetime.timedelta, got '5'"


class _DisagreeingComm(RecordingComm):
    """Plays a rank whose peers hold other descriptions / more groups."""

    def __init__(self, peers: list[dict[str, Any]] | None = None, peer_count: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.peers = peers
        self.peer_count = peer_count

    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        out, blocks = super().exchange(header, block, timeout=timeout)
        for d in self.peers or []:
            fp = fingerprint(d)
            out[0], out[1] = max(out[0], fp), max(out[1], -fp)
        out[2] = max(out[2], self.peer_count)
        return out, blocks

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        return [data] + [json.dumps(d, sort_keys=True).encode() for d in self.peers or []]


class _SpyComm(RecordingComm):
    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        self.sent = list(header)
        return super().exchange(header, block, timeout=timeout)


def test_mismatch_error_names_the_first_difference() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    other = {
        "axes": ["pipe", "data"],
        "dims": [4, 1],
        "strategy": "local",
        "grid_size": 4,
        "world_size": 4,
        "process_group": None,
        "groups": [["pipe"]],
    }
    comm = _DisagreeingComm(peers=[other], rank=0, world_size=4)
    with pytest.raises(
        TopologyMismatchError, match=r"dims: grid rank 0 has \[2, 2\], grid rank 1 has \[4, 1\]"
    ) as info:
        PipelineParallelGrid(topo, comm=comm)
    assert "1 of 2 ranks differ from grid rank 0: 1" in str(info.value)
    assert comm.calls["new_group"] == 0  # failed before creating any group
    # verify=False skips the exchange entirely
    comm = _DisagreeingComm(peers=[other], rank=0, world_size=4)
    PipelineParallelGrid(topo, comm=comm, verify=False)
    assert comm.calls["collective"] == 0
    # 'auto' on one rank and 'local' on another is no mismatch when both resolve alike;
    # a different extra group is
    fps = {}
    for name, kw in (
        ("auto", {}),
        ("local", {"group_creation": "local"}),
        ("extra", {"groups": ["pipe"]}),
        ("other", {"groups": [("pipe", "data")]}),
    ):
        spy = _SpyComm(rank=0, world_size=4)
        PipelineParallelGrid(topo, comm=spy, **kw)
        fps[name] = spy.sent[0]
    assert fps["auto"] == fps["local"] == fps["extra"]  # ("pipe",) is made anyway
    assert fps["other"] != fps["auto"]


def test_fewer_prior_groups_are_padded_for_local_only() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    comm = _DisagreeingComm(peer_count=4, rank=0, world_size=4)  # peers made 3 more groups
    with pytest.warns(RuntimeWarning, match="creates 3 single-rank group"):
        PipelineParallelGrid(topo, comm=comm, group_creation="local")
    assert [g.ranks for g in comm.groups[:3]] == [[0], [0], [0]]
    comm = _DisagreeingComm(peer_count=4, rank=0, world_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PipelineParallelGrid(topo, comm=comm, group_creation="global")


def test_lists_of_all_groups_are_built_lazily() -> None:
    grid, _ = _calls(["pipe", "data", "model"], [4, 4, 4], "local", 17)
    assert grid._lazy == {}
    assert grid.p2p_groups[17] == [17, 33] and grid.p2p_groups[63] == [63, 15]
    assert grid.dp_groups is grid.dp_groups
    assert set(grid._lazy) == {"p2p_groups", "dp_groups"}


def test_importing_the_grid_does_not_import_torch() -> None:
    code = (
        "import sys, proctopo, proctopo.grid, proctopo.groups, proctopo.comm, proctopo.testing\n"
        "from proctopo.testing import RecordingComm\n"
        "g = proctopo.PipelineParallelGrid(comm=RecordingComm(3, 8))\n"
        "print(json.dumps(['torch' in sys.modules, g.dp_group]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [False, [2, 3]]  # 8 ranks: pipe=4 x data=2


def test_per_rank_groups_equal_the_core_tables_for_every_subset() -> None:
    """The plain-Python per-rank enumeration against the core's group_of, exhaustively."""
    checked = 0
    for axes, dims, n in TOPOLOGIES:
        if axes is None:
            continue
        topo = proctopo.ProcessTopology(axes, dims)
        for rank in range(n):
            grid = PipelineParallelGrid(topo, comm=RecordingComm(rank, n), verify=False)
            b = grid.process_grid._builder
            for k in range(len(axes) + 1):
                for subset in itertools.combinations(axes, k):
                    want = topo.group_of(rank, list(subset)).tolist()
                    assert b.grid_members(b.key(list(subset))) == want, (axes, dims, rank, subset)
                    checked += 1
    assert checked > 20_000


# ------------------------------------------------------------- proctopo.testing, comm


def test_comm_and_testing_import_without_torch_and_simulate_65536_ranks() -> None:
    """The public recorder plays ranks of a 65,536-rank world in a process that never loads torch."""
    code = """
import json, sys
import proctopo.comm, proctopo.testing
from proctopo import PipeModelDataParallelTopology, PipelineParallelGrid
from proctopo.comm import Comm
from proctopo.testing import RecordingComm
topo = PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=1024)
out = {"torch_after_import": "torch" in sys.modules, "runs": []}
for strategy in ("local", "split", "global"):
    for rank in (0, 40_000, 65_535):
        comm = RecordingComm(rank, topo.world_size(), backend="nccl", can_split=strategy == "split")
        assert isinstance(comm, Comm)
        grid = PipelineParallelGrid(topo, group_creation=strategy, comm=comm)
        out["runs"].append({
            "strategy": strategy, "rank": rank, "calls": comm.calls,
            "grid_calls": grid.group_creation_calls,
            "made": sorted(len(g.ranks) for g in comm.groups),
            "dp": grid.get_data_parallel_group_ranks()[:3], "pp": comm.group_ranks(grid.pp_proc_group),
        })
out["torch_at_end"] = "torch" in sys.modules
print(json.dumps(out))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["torch_after_import"] is False and result["torch_at_end"] is False
    topo = proctopo.PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=1024)
    # pipe 8 x data 1024 x model 8: groups per kind are 8192 (pipe), 64 (data), 8192 (model)
    # and 1024 (DeepSpeed's model-parallel group, every axis but data): 17,472 in all
    want = {
        "local": {"new_group": 4, "split_group": 0, "local_new_group": 4, "collective": 1},
        "split": {"new_group": 0, "split_group": 4, "local_new_group": 0, "collective": 1},
        "global": {
            "new_group": 8192 + 64 + 8192 + 1024,
            "split_group": 0,
            "local_new_group": 0,
            "collective": 1,
        },
    }
    for calls in want.values():
        calls.update(destroy=0, spacer=0)
    assert len(result["runs"]) == 9
    for run in result["runs"]:
        rank, strategy = run["rank"], run["strategy"]
        assert run["calls"] == want[strategy], run
        assert run["grid_calls"] == want[strategy]["new_group"] + want[strategy]["split_group"]
        # the groups this rank received: its pipe (8), model (8), pipe+model (64) and data (1024) groups
        assert run["made"] == [8, 8, 64, 1024], run
        assert run["dp"] == topo.group_list(rank, "data")[:3]
        assert run["pp"] == topo.group_list(rank, "pipe")


def test_recording_comm_records_members_non_members_and_parents() -> None:
    from proctopo.comm import Comm
    from proctopo.testing import RecordedGroup

    comm = RecordingComm(5, 8)
    assert isinstance(comm, Comm)
    assert (comm.get_rank(), comm.get_world_size(), comm.global_rank(), comm.grid_rank()) == (5, 8, 5, 5)
    assert comm.group_count() == 1
    mine = comm.new_group([4, 5], local=True)
    assert isinstance(mine, RecordedGroup) and mine.kind == "local" and mine.size() == 2
    assert comm.new_group([0, 1], local=True) is None
    assert comm.new_group([0, 1]) is RecordingComm.NON_MEMBER
    whole = comm.new_group()  # deepspeed.comm style: the whole world
    assert whole.kind == "global" and comm.group_ranks(whole) == list(range(8))
    assert comm.calls == {
        "new_group": 4,
        "split_group": 0,
        "local_new_group": 2,
        "collective": 0,
        "destroy": 0,
        "spacer": 0,
    }
    assert comm.groups == [mine, whole] and comm.group_count() == 3
    assert repr(mine) == "RecordedGroup('local', [4, 5])"
    assert repr(RecordedGroup(range(100), "parent")) == "RecordedGroup('parent', 100 ranks: 0, 1, ..., 99)"

    sub = RecordingComm(6, 16, parent_ranks=[2, 6, 10, 14])
    assert (sub.grid_rank(), sub.grid_size(), sub.world_size()) == (1, 4, 16)
    assert sub.group_ranks(sub.parent()) == [2, 6, 10, 14] and sub.parent().kind == "parent"
    assert sub.group_ranks(sub.split_group([0, 1])) == [2, 6]  # grid ranks -> global ranks
    assert sub.allgather_bytes(b"x", timeout=1.0) == [b"x"] * 4
    assert RecordingComm(3, 16, parent_ranks=[2, 6]).grid_rank() == -1
    assert RecordingComm(0, 2, backend="mpi").local_support() is not None
    assert RecordingComm(0, 2, can_split=True).split_support() is None


def test_recording_comm_rejects_a_rank_outside_its_world() -> None:
    with pytest.raises(
        proctopo.RankOutOfRangeError, match=r"rank 8 is not in the topology: ranks run from 0 to 7"
    ):
        RecordingComm(8, 8)
    with pytest.raises(proctopo.RankOutOfRangeError, match="rank -1"):
        RecordingComm(-1, 8)
    with pytest.raises(proctopo.InvalidTopologyError, match="the world size must be at least 1, got 0"):
        RecordingComm(0, 0)


def test_grid_module_exports_only_the_grid() -> None:
    """Error classes come from proctopo / proctopo.errors, not from the grid module."""
    import proctopo.grid
    import proctopo.testing

    assert proctopo.grid.__all__ == ["PipelineParallelGrid", "ProcessGrid"]
    assert proctopo.testing.__all__ == ["GroupCount", "RecordedGroup", "RecordingComm", "counting_groups"]


# ------------------------------------------------------------------ ProcessGrid


def _pgrid(rank: int, n: int, axes: list[str], dims: list[int], **kw: Any) -> tuple[Any, RecordingComm]:
    comm = RecordingComm(rank, n, can_split=kw.pop("can_split", False))
    return ProcessGrid(proctopo.ProcessTopology(axes, dims), comm=comm, **kw), comm


def test_process_grid_is_exported_lazily_and_creates_each_axis_then_the_extras() -> None:
    assert proctopo.ProcessGrid is ProcessGrid
    grid, comm = _pgrid(5, 8, ["pipe", "data", "model"], [2, 2, 2], groups=[("data", "model"), "pipe"])
    assert [g.ranks for g in comm.groups] == [[1, 5], [5, 7], [4, 5], [4, 5, 6, 7]]
    assert grid.group_creation_calls == 4 and grid.communicators == 4
    assert grid.topology.get_axis_names() == ["pipe", "data", "model"]
    assert grid.layout() is grid.layout("main") is grid.topology


def test_layouts_share_identical_rank_sets_and_name_the_first_difference() -> None:
    # Megatron-style: dense pipe x data x tensor, expert pipe x expert x edp x tensor over 16 ranks.
    dense = proctopo.ProcessTopology(["pipe", "data", "model"], [2, 4, 2])
    expert = proctopo.ProcessTopology(["pipe", "edp", "expert", "model"], [2, 2, 2, 2])
    for strategy in ("local", "global", "split"):
        for rank in range(16):
            comm = RecordingComm(rank, 16, can_split=strategy == "split")
            grid = ProcessGrid(
                dense,
                group_creation=strategy,
                layouts={"expert": expert},
                groups=[
                    ("expert", ["expert"]),
                    ("expert", ["pipe"]),
                    ("expert", ["model"]),
                    ("expert", ["edp"]),
                ],
                comm=comm,
            )
            # pipe and model are shared: the same groups, created once; expert and edp are new.
            assert grid.get_group("pipe", layout="expert") is grid.get_group("pipe")
            assert grid.get_group("model", layout="expert") is grid.get_group("model")
            assert grid.get_group_ranks("expert", layout="expert") == expert.group_list(rank, "expert")
            # the expert layout's (edp, expert) group is the dense data group: shared, no new call
            before = grid.group_creation_calls
            assert grid.get_group(["edp", "expert"], layout="expert") is grid.get_group("data")
            assert grid.group_creation_calls == before
            assert grid.communicators == 5  # pipe, data, model, expert, edp
            live = [tuple(g.ranks) for g in comm.live_groups()]
            assert len(live) == len(set(live)) == 5, (strategy, rank, live)
    grid, _ = _pgrid(0, 16, ["pipe", "data", "model"], [2, 4, 2])
    with pytest.raises(proctopo.InvalidArgumentError, match="axis 'model' enumerates differently") as info:
        grid.add_layout("bad", proctopo.ProcessTopology(["pipe", "model", "data"], [2, 2, 4]))
    assert "first difference at member 1: rank 1 against rank 4" in str(info.value)
    with pytest.raises(proctopo.InvalidArgumentError, match=r"axis 'data' .* rank 2 against rank 4"):
        grid.add_layout("bad", proctopo.ProcessTopology(["data", "pipe", "model"], [4, 2, 2]))
    with pytest.raises(
        GridSizeError, match="layout 'small': pipe \\* data = 2 \\* 4 = 8, but the world size is 16"
    ):
        grid.add_layout("small", proctopo.ProcessTopology(["pipe", "data"], [2, 4]))
    for bad_name in ("main", "", 3):
        with pytest.raises(proctopo.InvalidArgumentError, match="layout name"):
            grid.add_layout(bad_name, proctopo.ProcessTopology(["pipe", "data", "model"], [2, 4, 2]))  # type: ignore[arg-type]
    with pytest.raises(proctopo.InvalidArgumentError, match="no layout named 'nope'"):
        grid.get_group("pipe", layout="nope")
    with pytest.raises(proctopo.UnknownAxisError):
        grid.get_group("expert")


def test_explicit_families_share_sets_and_keep_counts_in_step() -> None:
    # Megatron's embedding groups: first and last pipeline stage of each pipeline.
    n = 8
    lists = [[0, 4], [1, 5], [2, 6], [3, 7]]  # equal to the pipe groups of pipe=2 x data=4
    partial = [[0, 4], [3]]
    for strategy in ("local", "global"):
        counts = set()
        for rank in range(n):
            grid, comm = _pgrid(rank, n, ["pipe", "data"], [2, 4], group_creation=strategy)
            calls = grid.group_creation_calls
            same = grid.new_groups(lists, name="embedding")
            assert same is grid.get_group("pipe")  # identical rank sets: one communicator
            mine = grid.new_groups(partial)
            want = next((row for row in partial if rank in row), None)
            assert (mine is None) if want is None else (comm.group_ranks(mine) == want)
            if want == [0, 4]:
                assert mine is grid.get_group("pipe")
            assert grid.new_groups([[4, 0], [3]]) is mine  # the same family: nothing new
            assert grid.communicators == 2 + (rank == 3)
            # the first family holds only pipe groups: every rank sees it, nobody calls; of the
            # second only [3] is new: rank 3 creates it, the others pad ("local") or call
            # new_group([3]) too ("global"), so torch's names stay aligned
            assert grid.group_creation_calls == calls + 1
            if strategy == "local":
                counts.add(comm.group_count())
        if strategy == "local":
            assert len(counts) == 1, counts


@pytest.mark.parametrize("strategy", ["local", "global"])
@pytest.mark.parametrize("dims", [[2, 1], [1, 2], [1, 1]])
def test_a_family_of_every_rank_is_the_parent_group(strategy: str, dims: list[int]) -> None:
    """One list of every grid rank (Megatron's embedding group of two stages, a world of one) is the
    parent group, as an axis over every rank is: no call, whether or not an axis made it first."""
    world = dims[0] * dims[1]
    for rank in range(world):
        grid, comm = _pgrid(rank, world, ["pipe", "data"], dims, group_creation=strategy)
        calls = grid.group_creation_calls
        everyone = list(range(world))
        assert grid.new_groups([everyone[::-1]], name="embedding") is comm.parent()
        assert grid.new_groups([everyone]) is comm.parent()
        assert grid.group_creation_calls == calls
        singles = grid.new_groups([[r] for r in everyone])
        assert (singles is comm.parent()) == (world == 1)


def test_new_groups_checks_its_lists_before_any_collective() -> None:
    grid, comm = _pgrid(0, 8, ["pipe", "data"], [2, 4])
    before = dict(comm.calls)
    for bad, match in (
        ([[0, 1], []], "rank_lists\\[1\\] is empty"),
        ([[0, 1], [1, 2]], "rank 1 of rank_lists\\[1\\] is also in rank_lists\\[0\\]"),
        ([[0, 0]], "rank 0 of rank_lists\\[0\\] is twice in it"),
        ([[0, 8]], "rank 8 in rank_lists\\[0\\] is not in the grid: ranks run from 0 to 7"),
        ([[-1]], "rank -1"),
    ):
        with pytest.raises(proctopo.InvalidArgumentError, match=match):
            grid.new_groups(bad)
    for bad_type in ("01", [0, 1], [[0.5]], [[True]]):
        with pytest.raises(TypeError):
            grid.new_groups(bad_type)  # type: ignore[arg-type]
    assert comm.calls == before
    sub = RecordingComm(2, 8, parent_ranks=[2, 3, 6, 7])
    g = ProcessGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 2]), comm=sub)
    with pytest.raises(proctopo.InvalidArgumentError, match="rank 4 in rank_lists\\[0\\] is not a member"):
        g.new_groups([[2, 4]])
    assert sub.group_ranks(g.new_groups([[2, 7], [3]])) == [2, 7]


def test_backends_key_the_registry_and_the_parents_own_name_is_the_same() -> None:
    grid, comm = _pgrid(1, 4, ["pipe", "data"], [2, 2], group_creation="local")
    assert grid.get_group("data", backend="GLOO") is grid.get_group("data")
    with pytest.raises(proctopo.GroupNotCreatedError, match=r"grid.create_group\('data', backend='nccl'\)$"):
        grid.get_group("data", backend="nccl")
    other = grid.create_group("data", backend="nccl")
    assert other is not grid.get_group("data") and other.backend == "nccl" and other.ranks == [0, 1]
    assert grid.get_group("data", backend="NCCL") is other
    assert grid.get_group(["pipe", "data"]) is comm.parent()
    assert grid.create_group(["pipe", "data"], backend="nccl").ranks == [0, 1, 2, 3]
    # a split child has the parent's backend: a group of another backend is made locally
    comm = RecordingComm(1, 4, backend="nccl", can_split=True)
    grid = ProcessGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 2]), comm=comm)
    assert grid.strategy == "split" and comm.calls["split_group"] == 2
    gloo = grid.create_group("data", backend="gloo")
    assert (gloo.kind, gloo.backend, gloo.ranks) == ("local", "gloo", [0, 1])
    assert comm.calls["split_group"] == 2 and comm.calls["local_new_group"] == 1


@pytest.mark.parametrize("strategy", ["local", "global", "split"])
def test_destroy_frees_exactly_what_was_made_and_names_stay_unique_over_cycles(strategy: str) -> None:
    comm = RecordingComm(3, 8, can_split=strategy == "split")
    start = comm.group_count()
    names: list[Any] = []
    for _cycle in range(10):
        grid = ProcessGrid(
            proctopo.ProcessTopology(["pipe", "data", "model"], [2, 2, 2]),
            group_creation=strategy,
            groups=[[], ("data", "model")],
            comm=comm,
        )
        grid.new_groups([[0, 3], [5]])
        made = comm.live_groups()
        assert len(made) == grid.communicators == 6  # 3 axes, the single and data+model groups, [0, 3]
        names += [g.name for g in made if g.name is not None]
        grid.destroy()
        assert comm.group_count() == start and comm.live_groups() == []
        grid.destroy()  # idempotent
        assert comm.calls["destroy"] - comm.calls["spacer"] == len(
            [g for g in comm.groups if g.kind != "spacer"]
        )
        with pytest.raises(proctopo.GridDestroyedError, match="destroyed"):
            grid.get_group("data")
        with pytest.raises(proctopo.GridDestroyedError):
            grid.new_groups([[0]])
        assert grid.get_group_ranks("data") == [1, 3]  # ranks still answer
    if strategy == "global":  # torch names these from its global counter, which never goes back
        assert names == [] and comm.calls["spacer"] == 0
        return
    # RecordingComm raises on a reused multi-rank name; all of them are distinct anyway
    multi = [n for n in names if len(n[0]) > 1]
    assert len(multi) == len(set(multi)) == 10 * 5
    # cycle k reaches fresh names through k spacers per multi-rank group, made and destroyed at once
    assert comm.calls["spacer"] == sum(range(10)) * 5


def test_recording_comm_plays_the_naming_trap() -> None:
    comm = RecordingComm(0, 4)
    group = comm.new_group([0, 1], local=True)
    comm.destroy_group(group)
    # the ledger steers the second creation to an unused name through one spacer
    again = comm.new_group([0, 1], local=True)
    assert again.name == ((0, 1), 2) and comm.calls["spacer"] == 1
    # without the ledger the name would be the destroyed group's: the recorder refuses it
    comm.destroy_group(again)
    with pytest.raises(GroupCreationError, match="stale rendezvous keys"):
        comm._register([0, 1], "local", None, hashed=True)
    with pytest.raises(GroupCreationError, match="not a live group"):
        comm.destroy_group(again)
    with pytest.raises(GroupCreationError, match="not a live group"):
        comm.destroy_group(comm.parent())


def test_pipeline_grid_forwards_the_process_grid_and_refuses_groups_after_destroy() -> None:
    comm = RecordingComm(2, 8)
    grid = PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data", "model"], [2, 2, 2]), comm=comm)
    assert isinstance(grid.process_grid, ProcessGrid)
    assert grid.new_groups([[0, 6]]) is None
    grid.destroy()
    assert comm.live_groups() == [] and grid.destroyed
    for name in ("dp_proc_group", "pp_proc_group", "slice_proc_group", "ds_model_proc_group"):
        with pytest.raises(proctopo.GridDestroyedError):
            getattr(grid, name)
    with pytest.raises(proctopo.GridDestroyedError):
        grid.get_data_parallel_group()
    assert grid.dp_group == [0, 2] and grid.get_data_parallel_world_size() == 2


def test_a_65536_rank_grid_with_two_layouts_and_a_family_makes_one_call_per_family() -> None:
    dense = proctopo.ProcessTopology(["pipe", "data", "context", "model"], [8, 512, 2, 8])
    expert = proctopo.ProcessTopology(["pipe", "edp", "expert", "model"], [8, 128, 8, 8])
    n = dense.world_size()
    extras = [("data", "context"), ("pipe", "model"), ("expert", ["expert"]), ("expert", ["edp"])]
    extras += [("expert", ["expert", "model"]), ("expert", ["pipe"])]  # the last is the dense pipe family
    embedding = [[int(row[0]), int(row[-1])] for row in dense.groups("pipe")]
    for rank in (0, 1, 40_000, n - 1):
        comm = RecordingComm(rank, n)
        grid = ProcessGrid(dense, layouts={"expert": expert}, groups=extras, comm=comm)
        mine = grid.new_groups(embedding, name="embedding")
        # 4 axes, data+context, pipe+model, expert, edp, expert+model: 9 families; the
        # embedding family is the 10th (its group, or a pad on the middle stages)
        assert comm.calls["new_group"] == grid.group_creation_calls == 10, (rank, comm.calls)
        assert comm.group_count() == 11  # the same on every rank: torch's local names line up
        first_or_last = dense.get_coord(rank).pipe in (0, 7)
        assert grid.communicators == 9 + first_or_last
        assert (mine is None) != first_or_last
        sizes = sorted(g.size() for g in comm.live_groups() if g.kind != "pad")
        assert sizes == sorted([8, 512, 2, 8, 1024, 64, 8, 128, 64] + [2] * first_or_last)
        grid.destroy()
        assert comm.live_groups() == [] and comm.group_count() == 1


# ------------------------------------------------------- getters never act; creation is checked


class _LoggingComm:
    """A RecordingComm behind a log of every method the grid calls on it."""

    def __init__(self, comm: RecordingComm) -> None:
        self.comm = comm
        self.log: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.comm, name)
        if not callable(value):
            return value

        def logged(*args: Any, **kw: Any) -> Any:
            self.log.append(name)
            return value(*args, **kw)

        return logged


def test_get_group_never_acts_and_names_the_call_that_creates() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data", "context", "model"], [2, 2, 2, 2])
    recorder = RecordingComm(5, 16)
    comm = _LoggingComm(recorder)
    grid = PipelineParallelGrid(topo, comm=comm)  # type: ignore[arg-type]
    calls, count, groups = dict(recorder.calls), recorder.group_count(), list(recorder.groups)
    comm.log.clear()
    held = [grid.get_group(a) for a in ("pipe", "data", "context", "model", ["pipe", "context", "model"])]
    assert all(h is not None for h in held)
    assert grid.get_group(["pipe", "data", "context", "model"]) is recorder.parent()
    for axes, layout, backend, text in (
        (
            ["data", "context"],
            None,
            None,
            "the grid holds no group over ['data', 'context']: getters never create groups, groups come "
            "from the grid's construction or from an explicit collective call; create it on every rank "
            "of the grid, at the same point: grid.create_group(['data', 'context']), or build the grid "
            "with groups=[['data', 'context']]",
        ),
        ([], None, None, "grid.create_group([]), or build the grid with groups=[[]]"),
        ("data", None, "nccl", "the grid holds no group over 'data' with backend 'nccl': "),
        ("data", None, "nccl", "grid.create_group('data', backend='nccl')"),
    ):
        with pytest.raises(proctopo.GroupNotCreatedError) as info:
            grid.get_group(axes, layout=layout, backend=backend)
        assert text in str(info.value)
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, LookupError)
    with pytest.raises(proctopo.GroupNotCreatedError, match=r"grid.create_group\(\['context', 'data'\]\)"):
        grid.get_context_data_parallel_group()  # the generic getters read, they do not create
    assert grid.get_context_data_parallel_world_size() == 4  # sizes and ranks are computed
    # no call that creates or communicates; the registry is untouched
    assert set(comm.log) <= {"normalize_backend", "parent"}, comm.log
    assert recorder.calls == calls and recorder.group_count() == count and recorder.groups == groups
    made = grid.create_group(["context", "data"])
    assert recorder.calls["collective"] == calls["collective"] + 1  # the fingerprint check
    assert recorder.calls["new_group"] == calls["new_group"] + 1
    assert grid.get_group(["data", "context"]) is made and made.ranks == [1, 3, 5, 7]
    assert grid.get_context_data_parallel_group() is made


def test_get_group_of_a_layout_names_the_layout() -> None:
    dense = proctopo.ProcessTopology(["pipe", "data", "model"], [2, 4, 2])
    expert = proctopo.ProcessTopology(["pipe", "edp", "expert", "model"], [2, 2, 2, 2])
    grid, _ = _pgrid(3, 16, ["pipe", "data", "model"], [2, 4, 2], layouts={"expert": expert})
    assert grid.get_group("pipe", layout="expert") is grid.get_group("pipe")  # the same rank sets
    with pytest.raises(proctopo.GroupNotCreatedError) as info:
        grid.get_group("expert", layout="expert")
    assert str(info.value).endswith(
        "grid.create_group('expert', layout='expert'), or build the grid with groups=[('expert', ['expert'])]"
    )
    assert "no group over 'expert' of layout 'expert'" in str(info.value)
    group = grid.create_group("expert", layout="expert")
    assert group.ranks == expert.group_list(3, "expert")
    assert grid.layout("expert") is not dense and grid.get_group("expert", layout="expert") is group


def test_a_grid_built_with_the_groups_answers_them_without_a_call() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data", "context"], [2, 2, 2])
    comm = RecordingComm(6, 8)
    grid = ProcessGrid(topo, groups=[["data", "context"], []], comm=comm)
    calls = dict(comm.calls)
    assert grid.get_group(["context", "data"]).ranks == [4, 5, 6, 7]
    assert grid.get_group([]).ranks == [6]
    assert comm.calls == calls


def test_create_group_checks_its_arguments_across_ranks_before_creating() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    grid = ProcessGrid(topo, comm=RecordingComm(0, 4))
    spy = _SpyComm(rank=0, world_size=4)
    ProcessGrid(topo, comm=spy).create_group([])
    mine = {"grid": grid._fingerprint, "creation": 0, "create_group": {"layout": "main", "axes": []}}
    mine["create_group"]["backend"] = None
    assert spy.sent[0] == fingerprint(mine)  # what this rank sends: the call and the grid it is on
    other = {**mine, "create_group": {"layout": "main", "axes": ["pipe"], "backend": None}}
    comm = _DisagreeingComm(rank=0, world_size=4)
    grid = ProcessGrid(topo, comm=comm)
    comm.peers = [other]
    calls = comm.calls["new_group"]
    with pytest.raises(TopologyMismatchError) as info:
        grid.create_group([])
    text = str(info.value)
    shown = "{'axes': [], 'backend': None, 'layout': 'main'}"
    assert f"create_group: grid rank 0 has {shown}, grid rank 1 has " in text
    assert text.endswith(
        "Every rank of the grid must make the same create_group and new_groups calls, with the same "
        "arguments, in the same order"
    )
    assert comm.calls["new_group"] == calls  # nothing was created
    # bad axes fail before the collective; verify=False skips the check
    comm = RecordingComm(0, 4)
    grid = ProcessGrid(topo, comm=comm)
    before = dict(comm.calls)
    with pytest.raises(proctopo.UnknownAxisError):
        grid.create_group(["data", "nope"])
    with pytest.raises(proctopo.InvalidArgumentError, match="no layout named 'x'"):
        grid.create_group("data", layout="x")
    assert comm.calls == before
    comm = RecordingComm(0, 4)
    grid = ProcessGrid(topo, comm=comm, verify=False)
    assert grid.create_group([]).ranks == [0] and comm.calls["collective"] == 0
    grid.destroy()
    with pytest.raises(proctopo.GridDestroyedError):
        grid.create_group([])


def test_each_creation_call_is_numbered_and_new_groups_is_checked_too() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data"], [2, 4])
    sent = []
    for step in range(3):
        spy = _SpyComm(rank=1, world_size=8)
        grid = ProcessGrid(topo, comm=spy)
        for _ in range(step):
            grid.create_group("data")  # held: checked, nothing created
        grid.new_groups([[0, 1], [2, 3]], name="pairs")
        sent.append(spy.sent[0])
        assert spy.calls["collective"] == 2 + step
    assert len(set(sent)) == 3  # the same call at another place in the sequence differs
    spy = _SpyComm(rank=1, world_size=8)
    ProcessGrid(topo, comm=spy).new_groups([[3, 2], [1, 0]], name="pairs")
    assert spy.sent[0] == sent[0]  # the same family, listed in another order
    ProcessGrid(topo, comm=spy).new_groups([[0, 1], [2, 3]], name="other")
    assert spy.sent[0] != sent[0]


def test_pipeline_grid_makes_deepspeeds_sequence_data_group_with_the_grid() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
    comm = RecordingComm(3, 8)
    grid = PipelineParallelGrid(topo, comm=comm)
    calls = dict(comm.calls)
    assert grid.get_sequence_data_parallel_group().ranks == [0, 1, 2, 3]
    assert comm.calls == calls
    # a size-1 sequence axis makes it the data group: nothing more is created
    one = proctopo.ProcessTopology(["pipe", "data", "sequence"], [2, 4, 1])
    a, b = RecordingComm(3, 8), RecordingComm(3, 8)
    PipelineParallelGrid(one, comm=a)
    PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 4]), comm=b)
    assert a.calls == b.calls


def test_dir_of_the_package_is_its_public_api() -> None:
    names = dir(proctopo)
    assert {"ProcessGrid", "PipelineParallelGrid", "ProcessTopology", "GroupNotCreatedError"} <= set(names)
    assert {"errors", "topology", "testing", "megatron", "device_mesh"} <= set(names)
    assert set(proctopo.__all__) <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(names)
    assert [n for n in names if n.startswith("_")] == ["__version__"]
    assert names == sorted(names)
    code = (
        "import sys, proctopo\n"
        "names = dir(proctopo)\n"
        "for n in names: getattr(proctopo, n)\n"
        "print('ProcessGrid' in names, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
