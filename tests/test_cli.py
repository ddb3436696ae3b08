"""The proctopo command: show, check, draw and run share one parser and one set of default axes.

The pictures of ``draw`` are tested in test_draw.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import proctopo
import pytest
from helpers import require
from proctopo import InvalidArgumentError, ProcessTopology, cli, demo, launch

ROOT = Path(__file__).resolve().parents[1]


def test_show_lists_ranks_coordinates_and_groups() -> None:
    out = io.StringIO()
    cli.show(ProcessTopology(["pipe", "data", "model"], [2, 2, 2]), out=out)
    text = out.getvalue()
    assert "pipe=2 x data=2 x model=2 (8 ranks)" in text
    row5 = next(line for line in text.splitlines() if line.strip().startswith("5 "))
    assert row5.split()[:4] == ["5", "1", "0", "1"]
    assert "[1, 5]" in row5 and "[5, 7]" in row5 and "[4, 5]" in row5
    assert "data groups: 4 x 2 ranks: [0, 2] [1, 3] [4, 6]" in text


def test_show_elides_large_worlds() -> None:
    out = io.StringIO()
    cli.show(cli.parse_axes(["pipe=8", "data=16384", "model=8"]), limit=3, out=out)
    text = out.getvalue()
    assert "(1048572 more)" in text and "1048575      7  16383      7" in text
    assert len(text.splitlines()) < 20


def test_check_reports_mismatch_and_locality(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "pipe=2", "data=3", "model=2", "--world-size", "16"]) == 1
    out, err = capsys.readouterr()
    assert out == "FAILED: pipe=2 x data=3 x model=2 (12 ranks): 1 rule(s) broken\n"
    assert err == "MISMATCH: pipe * data * model = 2 * 3 * 2 = 12, but the world size is 16\n"  # on stderr
    assert (
        cli.main(["check", "pipe=4", "data=2", "model=8", "--world-size", "64", "--ranks-per-node", "8"]) == 0
    )
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:2] == ["ok: pipe=4 x data=2 x model=8 (64 ranks)", "8 node(s) of 8 ranks"] and err == ""
    assert "  model: groups of 8, stride 1: inside one node" in lines
    assert "  data: groups of 2, stride 8: across up to 2 nodes" in lines
    assert "  pipe: groups of 4, stride 16: across up to 4 nodes" in lines


def test_check_intra_node_fails_when_a_group_spans_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["check", "pipe=2", "data=4", "model=16", "--ranks-per-node", "8"]
    assert cli.main(words) == 0  # no rule asked for: a report
    assert "  model: groups of 16, stride 1: across up to 2 nodes" in capsys.readouterr().out
    assert cli.main([*words, "--intra-node", "model"]) == 1  # every model group spans 2 nodes
    out, err = capsys.readouterr()
    assert not out.startswith("ok") and err == (
        "SPANS NODES: model groups of 16 ranks (stride 1) span up to 2 nodes of 8 ranks; "
        "--intra-node model needs each inside one node\n"
    )
    assert (
        cli.main(["check", "pipe=2", "data=8", "model=8", "--ranks-per-node", "8", "--intra-node", "model"])
        == 0
    )
    # Every axis listed is checked; each broken one is reported.
    assert (
        cli.main(
            [
                "check",
                "pipe=2",
                "data=2",
                "expert=2",
                "model=4",
                "--ranks-per-node",
                "8",
                "--intra-node",
                "model,expert,data",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("SPANS NODES") == 1 and err.startswith("SPANS NODES: data groups of 2 ranks (stride 8)")


def test_check_intra_domain(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["check", "pipe=2", "data=4", "model=8", "--ranks-per-node", "8", "--nodes-per-domain", "2"]
    assert cli.main([*words, "--intra-domain", "model"]) == 0
    out = capsys.readouterr().out
    assert "8 node(s) of 8 ranks, 4 domain(s) of 2 nodes" in out
    assert "  data: groups of 4, stride 8: across up to 4 nodes, up to 2 domains" in out
    assert cli.main([*words, "--intra-domain", "data,pipe", "--intra-node", "model"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "SPANS DOMAINS: pipe groups of 2 ranks (stride 32) span up to 2 domains of 2 nodes; "
        "--intra-domain pipe needs each inside one domain",
        "SPANS DOMAINS: data groups of 4 ranks (stride 8) span up to 2 domains of 2 nodes; "
        "--intra-domain data needs each inside one domain",
    ]
    assert (
        cli.main(
            [
                "check",
                "pipe=2",
                "data=4",
                "model=8",
                "--ranks-per-node",
                "16",
                "--nodes-per-domain",
                "2",
                "--intra-domain",
                "data",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (
            ["--intra-node", "model"],
            "locality rules need the ranks per node (--ranks-per-node or LOCAL_WORLD_SIZE)",
        ),
        (["--ranks-per-node", "4", "--intra-domain", "model"], "--intra-domain needs the nodes per domain"),
        (
            ["--ranks-per-node", "4", "--intra-node", "modle"],
            "unknown axis 'modle'; the axes are ['pipe', 'data', 'model'] (did you mean 'model'?)",
        ),
    ],
)
def test_check_rules_need_their_sizes(
    words: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check", *words]) == 2
    err = capsys.readouterr().err
    assert err.startswith("proctopo check: error: ") and text in err, err


def test_check_a_partial_last_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "pipe=2", "data=5", "--ranks-per-node", "4"]) == 1
    assert capsys.readouterr().err == (
        "PARTIAL NODE: 10 ranks on nodes of 4 ranks leave 2 on the last node "
        "(--allow-partial-node accepts a partial last node)\n"
    )
    assert cli.main(["check", "pipe=2", "data=5", "--ranks-per-node", "4", "--allow-partial-node"]) == 0
    assert "3 node(s) of 4 ranks" in capsys.readouterr().out
    assert cli.main(["check", "pipe=2", "data=4", "--ranks-per-node", "16"]) == 1  # one node, not full


def test_check_reads_the_launchers_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cli.main(["check", "pipe=2", "data=4", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["world_size"] == 16 and report["ranks_per_node"] == 4 and report["nodes"] == 2
    assert [v["rule"] for v in report["violations"]] == ["world_size"]
    # Options win over the environment.
    assert (
        cli.main(["check", "pipe=2", "data=4", "--world-size", "8", "--ranks-per-node", "8", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["nodes"] == 1
    monkeypatch.setenv("WORLD_SIZE", "0")
    assert cli.main(["check", "pipe=2", "data=4"]) == 2
    assert capsys.readouterr().err == (
        "proctopo check: error: environment variable WORLD_SIZE: must be at least 1, got 0\n"
    )


def test_check_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["check", "pipe=2", "data=4", "model=16", "--world-size", "128", "--ranks-per-node", "8"]
    assert cli.main([*words, "--intra-node", "model", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "proctopo.check/1" and report["ok"] is False
    assert report["topology"] == {
        "axes": ["pipe", "data", "model"],
        "dims": [2, 4, 16],
        "strides": [64, 16, 1],
        "world_size": 128,
        "shape": "pipe=2 x data=4 x model=16",
    }
    assert report["rules"] == {"intra_node": ["model"], "intra_domain": [], "allow_partial_node": False}
    assert report["axes"][2] == {
        "name": "model",
        "size": 16,
        "stride": 1,
        "groups": 8,
        "nodes": 2,
        "domains": None,
    }
    assert report["violations"] == [
        {
            "rule": "intra_node",
            "axis": "model",
            "message": "model groups of 16 ranks (stride 1) span up to 2 nodes of 8 ranks; "
            "--intra-node model needs each inside one node",
        }
    ]
    assert report["nodes"] == 16 and report["last_node_ranks"] == 8


FORM = "must be written name=size, the size in decimal digits (e.g. data=4)"


@pytest.mark.parametrize(
    ("word", "text"),
    [
        ("pipe", f"axis 'pipe' {FORM}"),
        ("pipe=x", f"axis 'pipe=x' {FORM}"),
        ("pipe=1_6", f"axis 'pipe=1_6' {FORM}"),
        ("pipe=+2", f"axis 'pipe=+2' {FORM}"),
        ("pipe=-1", f"axis 'pipe=-1' {FORM}"),
        ("pipe= 2", f"axis 'pipe= 2' {FORM}"),
        ("pipe=\u0662", f"axis 'pipe=\u0662' {FORM}"),  # a decimal digit, but not 0-9
        ("pipe=", f"axis 'pipe=' {FORM}"),
        # The topology's own rules, in its own words:
        ("pipe=0", "axis 'pipe' has size 0"),
        ("=2", "axis 1 has an empty name"),
        ("pipe=99999999999999999999", "64-bit"),
    ],
)
@pytest.mark.parametrize("command", ["show", "check", "draw", "run"])
def test_every_command_reads_axes_alike(
    command: str, word: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `run` fails here, before it starts any process.
    assert cli.main([command, "data=2", word]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"proctopo {command}: error: ") and text in err, err


def test_parse_axes_keeps_order_and_leading_zeros() -> None:
    topo = cli.parse_axes(["model=02", "pipe=3"])
    assert topo.axes == ["model", "pipe"] and topo.dims == [2, 3]
    with pytest.raises(InvalidArgumentError):
        cli.parse_axes(["pipe=2=3"])


def test_every_command_has_the_same_default_axes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.DEFAULT_AXES == ("pipe=2", "data=2", "model=2")
    for words in (["show"], ["check"], ["draw"]):
        assert cli.main(words) == 0
    out = capsys.readouterr().out
    assert out.count("pipe=2 x data=2 x model=2 (8 ranks)") == 3  # show, check, draw
    assert "ok: pipe=2 x data=2 x model=2 (8 ranks)" in out and "\npipe=1\n" in out  # check; draw's frame

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(demo, "run", lambda *args: calls.append(args) or 0)
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main(["run"]) == 0
    assert cli.main(["run", "--nproc", "4", "--strategy", "global", "--timeout", "9", "--quiet"]) == 0
    assert cli.main(["run", "pipe=2", "data=3", "--nproc", "6"]) == 0
    (topo, nproc, *rest), (none, four, *opts), (six, *_) = calls
    assert topo == cli.parse_axes(cli.DEFAULT_AXES) and nproc is None and rest == ["auto", 120.0, False]
    assert none is None and four == 4 and opts == ["global", 9.0, True]  # DeepSpeed's default split of 4
    assert six.dims == [2, 3]


def test_bare_command_prints_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: proctopo ") and "{show,check,draw,plan,run}" in out and "examples:" in out
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"proctopo {proctopo.__version__}\n"


@pytest.mark.parametrize("command", [None, "show", "check", "draw", "plan", "run"])
def test_help_has_examples_and_no_markup(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"] if command else ["--help"])
    text = capsys.readouterr().out
    assert "\nexamples:\n  proctopo " in text or "\n  torchrun " in text
    assert "`" not in text and ":func:" not in text and ":class:" not in text and "::" not in text, text


def test_each_placement_option_has_one_help_text() -> None:
    import argparse

    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps: dict[str, dict[str, str | None]] = {"--world-size": {}, "--ranks-per-node": {}}
    for name, p in sub.choices.items():
        for action in p._actions:
            for option in set(action.option_strings) & set(helps):
                helps[option][name] = action.help
    assert sorted(helps["--world-size"]) == ["check", "plan"]
    assert sorted(helps["--ranks-per-node"]) == ["check", "draw", "plan", "show"]
    assert set(helps["--world-size"].values()) == {"ranks in the job (default: $WORLD_SIZE)"}
    assert set(helps["--ranks-per-node"].values()) == {"ranks on each node (default: $LOCAL_WORLD_SIZE)"}


def test_draw_reads_the_launchers_ranks_per_node_as_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main(["draw", "pipe=2", "data=4", "--ranks-per-node", "4", "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cli.main(["draw", "pipe=2", "data=4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == expected and [r["label"] for r in doc["rows"]] == ["node 0", "node 1"]
    assert cli.main(["draw", "pipe=2", "data=4", "--ranks-per-node", "8", "--json"]) == 0  # the option wins
    assert [r["label"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["node 0"]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "0")
    assert cli.main(["draw", "pipe=2", "data=4"]) == 2
    assert capsys.readouterr().err == (
        "proctopo draw: error: environment variable LOCAL_WORLD_SIZE: must be at least 1, got 0\n"
    )


def test_run_checks_nproc_against_the_axes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "pipe=2", "data=3", "--nproc", "4"]) == 2
    assert capsys.readouterr().err == "proctopo run: error: pipe * data = 2 * 3 = 6, but --nproc is 4\n"
    assert cli.main(["run", "pipe=8", "data=16"]) == 2
    assert "proctopo run starts at most 64 local processes, asked for 128" in capsys.readouterr().err


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proctopo", "show", "pipe=2", "data=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pipe=2 x data=2 (4 ranks)" in out.stdout


@pytest.mark.mp
def test_run_subcommand_passes_options_through(torch_dist: Any) -> None:
    # `run` hands every option to the job (proctopo.demo), options before the axes included.
    out = subprocess.run(
        [sys.executable, "-m", "proctopo", "run", "--nproc", "2", "--strategy", "global", "--quiet"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "group_creation='global'" in out.stdout and "OK" in out.stdout


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (
            ["check", "pipe=2", "--ranks-per-node", "0"],
            "argument --ranks-per-node: must be at least 1, got 0",
        ),
        (["check", "--world-size", "x"], "argument --world-size: 'x' is not an integer"),
        (["check", "--world-size", "0"], "argument --world-size: must be at least 1, got 0"),
        (["show", "--rank", "-1"], "argument --rank: must be at least 0, got -1"),
        (["draw", "--format", "gif"], "argument --format: invalid choice: 'gif'"),
        (["draw", "--limit", "-1"], "argument --limit: must be at least 1, got -1"),
        (["run", "--nproc", "0"], "argument --nproc: must be at least 1, got 0"),
        (
            ["run", "--timeout", "0"],
            "argument --timeout: the timeout must be a finite number of seconds above 0 and below "
            "timedelta.max, got 0.0",
        ),
        (["run", "--timeout", "nan"], "argument --timeout: the timeout must be a finite number of seconds"),
        (["run", "--timeout", "1e400"], "argument --timeout: the timeout must be a finite number of seconds"),
        (["run", "--timeout", "soon"], "argument --timeout: 'soon' is not a number"),
        (
            ["run", "--strategy", "fast"],
            "argument --strategy: invalid choice: 'fast' (choose from auto, global, local)",
        ),
        (
            ["run", "--strategy", "split"],
            "argument --strategy: 'split' needs a backend that splits communicators (NCCL on GPUs); "
            "proctopo run uses gloo on CPU: choose auto, global, local",
        ),
    ],
)
def test_options_are_checked_by_the_parser(
    words: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(words)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: proctopo ") and f"proctopo {words[0]}: error: {text}" in err, err


def test_a_closed_pipe_ends_quietly() -> None:
    # Far more output than a pipe holds, so the command is still writing when the reader leaves.
    with subprocess.Popen(
        [sys.executable, "-m", "proctopo", "show", "pipe=64", "data=1024", "--limit", "8192"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("topology   pipe=64 x data=1024 (65536 ranks)")
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 1
    assert err == ""


def test_a_pipe_closed_before_any_output_ends_quietly() -> None:
    # The reader is gone before the command writes: the buffered output fails when it is
    # flushed, at the end of the command, and that must not print an error at exit either.
    for words in (["show"], ["check", "--json"], ["--help"], ["draw", "--group", "data"]):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "proctopo", *words],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write)
        # The promise: no traceback, nothing on stderr, an exit rather than a crash.
        assert proc.stderr == "", (words, proc.stderr)
        if words == ["--help"]:
            # argparse prints the help itself; whether a closed pipe then ends it with 0 or 1
            # depends on the CPython release (even within 3.11), so only a signal is refused.
            assert proc.returncode >= 0, (words, proc.returncode)
        else:
            assert proc.returncode == 1, (words, proc.returncode)  # the command's own guard


@pytest.mark.parametrize("words", [["show"], ["check", "--json"], ["draw", "--group", "data"]])
def test_output_still_buffered_when_the_reader_left_ends_quietly(
    words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # All the output fits in the buffer, so it meets the closed pipe only when flushed: the
    # command must flush it itself and end quietly, not leave it to fail at interpreter exit.
    read, write = os.pipe()
    os.close(read)
    stream = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write, "w"), buffer_size=1 << 16))
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        assert cli.main(words) == 1
        stream.flush()  # nothing is left to fail later
    finally:
        monkeypatch.undo()
        with contextlib.suppress(OSError):
            stream.close()


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "pipe=2", "data=2", "model=2", "--json", "--limit", "6"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "proctopo.show/1" and doc["topology"]["world_size"] == 8
    assert [r["rank"] for r in doc["ranks"]] == list(range(6)) and doc["ranks_left_out"] == 2
    topo = ProcessTopology(["pipe", "data", "model"], [2, 2, 2])
    for row in doc["ranks"]:
        assert tuple(row["coord"].values()) == topo.get_coord(row["rank"])
        assert row["groups"] == {a: topo.group_of(row["rank"], a).tolist() for a in topo.axes}
    assert doc["groups"] == {a: {"count": 4, "size": 2} for a in ("pipe", "data", "model")}


def test_show_one_rank(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["show", "pipe=4", "data=2", "model=2", "--rank", "9", "--ranks-per-node", "4"]
    assert cli.main(words) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "rank 9 of pipe=4 x data=2 x model=2 (16 ranks)"
    assert "  coordinates     pipe=2 data=0 model=1" in text
    assert "  data group      [9, 11]  (group 5 of 8, member 0)" in text
    mp = "[0, 1, 4, 5, 8, 9, 12, 13]  (group 0 of 2, member 5; every axis but data: pipe+model)"
    assert f"  model-parallel  {mp}" in text
    assert "  pipeline        stage 2 of 4: previous stage rank 5, next stage rank 13" in text
    assert "  node            2 of 4, local rank 1 of 4" in text
    assert cli.main([*words, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "proctopo.show/1" and doc["rank"] == 9
    assert doc["coord"] == {"pipe": 2, "data": 0, "model": 1}
    assert doc["groups"]["pipe"] == {
        "ranks": [1, 5, 9, 13],
        "size": 4,
        "index": 1,
        "count": 4,
        "position": 2,
    }
    assert doc["model_parallel_group"] == {
        "axes": ["pipe", "model"],
        "ranks": [0, 1, 4, 5, 8, 9, 12, 13],
        "size": 8,
        "index": 0,
        "count": 2,
        "position": 5,
    }
    assert doc["pipeline"] == {"stage": 2, "stages": 4, "prev": 5, "next": 13}
    assert doc["node"] == {"index": 2, "local_rank": 1, "ranks_per_node": 4, "count": 4}


@pytest.mark.parametrize("dims", [[1, 3, 2], [4, 1, 1], [3, 2, 2]])
def test_show_rank_groups_and_neighbours_for_every_rank(
    dims: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    axes = ["pipe", "data", "model"]
    topo = ProcessTopology(axes, dims)
    for rank in range(topo.world_size()):
        assert (
            cli.main(["show", *(f"{a}={d}" for a, d in zip(axes, dims)), "--rank", str(rank), "--json"]) == 0
        )
        doc = json.loads(capsys.readouterr().out)
        coord = topo.get_coord(rank)
        for a in axes:  # the group: every rank that differs from this one along a alone
            same = [
                r
                for r in range(topo.world_size())
                if all(getattr(topo.get_coord(r), b) == getattr(coord, b) for b in axes if b != a)
            ]
            assert doc["groups"][a]["ranks"] == same
        mp = [r for r in range(topo.world_size()) if topo.get_coord(r).data == coord.data]
        assert doc["model_parallel_group"]["ranks"] == mp
        stage = coord.pipe
        prev = topo.get_rank(**{**coord._asdict(), "pipe": stage - 1}) if stage > 0 else None
        nxt = topo.get_rank(**{**coord._asdict(), "pipe": stage + 1}) if stage < dims[0] - 1 else None
        assert doc["pipeline"] == {"stage": stage, "stages": dims[0], "prev": prev, "next": nxt}


def test_show_rank_defaults_to_the_launchers_rank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert cli.main(["show", "pipe=2", "data=2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rank"] == 3 and doc["node"]["index"] == 1 and doc["pipeline"]["prev"] == 1
    assert cli.main(["show", "pipe=2", "data=2", "--rank", "0", "--json"]) == 0  # the option wins
    assert json.loads(capsys.readouterr().out)["rank"] == 0
    monkeypatch.setenv("RANK", "4")
    assert cli.main(["show", "pipe=2", "data=2"]) == 2
    assert capsys.readouterr().err == (
        "proctopo show: error: rank 4 is not in the topology: ranks run from 0 to 3\n"
    )
    monkeypatch.setenv("RANK", "x")
    assert cli.main(["show", "pipe=2", "data=2"]) == 2
    assert (
        capsys.readouterr().err == "proctopo show: error: environment variable RANK: 'x' is not an integer\n"
    )


def test_run_builds_the_grid_the_names_ask_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Any vocabulary goes: the topology handed to the job is the one the words (or --order) describe.
    calls: list[Any] = []
    monkeypatch.setattr(demo, "run", lambda topo, *args: calls.append(topo) or 0)
    monkeypatch.delenv("RANK", raising=False)
    for words in (
        ["tp=2", "cp=2", "pp=2"],
        ["dp_replicate=2", "dp_shard=2", "tp=2"],
        ["pipe=2", "model=2"],
        ["tp=2", "cp=2", "pp=2", "--order", "tp-cp-pp"],
        ["--order", "tp-cp-dp-pp", "tp=2", "pp=2"],
    ):
        assert cli.main(["run", *words]) == 0
    assert [(t.axes, t.dims) for t in calls] == [
        (["tp", "cp", "pp"], [2, 2, 2]),
        (["dp_replicate", "dp_shard", "tp"], [2, 2, 2]),
        (["pipe", "model"], [2, 2]),
        (["pp", "cp", "tp"], [2, 2, 2]),
        (["pp", "dp", "cp", "tp"], [2, 1, 1, 2]),
    ]
    assert [demo.uses_pipeline_grid(t) for t in calls] == [False] * 5
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("proctopo run: warning: tp=2 cp=2 pp=2 puts tp outermost")


def test_run_checks_every_argument_before_starting_processes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[int] = []
    monkeypatch.setattr(launch, "run", lambda fn, nproc, *a, **k: started.append(nproc) or [])
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main(["run", "tp=2", "pp=2", "--nproc", "8"]) == 2
    assert capsys.readouterr().err.endswith("proctopo run: error: tp * pp = 2 * 2 = 4, but --nproc is 8\n")
    assert cli.main(["run", "--order", "tp-pp", "tp=2", "cq=2"]) == 2
    assert capsys.readouterr().err == "proctopo run: error: unknown axis 'cq'; the axes are ['pp', 'tp']\n"
    assert cli.main(["run", "--order", "tp-pp", "tp=2", "tp=4"]) == 2
    assert "axis 'tp' has two sizes; with --order each axis takes one word" in capsys.readouterr().err
    assert cli.main(["run", "--order", "tp--pp"]) == 2
    assert "proctopo run: error: order 'tp--pp' has an empty name" in capsys.readouterr().err
    assert started == []


def test_run_without_torch_prints_one_line() -> None:
    hide = (
        "import sys; sys.modules['torch'] = None; from proctopo.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for words in (["run", "--nproc", "2"], ["run", "pipe=2", "data=2", "model=2"], ["run", "pp=2", "tp=2"]):
        proc = subprocess.run(
            [sys.executable, "-c", hide, *words], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("proctopo run: error: proctopo run needs torch")
        assert "pip install torch" in proc.stderr


def _launcher_env(rank: int, world: int, local: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(local),
        "LOCAL_RANK": str(rank % local),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }


def test_launcher_environment_in_subprocesses() -> None:
    # What a job script does on each rank before training: check the layout, then ask for its groups.
    axes = ["pipe=2", "data=2", "model=2"]
    for rank in (0, 5):
        env = _launcher_env(rank, 8, 4)
        check = subprocess.run(
            [sys.executable, "-m", "proctopo", "check", "--json", *axes, "--intra-node", "model"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert check.returncode == 0, check.stderr
        report = json.loads(check.stdout)
        assert report["ok"] and report["world_size"] == 8 and report["ranks_per_node"] == 4
        show = subprocess.run(
            [sys.executable, "-m", "proctopo", "show", "--rank", str(rank), "--json", *axes],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        doc = json.loads(show.stdout)
        assert doc["rank"] == rank and doc["node"]["index"] == rank // 4
    # A job of 6 ranks given a layout of 8: the check fails on every rank, before training.
    bad = subprocess.run(
        [sys.executable, "-m", "proctopo", "check", "--json", *axes],
        capture_output=True,
        text=True,
        timeout=60,
        env=_launcher_env(1, 6, 2),
    )
    assert bad.returncode == 1
    assert bad.stderr == "MISMATCH: pipe * data * model = 2 * 2 * 2 = 8, but the world size is 6\n"
    assert json.loads(bad.stdout)["violations"][0]["rule"] == "world_size"


def _job_script() -> str:
    """The job script of docs/cli.md (the first bash block after its heading)."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    part = doc[doc.index("## Under a launcher") :]
    start = part.index("```bash\n") + len("```bash\n")
    return part[start : part.index("```", start)]


