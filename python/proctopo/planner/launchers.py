"""Launcher output: a plan's best layout in a stack's own terms, ready to paste.

- ``megatron``: Megatron-LM's arguments (``--tensor-model-parallel-size`` ...; the
  order through ``--use-tp-pp-dp-mapping`` where Megatron-LM's arguments can say it),
  and the ``initialize_model_parallel`` call that takes any order.
- ``torchtitan``: torchtitan's ``[parallelism]`` section, and the same fields as
  ``--parallelism.<field>`` overrides (torchtitan 0.3.0's command line).
- ``deepspeed``: the DeepSpeed topology constructor.
- ``env``: shell ``export`` lines: proctopo's ``name=size`` words and order string,
  and the sizes by Megatron's short names.

Each says what the stack cannot express (torchtitan's fixed mesh order, an order
Megatron-LM's arguments cannot name) in a comment, with the plan's rank of what it
does instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError
from ..topology import MEGATRON_TO_DEEPSPEED, ProcessTopology
from .inputs import kind_of
from .results import Layout, Plan

if TYPE_CHECKING:
    from ..megatron import MegatronLayout

__all__ = ["EMITTERS", "emit"]

#: Megatron's default order, and the one ``--use-tp-pp-dp-mapping`` selects.
MEGATRON_DEFAULT_ORDER = "tp-cp-ep-dp-pp"
MEGATRON_TP_PP_DP_ORDER = "tp-cp-ep-pp-dp"
#: torchtitan's mesh, slowest first (``ParallelDims``); it does not take another order.
TORCHTITAN_ORDER = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
_TORCHTITAN_KIND = {"pipe": "pp", "data": "dp_replicate", "fsdp": "dp_shard", "context": "cp", "tensor": "tp"}
_TORCHTITAN_FIELD = {
    "dp_replicate": "data_parallel_replicate_degree",
    "dp_shard": "data_parallel_shard_degree",
    "cp": "context_parallel_degree",
    "tp": "tensor_parallel_degree",
    "pp": "pipeline_parallel_degree",
}
_MEGATRON_TOKEN = {"tensor": "tp", "context": "cp", "expert": "ep", "data": "dp", "pipe": "pp"}


def _by_kind(plan: Plan, names: Mapping[str, str], stack: str) -> dict[str, str]:
    """Each axis of size > 1 mapped to the stack's dimension through its kind; one axis per dimension."""
    out: dict[str, str] = {}
    for axis, size in plan.sizes.items():
        kind = kind_of(axis)
        dim = names.get(kind or "")
        if dim is None:
            if size > 1:
                raise InvalidArgumentError(
                    f"{stack} has no dimension for axis {axis!r} ({kind or 'of no known kind'}); "
                    f"its dimensions are {', '.join(dict.fromkeys(names.values()))}"
                )
            continue
        if dim in out.values() and size > 1:
            raise InvalidArgumentError(
                f"{stack} has one {dim} dimension, and the plan has two axes of that kind "
                f"({next(a for a, d in out.items() if d == dim)!r} and {axis!r})"
            )
        out[axis] = dim
    return out


def _megatron_sizes(plan: Plan) -> tuple[dict[str, int], str]:
    """Megatron's sizes and order string of the best layout."""
    best = plan.best
    if plan.convention == "megatron":
        sizes = {t: plan.sizes.get(t, 1) for t in ("tp", "cp", "ep", "pp")}
        sizes["etp"] = plan.sizes.get("etp", sizes["tp"])
        return sizes, best.megatron_order
    tokens = _by_kind(plan, _MEGATRON_TOKEN, "Megatron")
    if plan.sizes.get(next((a for a, t in tokens.items() if t == "ep"), ""), 1) > 1:
        raise InvalidArgumentError(
            "the plan reads ep as an axis of its own (one grid); Megatron's ep subdivides dp x cp: "
            "plan with --megatron (or a Megatron order string) to emit Megatron's arguments"
        )
    sizes = {t: 1 for t in ("tp", "cp", "ep", "pp")}
    for axis, token in tokens.items():
        if token != "dp":
            sizes[token] = plan.sizes[axis]
    sizes["etp"] = sizes["tp"]
    order = "-".join(tokens[a] for a in reversed(best.order) if a in tokens)
    return sizes, order


