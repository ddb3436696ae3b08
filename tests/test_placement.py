"""Measured placement, locality rules and reorder, played with RecordingComm."""

from __future__ import annotations

import warnings

import proctopo
import pytest
from proctopo.comm import peer_lost
from proctopo.errors import GridTimeoutError, GroupCreationError, PeerLostError, PlacementError
from proctopo.grid import ProcessGrid
from proctopo.groups import decode_hosts, encode_location
from proctopo.machine import MeasuredPlacement
from proctopo.testing import RecordingComm

TOPO = proctopo.ProcessTopology(["data", "model"], [2, 2])
CYCLIC = ["a", "b", "a", "b"]


def test_placement_travels_in_the_one_exchange() -> None:
    comm = RecordingComm(1, 4, hosts=["a", "a", "b", "b"])
    grid = ProcessGrid(TOPO, comm=comm, intra_node=["model"])
    assert comm.calls["collective"] == 1  # fingerprint and hosts together
    p = grid.placement
    assert p.hosts == ["a", "b"] and p.is_block and p.ranks_of_host("b") == [2, 3]
    assert p.span_of(TOPO, "model").nodes == 1 and p.span_of(TOPO, "data").nodes == 2


def test_every_rank_raises_the_same_placement_error() -> None:
    messages = set()
    for rank in range(4):
        with pytest.raises(PlacementError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ProcessGrid(TOPO, comm=RecordingComm(rank, 4, hosts=CYCLIC), intra_node=["model"])
        messages.add(str(info.value))
    (message,) = messages
    assert "axis 'model'" in message and "[0, 1]" in message
    assert "rank 0 on 'a', rank 1 on 'b'" in message and "cyclic over 2 hosts" in message


def test_cyclic_launch_warns_once_on_grid_rank_0() -> None:
    topo = proctopo.ProcessTopology(["data", "model"], [4, 2])
    hosts = ["w", "x", "y", "z"] * 2  # a message no other test of this file warns
    with pytest.warns(RuntimeWarning, match=r"not in block order .*cyclic over 4 hosts"):
        ProcessGrid(topo, comm=RecordingComm(0, 8, hosts=hosts))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ProcessGrid(topo, comm=RecordingComm(0, 8, hosts=hosts))  # once per process
        ProcessGrid(TOPO, comm=RecordingComm(1, 4, hosts=CYCLIC))  # grid rank 0 only


def test_reorder_fixes_a_cyclic_launch() -> None:
    for rank in range(4):
        comm = RecordingComm(rank, 4, hosts=CYCLIC)
        grid = ProcessGrid(TOPO, comm=comm, reorder=True, intra_node=["model"])
        model = grid.get_group_ranks("model")
        assert {CYCLIC[r] for r in model} == {CYCLIC[rank]} and rank in model
        assert grid.placement.is_block
        assert grid.global_rank_of(grid.coord) == rank
        assert grid.coord_of_global(rank) == grid.coord
    assert [grid.global_rank_of((d, m)) for d in range(2) for m in range(2)] == [0, 2, 1, 3]


def test_reordered_groups_keep_the_grid_order_of_their_ranks() -> None:
    """Group rank i is the i-th member in grid order, even where global ranks fall."""
    topo = proctopo.ProcessTopology(["data", "model"], [4, 2])
    hosts = ["a", "b"] * 4  # cyclic: grid order 0, 2, 4, 6, 1, 3, 5, 7
    for rank in range(8):
        comm = RecordingComm(rank, 8, hosts=hosts)
        grid = ProcessGrid(topo, comm=comm, reorder=True, intra_node=["model"])
        for axis in ("data", "model"):
            group = grid.get_group(axis)
            assert list(group.ranks) == grid.get_group_ranks(axis)
            assert grid.get_group_ranks(axis).index(rank) == grid.get_axis_rank(axis)
        if rank == 4:
            assert grid.get_group_ranks("data") == [0, 4, 1, 5]  # positions 0, 2, 4, 6


class _SortingComm(RecordingComm):
    """Plays a torch whose new_group sorts every group's ranks."""

    def order_support(self) -> str:  # type: ignore[override]
        return "this torch sorts a new group's ranks"


def test_a_reordered_grid_refuses_groups_that_cannot_keep_their_order() -> None:
    topo = proctopo.ProcessTopology(["data", "model"], [4, 2])
    hosts = ["a", "b"] * 4
    split = RecordingComm(0, 8, hosts=hosts, backend="nccl", can_split=True)
    for comm, strategy in ((_SortingComm(0, 8, hosts=hosts), "local"), (split, "split")):
        with pytest.raises(GroupCreationError) as info:
            ProcessGrid(topo, comm=comm, reorder=True, intra_node=["model"], group_creation=strategy)
        text = str(info.value)
        assert "groups of ['data'] hold their global ranks in grid order, e.g. [0, 4, 1, 5]" in text, text
        assert "sorts" in text and "group_creation='local' with torch 2.13 or later" in text
        assert comm.live_groups() == []  # refused before any group was made
    # Where every group is ascending, nothing needs keeping: the same comm builds the grid.
    grid = ProcessGrid(TOPO, comm=_SortingComm(0, 4, hosts=CYCLIC), reorder=True, intra_node=["model"])
    assert grid.get_group_ranks("data") == [0, 1]


def test_reorder_changes_nothing_on_a_block_placement() -> None:
    comm = RecordingComm(2, 4, hosts=["a", "a", "b", "b"])
    grid = ProcessGrid(TOPO, comm=comm, reorder=True, intra_node=["model"])
    assert grid.grid_rank == 2 and grid.get_group_ranks("model") == [2, 3]


def test_reorder_refuses_hosts_that_cannot_hold_whole_groups() -> None:
    with pytest.raises(PlacementError, match=r"host holding 3 ranks cannot be filled.*multiple of 2"):
        ProcessGrid(
            TOPO, comm=RecordingComm(0, 4, hosts=["a", "a", "a", "b"]), reorder=True, intra_node=["model"]
        )


def test_domains_rule_and_unknown_placement() -> None:
    comm = RecordingComm(0, 4, hosts=["a", "b", "c", "d"], domains=["n0", "n0", "n1", "n1"])
    grid = ProcessGrid(TOPO, comm=comm, intra_domain=["model"])
    assert grid.placement.domains == 2
    with pytest.raises(PlacementError, match="one host"):
        grid.check_placement(intra_node=["model"])
    with pytest.raises(PlacementError, match="one domain"):
        grid.check_placement(intra_domain=["data"])
    blind = ProcessGrid(TOPO, comm=RecordingComm(0, 4), verify=False)
    with pytest.raises(PlacementError, match="verify=False"):
        blind.placement  # noqa: B018
    with pytest.raises(proctopo.InvalidArgumentError, match="verify=False"):
        ProcessGrid(TOPO, comm=RecordingComm(0, 4), verify=False, reorder=True)


def test_location_encoding_round_trips() -> None:
    long = "h" * 90
    hosts, nodes, domains = decode_hosts([encode_location(h, None) for h in ["a", long, "a", ""]]) or (
        [],
        0,
        0,
    )
    assert hosts[0] == "a" and hosts[1].startswith("h") and hosts[1] != hosts[0] and hosts[2] == ""
    assert nodes.tolist() == [0, 1, 0, 2] and domains is None
    assert MeasuredPlacement(["a", "b", "b"]).pattern().startswith("uneven")


def test_peer_lost_is_named() -> None:
    assert peer_lost(RuntimeError("Connection closed by peer [127.0.0.1]:4711")) is not None
    assert "rank 3" in (peer_lost(RuntimeError("connection reset by peer: rank 3")) or "")
    assert peer_lost(RuntimeError("Timed out")) is None
    assert issubclass(PeerLostError, GridTimeoutError) and issubclass(PeerLostError, ConnectionError)
