"""Workers for tests/test_device_mesh.py: ProcessGrid's DeviceMesh export and layouts on gloo."""

from __future__ import annotations

from typing import Any

TIMEOUT = 30.0


def _registered() -> int:
    from torch.distributed import distributed_c10d as c10d

    return len(c10d._world.pg_names)


def _ranks(group: Any) -> list[int]:
    import torch.distributed as dist

    return [int(r) for r in dist.get_process_group_ranks(group)]


def export(rank: int, world_size: int, cases: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """For each (axes, dims, mesh dims, mesh shape, mesh names, slices) case: export, compare, use.

    The grid's groups are created up front (``groups=``), so the export must
    register no group; every dimension and slice is compared with
    ``init_device_mesh`` of the same shape, proven by an all_reduce, and a DTensor
    is sharded and gathered over the exported mesh.
    """
    import torch
    from proctopo import ProcessGrid, ProcessTopology
    from proctopo.launch import prove_group
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    out = []
    for axes, dims, mesh_dims, shape, names, slices in cases:
        topo = ProcessTopology(axes, dims)
        flat_dims = [d if isinstance(d, str) else list(d) for d in mesh_dims]
        grid = ProcessGrid(topo, group_creation="local", timeout=TIMEOUT, groups=flat_dims)
        before = _registered()
        calls = grid.group_creation_calls
        mesh = grid.device_mesh(mesh_dims)
        grew = _registered() - before
        assert grid.group_creation_calls == calls

        ref = init_device_mesh("cpu", tuple(dims), mesh_dim_names=tuple(axes))
        if list(names) != list(axes):  # flatten the reference the way torch does it
            for d in mesh_dims:
                if not isinstance(d, str):
                    ref[tuple(d)]._flatten("_".join(d))
        where = f"{axes}={dims} dims={mesh_dims} rank {rank}"
        assert mesh.mesh_dim_names == tuple(names), where
        assert tuple(mesh.mesh.shape) == tuple(shape), (where, mesh.mesh.shape)
        ref_view = ref[tuple(names)] if len(names) > 1 else ref[names[0]]
        assert mesh.mesh.tolist() == ref_view.mesh.tolist(), (where, mesh.mesh, ref_view.mesh)
        for name, axes_of_dim in zip(names, mesh_dims):
            group = mesh.get_group(name)
            assert group.group_name == grid.get_group(axes_of_dim).group_name, (where, name)
            want = _ranks(ref.get_group(name))
            assert _ranks(group) == want, (where, name, _ranks(group), want)
            assert prove_group(group, timeout=TIMEOUT) == want
            sub = mesh[name]
            assert sub.mesh.tolist() == ref[name].mesh.tolist(), (where, name)
            assert _ranks(sub.get_group()) == want
        for pair in slices:
            assert mesh[tuple(pair)].mesh.tolist() == ref[tuple(pair)].mesh.tolist(), (where, pair)

        # DTensor: shard dim 0 of a tensor over each mesh dimension in turn, gather it back.
        full = torch.arange(8 * 6, dtype=torch.float32).reshape(8, 6)
        for i in range(len(names)):
            placements = [Replicate()] * len(names)
            placements[i] = Shard(0)
            dt = distribute_tensor(full, mesh, placements)
            assert dt.to_local().shape[0] == 8 // mesh.mesh.shape[i], (where, i, dt.to_local().shape)
            back = dt.redistribute(mesh, [Replicate()] * len(names))
            assert torch.equal(back.to_local(), full), (where, i)
        out.append({"grew": grew, "shape": list(mesh.mesh.shape), "communicators": grid.communicators})
    return out


def layouts(rank: int, world_size: int) -> dict[str, Any]:
    """A dense and an expert layout of 8 ranks: shared axes share communicators; all groups talk."""
    from proctopo import ProcessGrid, ProcessTopology
    from proctopo.launch import prove_group

    dense = ProcessTopology(["pipe", "data", "model"], [2, 2, 2])
    expert = ProcessTopology(["pipe", "expert", "edp", "model"], [2, 2, 1, 2])
    start = _registered()
    grid = ProcessGrid(
        dense,
        group_creation="local",
        timeout=TIMEOUT,
        layouts={"expert": expert},
        groups=[("expert", ["expert"]), ("expert", ["expert", "model"]), ("data", "model")],
    )
    # the expert axis enumerates like data: one communicator; expert+model is data+model
    assert grid.get_group("expert", layout="expert") is grid.get_group("data")
    assert grid.get_group(["expert", "model"], layout="expert") is grid.get_group(["data", "model"])
    assert grid.get_group("pipe", layout="expert") is grid.get_group("pipe")
    embedding = grid.new_groups([[0, 4], [1, 5], [2, 6], [3, 7]], name="embedding")
    assert embedding is grid.get_group("pipe")  # an explicit family with the same rank sets
    first_last = grid.new_groups([[0, 4], [3, 7]], name="first-last")
    made = _registered() - start
    proven = {
        "pipe": prove_group(grid.get_group("pipe"), timeout=TIMEOUT),
        "data": prove_group(grid.get_group("data"), timeout=TIMEOUT),
        "model": prove_group(grid.get_group("model"), timeout=TIMEOUT),
        "data_model": prove_group(grid.get_group(["data", "model"]), timeout=TIMEOUT),
        "expert": prove_group(grid.get_group("expert", layout="expert"), timeout=TIMEOUT),
    }
    if first_last is not None:
        proven["first_last"] = prove_group(first_last, timeout=TIMEOUT)
    return {
        "made": made,
        "communicators": grid.communicators,
        "calls": grid.group_creation_calls,
        "proven": proven,
    }


def over_process_group(rank: int, world_size: int, members: list[int]) -> Any:
    """A pipe x data grid over a subgroup: the mesh holds global ranks; its groups are the grid's."""
    import torch.distributed as dist
    from proctopo import ProcessGrid, ProcessTopology
    from proctopo.launch import prove_group

    sub = dist.new_group(members)  # every rank calls new_group, as torch requires
    if rank not in members:
        return None
    grid = ProcessGrid(ProcessTopology(["pipe", "data"], [2, len(members) // 2]), sub, timeout=TIMEOUT)
    before = _registered()
    mesh = grid.device_mesh()
    grew = _registered() - before
    assert mesh.get_group("pipe").group_name == grid.get_group("pipe").group_name
    return {
        "mesh": mesh.mesh.tolist(),
        "grew": grew,
        "pipe": prove_group(mesh.get_group("pipe"), timeout=TIMEOUT),
        "data": prove_group(mesh.get_group("data"), timeout=TIMEOUT),
        "data_slice": mesh["data"].mesh.tolist(),
    }


def bad_device_types(rank: int, world_size: int) -> dict[str, Any]:
    """The export's refusals of bad input: ``dims=[]`` and device types gloo has no backend for.

    Returns each refusal's ``type: message``, the groups registered meanwhile, and
    the device type of a mesh exported with ``device_type="cpu"``.
    """
    from proctopo import InvalidArgumentError, ProcessGrid, ProcessTopology

    grid = ProcessGrid(ProcessTopology(["data"], [world_size]), group_creation="local", timeout=TIMEOUT)
    before = _registered()
    out: dict[str, Any] = {}
    for key, kwargs in [("empty", {"dims": []})] + [
        (repr(t), {"device_type": t}) for t in ("nonexistent", "cuda:0", "CPU", "meta", 0)
    ]:
        try:
            grid.device_mesh(**kwargs)
        except InvalidArgumentError as exc:
            out[key] = f"{type(exc).__name__}: {exc}"
        else:
            out[key] = "accepted"
    out["grew"] = _registered() - before
    out["cpu"] = grid.device_mesh(device_type="cpu").device_type
    return out
