"""``PipelineParallelGrid``: DeepSpeed's MPU over ``torch.distributed``, built in O(axes) calls.

A drop-in for ``deepspeed.runtime.pipe.topology.PipelineParallelGrid``: every
attribute and getter DeepSpeed has returns the same value, and the process
groups contain the same ranks. On top of that it

* creates each rank's groups with O(axes) process-group calls
  (``group_creation="local"`` or ``"split"``) instead of one call per group of
  the whole world, and shares identical rank sets;
* serves any extra axis (``get_sequence_parallel_group()`` when the topology has
  a ``sequence`` axis, likewise ``context``, ``expert``, ...) and the group of
  any set of axes (:meth:`PipelineParallelGrid.get_group`);
* lays the topology over the ranks of ``process_group`` when one is given;
* checks, with one small collective, that all ranks were given the same
  topology before creating any group, so a mismatch fails at once with an
  error naming the difference instead of hanging.

Rank lists (``dp_group``, ``pipe_groups``, ``p2p_groups``, ``stage_to_global``,
...) hold *global* ranks, the ranks ``torch.distributed`` takes. Without a
``process_group`` the grid ranks and the global ranks are the same numbers.

torch is imported when a grid is built, never when this module is imported.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import numbers
import re
from collections.abc import Callable, Sequence
from typing import Any

from .comm import Comm, TorchComm
from .errors import GridSizeError, GroupCreationError, InvalidArgumentError, UnknownAxisError
from .groups import GroupBuilder, resolve_strategy, verify_and_align
from .topology import PipeDataParallelTopology, ProcessTopology, prime_factors

__all__ = ["PipelineParallelGrid"]

#: Longest timeout accepted, in seconds: ``timedelta.max`` itself means "no limit",
#: which a collective that must fail rather than hang cannot honour.
_MAX_TIMEOUT = datetime.timedelta.max.total_seconds()


def _seconds(timeout: datetime.timedelta | float | None) -> float | None:
    """The ``timeout`` argument in seconds (``None`` stays ``None``).

    Raises:
        InvalidArgumentError: not a finite number of seconds above 0 and below
            ``timedelta.max`` (also a ValueError).
        TypeError: neither a number nor a ``timedelta``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, numbers.Real) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(f"timeout must be a number of seconds or a datetime.timedelta, got {timeout!r}")
    if not math.isfinite(seconds) or seconds >= _MAX_TIMEOUT:
        raise InvalidArgumentError(
            f"timeout must be a finite number of seconds below timedelta.max, got {timeout!r}; "
            "pass None for the default (600 s for the fingerprint exchange, torch's default for groups)"
        )
    if not seconds > 0:
        raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")
    return seconds


_GETTER = re.compile(r"get_(\w+)_parallel_(rank|world_size|group_ranks|group)")


def _as_proctopo(topology: Any) -> ProcessTopology:
    if isinstance(topology, ProcessTopology):
        return topology
    if hasattr(topology, "get_axis_names") and hasattr(topology, "get_dim"):
        axes = list(topology.get_axis_names())
        return ProcessTopology(axes, [int(topology.get_dim(a)) for a in axes])
    raise TypeError(
        "topology must be a proctopo.ProcessTopology (or any object with get_axis_names() and "
        f"get_dim(), such as DeepSpeed's), got {type(topology).__name__}"
    )


