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

import importlib as _importlib
import pkgutil as _pkgutil
import typing as _typing
from importlib import metadata as _metadata

from .errors import (
    CoordinateOutOfRangeError,
    GridDestroyedError,
    GridSizeError,
    GridStateError,
    GridTimeoutError,
    GroupCreationError,
    GroupNotCreatedError,
    InvalidArgumentError,
    InvalidTopologyError,
    PeerLostError,
    PlacementError,
    ProctopoError,
    RankOutOfRangeError,
    TopologyMismatchError,
    UnknownAxisError,
    UnsupportedPeerError,
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

if _typing.TYPE_CHECKING:  # at run time the grid loads on first use, see __getattr__
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
    "GroupNotCreatedError",
    "InvalidArgumentError",
    "InvalidTopologyError",
    "PeerLostError",
    "PipeDataParallelTopology",
    "PipeModelDataParallelTopology",
    "PlacementError",
    "ProcessTopology",
    "ProctopoError",
    "RankOutOfRangeError",
    "TopologyMismatchError",
    "UnknownAxisError",
    "UnsupportedPeerError",
    "WorldSizeOverflowError",
    "__version__",
    "dims_create",
    "parse_order",
    "plan",
    "prime_factors",
]


#: Public names loaded on first use: the grid, whose use needs torch.
_LAZY = ("PipelineParallelGrid", "ProcessGrid")


def _submodules() -> set[str]:
    """The public submodules (imported or not)."""
    return {m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")}


def __getattr__(name: str) -> _typing.Any:
    # The grid and the submodules load when first asked for, so `import proctopo` stays
    # light (none of them imports torch at import time).
    if name in _LAZY:
        from . import grid

        return getattr(grid, name)
    if name in _submodules():
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'proctopo' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API: ``__all__``, the names loaded on first use and the public submodules."""
    return sorted({*__all__, *_LAZY, *_submodules()})
