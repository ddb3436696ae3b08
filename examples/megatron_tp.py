"""megatron-core's tensor-parallel linears on groups made by ``proctopo.megatron``.

    torchrun --standalone --nproc-per-node 4 examples/megatron_tp.py

``proctopo.megatron.initialize_model_parallel(tensor_model_parallel_size=2)``
fills ``megatron.core.parallel_state`` from one proctopo grid, as megatron-core's
own call would. A ``ColumnParallelLinear`` (its output left split) followed by a
``RowParallelLinear`` then computes what the two ``nn.Linear`` of the reference
model compute, each tensor-parallel rank holding its slice of the reference's
weights. Gradients are averaged over ``parallel_state.get_data_parallel_group()``
by hand (megatron-core's own DDP needs CUDA). The loss of each step, averaged
over the data-parallel ranks, is compared with one process training the same
model on the whole batch. With ``--compare-megatron-core`` the same training runs
again on megatron-core's own ``initialize_model_parallel``, and the two runs'
losses must be equal bit for bit. Each set-up's communicators per rank are
counted and printed. The job ends as a Megatron job does:
``destroy_model_parallel()``, then ``dist.destroy_process_group()``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import training
from proctopo.testing import GroupCount, counting_groups
from torch import nn


class ParallelMLP(nn.Module):
    """The reference's two linears, split over the tensor-parallel group: columns, then rows."""

    def __init__(self, tp_size: int, tp_rank: int) -> None:
        from megatron.core import ModelParallelConfig
        from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear

        super().__init__()
        cfg = ModelParallelConfig(tensor_model_parallel_size=tp_size, use_cpu_initialization=True)
        zeros = nn.init.zeros_
        self.fc1 = ColumnParallelLinear(
            training.IN_FEATURES, training.HIDDEN, config=cfg, init_method=zeros, gather_output=False
        )
        self.fc2 = RowParallelLinear(
            training.HIDDEN,
            training.OUT_FEATURES,
            config=cfg,
            init_method=zeros,
            bias=True,
            input_is_parallel=True,
            skip_bias_add=False,
        )
        full = training.model()  # the reference's weights: [Linear, Tanh, Linear]
        cols = slice(tp_rank * training.HIDDEN // tp_size, (tp_rank + 1) * training.HIDDEN // tp_size)
        with torch.no_grad():
            self.fc1.weight.copy_(full[0].weight[cols])
            self.fc1.bias.copy_(full[0].bias[cols])
            self.fc2.weight.copy_(full[2].weight[:, cols])
            self.fc2.bias.copy_(full[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.fc1(x)
        out, _ = self.fc2(torch.tanh(hidden))
        return out  # type: ignore[no-any-return]


def train(tp: int, steps: int) -> tuple[list[float], dict[str, list[int]]]:
    """Train on the groups ``parallel_state`` holds: the mean loss of each step, and the groups' ranks."""
    from megatron.core import parallel_state

    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    dp_group = parallel_state.get_data_parallel_group()
    dp_rank, dp = parallel_state.get_data_parallel_rank(), parallel_state.get_data_parallel_world_size()
    net = ParallelMLP(tp, tp_rank)
    x, y = training.batch()
    x, y = training.rows(x, dp_rank, dp), training.rows(y, dp_rank, dp)
    opt = torch.optim.AdamW(net.parameters(), **training.ADAMW)  # type: ignore[arg-type]
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        for p in net.parameters():  # data parallelism: the mean gradient over the data-parallel ranks
            dist.all_reduce(p.grad, group=dp_group)
            p.grad /= dp
        opt.step()
        losses.append(training.mean_over(loss, dp_group))
    groups = {
        "tensor_parallel_group": dist.get_process_group_ranks(
            parallel_state.get_tensor_model_parallel_group()
        ),
        "data_parallel_group": dist.get_process_group_ranks(dp_group),
    }
    return losses, groups


def main() -> None:
    args = training.arguments(
        __doc__.splitlines()[0],
        tensor=dict(type=int, default=2, help="tensor-parallel size (default 2)"),
        compare_megatron_core=dict(
            action="store_true",
            help="train again on megatron-core's own initialize_model_parallel and compare",
        ),
    )
    reference = training.reference_losses(args.steps)  # first: the job ends right after training
    training.init_gloo()
    from megatron.core import parallel_state
    from proctopo import megatron

    made: dict[str, GroupCount] = {}
    compared: dict[str, Any] = {}
    with counting_groups() as made["proctopo"]:
        megatron.initialize_model_parallel(tensor_model_parallel_size=args.tensor)
    losses, groups = train(args.tensor, args.steps)
    megatron.destroy_model_parallel()  # proctopo's groups, and parallel_state reset
    if args.compare_megatron_core:
        with counting_groups() as made["megatron-core"]:
            parallel_state.initialize_model_parallel(tensor_model_parallel_size=args.tensor)
        own_losses, own_groups = train(args.tensor, args.steps)
        parallel_state.destroy_model_parallel()
        compared = {
            "megatron_core_losses": own_losses,
            "bitwise_equal_losses": own_losses == losses,
            "same_groups": own_groups == groups,
        }
    training.report(
        "megatron-core tensor-parallel linears", losses, reference, args.out, made, **groups, **compared
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
