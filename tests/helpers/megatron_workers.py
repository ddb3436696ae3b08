"""Worker functions of tests/test_megatron_state.py, run on gloo processes by the ``run_workers`` fixture.

Each process runs megatron-core's own ``initialize_model_parallel``, records every
answer of ``megatron.core.parallel_state`` (getters, module globals, the
``ProcessGroupCollection``), tears it down, then does the same with
``proctopo.megatron`` and proves each of proctopo's groups with an ``all_reduce``.
Both records, the ``new_group`` calls each made and the communicators each left
registered go back to the test, which compares them. The getters are those of
megatron-core 0.16 and 0.19; one the installed release lacks is recorded as absent
on both sides.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

TIMEOUT = 60.0

#: Keyword arguments of the getters recorded, per getter (one call per entry).
GETTER_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("is_initialized", {}),
    ("model_parallel_is_initialized", {}),
    ("has_separate_all_gather_group", {}),
    ("get_model_parallel_group", {}),
    ("get_tensor_model_parallel_group", {}),
    ("get_pipeline_model_parallel_group", {}),
    ("get_data_parallel_group", {}),
    ("get_data_parallel_group", {"with_context_parallel": True}),
    ("get_data_parallel_group", {"with_context_parallel": True, "partial_data_parallel": True}),
    ("get_data_parallel_group", {"with_context_parallel": True, "independent_all_gather": True}),
    ("get_data_parallel_group", {"partial_data_parallel": True}),
    ("get_data_parallel_group_gloo", {}),
    ("get_data_parallel_group_gloo", {"with_context_parallel": True}),
    ("get_data_parallel_group_gloo", {"with_context_parallel": True, "partial_data_parallel": True}),
    ("get_context_parallel_group", {}),
    ("get_context_parallel_global_ranks", {}),
    ("get_hierarchical_context_parallel_groups", {"check_initialized": False}),
    ("get_embedding_group", {}),
    ("get_embedding_group", {"check_initialized": False}),
    ("get_position_embedding_group", {}),
    ("get_position_embedding_group", {"check_initialized": False}),
    ("get_amax_reduction_group", {}),
    ("get_amax_reduction_group", {"with_context_parallel": True}),
    ("get_amax_reduction_group", {"tp_only_amax_red": True}),
    ("get_amax_reduction_group", {"with_context_parallel": True, "tp_only_amax_red": True}),
    ("get_tensor_and_data_parallel_group", {}),
    ("get_tensor_and_data_parallel_group", {"with_context_parallel": True}),
    ("get_tensor_and_context_parallel_group", {}),
    ("get_tensor_model_parallel_world_size", {}),
    ("get_pipeline_model_parallel_world_size", {}),
    ("get_tensor_model_parallel_rank", {}),
    ("get_pipeline_model_parallel_rank", {}),
    ("is_pipeline_first_stage", {}),
    ("is_pipeline_last_stage", {}),
    ("is_pipeline_first_stage", {"ignore_virtual": False, "vp_stage": 0}),
    ("is_pipeline_last_stage", {"ignore_virtual": False, "vp_stage": 1}),
    ("is_rank_in_embedding_group", {}),
    ("is_rank_in_embedding_group", {"ignore_virtual": False, "vp_stage": 0}),
    ("is_rank_in_position_embedding_group", {}),
    ("get_virtual_pipeline_model_parallel_rank", {}),
    ("get_virtual_pipeline_model_parallel_world_size", {}),
    ("get_tensor_model_parallel_src_rank", {}),
    ("get_model_parallel_src_rank", {}),
    ("get_data_parallel_src_rank", {}),
    ("get_data_parallel_src_rank", {"with_context_parallel": True}),
    ("get_pipeline_model_parallel_first_rank", {}),
    ("get_pipeline_model_parallel_last_rank", {}),
    ("get_pipeline_model_parallel_next_rank", {}),
    ("get_pipeline_model_parallel_prev_rank", {}),
    ("get_data_parallel_world_size", {}),
    ("get_data_parallel_world_size", {"with_context_parallel": True}),
    ("get_data_parallel_world_size", {"with_context_parallel": True, "partial_data_parallel": True}),
    ("get_data_parallel_rank", {}),
    ("get_data_parallel_rank", {"with_context_parallel": True}),
    ("get_data_parallel_rank", {"with_context_parallel": True, "partial_data_parallel": True}),
    ("get_context_parallel_world_size", {}),
    ("get_context_parallel_rank", {}),
    ("get_tensor_and_context_parallel_world_size", {}),
    ("get_tensor_and_context_parallel_rank", {}),
    ("get_expert_model_parallel_group", {}),
    ("get_expert_model_parallel_src_rank", {}),
    ("get_expert_model_parallel_world_size", {}),
    ("get_expert_model_parallel_rank", {}),
    ("get_expert_tensor_parallel_group", {}),
    ("get_expert_tensor_parallel_world_size", {}),
    ("get_expert_tensor_parallel_rank", {}),
    ("get_expert_tensor_and_model_parallel_group", {}),
    ("get_expert_tensor_and_model_parallel_world_size", {}),
    ("get_expert_tensor_and_model_parallel_rank", {}),
    ("get_expert_tensor_model_pipeline_parallel_group", {}),
    ("get_expert_data_parallel_group", {}),
    ("get_expert_data_parallel_group", {"partial_expert_data_parallel": True}),
    ("get_data_modulo_expert_parallel_group", {}),
    ("get_expert_data_parallel_group_gloo", {}),
    ("get_expert_data_parallel_group_gloo", {"partial_expert_data_parallel": True}),
    ("get_expert_data_parallel_rank", {}),
    ("get_expert_data_parallel_rank", {"partial_expert_data_parallel": True}),
    ("get_expert_data_parallel_world_size", {}),
    ("get_expert_data_parallel_world_size", {"partial_expert_data_parallel": True}),
    ("get_intra_distributed_optimizer_instance_group", {}),
    ("get_inter_distributed_optimizer_instance_group", {"check_initialized": False}),
    ("get_global_memory_buffer", {}),
    ("get_all_ranks", {}),
    # megatron-core 0.19: the GTP weight-rematerialisation groups, and the data-parallel
    # getters' choice between the replicate groups and the ones spanning GTP.
    ("get_gtp_weight_remat_group", {}),
    ("get_gtp_weight_remat_group", {"check_initialized": False}),
    ("get_gtp_weight_remat_world_size", {}),
    ("get_gtp_weight_remat_rank", {}),
    ("get_gtp_weight_remat_global_ranks", {}),
    ("get_expert_gtp_weight_remat_group", {}),
    ("get_expert_gtp_weight_remat_world_size", {}),
    ("get_expert_gtp_weight_remat_rank", {}),
    ("get_expert_gtp_weight_remat_global_ranks", {}),
    ("get_data_parallel_group", {"with_gtp_remat": False}),
    ("get_data_parallel_group", {"with_context_parallel": True, "with_gtp_remat": False}),
    (
        "get_data_parallel_group",
        {"with_context_parallel": True, "with_gtp_remat": False, "partial_data_parallel": True},
    ),
    ("get_data_parallel_world_size", {"with_gtp_remat": False}),
    ("get_data_parallel_world_size", {"with_context_parallel": True, "with_gtp_remat": False}),
    ("get_data_parallel_rank", {"with_gtp_remat": False}),
    ("get_data_parallel_rank", {"with_context_parallel": True, "with_gtp_remat": False}),
    ("get_expert_tensor_model_pipeline_parallel_group", {"with_egtp_remat": True}),
    ("get_expert_data_parallel_group", {"with_gtp_remat": False}),
    ("get_expert_data_parallel_group", {"with_gtp_remat": False, "partial_expert_data_parallel": True}),
    ("get_expert_data_parallel_rank", {"with_gtp_remat": False}),
    ("get_expert_data_parallel_world_size", {"with_gtp_remat": False}),
]


#: The getters of GETTER_CALLS that each release lacks (one entry per call).
ABSENT = {
    "0.16": [name for name, _ in GETTER_CALLS if "gtp_weight_remat" in name],
    "0.19": ["has_separate_all_gather_group", "get_data_modulo_expert_parallel_group"],
}


# ------------------------------------------------------------------ embedding functions
# get_embedding_ranks / get_position_embedding_ranks choices; the test names them by key
# (a function travels to the workers by name).


def last_stage_only(pp_ranks: list[int]) -> list[int]:
    """Embedding on the last stage only."""
    return [pp_ranks[-1]]


def first_two_stages(pp_ranks: list[int]) -> list[int]:
    """Position embedding on the first two stages (or the only one)."""
    return list(pp_ranks[:2])


EMBEDDING_FUNCTIONS = {"last_stage_only": last_stage_only, "first_two_stages": first_two_stages}


def _kwargs(config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(config)
    for key in ("get_embedding_ranks", "get_position_embedding_ranks"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = EMBEDDING_FUNCTIONS[kwargs[key]]
    return kwargs


# ------------------------------------------------------------------------- recording


def describe(value: Any, groups: bool = True) -> Any:
    """A picklable description of a parallel_state value: groups become their ranks and backend.

    With ``groups=False`` a group is only ``("group",)``: after a teardown, megatron-core leaves
    some globals set, referring to groups that may or may not still be alive.
    """
    import torch.distributed as dist

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dist.ProcessGroup):
        if not groups:
            return ("group",)
        return ("group", [int(r) for r in dist.get_process_group_ranks(value)], str(dist.get_backend(value)))
    if isinstance(value, (list, tuple)):
        return [describe(v, groups) for v in value]
    if isinstance(value, dict):
        return {k: describe(v, groups) for k, v in sorted(value.items())}
    return ("object", type(value).__name__)


def _call(fn: Any, kwargs: dict[str, Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ("ok", describe(fn(**kwargs)))
    except Exception as exc:
        return ("raises", type(exc).__name__, str(exc))


def state_globals(ps: Any, groups: bool = True) -> dict[str, Any]:
    """Every upper-case module global of parallel_state, described."""
    return {
        name: describe(value, groups)
        for name, value in sorted(vars(ps).items())
        if name.startswith("_") and name[1:2].isupper() and name.upper() == name
    }


def group_list(ps: Any) -> list[Any]:
    """The distinct (ranks, backend) of ``_global_process_group_list`` (None: the default group)."""
    seen = {repr(describe(g)): describe(g) for g in ps._global_process_group_list or []}
    return sorted(seen.values(), key=repr)


def record(ps: Any) -> dict[str, Any]:
    """Every getter's answer, every module global and the ProcessGroupCollection fields."""
    from megatron.core.process_groups_config import ProcessGroupCollection

    getters = {
        f"{name}({kw})": _call(getattr(ps, name), kw) if hasattr(ps, name) else ("absent",)
        for name, kw in GETTER_CALLS
    }
    pgc = ProcessGroupCollection.use_mpu_process_groups()
    return {
        "getters": getters,
        "globals": state_globals(ps),
        "group_list": group_list(ps),
        "collection": {k: describe(getattr(pgc, k, "<unset>")) for k in sorted(vars(pgc))},
    }


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Count ``new_group``/``split_group`` calls, and the process groups registered (before, after)."""
    from proctopo.testing import counting_groups

    counts: dict[str, int] = {}
    with counting_groups() as count:
        counts["live_before"] = count.before
        yield counts
    counts.update(new_group=count.new_group, split_group=count.split_group, live_after=count.after)


def _quiet_import() -> Any:
    with warnings.catch_warnings():
        # megatron-core warns at import that Transformer Engine and Apex are missing.
        warnings.filterwarnings("ignore", message=r".*Transformer Engine and Apex are not installed.*")
        warnings.filterwarnings("ignore", message=r"absl\.logging is not installed.*")  # 0.19
        import megatron.core.parallel_state as ps
        from megatron.core import process_groups_config  # noqa: F401

    return ps


def megatron_side(rank: int, world_size: int, config: dict[str, Any]) -> dict[str, Any]:
    """megatron-core's own initialize_model_parallel: its record, its calls, its communicators."""
    import torch.distributed as dist

    ps = _quiet_import()
    with counting() as counts:
        ps.initialize_model_parallel(**_kwargs(config))
    out = {"record": record(ps), "counts": counts}
    made = [g for g in ps._global_process_group_list or [] if g is not None]
    ps.destroy_model_parallel()
    out["after_destroy"] = state_globals(ps, groups=False)
    # megatron-core's destroy frees only its gloo groups; free the rest too, so that every
    # rank starts proctopo's run with the same number of registered groups.
    for group in made:
        if group in dist.distributed_c10d._world.pg_map:
            dist.destroy_process_group(group)
    return out


