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
model on the whole batch. With ``--compare-deepspeed-grid`` the same training
runs again on a ``PipelineModule`` given the topology, as DeepSpeed builds it
(its own grid), and the two runs' losses must be equal bit for bit. Each
set-up's communicators per rank (grid, module and ``deepspeed.initialize``) are
counted and printed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import training
from proctopo.testing import GroupCount, counting_groups
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


def specs() -> list[Any]:
    """The reference model's layers as DeepSpeed ``LayerSpec``s (each stage builds only its own)."""
    from deepspeed.pipe import LayerSpec

    return [
        LayerSpec(type(layer), layer.in_features, layer.out_features, seed=i // 2)
        if isinstance(layer, training.SeededLinear)
        else LayerSpec(nn.Tanh)
        for i, layer in enumerate(training.layers(DEPTH))
    ]


def engine_on(module: Any) -> Any:
    """The ``PipelineEngine`` that ``deepspeed.initialize`` builds on a ``PipelineModule``."""
    import deepspeed

    dp = module.mpu().get_data_parallel_world_size()
    engine, *_ = deepspeed.initialize(
        model=module, model_parameters=[p for p in module.parameters() if p.requires_grad], config=config(dp)
    )
    return engine


def train(engine: Any, steps: int) -> list[float]:
    """``steps`` steps of the engine, each on the whole batch: the engine's loss of each."""
    grid = engine.grid
    dp = grid.get_data_parallel_world_size()
    x, y = training.batch()
    data_rank = grid.get_data_parallel_rank()
    xs = training.rows(x, data_rank, dp).chunk(MICRO_BATCHES)
    ys = training.rows(y, data_rank, dp).chunk(MICRO_BATCHES)
    return [float(engine.train_batch(data_iter=iter(list(zip(xs, ys))))) for _ in range(steps)]


def main() -> None:
    args = training.arguments(
        __doc__.splitlines()[0],
        compare_deepspeed_grid=dict(
            action="store_true", help="train again on DeepSpeed's own PipelineModule grid and compare"
        ),
    )
    reference = training.reference_losses(args.steps, DEPTH)  # first: the job ends right after training
    world = training.init_deepspeed()
    from deepspeed.pipe import PipelineModule
    from deepspeed.runtime.pipe.topology import PipeDataParallelTopology
    from proctopo import PipelineParallelGrid, ProcessTopology
    from proctopo.deepspeed import pipeline_module

    made: dict[str, GroupCount] = {}
    with counting_groups() as made["proctopo"]:
        grid = PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, world // 2]))
        module = pipeline_module(specs(), grid, loss_fn=nn.MSELoss(), partition_method="uniform")
        engine = engine_on(module)
    losses = train(engine, args.steps)
    extra: dict[str, Any] = {
        "stage": grid.get_stage_id(),
        "layers": [module._local_start, module._local_stop],
        "engine_uses_grid": engine.grid is grid and engine.mpu is grid,
        "engine_uses_grid_group": engine.data_parallel_group is grid.get_data_parallel_group(),
    }
    if args.compare_deepspeed_grid:
        topology = PipeDataParallelTopology(num_pp=2, num_dp=world // 2)
        with counting_groups() as made["DeepSpeed"]:
            ds_module = PipelineModule(
                specs(), topology=topology, loss_fn=nn.MSELoss(), partition_method="uniform"
            )
            ds_engine = engine_on(ds_module)
        ds_losses = train(ds_engine, args.steps)
        extra["deepspeed_grid_losses"] = ds_losses
        extra["bitwise_equal_losses"] = ds_losses == losses
    training.report("DeepSpeed PipelineEngine", losses, reference, args.out, made, **extra)
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
