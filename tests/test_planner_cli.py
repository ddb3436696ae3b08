"""``proctopo plan`` on the command line: machines, conventions, exposed fractions, inputs people type,
and exit status 2 for every input the planner refuses (figures that would make a cost infinite too)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from helpers import run_capped
from proctopo import InvalidArgumentError, cli, planner
from test_hosts import hostlist_module


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)


CASES = [
    (
        ["tp=8", "cp=1", "pp=16", "dp=0", "--order", "tp-cp-pp-dp", "--world-size", "16384", "--machine",
         "meta-h100-roce", "--model",
         "params=405B,hidden=16384,seq_len=8Ki,micro_batch=1,layers=126,global_batch=2048"],
        dict(sizes={"tp": 8, "cp": 1, "pp": 16, "dp": 0}, order="tp-cp-pp-dp", world_size=16384,
             machine="meta-h100-roce", model={"params": "405B", "hidden": "16384", "seq_len": "8Ki",
                                              "micro_batch": "1", "layers": "126", "global_batch": "2048"}),
    ),
    (
        ["tp=4", "ep=8", "pp=4", "dp=0", "--megatron", "--world-size", "1152", "--machine", "gb200-nvl72",
         "--exposed", "data=0.05", "--exposed", "pipe=0.5"],
        dict(sizes={"tp": 4, "ep": 8, "pp": 4, "dp": 0}, convention="megatron", world_size=1152,
             machine="gb200-nvl72", exposed={"data": 0.05, "pipe": 0.5}),
    ),
    (
        ["tp=8", "dp=16", "--ranks-per-node", "8", "--tier", "network=25e9,12e-6,2", "--tier", "node=300e9",
         "--convention", "generic"],
        dict(sizes={"tp": 8, "dp": 16}, ranks_per_node=8, convention="generic",
             tiers={"network": {"bandwidth": 25e9, "latency": 12e-6, "oversubscription": 2.0},
                    "node": {"bandwidth": 300e9}}),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("words", "kwargs"), CASES)
def test_each_option_reaches_the_planner(
    words: list[str], kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = kwargs.pop("sizes")
    expected = planner.plan(sizes, **kwargs)
    assert cli.main(["plan", *words]) == 0
    assert capsys.readouterr().out == expected.render() + "\n"
    assert cli.main(["plan", *words, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(json.dumps(expected.to_dict())) and doc["schema"] == planner.SCHEMA
    for stack in planner.EMITTERS:
        try:
            text = planner.emit(expected, stack)
        except InvalidArgumentError:  # a stack with no dimension for one of the axes: said, not emitted
            assert cli.main(["plan", *words, "--emit", stack]) == 2
            capsys.readouterr()
            continue
        assert cli.main(["plan", *words, "--emit", stack]) == 0
        assert capsys.readouterr().out == text + "\n"


def test_a_machine_file_and_the_machines_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = planner.PRESETS["hgx-h100"].to_dict()
    doc["name"] = "ours"
    doc["levels"][2]["oversubscription"] = 4
    path = tmp_path / "ours.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["plan", "tp=8", "dp=0", "--world-size", "512", "--machine", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["machine"]["name"] == "ours" and out["ranks_per_node"] == 8  # the machine's, no option needed
    assert [a["tier"] for a in out["layouts"][0]["axes"]] == ["spine", "node"]


def test_without_a_machine_the_launchers_environment_gives_the_ranks_per_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cli.main(["plan", "tp=4", "dp=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ranks_per_node"] == 4
    monkeypatch.setenv(
        "LOCAL_WORLD_SIZE", "2"
    )  # a machine says its own; the environment does not override it
    assert cli.main(["plan", "tp=4", "dp=0", "--world-size", "72", "--machine", "gb200-nvl72", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ranks_per_node"] == 4


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["tp=8", "dp=4", "--weight", "tp=1e308", "--json"], "traffic of axis 'tp' (tensor) is not finite"),
        (["tp=8", "dp=4", "--tier", "network=1e-300"], "takes an infinite time over level 'network'"),
        (["tp=8", "dp=4", "--tier", "inter-domain=1e-300", "--json"], "infinite time over level 'network'"),
        (
            ["tp=8", "dp=4", "--model", "params=1e309,hidden=8,seq_len=8,micro_batch=1,layers=1"],
            "model params must be a finite number, got '1e309'",
        ),
        (
            ["tp=8", "dp=4", "--model", "params=7B,hidden=x,seq_len=8,micro_batch=1,layers=1"],
            "model hidden must be a number such as 70e9, 70B, 1.5T or 8Ki, got 'x'",
        ),
        (
            ["tp=8", "dp=4", "--model",
             '{"params": 7e9, "hidden": 8, "seq_len": 8, "micro_batch": 1, "layers": ' + "9" * 400 + "}"],
            "model layers must be a finite number",
        ),
        (
            ["pp=8", "tp=2", "--model", "params=7B,hidden=8,seq_len=8,micro_batch=1,layers=4"],
            "model layers 4 is fewer than the 8 pipeline stages: each stage holds one layer at least (the "
            "layers need not divide evenly)",
        ),
        (
            ["tp=2", "pp=8", "dp=1", "--megatron", "--model",
             "params=7B,hidden=8,seq_len=8,micro_batch=1,num_layers=7"],
            "model layers 7 is fewer than the 8 pipeline stages",
        ),
        (["tp=8", "dp=4", "--exposed", "data=2"], "the exposed fraction of 'data' must be in [0, 1]"),
        (["tp=8", "dp=4", "--machine", "dgx-a100"], "unknown machine 'dgx-a100': not a preset"),
        (["tp=8", "dp=4", "--tier", "rack=1e9"], "machine 'default' has no level 'rack'"),
        (["tp=8", "vocab=2", "--megatron", "--world-size", "16"], "axis 'vocab' is not one of Megatron's"),
        (["tp=8", "dp=4", "--top", "5000"], "top must be at most 1000"),
        (
            [*(f"x{i}=2" for i in range(17)), *(f"--weight=x{i}=1" for i in range(17))],
            "17 axes of size > 1 are too many to plan",
        ),
    ],
)  # fmt: skip
def test_refused_inputs_exit_2_with_the_reason(
    words: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plan", "--ranks-per-node", "2", *words]) == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == "" and err[-1].startswith("proctopo plan: error: ") and text in err[-1], err
    assert "Infinity" not in captured.out and "NaN" not in captured.out


@pytest.mark.parametrize(
    ("slots", "counts"),
    [
        ([8, 8, 8, 8], ["--world-size", "32", "--ranks-per-node", "8"]),
        ([8, 8, 4], ["--world-size", "20", "--ranks-per-node", "8"]),  # a last host that is not full
        ([4, 4, 4, 4], ["--world-size", "16", "--ranks-per-node", "4", "--nodes-per-domain", "2"]),
    ],
)
def test_a_hostfile_of_hosts_filled_in_order_plans_as_its_counts(
    slots: list[int], counts: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"node{i} slots={n}\n" for i, n in enumerate(slots)))
    domains = counts[counts.index("--nodes-per-domain") :] if "--nodes-per-domain" in counts else []
    for extra in ([], ["--json"], ["--emit", "env"]):
        assert cli.main(["plan", "dp=0", "tp=4", *counts, *extra]) == 0
        expected = capsys.readouterr()
        assert cli.main(["plan", "dp=0", "tp=4", "--hostfile", str(hostfile), *domains, *extra]) == 0
        got = capsys.readouterr()
        assert (got.out, got.err) == (expected.out, expected.err) and got.out


def test_a_hostfile_gives_the_counts_so_they_are_not_given_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=8\nb slots=8\n")
    assert cli.main(["plan", "dp=0", "tp=8", "--hostfile", str(hostfile), "--world-size", "16"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"proctopo plan: error: hostfile {hostfile} gives the ranks and the host of each, so --world-size "
        "cannot be given with it; leave it out\n"
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["plan", "tp=8", "--hostfile", str(hostfile), "--slurm"])
    assert info.value.code == 2
    assert "argument --slurm: not allowed with argument --hostfile" in capsys.readouterr().err


REFUSED = (
    "proctopo plan: error: plan prices ranks that fill their nodes in order, the same number on each but "
    "the last; {hosts} places them otherwise: see that placement with proctopo check\n"
)


def test_hosts_of_unequal_sizes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=4\nb slots=2\nc slots=4\n")
    assert cli.main(["plan", "dp=0", "tp=2", "--hostfile", str(hostfile)]) == 2
    captured = capsys.readouterr()
    hosts = f"3 hosts (hostfile {hostfile}, block): a [0, 1, 2, 3], b [4, 5], c [6, 7, 8, 9]"
    assert captured.out == "" and captured.err == REFUSED.format(hosts=hosts)


def test_a_cyclic_slurm_placement_is_refused_and_a_block_one_planned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hostlist_module()
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[1-2]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "4(x2)")
    monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")
    assert cli.main(["plan", "dp=4", "tp=2", "--slurm"]) == 2
    captured = capsys.readouterr()
    hosts = "2 hosts (Slurm, cyclic): gpu1 [0, 2, 4, 6], gpu2 [1, 3, 5, 7]"
    assert captured.out == "" and captured.err == REFUSED.format(hosts=hosts)
    monkeypatch.setenv("SLURM_DISTRIBUTION", "block")
    assert cli.main(["plan", "dp=4", "tp=2", "--slurm", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert cli.main(["plan", "dp=4", "tp=2", "--world-size", "8", "--ranks-per-node", "4", "--json"]) == 0
    assert doc == json.loads(capsys.readouterr().out)


def _plan_examples() -> list[tuple[str, list[str]]]:
    """The command lines of docs/cli.md's plan section and the lines shown after each."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    part = doc[doc.index("\n## plan\n") : doc.index("\n## run\n")]
    examples: list[tuple[str, list[str]]] = []
    in_block = False
    for line in part.splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("$ "):
            examples.append((line[2:], []))
        elif in_block and examples:
            examples[-1][1].append(line)
    return examples


