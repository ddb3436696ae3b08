"""Megatron-LM's parallel state built from one proctopo grid.

``initialize_model_parallel`` takes the keyword arguments of
``megatron.core.parallel_state.initialize_model_parallel`` (megatron-core 0.16)
and leaves ``megatron.core.parallel_state`` answering every getter exactly as
megatron-core's own call would (same ranks, sizes, source, first/last/next/prev
ranks, gloo groups when asked for), but it creates each distinct group once,
through a :class:`proctopo.ProcessGrid`:

* megatron-core calls ``new_group`` for every group of every kind on every
  rank (153,881 calls per rank at 65,536 ranks with tp 8, cp 2, ep 8, pp 8)
  and makes a separate communicator for each kind, even where two kinds hold
  the same ranks (``dp`` and ``dp_cp`` without context parallelism, the
  distributed-optimizer group and the default group, ...);
* here the dense layout (``tp``, ``cp``, ``dp``, ``pp``) and the expert layout
  (``etp``, ``ep``, ``edp``, ``pp``) are two factorizations of the same ranks,
  held by one grid, which creates each rank's groups with O(axes) calls where
  the backend allows it and shares identical rank sets.

The layouts follow megatron-core's ``RankGenerator``: the order string lists the
fastest axis first, tokens missing from it get size 1, the data-parallel sizes
are derived from the world size, and the pipeline groups of both layouts must
agree.

Only the group set-up is replaced: the rest of Megatron reads
``parallel_state`` as usual. megatron-core is needed for
:func:`initialize_model_parallel`, :func:`destroy_model_parallel` and
:func:`process_groups` (``pip install megatron-core``); importing this module
does not import it, and :func:`layout` and :func:`create_groups` work without it.

>>> lay = layout(8, tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
...              expert_model_parallel_size=2)
>>> lay.dense
ProcessTopology(axes=['pp', 'dp', 'cp', 'tp'], dims=[2, 2, 1, 2])
>>> lay.expert
ProcessTopology(axes=['pp', 'edp', 'ep', 'etp'], dims=[2, 1, 2, 2])
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .comm import check_timeout
from .errors import GridStateError, InvalidArgumentError
from .topology import ProcessTopology, dims_create, parse_order

if TYPE_CHECKING:
    from .comm import Comm
    from .grid import ProcessGrid

__all__ = [
    "EXPERT_LAYOUT",
    "GLOO_GROUPS",
    "GROUPS",
    "MegatronGroups",
    "MegatronLayout",
    "create_groups",
    "destroy_model_parallel",
    "initialize_model_parallel",
    "layout",
    "process_groups",
]

#: Name of the expert layout in the grid (the dense layout is the grid's own topology).
EXPERT_LAYOUT = "expert"

#: Megatron's group kinds, by the field name of its ``ProcessGroupCollection``: the
#: layout (None: dense) and the axes of each, in the order megatron-core creates them.
GROUPS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "dp_cp": (None, ("dp", "cp")),
    "dp": (None, ("dp",)),
    "cp": (None, ("cp",)),
    "mp": (None, ("tp", "pp")),
    "tp": (None, ("tp",)),
    "pp": (None, ("pp",)),
    "tp_dp_cp": (None, ("tp", "dp", "cp")),
    "tp_dp": (None, ("tp", "dp")),
    "tp_cp": (None, ("tp", "cp")),
    "ep": (EXPERT_LAYOUT, ("ep",)),
    "expt_tp": (EXPERT_LAYOUT, ("etp",)),
    "tp_ep": (EXPERT_LAYOUT, ("etp", "ep")),
    "tp_ep_pp": (EXPERT_LAYOUT, ("etp", "ep", "pp")),
    "expt_dp": (EXPERT_LAYOUT, ("edp",)),
    # One distributed-optimizer instance: the tp-ep-pp groups of every expert-data
    # index together, i.e. every rank.
    "intra_dist_opt": (EXPERT_LAYOUT, ("etp", "ep", "edp", "pp")),
}

#: The gloo groups megatron-core adds with ``create_gloo_process_groups=True``.
GLOO_GROUPS = ("dp_cp", "dp", "expt_dp")

#: Megatron's order tokens; the expert layout renames tp and dp.
_TOKENS = ("tp", "cp", "ep", "dp", "pp")
_EXPERT_NAMES = {"tp": "etp", "dp": "edp"}
#: The order in which megatron-core appends tokens missing from an order string.
_COMPLETION = ("tp", "pp", "dp", "ep", "cp")

_PIP = "pip install megatron-core"


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class MegatronLayout:
    """The two factorizations of the ranks that megatron-core derives from its arguments.

    Attributes:
        world_size: Number of ranks.
        order: The order string as megatron-core completes it (lower case, the
            missing tokens, all of size 1, appended).
        tp, cp, ep, pp: The sizes given; ``etp`` the expert tensor-parallel size
            (``tp`` when not given, as megatron-core derives it).
        dp: Data-parallel size, ``world_size / (tp * cp * pp)``.
        edp: Expert data-parallel size, ``world_size / (etp * ep * pp)``.
        dense: Topology over ``tp``, ``cp``, ``dp``, ``pp`` (slowest first, as
            proctopo lists axes; Megatron's order reversed).
        expert: Topology over ``etp``, ``ep``, ``edp``, ``pp``.
    """

    world_size: int
    order: str
    tp: int
    cp: int
    ep: int
    etp: int
    pp: int
    dp: int
    edp: int
    dense: ProcessTopology
    expert: ProcessTopology


def _derive(world_size: int, fixed: dict[str, int], what: str) -> int:
    """The free size megatron-core derives: world_size over the product of ``fixed``."""
    try:
        return dims_create(world_size, [*fixed.values(), 0])[-1]
    except InvalidArgumentError as exc:  # the core's rule and text, with the names of the sizes
        shown = " * ".join(f"{k}={v}" for k, v in fixed.items())
        raise InvalidArgumentError(
            f"cannot derive {what} from world size {world_size} and {shown}: {exc}"
        ) from exc


def _complete(order: str, tokens: list[str], sizes: dict[str, int], which: str) -> list[str]:
    """megatron-core's completion of an order: missing tokens of size 1 are appended."""
    missing = [t for t in _COMPLETION if t not in tokens]
    for t in missing:
        if sizes[t] != 1:
            raise InvalidArgumentError(
                f"order {order!r} leaves out {t!r}, whose {which}size is {sizes[t]}; "
                "a token may be left out only when its size is 1"
            )
    return tokens + missing


def layout(
    world_size: int,
    *,
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    context_parallel_size: int = 1,
    expert_model_parallel_size: int = 1,
    expert_tensor_parallel_size: int | None = None,
    order: str = "tp-cp-ep-dp-pp",
) -> MegatronLayout:
    """The dense and expert layouts megatron-core derives for these sizes (pure arithmetic).

    Args:
        world_size: Number of ranks.
        tensor_model_parallel_size, pipeline_model_parallel_size,
        context_parallel_size, expert_model_parallel_size,
        expert_tensor_parallel_size, order: As megatron-core's
            ``initialize_model_parallel`` takes them.

    Raises:
        InvalidArgumentError: ``order`` names a token megatron-core does not know
            (or one twice), leaves out a token whose size is above 1, a size does
            not divide the world size, or the order does not end with ``pp``
            while the dense and expert data-parallel sizes differ (megatron-core's
            rule: their pipeline groups would differ).
        InvalidTopologyError: a size below 1.
        TypeError: a size that is not an integer.

    >>> lay = layout(16, tensor_model_parallel_size=2, context_parallel_size=2,
    ...              expert_model_parallel_size=4, expert_tensor_parallel_size=1)
    >>> lay.dp, lay.edp, lay.order
    (4, 4, 'tp-cp-ep-dp-pp')
    >>> lay.dense.group_list(5, ["dp", "cp"]), lay.expert.group_list(5, ["ep"])
    ([1, 3, 5, 7, 9, 11, 13, 15], [4, 5, 6, 7])
    """
    tokens = [t.lower() for t in parse_order(order)]  # the core's parser: its errors and words
    sizes = {
        "tp": tensor_model_parallel_size,
        "cp": context_parallel_size,
        "ep": expert_model_parallel_size,
        "pp": pipeline_model_parallel_size,
    }
    etp = tensor_model_parallel_size if expert_tensor_parallel_size is None else expert_tensor_parallel_size
    unknown = [t for t in tokens if t not in _TOKENS]
    if unknown:
        raise InvalidArgumentError(
            f"order {order!r} names {unknown[0]!r}; megatron-core's tokens are {', '.join(_TOKENS)}"
        )
    # The sizes go through the core first (sizes below 1, non-integers: its errors), then
    # dims_create derives each data-parallel size (a size that does not divide: its error).
    ProcessTopology.from_order("-".join(_TOKENS), rename=None, **sizes, dp=1)
    ProcessTopology(["etp"], [etp])
    dp = _derive(world_size, {"tp": sizes["tp"], "cp": sizes["cp"], "pp": sizes["pp"]}, "dp")
    edp = _derive(world_size, {"etp": etp, "ep": sizes["ep"], "pp": sizes["pp"]}, "expert dp")
    dense_sizes = {"tp": sizes["tp"], "cp": sizes["cp"], "ep": 1, "dp": dp, "pp": sizes["pp"]}
    expert_sizes = {"tp": etp, "cp": 1, "ep": sizes["ep"], "dp": edp, "pp": sizes["pp"]}
    dense_order = _complete(order, tokens, dense_sizes, "")
    _complete(order, tokens, expert_sizes, "expert ")
    # megatron-core checks the order string as given (before completing it).
    if not (order.endswith("pp") or sizes["pp"] == 1 or edp == dp):
        raise InvalidArgumentError(
            f"order {order!r} does not end with pp, so the dense and expert layouts need the same "
            f"data-parallel size, but world_size / (tp * cp * pp) = {world_size} / "
            f"({sizes['tp']} * {sizes['cp']} * {sizes['pp']}) = {dp} and world_size / (etp * ep * pp) = "
            f"{world_size} / ({etp} * {sizes['ep']} * {sizes['pp']}) = {edp}"
        )
    # Each layout leaves out the token that is 1 in it by construction (ep in the dense
    # layout, cp in the expert one), so the two share only pp.
    dense = ProcessTopology.from_order(
        "-".join(t for t in dense_order if t != "ep"),
        rename=None,
        **{t: v for t, v in dense_sizes.items() if t != "ep"},
    )
    expert = ProcessTopology.from_order(
        "-".join(t for t in dense_order if t != "cp"),
        rename=_EXPERT_NAMES,
        **{t: v for t, v in expert_sizes.items() if t != "cp"},
    )
    # megatron-core also requires the two layouts to have the same pipeline groups. The
    # group of a rank over one axis steps by that axis's stride, so they agree exactly
    # when pp has the same stride in both (or has size 1).
    dense_stride = dense.strides[dense.axis_indices("pp")[0]]
    expert_stride = expert.strides[expert.axis_indices("pp")[0]]
    if sizes["pp"] > 1 and dense_stride != expert_stride:
        raise InvalidArgumentError(
            f"order {order!r} gives the dense and the expert layouts different pipeline groups "
            f"(pp steps by {dense_stride} ranks in the dense layout, tp={sizes['tp']} cp={sizes['cp']} "
            f"dp={dp}, and by {expert_stride} in the expert layout, etp={etp} ep={sizes['ep']} dp={edp}); "
            "megatron-core requires them to be the same: put pp last in the order"
        )
    return MegatronLayout(
        world_size=world_size,
        order="-".join(dense_order),
        tp=sizes["tp"],
        cp=sizes["cp"],
        ep=sizes["ep"],
        etp=etp,
        pp=sizes["pp"],
        dp=dp,
        edp=edp,
        dense=dense,
        expert=expert,
    )


# ----------------------------------------------------------------------------- groups


@dataclass
class MegatronGroups:
    """This rank's Megatron groups, all held by one :class:`proctopo.ProcessGrid`.

    Attributes:
        grid: The grid: the dense layout is its topology, the expert layout its
            layout :data:`EXPERT_LAYOUT`. ``grid.destroy()`` frees every group.
        layout: The sizes and topologies (:func:`layout`).
        handles: This rank's group of each kind, by the field names of
            megatron-core's ``ProcessGroupCollection`` (:data:`GROUPS`, plus
            ``embd`` and ``pos_embd``, ``None`` where this rank is in no such
            group), and ``dp_cp_gloo``, ``dp_gloo``, ``expt_dp_gloo`` when gloo
            groups were asked for.
        ranks: The global rank lists megatron-core keeps (``dp``, ``dp_cp``,
            ``cp``, ``mp``, ``tp``, ``pp``, ``ep``, ``embd``, ``pos_embd``), in its
            order; ``None`` where this rank is in no such group.
        parent: The grid's parent group (the default group): the handle of a
            kind whose group is every rank, such as ``intra_dist_opt``.
    """

    grid: ProcessGrid
    layout: MegatronLayout
    parent: Any = None
    handles: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, list[int] | None] = field(default_factory=dict)


