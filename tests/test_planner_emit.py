"""``plan --emit``: each stack's output is parsed or executed the way that stack would, and gives the
plan's best layout.

- Megatron: the arguments by Megatron-LM's own parser where it is installed (megatron-core does
  not ship ``megatron.training``), else by a parser of the same flags; then the sizes and order go
  to :func:`proctopo.megatron.create_groups` on the recorder, which builds megatron-core's groups
  exactly, and its layouts must be the plan's. The ``initialize_model_parallel`` line is parsed as
  Python and played the same way.
- torchtitan: the ``[parallelism]`` section by ``tomllib`` into torchtitan's own
  ``ParallelismConfig`` (and its command-line form through tyro, as torchtitan 0.3.0 reads it),
  then :class:`proctopo.torchtitan.ParallelDims` checks the degrees.
- DeepSpeed: the constructor is executed against DeepSpeed's topology module.
- env: the lines are sourced by a shell and ``proctopo show`` reads the words.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import shlex
import subprocess
import sys
from typing import Any

import pytest
from helpers import require
from proctopo import InvalidArgumentError, ProcessTopology, plan
from proctopo.megatron import create_groups
from proctopo.planner import emit
from proctopo.testing import RecordingComm

LLAMA = dict(params="405B", hidden=16384, seq_len=8192, micro_batch=1, layers=126, global_batch=2048)

MEGATRON_PLANS = {
    "default order": dict(
        sizes={"tp": 8, "cp": 2, "ep": 8, "pp": 8, "dp": 0}, convention="megatron", world_size=4096,
        machine="gb200-nvl72",
    ),
    "Llama 3 on the RoCE cluster": dict(
        sizes={"tp": 8, "cp": 1, "pp": 16, "dp": 0}, order="tp-cp-pp-dp", world_size=16384,
        machine="meta-h100-roce", model=LLAMA, exposed={"data": 0.05},
    ),
    "pp inside dp": dict(
        sizes={"tp": 8, "cp": 1, "pp": 16, "dp": 0}, order="tp-cp-pp-dp", world_size=16384,
        machine="meta-h100-roce", model=LLAMA, exposed={"data": 1.0},
    ),
    "a grid in Megatron's names": dict(sizes={"pp": 4, "dp": 0, "tp": 8}, world_size=256, ranks_per_node=8),
}  # fmt: skip


def _megatron_parser() -> argparse.ArgumentParser:
    """The flags of Megatron-LM's ``megatron/training/arguments.py`` that the output uses."""
    p = argparse.ArgumentParser()
    for flag in (
        "--tensor-model-parallel-size",
        "--pipeline-model-parallel-size",
        "--context-parallel-size",
        "--expert-model-parallel-size",
        "--expert-tensor-parallel-size",
    ):
        p.add_argument(flag, type=int, required=True)
    p.add_argument("--use-tp-pp-dp-mapping", action="store_true")
    return p


def _megatron_lm() -> bool:
    """Whether Megatron-LM's training package (its argument parser) is installed."""
    try:
        return importlib.util.find_spec("megatron.training") is not None
    except ModuleNotFoundError:  # no megatron at all (or a torch-free run keeps it out)
        return False


def _parse_megatron_args(words: list[str]) -> argparse.Namespace:
    if _megatron_lm():  # Megatron-LM itself, where installed
        from megatron.training.arguments import parse_args  # type: ignore[import-not-found,unused-ignore]

        saved = sys.argv
        try:
            sys.argv = [
                "pretrain",
                *words,
                "--num-layers",
                "2",
                "--hidden-size",
                "8",
                "--num-attention-heads",
                "1",
            ]
            return parse_args(ignore_unknown_args=True)  # type: ignore[no-any-return]
        finally:
            sys.argv = saved
    return _megatron_parser().parse_args(words)


def _played(world: int, **kwargs: Any) -> Any:
    mg = create_groups(
        **kwargs, comm=RecordingComm(0, world), create_gloo_process_groups=False, release="0.16"
    )
    return mg.layout