def test_the_documented_plan_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    examples = _plan_examples()
    assert [words.split()[0] for words, _ in examples] == ["proctopo", "cat", "proctopo", "srun"]
    for words, shown in examples:
        argv = shlex.split(words)
        if argv[0] == "cat":
            Path(argv[1]).write_text("".join(line + "\n" for line in shown))
            continue
        if argv[0] == "srun":  # srun -N 2 --ntasks-per-node 4 -m cyclic: Slurm's variables for it
            hostlist_module()
            assert argv[1:7] == ["-N", "2", "--ntasks-per-node", "4", "-m", "cyclic"]
            monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-2]")
            monkeypatch.setenv("SLURM_TASKS_PER_NODE", "4(x2)")
            monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")
            argv = argv[7:]
        assert argv[:2] == ["proctopo", "plan"]
        status = cli.main(argv[1:])
        out, err = capsys.readouterr()
        assert (out + err).splitlines() == shown, words
        assert status == (2 if err else 0)


def test_plan_needs_the_ranks_per_node_or_a_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "tp=2", "dp=2"]) == 2
    err = capsys.readouterr().err
    assert "plan needs ranks_per_node (or LOCAL_WORLD_SIZE in the environment), or a machine" in err


def test_the_options_are_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    for words, text in (
        (["--exposed", "data"], "argument --exposed: 'data' must be written KIND=FRACTION"),
        (["--tier", "network=1,2,3,4"], "must be written LEVEL=BANDWIDTH[,LATENCY[,OVERSUBSCRIPTION]]"),
        (["--emit", "slurm"], "argument --emit: invalid choice: 'slurm'"),
    ):
        with pytest.raises(SystemExit) as info:
            cli.main(["plan", "tp=8", "--ranks-per-node", "8", *words])
        assert info.value.code == 2
        assert text in capsys.readouterr().err


