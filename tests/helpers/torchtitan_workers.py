"""Workers for tests/test_torchtitan.py: proctopo's ParallelDims against torchtitan 0.3.0's, on gloo.

Each rank builds torchtitan's ``ParallelDims`` and proctopo's for the same
settings, one after the other, and describes every mesh either side built: its
dimension names, its mesh tensor, and for each dimension the ranks and the
backend of the group behind it, plus what the getters answer. The process
groups each side created are counted around its ``build_mesh``: the
``new_group``/``split_group`` calls this rank made, and the groups that torch's
registry gained (real, and of the ``"fake"`` backend that never communicates).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TIMEOUT = 60.0

#: Mesh names whose combinations the getters are asked for.
NAMES = ("pp", "batch", "loss", "dp_replicate", "dp_shard", "fsdp", "dp", "cp", "tp", "ep", "efsdp")


@contextmanager
def counting(out: dict[str, Any]) -> Iterator[None]:
    """Count group-creation calls made, and groups registered, inside the block; ``out`` gets the numbers.

    ``out["new"]`` holds the groups registered (to destroy them afterwards).
    """
    import torch.distributed as dist
    from proctopo.testing import counting_groups

    with counting_groups() as count:
        yield
    backends = [str(dist.get_backend(pg)) for pg in count.made]
    out.update(
        calls=count.calls,
        real=sum(1 for b in backends if b != "fake"),
        fake=sum(1 for b in backends if b == "fake"),
        new=count.made,
    )


def _group(group: Any) -> tuple[list[int], str]:
    import torch.distributed as dist

    return [int(r) for r in dist.get_process_group_ranks(group)], str(dist.get_backend(group))


def mesh_view(mesh: Any) -> dict[str, Any] | None:
    """Names, mesh tensor and (ranks, backend) of each dimension's group."""
    if mesh is None:
        return None
    groups = [mesh.get_group(i) for i in range(mesh.ndim)]
    return {
        "names": list(mesh.mesh_dim_names),
        "mesh": mesh.mesh.tolist(),
        "groups": [_group(g) for g in groups],
    }


def _answer(call: Any) -> Any:
    """What a getter gives: a mesh view, or the kind of error it raised."""
    try:
        result = call()
    except ValueError:
        return "ValueError"
    except KeyError:
        return "KeyError"
    if isinstance(result, list):
        return [mesh_view(m) for m in result]
    return mesh_view(result)


def describe(dims: Any) -> dict[str, Any]:
    """Everything the differential compares, for either side's ParallelDims (meshes already built)."""
    out: dict[str, Any] = {
        "world": mesh_view(dims.world_mesh),
        "global": {k: mesh_view(m) for k, m in dims._global_meshes.items()},
        "single": {k: mesh_view(m) for k, m in dims._single_axis_meshes.items()},
        "one_dimensional": sorted(dims.get_all_one_dimensional_meshes()),
        "spmd_meshes": _answer(dims.spmd_meshes),
        "spmd_dense": _answer(dims.spmd_dense_mesh),
        "spmd_sparse": _answer(dims.spmd_sparse_mesh),
        "dense_tp": _answer(dims.get_dense_tp_mesh),
        "flags": [
            getattr(dims, f)
            for f in (
                "dp_enabled", "dp_replicate_enabled", "dp_shard_enabled", "cp_enabled", "dp_cp_enabled",
                "fsdp_enabled", "tp_enabled", "pp_enabled", "ep_enabled", "non_data_parallel_size",
                "seq_len_divisor", "dp_shard",
            )
        ],
    }  # fmt: skip
    # which meshes are equal (DeviceMesh ==, what ``mesh in dims.spmd_meshes()`` asks)
    meshes = [dims.world_mesh, *dims._global_meshes.values(), *dims._single_axis_meshes.values()]
    out["equal"] = [[a == b for b in meshes] for a in meshes]
    getters: dict[str, Any] = {}
    for r in (1, 2):
        for names in itertools.combinations(NAMES, r):
            key = ",".join(names)
            getters[key] = _answer(lambda n=list(names): dims.get_optional_mesh(n))
            getters[key + "/singleton"] = _answer(
                lambda n=list(names): dims.get_optional_mesh(n, include_singleton_axes=True)
            )
            getters[key + "/get_mesh"] = _answer(lambda n=list(names): dims.get_mesh(n))
    for axes in (
        ["dp", "cp", "tp"],
        ["dp_replicate", "efsdp", "ep"],
        ["dp", "tp", "ep"],
        ["cp"],
        ["pp", "tp"],
    ):
        getters["activated:" + ",".join(axes)] = _answer(lambda a=axes: dims.get_activated_mesh(a))
        getters["resolve:" + ",".join(axes)] = _answer(lambda a=axes: dims.resolve_mesh(a))
    out["getters"] = getters
    return out


