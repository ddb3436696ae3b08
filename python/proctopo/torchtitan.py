"""torchtitan's ``ParallelDims`` on one proctopo grid: the same meshes, one communicator per rank set.

:class:`ParallelDims` takes the constructor fields of torchtitan's
``torchtitan.distributed.parallel_dims.ParallelDims`` and answers its mesh API
(``build_mesh``, ``get_mesh``, ``get_optional_mesh``, ``get_activated_mesh``,
``spmd_meshes``, ``resolve_mesh``, the ``*_enabled`` flags, ...) with the meshes
torchtitan builds: the same names, shapes and ranks in every dimension, and the
same kind of group behind each dimension (a real one, or torch's ``"fake"``
backend where torchtitan leaves a dimension disabled). It mirrors torchtitan
0.3.0 (:data:`TORCHTITAN_VERSION`) and imports no torchtitan code.

torchtitan builds its meshes by unflattening one world mesh several times
(data loading, dense, SPMD forward/backward and sparse views), and
``DeviceMesh`` makes a new communicator for every dimension of every view, so
the pipeline, tensor-parallel, data-parallel, ... rank sets are each created
several times. Here one :class:`proctopo.ProcessGrid` holds every group: the
dense axes ``pp, dp_replicate, dp_shard, cp, tp`` (slowest first) and the
expert layout ``pp, dp_replicate, efsdp, ep`` over the same ranks. Each distinct
rank set is created once, with the grid's creation strategy (O(axes) calls per
rank on gloo), and the meshes are ``DeviceMesh.from_group`` views of those groups.

Building the grid and the meshes is a collective, as in torchtitan: every rank
calls :meth:`ParallelDims.build_mesh` (or a getter that builds on first use).
Importing this module imports neither torch nor torchtitan; :meth:`ParallelDims.build_grid`
works with a :class:`proctopo.testing.RecordingComm`, without torch.

>>> from proctopo.testing import RecordingComm
>>> comm = RecordingComm(rank=1, world_size=4)
>>> dims = ParallelDims(dp_replicate=1, dp_shard=2, cp=1, tp=2, pp=1, ep=1, world_size=4, comm=comm)
>>> dims.dp_shard_enabled, dims.tp_enabled, dims.fsdp_enabled, dims.seq_len_divisor
(True, True, True, 4)
>>> grid = dims.build_grid()
>>> grid.get_group_ranks("dp_shard", layout="dense"), grid.get_group_ranks("tp", layout="dense")
([1, 3], [0, 1])
>>> [(group.ranks, group.backend) for group in comm.live_groups()]  # what rank 1 created
[([1, 3], None), ([0, 1], None), ([1], 'fake'), ([0, 1, 2, 3], 'fake')]

Two real groups (``dp_shard``, and ``tp`` which torchtitan makes three times) and
two that never communicate: the disabled dimensions (``pp``, ``cp``, ...) of this
rank alone, and ``efsdp`` without expert parallelism. ``batch``, ``dp`` and
``loss`` hold every rank: the default group itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError
from .topology import ProcessTopology, check_sizes

if TYPE_CHECKING:
    from .comm import Comm
    from .grid import ProcessGrid

__all__ = [
    "DENSE_AXES",
    "DENSE_LAYOUT",
    "SPARSE_AXES",
    "SPARSE_LAYOUT",
    "SPMD_BACKENDS",
    "TORCHTITAN_VERSION",
    "ParallelDims",
]

#: The torchtitan release whose meshes :class:`ParallelDims` builds.
TORCHTITAN_VERSION = "0.3.0"

#: torchtitan's ``spmd_backend`` values; the first is its default.
SPMD_BACKENDS = ("spmd_types", "full_dtensor", "partial_dtensor")

#: The dense axes, slowest first (torchtitan's world order).
DENSE_AXES = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
#: The expert axes over the same ranks: ``efsdp * ep == dp_shard * cp * tp``.
SPARSE_AXES = ("pp", "dp_replicate", "efsdp", "ep")
#: Layout names in the grid.
DENSE_LAYOUT = "dense"
SPARSE_LAYOUT = "sparse"

#: The axes behind each mesh dimension name torchtitan uses (in the layout of its mesh).
_DIM_AXES: dict[str, tuple[str, ...]] = {
    "pp": ("pp",),
    "batch": ("dp_replicate", "dp_shard"),
    "dp": ("dp_replicate", "dp_shard"),
    "loss_mesh": ("dp_replicate", "dp_shard", "cp"),
    "dp_replicate": ("dp_replicate",),
    "dp_shard": ("dp_shard",),
    "fsdp": ("dp_shard", "cp"),
    "cp": ("cp",),
    "tp": ("tp",),
    "efsdp": ("efsdp",),
    "ep": ("ep",),
}

#: Dimensions made by flattening in torchtitan: always a real group.
_ALWAYS_REAL = ("world", "loss_mesh")

#: The backend of a dimension torchtitan leaves disabled.
FAKE = "fake"


def _axis_name(axis: Any) -> str:
    """An axis given as a str or as a str enum (torchtitan's ``MeshAxisName``)."""
    value = getattr(axis, "value", axis)
    if not isinstance(value, str):
        raise TypeError(f"a mesh axis name must be a str, got {axis!r}")
    return value


class ParallelDims:
    """torchtitan's ``ParallelDims`` (0.3.0), with every mesh made of one proctopo grid's groups.

    The first seven arguments and ``spmd_backend`` are torchtitan's fields, with
    its meanings: ``dp_shard=-1`` takes the ranks left over. The keyword-only
    arguments are the grid's (see :class:`proctopo.ProcessGrid`).

    Args:
        dp_replicate: Replicated data parallelism (DDP, or HSDP's replicate dimension).
        dp_shard: Sharded data parallelism (FSDP); ``-1``: ``world_size`` divided
            by the other dense sizes.
        cp: Context parallelism.
        tp: Tensor parallelism.
        pp: Pipeline parallelism.
        ep: Expert parallelism, taken from ``dp_shard * cp * tp`` (the rest is
            ``efsdp``, FSDP over the experts).
        world_size: The number of ranks.
        spmd_backend: ``"spmd_types"`` (torchtitan's default), ``"full_dtensor"``
            or ``"partial_dtensor"``: which dense meshes are built (see
            docs/torchtitan.md).
        group_creation: The grid's strategy (``"auto"``, ``"global"``, ``"local"``,
            ``"split"``).
        timeout: Seconds (or a ``timedelta``) for the grid's checks and each
            group creation.
        verify: Compare the grid's settings across ranks before creating groups.
        process_group: Lay the grid over this group's ranks instead of the world.
        comm: The grid's communication layer (e.g. a
            :class:`proctopo.testing.RecordingComm`); excludes ``process_group``.
        device_type: The meshes' device type; ``None`` takes the backend's
            (``"cpu"`` for gloo, ``"cuda"`` for NCCL).

    Raises:
        InvalidTopologyError: a size below 1 (``dp_shard`` may be ``-1``), or a
            size that is not an integer.
        GridSizeError: the dense sizes do not multiply to ``world_size``.
        InvalidArgumentError: ``ep`` does not divide ``dp_shard * cp * tp``, an
            unknown ``spmd_backend``, or ``dp_shard`` below 1 other than ``-1``.

    >>> import proctopo
    >>> ParallelDims(dp_replicate=1, dp_shard=-1, cp=1, tp=2, pp=2, ep=1, world_size=8).dp_shard
    2
    >>> try:
    ...     ParallelDims(dp_replicate=1, dp_shard=3, cp=1, tp=2, pp=1, ep=1, world_size=8)
    ... except proctopo.GridSizeError as exc:
    ...     print(exc)
    pp * dp_replicate * dp_shard * cp * tp = 1 * 1 * 3 * 1 * 2 = 6, but the world size is 8
    """

    def __init__(
        self,
        dp_replicate: int,
        dp_shard: int,
        cp: int,
        tp: int,
        pp: int,
        ep: int,
        world_size: int,
        spmd_backend: str = "spmd_types",
        *,
        group_creation: str = "auto",
        timeout: datetime.timedelta | float | None = None,
        verify: bool = True,
        process_group: Any = None,
        comm: Comm | None = None,
        device_type: str | None = None,
    ) -> None:
        self.dp_replicate = dp_replicate
        self.dp_shard = dp_shard
        self.cp = cp
        self.tp = tp
        self.pp = pp
        self.ep = ep
        self.world_size = world_size
        self.spmd_backend = spmd_backend
        self._grid_options: dict[str, Any] = {
            "group_creation": group_creation,
            "timeout": timeout,
            "verify": verify,
            "process_group": process_group,
            "comm": comm,
        }
        self._device_type = device_type
        self._grid: ProcessGrid | None = None
        # torchtitan's caches, under its names: meshes are compared by identity there.
        self._single_axis_meshes: dict[str, Any] = {}
        self._multi_axis_meshes: dict[tuple[str, ...], Any] = {}
        self._global_meshes: dict[str, Any] = {}
        self._world_mesh: Any = None
        self._spmd_meshes: list[Any] = []
        self._validate()

    @classmethod
    def from_config(cls, parallelism_config: Any, world_size: int, **options: Any) -> ParallelDims:
        """From torchtitan's ``ParallelismConfig`` (any object with its attribute names).

        ``options`` are the keyword-only arguments of :class:`ParallelDims`.
        """
        c = parallelism_config
        return cls(
            dp_replicate=c.data_parallel_replicate_degree,
            dp_shard=c.data_parallel_shard_degree,
            cp=c.context_parallel_degree,
            tp=c.tensor_parallel_degree,
            pp=c.pipeline_parallel_degree,
            ep=c.expert_parallel_degree,
            world_size=world_size,
            spmd_backend=getattr(c, "spmd_backend", SPMD_BACKENDS[0]),
            **options,
        )

    # ------------------------------------------------------------------ rules
    def _validate(self) -> None:
        if self.spmd_backend not in SPMD_BACKENDS:
            known = ", ".join(map(repr, SPMD_BACKENDS))
            raise InvalidArgumentError(f"spmd_backend must be one of {known}; got {self.spmd_backend!r}")
        check_sizes({"dp_replicate": self.dp_replicate, "cp": self.cp, "tp": self.tp, "pp": self.pp})
        check_sizes({"ep": self.ep})
        if self.dp_shard == -1:
            self.dp_shard = self.world_size // (self.dp_replicate * self.cp * self.tp * self.pp)
            if self.dp_shard < 1:
                raise InvalidArgumentError(
                    f"dp_shard=-1 takes the ranks left over, but dp_replicate * cp * tp * pp = "
                    f"{self.dp_replicate * self.cp * self.tp * self.pp} is more than the world size "
                    f"{self.world_size}"
                )
        elif isinstance(self.dp_shard, int) and self.dp_shard < 1:
            raise InvalidArgumentError(
                f"dp_shard must be -1 (the ranks left over) or at least 1, got {self.dp_shard}"
            )
        dense = self.dense_topology()  # the core's rules: sizes, overflow
        dense.check_world_size(self.world_size)
        inner = self.dp_shard * self.cp * self.tp
        if inner % self.ep:
            raise InvalidArgumentError(
                f"ep={self.ep} must divide dp_shard * cp * tp = {self.dp_shard} * {self.cp} * {self.tp} = "
                f"{inner}: expert parallelism takes its ranks from those axes (the rest is efsdp)"
            )

    def dense_topology(self) -> ProcessTopology:
        """The dense axes ``pp, dp_replicate, dp_shard, cp, tp`` with their sizes.

        >>> ParallelDims(2, 2, 1, 2, 1, 1, 8).dense_topology()
        ProcessTopology(axes=['pp', 'dp_replicate', 'dp_shard', 'cp', 'tp'], dims=[1, 2, 2, 1, 2])
        """
        return ProcessTopology(
            list(DENSE_AXES), [self.pp, self.dp_replicate, self.dp_shard, self.cp, self.tp]
        )

    def sparse_topology(self) -> ProcessTopology:
        """The expert axes ``pp, dp_replicate, efsdp, ep`` over the same ranks.

        >>> ParallelDims(1, 4, 1, 2, 1, 4, 8).sparse_topology()
        ProcessTopology(axes=['pp', 'dp_replicate', 'efsdp', 'ep'], dims=[1, 1, 2, 4])
        """
        efsdp = self.dp_shard * self.cp * self.tp // self.ep
        return ProcessTopology(list(SPARSE_AXES), [self.pp, self.dp_replicate, efsdp, self.ep])

    def _mesh_exist(self, name: str, degree: int) -> bool:
        """Whether torchtitan gives the dimension a real group (else the ``"fake"`` backend)."""
        if name == "fsdp":
            return True  # kept at size 1 too, for fully_shard's mixed precision
        if name == "dp_shard" and self.spmd_backend in ("full_dtensor", "spmd_types"):
            return True  # the data-parallel storage axis of these backends, likewise
        if name == "efsdp":
            return self.ep > 1
        return degree > 1

    # ------------------------------------------------------------------ the plan
    def _roots(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Every mesh built from groups: key -> (layout, dimension names), in torchtitan's order."""
        roots: dict[str, tuple[str, tuple[str, ...]]] = {
            "world": (DENSE_LAYOUT, ("world",)),
            "dataloading": (DENSE_LAYOUT, ("pp", "batch", "cp", "tp")),
            "loss": (DENSE_LAYOUT, ("loss_mesh",)),
        }
        if self.spmd_backend == "partial_dtensor":
            roots["dense"] = (DENSE_LAYOUT, ("pp", "dp_replicate", "fsdp", "tp"))
        else:
            roots["dense"] = (DENSE_LAYOUT, DENSE_AXES)
        if self.spmd_backend == "spmd_types":
            roots["fwdbwd"] = (DENSE_LAYOUT, ("pp", "dp", "cp", "tp"))
        roots["sparse"] = (SPARSE_LAYOUT, SPARSE_AXES)
        return roots

    def _topology(self, layout: str) -> ProcessTopology:
        return self.dense_topology() if layout == DENSE_LAYOUT else self.sparse_topology()

    def _dim(self, layout: str, name: str) -> tuple[tuple[str, ...], int, str | None]:
        """(axes, size, backend) of a mesh dimension: backend ``None`` is the grid's own, else ``"fake"``."""
        topo = self._topology(layout)
        axes = tuple(topo.get_axis_names()) if name == "world" else _DIM_AXES.get(name, (name,))
        size = topo.group_size(list(axes))
        real = name in _ALWAYS_REAL or self._mesh_exist(name, size)
        return axes, size, None if real else FAKE

    def group_plan(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        """The group families the meshes use, each once: ``(layout, axes, backend)``.

        Families of the grid's backend (``None``) come first, then the ``"fake"`` ones.
        Families that name the same rank sets are listed once, with the axes of
        size 1 left out. The family of all ranks is the grid's parent group (in
        the example ``world``, ``batch``, ``loss`` and ``dp`` all are).

        >>> for family in ParallelDims(1, 2, 1, 2, 1, 1, 4).group_plan():
        ...     print(family)
        ('dense', ('dp_shard', 'tp'), None)
        ('dense', ('dp_shard',), None)
        ('dense', ('tp',), None)
        ('dense', (), 'fake')
        ('sparse', ('efsdp',), 'fake')
        """
        seen: dict[tuple[str | None, tuple[int, ...]], tuple[str, tuple[str, ...], str | None]] = {}
        for layout, names in self._roots().values():
            topo = self._topology(layout)
            for name in names:
                axes, _, backend = self._dim(layout, name)
                key = tuple(a for a in axes if topo.get_dim(a) > 1)
                ranks = tuple(topo.group_list(0, list(key))) if key else (0,)
                seen.setdefault((backend, ranks), (layout, key, backend))
        plan = list(seen.values())
        return [p for p in plan if p[2] is None] + [p for p in plan if p[2] is not None]

    # ------------------------------------------------------------------ building
    @property
    def grid(self) -> ProcessGrid:
        """The grid holding every group (built by :meth:`build_grid`, a collective, on first use)."""
        return self.build_grid()

    def build_grid(self) -> ProcessGrid:
        """Create the grid and every group the meshes use, once (a collective on first call).

        The grid's own topology is one axis, ``world``, whose group is the parent
        group, so constructing it creates nothing by itself; the layouts
        ``"dense"`` (``pp, dp_replicate, dp_shard, cp, tp``) and ``"sparse"``
        (``pp, dp_replicate, efsdp, ep``) lay the same ranks out. The real groups
        of :meth:`group_plan` are created with the grid in one checked pass, and
        each ``"fake"`` family with one ``create_group``. Identical rank sets
        share one group, and no group is made that no mesh uses.
        """
        if self._grid is not None:
            return self._grid
        from .comm import TorchComm
        from .grid import ProcessGrid

        plan = self.group_plan()
        real = [(layout, list(axes)) for layout, axes, backend in plan if backend is None]
        fake = [(layout, list(axes)) for layout, axes, backend in plan if backend is not None]
        comm = self._grid_options["comm"]
        if fake and (comm is None or isinstance(comm, TorchComm)):
            _register_fake_backend()
        grid = ProcessGrid(
            ProcessTopology(["world"], [self.world_size]),
            groups=real,
            layouts={DENSE_LAYOUT: self.dense_topology(), SPARSE_LAYOUT: self.sparse_topology()},
            **self._grid_options,
        )
        for layout, axes in fake:
            grid.create_group(axes, layout=layout, backend=FAKE)
        self._grid = grid
        return grid

    def _export(self, grid: ProcessGrid, layout: str, names: tuple[str, ...], device_type: str) -> Any:
        """``DeviceMesh.from_group`` over the grid's groups: this rank's view of ``names``."""
        import torch
        from torch.distributed.device_mesh import DeviceMesh

        groups: list[Any] = []
        shape: list[int] = []
        flat: list[str] = []
        for name in names:
            axes, size, backend = self._dim(layout, name)
            groups.append(grid.get_group(list(axes), layout=layout, backend=backend))
            shape.append(size)
            flat.extend(axes)
        ranks = grid.get_group_ranks(flat, layout=layout)
        dim_names = tuple(names)
        if len(names) == 1:
            return DeviceMesh.from_group(groups[0], device_type, mesh=ranks, mesh_dim_names=dim_names)
        mesh = torch.tensor(ranks, dtype=torch.int).reshape(shape)
        return DeviceMesh.from_group(groups, device_type, mesh=mesh, mesh_dim_names=dim_names)

    def build_mesh(self) -> Any:
        """Build the grid (if not yet) and every mesh torchtitan 0.3.0 builds; return the world mesh.

        A collective: call it on every rank (the getters call it on first use, as
        torchtitan's do). The meshes are views of the grid's groups and create none.
        """
        if self._single_axis_meshes:
            return self._world_mesh
        grid = self.build_grid()
        device_type = self._device_type or grid._comm.default_device_type()
        roots = {
            key: self._export(grid, layout, names, device_type)
            for key, (layout, names) in self._roots().items()
        }
        dataloading, dense, sparse = roots["dataloading"], roots["dense"], roots["sparse"]
        self._world_mesh = roots["world"]
        self._global_meshes = {
            "dataloading": dataloading,
            "loss": roots["loss"],
            "dense": dense,
            "sparse": sparse,
        }
        single = {
            "pp": dataloading["pp"],
            "batch": dataloading["batch"],
            "loss": roots["loss"],
            "dp_replicate": dense["dp_replicate"],
            "cp": dataloading["cp"],
            "tp": dataloading["tp"],
            "ep": sparse["ep"],
            "efsdp": sparse["efsdp"],
        }
        if self.spmd_backend == "spmd_types":
            fwdbwd = roots["fwdbwd"]["dp", "cp", "tp"]
            self._global_meshes["spmd_dense_for_fwdbwd"] = fwdbwd
            if self.ep > 1:
                self._global_meshes["spmd_sparse_for_fwdbwd"] = sparse["dp_replicate", "efsdp", "ep"]
            single["dp"] = fwdbwd["dp"]
            single["dp_shard"] = dense["dp_shard"]
            dense_axes = ["dp", "cp", "tp"]
        elif self.spmd_backend == "full_dtensor":
            single["dp_shard"] = dense["dp_shard"]
            dense_axes = ["dp_replicate", "dp_shard", "cp", "tp"]
        else:
            single["fsdp"] = dense["fsdp"]
            dense_axes = ["dp_replicate", "fsdp", "tp"]
        self._single_axis_meshes = single
        self._spmd_meshes = [
            m
            for m in (
                self.get_activated_mesh(dense_axes),
                self.get_activated_mesh(["dp_replicate", "efsdp", "ep"]),
            )
            if m is not None
        ]
        return self._world_mesh

    # ------------------------------------------------------------------ getters
    def get_optional_mesh(self, dims: str | Sequence[str], *, include_singleton_axes: bool = False) -> Any:
        """The mesh of one dimension or several, or ``None`` when one of them is disabled.

        Builds the meshes on first use (a collective). Names: ``pp``, ``batch``,
        ``loss``, ``dp_replicate``, ``cp``, ``tp``, ``ep``, ``efsdp``, and by
        backend ``dp`` and ``dp_shard`` (spmd_types), ``dp_shard`` (full_dtensor)
        or ``fsdp`` (partial_dtensor). Several names give a view of the first of
        torchtitan's global meshes holding all of them, cached so that the same
        names give the same object.

        Raises:
            InvalidArgumentError: an unknown name (also a ValueError), or names no
                mesh holds together.
        """
        if not self._single_axis_meshes:
            self.build_mesh()
        names = [dims] if isinstance(dims, str) else [_axis_name(d) for d in dims]
        for name in names:
            if name not in self._single_axis_meshes:
                raise InvalidArgumentError(
                    f"no mesh dimension {name!r} with spmd_backend={self.spmd_backend!r}; "
                    f"the dimensions are {', '.join(self._single_axis_meshes)}"
                )
        if not include_singleton_axes and any(
            not self._mesh_exist(n, self._single_axis_meshes[n].size()) for n in names
        ):
            return None
        if len(names) == 1:
            return self._single_axis_meshes[names[0]]
        key = tuple(names)
        if key not in self._multi_axis_meshes:
            holder = next(
                (m for m in self._global_meshes.values() if set(names) <= set(m.mesh_dim_names or ())), None
            )
            if holder is None:
                raise InvalidArgumentError(
                    f"no mesh holds the dimensions {names} together; the meshes are "
                    + "; ".join(f"{k}: {list(m.mesh_dim_names)}" for k, m in self._global_meshes.items())
                )
            self._multi_axis_meshes[key] = holder[key]
        return self._multi_axis_meshes[key]

    def get_mesh(self, dims: str | Sequence[str]) -> Any:
        """:meth:`get_optional_mesh`, raising where it gives ``None``.

        Raises:
            InvalidArgumentError: a disabled dimension (size 1, or efsdp without
                expert parallelism), an unknown name, or names no mesh holds together.
        """
        mesh = self.get_optional_mesh(dims)
        if mesh is None:
            names = [dims] if isinstance(dims, str) else [_axis_name(d) for d in dims]
            off = [n for n in names if not self._mesh_exist(n, self._single_axis_meshes[n].size())]
            raise InvalidArgumentError(
                f"mesh {dims!r} is not available: {', '.join(off)} "
                f"{'is' if len(off) == 1 else 'are'} not enabled (size 1)"
            )
        return mesh

    def get_activated_mesh(self, axes: Sequence[str]) -> Any:
        """The mesh of those of ``axes`` that are enabled, or ``None`` if none is."""
        if not self._single_axis_meshes:
            self.build_mesh()
        names = [_axis_name(a) for a in axes]
        on = [a for a in names if a in self._single_axis_meshes and self.get_optional_mesh(a) is not None]
        return self.get_optional_mesh(on) if on else None

    def spmd_meshes(self) -> list[Any]:
        """The dense and sparse SPMD meshes, restricted to enabled dimensions."""
        if not self._spmd_meshes:
            self.build_mesh()
        return self._spmd_meshes

    def spmd_dense_mesh(self) -> Any:
        """The ``dp, cp, tp`` mesh of the forward/backward pass (spmd_types).

        Raises:
            KeyError: another ``spmd_backend`` (no such mesh), as in torchtitan.
        """
        if not self._single_axis_meshes:
            self.build_mesh()
        return self._global_meshes["spmd_dense_for_fwdbwd"]

    def spmd_sparse_mesh(self) -> Any:
        """The ``dp_replicate, efsdp, ep`` mesh of expert dispatch (spmd_types with ep > 1), else ``None``."""
        if not self._single_axis_meshes:
            self.build_mesh()
        return self._global_meshes.get("spmd_sparse_for_fwdbwd")

    def get_dense_tp_mesh(self) -> Any:
        """The ``tp`` mesh of the dense forward/backward pass."""
        if self.spmd_backend == "spmd_types":
            return self.spmd_dense_mesh()["tp"]
        if self.spmd_backend == "full_dtensor":
            return self.spmd_meshes()[0]["tp"]
        return self.get_mesh("tp")

    def resolve_mesh(self, axes: Iterable[Any]) -> Any:
        """The enabled mesh over ``axes`` (names or ``MeshAxisName``) as each backend sees them.

        partial_dtensor keeps ``tp`` and ``ep``; spmd_types keeps ``dp``, ``cp``,
        ``tp`` and ``ep``; full_dtensor reads ``dp`` as ``dp_replicate, dp_shard``.

        Raises:
            InvalidArgumentError: under full_dtensor, a mesh that is not one of
                :meth:`spmd_meshes`.
        """
        names = [_axis_name(a) for a in axes]
        if self.spmd_backend == "partial_dtensor":
            names = [a for a in names if a in ("tp", "ep")]
        elif self.spmd_backend == "spmd_types":
            names = [a for a in names if a in ("dp", "cp", "tp", "ep")]
        else:
            names = [u for a in names for u in (("dp_replicate", "dp_shard") if a == "dp" else (a,))]
        mesh = self.get_activated_mesh(names)
        if mesh is None:
            return None
        if self.spmd_backend == "full_dtensor" and mesh not in self.spmd_meshes():
            raise InvalidArgumentError(
                f"the mesh over {list(mesh.mesh_dim_names)} is none of the SPMD meshes "
                f"{[list(m.mesh_dim_names) for m in self.spmd_meshes()]}"
            )
        return mesh

    def resolve_shared_mesh(self, placements: Iterable[Any]) -> Any:
        """The mesh of layouts that all name the same axes (``None`` entries skipped).

        Each layout is any object with ``axes()`` (torchtitan's ``SpmdLayout``).

        Raises:
            InvalidArgumentError: two layouts name different axes.
        """
        given = [p for p in placements if p is not None]
        if not given:
            return None
        axes = tuple(given[0].axes())
        for p in given[1:]:
            other = tuple(p.axes())
            if other != axes:
                raise InvalidArgumentError(
                    f"layouts of one boundary name different mesh axes: {sorted(map(_axis_name, axes))} "
                    f"and {sorted(map(_axis_name, other))}"
                )
        return self.resolve_mesh(axes)

    def get_all_one_dimensional_meshes(self) -> dict[str, Any]:
        """Every enabled one-dimensional mesh of size above 1, by name (no ``"fake"`` one)."""
        if not self._single_axis_meshes:
            self.build_mesh()
        return {
            k: v
            for k, v in self._single_axis_meshes.items()
            if v.ndim == 1 and v.size() > 1 and self._mesh_exist(k, v.size())
        }

    @property
    def world_mesh(self) -> Any:
        """The one-dimensional mesh of every rank, named ``world`` (builds on first use)."""
        if self._world_mesh is None:
            self.build_mesh()
        return self._world_mesh

    def destroy(self) -> None:
        """Destroy the grid's groups (:meth:`proctopo.ProcessGrid.destroy`) and forget the meshes."""
        if self._grid is not None:
            self._grid.destroy()
        self._single_axis_meshes = {}
        self._multi_axis_meshes = {}
        self._global_meshes = {}
        self._spmd_meshes = []
        self._world_mesh = None

    # ------------------------------------------------------------------ flags
    @property
    def dp_enabled(self) -> bool:
        """``dp_replicate > 1 or dp_shard > 1``."""
        return self.dp_replicate > 1 or self.dp_shard > 1

    @property
    def dp_replicate_enabled(self) -> bool:
        """``dp_replicate > 1``."""
        return self.dp_replicate > 1

    @property
    def dp_shard_enabled(self) -> bool:
        """``dp_shard > 1``."""
        return self.dp_shard > 1

    @property
    def cp_enabled(self) -> bool:
        """``cp > 1``."""
        return self.cp > 1

    @property
    def dp_cp_enabled(self) -> bool:
        """Data or context parallelism."""
        return self.dp_enabled or self.cp_enabled

    @property
    def fsdp_enabled(self) -> bool:
        """Sharding over ``dp_shard`` or ``cp``."""
        return self.dp_shard_enabled or self.cp_enabled

    @property
    def tp_enabled(self) -> bool:
        """``tp > 1``."""
        return self.tp > 1

    @property
    def pp_enabled(self) -> bool:
        """``pp > 1``."""
        return self.pp > 1

    @property
    def ep_enabled(self) -> bool:
        """``ep > 1``."""
        return self.ep > 1

    @property
    def non_data_parallel_size(self) -> int:
        """``cp * tp * pp``."""
        return self.cp * self.tp * self.pp

    @property
    def seq_len_divisor(self) -> int:
        """What the sequence length must divide by: ``tp * 2 * cp``.

        Sequence parallelism splits it over ``tp``, load-balanced context
        parallelism into ``2 * cp`` chunks.
        """
        return self.tp * (self.cp * 2)

    def __repr__(self) -> str:
        return (
            f"ParallelDims(dp_replicate={self.dp_replicate}, dp_shard={self.dp_shard}, cp={self.cp}, "
            f"tp={self.tp}, pp={self.pp}, ep={self.ep}, world_size={self.world_size}, "
            f"spmd_backend={self.spmd_backend!r})"
        )


def _register_fake_backend() -> None:
    """Register torch's ``"fake"`` process-group backend (no communication), unless it is already.

    torch 2.13 registers it only when its module below is imported; torchtitan
    0.3.0's own ``build_mesh`` needs it registered too.
    """
    from .comm import torch_private

    if "FAKE" not in torch_private("torch.distributed.Backend", "_plugins"):
        import torch.testing._internal.distributed.fake_pg  # noqa: F401  (registers "fake")
