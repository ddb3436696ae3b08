"""DeepSpeed ZeRO (stage 0, 1, 2 or 3) with a proctopo grid as its ``mpu``.

    DS_ACCELERATOR=cpu torchrun --standalone --nproc-per-node 4 examples/deepspeed_zero.py --stage 2

``deepspeed.initialize(model=..., mpu=grid)`` takes its data-parallel and
model-parallel groups from the grid (pipe=1 x data=N/2 x model=2 here), so ZeRO
shards over the grid's data-parallel groups. The model is not split over the
model axis: the two ranks of a model group hold the same weights and read the
same share of the batch, as tensor-parallel ranks would. The loss of each step,
averaged over the data-parallel ranks, is compared with one process training
the same model on the whole batch.

``"gradient_clipping": 0.0`` keeps DeepSpeed's default clipping (1.0) from
rescaling the updates, which the reference does not do.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import training
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


def main() -> None:
    args = training.arguments(
        __doc__.splitlines()[0], stage=dict(type=int, default=0, choices=[0, 1, 2, 3], help="ZeRO stage")
    )
    reference = training.reference_losses(args.steps)  # first: the job ends right after training
    training.skip_deepspeed_shm_op()
    training.init_gloo()
    import deepspeed
    from proctopo import PipelineParallelGrid, ProcessTopology

    deepspeed.init_distributed(dist_backend="gloo")  # adopts the gloo group already running
    world = dist.get_world_size()
    grid = PipelineParallelGrid(ProcessTopology(["pipe", "data", "model"], [1, world // 2, 2]))
    dp = grid.get_data_parallel_world_size()
    engine, *_ = deepspeed.initialize(
        model=training.model(), model_parameters=None, config=config(args.stage, dp), mpu=grid
    )
    if engine.dp_world_size != dp:
        raise RuntimeError(f"DeepSpeed runs {engine.dp_world_size}-way data parallel, the grid says {dp}")
    x, y = training.batch()
    data_rank = grid.get_data_parallel_rank()
    x, y = training.rows(x, data_rank, dp), training.rows(y, data_rank, dp)
    losses = []
    for _ in range(args.steps):
        loss = nn.functional.mse_loss(engine(x), y)
        engine.backward(loss)
        engine.step()
        losses.append(training.mean_over(loss, grid.get_data_parallel_group()))
    dp_group = grid.get_data_parallel_group()
    zero_group = getattr(engine.optimizer, "dp_process_group", None)  # ZeRO 1-3 shard over it
    training.report(
        f"DeepSpeed ZeRO-{args.stage}",
        losses,
        reference,
        args.out,
        data_parallel_group=dist.get_process_group_ranks(engine.data_parallel_group),
        engine_uses_grid_group=engine.data_parallel_group is dp_group,
        zero_uses_grid_group=None if zero_group is None else zero_group is dp_group,
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