def _megatron_layout(world: int, sizes: Mapping[str, int], order: str) -> MegatronLayout:
    """proctopo.megatron's layout for megatron-style sizes (tp, pp, cp, ep, etp) and order."""
    from ..megatron import layout

    return layout(
        world,
        tensor_model_parallel_size=sizes["tp"],
        pipeline_model_parallel_size=sizes["pp"],
        context_parallel_size=sizes["cp"],
        expert_model_parallel_size=sizes["ep"],
        expert_tensor_parallel_size=sizes["etp"],
        order=order,
    )


def megatron(plan: Plan) -> str:
    """Megatron-LM's arguments and megatron-core's ``initialize_model_parallel`` call for the best layout."""
    sizes, order = _megatron_sizes(plan)
    lay = _megatron_layout(plan.world_size, sizes, order)
    args = [
        f"--tensor-model-parallel-size {sizes['tp']}",
        f"--pipeline-model-parallel-size {sizes['pp']}",
        f"--context-parallel-size {sizes['cp']}",
        f"--expert-model-parallel-size {sizes['ep']}",
        f"--expert-tensor-parallel-size {sizes['etp']}",
    ]
    same = {
        o
        for o in (MEGATRON_DEFAULT_ORDER, MEGATRON_TP_PP_DP_ORDER)
        if _same_layouts(plan.world_size, sizes, o, lay)
    }
    lines = [f"# Megatron-LM arguments for the best layout, order {order} (dp {lay.dp}, expert dp {lay.edp})"]
    if MEGATRON_DEFAULT_ORDER in same:
        pass
    elif MEGATRON_TP_PP_DP_ORDER in same:
        args.append("--use-tp-pp-dp-mapping")
    else:
        lines.append(
            f"# Megatron-LM's arguments give the orders {MEGATRON_DEFAULT_ORDER} and (with "
            f"--use-tp-pp-dp-mapping) {MEGATRON_TP_PP_DP_ORDER} only; for {order} call "
            "initialize_model_parallel as below"
        )
    lines.append(" ".join(args))
    call = ", ".join(
        [
            f"tensor_model_parallel_size={sizes['tp']}",
            f"pipeline_model_parallel_size={sizes['pp']}",
            f"context_parallel_size={sizes['cp']}",
            f"expert_model_parallel_size={sizes['ep']}",
            f"expert_tensor_parallel_size={sizes['etp']}",
            f"order={order!r}",
        ]
    )
    lines.append("# megatron-core (or proctopo.megatron, the same groups each created once):")
    lines.append(f"megatron.core.parallel_state.initialize_model_parallel({call})")
    return "\n".join(lines)


def _placing(topo: ProcessTopology) -> tuple[tuple[str, int], ...]:
    """The axes of size > 1 with their sizes, slowest first: what places the ranks.

    A size-1 axis holds every rank alone wherever it sits in the order, so two layouts
    have the same groups over every axis exactly when these agree.
    """
    return tuple((axis, dim) for axis, dim in zip(topo.axes, topo.dims) if dim > 1)


def _same_layouts(world: int, sizes: Mapping[str, int], order: str, lay: MegatronLayout) -> bool:
    """Whether megatron-core's layouts for ``order`` give the groups of ``lay``'s, over every axis."""
    try:
        other = _megatron_layout(world, sizes, order)
    except InvalidArgumentError:
        return False
    return _placing(other.dense) == _placing(lay.dense) and _placing(other.expert) == _placing(lay.expert)


def _rank_of(plan: Plan, order: tuple[str, ...]) -> str:
    moving = tuple(a for a in order if plan.sizes.get(a, 1) > 1)
    for lay in plan.layouts:
        if tuple(a for a in lay.order if plan.sizes.get(a, 1) > 1) == moving:
            return f"#{lay.rank}"
    return f"not among the {len(plan.layouts)} kept"


