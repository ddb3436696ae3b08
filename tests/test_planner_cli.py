"""``proctopo plan`` on the command line: machines, conventions, exposed fractions, inputs people type,
and exit status 2 for every input the planner refuses (figures that would make a cost infinite too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from proctopo import InvalidArgumentError, cli, planner


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
