"""Pictures of a layout (proctopo.draw and ``proctopo draw``): rendered, then read back."""

from __future__ import annotations

import bisect
import io
import json
import re
import shlex
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import require
from hypothesis import given, settings
from hypothesis import strategies as st
from proctopo import InvalidArgumentError, ProcessTopology, cli
from proctopo import draw as drawing

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` (and its submodules) look uninstalled."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)


def test_labels_run_a_to_z_then_aa_without_gaps() -> None:
    labels = [drawing.label(i) for i in range(26 + 26 * 26 + 5)]
    assert labels[:3] == ["a", "b", "c"] and labels[25] == "z"
    assert labels[26:29] == ["aa", "ab", "ac"] and labels[701] == "zz" and labels[702] == "aaa"
    assert len(set(labels)) == len(labels)
    # Every one-letter name, then every two-letter name, in order: nothing skipped.
    assert labels == sorted(labels, key=lambda s: (len(s), s))
    assert sum(len(s) == 2 for s in labels) == 26 * 26


def _cells(text: str) -> dict[int, tuple[str, str]]:
    """rank -> (row label, group letter) from a text picture whose rows are nodes."""
    cells: dict[int, tuple[str, str]] = {}
    for line in text.splitlines():
        m = re.match(r"\s+(node \d+)\s+(.*)$", line)
        if m:
            words = m.group(2).split()
            for k in range(0, len(words), 2):
                cells[int(words[k])] = (m.group(1), words[k + 1])
    return cells


def test_text_lays_ranks_out_by_node_and_letters_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["draw", "pipe=2", "data=4", "model=2", "--group", "data", "--ranks-per-node", "4"]) == 0
    text = capsys.readouterr().out
    cells = _cells(text)
    assert sorted(cells) == list(range(16))
    topo = ProcessTopology(["pipe", "data", "model"], [2, 4, 2])
    assert all(cells[r][0] == f"node {r // 4}" for r in range(16))
    # Ranks share a letter exactly when they share a data group.
    for group in topo.get_axis_comm_lists("data"):
        assert len({cells[r][1] for r in group}) == 1
    assert len({cells[g[0]][1] for g in topo.get_axis_comm_lists("data")}) == 4
    # The legend names each group's ranks.
    for group in topo.get_axis_comm_lists("data"):
        letter = cells[group[0]][1]
        assert re.search(rf"^\s+{letter}\s+{re.escape(str(group))}", text, re.M), (letter, text)


def test_domains_frame_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["draw", "pipe=2", "data=4", "model=2", "--ranks-per-node", "4", "--nodes-per-domain", "2"]
    assert cli.main(words) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("domain ")]
    assert [lines[i] for i in heads] == ["domain 0 (nodes 0-1)", "domain 1 (nodes 2-3)"]
    assert lines[heads[1] + 1].split()[:2] == ["node", "2"]


def test_large_worlds_are_summarised_not_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["draw", "pipe=8", "data=16384", "model=8", "--group", "data", "--ranks-per-node", "8"]) == 0
    )
    text = capsys.readouterr().out
    assert "showing 256 of 1048576 ranks" in text and "(131040 more nodes)" in text
    cells = _cells(text)
    assert len(cells) == 256 and 1048575 in cells and cells[1048575][0] == "node 131071"
    assert len(text.splitlines()) < 80


def test_a_slice_or_a_node_is_drawn_alone(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["draw", "pipe=4", "data=64", "model=8", "--group", "model", "--ranks-per-node", "8"]
    assert cli.main([*base, "--node", "37"]) == 0
    assert sorted(_cells(capsys.readouterr().out)) == list(range(296, 304))
    assert cli.main([*base, "--slice", "pipe=3,data=5"]) == 0
    topo = ProcessTopology(["pipe", "data", "model"], [4, 64, 8])
    assert sorted(_cells(capsys.readouterr().out)) == topo.filter_match(pipe=3, data=5)
    assert cli.main([*base, "--slice", "pipe=1"]) == 0  # 512 ranks: a summary of the slice
    text = capsys.readouterr().out
    assert "showing 256 of 512 chosen ranks" in text
    assert set(_cells(text)) <= set(topo.filter_match(pipe=1))


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--slice", "pipe=4"], "coordinate 4 is out of range for axis 'pipe' of size 4 (valid: 0..3)"),
        (
            ["--slice", "pip=0"],
            "unknown axis 'pip'; the axes are ['pipe', 'data', 'model'] (did you mean 'pipe'?)",
        ),
        (
            ["--group", "modle"],
            "unknown axis 'modle'; the axes are ['pipe', 'data', 'model'] (did you mean 'model'?)",
        ),
        (
            ["--slice", "pipe=x"],
            "slice 'pipe=x' must be written name=index, the index in decimal digits (e.g. pipe=0)",
        ),
        (["--node", "64"], "node 64 is not in the layout: 2048 ranks on nodes of 32 ranks are nodes 0..63"),
        (["--format", "png"], "a PNG is written to a file: give -o FILE.png"),
    ],
)
def test_bad_selections_fail_with_the_reason(
    extra: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["draw", "pipe=4", "data=64", "model=8", "--ranks-per-node", "32", *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"proctopo draw: error: {text}\n", err


def test_node_needs_ranks_per_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["draw", "--node", "1"]) == 2
    assert "ranks per node must be given" in capsys.readouterr().err


def _svg_cells(root: ET.Element) -> tuple[dict[int, tuple[str, str]], dict[str, str]]:
    """rank -> (group letter, fill) of every rank cell; letter -> fill of every legend entry."""
    cells = {
        int(r.attrib["data-rank"]): (r.attrib.get("data-group", ""), r.attrib["fill"])
        for r in root.iter(f"{SVG}rect")
        if r.attrib.get("class") == "rank"
    }
    legend = {
        r.attrib["data-group"]: r.attrib["fill"]
        for r in root.iter(f"{SVG}rect")
        if r.attrib.get("class") == "legend"
    }
    return cells, legend


def test_svg_has_every_rank_cell_and_legend_entry(tmp_path: Path) -> None:
    out = tmp_path / "layout.svg"
    words = [
        "pipe=2",
        "data=4",
        "model=4",
        "--group",
        "data",
        "--ranks-per-node",
        "8",
        "--nodes-per-domain",
        "2",
    ]
    assert cli.main(["draw", *words, "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg" and int(root.attrib["width"]) > 0 and int(root.attrib["height"]) > 0
    cells, legend = _svg_cells(root)
    assert sorted(cells) == list(range(32))
    topo = ProcessTopology(["pipe", "data", "model"], [2, 4, 4])
    groups = topo.get_axis_comm_lists("data")
    assert len(legend) == len(groups) == 8
    fills = set()
    for group in groups:
        (letter,) = {cells[r][0] for r in group}  # one letter per group
        (fill,) = {cells[r][1] for r in group}  # one colour per group
        assert legend[letter] == fill  # the legend shows the colour of the cells
        fills.add(fill)
    assert len(fills) == 8  # eight groups, eight colours
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "node 3" in texts and "domain 1 (nodes 2-3)" in texts
    assert any(t and str(groups[0]) in t for t in texts)  # the legend lists the ranks of a group
    # Each cell says what it is on hover.
    tips = {
        r.attrib["data-rank"]: r.find(f"{SVG}title")
        for r in root.iter(f"{SVG}rect")
        if "data-rank" in r.attrib
    }
    tip = tips["13"]
    assert tip is not None and tip.text == "rank 13: pipe=0 data=3 model=1; data group b; node 1"


def test_html_is_one_self_contained_page(tmp_path: Path) -> None:
    out = tmp_path / "layout.html"
    assert cli.main(["draw", "pipe=2", "data=2", "--group", "pipe", "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing fetched
    root = ET.fromstring(page[page.index("<svg ") : page.index("</svg>") + len("</svg>")])
    cells, legend = _svg_cells(root)
    assert sorted(cells) == [0, 1, 2, 3] and sorted(legend) == ["a", "b"]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_has_the_size_of_the_picture_and_is_not_blank(tmp_path: Path) -> None:
    require("matplotlib")
    import matplotlib.image

    words = ["draw", "pipe=2", "data=4", "model=4", "--group", "data", "--ranks-per-node", "8"]
    assert cli.main([*words, "-o", str(tmp_path / "a.svg")]) == 0
    assert cli.main([*words, "-o", str(tmp_path / "a.png")]) == 0
    root = ET.parse(tmp_path / "a.svg").getroot()
    assert _png_size((tmp_path / "a.png").read_bytes()) == (
        int(root.attrib["width"]),
        int(root.attrib["height"]),
    )
    pixels = matplotlib.image.imread(tmp_path / "a.png")
    colours = {tuple(p) for p in (pixels[..., :3] * 255).round().astype(int).reshape(-1, 3).tolist()}
    _, legend = _svg_cells(root)
    fills = {tuple(int(f[i : i + 2], 16) for i in (1, 3, 5)) for f in legend.values()}
    assert len(fills) == 8 and fills <= colours  # every group's colour is painted


def test_png_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide(monkeypatch, "matplotlib")
    assert cli.main(["draw", "pipe=2", "data=2", "-o", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'proctopo[draw]'" in err
    assert not (tmp_path / "a.png").exists()
    assert cli.main(["draw", "pipe=2", "data=2", "-o", str(tmp_path / "a.svg")]) == 0  # SVG needs nothing


def _text(words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert (
        cli.main(["draw", "pipe=2", "data=4", "model=2", "--group", "data", "--ranks-per-node", "4", *words])
        == 0
    )
    return capsys.readouterr().out


def test_terminal_colours_with_rich(capsys: pytest.CaptureFixture[str]) -> None:
    require("rich")
    plain = _text(["--color", "never"], capsys)
    coloured = _text(["--color", "always"], capsys)
    assert "\x1b[" not in plain and "\x1b[" in coloured
    assert ANSI.sub("", coloured) == plain  # colour added, nothing else changed
    # Each group has its own background colour, the legend's swatch included.
    fill = drawing.color(0)
    rgb = ";".join(str(int(fill[i : i + 2], 16)) for i in (1, 3, 5))
    assert coloured.count(f"48;2;{rgb}m") == 5  # ranks 0, 2, 4, 6 and the legend entry of group a
    assert _text([], capsys) == plain  # not a terminal: no colour


def test_terminal_text_without_rich(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _text(["--color", "never"], capsys)
    _hide(monkeypatch, "rich")
    assert _text(["--color", "always"], capsys) == plain


def test_draw_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["draw", "pipe=2", "data=4", "--group", "data", "--ranks-per-node", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "proctopo.draw/1" and doc["topology"]["dims"] == [2, 4]
    assert [row["label"] for row in doc["rows"]] == ["node 0", "node 1"]
    cells = {c["rank"]: c for row in doc["rows"] for c in row["cells"]}
    assert sorted(cells) == list(range(8)) and cells[5]["group"] == 1 and cells[5]["label"] == "b"
    assert [(g["label"], g["ranks"]) for g in doc["legend"]] == [("a", [0, 1, 2, 3]), ("b", [4, 5, 6, 7])]
    assert doc["legend"][1]["where"] == {"pipe": 1} and doc["ranks_drawn"] == 8


def test_the_format_follows_the_suffix(tmp_path: Path) -> None:
    for suffix, start in ((".svg", "<svg "), (".html", "<!DOCTYPE html>"), (".txt", "pipe=2 x data=2")):
        out = tmp_path / f"a{suffix}"
        assert cli.main(["draw", "pipe=2", "data=2", "-o", str(out)]) == 0
        assert out.read_text().startswith(start), suffix
    assert cli.main(["draw", "pipe=2", "data=2", "--format", "svg", "-o", str(tmp_path / "b.txt")]) == 0
    assert (tmp_path / "b.txt").read_text().startswith("<svg ")


def test_the_readme_picture_is_what_its_command_draws(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^proctopo (draw [^\n]*-o (docs/\S+\.svg))$", readme, re.M)
    assert m, "README shows the command that drew its picture"
    words = shlex.split(m.group(1))
    assert "![" in readme and f"]({m.group(2)})" in readme
    out = tmp_path / "picture.svg"
    assert cli.main([*words[:-1], str(out)]) == 0
    assert out.read_text() == (ROOT / m.group(2)).read_text()


def test_layout_counts_what_it_leaves_out() -> None:
    topo = ProcessTopology(["pipe", "data", "model"], [2, 8, 64])
    pic = drawing.layout(topo, ["model"], ranks_per_node=64, limit=100)
    # 32 ranks of each node (columns), as many first nodes as fit with the last one in 100 ranks.
    assert [r.label for r in pic.rows] == ["node 0", "node 1", "node 15"]
    assert [(len(r.cells), r.more, r.skipped) for r in pic.rows] == [(32, 32, 0), (32, 32, 0), (32, 32, 13)]
    assert pic.ranks_drawn == 96 and pic.ranks_selected == 1024
    buf = io.StringIO()
    drawing.write_text(pic, buf, "never")
    assert "... +32" in buf.getvalue() and "(13 more nodes)" in buf.getvalue()


# ---------------------------------------------------------------------------- bounded by the limit


def test_the_limit_has_an_upper_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = ["draw", "a=500000", "b=2", "--ranks-per-node", "2", "--group", "a"]
    assert cli.main([*big, "--limit", str(drawing.LIMIT_MAX + 1), "-o", str(tmp_path / "big.svg")]) == 2
    assert capsys.readouterr().err == (
        f"proctopo draw: error: a picture draws at most {drawing.LIMIT_MAX} ranks, got a limit of "
        f"{drawing.LIMIT_MAX + 1}; draw one node or one slice to see more of a large world\n"
    )
    assert not (tmp_path / "big.svg").exists()
    with pytest.raises(InvalidArgumentError, match="at most 4096 ranks"):
        drawing.layout(ProcessTopology(["a"], [2]), limit=drawing.LIMIT_MAX + 1)
    # At the bound a million ranks are drawn as a summary of exactly LIMIT_MAX of them.
    assert cli.main([*big, "--limit", str(drawing.LIMIT_MAX), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ranks_drawn"] == drawing.LIMIT_MAX == 4096 and doc["ranks_selected"] == 10**6
    assert doc["rows"][-1]["skipped_before"] == 500000 - 2048 and doc["rows"][-1]["label"] == "node 499999"
    documented = f"at most {drawing.LIMIT_MAX:,}, `proctopo.draw.LIMIT_MAX`"
    assert documented in (ROOT / "docs" / "cli.md").read_text()


@st.composite
def _selections(draw: st.DrawFn) -> tuple[ProcessTopology, dict[str, int], int, int, int]:
    dims = draw(st.lists(st.integers(1, 7), min_size=1, max_size=5))
    axes = [f"a{i}" for i in range(len(dims))]
    where = {a: draw(st.integers(0, d - 1)) for a, d in zip(axes, dims) if draw(st.booleans())}
    n = 1
    for a, d in zip(axes, dims):
        n *= 1 if a in where else d
    lo = draw(st.integers(0, n))
    hi = draw(st.integers(lo, n))
    size = draw(st.integers(1, 2 * n + 3))
    return ProcessTopology(axes, dims), where, lo, hi, size


@given(_selections())
@settings(max_examples=300, deadline=None)
def test_a_selection_is_its_ranks_without_listing_them(
    case: tuple[ProcessTopology, dict[str, int], int, int, int],
) -> None:
    topo, where, lo, hi, size = case
    truth = topo.filter_match(**where) if where else list(range(topo.world_size()))
    sel = drawing.Selection(topo, where)
    assert len(sel) == len(truth) and list(sel) == truth and [sel[i] for i in range(-len(truth), 0)] == truth
    assert [sel.position(r) for r in range(-1, topo.world_size() + 2)] == [
        bisect.bisect_left(truth, r) for r in range(-1, topo.world_size() + 2)
    ]
    window = sel[lo:hi]
    assert list(window) == truth[lo:hi] and len(window) == hi - lo
    assert window.count_blocks(size) == len({r // size for r in truth[lo:hi]})
    assert [window.position(r) for r in truth] == [bisect.bisect_left(truth[lo:hi], r) for r in truth]


def test_a_slice_of_a_huge_world_is_drawn_without_listing_it(capsys: pytest.CaptureFixture[str]) -> None:
    # 2**60 chosen ranks (every fourth of 2**62), two on each node of 8: never listed.
    words = ["draw", "a=1073741824", "b=1073741824", "c=4", "--slice", "c=1", "--ranks-per-node", "8"]
    assert cli.main([*words, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ranks_selected"] == 2**60 and doc["ranks_drawn"] == 256
    rows = doc["rows"]
    assert [c["rank"] for c in rows[0]["cells"]] == [1, 5]
    assert [c["rank"] for c in rows[-1]["cells"]] == [2**62 - 7, 2**62 - 3]
    assert rows[-1]["skipped_before"] == 2**59 - len(rows) and rows[-1]["label"] == f"node {2**59 - 1}"
    # Nodes of a size that does not divide the strides: the count is exact all the same.
    topo = ProcessTopology(["a", "b", "c"], [6, 5, 7])
    pic = drawing.layout(topo, ranks_per_node=3, ranks=drawing.select(topo, [("b", 2)]), limit=8)
    nodes = {r // 3 for r in topo.filter_match(b=2)}
    assert sum(r.skipped for r in pic.rows) + len(pic.rows) == len(nodes)


def test_columns_far_apart_are_drawn_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    # One rank at local rank 2**30 - 1 of each node: no line of a billion spaces.
    words = ["draw", "a=2", "b=1073741824", "--ranks-per-node", "1073741824", "--slice", "b=1073741823"]
    assert cli.main(words) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) < 120
    assert lines[1].split() == ["local", "1073741823"]
    assert [line.split() for line in lines[2:]] == [["node", "0", "1073741823"], ["node", "1", "2147483647"]]
    assert cli.main(["draw", "a=4", "b=64", "--slice", "b=40", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["columns"] == ["b=40"]
    assert [c["rank"] for r in doc["rows"] for c in r["cells"]] == [40, 104, 168, 232]
    assert cli.main(["draw", "a=4", "b=64", "--slice", "b=40", "--format", "svg"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    xs = {r.attrib["x"] for r in root.iter(f"{SVG}rect") if r.attrib.get("class") == "rank"}
    assert len(xs) == 1 and int(root.attrib["width"]) < 400  # one column, not the forty-first


def test_a_png_past_its_size_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["draw", "a=4096", "b=2", "--slice", "b=0", "--ranks-per-node", "2", "--limit", "4096"]
    assert cli.main([*words, "-o", str(tmp_path / "tall.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("proctopo draw: error: the picture is ")
    assert "more than a PNG holds (65535 px a side): draw fewer ranks (--limit), or SVG or HTML" in err
    assert not (tmp_path / "tall.png").exists()


def test_counting_the_nodes_of_a_slice_has_a_budget(capsys: pytest.CaptureFixture[str]) -> None:
    # Nodes of 100,003 ranks against strides whose remainders cycle through all of them.
    words = ["draw", "a=1048576", "b=3", "c=100000", "--slice", "b=1", "--ranks-per-node", "100003"]
    assert cli.main(words) == 2
    assert capsys.readouterr().err == (
        "proctopo draw: error: counting the nodes of this selection would take more than 65,536 steps "
        "(nodes of 100,003 ranks whose remainders repeat slowly against the strides): draw one node "
        "(--node) or fix more axes (--slice)\n"
    )
    assert cli.main([*words, "--node", "1", "--json"]) == 0  # one node: nothing to count
    doc = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in doc["rows"]] == ["node 1"] and doc["ranks_selected"] == 100000 - 3
