"""Megatron-LM's parallel state built from one proctopo grid.

``initialize_model_parallel`` takes the keyword arguments of
``megatron.core.parallel_state.initialize_model_parallel`` (megatron-core 0.16.x
and 0.19.x, the releases it is tested with; it refuses any other release with
:class:`~proctopo.errors.UnsupportedPeerError` before touching anything) and
leaves ``megatron.core.parallel_state`` answering every getter exactly as
megatron-core's own call would (same ranks, sizes, source, first/last/next/prev
ranks, gloo groups when asked for, and 0.19's GTP weight-rematerialisation
groups), but it creates each distinct group once, through a
:class:`proctopo.ProcessGrid`:

* megatron-core calls ``new_group`` for every group of every kind on every
  rank (153,881 calls per rank at 65,536 ranks with tp 8, cp 2, ep 8, pp 8)
  and makes a separate communicator for each kind, even where two kinds hold
  the same ranks (``dp`` and ``dp_cp`` without context parallelism, the
  distributed-optimizer group and the default group, ...);
* here the dense layout (``tp``, ``gtp``, ``cp``, ``dp``, ``pp``) and the expert
  layout (``etp``, ``ep``, ``egtp``, ``edp``, ``pp``) are two factorizations of
  the same ranks, held by one grid, which creates each rank's groups with
  O(axes) calls where the backend allows it and shares identical rank sets.

The layouts follow megatron-core's ``RankGenerator``: the order string lists the
fastest axis first, tokens missing from it get size 1, the data-parallel sizes
are derived from the world size, and the pipeline groups of both layouts must
agree. megatron-core 0.19 adds the ``gtp_remat`` token (the GTP
weight-rematerialisation axis): unless the order names it, it sits right after
``tp`` in the dense layout and right after ``ep`` in the expert one.

Only the group set-up is replaced: the rest of Megatron reads
``parallel_state`` as usual. megatron-core is needed for
:func:`initialize_model_parallel`, :func:`destroy_model_parallel` and
:func:`process_groups` (``pip install megatron-core``); importing this module
does not import it, and :func:`layout` and :func:`create_groups` work without it.

At the end of a job, call :func:`destroy_model_parallel` before
``torch.distributed.destroy_process_group()``: megatron-core's ``parallel_state``
itself holds the default group (as the group of every kind that spans all ranks),
and a default group still referenced after ``destroy_process_group()`` lives until
interpreter shutdown, where a gloo worker thread releasing a finished collective's
tensor can abort the process. proctopo itself keeps no reference to it, and
:func:`destroy_model_parallel` also drops the references that torch's own functions
took when importing megatron-core imported them (default arguments bound to the
default group).

>>> lay = layout(8, tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
...              expert_model_parallel_size=2)
>>> lay.dense
ProcessTopology(axes=['pp', 'dp', 'cp', 'tp'], dims=[2, 2, 1, 2])
>>> lay.expert
ProcessTopology(axes=['pp', 'edp', 'ep', 'etp'], dims=[2, 1, 2, 2])
>>> layout(8, tensor_model_parallel_size=2, gtp_remat_size=2).dense
ProcessTopology(axes=['pp', 'dp', 'cp', 'gtp', 'tp'], dims=[1, 2, 1, 2, 2])
"""

from __future__ import annotations

import datetime
import re
import sys
import types
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .comm import check_timeout
from .errors import GridStateError, InvalidArgumentError, UnsupportedPeerError
from .topology import ProcessTopology, check_sizes, dims_create, parse_order

if TYPE_CHECKING:
    from .comm import Comm
    from .grid import ProcessGrid

__all__ = [
    "EXPERT_LAYOUT",
    "GLOO_GROUPS",
    "GROUPS",
    "GTP_GROUPS",
    "TESTED_VERSIONS",
    "MegatronGroups",
    "MegatronLayout",
    "create_groups",
    "destroy_model_parallel",
    "initialize_model_parallel",
    "installed_version",
    "layout",
    "process_groups",
]

#: Name of the expert layout in the grid (the dense layout is the grid's own topology).
EXPERT_LAYOUT = "expert"

#: The megatron-core releases this module is tested with: release series -> the version
#: tested. Any other release is refused before anything is touched: each release moves
#: globals of ``parallel_state`` and arguments of ``initialize_model_parallel``.
TESTED_VERSIONS = {"0.16": "0.16.1", "0.19": "0.19.2"}

#: What a tested version needs beyond proctopo's own requirements (megatron-core 0.17 and
#: newer require Python 3.12).
_REQUIRES = {"0.19.2": "Python 3.12 or newer"}

#: The newest release series tested (what :func:`create_groups` builds without megatron-core).
_NEWEST = "0.19"

#: Megatron's group kinds, by the field name of its ``ProcessGroupCollection`` (where it
#: has one): the layout (None: dense) and the axes of each, in the order megatron-core
#: creates them. Axes a layout lacks (``gtp``, ``egtp`` unless GTP is in use) are left out.
GROUPS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "gtp_remat": (None, ("gtp",)),
    "dp_cp": (None, ("dp", "cp")),
    "dp": (None, ("dp",)),
    "dp_gtp_remat": (None, ("gtp", "dp")),
    "dp_cp_gtp_remat": (None, ("gtp", "dp", "cp")),
    "cp": (None, ("cp",)),
    "mp": (None, ("tp", "gtp", "pp")),
    "tp": (None, ("tp",)),
    "pp": (None, ("pp",)),
    "tp_dp_cp": (None, ("tp", "gtp", "dp", "cp")),
    "tp_dp": (None, ("tp", "gtp", "dp")),
    "tp_cp": (None, ("tp", "cp")),
    "expt_gtp_remat": (EXPERT_LAYOUT, ("egtp",)),
    "ep": (EXPERT_LAYOUT, ("ep",)),
    "expt_tp": (EXPERT_LAYOUT, ("etp",)),
    "tp_ep": (EXPERT_LAYOUT, ("etp", "ep")),
    "tp_ep_pp": (EXPERT_LAYOUT, ("etp", "ep", "pp")),
    "tp_ep_pp_with_egtp_remat": (EXPERT_LAYOUT, ("etp", "ep", "egtp", "pp")),
    "expt_dp": (EXPERT_LAYOUT, ("edp",)),
    "expt_dp_gtp_remat": (EXPERT_LAYOUT, ("egtp", "edp")),
    # One distributed-optimizer instance: the tp-ep-pp groups of every expert-data
    # index together, i.e. every rank.
    "intra_dist_opt": (EXPERT_LAYOUT, ("etp", "ep", "egtp", "edp", "pp")),
}