def _default_embedding_ranks(pp_ranks: list[int]) -> list[int]:
    # megatron-core's default: the first and the last pipeline stage.
    return [pp_ranks[0]] if len(pp_ranks) == 1 else [pp_ranks[0], pp_ranks[-1]]


def _default_position_embedding_ranks(pp_ranks: list[int]) -> list[int]:
    # megatron-core's default: the first pipeline stage.
    return [pp_ranks[0]]


def _embedding_family(
    lay: MegatronLayout, rank: int, fn: Callable[[list[int]], Sequence[int]] | None, default: Any
) -> tuple[list[list[int]], list[int] | None]:
    """The rank lists of one embedding kind (one per pipeline group) and this rank's list."""
    import numpy as np

    table = np.asarray(lay.dense.groups("pp"))
    if fn is None:  # the default stages: whole columns of the pipeline table, no Python loop per group
        cols = [0] if lay.pp == 1 or default is _default_position_embedding_ranks else [0, lay.pp - 1]
        family = table[:, cols].tolist()
        mine = default(lay.dense.group_list(rank, ["pp"]))
        return family, (mine if rank in mine else None)
    family = []
    found: list[int] | None = None
    for row in table.tolist():
        chosen = [int(r) for r in fn(row)]
        if chosen:
            family.append(chosen)
            if rank in chosen:
                found = chosen  # megatron-core keeps the last list that holds the rank
    return family, found


