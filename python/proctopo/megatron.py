"""Megatron-LM's parallel state built from one proctopo grid.

``initialize_model_parallel`` takes the keyword arguments of
``megatron.core.parallel_state.initialize_model_parallel`` (megatron-core 0.16)
and leaves ``megatron.core.parallel_state`` answering every getter exactly as
megatron-core's own call would (same ranks, sizes, source, first/last/next/prev
ranks, gloo groups when asked for), but it creates each distinct group once,
through a :class:`proctopo.ProcessGrid`:

* megatron-core calls ``new_group`` for every group of every kind on every
  rank (O(world size) calls per rank) and makes a separate communicator for
  each kind, even where two kinds hold the same ranks (``dp`` and ``dp_cp``
  without context parallelism, ``tp_ep_pp`` and the whole world, ...);
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

from dataclasses import dataclass

from .errors import InvalidArgumentError
from .topology import ProcessTopology, dims_create

__all__ = ["EXPERT_LAYOUT", "GLOO_GROUPS", "GROUPS", "MegatronLayout", "layout"]

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
    if not isinstance(order, str):
        raise TypeError(f"order must be a str such as 'tp-cp-ep-dp-pp', got {order!r}")
    sizes = {
        "tp": tensor_model_parallel_size,
        "cp": context_parallel_size,
        "ep": expert_model_parallel_size,
        "pp": pipeline_model_parallel_size,
    }
    etp = tensor_model_parallel_size if expert_tensor_parallel_size is None else expert_tensor_parallel_size
    tokens = order.lower().split("-")
    unknown = [t for t in tokens if t and t not in _TOKENS]
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