def torchtitan(plan: Plan) -> str:
    """torchtitan's ``[parallelism]`` section (and command-line overrides) for the plan's sizes."""
    if plan.convention == "megatron":
        raise InvalidArgumentError(
            "the plan reads its axes as Megatron's; torchtitan's are dp_replicate, dp_shard, cp, tp, pp: "
            "plan with those names to emit torchtitan's configuration"
        )
    dims = _by_kind(plan, _TORCHTITAN_KIND, "torchtitan")
    degree = dict.fromkeys(TORCHTITAN_ORDER, 1)
    for axis, dim in dims.items():
        degree[dim] = plan.sizes[axis]
    fields = [(_TORCHTITAN_FIELD[d], degree[d]) for d in ("dp_replicate", "dp_shard", "cp", "tp", "pp")]
    by_dim = {d: a for a, d in dims.items()}
    mesh = tuple(by_dim.get(d, d) for d in TORCHTITAN_ORDER)
    best = tuple(a for a in plan.best.order if plan.sizes.get(a, 1) > 1)
    fixed = tuple(a for a in mesh if plan.sizes.get(a, 1) > 1)
    lines = [
        "# torchtitan: the [parallelism] section of a job configuration",
        "[parallelism]",
        *(f"{name} = {value}" for name, value in fields),
        "# torchtitan 0.3.0 takes the same fields on its command line:",
        "# " + " ".join(f"--parallelism.{name} {value}" for name, value in fields),
    ]
    if fixed == best:
        lines.append("# torchtitan's mesh order (pp, dp_replicate, dp_shard, cp, tp) is the plan's best")
    else:
        lines.append(
            "# torchtitan lays its mesh out as pp, dp_replicate, dp_shard, cp, tp (slowest first), which the "
            f"plan ranks {_rank_of(plan, mesh)}; the best is {plan.best.megatron_order} (fastest first): "
            "build that topology with proctopo (ProcessTopology, ProcessGrid) to use it"
        )
    return "\n".join(lines)


def deepspeed(plan: Plan) -> str:
    """The DeepSpeed topology of the best layout (``deepspeed.runtime.pipe.topology``)."""
    best = plan.best
    names = [MEGATRON_TO_DEEPSPEED.get(a, a) for a in best.order]
    if len(set(names)) != len(names):
        names = list(best.order)
    dims = list(best.dims)
    size = dict(zip(names, dims))
    lines = ["from deepspeed.runtime.pipe.topology import PipeModelDataParallelTopology, ProcessTopology"]
    if names == ["pipe", "data", "model"]:
        lines.append(
            f"topology = PipeModelDataParallelTopology(num_pp={size['pipe']}, num_mp={size['model']}, "
            f"num_dp={size['data']})"
        )
    else:
        lines.append(f"topology = ProcessTopology(axes={names!r}, dims={dims!r})")
    if plan.convention == "megatron":
        lines.insert(0, "# Megatron's dense layout (DeepSpeed has no expert layout)")
    return "\n".join(lines)


def env(plan: Plan) -> str:
    """Shell ``export`` lines for the best layout: proctopo's words, its order, Megatron's sizes."""
    best: Layout = plan.best
    words = " ".join(f"{a}={d}" for a, d in zip(best.order, best.dims))
    lines = [
        "# the best layout: name=size words, slowest first (as proctopo show/check/run take them), its order",
        f"export PROCTOPO_AXES='{words}'",
        f"export PROCTOPO_ORDER='{best.megatron_order}'",
    ]
    try:
        sizes, _ = _megatron_sizes(plan)
    except InvalidArgumentError:
        return "\n".join(lines)
    dp = plan.world_size // (sizes["tp"] * sizes["cp"] * sizes["pp"])
    lines.append("# the sizes by Megatron's names (as launch scripts pass them to Megatron-LM)")
    named = {"TP": sizes["tp"], "CP": sizes["cp"], "EP": sizes["ep"], "ETP": sizes["etp"], "PP": sizes["pp"]}
    lines.append("export " + " ".join(f"{k}={v}" for k, v in {**named, "DP": dp}.items()))
    return "\n".join(lines)


#: The stacks :func:`emit` writes for, by name.
EMITTERS: dict[str, Callable[[Plan], str]] = {
    "megatron": megatron,
    "torchtitan": torchtitan,
    "deepspeed": deepspeed,
    "env": env,
}


def emit(plan: Plan, stack: str) -> str:
    """The best layout of ``plan`` for ``stack`` (:data:`EMITTERS`), ready to paste.

    Raises:
        InvalidArgumentError: an unknown stack, or axes the stack has no dimension for.

    >>> from proctopo import plan
    >>> print(emit(plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4), "deepspeed"))
    from deepspeed.runtime.pipe.topology import PipeModelDataParallelTopology, ProcessTopology
    topology = PipeModelDataParallelTopology(num_pp=2, num_mp=4, num_dp=2)
    """
    if stack not in EMITTERS:
        raise InvalidArgumentError(f"no launcher output for {stack!r}; there is {', '.join(EMITTERS)}")
    return EMITTERS[stack](plan)