@pytest.mark.mp
def test_the_documented_job_script_under_torchrun(torch_dist: Any, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(_job_script())
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"  # `proctopo` as an installed package has it
    bin_dir.mkdir()
    (bin_dir / "proctopo").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m proctopo "$@"\n')
    (bin_dir / "proctopo").chmod(0o755)
    # The training stand-in leaves a file per rank (the ranks' output interleaves).
    train = "import os, pathlib; pathlib.Path('trained.' + os.environ['RANK']).write_text('ok')"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AXES": "pipe=1 data=1 model=2",
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [*torchrun, "--no-python", str(script), sys.executable, "-c", train],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("trained.*")) == ["trained.0", "trained.1"]
    for rank in (0, 1):
        report = json.loads((tmp_path / "proctopo" / f"check.{rank}.json").read_text())
        assert report["ok"] and report["world_size"] == 2 and report["ranks_per_node"] == 2
        doc = json.loads((tmp_path / "proctopo" / f"rank.{rank}.json").read_text())
        assert doc["rank"] == rank and doc["groups"]["model"]["ranks"] == [0, 1]
    # The same script refuses a layout that does not fit the job, and training never starts.
    for p in tmp_path.glob("trained.*"):
        p.unlink()
    out = subprocess.run(
        [*torchrun, "--no-python", str(script), sys.executable, "-c", train],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "AXES": "pipe=2 data=2 model=2"},
        cwd=tmp_path,
    )
    assert out.returncode != 0 and list(tmp_path.glob("trained.*")) == []
    assert "MISMATCH: pipe * data * model = 2 * 2 * 2 = 8, but the world size is 2" in out.stderr