def distinct(dims: Any) -> dict[str, int]:
    """Distinct real groups behind the meshes (by object) and distinct real rank sets they hold."""
    import torch.distributed as dist

    meshes = [dims.world_mesh, *dims._global_meshes.values(), *dims._single_axis_meshes.values()]
    names, sets = set(), set()
    for mesh in meshes:
        for i in range(mesh.ndim):
            group = mesh.get_group(i)
            if str(dist.get_backend(group)) == "fake":
                continue
            names.add(group.group_name)
            sets.add(tuple(sorted(dist.get_process_group_ranks(group))))
    return {"groups": len(names), "rank_sets": len(sets)}


def differential(rank: int, world_size: int, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each config: torchtitan's meshes and proctopo's, described and counted; proctopo's groups proven.

    Nothing is destroyed until every config is done, so each count is that of a
    first build: a group destroyed and made again under the same registry count
    needs spacer groups (see :class:`proctopo.comm.NameLedger`), which would add
    calls that a job building its meshes once never makes.
    """
    import torch.distributed as dist

    # torchtitan 0.3.0 gives disabled dimensions torch's "fake" backend, which torch 2.13
    # registers only when this module is imported; and it takes "cuda" as its device type
    # on a machine without accelerators, so it is told "cpu" here.
    import torch.testing._internal.distributed.fake_pg  # noqa: F401
    import torchtitan.distributed.parallel_dims as titan
    from proctopo.launch import prove_group
    from proctopo.torchtitan import ParallelDims

    titan.device_type = "cpu"
    results = []
    built: list[tuple[Any, list[Any]]] = []
    for config in configs:
        theirs_count: dict[str, Any] = {}
        with counting(theirs_count):
            theirs = titan.ParallelDims(world_size=world_size, **config)
            theirs.build_mesh()
        mine_count: dict[str, Any] = {}
        with counting(mine_count):
            mine = ParallelDims(world_size=world_size, timeout=TIMEOUT, **config)
            mine.build_mesh()
        grid = mine.grid
        proven = []
        for layout, axes, backend in mine.group_plan():  # the same order on every rank: no cycle
            if backend is None:
                proven.append(prove_group(grid.get_group(list(axes), layout=layout), timeout=TIMEOUT))
        results.append(
            {
                "config": config,
                "theirs": describe(theirs),
                "mine": describe(mine),
                "theirs_distinct": distinct(theirs),
                "mine_distinct": distinct(mine),
                "counts": {
                    "torchtitan": {k: v for k, v in theirs_count.items() if k != "new"},
                    "proctopo": {k: v for k, v in mine_count.items() if k != "new"},
                },
                "grid_communicators": grid.communicators,
                "proven": proven,
            }
        )
        built.append((mine, theirs_count["new"]))
    for mine, theirs_groups in reversed(built):  # newest first, as groups must be freed
        mine.destroy()
        for pg in reversed(theirs_groups):
            dist.destroy_process_group(pg)
    return results


def train_fsdp(rank: int, world_size: int, cases: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """FSDP2 over the data-parallel mesh of proctopo's ParallelDims against one process on the full batch.

    Each case is ParallelDims settings and the mesh names to shard over (one name:
    FSDP; two: HSDP). A tiny MLP trains ``steps`` AdamW steps; each rank takes its
    slice of the global batch, and the loss is averaged over the ``loss`` mesh.
    The reference runs the same model on the whole batch in this process, with no
    communication.
    """
    import copy

    import torch
    import torch.distributed as dist
    from proctopo import GridDestroyedError
    from proctopo.torchtitan import ParallelDims
    from torch.distributed.fsdp import fully_shard

    out = []
    for case in cases:
        settings, shard_over = case["dims"], case["mesh"]
        dims = ParallelDims(world_size=world_size, timeout=TIMEOUT, **settings)
        mesh = dims.get_mesh(shard_over)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
        reference = copy.deepcopy(model)
        per_rank = 2
        x = torch.randn(world_size * per_rank, 8)
        y = torch.randn(world_size * per_rank, 4)

        ref_opt = torch.optim.AdamW(reference.parameters(), lr=0.05)
        ref_losses = []
        for _ in range(steps):
            ref_opt.zero_grad()
            loss = torch.nn.functional.mse_loss(reference(x), y)
            loss.backward()
            ref_opt.step()
            ref_losses.append(loss.item())

        fully_shard(model, mesh=mesh)
        opt = torch.optim.AdamW(model.parameters(), lr=0.05)
        loss_group = dims.get_mesh("loss").get_group()
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[mine]), y[mine])
            loss.backward()
            opt.step()
            total = loss.detach().clone()
            dist.all_reduce(total, group=loss_group)
            losses.append(total.item() / dims.get_mesh("loss").size())
        out.append(
            {
                "case": case,
                "mesh": mesh_view(mesh),
                "losses": losses,
                "reference": ref_losses,
                "max_diff": max(abs(a - b) for a, b in zip(losses, ref_losses)),
            }
        )
        dims.destroy()
        try:
            dims.get_mesh("loss")
        except GridDestroyedError:
            out[-1]["after_destroy"] = "GridDestroyedError"
    return out
