"""``plan --emit``: each stack's output is parsed or executed the way that stack would, and gives the
plan's best layout.

- Megatron: the arguments name megatron-core's ``ModelParallelConfig`` fields (Megatron-LM copies
  its arguments into that config by name; megatron-core does not ship Megatron-LM's parser), and
  ``--use-tp-pp-dp-mapping`` picks Megatron-LM's order. megatron-core's own ``RankGenerator``
  builds the dense and expert groups from the arguments and from the ``initialize_model_parallel``
  line; every group must be the plan's (through :func:`proctopo.megatron.layout` of the order, which
  must give the plan's layouts). Where the output says the arguments cannot name the order,
  megatron-core's groups for both of Megatron-LM's orders must differ from the plan's.
- torchtitan: the ``[parallelism]`` section by ``tomllib`` into torchtitan's own
  ``ParallelismConfig`` (and its command-line form through tyro, as torchtitan 0.3.0 reads it),
  then :class:`proctopo.torchtitan.ParallelDims` checks the degrees.
- DeepSpeed: the constructor is executed against DeepSpeed's topology module.
- env: the lines are sourced by a shell and ``proctopo show`` reads the words.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import require
from proctopo import InvalidArgumentError, ProcessTopology, cli, plan
from proctopo.megatron import MegatronLayout, layout
from proctopo.planner import Plan, emit, kind_of
from proctopo.testing import RecordingComm
from test_megatron_state import (
    DENSE_AXES,
    DENSE_TOKENS,
    EXPERT_AXES,
    EXPERT_TOKENS,
    _groups,
    _megatron_generators,
)

ROOT = Path(__file__).resolve().parents[1]

LLAMA = dict(
    params="405B", hidden=16384, seq_len="8Ki", micro_batch=1, layers=126, global_batch=2048, kv_hidden=1024
)

#: The orders Megatron-LM hands to ``initialize_model_parallel`` (megatron/training/initialize.py):
#: the first by default, the second with ``--use-tp-pp-dp-mapping``.
MEGATRON_LM_ORDERS = {False: "tp-cp-ep-dp-pp", True: "tp-cp-ep-pp-dp"}
#: The comment of an output whose order Megatron-LM's arguments cannot name.
CANNOT = "Megatron-LM's arguments give the orders tp-cp-ep-dp-pp and (with --use-tp-pp-dp-mapping)"


class MegatronCase(NamedTuple):
    source: str | dict[str, Any]  # a document whose `proctopo plan` command it is, or plan()'s arguments
    best: str  # the plan's best order
    arguments: str | None  # Megatron-LM's order the arguments select, None: they cannot name it


MEGATRON_CASES = {
    # the published-layouts table's first row: ep=1 sits anywhere, so the default arguments say it
    "Llama 3 405B, docs/plan.md's command": MegatronCase("docs/plan.md", "tp-cp-dp-pp", "tp-cp-ep-dp-pp"),
    "the README's example": MegatronCase("README.md", "tp-dp-pp", "tp-cp-ep-dp-pp"),
    "Llama 3 405B, the gradients hidden": MegatronCase(
        dict(sizes={"tp": 8, "cp": 1, "pp": 16, "dp": 0}, order="tp-cp-pp-dp", world_size=16384,
             machine="meta-h100-roce", model=LLAMA, exposed={"data": 0.05}),
        "tp-cp-pp-dp", "tp-cp-ep-pp-dp",
    ),
    "experts, the default order": MegatronCase(
        dict(sizes={"tp": 8, "cp": 2, "ep": 8, "pp": 8, "dp": 0}, convention="megatron", world_size=4096,
             machine="gb200-nvl72"),
        "tp-cp-ep-dp-pp", "tp-cp-ep-dp-pp",
    ),
    "a grid in Megatron's names": MegatronCase(
        dict(sizes={"pp": 4, "dp": 0, "tp": 8}, world_size=256, ranks_per_node=8),
        "tp-dp-pp", "tp-cp-ep-dp-pp",
    ),
    "dp inside cp, which Megatron-LM's arguments cannot name": MegatronCase(
        dict(sizes={"tp": 2, "cp": 2, "pp": 2, "dp": 0}, order="tp-dp-cp-pp", world_size=32, ranks_per_node=4,
             candidates=["tp-dp-cp-pp"]),
        "tp-dp-cp-pp", None,
    ),
}  # fmt: skip


def _documented_command(document: str) -> list[str]:
    """The words of ``document``'s ``proctopo plan`` command (its one with ``--emit megatron`` if it has
    one, else its first), without ``--emit``."""
    text = (ROOT / document).read_text(encoding="utf-8").replace("\\\n", " ")
    commands = re.findall(r"^(?:\$ )?proctopo (plan .*)$", text, flags=re.MULTILINE)
    commands = [c for c in commands if "--emit megatron" in c] or commands
    assert commands, f"{document}: no `proctopo plan` command"
    commands = commands[:1]
    words = shlex.split(commands[0])
    if "--emit" in words:
        at = words.index("--emit")
        del words[at : at + 2]
    return words


def _megatron_output(case: MegatronCase, capsys: pytest.CaptureFixture[str]) -> tuple[Plan, str]:
    """The plan of a case and its ``--emit megatron`` text (a document's command run as it reads)."""
    if isinstance(case.source, dict):
        kwargs = dict(case.source)
        p = plan(kwargs.pop("sizes"), **kwargs)
        return p, emit(p, "megatron")
    words = _documented_command(case.source)
    assert cli.main([*words, "--json"]) == 0
    p = Plan.from_dict(json.loads(capsys.readouterr().out))
    assert cli.main([*words, "--emit", "megatron"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text == emit(p, "megatron")
    return p, text


class MegatronOutput(NamedTuple):
    # by the ModelParallelConfig field each flag names, and "--use-tp-pp-dp-mapping": bool
    arguments: dict[str, Any]
    call: dict[str, Any]  # the initialize_model_parallel keywords
    cannot: bool  # the output says Megatron-LM's arguments cannot name the order


def _read(text: str) -> MegatronOutput:
    """The two lines of the output: Megatron-LM's arguments and megatron-core's call."""
    args_line, call_line = [line for line in text.splitlines() if not line.startswith("#")]
    words = shlex.split(args_line)
    arguments: dict[str, Any] = {"--use-tp-pp-dp-mapping": "--use-tp-pp-dp-mapping" in words}
    valued = [w for w in words if w != "--use-tp-pp-dp-mapping"]
    for flag, value in zip(valued[::2], valued[1::2]):
        assert flag.startswith("--") and not value.startswith("--"), (flag, value)
        arguments[flag[2:].replace("-", "_")] = int(value)  # argparse's dest of the flag
    call = ast.parse(call_line, mode="eval").body
    assert isinstance(call, ast.Call)
    assert ast.unparse(call.func) == "megatron.core.parallel_state.initialize_model_parallel"
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    return MegatronOutput(arguments, keywords, CANNOT in text)


def _plans_layout(p: Plan, call: dict[str, Any]) -> MegatronLayout:
    """proctopo's Megatron layouts of the call, which must be the plan's best."""
    lay = layout(p.world_size, **call)
    expert = p.best.expert_topology
    assert lay.dense == (p.best.topology if expert is not None else _dense_of(p))
    if expert is not None:
        assert lay.expert == expert
    return lay


@pytest.mark.parametrize("name", list(MEGATRON_CASES))
def test_megatron_output_says_which_arguments_name_the_best_order(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = MEGATRON_CASES[name]
    p, text = _megatron_output(case, capsys)
    assert p.best.megatron_order == case.best
    out = _read(text)
    sizes = {k: v for k, v in out.call.items() if k != "order"}
    assert {k: v for k, v in out.arguments.items() if k != "--use-tp-pp-dp-mapping"} == sizes
    assert out.call["order"] == case.best
    _plans_layout(p, out.call)
    if case.arguments is None:
        assert out.cannot and not out.arguments["--use-tp-pp-dp-mapping"]
        assert f"for {case.best} call initialize_model_parallel as below" in text
    else:
        assert not out.cannot, text
        assert MEGATRON_LM_ORDERS[out.arguments["--use-tp-pp-dp-mapping"]] == case.arguments


def _first_difference(gens: tuple[Any, Any], lay: MegatronLayout) -> str | None:
    """Where megatron-core's dense and expert RankGenerators' groups first differ from ``lay``'s."""
    dense, expert = gens
    for token in DENSE_TOKENS:
        if dense.get_ranks(token) != _groups(lay.dense, token, DENSE_AXES):
            return f"the dense {token} groups"
    for token in EXPERT_TOKENS:
        if expert.get_ranks(token) != _groups(lay.expert, token, EXPERT_AXES):
            return f"the expert {token} groups"
    return None


@pytest.mark.torch
@pytest.mark.parametrize("name", list(MEGATRON_CASES))
def test_megatron_cores_rank_generators_give_the_plans_groups(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ps = require("megatron.core.parallel_state")
    config_class = require("megatron.core.model_parallel_config").ModelParallelConfig
    torch = require("torch")
    p, text = _megatron_output(MEGATRON_CASES[name], capsys)
    out = _read(text)
    lay = _plans_layout(p, out.call)
    # Each flag names a field of megatron-core's config (an unknown one is a TypeError here).
    flags = {k: v for k, v in out.arguments.items() if k != "--use-tp-pp-dp-mapping"}
    # (with sequence parallelism, which megatron-core asks of a job with tensor and expert parallelism)
    tp = flags["tensor_model_parallel_size"]
    config = config_class(**flags, pipeline_dtype=torch.float32, sequence_parallel=tp > 1)
    sizes = {k: getattr(config, k) for k in flags}
    by_call = _megatron_generators(ps, p.world_size, out.call)
    assert _first_difference(by_call, lay) is None
    if out.cannot:  # megatron-core refuses each of Megatron-LM's orders, or gives other groups
        for order in MEGATRON_LM_ORDERS.values():
            try:
                by_args = _megatron_generators(ps, p.world_size, {**sizes, "order": order})
            except (RuntimeError, AssertionError):  # megatron-core's refusals
                continue
            assert _first_difference(by_args, lay) is not None, order
    else:
        order = MEGATRON_LM_ORDERS[out.arguments["--use-tp-pp-dp-mapping"]]
        by_args = _megatron_generators(ps, p.world_size, {**sizes, "order": order})
        assert _first_difference(by_args, lay) is None


def _dense_of(p: Any) -> ProcessTopology:
    """A grid plan's best topology in Megatron's token names, for comparison with Megatron's dense layout."""
    topo = p.best.topology
    names = {"tensor": "tp", "context": "cp", "data": "dp", "pipe": "pp"}
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