def _create_kinds(
    mg: MegatronGroups,
    rank: int,
    get_embedding_ranks: Callable[[list[int]], Sequence[int]] | None,
    get_position_embedding_ranks: Callable[[list[int]], Sequence[int]] | None,
    gloo: bool,
) -> None:
    grid, lay = mg.grid, mg.layout
    # The axis groups came with the grid, in megatron-core's order; their gloo twins
    # follow (every rank takes part in each of these families), and the embedding
    # families, which leave out the middle stages, come last: each an explicit,
    # checked creation call.
    for kind, (name, axes) in GROUPS.items():
        mg.handles[kind] = grid.get_group(axes, layout=name)
    if gloo:
        for kind in GLOO_GROUPS:
            name, axes = GROUPS[kind]
            mg.handles[f"{kind}_gloo"] = grid.create_group(axes, layout=name, backend="gloo")
    for kind in ("dp", "dp_cp", "cp", "mp", "tp", "pp"):
        mg.ranks[kind] = grid.get_group_ranks(GROUPS[kind][1])
    mg.ranks["ep"] = grid.get_group_ranks(GROUPS["ep"][1], layout=EXPERT_LAYOUT)
    for kind, fn, default in (
        ("embd", get_embedding_ranks, _default_embedding_ranks),
        ("pos_embd", get_position_embedding_ranks, _default_position_embedding_ranks),
    ):
        family, mine = _embedding_family(lay, rank, fn, default)
        mg.handles[kind] = grid.new_groups(family, name=kind)
        mg.ranks[kind] = mine


