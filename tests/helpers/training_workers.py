"""The training examples run as a user runs them, under torchrun; the workers of test_deepspeed_pipe.py.

:func:`run_example` starts ``torchrun --standalone`` on an example script, as the
example's docstring says to, and lets every process end the way a training
script ends: its last call is ``dist.destroy_process_group()``, then the
interpreter exits normally. torchrun's exit status is 0 only when every process
exited with 0, so a process that aborts while it exits (a crash in a
destructor, SIGABRT) fails the test, naming each rank's exit code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Largest loss difference from the one-process reference that a training test accepts.
TOLERANCE = 1e-5


def exit_codes(torchrun_stderr: str) -> dict[int, str]:
    """Each failed rank's exit code, read from torchrun's failure report.

    >>> exit_codes("  rank      : 2 (local_rank: 2)\\n  exitcode  : -6 (pid: 15397)  (SIGABRT)\\n")
    {2: '-6 (pid: 15397)  (SIGABRT)'}
    """
    found = re.findall(r"rank\s*:\s*(\d+) \(local_rank.*\n\s*exitcode\s*:\s*(.+)", torchrun_stderr)
    return {int(rank): code.strip() for rank, code in found}


def run_example(
    script: str, nproc: int, args: list[str], workdir: Path, *, timeout: float = 240.0
) -> list[dict[str, Any]]:
    """Run ``examples/<script>`` on ``nproc`` processes under torchrun; each rank's record, in rank order.

    The test fails unless torchrun exits with 0 (every process exited with 0) and
    every rank wrote its record; a run still going after ``timeout`` seconds is
    killed and fails as a hang.
    """
    out = workdir / f"{Path(script).stem}-records"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        str(EXAMPLES / script),
        "--out",
        str(out),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=workdir,
        start_new_session=True,  # one process group: a hang is killed whole
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"{script} on {nproc} processes still ran after {timeout:g} s\n{stderr[-4000:]}")
    what = f"{script} {' '.join(args)} on {nproc} processes"
    if proc.returncode != 0:
        codes = exit_codes(stderr)
        pytest.fail(
            f"{what}: torchrun exited with {proc.returncode}; exit codes of the failed ranks (the others "
            f"were stopped by torchrun): {codes}\n--- stdout\n{stdout[-2000:]}\n--- stderr\n{stderr[-6000:]}",
            pytrace=False,
        )
    records = []
    for rank in range(nproc):
        path = out / f"rank{rank}.json"
        assert path.exists(), (
            f"{what}: rank {rank} exited with 0 without writing its record\n{stdout[-2000:]}"
        )
        records.append(json.loads(path.read_text()))
    return records


def largest_difference(records: list[dict[str, Any]]) -> float:
    """The largest |loss - reference| over every step of every rank; each rank trained every step."""
    diffs = []
    for rec in records:
        assert len(rec["losses"]) == len(rec["reference"]) > 0, rec
        diffs += [abs(a - b) for a, b in zip(rec["losses"], rec["reference"])]
    return max(diffs)


def made(records: list[dict[str, Any]], ours: dict[str, int], own: str) -> list[dict[str, int]]:
    """Check each rank's counts: proctopo's set-up made exactly ``ours``, and no more communicators
    or ``new_group`` calls than the stack's own set-up ``own``; each rank's counts of ``own``."""
    theirs = []
    for rec in records:
        assert rec["made"]["proctopo"] == dict(ours, split_group=0), rec["made"]
        other = rec["made"][own]
        assert other["communicators"] >= ours["communicators"], rec["made"]
        assert other["new_group"] + other["split_group"] >= ours["new_group"], rec["made"]
        theirs.append(other)
    return theirs


# ---------------------------------------------------------------- workers of test_deepspeed_pipe.py
def _init_deepspeed(rank: int) -> Any:
    os.environ.setdefault("LOCAL_RANK", str(rank))  # PipelineModule reads it
    sys.path.insert(0, str(EXAMPLES))
    import training

    training.init_deepspeed(join=False)  # the launcher started the gloo group
    return training


def pipeline_module_refusals(rank: int, world_size: int) -> dict[str, str]:
    """What proctopo.deepspeed refuses on a real world: each refusal's error, by case."""
    training = _init_deepspeed(rank)
    import proctopo
    import torch.distributed as dist
    from deepspeed.pipe import LayerSpec, PipelineModule
    from proctopo.deepspeed import pipeline_module, use_grid
    from torch import nn

    specs = [LayerSpec(training.SeededLinear, 4, 4, seed=i) for i in range(4)]
    grid = proctopo.PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, world_size // 2]))
    out: dict[str, str] = {}

    def attempt(case: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            out[case] = f"{type(exc).__name__}: {exc}"

    attempt("topology argument", lambda: pipeline_module(specs, grid, topology=grid.topology()))
    other = proctopo.ProcessTopology(["pipe", "data"], [world_size, 1])

    def other_topology() -> None:
        with use_grid(grid):
            PipelineModule(specs, topology=other, loss_fn=nn.MSELoss())

    attempt("other topology", other_topology)

    def nested() -> None:
        with use_grid(grid), use_grid(grid):
            pass

    attempt("nested", nested)
    out["restored"] = repr(sys.modules["deepspeed.runtime.pipe.module"].PipelineParallelGrid)
    # a grid over a part of the world (here, ranks 0 and 1 of 4): its grid ranks are not global ranks
    half = dist.new_group([0, 1])
    if rank < 2:
        part = proctopo.PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, 1]), half)
        attempt("part of the world", lambda: pipeline_module(specs, part, loss_fn=nn.MSELoss()))
    dist.barrier()
    grid.destroy()
    attempt("destroyed", lambda: pipeline_module(specs, grid, loss_fn=nn.MSELoss()))
    dist.barrier()
    return out


