"""ProcessGrid on real gloo groups: the DeviceMesh export, and layouts sharing communicators.

Every mesh dimension and slice is compared, rank for rank, with what
``init_device_mesh`` builds for the same shape, proven with an all_reduce and
used by a DTensor round trip; the export registers no process group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import proctopo
import pytest
from helpers import RunWorkers, require
from helpers import device_mesh_workers as workers
from proctopo.device_mesh import mesh_dims
from proctopo.testing import RecordingComm

CASES = [
    # axes, dims, mesh dims, mesh shape, mesh dim names, 2-D slices to compare
    (["pipe", "data", "model"], [2, 2, 2], ["pipe", "data", "model"], [2, 2, 2], ["pipe", "data", "model"],
     [["pipe", "model"], ["data", "model"]]),
    (["pipe", "data", "context", "model"], [2, 2, 2, 1], ["pipe", ("data", "context"), "model"], [2, 4, 1],
     ["pipe", "data_context", "model"], [["pipe", "data_context"]]),
]  # fmt: skip


def test_export_equals_init_device_mesh_and_creates_no_group(run_workers: RunWorkers) -> None:
    results = run_workers(workers.export, 8, (CASES,), timeout=150)
    for rank, per_case in enumerate(results):
        for case, res in zip(CASES, per_case):
            assert res["grew"] == 0, (rank, case, res)
            assert res["shape"] == case[3]


def test_a_grid_over_a_process_group_exports_global_ranks(run_workers: RunWorkers) -> None:
    members = [1, 2, 5, 6]
    results = run_workers(workers.over_process_group, 8, (members,), timeout=90)
    for rank, res in enumerate(results):
        if rank not in members:
            assert res is None
            continue
        row = [1, 2] if rank in (1, 2) else [5, 6]
        col = [1, 5] if rank in (1, 5) else [2, 6]
        assert res == {"mesh": [[1, 2], [5, 6]], "grew": 0, "pipe": col, "data": row, "data_slice": row}, rank


def test_layouts_share_communicators_on_gloo(run_workers: RunWorkers) -> None:
    results = run_workers(workers.layouts, 8, timeout=90)
    for rank, res in enumerate(results):
        # pipe, data, model, data+model: the expert layout adds none, the embedding family
        # (the pipe groups again) none, the first-last family ([0, 4], [3, 7]: pipe groups)
        # none either, and as every rank sees that, no rank pads
        assert res["communicators"] == 4, (rank, res)
        assert res["made"] == res["calls"] == 4, (rank, res)
        assert res["proven"]["expert"] == res["proven"]["data"]
        if rank in (0, 3, 4, 7):
            assert res["proven"]["first_last"] == res["proven"]["pipe"]


def test_bad_dims_fail_before_any_collective() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data", "context", "model"], [2, 2, 2, 1])
    comm = RecordingComm(3, 8)
    grid = proctopo.ProcessGrid(topo, comm=comm)
    before = dict(comm.calls)
    for dims, error, match in (
        (["pipe", "expert"], proctopo.UnknownAxisError, "expert"),
        (["data", "pipe"], proctopo.InvalidArgumentError, "'pipe' comes after 'data'"),
        ([("context", "data")], proctopo.InvalidArgumentError, "'data' comes after 'context'"),
        (["data", ("data", "context")], proctopo.InvalidArgumentError, "data"),
        (["pipe", ()], proctopo.InvalidArgumentError, r"dims\[1\] is empty"),
        (["pipe", 3], TypeError, r"dims\[1\]"),
        ([], proctopo.InvalidArgumentError, r"dims is empty \(\[\]\); a DeviceMesh needs at least one"),
        ((), proctopo.InvalidArgumentError, r"name axes of the topology \(pipe, data, context, model\)"),
    ):
        with pytest.raises(error, match=match):
            grid.device_mesh(dims)  # type: ignore[arg-type]
    assert comm.calls == before
    # the axis rules are the topology's own: the same error class and text
    with pytest.raises(proctopo.InvalidArgumentError) as mine:
        mesh_dims(topo, ["data", ("data", "context")])
    with pytest.raises(proctopo.InvalidArgumentError) as theirs:
        topo.axis_indices(["data", "data", "context"])
    assert str(mine.value) == str(theirs.value)
    assert mesh_dims(topo, None) == [("pipe",), ("data",), ("context",), ("model",)]
    assert mesh_dims(topo, "data") == [("data",)]


def test_a_device_type_without_a_backend_is_refused_before_torch_sees_it(run_workers: RunWorkers) -> None:
    for res in run_workers(workers.bad_device_types, 2, timeout=60):
        # gloo serves cpu and cuda; anything else (a device, an unknown name) is refused
        for device_type in ("nonexistent", "cuda:0", "CPU", "meta", 0):
            msg = res[repr(device_type)]
            assert msg.startswith("InvalidArgumentError: device_type must be a device type"), msg
            assert f"('cpu', 'cuda': backend 'cpu:gloo,cuda:gloo'), got {device_type!r}" in msg, msg
        assert res["empty"].startswith("InvalidArgumentError: dims is empty"), res["empty"]
        assert res["grew"] == 0 and res["cpu"] == "cpu", res


def test_the_export_creates_nothing_and_names_the_call_a_flattened_dimension_needs() -> None:
    topo = proctopo.ProcessTopology(["pipe", "data", "context", "model"], [2, 2, 2, 1])
    comm = RecordingComm(3, 8)
    grid = proctopo.ProcessGrid(topo, comm=comm)
    before = dict(comm.calls)
    with pytest.raises(proctopo.GroupNotCreatedError) as info:
        grid.device_mesh(["pipe", ("data", "context")])
    assert str(info.value).endswith(
        "grid.create_group(['data', 'context']), or build the grid with groups=[['data', 'context']]"
    )
    assert comm.calls == before  # refused before any call, torch untouched


def test_a_destroyed_grid_exports_nothing() -> None:
    grid = proctopo.ProcessGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 2]), comm=RecordingComm(0, 4))
    grid.destroy()
    with pytest.raises(proctopo.GridDestroyedError):
        grid.device_mesh()


def _doc_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    section = text[text.index("## DeviceMesh") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.mark.slow
def test_the_fsdp_example_of_the_docs_runs_under_torchrun(tmp_path: Path, torch_dist: object) -> None:
    require("torch.distributed.fsdp")
    script = tmp_path / "fsdp_example.py"
    script.write_text(_doc_example())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", str(script)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "DeviceMesh((pipe=1, data_context=2, model=2)" in done.stdout, done.stdout