PLAN_CASES = [
    (["pipe=4", "data=0", "model=8", "--world-size", "512", "--ranks-per-node", "8"],
     dict(sizes={"pipe": 4, "data": 0, "model": 8}, world_size=512, ranks_per_node=8)),
    (["tp=8", "dp=0", "pp=4", "--world-size", "1024", "--ranks-per-node", "8", "--nodes-per-domain", "9",
      "--top", "3", "--group", "dp,tp", "--communicator-bytes", "1000"],
     dict(sizes={"tp": 8, "dp": 0, "pp": 4}, world_size=1024, ranks_per_node=8, nodes_per_domain=9, top=3,
          groups=[["dp", "tp"]], communicator_bytes=1000)),
    (["tp=8", "cp=2", "dp=0", "pp=4", "--order", "tp-cp-dp-pp", "--world-size", "2048",
      "--ranks-per-node", "8", "--model",
      "params=70e9,hidden=8192,seq_len=8192,micro_batch=1,layers=80,kv_hidden=1024"],
     dict(sizes={"tp": 8, "cp": 2, "dp": 0, "pp": 4}, order="tp-cp-dp-pp", world_size=2048, ranks_per_node=8,
          model={"params": 70e9, "hidden": 8192, "seq_len": 8192, "micro_batch": 1, "layers": 80,
                 "kv_hidden": 1024})),
    (["tp=8", "dp=16", "--ranks-per-node", "8", "--weight", "dp=6", "--weight", "tp=0.5",
      "--tier", "inter-domain=25e9,12e-6", "--tier", "intra-node=300e9", "--candidate", "tp-dp",
      "--candidate", "dp-tp"],
     dict(sizes={"tp": 8, "dp": 16}, ranks_per_node=8, weights={"dp": 6.0, "tp": 0.5},
          tiers={"inter-domain": {"bandwidth": 25e9, "latency": 12e-6}, "intra-node": {"bandwidth": 300e9}},
          candidates=["tp-dp", "dp-tp"])),
]  # fmt: skip


