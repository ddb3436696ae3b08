"""Worker for test_pipeline_module.py: DeepSpeed's PipelineModule fed a proctopo topology."""

from __future__ import annotations

import os
from typing import Any


def pipeline_module_views(rank: int, world_size: int, num_pp: int, num_mp: int) -> dict[str, Any]:
    """Build PipelineModule twice, with DeepSpeed's topology and with proctopo's, and describe both."""
    os.environ.setdefault("LOCAL_RANK", str(rank))
    import deepspeed
    import proctopo
    import torch
    from deepspeed.pipe import LayerSpec, PipelineModule
    from deepspeed.runtime.pipe import topology as ds_topology

    deepspeed.init_distributed(dist_backend="gloo")  # adopts the gloo group already running
    num_dp = world_size // (num_pp * num_mp)
    views = {}
    for name, topo in (
        ("deepspeed", ds_topology.PipeModelDataParallelTopology(num_pp=num_pp, num_mp=num_mp, num_dp=num_dp)),
        ("proctopo", proctopo.PipeModelDataParallelTopology(num_pp=num_pp, num_mp=num_mp, num_dp=num_dp)),
    ):
        layers = [LayerSpec(torch.nn.Linear, 4, 4) for _ in range(6)]
        module = PipelineModule(
            layers=layers, topology=topo, loss_fn=torch.nn.MSELoss(), partition_method="uniform"
        )
        grid = module._grid
        views[name] = {
            "stage_id": module.stage_id,
            "parts": [int(p) for p in module.parts],
            "local_layers": len(module.forward_funcs),
            "ckpt_path": module.ckpt_layer_path("ckpt", module._local_start),
            "dp_group": grid.get_data_parallel_group_ranks(),
            "pp_group": grid.pp_group,
            "slice_group": grid.slice_group,
            "model_parallel": (grid.get_model_parallel_rank(), grid.get_model_parallel_world_size()),
            "p2p": grid.p2p_groups,
            "rank_repr": topo.get_rank_repr(rank),
        }
    return views
