"""The bad-input catalogue: every row is a call, the class it raises and the exact message.

``python tests/test_errors_catalogue.py`` runs every row of ``ROWS`` and writes
docs/errors.md from the outcomes; the tests fail when a row raises another class than the
one listed, or when docs/errors.md differs from what the rows produce now (a changed
message shows up as a diff of that file: regenerate it, and read the diff).
Nothing here needs torch: grid rows run on :class:`proctopo.testing.RecordingComm`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import proctopo
import proctopo.deepspeed
import pytest
from proctopo import cli
from proctopo.testing import RecordingComm

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
REGENERATE = "python tests/test_errors_catalogue.py"


class PeerWithOtherDims(RecordingComm):
    """Plays rank 0 of a job whose rank 1 was given other axis sizes."""

    def exchange(
        self, header: Sequence[int], block: Sequence[int], *, timeout: float
    ) -> tuple[list[int], Any]:
        reduced, blocks = super().exchange(header, block, timeout=timeout)
        return [reduced[0] + 1, *reduced[1:]], blocks

    def allgather_bytes(self, data: bytes, *, timeout: float) -> list[bytes]:
        self.calls["collective"] += 1
        other = json.dumps(dict(json.loads(data), dims=[4, 1, 2]), sort_keys=True).encode()
        return [data, other] + [data] * (self.world_size() - 2)


#: What the calls of the catalogue may name (shown at the top of docs/errors.md).
SETUP = {
    "T": 'ProcessTopology(["pipe", "data", "model"], [2, 3, 4])',
    "PMD": "PipeModelDataParallelTopology(num_pp=2, num_mp=2, num_dp=2)",
}
NAMESPACE: dict[str, Any] = {
    "np": np,
    "proctopo": proctopo,
    "ProcessTopology": proctopo.ProcessTopology,
    "PipeDataParallelTopology": proctopo.PipeDataParallelTopology,
    "PipeModelDataParallelTopology": proctopo.PipeModelDataParallelTopology,
    "dims_create": proctopo.dims_create,
    "parse_order": proctopo.parse_order,
    "check_axis_names": proctopo.topology.check_axis_names,
    "check_sizes": proctopo.topology.check_sizes,
    "check_rank": proctopo.topology.check_rank,
    "prime_factors": proctopo.prime_factors,
    "parse_axes": cli.parse_axes,
    "RecordingComm": RecordingComm,
    "PeerWithOtherDims": PeerWithOtherDims,
    "Fraction": __import__("fractions").Fraction,
}
for _name, _source in SETUP.items():
    NAMESPACE[_name] = eval(_source, NAMESPACE)


def _grid(name: str) -> Any:
    return getattr(proctopo, name)


NAMESPACE["PipelineParallelGrid"] = lambda *a, **k: _grid("PipelineParallelGrid")(*a, **k)
NAMESPACE["ProcessGrid"] = lambda *a, **k: _grid("ProcessGrid")(*a, **k)

SECTIONS = {
    "topology": "Building a topology",
    "query": "Asking a topology",
    "arith": "dims_create and prime_factors",
    "order": "Megatron order strings (ProcessTopology.from_order)",
    "cli": "The proctopo command",
    "grid": "The grid's own checks (on RecordingComm, without torch)",
    "peers": "Peers proctopo drives (megatron-core, DeepSpeed)",
}

# (section, call, class). A call that starts with "proctopo " is a command line: its "class"
# is its exit status and its message the error line it prints.
ROWS: list[tuple[str, str, str]] = [
    ("topology", 'ProcessTopology(["a", "b"], [2, 0])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a"], [-3])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a", "b"], [2, -2**100])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a"], [2, 3])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a", "b"], [2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a", "b", "a"], [2, 2, 2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a", ""], [2, 2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["1x"], [2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["class"], [2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["_a"], [2])', "InvalidTopologyError"),
    ("topology", 'ProcessTopology(["a", "b"], [2**40, 2**40])', "WorldSizeOverflowError"),
    ("topology", 'ProcessTopology(["a", "b"], [2, 2**100])', "WorldSizeOverflowError"),
    ("topology", 'ProcessTopology(["a"], [np.uint64(2**64 - 1)])', "WorldSizeOverflowError"),
    ("topology", 'ProcessTopology(["a"], [2.0])', "TypeError"),
    ("topology", 'ProcessTopology(["a"], ["2"])', "TypeError"),
    ("topology", 'ProcessTopology(["a"], [None])', "TypeError"),
    ("topology", 'ProcessTopology(["a"], [np.float32(2)])', "TypeError"),
    ("topology", 'ProcessTopology(["a"], [Fraction(2, 1)])', "TypeError"),
    ("topology", 'ProcessTopology("ab", [2, 2])', "TypeError"),
    ("topology", "ProcessTopology([3], [2])", "TypeError"),
    ("topology", 'ProcessTopology(["a"], 2)', "TypeError"),
    ("topology", "PipeDataParallelTopology(num_pp=0, num_dp=2)", "InvalidTopologyError"),
    ("topology", "PipeModelDataParallelTopology(num_pp=2, num_mp=2.5, num_dp=1)", "TypeError"),
    ("topology", 'check_axis_names(["a", "b", "a"])', "InvalidTopologyError"),
    ("topology", 'check_axis_names(["a", "1x"])', "InvalidTopologyError"),
    ("topology", 'check_sizes({"tp": 2, "pp": 0})', "InvalidTopologyError"),
    ("topology", 'check_sizes({"tp": 2**64})', "WorldSizeOverflowError"),
    ("topology", 'check_sizes({"tp": 2.0})', "TypeError"),
    ("topology", "check_rank(8, 8)", "RankOutOfRangeError"),
    ("topology", "check_rank(2**64, 8)", "RankOutOfRangeError"),
    ("topology", "check_rank(0, 0)", "InvalidTopologyError"),
    ("query", "T.get_rank(pipe=2, data=0, model=0)", "CoordinateOutOfRangeError"),
    ("query", "T.get_rank(pipe=0, data=-1, model=0)", "CoordinateOutOfRangeError"),
    ("query", "T.get_rank(pipe=0, data=0, model=2**80)", "CoordinateOutOfRangeError"),
    ("query", "T.get_rank(pipe=0, data=0)", "InvalidArgumentError"),
    ("query", "T.get_rank(pipe=0, data=0, mdl=0)", "UnknownAxisError"),
    ("query", "T.get_rank(pipe=0.0, data=0, model=0)", "TypeError"),
    ("query", 'T.get_rank(pipe="0", data=0, model=0)', "TypeError"),
    ("query", "T.get_coord(24)", "RankOutOfRangeError"),
    ("query", "T.get_coord(-1)", "RankOutOfRangeError"),
    ("query", "T.get_coord(2**70)", "RankOutOfRangeError"),
    ("query", "T.get_coord(1.0)", "TypeError"),
    ("query", "T.get_coord(None)", "TypeError"),
    ("query", "T.filter_match(modle=0)", "UnknownAxisError"),
    ("query", "T.filter_match(pipe=0.5)", "TypeError"),
    ("query", 'T.get_axis_list("modle", 0)', "UnknownAxisError"),
    ("query", 'T.get_axis_list("pipe", "0")', "TypeError"),
    ("query", "T.get_rank_repr(99)", "RankOutOfRangeError"),
    ("query", 'T.groups("modle")', "UnknownAxisError"),
    ("query", 'T.groups(["pipe", "pipe"])', "InvalidArgumentError"),
    ("query", "T.groups([0])", "TypeError"),
    ("query", 'T.group_of(24, "pipe")', "RankOutOfRangeError"),
    ("query", "T.group_of(0, None)", "TypeError"),
    ("query", 'T.group_index(0, ["x"])', "UnknownAxisError"),
    ("query", 'T.group_head(0, "pipe", -1)', "InvalidArgumentError"),
    ("query", 'T.group_head(0, "pipe", 1.5)', "TypeError"),
    ("query", 'T.group_head(24, "pipe", 1)', "RankOutOfRangeError"),
    ("query", 'T.group_size(["data", "modle"])', "UnknownAxisError"),
    ("query", 'T.shape_text(["data", "data"])', "InvalidArgumentError"),
    ("query", 'T.shift(0, "x")', "UnknownAxisError"),
    ("query", 'T.shift(99, "pipe")', "RankOutOfRangeError"),
    ("query", 'T.shift(0, "pipe", 0.5)', "TypeError"),
    ("query", "T.shift(0, None)", "TypeError"),
    ("query", 'T.axis_indices(["data", "data"])', "InvalidArgumentError"),
    ("query", "T.ranks([[0, 0]])", "InvalidArgumentError"),
    ("query", "T.ranks([[0, 0, 4]])", "CoordinateOutOfRangeError"),
    ("query", "T.ranks([[0.5, 0, 0]])", "TypeError"),
    ("query", "T.ranks(np.array([[0, 0, 2**64 - 1]], dtype=np.uint64))", "CoordinateOutOfRangeError"),
    ("query", "T.coords([[0]])", "InvalidArgumentError"),
    ("query", "T.coords([0, 24])", "RankOutOfRangeError"),
    ("query", "T.coords(np.array([2**63], dtype=np.uint64))", "RankOutOfRangeError"),
    ("query", "T.coords(np.array([1.0]))", "TypeError"),
    ("query", "T.check_world_size(16)", "GridSizeError"),
    ("query", 'ProcessTopology(["a", "b"], [2**62, 1]).groups("a")', "ValueError"),
    ("query", 'ProcessTopology(["a", "b"], [2**62, 1]).group_list(0, "a")', "ValueError"),
    ("query", 'ProcessTopology(["a", "b"], [1, 2**62]).filter_match(a=0)', "ValueError"),
    ("arith", "prime_factors(0)", "InvalidArgumentError"),
    ("arith", "prime_factors(-4)", "InvalidArgumentError"),
    ("arith", "prime_factors(2**63)", "WorldSizeOverflowError"),
    ("arith", "prime_factors(12.0)", "TypeError"),
    ("arith", 'prime_factors("12")', "TypeError"),
    ("arith", "dims_create(0, [0, 0])", "InvalidArgumentError"),
    ("arith", "dims_create(12, [-1, 0])", "InvalidArgumentError"),
    ("arith", "dims_create(12, [5, 0])", "InvalidArgumentError"),
    ("arith", "dims_create(12, [2**40, 2**40, 0])", "InvalidArgumentError"),
    ("arith", "dims_create(12, [2, 3])", "InvalidArgumentError"),
    ("arith", "dims_create(2**64, [0])", "WorldSizeOverflowError"),
    ("arith", "dims_create(12, [2**64, 0])", "WorldSizeOverflowError"),
    ("arith", "dims_create(12, [0.5, 0])", "TypeError"),
    ("arith", "dims_create(12, 3)", "TypeError"),
    ("arith", 'dims_create(4, b"\\x00\\x00")', "TypeError"),
    ("order", 'ProcessTopology.from_order("tp--pp")', "InvalidArgumentError"),
    ("order", 'ProcessTopology.from_order("")', "InvalidArgumentError"),
    ("order", 'ProcessTopology.from_order("tp-dp-tp")', "InvalidArgumentError"),
    ("order", 'ProcessTopology.from_order("tp-dp", tp=2, zz=3)', "UnknownAxisError"),
    ("order", 'ProcessTopology.from_order("tp-dp", tp=0)', "InvalidTopologyError"),
    ("order", 'ProcessTopology.from_order("tp-dp", rename={"tp": "x", "dp": "x"})', "InvalidTopologyError"),
    ("order", 'ProcessTopology.from_order("tp-dp", rename={"tp": "1a"})', "InvalidTopologyError"),
    ("order", "ProcessTopology.from_order(3)", "TypeError"),
    ("order", 'parse_order("tp-dp-tp")', "InvalidArgumentError"),
    ("order", 'parse_order(["tp", "dp"])', "TypeError"),
    ("cli", 'parse_axes(["pipe"])', "InvalidArgumentError"),
    ("cli", 'parse_axes(["pipe=x"])', "InvalidArgumentError"),
    ("cli", 'parse_axes(["pipe=-1"])', "InvalidArgumentError"),
    ("cli", 'parse_axes(["pipe=0"])', "InvalidTopologyError"),
    ("cli", 'parse_axes(["=2"])', "InvalidTopologyError"),
    ("cli", 'parse_axes(["pipe=2", "pipe=3"])', "InvalidTopologyError"),
    ("cli", 'parse_axes(["pipe=99999999999999999999"])', "WorldSizeOverflowError"),
    ("cli", "proctopo show pipe=0 data=2", "exit 2"),
    ("cli", "proctopo show data=2 pipe", "exit 2"),
    ("cli", "proctopo show --limit 0 pipe=2", "exit 2"),
    ("cli", "proctopo show --rank 8 pipe=2 data=4", "exit 2"),
    ("cli", "proctopo check --world-size 16 pipe=2 data=4", "exit 1"),
    ("cli", "proctopo check --ranks-per-node x pipe=2", "exit 2"),
    ("cli", "proctopo draw --group modle pipe=2 data=2", "exit 2"),
    ("cli", "proctopo run --nproc 6 pipe=2 data=2", "exit 2"),
    ("cli", "proctopo run --timeout -1", "exit 2"),
    ("grid", "PipelineParallelGrid(PMD, comm=RecordingComm(rank=0, world_size=16))", "GridSizeError"),
    (
        "grid",
        'PipelineParallelGrid(ProcessTopology(["data", "model"], [2, 4]), '
        "comm=RecordingComm(rank=0, world_size=8))",
        "UnknownAxisError",
    ),
    (
        "grid",
        'PipelineParallelGrid(PMD, group_creation="fast", comm=RecordingComm(rank=0, world_size=8))',
        "InvalidArgumentError",
    ),
    (
        "grid",
        "PipelineParallelGrid(PMD, timeout=-1, comm=RecordingComm(rank=0, world_size=8))",
        "InvalidArgumentError",
    ),
    (
        "grid",
        'PipelineParallelGrid(PMD, timeout=float("nan"), comm=RecordingComm(rank=0, world_size=8))',
        "InvalidArgumentError",
    ),
    (
        "grid",
        'PipelineParallelGrid(PMD, group_creation="split", comm=RecordingComm(rank=0, world_size=8))',
        "GroupCreationError",
    ),
    (
        "grid",
        'PipelineParallelGrid(PMD, group_creation="local", '
        'comm=RecordingComm(rank=0, world_size=8, backend="mpi"))',
        "GroupCreationError",
    ),
    (
        "grid",
        "PipelineParallelGrid(PMD, comm=RecordingComm(rank=0, world_size=16, parent_ranks=range(8, 16)))",
        "GroupCreationError",
    ),
    (
        "grid",
        "PipelineParallelGrid(PMD, comm=PeerWithOtherDims(rank=0, world_size=8))",
        "TopologyMismatchError",
    ),
    (
        "grid",
        'ProcessGrid(PMD, groups=[["nope"]], comm=RecordingComm(rank=0, world_size=8))',
        "UnknownAxisError",
    ),
    (
        "grid",
        'ProcessGrid(PMD, groups=[["data", "data"]], comm=RecordingComm(rank=0, world_size=8))',
        "InvalidArgumentError",
    ),
    (
        "grid",
        'ProcessGrid(PMD, layouts={"x": ProcessTopology(["a"], [4])}, '
        "comm=RecordingComm(rank=0, world_size=8))",
        "GridSizeError",
    ),
    (
        "grid",
        'PipelineParallelGrid(PMD, comm=RecordingComm(rank=0, world_size=8)).get_group(["nope"])',
        "UnknownAxisError",
    ),
    (
        "grid",
        "PipelineParallelGrid(PMD, comm=RecordingComm(rank=0, world_size=8)).stage_to_global(5)",
        "CoordinateOutOfRangeError",
    ),
    (
        "grid",
        "(g := PipelineParallelGrid(PMD, comm=RecordingComm(rank=0, world_size=8))).destroy()"
        " or g.get_data_parallel_group()",
        "GridDestroyedError",
    ),
    ("grid", "RecordingComm(rank=8, world_size=8)", "RankOutOfRangeError"),
    ("grid", "RecordingComm(rank=0, world_size=0)", "InvalidTopologyError"),
    (
        "grid",
        'ProcessGrid(PMD, comm=RecordingComm(rank=0, world_size=8)).get_group(["pipe", "data"])',
        "GroupNotCreatedError",
    ),
    (
        "grid",
        'ProcessGrid(PMD, comm=RecordingComm(rank=0, world_size=8, hosts=["a", "b"] * 4), '
        'intra_node=["model"])',
        "PlacementError",
    ),
    ("peers", 'proctopo.deepspeed.check_version("0.18.0")', "UnsupportedPeerError"),
]

#: Classes of proctopo.errors without a row, and why.
NOT_CATALOGUED = {
    "ProctopoError": "the base class of all the others",
    "GridTimeoutError": "a rank that misses a set-up collective: needs several processes",
    "PeerLostError": "a peer that dies during a set-up collective: needs several processes",
    "GridStateError": "megatron's parallel state in the wrong state: needs megatron-core "
    "(its subclass GridDestroyedError has a row)",
}


@dataclass(frozen=True)
class Outcome:
    kind: str  # the exception class's name, "exit N", or "returned"
    message: str
    also: str  # the built-in classes that also catch it


def _builtin_bases(cls: type[BaseException]) -> str:
    skip = {cls, BaseException, Exception, object}
    return ", ".join(f"`{c.__name__}`" for c in cls.__mro__ if c not in skip and c.__module__ == "builtins")


def _command(line: str) -> Outcome:
    argv = shlex.split(line)[1:]
    err, out = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK") if k in os.environ}
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = cli.main(argv)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.update(saved)
    lines = [ln for ln in (err.getvalue() + out.getvalue()).splitlines() if ln.strip()]
    said = [ln for ln in lines if "error" in ln.lower() or "mismatch" in ln.lower()] or lines[-1:]
    return Outcome(f"exit {status}", " ".join(s.strip() for s in said), "")


def outcome(call: str) -> Outcome:
    """What a row's call does now."""
    if call.startswith("proctopo "):
        return _command(call)
    try:
        eval(call, dict(NAMESPACE))
    except Exception as exc:
        return Outcome(type(exc).__name__, str(exc), _builtin_bases(type(exc)))
    return Outcome("returned", "", "")


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"``{text}``" if "`" in text else f"`{text}`"