@pytest.mark.parametrize(("words", "kwargs"), PLAN_CASES)
def test_plan_maps_each_option_to_the_planner(
    words: list[str],
    kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from proctopo import planner

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    sizes = kwargs.pop("sizes")
    expected = planner.plan(sizes, **kwargs)
    assert cli.main(["plan", *words]) == 0
    assert capsys.readouterr().out == expected.render() + "\n"
    assert cli.main(["plan", *words, "--json", "--limit", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(json.dumps(expected.to_dict()))
    assert doc["schema"] == planner.SCHEMA == "proctopo.plan/2"
    assert cli.main(["plan", *words, "--limit", "2"]) == 0
    assert capsys.readouterr().out == expected.render(limit=2) + "\n"


def test_plan_reads_a_model_file_and_the_launchers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from proctopo import planner

    model = {"params": 7e9, "hidden": 4096, "seq_len": 4096, "micro_batch": 1, "layers": 32}
    (tmp_path / "model.json").write_text(json.dumps(model))
    monkeypatch.setenv("WORLD_SIZE", "64")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    for text in (str(tmp_path / "model.json"), json.dumps(model)):
        assert cli.main(["plan", "tp=8", "dp=0", "--model", text, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        expected = planner.plan({"tp": 8, "dp": 0}, world_size=64, ranks_per_node=8, model=model)
        assert doc == json.loads(json.dumps(expected.to_dict())) and doc["units"] == "seconds per step"


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["pipe=2", "data=4"], "plan needs ranks_per_node (or LOCAL_WORLD_SIZE in the environment)"),
        (
            ["pipe=2", "data=4", "model=2", "--ranks-per-node", "8", "--weight", "dat=2"],
            "unknown axis 'dat'; the axes are ['pipe', 'data', 'model'] (did you mean 'data'?)",
        ),
        (["pipe=2", "pipe=4", "--ranks-per-node", "8"], "axis name 'pipe' appears twice"),
        (["pipe=2", "data=4", "--ranks-per-node", "8", "--world-size", "16"], "but the world size is 16"),
        (["pipe=two", "--ranks-per-node", "8"], "axis 'pipe=two' must be written name=size"),
    ],
)
def test_plan_errors(
    words: list[str], text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cli.main(["plan", *words]) == 2
    err = capsys.readouterr().err
    assert err.startswith("proctopo plan: error: ") and text in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (
            ["--tier", "inter-domain"],
            "argument --tier: 'inter-domain' must be written LEVEL=BANDWIDTH[,LATENCY[,OVERSUBSCRIPTION]]",
        ),
        (["--tier", "=50e9"], "argument --tier: '=50e9' must be written LEVEL=BANDWIDTH"),
        (["--tier", "inter-domain=fast"], "argument --tier: inter-domain=fast: 'fast' is not a number"),
        (["--weight", "data"], "argument --weight: 'data' must be written AXIS=GB"),
        (["--model", "{not json"], "argument --model: not JSON"),
        (["--model", "/nonexistent/model.json"], "argument --model: cannot read '/nonexistent/model.json'"),
        (["--model", "[1, 2]"], "argument --model: cannot read"),
        (["--model", "hidden"], "argument --model: cannot read 'hidden'"),
    ],
)
def test_plan_options_are_checked_by_the_parser(
    words: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["plan", "tp=8", "--ranks-per-node", "8", *words])
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_the_command_never_imports_torch_nor_the_optional_extras() -> None:
    code = (
        "import contextlib, io, sys\n"
        "from proctopo import cli\n"
        "loaded = lambda: sorted(m for m in ('torch', 'matplotlib', 'rich') if m in sys.modules)\n"
        "print(loaded())\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    codes = [cli.main(w) for w in (['show', '--rank', '3', '--json'], ['check', '--json'],\n"
        "             ['draw', '--format', 'svg'], ['draw', '--format', 'html'],\n"
        "             ['draw', '--color', 'never'], ['plan', '--ranks-per-node', '4'],\n"
        "             ['run', 'tp=2', 'pp=2', '--nproc', '8'])]\n"
        "print(codes, loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == ["[]", "[0, 0, 0, 0, 0, 0, 2] []"], out.stdout + out.stderr


@pytest.mark.parametrize(
    "words",
    [
        ["show", "--limit", "3"],
        ["show", "--json", "--limit", "3"],
        ["show", "--rank", "5", "--json"],
        ["check", "--ranks-per-node", "4", "--intra-node", "tp", "--json"],
        ["draw", "--group", "cp", "--ranks-per-node", "4"],
    ],
)
def test_order_lays_out_the_axes_in_every_command(
    words: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --order tp-cp-pp (fastest first) with the sizes as words is the same layout as pp=2 cp=4 tp=2.
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    code = cli.main([*words, "pp=2", "cp=4", "tp=2"])
    expected = capsys.readouterr()
    assert "pp=2 x cp=4 x tp=2" in expected.out or '"pp",\n' in expected.out
    assert cli.main([*words, "--order", "tp-cp-pp", "tp=2", "cp=4", "pp=2"]) == code
    got = capsys.readouterr()
    assert (got.out, got.err) == (expected.out, expected.err) and "warning" not in got.err


def test_order_gives_size_1_to_an_axis_without_a_word(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "--order", "tp-cp-dp-pp", "tp=2", "pp=2", "--limit", "1"]) == 0
    assert capsys.readouterr().out.startswith("topology   pp=2 x dp=1 x cp=1 x tp=2 (4 ranks)\n")


WARNING = (
    "tp=8 dp=4 puts tp outermost and dp innermost (name=size words are slowest first); for tp innermost, "
    "as the Megatron order tp-dp means, add --order tp-dp or write dp=4 tp=8"
)


@pytest.mark.parametrize(
    ("words", "warned"),
    [
        (["show", "tp=8", "dp=4", "--limit", "1"], True),
        (["check", "tp=8", "dp=4", "--ranks-per-node", "8"], True),
        (["check", "tp=8", "dp=4", "--ranks-per-node", "32"], False),  # one node: the order costs nothing
        (["draw", "tp=8", "dp=4", "--ranks-per-node", "8"], True),
        (["plan", "tp=8", "dp=4", "--ranks-per-node", "8"], True),
        (["plan", "tp=8", "dp=0", "--world-size", "32", "--ranks-per-node", "8"], True),  # a free size
        (["plan", "tp=8", "dp=0", "--world-size", "16", "--ranks-per-node", "16"], False),  # one node
        (["plan", "tp=8", "dp=4", "--order", "tp-dp", "--ranks-per-node", "8"], False),  # said how
        (["plan", "tp=8", "dp=4", "--convention", "generic", "--ranks-per-node", "8"], True),
        (["show", "dp=4", "tp=8", "--limit", "1"], False),
        (["show", "tp=8", "cp=1", "dp=4", "pp=1", "--limit", "1"], True),  # axes of size 1 do not count
        (["show", "model=8", "data=4", "--limit", "1"], True),  # DeepSpeed's names alike
        (["show", "dp_shard=4", "tp=8", "--limit", "1"], False),  # torchtitan's order
        (["show", "tp=8", "vocab=4", "--limit", "1"], False),  # a name the planner does not know
        (["show", "tp=8", "ep=4", "--limit", "1"], False),  # expert groups are another layout's
        # Data-like (torchtitan's FSDP and replicas) and context axes innermost count too.
        (["check", "tp=8", "dp_shard=16", "--ranks-per-node", "8"], True),
        (["check", "tp=8", "cp=16", "--ranks-per-node", "8"], True),
        (["check", "tp=8", "dp_replicate=2", "dp_shard=4", "--ranks-per-node", "8"], True),
        (["show", "model=2", "sequence=4", "--limit", "1"], True),  # DeepSpeed's context axis
        (["check", "tp=8", "cp=16", "--ranks-per-node", "128"], False),  # one node: tp stays on it
        (["check", "dp_shard=16", "tp=8", "--ranks-per-node", "8"], False),  # tp innermost, as written
        (["check", "cp=2", "dp_shard=8", "tp=1", "--ranks-per-node", "8"], False),  # no tensor axis
    ],
)
def test_words_that_look_innermost_first_get_a_one_line_warning(
    words: list[str], warned: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cli.main(words) in (0, 1)
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    if not warned:
        assert err == []
        return
    assert len(err) == 1 and err[0].startswith(f"proctopo {words[0]}: warning: ")
    if words[1:3] == ["tp=8", "dp=4"]:
        assert err[0] == f"proctopo {words[0]}: warning: {WARNING}"
    # The words the warning proposes give the other layout, without a warning.
    proposed = err[0].rsplit(" or write ", 1)[1].split()
    assert cli.main([words[0], *proposed, *words[1 + len(proposed) :]]) in (0, 1)
    assert "warning" not in capsys.readouterr().err


def test_a_tensor_axis_outside_fsdp_or_context_across_nodes_is_warned_about() -> None:
    # The command a user types: tp=8 outermost puts each tensor group across 8 (16) nodes of 8 ranks.
    for words, inner in ((["tp=8", "dp_shard=16"], "dp_shard"), (["tp=8", "cp=16"], "cp")):
        out = subprocess.run(
            [sys.executable, "-m", "proctopo", "check", *words, "--ranks-per-node", "8"],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")},
        )
        assert out.returncode == 0, out.stderr
        assert out.stderr == (
            f"proctopo check: warning: {' '.join(words)} puts tp outermost and {inner} innermost "
            f"(name=size words are slowest first); for tp innermost, as the Megatron order tp-{inner} "
            f"means, add --order tp-{inner} or write {' '.join(reversed(words))}\n"
        )


@pytest.mark.parametrize("command", ["check", "plan"])
def test_with_hosts_the_warning_does_not_read_the_launchers_ranks_per_node(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")  # would say the 32 ranks fit on one node
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"n{i} slots=8\n" for i in range(4)))
    assert cli.main([command, "tp=8", "dp=4", "--hostfile", str(hostfile)]) == 0
    assert capsys.readouterr().err == f"proctopo {command}: warning: {WARNING}\n"


@pytest.mark.parametrize("convention", [["--megatron"], ["--convention", "megatron"]])
def test_plan_in_megatron_convention_does_not_warn_as_its_orders_ignore_the_words(
    convention: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    docs = []
    for words in (["tp=8", "dp=4"], ["dp=4", "tp=8"]):
        assert cli.main(["plan", *words, *convention, "--ranks-per-node", "8", "--json"]) == 0
        out, err = capsys.readouterr()
        assert "warning" not in err, err
        docs.append(json.loads(out))
    # The given order is Megatron's default whatever order the words are in: nothing to warn about.
    assert docs[0] == docs[1]
    assert docs[0]["convention"] == "megatron"
    assert docs[0]["given"] == ["pp", "dp", "ep", "cp", "tp"]


def test_the_warning_is_in_the_json_and_said_once_per_job(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cli.main(["show", "--json", "tp=8", "dp=4"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == [WARNING] and err == f"proctopo show: warning: {WARNING}\n"
    assert cli.main(["show", "--json", "dp=4", "tp=8"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    monkeypatch.setenv("RANK", "3")  # under a launcher only rank 0 writes it to stderr
    assert cli.main(["show", "--json", "tp=8", "dp=4"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == [WARNING] and json.loads(out)["rank"] == 3 and err == ""


# ---------------------------------------------------------------------------- no traceback, ever


def _no_constants(name: str) -> None:
    raise AssertionError(f"the JSON holds {name}")


def test_json_is_strict_and_names_a_non_finite_number() -> None:
    assert json.loads(cli.json_text({"a": [1, 2.5]}), parse_constant=_no_constants) == {"a": [1, 2.5]}
    for value, shown in ((float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan")):
        with pytest.raises(InvalidArgumentError) as info:
            cli.json_text({"layouts": [{"order": "tp-dp", "axes": {"tp": {"cost": value}}}]})
        assert str(info.value).startswith(
            f"the result's layouts[0].axes.tp.cost is {shown}, which JSON cannot hold: "
        )


@pytest.mark.parametrize(
    "extra", [["--weight", "tp=1e308"], ["--model", "params=1e309,hidden=8,seq_len=1,micro_batch=1,layers=1"]]
)
def test_plan_json_never_holds_infinity_or_nan(
    extra: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    status = cli.main(["plan", "dp=4", "tp=8", "--ranks-per-node", "2", "--json", *extra])
    out, err = capsys.readouterr()
    if status == 0:  # the planner kept every number finite
        json.loads(out, parse_constant=_no_constants)
    else:  # or the input was refused, in one line
        assert status == 2 and out == "" and err.startswith("proctopo plan: error: "), err
        assert err.count("\n") == 1, err


def test_draw_json_goes_through_the_one_strict_dump(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from proctopo import draw as drawing

    real = drawing.to_dict
    monkeypatch.setattr(drawing, "to_dict", lambda pic: {**real(pic), "odd": float("nan")})
    assert cli.main(["draw", "pipe=2", "data=2", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        "proctopo draw: error: the result's odd is nan, which JSON cannot hold"
    )


def _proctopo(*words: str | bytes, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "proctopo", *words], text=True, timeout=120, **kwargs)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(
            '{"params": "x", "hidden": 8, "seq_len": 1, "micro_batch": 1, "layers": 1}', id="not a number"
        ),
        pytest.param(
            '{"params": 7e9, "hidden": 8, "seq_len": 1, "micro_batch": 1, "layers": 1, "x": 1}',
            id="unknown field",
        ),
        pytest.param(f"params=7e9,hidden=8,seq_len=1,micro_batch=1,layers={10**400}", id="huge layers"),
    ],
)
def test_the_planners_input_errors_exit_2_in_one_line(model: str) -> None:
    proc = _proctopo("plan", "dp=0", "tp=2", "--world-size", "8", "--ranks-per-node", "4", "--model", model)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("proctopo plan: error: model") and proc.stderr.count("\n") == 1, proc.stderr


NOT_UTF8 = [
    (["show", "\udcff=2"], "name=size", r"b'\xff=2'"),
    (["check", "pipe=2", "d\udcffta=2"], "name=size", r"b'd\xffta=2'"),
    (["plan", "tp=2", "\udcff=0", "--ranks-per-node", "2"], "name=size", r"b'\xff=0'"),
    (["plan", "dp=4", "tp=2", "--ranks-per-node", "2", "--weight", "\udcff=2"], "--weight", r"b'\xff'"),
    (["draw", "--group", "da\udcffa"], "--group", r"b'da\xffa'"),
    (["draw", "--slice", "\udcff=1"], "--slice", r"b'\xff=1'"),
    (["show", "--order", "tp-\udcff"], "--order", r"b'tp-\xff'"),
    (["run", "--order", "tp-\udcff", "tp=2"], "--order", r"b'tp-\xff'"),
]


@pytest.mark.parametrize(("words", "option", "shown"), NOT_UTF8)
def test_an_argument_that_is_not_utf8_is_named(
    words: list[str], option: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command line holds bytes; Python keeps those that are not UTF-8 as lone surrogates.
    assert cli.main(words) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"proctopo {words[0]}: error: argument {option}: {shown} is not UTF-8 text; names, sizes and "
        "options are read as UTF-8\n"
    )


def test_bytes_on_the_command_line_but_any_path(tmp_path: Path) -> None:
    proc = _proctopo("show", b"\xff=2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        r"proctopo show: error: argument name=size: b'\xff=2' is not UTF-8 text; names, sizes and "
        "options are read as UTF-8\n"
    )
    path = os.fsencode(tmp_path) + b"/pic\xff.svg"  # a file name may be any bytes
    proc = _proctopo("draw", "pipe=2", "data=2", "-o", path)
    assert proc.returncode == 0 and proc.stderr == "" and os.path.exists(path)


@pytest.mark.parametrize("name", ["x.svg", "x.html", "x.txt", "x.png"])
def test_an_output_file_that_cannot_be_written_is_named(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if name.endswith(".png"):
        require("matplotlib")
    path = tmp_path / "missing" / name
    assert cli.main(["draw", "pipe=2", "data=2", "-o", str(path)]) == cli.EXIT_CANNOT_WRITE == 3
    out, err = capsys.readouterr()
    assert out == "" and err == f"proctopo draw: error: cannot write {path}: No such file or directory\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "words",
    [["show", "pipe=2", "data=2"], ["check", "--json"], ["draw", "--json"], ["draw"], ["show", "--help"]],
)
def test_a_full_disk_is_reported_not_a_traceback(words: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = _proctopo(*words, stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 3, proc.stderr
    assert (
        proc.stderr
        == f"proctopo {words[0]}: error: cannot write the standard output: No space left on device\n"
    )


def test_text_the_standard_output_cannot_encode_is_reported() -> None:
    proc = _proctopo("show", "données=2", env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("proctopo show: error: cannot write the standard output: 'ascii' codec")


def test_a_closed_standard_output_cannot_be_written(tmp_path: Path) -> None:
    # Not 1, which says that check found a broken rule: the result was never seen.
    def closed(*words: str) -> subprocess.CompletedProcess[str]:
        script = 'exec "$0" -m proctopo "$@" >&-'
        return subprocess.run(
            ["sh", "-c", script, sys.executable, *words], capture_output=True, text=True, timeout=120
        )

    for words in (["show", "pipe=2", "data=2"], ["draw", "--json"], ["check"], ["check", "pipe=2", "data=2"]):
        proc = closed(*words)
        assert (proc.returncode, proc.stderr) == (
            3,
            f"proctopo {words[0]}: error: cannot write the standard output: it is closed\n",
        ), words
    proc = closed("show", "--help")
    assert (proc.returncode, proc.stderr) == (
        3,
        "proctopo show: error: cannot write the standard output: it is closed\n",
    )
    out = tmp_path / "x.svg"  # nothing for the standard output: the command's own status
    proc = closed("draw", "pipe=2", "data=2", "-o", str(out))
    assert (proc.returncode, proc.stderr) == (0, "") and out.read_text().startswith("<svg ")