def create_groups(
    *,
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    context_parallel_size: int = 1,
    expert_model_parallel_size: int = 1,
    expert_tensor_parallel_size: int | None = None,
    order: str = "tp-cp-ep-dp-pp",
    get_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    get_position_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    create_gloo_process_groups: bool = True,
    group_creation: str = "auto",
    timeout: datetime.timedelta | float | None = None,
    comm: Comm | None = None,
) -> MegatronGroups:
    """Create every group megatron-core's ``initialize_model_parallel`` creates, each distinct one once.

    A collective over the whole world: every rank calls it with the same
    arguments. It does not touch ``megatron.core.parallel_state``
    (:func:`initialize_model_parallel` does), so it needs no megatron-core, and
    with ``comm=proctopo.testing.RecordingComm(...)`` it plays one rank of any
    world without torch.

    Args:
        tensor_model_parallel_size, pipeline_model_parallel_size,
        context_parallel_size, expert_model_parallel_size,
        expert_tensor_parallel_size, order, get_embedding_ranks,
        get_position_embedding_ranks, create_gloo_process_groups: As
            megatron-core's ``initialize_model_parallel`` takes them.
        group_creation: The grid's strategy (``"auto"``, ``"local"``,
            ``"split"``, ``"global"``).
        timeout: Seconds (or a ``timedelta``) for the set-up and for the groups'
            collectives; ``None``: the grid's defaults.
        comm: The communication layer (default: ``torch.distributed``).

    Returns:
        The grid and this rank's groups and rank lists by Megatron's names.

    Raises:
        InvalidArgumentError: sizes or order that megatron-core refuses
            (:func:`layout`), or embedding rank lists that overlap (one rank in
            the lists of two pipeline groups).
        GroupCreationError, TopologyMismatchError, GridTimeoutError: as
            :class:`proctopo.ProcessGrid` raises them.

    >>> from proctopo.testing import RecordingComm
    >>> comm = RecordingComm(rank=0, world_size=8)
    >>> mg = create_groups(tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
    ...                    expert_model_parallel_size=2, create_gloo_process_groups=False,
    ...                    group_creation="local", comm=comm)
    >>> mg.ranks["tp"], mg.ranks["pp"], mg.ranks["embd"], mg.handles["ep"].ranks
    ([0, 1], [0, 4], [0, 4], [0, 2])
    """
    from .comm import TorchComm
    from .grid import ProcessGrid

    if comm is None:
        comm = TorchComm()
    lay = layout(
        comm.world_size(),
        tensor_model_parallel_size=tensor_model_parallel_size,
        pipeline_model_parallel_size=pipeline_model_parallel_size,
        context_parallel_size=context_parallel_size,
        expert_model_parallel_size=expert_model_parallel_size,
        expert_tensor_parallel_size=expert_tensor_parallel_size,
        order=order,
    )
    specs: list[Any] = [axes if name is None else (name, axes) for name, axes in GROUPS.values()]
    grid = ProcessGrid(
        lay.dense,
        group_creation=group_creation,
        timeout=timeout,
        groups=specs,
        layouts={EXPERT_LAYOUT: lay.expert},
        comm=comm,
    )
    mg = MegatronGroups(grid=grid, layout=lay, parent=comm.parent())
    try:
        _create_kinds(
            mg,
            comm.global_rank(),
            get_embedding_ranks,
            get_position_embedding_ranks,
            create_gloo_process_groups,
        )
    except BaseException:
        grid.destroy()  # free what this rank made so far; the error says what went wrong
        raise
    return mg