#: Seven axes of size 2 and 2,000 of size 1: each layout lists 2,007 axes.
_MANY_AXES = [
    "tp=2",
    "cp=2",
    "pp=2",
    "dp=2",
    "ep=2",
    "fsdp=2",
    "sequence=2",
    *(f"x{i}=1" for i in range(2000)),
]


@pytest.mark.address_space_cap
@pytest.mark.parametrize("top", [1000, planner.inputs.MAX_LISTED_ENTRIES // len(_MANY_AXES)])
def test_layouts_times_axes_is_bounded_within_450_mb(top: int) -> None:
    # Without the bound, --top 1000 wrote 126 MB of JSON and, under this cap, ended in a
    # MemoryError traceback from the dump.
    words = ["plan", *_MANY_AXES, "--ranks-per-node", "8", "--json", "--top", str(top)]
    out = run_capped(["-m", "proctopo", *words], 450 * 2**20, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    if top * len(_MANY_AXES) > planner.inputs.MAX_LISTED_ENTRIES:
        assert (out.returncode, out.stdout) == (2, ""), out.stderr[-3000:]
        assert out.stderr.splitlines()[-1] == (
            "proctopo plan: error: 1000 layouts (top) x 2007 axes = 2007000 axis entries, but a plan lists "
            "at most 262144 (each layout lists every axis): keep at most 130 layouts (top=130), or name "
            "fewer axes (an axis of size 1 changes no layout)"
        )
    else:  # at the bound, the whole result is written
        assert out.returncode == 0, out.stderr[-3000:]
        layouts = json.loads(out.stdout)["layouts"]
        assert len(layouts) == top and all(len(lay["order"]) == len(_MANY_AXES) for lay in layouts)
