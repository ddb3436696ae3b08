"""Workers for the placement cases of tests/test_multihost.py: a grid on real gloo over several hosts.

Run as a script on every rank of a job started by tests/helpers/multihost.py
(``python placement_workers.py CASE --out DIR``). Each rank initialises gloo, does
``CASE``, checks what it can on its own and writes what it saw to
``DIR/rank-<global rank>.json``; the test compares the ranks' files. A rank exits 0
only when its own checks pass, so the job fails if one of them does not.

The hosts the ranks really run on are all-gathered with ``socket.gethostname()``
independently of proctopo, and every check of where a group lies uses them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Seconds for the grid's exchange, its groups and every collective here.
TIMEOUT = 30.0


def _topology() -> Any:
    from proctopo import ProcessTopology

    return ProcessTopology(["data", "model"], [2, 2])


def _hosts() -> list[str]:
    """Every rank's hostname, gathered without proctopo."""
    import torch.distributed as dist

    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, socket.gethostname())
    return [str(h) for h in everyone]


def _placement(grid: Any) -> dict[str, Any]:
    p = grid.placement
    topo = grid.topology
    return {
        "hosts": p.hosts,
        "is_block": p.is_block,
        "pattern": p.pattern(),
        "ranks_of_host": {h: p.ranks_of_host(h) for h in p.hosts},
        "spans": {a: p.span_of(topo, a).nodes for a in topo.get_axis_names()},
    }


def _grid(**kwargs: Any) -> tuple[Any, list[str]]:
    """A grid of :func:`_topology` and the texts of the warnings its construction gave."""
    from proctopo import ProcessGrid

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = ProcessGrid(_topology(), group_creation="local", timeout=TIMEOUT, **kwargs)
    return grid, [str(w.message) for w in caught]


def _groups_hold(grid: Any, hosts: list[str], axes: Sequence[str]) -> dict[str, Any]:
    """Prove each axis's group of this rank with an all_reduce; say where its members run."""
    from proctopo.launch import prove_group

    out = {}
    for axis in axes:
        members = prove_group(grid.get_group(axis), timeout=TIMEOUT)
        assert members == grid.get_group_ranks(axis), (axis, members, grid.get_group_ranks(axis))
        out[axis] = {"ranks": members, "hosts": [hosts[r] for r in members]}
    return out


# --------------------------------------------------------------------------- the cases
def case_measure(rank: int) -> dict[str, Any]:
    """Build the grid with no rule: the placement it measured and the warnings it gave."""
    hosts = _hosts()
    grid, warned = _grid()
    seen = _placement(grid)
    assert [grid.placement.host_of(r) for r in range(grid.world_size)] == hosts, (seen, hosts)
    grid.destroy()
    return {"measured": hosts, "placement": seen, "warnings": warned}


def case_rule(rank: int) -> dict[str, Any]:
    """``intra_node=("model",)`` on a launch that breaks it: this rank must raise PlacementError."""
    from proctopo.errors import PlacementError

    try:
        grid, _ = _grid(intra_node=("model",))
    except PlacementError as exc:
        return {"raised": str(exc), "hosts": _hosts()}  # the job still talks: nothing hung
    grid.destroy()
    raise AssertionError(f"rank {rank}: the grid was built although model groups span hosts")


def case_reorder(rank: int) -> dict[str, Any]:
    """``reorder=True, intra_node=["model"]``: every group proven and the model groups inside hosts."""
    hosts = _hosts()
    grid, warned = _grid(reorder=True, intra_node=["model"])
    held = _groups_hold(grid, hosts, grid.topology.get_axis_names())
    assert len(set(held["model"]["hosts"])) == 1, held
    assert grid.global_rank_of(grid.coord) == rank and grid.coord_of_global(rank) == grid.coord
    positions = [grid.global_rank_of(c) for c in grid.topology.coords(range(grid.world_size)).tolist()]
    assert sorted(positions) == list(range(grid.world_size)), positions
    out = {
        "grid_rank": grid.grid_rank,
        "groups": held,
        "positions": positions,
        "placement": _placement(grid),
        "warnings": warned,
    }
    grid.destroy()
    return out


def case_mesh(rank: int) -> dict[str, Any]:
    """A DeviceMesh exported from a reordered grid: its mesh tensor and one all_reduce over it."""
    import torch
    import torch.distributed as dist

    hosts = _hosts()
    grid, _ = _grid(reorder=True, intra_node=["model"])
    mesh = grid.device_mesh()
    want = [[grid.global_rank_of((d, m)) for m in range(2)] for d in range(2)]
    assert mesh.mesh.tolist() == want, (mesh.mesh.tolist(), want)
    group = mesh.get_group("model")
    members = [int(r) for r in dist.get_process_group_ranks(group)]
    value = torch.tensor([rank + 1], dtype=torch.int64)
    dist.all_reduce(value, group=group)
    assert int(value.item()) == sum(r + 1 for r in members), (value, members)
    assert len({hosts[r] for r in members}) == 1, (members, hosts)
    out = {"mesh": mesh.mesh.tolist(), "model": members, "sum": int(value.item())}
    grid.destroy()
    return out