# ------------------------------------------------------------------ megatron-core's state

#: Options of megatron-core's initialize_model_parallel that proctopo does not build,
#: with the value that means "off" and what the option asks for.
_UNSUPPORTED: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    (
        "pipeline_model_parallel_comm_backend",
        lambda v: v is None,
        "a separate backend for the pipeline groups",
    ),
    ("use_sharp", lambda v: not v, "SHARP for the data-parallel groups"),
    ("hierarchical_context_parallel_sizes", lambda v: not v, "hierarchical context-parallel groups"),
    ("hybrid_context_parallel", lambda v: not v, "hybrid data x context-parallel groups"),
    ("num_distributed_optimizer_instances", lambda v: v == 1, "partial distributed-optimizer groups"),
    ("nccl_communicator_config_path", lambda v: v is None, "per-group NCCL communicator options"),
    ("high_priority_stream_groups", lambda v: not v, "high-priority NCCL streams"),
    ("sharp_enabled_group", lambda v: v is None, "SHARP for one group"),
    (
        "create_all_gather_group",
        lambda v: not v,
        "a second communicator with the ranks of the dp-cp group, which proctopo would share",
    ),
)

#: The state of the last initialize_model_parallel: its groups (None after destroy).
_STATE: MegatronGroups | None = None


def _megatron_core(module: str, what: str) -> Any:
    """A megatron-core module, or an ImportError that says how to get it."""
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():
            # megatron-core warns at import when Transformer Engine and Apex are missing.
            warnings.filterwarnings("ignore", message=r".*Transformer Engine and Apex are not installed.*")
            return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"proctopo.megatron.{what} needs megatron-core: {_PIP} ({exc})") from exc