@pytest.mark.parametrize("name", list(MEGATRON_PLANS))
def test_megatron_arguments_and_call_build_the_best_layout(name: str) -> None:
    kwargs = dict(MEGATRON_PLANS[name])
    p = plan(kwargs.pop("sizes"), **kwargs)
    text = emit(p, "megatron")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    args_line, call_line = lines
    args = _parse_megatron_args(shlex.split(args_line))
    order = "tp-cp-ep-pp-dp" if args.use_tp_pp_dp_mapping else "tp-cp-ep-dp-pp"
    sizes = dict(
        tensor_model_parallel_size=args.tensor_model_parallel_size,
        pipeline_model_parallel_size=args.pipeline_model_parallel_size,
        context_parallel_size=args.context_parallel_size,
        expert_model_parallel_size=args.expert_model_parallel_size,
        expert_tensor_parallel_size=args.expert_tensor_parallel_size,
    )
    call = ast.parse(call_line, mode="eval").body
    assert isinstance(call, ast.Call) and ast.unparse(call.func).endswith(
        "parallel_state.initialize_model_parallel"
    )
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert {k: v for k, v in keywords.items() if k != "order"} == sizes
    by_call = _played(p.world_size, **keywords)
    best = p.best
    expert = best.expert_topology
    dense_topo = best.topology if expert is not None else _dense_of(p)
    assert by_call.dense == dense_topo
    if expert is not None:
        assert by_call.expert == expert
    if "Megatron-LM's arguments give the orders" not in text:  # the arguments alone say the order
        by_args = _played(p.world_size, **sizes, order=order)
        assert (by_args.dense, by_args.expert) == (by_call.dense, by_call.expert)
    else:
        assert keywords["order"] not in ("tp-cp-ep-dp-pp", "tp-cp-ep-pp-dp")


def _dense_of(p: Any) -> ProcessTopology:
    """A grid plan's best topology in Megatron's token names, for comparison with Megatron's dense layout."""
    topo = p.best.topology
    names = {"tensor": "tp", "context": "cp", "data": "dp", "pipe": "pp"}
    from proctopo.planner import kind_of

    order = "-".join(names[kind_of(a) or ""] for a in reversed(topo.axes))
    sizes = {names[kind_of(a) or ""]: d for a, d in zip(topo.axes, topo.dims)}
    return ProcessTopology.from_order(order + ("-cp" if "cp" not in sizes else ""), **sizes)


def test_megatron_output_refuses_a_grid_ep() -> None:
    p = plan({"tp": 4, "ep": 8, "pp": 4, "dp": 0}, world_size=1152, ranks_per_node=4)
    with pytest.raises(InvalidArgumentError, match="Megatron's ep subdivides dp x cp"):
        emit(p, "megatron")


TORCHTITAN_PLAN = dict(sizes={"pp": 2, "dp_replicate": 2, "dp_shard": 0, "cp": 2, "tp": 8}, world_size=256)