def case_order(rank: int) -> dict[str, Any]:
    """A reordered grid whose data groups fall in global rank (cyclic over 2 hosts, 8 ranks).

    Group rank i must be the i-th member in grid order: torch's rank in each group is
    the grid's axis coordinate, an all_gather over the group returns the members in
    grid order, and so does one over the groups of a DeviceMesh exported from it.
    """
    import torch
    import torch.distributed as dist
    from proctopo import ProcessGrid, ProcessTopology

    world = dist.get_world_size()
    grid = ProcessGrid(
        ProcessTopology(["data", "model"], [world // 2, 2]),
        group_creation="local",
        timeout=TIMEOUT,
        reorder=True,
        intra_node=["model"],
    )
    mesh = grid.device_mesh()
    seen: dict[str, Any] = {}
    for axis in ("data", "model"):
        members = grid.get_group_ranks(axis)
        for name, group in (("grid", grid.get_group(axis)), ("mesh", mesh.get_group(axis))):
            assert dist.get_rank(group) == grid.get_axis_rank(axis) == members.index(rank), (axis, name)
            out = [torch.zeros(1, dtype=torch.int64) for _ in members]
            dist.all_gather(out, torch.tensor([rank], dtype=torch.int64), group=group)
            gathered = [int(t.item()) for t in out]
            assert gathered == members, (axis, name, gathered, members)
        assert mesh.get_local_rank(axis) == grid.get_axis_rank(axis)
        seen[axis] = members
    grid.destroy()
    return seen


def case_megatron(rank: int) -> dict[str, Any]:
    """initialize_model_parallel with ``intra_node=["tp"]``: refused on a cyclic launch, with
    nothing left set; accepted on a block one, its tensor-parallel group proven."""
    from megatron.core import parallel_state as ps
    from proctopo import megatron
    from proctopo.errors import PlacementError
    from proctopo.launch import prove_group

    hosts = _hosts()
    block = hosts == sorted(hosts)
    kwargs: dict[str, Any] = {
        "tensor_model_parallel_size": 2,
        "create_gloo_process_groups": False,
        "group_creation": "local",
        "timeout": TIMEOUT,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            megatron.initialize_model_parallel(intra_node=["tp"], **kwargs)
        except PlacementError as exc:
            assert not block, exc
            assert ps._TENSOR_MODEL_PARALLEL_GROUP is None
            return {"raised": str(exc)}
    assert block
    try:
        members = prove_group(ps.get_tensor_model_parallel_group(), timeout=TIMEOUT)
        assert len({hosts[r] for r in members}) == 1, (members, hosts)
    finally:
        megatron.destroy_model_parallel()
    return {"tp": members}


def case_megatron_reorder(rank: int) -> dict[str, Any]:
    """initialize_model_parallel(reorder=True, intra_node=["tp"]) on a cyclic launch: the
    tensor-parallel groups inside hosts, and megatron-core's getters, its rank lists and
    torch's group ranks agreeing on who is where."""
    import torch
    import torch.distributed as dist
    from megatron.core import parallel_state as ps
    from proctopo import megatron

    hosts = _hosts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        megatron.initialize_model_parallel(
            tensor_model_parallel_size=2,
            pipeline_model_parallel_size=2,
            create_gloo_process_groups=False,
            group_creation="local",
            timeout=TIMEOUT,
            reorder=True,
            intra_node=["tp"],
        )
    try:
        seen: dict[str, Any] = {}
        for kind, group, ranks, mine in (
            ("tp", ps.get_tensor_model_parallel_group(), ps._TENSOR_MODEL_PARALLEL_GLOBAL_RANKS,
             ps.get_tensor_model_parallel_rank()),
            ("pp", ps.get_pipeline_model_parallel_group(), ps._PIPELINE_GLOBAL_RANKS,
             ps.get_pipeline_model_parallel_rank()),
        ):  # fmt: skip
            members = list(ranks)
            assert mine == members.index(rank) == dist.get_rank(group), (kind, mine, members)
            out = [torch.zeros(1, dtype=torch.int64) for _ in members]
            dist.all_gather(out, torch.tensor([rank], dtype=torch.int64), group=group)
            assert [int(t.item()) for t in out] == members, (kind, out, members)
            seen[kind] = members
        assert len({hosts[r] for r in seen["tp"]}) == 1, (seen, hosts)
        assert ps.get_tensor_model_parallel_src_rank() == seen["tp"][0]
        stage = seen["pp"].index(rank)
        assert ps.get_pipeline_model_parallel_next_rank() == seen["pp"][(stage + 1) % 2]
        assert ps.is_pipeline_first_stage() == (stage == 0)
        assert list(ps._EMBEDDING_GLOBAL_RANKS) == [seen["pp"][0], seen["pp"][-1]]
    finally:
        megatron.destroy_model_parallel()
    return seen


CASES: dict[str, Callable[[int], dict[str, Any]]] = {
    "measure": case_measure,
    "rule": case_rule,
    "reorder": case_reorder,
    "mesh": case_mesh,
    "order": case_order,
    "megatron": case_megatron,
    "megatron_reorder": case_megatron_reorder,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a grid's placement on several hosts")
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", required=True, help="directory for each rank's rank-<r>.json")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=TIMEOUT))
    rank = dist.get_rank()
    try:
        result = CASES[args.case](rank)
        Path(args.out, f"rank-{rank}.json").write_text(json.dumps(result))
        dist.barrier()  # every rank has written before any leaves
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