def _parallel_state(what: str) -> Any:
    """megatron.core.parallel_state, or an ImportError that says how to get it."""
    return _megatron_core("megatron.core.parallel_state", what)


def initialize_model_parallel(
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    virtual_pipeline_model_parallel_size: int | None = None,
    pipeline_model_parallel_comm_backend: str | None = None,
    use_sharp: bool = False,
    context_parallel_size: int = 1,
    hierarchical_context_parallel_sizes: list[int] | None = None,
    hybrid_context_parallel: bool = False,
    expert_model_parallel_size: int = 1,
    num_distributed_optimizer_instances: int = 1,
    expert_tensor_parallel_size: int | None = None,
    nccl_communicator_config_path: str | None = None,
    distributed_timeout_minutes: float = 30,
    order: str = "tp-cp-ep-dp-pp",
    get_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    get_position_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    create_gloo_process_groups: bool = True,
    high_priority_stream_groups: list[str] | None = None,
    sharp_enabled_group: str | None = None,
    create_all_gather_group: bool | None = False,
    *,
    group_creation: str = "auto",
    timeout: datetime.timedelta | float | None = None,
) -> MegatronGroups:
    """megatron-core's ``initialize_model_parallel``, with each distinct group created once.

    Takes megatron-core's arguments (same names, order and defaults) and leaves
    ``megatron.core.parallel_state`` answering every getter as its own call
    would. A collective over the whole world, like megatron-core's.

    Args:
        tensor_model_parallel_size ... create_all_gather_group: As megatron-core
            takes them. The options proctopo does not build must keep their
            default: ``pipeline_model_parallel_comm_backend``, ``use_sharp``,
            ``hierarchical_context_parallel_sizes``, ``hybrid_context_parallel``,
            ``num_distributed_optimizer_instances``, ``nccl_communicator_config_path``,
            ``high_priority_stream_groups``, ``sharp_enabled_group``,
            ``create_all_gather_group``.
        group_creation: The grid's strategy: ``"auto"`` (default), ``"local"``,
            ``"split"`` or ``"global"`` (see :mod:`proctopo.groups`).
        timeout: Seconds (or a ``timedelta``) for the set-up and the groups'
            collectives; ``None`` takes ``distributed_timeout_minutes``, as
            megatron-core does for its groups.

    Returns:
        The groups (their grid, layouts, handles and rank lists).

    Raises:
        ImportError: megatron-core is not installed.
        InvalidArgumentError: an unsupported option was set (the message names
            it), ``virtual_pipeline_model_parallel_size`` without pipeline
            parallelism, or sizes and order megatron-core refuses (:func:`layout`).
        GridStateError: the parallel state is already initialised (call
            :func:`destroy_model_parallel` first).
        GroupCreationError: ``torch.distributed`` is not initialised, or a group
            could not be created.
        TopologyMismatchError, GridTimeoutError: as :class:`proctopo.ProcessGrid`.
    """
    global _STATE
    given = locals()
    for name, is_off, what in _UNSUPPORTED:
        if not is_off(given[name]):
            raise InvalidArgumentError(
                f"proctopo.megatron.initialize_model_parallel does not support {name}={given[name]!r} "
                f"({what}); leave it at its default, or use megatron.core.parallel_state."
                "initialize_model_parallel for it"
            )
    if timeout is None:
        seconds = check_timeout(distributed_timeout_minutes * 60.0, "distributed_timeout_minutes * 60")
    else:
        seconds = check_timeout(timeout)
    if virtual_pipeline_model_parallel_size is not None and not pipeline_model_parallel_size > 1:
        raise InvalidArgumentError(
            f"virtual_pipeline_model_parallel_size={virtual_pipeline_model_parallel_size} needs "
            f"pipeline_model_parallel_size > 1, got {pipeline_model_parallel_size}"
        )
    ps = _parallel_state("initialize_model_parallel")
    if _STATE is not None or ps._DATA_PARALLEL_GROUP is not None:
        raise GridStateError(
            "megatron.core.parallel_state is already initialised; call destroy_model_parallel() first"
        )
    mg = create_groups(
        tensor_model_parallel_size=tensor_model_parallel_size,
        pipeline_model_parallel_size=pipeline_model_parallel_size,
        context_parallel_size=context_parallel_size,
        expert_model_parallel_size=expert_model_parallel_size,
        expert_tensor_parallel_size=expert_tensor_parallel_size,
        order=order,
        get_embedding_ranks=get_embedding_ranks,
        get_position_embedding_ranks=get_position_embedding_ranks,
        create_gloo_process_groups=create_gloo_process_groups,
        group_creation=group_creation,
        timeout=seconds,
    )
    _fill(ps, mg, virtual_pipeline_model_parallel_size)
    _STATE = mg
    return mg