#: The kinds of :data:`GROUPS` that megatron-core has from release 0.19 on (its GTP
#: weight-rematerialisation groups and their data-parallel spans); before 0.19 they do not exist.
GTP_GROUPS = (
    "gtp_remat",
    "dp_gtp_remat",
    "dp_cp_gtp_remat",
    "expt_gtp_remat",
    "tp_ep_pp_with_egtp_remat",
    "expt_dp_gtp_remat",
)

#: The gloo groups megatron-core adds with ``create_gloo_process_groups=True`` (none with
#: ``gtp_remat_size > 1``, no expert one with ``expert_gtp_remat_size > 1``).
GLOO_GROUPS = ("dp_cp", "dp", "expt_dp")

#: Megatron's order tokens; the layouts rename some of them.
_TOKENS = ("tp", "cp", "ep", "dp", "pp", "gtp_remat")
_DENSE_NAMES = {"gtp_remat": "gtp"}
_EXPERT_NAMES = {"tp": "etp", "dp": "edp", "gtp_remat": "egtp"}
#: The order in which megatron-core appends tokens missing from an order string.
_COMPLETION = ("tp", "pp", "dp", "ep", "cp")

_PIP = "pip install megatron-core"


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class MegatronLayout:
    """The two factorizations of the ranks that megatron-core derives from its arguments.

    Attributes:
        world_size: Number of ranks.
        order: The dense order string as megatron-core completes it (lower case,
            the missing tokens, all of size 1, appended; ``gtp_remat`` in it when
            the layout has GTP axes).
        expert_order: The same for the expert layout (it differs from ``order``
            only in where ``gtp_remat`` sits).
        tp, cp, ep, pp: The sizes given; ``etp`` the expert tensor-parallel size
            (``tp`` when not given, as megatron-core derives it); ``gtp`` and
            ``egtp`` the GTP weight-rematerialisation sizes (megatron-core 0.19's
            ``gtp_remat_size`` and ``expert_gtp_remat_size``).
        dp: Data-parallel size, ``world_size / (tp * gtp * cp * pp)``.
        edp: Expert data-parallel size, ``world_size / (etp * ep * egtp * pp)``.
        dense: Topology over ``tp``, ``cp``, ``dp``, ``pp`` (slowest first, as
            proctopo lists axes; Megatron's order reversed), and ``gtp`` when GTP
            is in use (a size above 1, or ``gtp_remat`` named in the order).
        expert: Topology over ``etp``, ``ep``, ``edp``, ``pp`` (and ``egtp`` likewise).
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
    gtp: int = 1
    egtp: int = 1
    expert_order: str = ""


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


def _with_gtp(written: list[str], tokens: list[str], after: str) -> list[str]:
    """megatron-core 0.19's placing of ``gtp_remat``: right after ``after`` (else after ``tp``,
    else first), unless the order names it; it looks at the tokens as written."""
    if "gtp_remat" in written:
        return list(tokens)
    anchor = after if after in written else "tp"
    at = written.index(anchor) + 1 if anchor in written else 0
    return [*tokens[:at], "gtp_remat", *tokens[at:]]


def layout(
    world_size: int,
    *,
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    context_parallel_size: int = 1,
    expert_model_parallel_size: int = 1,
    expert_tensor_parallel_size: int | None = None,
    gtp_remat_size: int = 1,
    expert_gtp_remat_size: int = 1,
    order: str = "tp-cp-ep-dp-pp",
) -> MegatronLayout:
    """The dense and expert layouts megatron-core derives for these sizes (pure arithmetic).

    Args:
        world_size: Number of ranks.
        tensor_model_parallel_size, pipeline_model_parallel_size,
        context_parallel_size, expert_model_parallel_size,
        expert_tensor_parallel_size, gtp_remat_size, expert_gtp_remat_size,
        order: As megatron-core's ``initialize_model_parallel`` takes them (the
            GTP sizes and the ``gtp_remat`` token from megatron-core 0.19 on).

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
    >>> lay = layout(8, tensor_model_parallel_size=2, gtp_remat_size=2, expert_model_parallel_size=2,
    ...              expert_gtp_remat_size=2, expert_tensor_parallel_size=1)
    >>> lay.order, lay.expert_order
    ('tp-gtp_remat-cp-ep-dp-pp', 'tp-cp-ep-gtp_remat-dp-pp')
    >>> lay.dense.group_list(0, ["gtp"]), lay.expert.group_list(0, ["egtp"])
    ([0, 2], [0, 2])
    """
    written = parse_order(order)  # the core's parser: its errors and words
    tokens = [t.lower() for t in written]
    sizes = {
        "tp": tensor_model_parallel_size,
        "cp": context_parallel_size,
        "ep": expert_model_parallel_size,
        "pp": pipeline_model_parallel_size,
    }
    etp = tensor_model_parallel_size if expert_tensor_parallel_size is None else expert_tensor_parallel_size
    gtp, egtp = gtp_remat_size, expert_gtp_remat_size
    unknown = [t for t in tokens if t not in _TOKENS]
    if unknown:
        raise InvalidArgumentError(
            f"order {order!r} names {unknown[0]!r}; megatron-core's tokens are {', '.join(_TOKENS)}"
        )
    # The sizes go through the core first (sizes below 1, non-integers: its errors), then
    # dims_create derives each data-parallel size (a size that does not divide: its error).
    check_sizes({"gtp_remat": gtp, **{t: sizes[t] for t in ("pp", "ep", "cp", "tp")}})
    check_sizes({"etp": etp, "egtp": egtp})
    # The sizes each data-parallel size is derived from (a GTP size shown only when in use).
    dense_fixed = {"tp": sizes["tp"], "gtp_remat": gtp, "cp": sizes["cp"], "pp": sizes["pp"]}
    expert_fixed = {"etp": etp, "ep": sizes["ep"], "egtp_remat": egtp, "pp": sizes["pp"]}
    dense_fixed = {k: v for k, v in dense_fixed.items() if k != "gtp_remat" or v > 1}
    expert_fixed = {k: v for k, v in expert_fixed.items() if k != "egtp_remat" or v > 1}
    dp = _derive(world_size, dense_fixed, "dp")
    edp = _derive(world_size, expert_fixed, "expert dp")
    dense_sizes = {
        "tp": sizes["tp"],
        "cp": sizes["cp"],
        "ep": 1,
        "dp": dp,
        "pp": sizes["pp"],
        "gtp_remat": gtp,
    }
    expert_sizes = {"tp": etp, "cp": 1, "ep": sizes["ep"], "dp": edp, "pp": sizes["pp"], "gtp_remat": egtp}
    # megatron-core 0.19 always places a gtp_remat axis; it changes no group while both
    # GTP sizes are 1, and the layouts then leave it out (as megatron-core 0.16 does).
    gtp_axes = gtp > 1 or egtp > 1 or "gtp_remat" in tokens
    dense_tokens = _with_gtp(written, tokens, "tp") if gtp_axes else tokens
    expert_tokens = _with_gtp(written, tokens, "ep") if gtp_axes else tokens
    dense_order = _complete(order, dense_tokens, dense_sizes, "")
    expert_order = _complete(order, expert_tokens, expert_sizes, "expert ")
    # megatron-core checks the order string as given (before completing it).
    if not (order.endswith("pp") or sizes["pp"] == 1 or edp == dp):
        raise InvalidArgumentError(
            f"order {order!r} does not end with pp, so the dense and expert layouts need the same "
            f"data-parallel size, but world_size / ({' * '.join(dense_fixed)}) = {world_size} / "
            f"({' * '.join(map(str, dense_fixed.values()))}) = {dp} and world_size / "
            f"({' * '.join(expert_fixed)}) = {world_size} / ({' * '.join(map(str, expert_fixed.values()))}) "
            f"= {edp}"
        )
    # Each layout leaves out the token that is 1 in it by construction (ep in the dense
    # layout, cp in the expert one), so the two share only pp.
    dense = ProcessTopology.from_order(
        "-".join(t for t in dense_order if t != "ep"),
        rename=_DENSE_NAMES,
        **{t: v for t, v in dense_sizes.items() if t != "ep" and t in dense_order},
    )
    expert = ProcessTopology.from_order(
        "-".join(t for t in expert_order if t != "cp"),
        rename=_EXPERT_NAMES,
        **{t: v for t, v in expert_sizes.items() if t != "cp" and t in expert_order},
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
        gtp=gtp,
        egtp=egtp,
        expert_order="-".join(expert_order),
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
            megatron-core's ``ProcessGroupCollection`` (:data:`GROUPS`, without
            :data:`GTP_GROUPS` for megatron-core 0.16; plus ``embd`` and
            ``pos_embd``, ``None`` where this rank is in no such group), and
            ``dp_cp_gloo``, ``dp_gloo``, ``expt_dp_gloo`` when gloo groups were
            made.
        ranks: The global rank lists megatron-core keeps (``dp``, ``dp_cp``,
            ``cp``, ``mp``, ``tp``, ``pp``, ``ep``, ``embd``, ``pos_embd``, and
            from 0.19 ``gtp_remat``, ``expt_gtp_remat``), in its order; ``None``
            where this rank is in no such group.
        release: The megatron-core release series whose groups these are
            (``"0.16"`` or ``"0.19"``, see :data:`TESTED_VERSIONS`).
    """

    grid: ProcessGrid
    layout: MegatronLayout
    handles: MutableMapping[str, Any] = field(default_factory=dict)
    ranks: dict[str, list[int] | None] = field(default_factory=dict)
    release: str = _NEWEST

    def __post_init__(self) -> None:
        if not isinstance(self.handles, _Handles):
            self.handles = _Handles(self.grid, self.handles)

    @property
    def parent(self) -> Any:
        """The grid's parent group (the default group), asked of the grid's comm at each use:
        the handle of a kind whose group is every rank, such as ``intra_dist_opt``."""
        return self.grid._comm.parent()


