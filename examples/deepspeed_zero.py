"""DeepSpeed ZeRO (stage 0, 1, 2 or 3) with a proctopo grid as its ``mpu``.

    DS_ACCELERATOR=cpu torchrun --standalone --nproc-per-node 4 examples/deepspeed_zero.py --stage 2

``deepspeed.initialize(model=..., mpu=grid)`` takes its data-parallel and
model-parallel groups from the grid (pipe=1 x data=N/2 x model=2 here), so ZeRO
shards over the grid's data-parallel groups. The model is not split over the
model axis: the two ranks of a model group hold the same weights and read the
same share of the batch, as tensor-parallel ranks would. The loss of each step,
averaged over the data-parallel ranks, is compared with one process training
the same model on the whole batch.

With ``--compare-deepspeed-grid`` the same training runs again with DeepSpeed's
own ``PipelineParallelGrid`` (same layout) as the ``mpu``, and the two runs'
losses must be equal bit for bit. Each set-up's communicators per rank (the grid
and ``deepspeed.initialize``) are counted and printed.

``"gradient_clipping": 0.0`` keeps DeepSpeed's default clipping (1.0) from
rescaling the updates, which the reference does not do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import training
from proctopo.testing import GroupCount, counting_groups
from torch import nn


def config(stage: int, data_parallel: int) -> dict[str, Any]:
    """DeepSpeed's configuration: the whole batch in one step, AdamW as the reference's, no clipping."""
    adamw = dict(training.ADAMW, betas=list(training.ADAMW["betas"]), torch_adam=True)  # type: ignore[call-overload]
    return {
        "train_batch_size": training.BATCH,
        "train_micro_batch_size_per_gpu": training.BATCH // data_parallel,
        "gradient_accumulation_steps": 1,
        "optimizer": {"type": "AdamW", "params": adamw},
        "zero_optimization": {"stage": stage},
        "gradient_clipping": 0.0,
        "steps_per_print": 1_000_000,
    }


def setup(make_grid: Callable[[], Any], stage: int) -> tuple[Any, Any]:
    """``(grid, engine)``: the grid ``make_grid`` builds, as the ``mpu`` of a DeepSpeed engine."""
    import deepspeed

    grid = make_grid()
    dp = grid.get_data_parallel_world_size()
    engine, *_ = deepspeed.initialize(
        model=training.model(), model_parameters=None, config=config(stage, dp), mpu=grid
    )
    if engine.dp_world_size != dp:
        raise RuntimeError(f"DeepSpeed runs {engine.dp_world_size}-way data parallel, the grid says {dp}")
    return grid, engine


def train(grid: Any, engine: Any, steps: int) -> list[float]:
    """``steps`` steps of the engine on the grid's data-parallel share of the batch: the mean loss of each."""
    dp = grid.get_data_parallel_world_size()
    x, y = training.batch()
    data_rank = grid.get_data_parallel_rank()
    x, y = training.rows(x, data_rank, dp), training.rows(y, data_rank, dp)
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(engine(x), y)
        engine.backward(loss)
        engine.step()
        losses.append(training.mean_over(loss, grid.get_data_parallel_group()))
    return losses


def main() -> None:
    args = training.arguments(
        __doc__.splitlines()[0],
        stage=dict(type=int, default=0, choices=[0, 1, 2, 3], help="ZeRO stage"),
        compare_deepspeed_grid=dict(
            action="store_true",
            help="train again with DeepSpeed's own PipelineParallelGrid as mpu and compare",
        ),
    )
    reference = training.reference_losses(args.steps)  # first: the job ends right after training
    world = training.init_deepspeed()
    from deepspeed.runtime.pipe import topology as ds_topology
    from proctopo import PipelineParallelGrid, ProcessTopology

    made: dict[str, GroupCount] = {}
    with counting_groups() as made["proctopo"]:
        grid, engine = setup(
            lambda: PipelineParallelGrid(ProcessTopology(["pipe", "data", "model"], [1, world // 2, 2])),
            args.stage,
        )
    losses = train(grid, engine, args.steps)
    dp_group = grid.get_data_parallel_group()
    zero_group = getattr(engine.optimizer, "dp_process_group", None)  # ZeRO 1-3 shard over it
    extra: dict[str, Any] = {
        "data_parallel_group": dist.get_process_group_ranks(engine.data_parallel_group),
        "engine_uses_grid_group": engine.data_parallel_group is dp_group,
        "zero_uses_grid_group": None if zero_group is None else zero_group is dp_group,
    }
    if args.compare_deepspeed_grid:
        topology = ds_topology.PipeModelDataParallelTopology(num_pp=1, num_mp=2, num_dp=world // 2)
        with counting_groups() as made["DeepSpeed"]:
            ds_grid, ds_engine = setup(
                lambda: ds_topology.PipelineParallelGrid(topology=topology), args.stage
            )
        ds_losses = train(ds_grid, ds_engine, args.steps)
        extra["deepspeed_grid_losses"] = ds_losses
        extra["bitwise_equal_losses"] = ds_losses == losses
    training.report(f"DeepSpeed ZeRO-{args.stage}", losses, reference, args.out, made, **extra)
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
