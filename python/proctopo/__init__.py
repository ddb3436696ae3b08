"""proctopo: process topologies for distributed training.

Lays the ranks of a job on a grid of named axes (pipe, data, model, ...), answers
every question about it in O(number of axes), and builds the matching
``torch.distributed`` groups. A drop-in for DeepSpeed's
``deepspeed.runtime.pipe.topology``. Importing proctopo never imports torch.

>>> import proctopo
>>> topo = proctopo.PipeModelDataParallelTopology(num_pp=2, num_mp=2, num_dp=2)
>>> topo.get_axis_comm_lists('data')
[[0, 2], [1, 3], [4, 6], [5, 7]]
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from .errors import (
    CoordinateOutOfRangeError,
    GridDestroyedError,
    GridSizeError,
    GridStateError,
    GridTimeoutError,
    GroupCreationError,
    InvalidArgumentError,
    InvalidTopologyError,
    ProctopoError,
    RankOutOfRangeError,
    TopologyMismatchError,
    UnknownAxisError,
    WorldSizeOverflowError,
)
from .planner import plan  # the planner's function; the package is proctopo.planner (no torch)
from .topology import (
    MEGATRON_TO_DEEPSPEED,
    PipeDataParallelTopology,
    PipeModelDataParallelTopology,
    ProcessTopology,
    dims_create,
    parse_order,
    prime_factors,
)

if TYPE_CHECKING:  # at run time the grid (and torch) loads on first use, see __getattr__
    from .grid import PipelineParallelGrid as PipelineParallelGrid
    from .grid import ProcessGrid as ProcessGrid

try:  # the one version source is the build's metadata (CMakeLists.txt's project version)
    __version__ = _metadata.version("proctopo")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "MEGATRON_TO_DEEPSPEED",
    "CoordinateOutOfRangeError",
    "GridDestroyedError",
    "GridSizeError",
    "GridStateError",
    "GridTimeoutError",
    "GroupCreationError",
    "InvalidArgumentError",
    "InvalidTopologyError",
    "PipeDataParallelTopology",
    "PipeModelDataParallelTopology",
    "ProcessTopology",
    "ProctopoError",
    "RankOutOfRangeError",
    "TopologyMismatchError",
    "UnknownAxisError",
    "WorldSizeOverflowError",
    "__version__",
    "dims_create",
    "parse_order",
    "plan",
    "prime_factors",
]


def __getattr__(name: str) -> Any:
    # The grid needs torch; load it only when asked for, so `import proctopo` stays torch-free.
    if name in ("PipelineParallelGrid", "ProcessGrid"):
        from . import grid

        return getattr(grid, name)
    raise AttributeError(f"module 'proctopo' has no attribute {name!r}")