def _fill(ps: Any, mg: MegatronGroups, vpp: int | None) -> None:
    """Set megatron-core's module globals as its initialize_model_parallel sets them."""
    h, r = mg.handles, mg.ranks
    if vpp is not None:
        ps._VIRTUAL_PIPELINE_MODEL_PARALLEL_RANK = 0
        ps._VIRTUAL_PIPELINE_MODEL_PARALLEL_WORLD_SIZE = vpp
    ps._DATA_PARALLEL_GROUP_WITH_CP = h["dp_cp"]
    ps._DATA_PARALLEL_GROUP_WITH_CP_AG = None
    ps._DATA_PARALLEL_GROUP_WITH_CP_GLOO = h.get("dp_cp_gloo")
    ps._DATA_PARALLEL_GLOBAL_RANKS_WITH_CP = r["dp_cp"]
    # One distributed-optimizer instance: the partial groups are the whole ones.
    ps._INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP = h["dp_cp"]
    ps._INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP_GLOO = h.get("dp_cp_gloo")
    ps._DATA_PARALLEL_GROUP = h["dp"]
    ps._DATA_PARALLEL_GROUP_GLOO = h.get("dp_gloo")
    ps._DATA_PARALLEL_GLOBAL_RANKS = r["dp"]
    ps._CONTEXT_PARALLEL_GROUP = h["cp"]
    ps._CONTEXT_PARALLEL_GLOBAL_RANKS = r["cp"]
    ps._MODEL_PARALLEL_GROUP = h["mp"]
    ps._MODEL_PARALLEL_GLOBAL_RANKS = r["mp"]
    ps._TENSOR_MODEL_PARALLEL_GROUP = h["tp"]
    ps._TENSOR_MODEL_PARALLEL_GLOBAL_RANKS = r["tp"]
    ps._PIPELINE_MODEL_PARALLEL_GROUP = h["pp"]
    ps._PIPELINE_GLOBAL_RANKS = r["pp"]
    # megatron-core sets the embedding globals on member ranks only.
    if r["embd"] is not None:
        ps._EMBEDDING_GROUP = h["embd"]
        ps._EMBEDDING_GLOBAL_RANKS = r["embd"]
    if r["pos_embd"] is not None:
        ps._POSITION_EMBEDDING_GROUP = h["pos_embd"]
        ps._POSITION_EMBEDDING_GLOBAL_RANKS = r["pos_embd"]
    ps._TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP = h["tp_dp_cp"]
    ps._TENSOR_AND_DATA_PARALLEL_GROUP = h["tp_dp"]
    ps._TENSOR_AND_CONTEXT_PARALLEL_GROUP = h["tp_cp"]
    ps._EXPERT_MODEL_PARALLEL_GROUP = h["ep"]
    ps._EXPERT_MODEL_PARALLEL_RANKS = r["ep"]
    ps._EXPERT_TENSOR_PARALLEL_GROUP = h["expt_tp"]
    ps._EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP = h["tp_ep"]
    ps._EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP = h["tp_ep_pp"]
    ps._EXPERT_DATA_PARALLEL_GROUP = h["expt_dp"]
    ps._EXPERT_DATA_PARALLEL_GROUP_GLOO = h.get("expt_dp_gloo")
    ps._INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP = h["expt_dp"]
    ps._INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP_GLOO = h.get("expt_dp_gloo")
    ps._INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP = h["intra_dist_opt"]
    # megatron-core lists the groups of this rank for update_pg_timeout (None: the default group).
    if ps._global_process_group_list is None:
        ps._global_process_group_list = [None]
    seen: set[int] = set()
    for handle in h.values():
        if handle is not None and handle is not mg.parent and id(handle) not in seen:
            seen.add(id(handle))
            ps._global_process_group_list.append(handle)
    ps._set_global_memory_buffer()


