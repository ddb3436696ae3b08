"""The proctopo command: show, check, draw and run share one parser and one set of default axes."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest
from proctopo import InvalidArgumentError, ProcessTopology, cli, demo


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


def test_check_reports_mismatch_and_locality() -> None:
    out = io.StringIO()
    assert cli.check(cli.parse_axes(["pipe=2", "data=3", "model=2"]), 16, None, out) == 1
    assert "pipe * data * model = 2 * 3 * 2 = 12, but the world size is 16" in out.getvalue()
    out = io.StringIO()
    assert cli.check(cli.parse_axes(["pipe=4", "data=2", "model=8"]), 64, 8, out) == 0
    lines = out.getvalue().splitlines()
    assert "  model: groups of 8, stride 1: inside one node" in lines
    assert "  data: groups of 2, stride 8: across up to 2 nodes" in lines
    assert "  pipe: groups of 4, stride 16: across up to 4 nodes" in lines


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
    for words in ([], ["show"], ["check"], ["draw"]):
        assert cli.main(words) == 0
    out = capsys.readouterr().out
    assert out.count("pipe=2 x data=2 x model=2 (8 ranks)") == 3  # show twice, check once
    assert "ok: pipe=2 x data=2 x model=2 (8 ranks)" in out and "pipe=1\n" in out  # check; draw's panel

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
    # `run` hands everything after it to proctopo.demo, options first included.
    out = subprocess.run(
        [sys.executable, "-m", "proctopo", "run", "--nproc", "2", "--strategy", "global", "--quiet"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "group_creation='global'" in out.stdout and "OK" in out.stdout


def test_draw_letters_groups_and_numbers_nodes() -> None:
    out = io.StringIO()
    cli.draw(cli.parse_axes(["pipe=2", "data=4", "model=2"]), group="data", ranks_per_node=4, out=out)
    cells: dict[int, tuple[str, str]] = {}
    for line in out.getvalue().splitlines():
        words = line.split()
        if words and words[0].startswith("data="):
            for k in range(1, len(words), 3):
                cells[int(words[k])] = (words[k + 1], words[k + 2])
    assert sorted(cells) == list(range(16))
    topo = ProcessTopology(["pipe", "data", "model"], [2, 4, 2])
    # Ranks share a letter exactly when they share a data group; @n is rank // 4.
    for group in topo.get_axis_comm_lists("data"):
        assert len({cells[r][0] for r in group}) == 1
    assert len({cells[g[0]][0] for g in topo.get_axis_comm_lists("data")}) == 4
    assert all(cells[r][1] == f"@{r // 4}" for r in range(16))


def test_draw_refuses_huge_worlds(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["draw", "pipe=64", "data=64"]) == 2
    assert "at most 256 ranks" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (
            ["check", "pipe=2", "--ranks-per-node", "0"],
            "argument --ranks-per-node: must be at least 1, got 0",
        ),
        (["check", "--world-size", "x"], "argument --world-size: 'x' is not an integer"),
        (["draw", "--limit", "-1"], "argument --limit: must be at least 1, got -1"),
        (["run", "--nproc", "0"], "argument --nproc: must be at least 1, got 0"),
        (["run", "--timeout", "0"], "argument --timeout: must be a positive number of seconds, got 0"),
        (["run", "--timeout", "nan"], "argument --timeout: must be a positive number of seconds, got nan"),
        (["run", "--strategy", "fast"], "argument --strategy: invalid choice: 'fast'"),
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