def render() -> str:
    lines = [
        "# Bad input: what proctopo raises",
        "",
        f"Generated by `{REGENERATE}` from the table in that file, which also checks every",
        "row: a call, the exception it raises (or, for a command line, its exit status), the",
        "built-in classes that also catch that exception, and the exact message. Every class",
        "is in `proctopo.errors`, except two of Python's own: `TypeError` for an argument of the",
        "wrong type, and `ValueError` for a result too large to address. The calls use",
        "",
    ]
    lines += [f"- `{name} = {source}`" for name, source in SETUP.items()]
    lines += [
        "",
        "with `check_axis_names`, `check_sizes` and `check_rank` from `proctopo.topology` (a",
        "topology's rules, checked without building one), `parse_order` from `proctopo`,",
        "and the grid rows `RecordingComm` from `proctopo.testing` (one rank played without torch)",
        "and `PeerWithOtherDims`, a `RecordingComm` whose rank 1 reports other axis sizes.",
    ]
    lines += [
        "",
        "Classes without a row: " + "; ".join(f"`{k}`, {v}" for k, v in NOT_CATALOGUED.items()) + ".",
    ]
    for key, title in SECTIONS.items():
        lines += [
            "",
            f"## {title}",
            "",
            "| call | raises | also caught as | message |",
            "| --- | --- | --- | --- |",
        ]
        for section, call, _ in ROWS:
            if section == key:
                got = outcome(call)
                kind = got.kind if got.kind.startswith("exit") else f"`{got.kind}`"
                if got.kind == "returned":
                    kind, got = "nothing: it returns", Outcome(got.kind, "(no error)", "")
                lines.append(f"| {_cell(call)} | {kind} | {got.also} | {_cell(got.message)} |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("section", "call", "kind"), ROWS, ids=[call for _, call, _ in ROWS])
def test_row_raises_its_class(section: str, call: str, kind: str) -> None:
    got = outcome(call)
    assert got.kind == kind, f"{call}: {got.kind}: {got.message}"
    assert got.message, f"{call}: no message"
    assert "incompatible function arguments" not in got.message and "Traceback" not in got.message


def test_a_type_error_names_the_argument() -> None:
    """No TypeError is Python's bare complaint: each names the argument it is about."""
    bare = []
    for _, call, _ in ROWS:
        got = outcome(call)
        if got.kind == "TypeError" and " must " not in got.message:
            bare.append(f"{call}: {got.message}")
    assert not bare, "\n".join(bare)


def test_every_error_class_has_a_row() -> None:
    raised = {kind for _, _, kind in ROWS}
    assert set(proctopo.errors.__all__) - set(NOT_CATALOGUED) <= raised


def test_docs_errors_md_is_current() -> None:
    want = render()
    have = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert have == want, f"docs/errors.md is not what the table produces; run: {REGENERATE}"


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC} ({len(ROWS)} rows)", file=sys.stderr)