def destroy_model_parallel() -> None:
    """Destroy the groups :func:`initialize_model_parallel` created and reset megatron-core's state.

    Frees exactly what proctopo created (``grid.destroy()``; never the default
    group), then resets ``megatron.core.parallel_state`` as megatron-core's own
    ``destroy_model_parallel`` does. Calling it again does nothing more.

    Raises:
        ImportError: megatron-core is not installed.
    """
    global _STATE
    ps = _parallel_state("destroy_model_parallel")
    mg, _STATE = _STATE, None
    if mg is not None:
        mg.grid.destroy()
        ours = {id(g) for g in mg.handles.values() if g is not None}
        # megatron-core's own destroy frees its gloo groups; these are the grid's, and
        # one of them may be the default group itself: leave them out of its hands.
        for name in (
            "_DATA_PARALLEL_GROUP_GLOO",
            "_DATA_PARALLEL_GROUP_WITH_CP_GLOO",
            "_EXPERT_DATA_PARALLEL_GROUP_GLOO",
            "_INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP_GLOO",
        ):
            if id(getattr(ps, name)) in ours:
                setattr(ps, name, None)
    ps.destroy_model_parallel()


_COLLECTION_FIELDS = (
    "tp",
    "pp",
    "mp",
    "embd",
    "pos_embd",
    "cp",
    "tp_cp",
    "hcp",
    "ep",
    "expt_tp",
    "tp_ep",
    "tp_ep_pp",
    "tp_dp_cp",
    "dp",
    "dp_cp",
    "expt_dp",
    "intra_dp_cp",
    "intra_expt_dp",
    "inter_dist_opt",
    "intra_dist_opt",
)


def process_groups(required_pgs: Sequence[str] | None = None) -> Any:
    """megatron-core's ``ProcessGroupCollection`` of the groups of :func:`initialize_model_parallel`.

    Every field is set as ``ProcessGroupCollection.use_mpu_process_groups()``
    sets it after megatron-core's own call: ``hcp`` and ``inter_dist_opt`` are
    ``None`` (no hierarchical context parallelism, one distributed-optimizer
    instance), ``embd``/``pos_embd`` are ``None`` on ranks outside those groups,
    ``intra_dp_cp`` is ``dp_cp`` and ``intra_expt_dp`` is ``expt_dp``.

    Args:
        required_pgs: Only these fields (default: all of them).

    Raises:
        ImportError: megatron-core is not installed.
        GridStateError: :func:`initialize_model_parallel` has not run (or was
            destroyed).
        InvalidArgumentError: ``required_pgs`` names a field the collection does
            not have.
    """
    _parallel_state("process_groups")
    config = _megatron_core("megatron.core.process_groups_config", "process_groups")

    mg = _STATE
    if mg is None:
        raise GridStateError(
            "no Megatron groups: call proctopo.megatron.initialize_model_parallel(...) first"
        )
    h = mg.handles
    values: dict[str, Any] = {k: h.get(k) for k in _COLLECTION_FIELDS}
    values.update(hcp=None, inter_dist_opt=None, intra_dp_cp=h["dp_cp"], intra_expt_dp=h["expt_dp"])
    names = _COLLECTION_FIELDS if required_pgs is None else list(required_pgs)
    unknown = [n for n in names if n not in values]
    if unknown:
        raise InvalidArgumentError(
            f"ProcessGroupCollection has no field(s) {unknown}; its fields are {list(_COLLECTION_FIELDS)}"
        )
    return config.ProcessGroupCollection(**{n: values[n] for n in names})
