"""Export a grid to a ``torch.distributed.device_mesh.DeviceMesh`` made of its own groups.

:func:`device_mesh` (also :meth:`proctopo.ProcessGrid.device_mesh`) builds the mesh
with ``DeviceMesh.from_group`` from process groups the grid already holds, so the
mesh adds no communicator and the export is no collective: slicing it by a
dimension name gives back the grid's group. A dimension may join several axes
(``("data", "context")`` is one flattened dimension named ``data_context`` whose
group is the grid's group over both axes); axes left out of ``dims`` stay fixed at this rank's coordinate, so
the mesh is this rank's slice of the grid.

Importing this module does not import torch; calling :func:`device_mesh` does.

>>> from proctopo import ProcessTopology
>>> topo = ProcessTopology(["pipe", "data", "context", "model"], [2, 2, 2, 2])
>>> mesh_dims(topo, ["pipe", ("data", "context")])
[('pipe',), ('data', 'context')]
>>> try:
...     mesh_dims(topo, ["model", "pipe"])
... except ValueError as exc:
...     print(exc)
dims must list axes in topology order (pipe, data, context, model): 'pipe' comes after 'model'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .grid import ProcessGrid
    from .topology import ProcessTopology

__all__ = ["check_device_type", "device_mesh", "mesh_dims"]


def mesh_dims(topology: ProcessTopology, dims: Sequence[str | Sequence[str]] | None) -> list[tuple[str, ...]]:
    """Check ``dims`` against the topology and return each dimension's axes.

    Raises:
        UnknownAxisError: an axis the topology does not have (the topology's error).
        InvalidArgumentError: no dimension at all, an axis named twice (the
            topology's error), axes out of topology order, an empty entry, or two
            dimensions with one name.
        TypeError: an entry that is neither a str nor a sequence of str.
    """
    names = topology.get_axis_names()
    if dims is None:
        return [(a,) for a in names]
    if isinstance(dims, str):
        dims = [dims]
    if len(dims) == 0:
        raise InvalidArgumentError(
            f"dims is empty ({dims!r}); a DeviceMesh needs at least one dimension: name axes of the "
            f"topology ({', '.join(names)}), or pass None for all of them"
        )
    parsed: list[tuple[str, ...]] = []
    for i, entry in enumerate(dims):
        if isinstance(entry, str):
            parsed.append((entry,))
            continue
        if not isinstance(entry, Sequence):
            raise TypeError(f"dims[{i}] must be an axis name or a tuple of axis names, got {entry!r}")
        axes = tuple(entry)
        if not axes:
            raise InvalidArgumentError(f"dims[{i}] is empty; a mesh dimension needs at least one axis")
        parsed.append(axes)
    flat = [a for axes in parsed for a in axes]
    positions = topology.axis_indices(flat)  # the topology's rules: unknown axis, axis twice
    for k in range(1, len(positions)):
        if positions[k] < positions[k - 1]:
            raise InvalidArgumentError(
                f"dims must list axes in topology order ({', '.join(names)}): "
                f"{flat[k]!r} comes after {flat[k - 1]!r}"
            )
    dim_names = ["_".join(axes) for axes in parsed]
    if len(set(dim_names)) != len(dim_names):
        raise InvalidArgumentError(f"two mesh dimensions would have the same name: {dim_names}")
    return parsed


def check_device_type(device_type: Any, group: Any) -> None:
    """Check that ``group`` has a backend for ``device_type`` (before torch's DeviceMesh sees it).

    The device types come from ``torch.distributed.get_backend_config(group)``, e.g.
    ``"cpu:gloo,cuda:gloo"``: a device (``"cuda:0"``), an unknown name or a type the
    backend does not serve is refused, naming the types it does serve.

    Raises:
        InvalidArgumentError: ``device_type`` is not one of them.
    """
    import torch.distributed as dist

    config = str(dist.get_backend_config(group))
    served = [part.split(":", 1)[0].strip() for part in config.split(",") if ":" in part]
    if not isinstance(device_type, str) or device_type not in served:
        raise InvalidArgumentError(
            f"device_type must be a device type the grid's process groups have a backend for "
            f"({', '.join(map(repr, served)) or 'none'}: backend {config!r}), got {device_type!r}"
        )


def device_mesh(
    grid: ProcessGrid,
    dims: Sequence[str | Sequence[str]] | None = None,
    *,
    device_type: str | None = None,
    intra_node: Sequence[str | Sequence[str]] = (),
    intra_domain: Sequence[str | Sequence[str]] = (),
) -> Any:
    """A ``DeviceMesh`` over this rank's slice of ``grid``, made of the grid's groups.

    Args:
        grid: The grid.
        dims: Axis names of the main topology, in topology order (``None``: all
            of them). An entry may be a tuple of axes, joined into one flattened
            dimension named by joining them with ``_``. Axes left out are fixed
            at this rank's coordinate.
        device_type: The mesh's device type, one the grid's process groups
            have a backend for (``dist.get_backend_config``: ``"cpu"`` and
            ``"cuda"`` with gloo, ``"cuda"`` with NCCL); ``None`` takes the
            backend's own (``"cpu"`` for gloo, ``"cuda"`` for NCCL).
        intra_node, intra_domain: Axes whose groups must each lie inside one
            host / one domain, checked on the grid's measured placement
            (:meth:`proctopo.ProcessGrid.check_placement`) before the mesh is built.

    Returns:
        ``DeviceMesh.from_group(groups, device_type, mesh=..., mesh_dim_names=...)``:
        the mesh tensor holds global ranks in the topology's row-major layout
        (those the grid placed there: reordered ones for a ``reorder=True`` grid), and
        each dimension's group is ``grid.get_group(axes)``. The export creates no
        group and makes no collective call: a dimension that joins several axes
        needs their group made first, with ``groups=`` at construction or
        ``grid.create_group(axes)`` on every rank.

    Raises:
        UnknownAxisError, InvalidArgumentError, TypeError: a bad ``dims`` entry
            (see :func:`mesh_dims`).
        InvalidArgumentError: a ``device_type`` the groups have no backend for.
        PlacementError: a group of an ``intra_node`` / ``intra_domain`` axis spans
            hosts / domains, or the grid's placement is unknown (``verify=False``).
        GroupNotCreatedError: the grid holds no group for a dimension; the
            message names the call that creates it.
        GridDestroyedError: the grid was destroyed.

    >>> grid.device_mesh(["pipe", ("data", "context"), "model"])  # doctest: +SKIP
    DeviceMesh((pipe=2, data_context=4, model=2), device: 'cpu', stride: (8, 2, 1))
    """
    parsed = mesh_dims(grid.topology, dims)
    if intra_node or intra_domain:
        grid.check_placement(intra_node=intra_node, intra_domain=intra_domain)
    groups = [grid.get_group(axes) for axes in parsed]  # what the grid holds; raises before torch

    import torch
    from torch.distributed.device_mesh import DeviceMesh

    shape = [grid.topology.group_size(axes) for axes in parsed]
    flat = [a for axes in parsed for a in axes]
    ranks = grid.get_group_ranks(flat)  # row-major over the mesh's axes, this rank's slice
    mesh = torch.tensor(ranks, dtype=torch.int).reshape(shape)
    if device_type is None:
        device_type = grid._comm.default_device_type()
    else:
        check_device_type(device_type, groups[0])
    names = tuple("_".join(axes) for axes in parsed)
    return DeviceMesh.from_group(groups, device_type, mesh=mesh, mesh_dim_names=names)