def pipeline_module_on_grid(rank: int, world_size: int) -> dict[str, Any]:
    """A PipelineModule subclass built inside use_grid: what it holds and reads of the grid."""
    training = _init_deepspeed(rank)
    import proctopo
    from deepspeed.pipe import LayerSpec, PipelineModule
    from proctopo.deepspeed import use_grid
    from torch import nn

    class Stack(PipelineModule):  # type: ignore[misc]  # as a model's own pipeline class would
        def __init__(self, topology: Any) -> None:
            specs = [LayerSpec(training.SeededLinear, 4, 4, seed=i) for i in range(4)]
            super().__init__(specs, topology=topology, loss_fn=nn.MSELoss(), partition_method="uniform")

    grid = proctopo.PipelineParallelGrid(proctopo.ProcessTopology(["pipe", "data"], [2, world_size // 2]))
    calls_before = grid.group_creation_calls
    elsewhere: list[Any] = []
    with use_grid(grid) as given:
        model = Stack(grid.topology())
        # a module built on another thread meanwhile gets DeepSpeed's own grid
        thread = threading.Thread(target=lambda: elsewhere.append(Stack(grid.topology())._grid))
        thread.start()
        thread.join()
    return {
        "given": given is grid,
        "grid": model._grid is grid and model.mpu() is grid,
        "other thread": type(elsewhere[0]).__module__ + "." + type(elsewhere[0]).__name__,
        "stage": model.stage_id,
        "layers": [model._local_start, model._local_stop],
        "grid_calls": grid.group_creation_calls - calls_before,
        "restored": repr(sys.modules["deepspeed.runtime.pipe.module"].PipelineParallelGrid),
    }


# ---------------------------------------------------------------- worker of test_training.py
def fsdp_over_two_exports(rank: int, world_size: int) -> dict[str, str]:
    """``fully_shard`` over a 1-D export of parameters split over another export, by case."""
    import proctopo
    from torch import nn
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    grid = proctopo.ProcessGrid(proctopo.ProcessTopology(["data", "model"], [world_size // 2, 2]))
    plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
    mesh = grid.device_mesh(["data", "model"])
    out = {}
    for case, (data, model) in {
        "two 1-D exports": (grid.device_mesh(["data"]), grid.device_mesh(["model"])),
        "slices of one 2-D export": (mesh["data"], mesh["model"]),
    }.items():
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 4))
        parallelize_module(net, model, plan)
        try:
            fully_shard(net, mesh=data)
            out[case] = "ok"
        except Exception as exc:
            out[case] = f"{type(exc).__name__}: {exc}"
    return out
