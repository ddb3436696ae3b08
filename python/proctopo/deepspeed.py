"""DeepSpeed's pipeline engine on a proctopo grid.

DeepSpeed's ``PipelineModule`` takes a topology, not a grid: its constructor
always builds DeepSpeed's own ``PipelineParallelGrid`` from it (one
``new_group`` per group of every axis on every rank), and ``PipelineEngine``
and ``deepspeed.initialize`` then run on that grid (``module.mpu()``). This
module hands the module a :class:`proctopo.PipelineParallelGrid` instead, so
the engine's data-parallel, pipeline and model-parallel groups are the grid's:

* :func:`pipeline_module` builds a ``deepspeed.pipe.PipelineModule`` on a grid;
* :func:`use_grid` is a ``with`` block in which every ``PipelineModule`` (or
  subclass, such as a model's own ``GPTModelPipe``) built on this thread gets
  the grid.

Inside the block, the name ``PipelineParallelGrid`` that DeepSpeed's
``deepspeed.runtime.pipe.module`` calls is bound to a function that checks
what DeepSpeed passes it (the module's topology must be the grid's, laid over
the same ranks) and returns the grid; the name is restored when the block ends.
Before that, the installed DeepSpeed is checked: its version must be one of
:data:`TESTED_VERSIONS`, the name must still be DeepSpeed's own class, and
``PipelineModule.__init__`` must still call it. Anything else is refused with
:class:`~proctopo.errors.UnsupportedPeerError` (an ``ImportError``) naming what
was expected, before DeepSpeed is touched, and a module that did not take the
grid is refused after it is built. Other threads
building a ``PipelineModule`` meanwhile get DeepSpeed's own grid, as before.

DeepSpeed still makes the groups that are its own business: the all-ranks
group ``PipelineModule`` creates before its grid, the groups of tied layers,
and those ``deepspeed.initialize`` creates for ZeRO.

Importing this module imports neither torch nor DeepSpeed.

>>> check_version("0.19.8")
'0.19.8'
>>> try:
...     check_version("0.18.0")
... except ImportError as exc:
...     print(type(exc).__name__, exc)  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
UnsupportedPeerError DeepSpeed 0.18.0 is not supported:
proctopo.deepspeed was tested with DeepSpeed 0.19.8; install it (pip install 'deepspeed==0.19.8'), ...
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import GridStateError, InvalidArgumentError, UnsupportedPeerError
from .topology import ProcessTopology

if TYPE_CHECKING:
    from .grid import PipelineParallelGrid

__all__ = ["TESTED_VERSIONS", "check_version", "installed_version", "pipeline_module", "use_grid"]

#: DeepSpeed releases whose ``PipelineModule`` and ``PipelineEngine`` this module was tested with.
TESTED_VERSIONS: tuple[str, ...] = ("0.19.8",)

#: The module whose global ``PipelineParallelGrid`` DeepSpeed's ``PipelineModule`` calls.
_MODULE = "deepspeed.runtime.pipe.module"
_NAME = "PipelineParallelGrid"

#: Held while a block of :func:`use_grid` has the name bound (one block at a time per process).
_LOCK = threading.RLock()

_PIN = f"deepspeed=={TESTED_VERSIONS[-1]}"


def _unsupported(version: str | None, problem: str = "") -> UnsupportedPeerError:
    """The refusal of the installed DeepSpeed: its version, or ``problem`` with it."""
    return UnsupportedPeerError.of(
        "DeepSpeed",
        str(version),
        module=__name__,
        tested=TESTED_VERSIONS,
        problem=problem,
        instead="build the PipelineModule on DeepSpeed's own grid (PipelineModule(..., topology=...))",
        why=f"{__name__} hands PipelineModule a grid through the global {_MODULE}.{_NAME}, which "
        "PipelineModule.__init__ calls (process_group=..., topology=...); any release may change that, "
        "and it refuses to guess.",
    )


def installed_version() -> str | None:
    """The installed DeepSpeed's version, or ``None`` without DeepSpeed.

    Once ``deepspeed`` is imported its ``__version__`` says it; before, the
    installed distribution's metadata does, read without importing DeepSpeed.

    >>> installed_version() is None or installed_version().count(".") >= 2
    True
    """
    module = sys.modules.get("deepspeed")
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    import importlib.metadata

    try:
        return importlib.metadata.version("deepspeed")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_version(version: str | None = None) -> str:
    """Refuse a DeepSpeed release this module was not tested with; return the version.

    Args:
        version: The version to check (``None``: the installed one). A local
            part (``+...``) is ignored: ``0.19.8+cpu`` is 0.19.8.

    Raises:
        ImportError: DeepSpeed is not installed.
        UnsupportedPeerError: its release is not one of :data:`TESTED_VERSIONS`
            (the message names them). Also an ``ImportError``.

    >>> check_version("0.19.8+cpu")
    '0.19.8+cpu'
    """
    if version is None:
        version = installed_version()
    tested = ", ".join(TESTED_VERSIONS)
    if version is None:
        raise ImportError(f"proctopo.deepspeed needs DeepSpeed (tested with {tested}): pip install '{_PIN}'")
    if version.partition("+")[0] not in TESTED_VERSIONS:
        raise _unsupported(version)
    return version


def _deepspeed_internals(version: str) -> tuple[Any, Any]:
    """``(deepspeed.runtime.pipe.module, DeepSpeed's PipelineParallelGrid)``, checked for :func:`use_grid`."""
    module = importlib.import_module(_MODULE)
    topology = importlib.import_module("deepspeed.runtime.pipe.topology")
    expected = getattr(topology, _NAME, None)
    found = getattr(module, _NAME, None)
    pipeline = getattr(module, "PipelineModule", None)
    init = getattr(pipeline, "__init__", None)
    code = getattr(init, "__code__", None)
    problem = ""
    outer = getattr(found, "_proctopo_grid", None)
    if outer is not None:
        raise GridStateError(f"use_grid blocks do not nest: {_MODULE}.{_NAME} already hands out {outer!r}")
    if expected is None:
        problem = f"deepspeed.runtime.pipe.topology has no {_NAME}"
    elif found is not expected:
        problem = (
            f"{_MODULE}.{_NAME} is {found!r}, not DeepSpeed's class {expected!r}: something else replaced it"
        )
    elif code is None or _NAME not in code.co_names:
        problem = f"{_MODULE}.PipelineModule.__init__ does not call {_NAME}"
    if problem:
        raise _unsupported(version, problem)
    return module, expected


def _topology_text(topology: Any) -> str:
    axes = list(topology.get_axis_names())
    return ProcessTopology(axes, [int(topology.get_dim(a)) for a in axes]).shape_text()


def _ranks_text(ranks: list[int]) -> str:
    if len(ranks) <= 16:
        return str(ranks)
    return f"[{', '.join(map(str, ranks[:16]))}, ...] ({len(ranks)} ranks)"


def _grid_ranks(grid: PipelineParallelGrid) -> list[int]:
    """The global ranks of the whole grid, in grid-rank order."""
    pg = grid.process_grid
    return pg.get_group_ranks(pg.topology.get_axis_names())


@contextlib.contextmanager
def use_grid(grid: PipelineParallelGrid) -> Iterator[PipelineParallelGrid]:
    """Within the block, every DeepSpeed ``PipelineModule`` built on this thread runs on ``grid``.

    The module's ``_grid`` and ``mpu()`` are ``grid``, so ``deepspeed.initialize``
    and the ``PipelineEngine`` use its groups. Give the module the grid's
    topology (``topology=grid.topology()``) or a ``num_stages`` that makes the
    same pipe x data split. One block at a time per process: a block entered
    on another thread waits for this one to end.

    Args:
        grid: A :class:`proctopo.PipelineParallelGrid` laid over the whole
            world, grid rank = global rank (DeepSpeed's ``PipelineModule`` reads
            its stage from the global rank).

    Yields:
        ``grid``.

    Raises:
        ImportError: DeepSpeed is missing.
        UnsupportedPeerError: its release is not one of :data:`TESTED_VERSIONS`,
            or its internals differ from those of the tested releases (the
            message names what was expected). Also an ``ImportError``.
        TypeError: ``grid`` is not a :class:`proctopo.PipelineParallelGrid`.
        InvalidArgumentError: the grid does not cover the world in rank order,
            or a module inside the block was given another topology.
        GridDestroyedError: the grid was destroyed.
        GridStateError: the block is inside another ``use_grid`` block.

    >>> with proctopo.deepspeed.use_grid(grid):  # doctest: +SKIP
    ...     model = GPTModelPipe(config, topology=grid.topology())
    >>> engine, *_ = deepspeed.initialize(model=model, config=ds_config)  # doctest: +SKIP
    """
    version = check_version()
    from .grid import PipelineParallelGrid

    if not isinstance(grid, PipelineParallelGrid):
        raise TypeError(f"grid must be a proctopo.PipelineParallelGrid, got {type(grid).__name__}")
    grid.get_data_parallel_group()  # a destroyed grid fails here, with the grid's own error
    with _LOCK:
        module, deepspeed_grid = _deepspeed_internals(version)
        import torch.distributed as dist

        world = dist.get_world_size()
        ranks = _grid_ranks(grid)
        if ranks != list(range(world)):
            raise InvalidArgumentError(
                "DeepSpeed's PipelineModule lays its topology over the whole world (grid rank = global "
                f"rank), but the grid holds the global ranks {_ranks_text(ranks)} of a world of {world}: "
                "build the grid over the whole world (no process_group)"
            )
        owner = threading.get_ident()

        def grid_for_pipeline_module(topology: Any = None, process_group: Any = None) -> Any:
            if threading.get_ident() != owner:  # another thread's module: DeepSpeed's own grid
                return deepspeed_grid(topology=topology, process_group=process_group)
            shape = _topology_text(grid.topology())
            given = "none" if topology is None else _topology_text(topology)
            if given != shape:
                raise InvalidArgumentError(
                    f"the PipelineModule was given the topology {given}, but the grid of use_grid is "
                    f"{shape}: pass topology=grid.topology()"
                )
            members = None if process_group is None else list(dist.get_process_group_ranks(process_group))
            if members is not None and members != ranks:
                raise InvalidArgumentError(
                    f"the PipelineModule lays its grid over the ranks {_ranks_text(members)}, but the grid "
                    f"holds the ranks {_ranks_text(ranks)}"
                )
            return grid

        grid_for_pipeline_module._proctopo_grid = grid  # type: ignore[attr-defined]
        setattr(module, _NAME, grid_for_pipeline_module)
        try:
            yield grid
        finally:
            setattr(module, _NAME, deepspeed_grid)


def pipeline_module(layers: Iterable[Any], grid: PipelineParallelGrid, **kwargs: Any) -> Any:
    """A ``deepspeed.pipe.PipelineModule`` of ``layers`` on ``grid`` (see :func:`use_grid`).

    Args:
        layers: The layers (``LayerSpec``, modules or callables), as
            ``PipelineModule`` takes them.
        grid: A :class:`proctopo.PipelineParallelGrid` over the whole world; its
            topology is the module's.
        **kwargs: Any other argument of ``PipelineModule`` (``loss_fn``,
            ``partition_method``, ...), except ``topology`` and ``num_stages``,
            which come from the grid.

    Returns:
        The ``PipelineModule``: ``module.mpu()`` is ``grid``, and
        ``deepspeed.initialize(model=module, ...)`` builds a ``PipelineEngine`` on it.

    Raises:
        InvalidArgumentError: ``topology`` or ``num_stages`` given, or see
            :func:`use_grid`.
        ImportError, UnsupportedPeerError: see :func:`use_grid`; also
            UnsupportedPeerError when DeepSpeed built the module without asking
            for the grid.

    >>> from deepspeed.pipe import LayerSpec  # doctest: +SKIP
    >>> topo = proctopo.ProcessTopology(["pipe", "data"], [2, 2])  # doctest: +SKIP
    >>> grid = proctopo.PipelineParallelGrid(topo)  # doctest: +SKIP
    >>> model = pipeline_module([LayerSpec(torch.nn.Linear, 8, 8)] * 4, grid,
    ...                         loss_fn=torch.nn.MSELoss())  # doctest: +SKIP
    >>> model.mpu() is grid, model.stage_id == grid.get_stage_id()  # doctest: +SKIP
    (True, True)
    """
    given = sorted(k for k in ("topology", "num_stages") if k in kwargs)
    if given:
        raise InvalidArgumentError(
            f"pipeline_module takes the topology from the grid; do not pass {' or '.join(given)}"
        )
    with use_grid(grid):
        pipeline = importlib.import_module("deepspeed.pipe").PipelineModule
        model = pipeline(layers, topology=grid.topology(), **kwargs)
    if getattr(model, "_grid", None) is not grid or model.mpu() is not grid:
        raise _unsupported(
            installed_version(),
            f"its PipelineModule did not take its grid from {_MODULE}.{_NAME}: it runs on a grid of its own",
        )
    return model
