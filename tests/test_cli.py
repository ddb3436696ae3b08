"""The proctopo command: show and check."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from proctopo import ProcessTopology, cli


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


@pytest.mark.parametrize("words", [["pipe"], ["pipe=x"], ["=2"], ["pipe=0"]])
def test_bad_axes_exit_2_with_a_message(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", *words]) == 2
    assert "proctopo: error:" in capsys.readouterr().err


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proctopo", "show", "pipe=2", "data=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pipe=2 x data=2 (4 ranks)" in out.stdout


def test_run_subcommand_passes_options_through() -> None:
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


@pytest.mark.parametrize("words", [["check", "pipe=2", "--ranks-per-node", "0"], ["draw", "--limit", "-1"]])
def test_counts_must_be_positive(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(words)
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