def test_torchtitan_section_is_torchtitans_parallelism_config() -> None:
    tomllib = pytest.importorskip("tomllib")
    kwargs = dict(TORCHTITAN_PLAN)
    p = plan(kwargs.pop("sizes"), machine="hgx-h100", **kwargs)
    text = emit(p, "torchtitan")
    section = tomllib.loads("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    degrees = section["parallelism"]
    assert degrees == {
        "data_parallel_replicate_degree": 2,
        "data_parallel_shard_degree": 4,
        "context_parallel_degree": 2,
        "tensor_parallel_degree": 8,
        "pipeline_parallel_degree": 2,
    }
    from proctopo.torchtitan import ParallelDims

    dims = ParallelDims(
        dp_replicate=degrees["data_parallel_replicate_degree"],
        dp_shard=degrees["data_parallel_shard_degree"],
        cp=degrees["context_parallel_degree"],
        tp=degrees["tensor_parallel_degree"],
        pp=degrees["pipeline_parallel_degree"],
        ep=1,
        world_size=p.world_size,
        comm=RecordingComm(0, p.world_size),
    )
    assert dims.dp_shard == 4 and dims.fsdp_enabled
    assert (
        "torchtitan lays its mesh out as pp, dp_replicate, dp_shard, cp, tp" in text
        or "is the plan's best" in text
    )


def _torchtitan_output() -> tuple[dict[str, int], list[str]]:
    tomllib = pytest.importorskip("tomllib")
    kwargs = dict(TORCHTITAN_PLAN)
    p = plan(kwargs.pop("sizes"), machine="hgx-h100", **kwargs)
    text = emit(p, "torchtitan")
    degrees = tomllib.loads("\n".join(line for line in text.splitlines() if not line.startswith("#")))[
        "parallelism"
    ]
    (command_line,) = [line[2:] for line in text.splitlines() if line.startswith("# --parallelism.")]
    return degrees, shlex.split(command_line)


@pytest.mark.torch
def test_torchtitans_parallelism_config_takes_the_section_and_the_command_line() -> None:
    configs = require("torchtitan.config.configs")
    degrees, words = _torchtitan_output()
    config = configs.ParallelismConfig(**degrees)  # a field torchtitan does not have fails here
    flags = dict(zip(words[::2], words[1::2]))
    assert all(flag.startswith("--parallelism.") for flag in flags)
    from_command_line = configs.ParallelismConfig(**{k.split(".", 1)[1]: int(v) for k, v in flags.items()})
    assert from_command_line == config


@pytest.mark.torch
def test_torchtitans_command_line_parser_reads_the_overrides() -> None:
    configs = require("torchtitan.config.configs")
    tyro = require("tyro")
    require("typeguard")  # tyro needs it for torchtitan's config types
    import dataclasses

    degrees, words = _torchtitan_output()
    job_class = (
        dataclasses.make_dataclass(  # a job config with torchtitan's section, as its manager builds one
            "Job",
            [
                (
                    "parallelism",
                    configs.ParallelismConfig,
                    dataclasses.field(default_factory=configs.ParallelismConfig),
                )
            ],
        )
    )
    job = tyro.cli(job_class, args=words)
    assert job.parallelism == configs.ParallelismConfig(**degrees)


@pytest.mark.torch
def test_deepspeed_constructor_runs_against_deepspeed() -> None:
    require("deepspeed.runtime.pipe.topology")
    for sizes in ({"pipe": 2, "data": 2, "model": 4}, {"pp": 2, "dp": 4, "tp": 2}):
        p = plan(sizes, ranks_per_node=4)
        scope: dict[str, Any] = {}
        exec(emit(p, "deepspeed"), scope)
        theirs = scope["topology"]
        ours = p.best.topology
        assert (
            theirs.get_dim("pipe")
            == ours.dims[ours.axes.index(next(a for a in ours.axes if a in ("pp", "pipe")))]
        )
        assert theirs.world_size() == ours.world_size()
        for axis, name in zip(theirs.get_axis_names(), ours.axes):
            assert theirs.get_axis_comm_lists(axis) == ours.get_axis_comm_lists(name)


def test_env_lines_are_shell_and_proctopo_reads_them() -> None:
    p = plan({"tp": 8, "cp": 1, "pp": 16, "dp": 0}, order="tp-cp-pp-dp", world_size=16384, machine="hgx-h100")
    text = emit(p, "env")
    script = text + '\nprintf "%s\\n" "$PROCTOPO_AXES" "$PROCTOPO_ORDER" "$TP $CP $EP $ETP $PP $DP"\n'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[1] == p.best.megatron_order and out[2] == "8 1 1 8 16 128"
    shown = subprocess.run(
        [sys.executable, "-m", "proctopo", "show", "--json", *out[0].split()],
        capture_output=True,
        text=True,
        check=True,
    )
    topo = json.loads(shown.stdout)["topology"]
    assert (topo["axes"], topo["dims"]) == (list(p.best.order), list(p.best.dims))


def test_an_unknown_stack_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="no launcher output for 'slurm'"):
        emit(plan({"tp": 2, "dp": 2}, ranks_per_node=2), "slurm")