def _prove_all(groups: list[Any]) -> list[list[int]]:
    """Prove each distinct group with an all_reduce, in one order shared by every rank."""
    import torch.distributed as dist
    from proctopo.launch import prove_group

    distinct: dict[tuple[tuple[int, ...], str, int], Any] = {}
    for g in groups:
        if isinstance(g, dist.ProcessGroup):
            ranks = tuple(int(r) for r in dist.get_process_group_ranks(g))
            distinct.setdefault((ranks, str(dist.get_backend(g)), id(g)), g)
    # Sorted by ranks: two ranks that share several groups reach them in the same order.
    return [prove_group(distinct[k], timeout=TIMEOUT) for k in sorted(distinct)]


def proctopo_side(
    rank: int, world_size: int, config: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """proctopo.megatron.initialize_model_parallel: its record, calls, communicators, proofs."""
    ps = _quiet_import()
    import proctopo.megatron as pm
    import torch.distributed.distributed_c10d as c10d

    with counting() as counts:
        mg = pm.initialize_model_parallel(**_kwargs(config), **options)
    rec = record(ps)
    proved = _prove_all(list(mg.handles.values()))
    grid = {"calls": mg.grid.group_creation_calls, "communicators": mg.grid.communicators}
    pm.destroy_model_parallel()
    after = state_globals(ps, groups=False)
    live_after_destroy = len(c10d._world.pg_names)
    pm.destroy_model_parallel()  # a second call changes nothing
    return {
        "record": rec,
        "counts": counts,
        "grid": grid,
        "proved": proved,
        "after_destroy": after,
        "after_destroy_again": state_globals(ps, groups=False),
        "live_after_destroy": live_after_destroy,
        "live_after_second_destroy": len(c10d._world.pg_names),
    }


def compare(rank: int, world_size: int, cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[Any]:
    """For each (megatron-core arguments, proctopo options): megatron-core first, then proctopo."""
    return [
        {
            "megatron": megatron_side(rank, world_size, config),
            "proctopo": proctopo_side(rank, world_size, config, options),
        }
        for config, options in cases
    ]
