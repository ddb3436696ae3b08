"""DeepSpeed's pipeline engine running on a proctopo grid.

    DS_ACCELERATOR=cpu torchrun --standalone --nproc-per-node 4 examples/deepspeed_pipeline.py

DeepSpeed's ``PipelineModule`` builds a grid of its own from the topology it is
given. ``proctopo.deepspeed.pipeline_module(layers, grid, ...)`` builds it on a
:class:`proctopo.PipelineParallelGrid` instead (pipe=2 x data=N/2 here), so the
``PipelineEngine`` that ``deepspeed.initialize`` makes sends activations between
the grid's stages and reduces gradients over the grid's data-parallel groups.
For a ``PipelineModule`` subclass, build it inside
``with proctopo.deepspeed.use_grid(grid):``.

Each step trains on the whole batch: two micro-batches per data-parallel rank.
The engine's loss of each step is compared with one process training the same
model on the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import training
from torch import nn

DEPTH = 4  # linears: 7 layers with the Tanh between them, split over the pipeline stages
MICRO_BATCHES = 2


def config(data_parallel: int) -> dict[str, Any]:
    """The whole batch per step in MICRO_BATCHES micro-batches per data-parallel rank; AdamW; no clipping."""
    adamw = dict(training.ADAMW, betas=list(training.ADAMW["betas"]), torch_adam=True)  # type: ignore[call-overload]
    return {
        "train_batch_size": training.BATCH,
        "train_micro_batch_size_per_gpu": training.BATCH // (data_parallel * MICRO_BATCHES),
        "gradient_accumulation_steps": MICRO_BATCHES,
        "optimizer": {"type": "AdamW", "params": adamw},
        "gradient_clipping": 0.0,
        "steps_per_print": 1_000_000,
    }


def main() -> None:
    args = training.arguments(__doc__.splitlines()[0])
    reference = training.reference_losses(args.steps, DEPTH)  # first: the job ends right after training
    training.skip_deepspeed_shm_op()
    training.init_gloo()
    import deepspeed
    from deepspeed.pipe import LayerSpec
    from proctopo import PipelineParallelGrid, ProcessTopology
    from proctopo.deepspeed import pipeline_module

    deepspeed.init_distributed(dist_backend="gloo")  # adopts the gloo group already running
    world = dist.get_world_size()
    grid = PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, world // 2]))
    specs = [
        LayerSpec(type(layer), layer.in_features, layer.out_features, seed=i // 2)
        if isinstance(layer, training.SeededLinear)
        else LayerSpec(nn.Tanh)
        for i, layer in enumerate(training.layers(DEPTH))
    ]
    module = pipeline_module(specs, grid, loss_fn=nn.MSELoss(), partition_method="uniform")
    dp = grid.get_data_parallel_world_size()
    engine, *_ = deepspeed.initialize(
        model=module, model_parameters=[p for p in module.parameters() if p.requires_grad], config=config(dp)
    )
    x, y = training.batch()
    data_rank = grid.get_data_parallel_rank()
    xs = training.rows(x, data_rank, dp).chunk(MICRO_BATCHES)
    ys = training.rows(y, data_rank, dp).chunk(MICRO_BATCHES)
    losses = [float(engine.train_batch(data_iter=iter(list(zip(xs, ys))))) for _ in range(args.steps)]
    training.report(
        "DeepSpeed PipelineEngine",
        losses,
        reference,
        args.out,
        stage=grid.get_stage_id(),
        layers=[module._local_start, module._local_stop],
        engine_uses_grid=engine.grid is grid and engine.mpu is grid,
        engine_uses_grid_group=engine.data_parallel_group is grid.get_data_parallel_group(),
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
