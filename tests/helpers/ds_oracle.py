"""DeepSpeed's own PipelineParallelGrid as an oracle, run on a recording comm layer.

``deepspeed.runtime.pipe.topology`` reaches torch.distributed only through the
module-level name ``dist`` (``deepspeed.comm``); swapping it for a
:class:`proctopo.testing.RecordingComm` lets DeepSpeed's grid play any rank of
any world in one process, and its recorded ``new_group`` calls tell which ranks
each of its process groups holds.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import deepspeed.runtime.pipe.topology as ds_topology
from proctopo.testing import RecordingComm

#: Instance attributes DeepSpeed's grid sets whatever the topology (plus
#: ``mp_group``/``model_groups`` when the model axis is larger than 1).
DS_VALUE_ATTRS = (
    "global_rank",
    "world_size",
    "data_parallel_size",
    "pipe_parallel_size",
    "model_parallel_size",
    "slice_parallel_size",
    "stage_id",
    "data_parallel_id",
    "ds_model_rank",
    "ds_model_world_size",
    "dp_group",
    "dp_groups",
    "is_first_stage",
    "is_last_stage",
    "p2p_groups",
    "pp_group",
    "pipe_groups",
    "slice_group",
)
DS_GROUP_ATTRS = ("ds_model_proc_group", "dp_proc_group", "pp_proc_group", "slice_proc_group")
DS_VALUE_GETTERS = (
    "get_stage_id",
    "get_data_parallel_id",
    "_is_grid_valid",
    "_build_p2p_groups",
    "get_global_rank",
    "get_pipe_parallel_rank",
    "get_pipeline_model_parallel_rank",
    "get_pipe_parallel_world_size",
    "get_pipeline_model_parallel_world_size",
    "get_data_parallel_rank",
    "get_data_parallel_world_size",
    "get_data_parallel_group_ranks",
    "get_model_parallel_rank",
    "get_model_parallel_world_size",
    "get_slice_parallel_rank",
    "get_tensor_model_parallel_rank",
    "get_slice_parallel_world_size",
    "get_tensor_model_parallel_world_size",
)
DS_GROUP_GETTERS = (
    "get_pipe_parallel_group",
    "get_data_parallel_group",
    "get_model_parallel_group",
    "get_slice_parallel_group",
)


def ds_topology_of(axes: Sequence[str] | None, dims: Sequence[int] | None) -> Any:
    """DeepSpeed's ProcessTopology for axes/dims (None: let the grid pick)."""
    if axes is None:
        return None
    return ds_topology.ProcessTopology(axes=list(axes), dims=list(dims or []))


def ds_grid(
    rank: int, world_size: int, axes: Sequence[str] | None, dims: Sequence[int] | None
) -> tuple[Any, RecordingComm]:
    """DeepSpeed's grid for one rank, with its comm layer replaced by a recorder."""
    rec = RecordingComm(rank, world_size)
    saved = ds_topology.dist
    ds_topology.dist = rec
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the topology on rank 0
            grid = ds_topology.PipelineParallelGrid(topology=ds_topology_of(axes, dims))
    finally:
        ds_topology.dist = saved
    return grid, rec


def ds_with_recorder(grid: Any, rec: RecordingComm, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a method of a DeepSpeed grid while its ``dist`` is the recorder."""
    saved = ds_topology.dist
    ds_topology.dist = rec
    try:
        return getattr(grid, method)(*args, **kwargs)
    finally:
        ds_topology.dist = saved


def expectations(
    world_size: int, axes: Sequence[str] | None, dims: Sequence[int] | None
) -> list[dict[str, Any]]:
    """Per rank: the sorted ranks of every group DeepSpeed makes, plus key values.

    Also, from DeepSpeed's topology alone (``filter_match``, an independent
    enumeration), the ranks of this rank's group over each single axis and over
    every subset of axes.
    """
    import itertools

    out = []
    for rank in range(world_size):
        grid, rec = ds_grid(rank, world_size, axes, dims)
        topo = grid._topo
        names = list(topo.get_axis_names())
        coord = topo.get_coord(rank)
        subsets = {}
        for k in range(len(names) + 1):
            for subset in itertools.combinations(names, k):
                fixed = {a: getattr(coord, a) for a in names if a not in subset}
                subsets[subset] = topo.filter_match(**fixed)
        out.append(
            {
                "groups": {a: sorted(rec.group_ranks(getattr(grid, a))) for a in DS_GROUP_ATTRS},
                "values": {
                    a: getattr(grid, a)
                    for a in (
                        "stage_id",
                        "data_parallel_id",
                        "dp_group",
                        "pp_group",
                        "slice_group",
                        "ds_model_rank",
                        "ds_model_world_size",
                    )
                },
                "axes": names,
                "subsets": subsets,
            }
        )
    return out