class PipelineParallelGrid:
    """Process groups for every axis of a topology; DeepSpeed's ``mpu``.

    Every rank of the grid must build it, at the same point of the program
    (it is a collective, like ``torch.distributed.new_group``).

    Args:
        topology: A :class:`proctopo.ProcessTopology` (or DeepSpeed topology)
            with at least the axes ``pipe`` and ``data``. ``None`` splits the
            world size's prime factors alternately into pipe and data, as
            DeepSpeed does.
        process_group: Lay the topology over this group's ranks instead of the
            whole world (grid rank ``i`` is the group's ``i``-th rank).
        group_creation: ``"auto"`` (default), ``"global"``, ``"local"`` or
            ``"split"``; see :mod:`proctopo.groups`.
        verify: Compare a fingerprint of the settings across ranks before
            creating groups (one small all-reduce). All ranks must agree on it.
        timeout: Seconds (or a ``timedelta``) for the fingerprint exchange and
            each group creation, finite, above 0 and below ``timedelta.max``;
            ``None`` waits at most 600 s for the exchange and uses torch's
            default for group creation.
        groups: Extra sets of axes whose groups are created with the others,
            e.g. ``[("data", "sequence")]``.
        comm: The communication layer (default: ``torch.distributed`` via
            :class:`proctopo.comm.TorchComm`); to simulate one rank of any
            world without torch, pass a :class:`proctopo.testing.RecordingComm`.
            Excludes ``process_group``.

    Raises:
        GridSizeError: the topology's size is not the number of ranks.
        UnknownAxisError: the topology lacks ``pipe`` or ``data``, or an extra
            group names an axis it does not have.
        InvalidArgumentError: an unknown ``group_creation``, a ``timeout`` that
            is not finite and positive, or both ``process_group`` and ``comm``.
        GroupCreationError: the strategy cannot work on this backend, or a
            group could not be created.
        TopologyMismatchError: ranks were given different settings.
        GridTimeoutError: a rank did not join the fingerprint exchange in time.

    >>> from proctopo.testing import RecordingComm
    >>> topo = ProcessTopology(axes=["pipe", "data", "model"], dims=[2, 2, 2])
    >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(rank=5, world_size=8))
    >>> grid.stage_id, grid.data_parallel_id, grid.get_slice_parallel_rank()
    (1, 0, 1)
    >>> grid.dp_group, grid.pp_group, grid.slice_group
    ([5, 7], [1, 5], [4, 5])
    >>> grid.stage_to_global(0)
    1
    """

    def __init__(
        self,
        topology: Any = None,
        process_group: Any = None,
        *,
        group_creation: str = "auto",
        verify: bool = True,
        timeout: datetime.timedelta | float | None = None,
        groups: Sequence[Sequence[str] | str] = (),
        comm: Comm | None = None,
    ) -> None:
        if comm is None:
            comm = TorchComm(process_group)
        elif process_group is not None:
            raise InvalidArgumentError(
                "pass either process_group or comm, not both (a comm carries its own parent group)"
            )
        self._comm = comm
        seconds = _seconds(timeout)

        self.global_rank: int = comm.global_rank()
        self.world_size: int = comm.grid_size()
        self.grid_rank: int = comm.grid_rank()
        if self.grid_rank < 0:
            raise GroupCreationError(
                f"global rank {self.global_rank} is not a member of process_group "
                f"(ranks {list(comm.parent_ranks() or [])[:16]}); only its members build the grid"
            )

        if topology is None:
            num_pp = num_dp = 1
            for idx, prime in enumerate(prime_factors(self.world_size)):
                if idx % 2 == 0:
                    num_pp *= int(prime)
                else:
                    num_dp *= int(prime)
            topology = PipeDataParallelTopology(num_pp=num_pp, num_dp=num_dp)
        self._topo = topology
        pt = _as_proctopo(topology)
        self._pt = pt
        axes = pt.get_axis_names()
        missing = [a for a in ("pipe", "data") if a not in axes]
        if missing:
            raise UnknownAxisError(
                f"PipelineParallelGrid needs the axes 'pipe' and 'data'; the topology has {axes} "
                f"(missing {missing}). Add a missing axis with size 1, e.g. "
                f"ProcessTopology(axes={missing + axes}, dims={[1] * len(missing) + pt.dims})"
            )
        size = pt.world_size()
        if size != self.world_size:
            where = "the world size" if comm.parent_ranks() is None else "the process group's size"
            product = " * ".join(map(str, pt.dims))
            raise GridSizeError(f"{' * '.join(axes)} = {product} = {size}, but {where} is {self.world_size}")

        self.data_parallel_size: int = max(pt.get_dim("data"), 1)
        self.pipe_parallel_size: int = max(pt.get_dim("pipe"), 1)
        self.model_parallel_size: int = max(pt.get_dim("model"), 1)
        self.slice_parallel_size: int = self.model_parallel_size

        whole = comm.parent_ranks() is None and self.world_size == comm.world_size()
        self.strategy: str = resolve_strategy(group_creation, comm, whole_world=whole)
        builder = GroupBuilder(comm, pt, self.strategy, seconds)
        self._builder = builder

        # The fixed creation order: one group per axis, DeepSpeed's model-parallel
        # group (every axis but data), the slice group, then the caller's extras.
        dp_key = builder.key("data")
        pp_key = builder.key("pipe")
        ds_model_key = builder.key([a for a in axes if a != "data"])
        slice_key = builder.key("model") if self.model_parallel_size > 1 else ()
        plan = [builder.key(a) for a in axes] + [ds_model_key, slice_key]
        plan += [builder.key(g) for g in groups]
        unique = list(dict.fromkeys(plan))

        if verify:
            parent = comm.parent_ranks()
            description = {
                "axes": axes,
                "dims": pt.dims,
                "strategy": self.strategy,
                "grid_size": self.world_size,
                "world_size": comm.world_size(),
                "process_group": None
                if parent is None
                else hashlib.blake2b(repr(list(parent)).encode(), digest_size=8).hexdigest(),
                "groups": [list(k) for k in unique],
            }
            verify_and_align(comm, description, strategy=self.strategy, timeout=seconds)

        for key in unique:
            builder.get(key)

        coord = pt.get_coord(self.grid_rank)
        self.stage_id: int = int(coord.pipe)
        self.data_parallel_id: int = int(coord.data)

        ds_ranks = sorted(builder.members(ds_model_key))
        self.ds_model_proc_group: Any = builder.get(ds_model_key)
        self.ds_model_rank: int = ds_ranks.index(self.global_rank)
        self.ds_model_world_size: int = len(ds_ranks)

        self.dp_group: list[int] = builder.members(dp_key)
        self.dp_proc_group: Any = builder.get(dp_key)
        self.is_first_stage: bool = self.stage_id == 0
        self.is_last_stage: bool = self.stage_id == (self.pipe_parallel_size - 1)
        self.pp_group: list[int] = builder.members(pp_key)
        self.pp_proc_group: Any = builder.get(pp_key)
        self.slice_group: list[int] = builder.members(slice_key)
        self.slice_proc_group: Any = builder.get(slice_key)
        self.mp_group: list[int] = []
        self._lazy: dict[str, list[list[int]]] = {}

    # ------------------------------------------------------------ whole-grid lists
    def _table(self, axis: str) -> list[list[int]]:
        import numpy as np

        if axis not in self._pt.get_axis_names():
            return []
        table = np.asarray(self._pt.groups(axis))
        return self._builder.to_global(table).tolist()  # type: ignore[no-any-return]

    def _cached(self, name: str, make: Callable[[], list[list[int]]]) -> list[list[int]]:
        value = self._lazy.get(name)
        if value is None:
            value = self._lazy[name] = make()
        return value

    @property
    def dp_groups(self) -> list[list[int]]:
        """Every data-parallel group (``get_axis_comm_lists('data')``), built on first use."""
        return self._cached("dp_groups", lambda: self._table("data"))

    @property
    def pipe_groups(self) -> list[list[int]]:
        """Every pipeline group (``get_axis_comm_lists('pipe')``), built on first use."""
        return self._cached("pipe_groups", lambda: self._table("pipe"))

    @property
    def model_groups(self) -> list[list[int]]:
        """Every model (tensor-slicing) group (``get_axis_comm_lists('model')``), built on first use."""
        return self._cached("model_groups", lambda: self._table("model"))

    @property
    def p2p_groups(self) -> list[list[int]]:
        """``[rank, next stage's rank]`` for every rank, wrapping at the last stage.

        Built in O(N) with NumPy on first use (DeepSpeed's loop is O(N^2)).
        """
        return self._cached("p2p_groups", self._build_p2p_groups)

    def _build_p2p_groups(self) -> list[list[int]]:
        import numpy as np

        # Each rank's buddy is the next member of its pipeline group, wrapping at the end.
        table = np.asarray(self._pt.groups("pipe"))
        buddy = np.empty(self.world_size, dtype=np.int64)
        buddy[table] = np.roll(table, -1, axis=1)
        pairs = np.stack([np.arange(self.world_size, dtype=np.int64), buddy], axis=1)
        return self._builder.to_global(pairs).tolist()  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ DeepSpeed
    def get_stage_id(self) -> int:
        """This rank's pipeline stage (its ``pipe`` coordinate)."""
        return self.stage_id

    def get_data_parallel_id(self) -> int:
        """This rank's ``data`` coordinate."""
        return self.data_parallel_id

    def _is_grid_valid(self) -> bool:
        return self._pt.world_size() == self.world_size

    def stage_to_global(self, stage_id: int, **kwargs: int) -> int:
        """Global rank of the given stage with this rank's other coordinates.

        Args:
            stage_id: The pipeline stage.
            **kwargs: Other coordinates to replace, e.g. ``data=0``.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(axes=["pipe", "data"], dims=[4, 2])
        >>> PipelineParallelGrid(topo, comm=RecordingComm(3, 8)).stage_to_global(3, data=0)
        6
        """
        me = self._pt.get_coord(self.grid_rank)
        rank = int(self._pt.get_rank(**me._replace(pipe=stage_id, **kwargs)._asdict()))
        return self._to_global(rank)

    def _to_global(self, grid_rank: int) -> int:
        parent = self._builder.parent
        return grid_rank if parent is None else parent[grid_rank]

    def topology(self) -> Any:
        """The topology given to the grid (or the default one it made)."""
        return self._topo

    def get_global_rank(self) -> int:
        """This process's global rank."""
        return self.global_rank

    def get_pipe_parallel_rank(self) -> int:
        """The pipeline stage of this rank."""
        return self.stage_id

    def get_pipeline_model_parallel_rank(self) -> int:
        """Megatron name of :meth:`get_pipe_parallel_rank`."""
        return self.stage_id

    def get_pipe_parallel_world_size(self) -> int:
        """Number of pipeline stages."""
        return self.pipe_parallel_size

    def get_pipeline_model_parallel_world_size(self) -> int:
        """Megatron name of :meth:`get_pipe_parallel_world_size`."""
        return self.pipe_parallel_size

    def get_pipe_parallel_group(self) -> Any:
        """The group of this rank's pipeline (same coordinates except ``pipe``)."""
        return self.pp_proc_group

    def get_pipeline_model_parallel_group(self) -> Any:
        """Megatron name of :meth:`get_pipe_parallel_group`."""
        return self.pp_proc_group

    def get_data_parallel_rank(self) -> int:
        """This rank's ``data`` coordinate."""
        return self.data_parallel_id

    def get_data_parallel_world_size(self) -> int:
        """Number of data-parallel replicas."""
        return self.data_parallel_size

    def get_data_parallel_group(self) -> Any:
        """The group of ranks that differ from this one only in ``data``."""
        return self.dp_proc_group

    def get_data_parallel_group_ranks(self) -> list[int]:
        """Global ranks of :meth:`get_data_parallel_group`."""
        return self.dp_group

    def get_model_parallel_rank(self) -> int:
        """Rank in DeepSpeed's model-parallel group (every axis but ``data``)."""
        return self.ds_model_rank

    def get_model_parallel_world_size(self) -> int:
        """Size of DeepSpeed's model-parallel group (every axis but ``data``)."""
        return self.ds_model_world_size

    def get_model_parallel_group(self) -> Any:
        """DeepSpeed's model-parallel group: ranks with this rank's ``data`` coordinate."""
        return self.ds_model_proc_group

    def get_slice_parallel_rank(self) -> int:
        """This rank's ``model`` coordinate (0 without a model axis)."""
        if "model" in self._pt.get_axis_names():
            return int(self._pt.get_coord(self.grid_rank).model)
        return 0

    def get_tensor_model_parallel_rank(self) -> int:
        """Megatron name of :meth:`get_slice_parallel_rank`."""
        return self.get_slice_parallel_rank()

    def get_slice_parallel_world_size(self) -> int:
        """Size of the ``model`` axis (1 without one)."""
        return self.slice_parallel_size

    def get_tensor_model_parallel_world_size(self) -> int:
        """Megatron name of :meth:`get_slice_parallel_world_size`."""
        return self.slice_parallel_size

    def get_slice_parallel_group(self) -> Any:
        """Group over the ``model`` axis (this rank alone without model parallelism)."""
        return self.slice_proc_group

    def get_tensor_model_parallel_group(self) -> Any:
        """Megatron name of :meth:`get_slice_parallel_group`."""
        return self.slice_proc_group

    def get_tensor_model_parallel_src_rank(self) -> int:
        """Global rank of ``model`` coordinate 0 in this rank's tensor-parallel group."""
        return self.slice_group[0]

    # ------------------------------------------------------------------ any axes
    @property
    def coord(self) -> Any:
        """This rank's coordinates (a ``ProcessCoord`` namedtuple).

        >>> from proctopo.testing import RecordingComm
        >>> PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, 2]), comm=RecordingComm(2, 4)).coord
        ProcessCoord(pipe=1, data=0)
        """
        return self._pt.get_coord(self.grid_rank)

    def get_axis_rank(self, axes: str | Sequence[str]) -> int:
        """This rank's position in its group over ``axes``.

        For one axis that is the coordinate along it; for several, the index in
        :meth:`get_group_ranks` (row-major over those axes).

        Raises:
            UnknownAxisError: the topology has no such axis.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_axis_rank("data"), grid.get_axis_rank(["sequence", "data"])
        (1, 3)
        """
        key = self._builder.key(axes)
        if isinstance(axes, str):
            return int(getattr(self._pt.get_coord(self.grid_rank), axes))
        return self._builder.members(key).index(self.global_rank)

    def get_axis_world_size(self, axes: str | Sequence[str]) -> int:
        """Number of ranks in this rank's group over ``axes`` (the product of their sizes).

        Raises:
            UnknownAxisError: the topology has no such axis.
        """
        size = 1
        for a in self._builder.key(axes):
            size *= self._pt.get_dim(a)
        return size

    def get_group(self, axes: str | Sequence[str]) -> Any:
        """The process group of this rank over a set of axes.

        The group holds the ranks whose coordinates equal this rank's on every
        other axis. Groups made when the grid was built are returned at once;
        any other set of axes is created now, which, like ``new_group``, every
        rank of the grid must do in the same order.

        Args:
            axes: An axis name or a sequence of them; ``[]`` is this rank alone.

        >>> from proctopo.testing import RecordingComm
        >>> topo = ProcessTopology(["pipe", "data", "sequence"], [2, 2, 2])
        >>> grid = PipelineParallelGrid(topo, comm=RecordingComm(3, 8))
        >>> grid.get_group(["data", "sequence"]).ranks
        [0, 1, 2, 3]
        """
        return self._builder.get(self._builder.key(axes))

    def get_group_ranks(self, axes: str | Sequence[str]) -> list[int]:
        """Global ranks of :meth:`get_group` (computed, nothing created).

        >>> from proctopo.testing import RecordingComm
        >>> grid = PipelineParallelGrid(ProcessTopology(["pipe", "data"], [2, 4]), comm=RecordingComm(6, 8))
        >>> grid.get_group_ranks("data")
        [4, 5, 6, 7]
        """
        return self._builder.members(self._builder.key(axes))

    @property
    def group_creation_calls(self) -> int:
        """``new_group``/``split_group`` calls this rank made for the grid so far."""
        return self._builder.calls

    def _axes_of(self, spec: str) -> str | list[str] | None:
        pt = self.__dict__.get("_pt")
        if pt is None:
            return None
        names = pt.get_axis_names()
        if spec in names:
            return spec
        parts = spec.split("_")
        if len(parts) > 1 and all(p in names for p in parts) and len(set(parts)) == len(parts):
            return parts  # e.g. get_sequence_data_parallel_group: sequence and data together
        return None

    def __getattr__(self, name: str) -> Any:
        # get_<axes>_parallel_{rank,world_size,group,group_ranks} for any axis of the
        # topology, or several joined by '_' (DeepSpeed's get_sequence_data_parallel_*).
        if not name.startswith("_"):
            m = _GETTER.fullmatch(name)
            if m is not None:
                axes, what = self._axes_of(m.group(1)), m.group(2)
                if axes is not None:
                    if what == "rank":
                        return lambda: self.get_axis_rank(axes)
                    if what == "world_size":
                        return lambda: self.get_axis_world_size(axes)
                    if what == "group":
                        return lambda: self.get_group(axes)
                    return lambda: self.get_group_ranks(axes)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        pt = self.__dict__.get("_pt")
        if pt is not None:
            for a in pt.get_axis_names():
                for what in ("rank", "world_size", "group", "group_ranks"):
                    names.add(f"get_{a}_parallel_{what}")
        return sorted(names)

    def __repr__(self) -> str:
        axes = list(self._pt.get_axis_names())
        shape = " x ".join(f"{a}={self._pt.get_dim(a)}" for a in axes)
        return (
            f"PipelineParallelGrid({shape}; global rank {self.global_rank} at "
            f"{tuple(self.coord)}; group_creation={self.strategy!r})"
        )