class _Handles(MutableMapping[str, Any]):
    """Groups by kind, kept as the grid's builder keeps them: the parent group (the default
    group) is kept as a placeholder and asked of the comm when read, so that nothing here
    keeps it alive past ``torch.distributed.destroy_process_group()``."""

    def __init__(self, grid: ProcessGrid, handles: MutableMapping[str, Any]) -> None:
        self._grid = grid
        self._held: dict[str, Any] = {}
        self.update(handles)

    def held(self) -> dict[str, Any]:
        """The handles as kept (the builder's placeholder in place of the parent group)."""
        return dict(self._held)

    def __getitem__(self, kind: str) -> Any:
        return self._grid._builder.resolve(self._held[kind])

    def __setitem__(self, kind: str, handle: Any) -> None:
        self._held[kind] = self._grid._builder.hold(handle)

    def __delitem__(self, kind: str) -> None:
        del self._held[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def __repr__(self) -> str:
        return repr(self._held)


def _default_embedding_ranks(pp_ranks: list[int]) -> list[int]:
    # megatron-core's default: the first and the last pipeline stage.
    return [pp_ranks[0]] if len(pp_ranks) == 1 else [pp_ranks[0], pp_ranks[-1]]


def _default_position_embedding_ranks(pp_ranks: list[int]) -> list[int]:
    # megatron-core's default: the first pipeline stage.
    return [pp_ranks[0]]


def _embedding_family(
    lay: MegatronLayout, grid: Any, fn: Callable[[list[int]], Sequence[int]] | None, default: Any
) -> tuple[list[list[int]], list[int] | None]:
    """The rank lists of one embedding kind (one per pipeline group) and this rank's list.

    Pipeline groups are given in global ranks, stage by stage, as the grid places
    them (a reordered grid puts other global ranks at a stage than the layout's).
    """
    import numpy as np

    table = grid._builder.to_global(np.asarray(lay.dense.groups("pp")))
    rank = grid.global_rank
    if fn is None:  # the default stages: whole columns of the pipeline table, no Python loop per group
        cols = [0] if lay.pp == 1 or default is _default_position_embedding_ranks else [0, lay.pp - 1]
        family = table[:, cols].tolist()
        mine = default(grid.get_group_ranks("pp"))
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


def _kinds(lay: MegatronLayout, release: str) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """The group kinds of a release, each with the axes its layout has (in megatron-core's order)."""
    names = {None: set(lay.dense.axes), EXPERT_LAYOUT: set(lay.expert.axes)}
    return {
        kind: (name, tuple(a for a in axes if a in names[name]))
        for kind, (name, axes) in GROUPS.items()
        if release != "0.16" or kind not in GTP_GROUPS
    }


def _gloo_kinds(lay: MegatronLayout, gloo: bool) -> list[str]:
    """The gloo twins megatron-core makes: none under GTP, no expert one under expert GTP."""
    if not gloo or lay.gtp > 1:
        return []
    return [k for k in GLOO_GROUPS if not (k == "expt_dp" and lay.egtp > 1)]


def _create_kinds(
    mg: MegatronGroups,
    get_embedding_ranks: Callable[[list[int]], Sequence[int]] | None,
    get_position_embedding_ranks: Callable[[list[int]], Sequence[int]] | None,
    gloo: bool,
) -> None:
    grid, lay = mg.grid, mg.layout
    kinds = _kinds(lay, mg.release)
    # The axis groups came with the grid, in megatron-core's order; their gloo twins
    # follow (every rank takes part in each of these families), and the embedding
    # families, which leave out the middle stages, come last: each an explicit,
    # checked creation call.
    for kind, (name, axes) in kinds.items():
        mg.handles[kind] = grid.get_group(axes, layout=name)
    for kind in _gloo_kinds(lay, gloo):
        name, axes = kinds[kind]
        mg.handles[f"{kind}_gloo"] = grid.create_group(axes, layout=name, backend="gloo")
    kept = ("dp", "dp_cp", "cp", "mp", "tp", "pp", "ep", "gtp_remat", "expt_gtp_remat")
    for kind in (k for k in kept if k in kinds):
        name, axes = kinds[kind]
        mg.ranks[kind] = grid.get_group_ranks(axes, layout=name)
    for kind, fn, default in (
        ("embd", get_embedding_ranks, _default_embedding_ranks),
        ("pos_embd", get_position_embedding_ranks, _default_position_embedding_ranks),
    ):
        family, mine = _embedding_family(lay, grid, fn, default)
        mg.handles[kind] = grid.new_groups(family, name=kind)
        mg.ranks[kind] = mine


def _check_release(release: str | None) -> str:
    """A release of :data:`TESTED_VERSIONS`; ``None``: the installed megatron-core's, else the newest."""
    if release is None:
        version = installed_version()
        return _NEWEST if version is None else _release_of(version)
    if release not in TESTED_VERSIONS:
        raise InvalidArgumentError(
            f"release must be one of {', '.join(map(repr, TESTED_VERSIONS))} (the megatron-core releases "
            f"proctopo.megatron knows), got {release!r}"
        )
    return release


def create_groups(
    *,
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    context_parallel_size: int = 1,
    expert_model_parallel_size: int = 1,
    expert_tensor_parallel_size: int | None = None,
    gtp_remat_size: int = 1,
    expert_gtp_remat_size: int = 1,
    order: str = "tp-cp-ep-dp-pp",
    get_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    get_position_embedding_ranks: Callable[[list[int]], Sequence[int]] | None = None,
    create_gloo_process_groups: bool = True,
    group_creation: str = "auto",
    timeout: datetime.timedelta | float | None = None,
    comm: Comm | None = None,
    release: str | None = None,
    intra_node: Sequence[str | Sequence[str]] = (),
    intra_domain: Sequence[str | Sequence[str]] = (),
    reorder: bool = False,
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
        expert_tensor_parallel_size, gtp_remat_size, expert_gtp_remat_size,
        order, get_embedding_ranks, get_position_embedding_ranks,
        create_gloo_process_groups: As megatron-core's ``initialize_model_parallel``
            takes them.
        group_creation: The grid's strategy (``"auto"``, ``"local"``,
            ``"split"``, ``"global"``).
        timeout: Seconds (or a ``timedelta``) for the set-up and for the groups'
            collectives; ``None``: the grid's defaults.
        comm: The communication layer (default: ``torch.distributed``).
        release: Whose groups to make: ``"0.16"`` (megatron-core 0.16.x) or
            ``"0.19"`` (0.19.x, which adds the GTP groups, :data:`GTP_GROUPS`);
            ``None``: the installed megatron-core's release, or the newest when
            megatron-core is not installed.
        intra_node, intra_domain: Axes of the dense layout (``"tp"``, ``"cp"``,
            ``"dp"``, ``"pp"``, or sets of them) whose groups must each lie inside
            one host / one domain, checked on the placement the grid measures
            (:meth:`proctopo.ProcessGrid.check_placement`) before any group is made.
        reorder: Place the grid by host, as ``ProcessGrid(..., reorder=True)``
            does: which global rank takes which position of the dense layout
            (and so which tensor-parallel rank, pipeline stage, ...), so that the
            ``intra_node`` / ``intra_domain`` axes fall inside hosts / domains.
            Every group, rank list and megatron-core getter follows the mapping.

    Returns:
        The grid and this rank's groups and rank lists by Megatron's names.

    Raises:
        InvalidArgumentError: sizes or order that megatron-core refuses
            (:func:`layout`), GTP sizes or the ``gtp_remat`` token for release
            0.16, an unknown ``release``, or embedding rank lists that overlap
            (one rank in the lists of two pipeline groups).
        PlacementError: a group of an ``intra_node`` / ``intra_domain`` axis
            spans hosts / domains (raised on every rank).
        UnsupportedPeerError: ``release=None`` and the installed megatron-core
            is a release this module is not tested with (an ``ImportError``).
        GroupCreationError, TopologyMismatchError, GridTimeoutError: as
            :class:`proctopo.ProcessGrid` raises them.

    >>> from proctopo.testing import RecordingComm
    >>> comm = RecordingComm(rank=0, world_size=8)
    >>> mg = create_groups(tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
    ...                    expert_model_parallel_size=2, create_gloo_process_groups=False,
    ...                    group_creation="local", comm=comm, release="0.16")
    >>> mg.ranks["tp"], mg.ranks["pp"], mg.ranks["embd"], mg.handles["ep"].ranks
    ([0, 1], [0, 4], [0, 4], [0, 2])
    >>> mg = create_groups(tensor_model_parallel_size=2, gtp_remat_size=2, create_gloo_process_groups=False,
    ...                    comm=RecordingComm(rank=0, world_size=8), release="0.19")
    >>> mg.ranks["gtp_remat"], mg.handles["dp_cp_gtp_remat"].ranks, mg.handles["dp"].ranks
    ([0, 2], [0, 2, 4, 6], [0, 4])
    """
    from .comm import TorchComm
    from .grid import ProcessGrid

    release = _check_release(release)
    if comm is None:
        comm = TorchComm()
    lay = layout(
        comm.world_size(),
        tensor_model_parallel_size=tensor_model_parallel_size,
        pipeline_model_parallel_size=pipeline_model_parallel_size,
        context_parallel_size=context_parallel_size,
        expert_model_parallel_size=expert_model_parallel_size,
        expert_tensor_parallel_size=expert_tensor_parallel_size,
        gtp_remat_size=gtp_remat_size,
        expert_gtp_remat_size=expert_gtp_remat_size,
        order=order,
    )
    if release == "0.16" and ((lay.gtp, lay.egtp) != (1, 1) or "gtp_remat" in lay.order):
        raise InvalidArgumentError(
            f"gtp_remat_size={gtp_remat_size}, expert_gtp_remat_size={expert_gtp_remat_size}, order "
            f"{order!r}: GTP weight rematerialisation (a GTP size above 1, the gtp_remat token) comes with "
            "megatron-core 0.19; megatron-core 0.16 has neither"
        )
    kinds = _kinds(lay, release)
    specs: list[Any] = [axes if name is None else (name, axes) for name, axes in kinds.values()]
    grid = ProcessGrid(
        lay.dense,
        group_creation=group_creation,
        timeout=timeout,
        groups=specs,
        layouts={EXPERT_LAYOUT: lay.expert},
        comm=comm,
        intra_node=intra_node,
        intra_domain=intra_domain,
        reorder=reorder,
    )
    mg = MegatronGroups(grid=grid, layout=lay, release=release)
    try:
        _create_kinds(
            mg,
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
        "a second communicator with the ranks of the dp-cp group, which proctopo would share; "
        "megatron-core 0.19 has no such option",
    ),
    (
        "rank_offset",
        lambda v: v == 0,
        "megatron-core 0.19's groups laid over the ranks from rank_offset on instead of the whole world",
    ),
    (
        "local_world_size",
        lambda v: v is None,
        "megatron-core 0.19's groups laid over local_world_size ranks instead of the whole world",
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
            # megatron-core warns at import when Transformer Engine and Apex (and, from 0.19,
            # absl-py) are missing.
            warnings.filterwarnings("ignore", message=r".*Transformer Engine and Apex are not installed.*")
            warnings.filterwarnings("ignore", message=r"absl\.logging is not installed.*")
            return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"proctopo.megatron.{what} needs megatron-core: {_PIP} ({exc})") from exc


def _parallel_state(what: str) -> Any:
    """megatron.core.parallel_state, or an ImportError that says how to get it."""
    return _megatron_core("megatron.core.parallel_state", what)


def installed_version() -> str | None:
    """The version of megatron-core, or ``None`` when it is not installed.

    Once ``megatron.core`` is imported, its own ``package_info`` says it (a source
    checkout has no package metadata); before, the installed distribution's
    metadata does, read without importing megatron-core.

    >>> installed_version() is None or installed_version().count(".") >= 2
    True
    """
    info = sys.modules.get("megatron.core.package_info")
    if info is not None and isinstance(getattr(info, "__version__", None), str):
        return str(info.__version__)
    import importlib.metadata

    try:
        return importlib.metadata.version("megatron-core")
    except importlib.metadata.PackageNotFoundError:
        return None


def _unsupported(version: str | None, problem: str = "") -> UnsupportedPeerError:
    """The refusal of the installed megatron-core: its version, or ``problem`` with it."""
    return UnsupportedPeerError.of(
        "megatron-core",
        version or "of unknown version (no package metadata, no megatron.core.package_info)",
        module=__name__,
        tested=list(TESTED_VERSIONS.values()),
        problem=problem,
        series=list(TESTED_VERSIONS),
        requires=_REQUIRES,
        instead="call megatron.core.parallel_state.initialize_model_parallel itself",
        why=f"Each release moves globals of megatron.core.parallel_state that {__name__} fills, "
        "and it fills none it does not know.",
    )


def _release_of(version: str | None) -> str:
    """The release series of a tested megatron-core version ("0.19" for "0.19.2").

    Raises UnsupportedPeerError for any other version, or for none.

    A local version label is taken: megatron-core's ``package_info`` appends the git commit
    when it sits in a git checkout ("0.19.2+6304342").
    """
    match = re.fullmatch(r"(\d+)\.(\d+)\.\d+(\+[0-9A-Za-z.]+)?", version or "")
    series = f"{match[1]}.{match[2]}" if match else ""
    if series in TESTED_VERSIONS:
        return series
    raise _unsupported(version)


# The module globals of megatron.core.parallel_state that initialize_model_parallel sets:
# global -> (what it holds, the kind of group). "group": this rank's group of that kind,
# "ranks": its global rank list, None: the value None.
_Source = tuple[Any, str]

_GLOBALS_COMMON: dict[str, _Source] = {
    "_DATA_PARALLEL_GROUP_WITH_CP": ("group", "dp_cp"),
    "_DATA_PARALLEL_GROUP_WITH_CP_GLOO": ("group", "dp_cp_gloo"),
    "_DATA_PARALLEL_GLOBAL_RANKS_WITH_CP": ("ranks", "dp_cp"),
    # One distributed-optimizer instance: the partial groups are the whole ones.
    "_INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP": ("group", "dp_cp"),
    "_INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP_GLOO": ("group", "dp_cp_gloo"),
    "_DATA_PARALLEL_GROUP": ("group", "dp"),
    "_DATA_PARALLEL_GROUP_GLOO": ("group", "dp_gloo"),
    "_DATA_PARALLEL_GLOBAL_RANKS": ("ranks", "dp"),
    "_CONTEXT_PARALLEL_GROUP": ("group", "cp"),
    "_CONTEXT_PARALLEL_GLOBAL_RANKS": ("ranks", "cp"),
    "_MODEL_PARALLEL_GROUP": ("group", "mp"),
    "_MODEL_PARALLEL_GLOBAL_RANKS": ("ranks", "mp"),
    "_TENSOR_MODEL_PARALLEL_GROUP": ("group", "tp"),
    "_TENSOR_MODEL_PARALLEL_GLOBAL_RANKS": ("ranks", "tp"),
    "_PIPELINE_MODEL_PARALLEL_GROUP": ("group", "pp"),
    "_PIPELINE_GLOBAL_RANKS": ("ranks", "pp"),
    "_EMBEDDING_GROUP": ("group", "embd"),
    "_EMBEDDING_GLOBAL_RANKS": ("ranks", "embd"),
    "_POSITION_EMBEDDING_GROUP": ("group", "pos_embd"),
    "_POSITION_EMBEDDING_GLOBAL_RANKS": ("ranks", "pos_embd"),
    "_TENSOR_AND_DATA_PARALLEL_GROUP_WITH_CP": ("group", "tp_dp_cp"),
    "_TENSOR_AND_DATA_PARALLEL_GROUP": ("group", "tp_dp"),
    "_TENSOR_AND_CONTEXT_PARALLEL_GROUP": ("group", "tp_cp"),
    "_EXPERT_MODEL_PARALLEL_GROUP": ("group", "ep"),
    "_EXPERT_MODEL_PARALLEL_RANKS": ("ranks", "ep"),
    "_EXPERT_TENSOR_PARALLEL_GROUP": ("group", "expt_tp"),
    "_EXPERT_TENSOR_AND_MODEL_PARALLEL_GROUP": ("group", "tp_ep"),
    "_EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP": ("group", "tp_ep_pp"),
    "_EXPERT_DATA_PARALLEL_GROUP": ("group", "expt_dp"),
    "_EXPERT_DATA_PARALLEL_GROUP_GLOO": ("group", "expt_dp_gloo"),
    "_INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP": ("group", "expt_dp"),
    "_INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP_GLOO": ("group", "expt_dp_gloo"),
    "_INTRA_DISTRIBUTED_OPTIMIZER_INSTANCE_GROUP": ("group", "intra_dist_opt"),
}

#: The globals written, per release series.
_GLOBALS: dict[str, dict[str, _Source]] = {
    "0.16": {**_GLOBALS_COMMON, "_DATA_PARALLEL_GROUP_WITH_CP_AG": (None, "")},
    "0.19": {
        **_GLOBALS_COMMON,
        "_GTP_WEIGHT_REMAT_GROUP": ("group", "gtp_remat"),
        "_GTP_WEIGHT_REMAT_GLOBAL_RANKS": ("ranks", "gtp_remat"),
        "_DATA_PARALLEL_GROUP_WITH_GTP_REMAT": ("group", "dp_gtp_remat"),
        "_DATA_PARALLEL_GROUP_WITH_CP_WITH_GTP_REMAT": ("group", "dp_cp_gtp_remat"),
        "_INTRA_PARTIAL_DATA_PARALLEL_GROUP_WITH_CP_WITH_GTP_REMAT": ("group", "dp_cp_gtp_remat"),
        "_EXPERT_GTP_WEIGHT_REMAT_GROUP": ("group", "expt_gtp_remat"),
        "_EXPERT_GTP_WEIGHT_REMAT_GLOBAL_RANKS": ("ranks", "expt_gtp_remat"),
        "_EXPERT_TENSOR_MODEL_PIPELINE_PARALLEL_GROUP_WITH_EGTP": ("group", "tp_ep_pp_with_egtp_remat"),
        "_EXPERT_DATA_PARALLEL_GROUP_WITH_GTP_REMAT": ("group", "expt_dp_gtp_remat"),
        "_INTRA_PARTIAL_EXPERT_DATA_PARALLEL_GROUP_WITH_GTP_REMAT": ("group", "expt_dp_gtp_remat"),
    },
}

#: Kinds whose globals megatron-core sets on member ranks only.
_MEMBERS_ONLY = ("embd", "pos_embd")

#: What else of parallel_state proctopo reads, writes or calls, in every release.
_ALSO_USED = (
    "_VIRTUAL_PIPELINE_MODEL_PARALLEL_RANK",
    "_VIRTUAL_PIPELINE_MODEL_PARALLEL_WORLD_SIZE",
    "_GLOBAL_MEMORY_BUFFER",
    "_global_process_group_list",
    "_set_global_memory_buffer",
    "destroy_model_parallel",
)


def _check_parallel_state(ps: Any, release: str, version: str | None) -> None:
    """Refuse, naming them, the names proctopo uses that the installed parallel_state lacks."""
    missing = [n for n in (*_GLOBALS[release], *_ALSO_USED) if not hasattr(ps, n)]
    if missing:
        raise _unsupported(
            version,
            f"its megatron.core.parallel_state has no {', '.join(missing)} (megatron-core "
            f"{TESTED_VERSIONS[release]}'s has them, and {__name__} sets or calls them)",
        )


def _state_values(mg: MegatronGroups, vpp: int | None) -> dict[str, Any]:
    """Every global megatron-core's initialize_model_parallel sets on this rank, with its value."""
    values: dict[str, Any] = {}
    if vpp is not None:
        values["_VIRTUAL_PIPELINE_MODEL_PARALLEL_RANK"] = 0
        values["_VIRTUAL_PIPELINE_MODEL_PARALLEL_WORLD_SIZE"] = vpp
    for name, (what, kind) in _GLOBALS[mg.release].items():
        if kind in _MEMBERS_ONLY and mg.ranks[kind] is None:
            continue
        values[name] = None if what is None else mg.handles.get(kind) if what == "group" else mg.ranks[kind]
    return values


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
    *,
    gtp_remat_size: int = 1,
    expert_gtp_remat_size: int = 1,
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
    rank_offset: int = 0,
    local_world_size: int | None = None,
    group_creation: str = "auto",
    timeout: datetime.timedelta | float | None = None,
    intra_node: Sequence[str | Sequence[str]] = (),
    intra_domain: Sequence[str | Sequence[str]] = (),
    reorder: bool = False,
) -> MegatronGroups:
    """megatron-core's ``initialize_model_parallel``, with each distinct group created once.

    Takes megatron-core's arguments (same names and defaults, those of 0.16.x and
    of 0.19.x) and leaves ``megatron.core.parallel_state`` answering every getter
    as its own call would. A collective over the whole world, like megatron-core's.

    The first nine arguments, whose places are the same in every tested release,
    may be given by position; the others only by name (0.19 inserted
    ``gtp_remat_size`` and ``expert_gtp_remat_size`` after the ninth, so a later
    position means different arguments in different releases).

    Before anything is created or set, it reads the installed megatron-core's
    version and refuses a release it is not tested with (:data:`TESTED_VERSIONS`),
    and checks that the installed ``parallel_state`` has every global it sets.

    Args:
        tensor_model_parallel_size ... local_world_size: As megatron-core
            takes them. The options proctopo does not build must keep their
            default: ``pipeline_model_parallel_comm_backend``, ``use_sharp``,
            ``hierarchical_context_parallel_sizes``, ``hybrid_context_parallel``,
            ``num_distributed_optimizer_instances``, ``nccl_communicator_config_path``,
            ``high_priority_stream_groups``, ``sharp_enabled_group``,
            ``create_all_gather_group`` (0.16 only), ``rank_offset`` and
            ``local_world_size`` (0.19). ``gtp_remat_size`` and
            ``expert_gtp_remat_size`` (and the ``gtp_remat`` order token) need
            megatron-core 0.19.
        group_creation: The grid's strategy: ``"auto"`` (default), ``"local"``,
            ``"split"`` or ``"global"`` (see :mod:`proctopo.groups`).
        timeout: Seconds (or a ``timedelta``) for the set-up and the groups'
            collectives; ``None`` takes ``distributed_timeout_minutes``, as
            megatron-core does for its groups.
        intra_node, intra_domain: Dense-layout axes whose groups must each lie
            inside one host / one domain, as :func:`create_groups` takes them;
            checked on the measured placement before any group is made or any
            state is set.
        reorder: As :func:`create_groups` takes it: the grid placed by host, every
            group and getter following the mapping.

    Returns:
        The groups (their grid, layouts, handles and rank lists).

    Raises:
        ImportError: megatron-core is not installed.
        UnsupportedPeerError: megatron-core is a release proctopo is not
            tested with (the message names the tested ones), or its
            ``parallel_state`` lacks a global proctopo sets (the message names
            each missing one). Also an ``ImportError``.
        InvalidArgumentError: an unsupported option was set (the message names
            it), ``virtual_pipeline_model_parallel_size`` without pipeline
            parallelism, GTP with megatron-core 0.16, or sizes and order
            megatron-core refuses (:func:`layout`).
        GridStateError: the parallel state is already initialised (call
            :func:`destroy_model_parallel` first).
        GroupCreationError: ``torch.distributed`` is not initialised, or a group
            could not be created.
        PlacementError: a group of an ``intra_node`` / ``intra_domain`` axis
            spans hosts / domains (raised on every rank; nothing is set).
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
    version = installed_version()
    release = _release_of(version)
    _check_parallel_state(ps, release, version)
    if _STATE is not None or ps._DATA_PARALLEL_GROUP is not None or ps._GLOBAL_MEMORY_BUFFER is not None:
        raise GridStateError(
            "megatron.core.parallel_state is already initialised; call destroy_model_parallel() first"
        )
    mg = create_groups(
        tensor_model_parallel_size=tensor_model_parallel_size,
        pipeline_model_parallel_size=pipeline_model_parallel_size,
        context_parallel_size=context_parallel_size,
        expert_model_parallel_size=expert_model_parallel_size,
        expert_tensor_parallel_size=expert_tensor_parallel_size,
        gtp_remat_size=gtp_remat_size,
        expert_gtp_remat_size=expert_gtp_remat_size,
        order=order,
        get_embedding_ranks=get_embedding_ranks,
        get_position_embedding_ranks=get_position_embedding_ranks,
        create_gloo_process_groups=create_gloo_process_groups,
        group_creation=group_creation,
        timeout=seconds,
        release=release,
        intra_node=intra_node,
        intra_domain=intra_domain,
        reorder=reorder,
    )
    try:
        _fill(ps, mg, virtual_pipeline_model_parallel_size)
    except BaseException:
        mg.grid.destroy()  # nothing was set (the values are computed before any is)
        raise
    _STATE = mg
    return mg


def _fill(ps: Any, mg: MegatronGroups, vpp: int | None) -> None:
    """Set megatron-core's module globals as its initialize_model_parallel sets them, all at once."""
    values = _state_values(mg, vpp)  # computed whole first: nothing below can fail half-way
    # megatron-core lists the groups of this rank for update_pg_timeout (None: the default group).
    listed = list(ps._global_process_group_list or [None])
    parent = mg.grid._comm.parent()
    seen: set[int] = set()
    for handle in mg.handles.values():
        if handle is not None and handle is not parent and id(handle) not in seen:
            seen.add(id(handle))
            listed.append(handle)
    for name, value in values.items():
        setattr(ps, name, value)
    ps._global_process_group_list = listed
    ps._set_global_memory_buffer()


