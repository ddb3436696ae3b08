"""FSDP2 and tensor parallelism on one 2-D DeviceMesh exported from a proctopo grid.

    torchrun --standalone --nproc-per-node 4 examples/fsdp2_tp.py [--model 2] [--compare-init-device-mesh]

The grid lays the ranks out as data x model. ``grid.device_mesh(["data", "model"])``
exports one 2-D mesh made of the grid's own groups; ``parallelize_module`` splits
the MLP's first linear by columns and its second by rows over ``mesh["model"]``,
and ``fully_shard`` shards every parameter over ``mesh["data"]``. Slice both
dimensions from one 2-D export: two 1-D meshes exported separately cannot be
combined (torch refuses, as it does for two ``init_device_mesh`` meshes).

Each data-parallel rank trains on its share of the batch; the loss of each step,
averaged over the data-parallel ranks, is compared with one process training the
same model on the whole batch. With ``--compare-init-device-mesh`` the same
training runs again on ``init_device_mesh``'s mesh, and the two runs' losses and
final weights must be equal bit for bit. Each set-up's communicators per rank
(the grid and its export; ``init_device_mesh``) are counted and printed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import training
from proctopo.testing import GroupCount, counting_groups


def train(mesh: Any, steps: int) -> tuple[list[float], list[torch.Tensor]]:
    """Train the model on a 2-D (data, model) mesh; the mean loss per step and the final full weights."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    net = training.model()  # layers 0 and 2 are the linears, 1 the Tanh
    parallelize_module(net, mesh["model"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
    fully_shard(net, mesh=mesh["data"])
    x, y = training.batch()
    data_rank, data_size = mesh["data"].get_local_rank(), mesh["data"].size()
    x, y = training.rows(x, data_rank, data_size), training.rows(y, data_rank, data_size)
    losses = training.train(net, x, y, steps, lambda loss: training.mean_over(loss, mesh["data"].get_group()))
    weights = [p.full_tensor().detach().clone() for p in net.parameters()]
    return losses, weights


def main() -> None:
    args = training.arguments(
        __doc__.splitlines()[0],
        model=dict(type=int, default=2, help="tensor-parallel size (default 2)"),
        compare_init_device_mesh=dict(
            action="store_true", help="train again on init_device_mesh and compare bit for bit"
        ),
    )
    reference = training.reference_losses(args.steps)  # first: the job ends right after training
    training.init_gloo()
    from proctopo import ProcessGrid, ProcessTopology
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size()
    made: dict[str, GroupCount] = {}
    with counting_groups() as made["proctopo"]:
        grid = ProcessGrid(ProcessTopology(["data", "model"], [world // args.model, args.model]))
        mesh = grid.device_mesh(["data", "model"])
    losses, weights = train(mesh, args.steps)
    extra: dict[str, Any] = {"mesh": str(mesh)}
    if args.compare_init_device_mesh:
        with counting_groups() as made["init_device_mesh"]:
            torch_mesh = init_device_mesh("cpu", tuple(mesh.shape), mesh_dim_names=("data", "model"))
        torch_losses, torch_weights = train(torch_mesh, args.steps)
        extra["init_device_mesh_losses"] = torch_losses
        extra["bitwise_equal_losses"] = torch_losses == losses
        extra["bitwise_equal_weights"] = all(torch.equal(a, b) for a, b in zip(weights, torch_weights))
    training.report("FSDP2 + TP", losses, reference, args.out, made, **extra)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