def destroy_model_parallel() -> None:
    """Destroy the groups :func:`initialize_model_parallel` created and reset megatron-core's state.

    Frees exactly what proctopo created (``grid.destroy()``; never the default
    group), then resets ``megatron.core.parallel_state`` as megatron-core's own
    ``destroy_model_parallel`` does. Calling it again does nothing more.
    Last, it drops the default group from the default arguments of
    ``torch.distributed`` functions that were imported after ``init_process_group()``
    (by importing megatron-core), so that nothing keeps the default group alive past
    ``torch.distributed.destroy_process_group()``.

    Raises:
        ImportError: megatron-core is not installed.
    """
    global _STATE
    ps = _parallel_state("destroy_model_parallel")
    mg, _STATE = _STATE, None
    if mg is not None:
        mg.grid.destroy()
        # The handles as kept, readable after destroy_process_group() too; the parent
        # group, while it lives, is among them (kept as the builder's placeholder).
        held = mg.handles.held() if isinstance(mg.handles, _Handles) else dict(mg.handles)
        ours = {id(g) for g in held.values() if g is not None}
        parent = mg.grid._comm.parent()
        if parent is not None:
            ours.add(id(parent))
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
    _unbind_default_group()


def _unbind_default_group() -> None:
    """Replace the default group where torch's own signatures bound it, with ``None``.

    Several signatures of ``torch.distributed`` default a group argument to
    ``group.WORLD`` (the ten functions of ``torch.distributed.nn.functional``,
    ``ShardedGradScaler``, ``_broadcast_object`` beside ``ZeroRedundancyOptimizer``, ...). Python
    evaluates a default once, when the module is imported: imported before
    ``init_process_group()`` the default is ``None``, imported after it the default is
    the default group itself, kept by the function for the life of the process.
    Importing megatron-core imports ``torch.distributed.nn.functional`` (through
    ``megatron.core.utils`` -> ``torch.distributed._tensor`` -> ``torch.distributed.
    checkpoint`` -> ``torch.distributed._shard``), and proctopo imports megatron-core
    when the job calls :func:`initialize_model_parallel`, after ``init_process_group()``.
    The default group would then outlive ``destroy_process_group()`` until interpreter
    shutdown, where a gloo worker thread can abort the process. These references are
    invisible to ``gc.get_referrers``: a tuple of defaults holding no object the
    collector tracks (a ``ProcessGroup`` is not tracked) is untracked by it.

    ``None`` is the value those defaults have when the module is imported first, and
    every one of these functions reads ``None`` as the default group, then the one that
    exists at the call. torch writes no other group as a default, so any group found in
    a default of a loaded ``torch.distributed`` module is such a captured default group.
    Only the functions and classes' methods of ``torch.distributed`` found in its loaded
    modules are looked at.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available():
        return
    group_type = dist.ProcessGroup

    def is_group(value: Any) -> bool:
        # type() rather than isinstance(): isinstance() reads __class__, which some of
        # torch's module globals answer with a deprecation warning (torch.distributed.reduce_op).
        return issubclass(type(value), group_type)

    def is_torch_distributed(name: object) -> bool:
        return isinstance(name, str) and f"{name}.".startswith("torch.distributed.")

    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if not is_torch_distributed(name) or not issubclass(type(module), types.ModuleType):
            continue
        for value in list(vars(module).values()):
            is_class = issubclass(type(value), type)
            if not (is_class or type(value) is types.FunctionType) or id(value) in seen:
                continue
            seen.add(id(value))
            if not is_torch_distributed(value.__module__):
                continue
            for member in list(vars(value).values()) if is_class else [value]:
                func = member.__func__ if type(member) in (staticmethod, classmethod) else member
                while type(func) is types.FunctionType:
                    defaults, kwdefaults = func.__defaults__ or (), func.__kwdefaults__ or {}
                    if any(is_group(v) for v in defaults):
                        func.__defaults__ = tuple(None if is_group(v) else v for v in defaults)
                    if any(is_group(v) for v in kwdefaults.values()):
                        func.__kwdefaults__ = {k: None if is_group(v) else v for k, v in kwdefaults.items()}
                    func = getattr(func, "__wrapped__", None)  # functools.wraps decorators


#: Every field of megatron-core's ProcessGroupCollection (0.16 and 0.19): the kind of
#: group use_mpu_process_groups() puts in it after megatron-core's own call, or None for
#: a field it leaves None here (no hierarchical context parallelism, one distributed-
#: optimizer instance, no separate all-gather groups).
_COLLECTION: dict[str, str | None] = {
    "tp": "tp",
    "pp": "pp",
    "mp": "mp",
    "embd": "embd",
    "pos_embd": "pos_embd",
    "cp": "cp",
    "tp_cp": "tp_cp",
    "hcp": None,
    "ep": "ep",
    "expt_tp": "expt_tp",
    "tp_ep": "tp_ep",
    "tp_ep_pp": "tp_ep_pp",
    "tp_ep_pp_with_egtp_remat": "tp_ep_pp_with_egtp_remat",
    "tp_dp_cp": "tp_dp_cp",
    "dp": "dp",
    "dp_cp": "dp_cp",
    "dp_cp_gtp_remat": "dp_cp_gtp_remat",
    "dp_cp_ag": None,
    "gtp_remat": "gtp_remat",
    "expt_gtp_remat": "expt_gtp_remat",
    "expt_dp": "expt_dp",
    "expt_dp_gtp_remat": "expt_dp_gtp_remat",
    "expt_dp_ag": None,
    "intra_dp_cp": "dp_cp",
    "intra_expt_dp": "expt_dp",
    "inter_dist_opt": None,
    "intra_dist_opt": "intra_dist_opt",
}


def process_groups(required_pgs: Sequence[str] | None = None) -> Any:
    """megatron-core's ``ProcessGroupCollection`` of the groups of :func:`initialize_model_parallel`.

    Every field is set as ``ProcessGroupCollection.use_mpu_process_groups()``
    sets it after megatron-core's own call: ``hcp``, ``inter_dist_opt`` (and in
    0.19 ``dp_cp_ag``, ``expt_dp_ag``) are ``None`` (no hierarchical context
    parallelism, one distributed-optimizer instance, no separate all-gather
    groups), ``embd``/``pos_embd`` are ``None`` on ranks outside those groups,
    ``intra_dp_cp`` is ``dp_cp`` and ``intra_expt_dp`` is ``expt_dp``.

    Args:
        required_pgs: Only these fields (default: all of them).

    Raises:
        ImportError: megatron-core is not installed.
        UnsupportedPeerError: its collection has a field proctopo does not
            know how to fill (named). Also an ``ImportError``.
        GridStateError: :func:`initialize_model_parallel` has not run (or was
            destroyed).
        InvalidArgumentError: ``required_pgs`` names a field the collection does
            not have.
    """
    import dataclasses

    _parallel_state("process_groups")
    config = _megatron_core("megatron.core.process_groups_config", "process_groups")

    mg = _STATE
    if mg is None:
        raise GridStateError(
            "no Megatron groups: call proctopo.megatron.initialize_model_parallel(...) first"
        )
    fields = [f.name for f in dataclasses.fields(config.ProcessGroupCollection)]
    unknown_fields = [f for f in fields if f not in _COLLECTION]
    if unknown_fields:
        raise _unsupported(
            installed_version(),
            f"its ProcessGroupCollection has the field(s) {', '.join(unknown_fields)}, which "
            f"{__name__} does not know how to fill",
        )
    names = fields if required_pgs is None else list(required_pgs)
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise InvalidArgumentError(
            f"ProcessGroupCollection has no field(s) {unknown}; its fields are {fields}"
        )
    h = mg.handles
    values = {n: (None if _COLLECTION[n] is None else h.get(str(_COLLECTION[n]))) for n in names}
    return config.ProcessGroupCollection(**values)
