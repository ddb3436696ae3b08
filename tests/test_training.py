"""Training on proctopo grids: each example of examples/ run under torchrun, as a user runs it.

Every run trains a small MLP for five AdamW steps on 4 gloo processes and compares
the loss of each step with one process training the same model, from the same
weights, on the whole batch; then trains again on the stack's own set-up of the
same layout and compares the two runs bit for bit. Each run counts, per rank, the
communicators each set-up made (the growth of torch's group registry) and its
``new_group`` calls: proctopo's counts are exact, and never above the stack's own.
Each test checks that every process exited with 0: the examples end as training
scripts do, with ``dist.destroy_process_group()``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import RunWorkers, require
from helpers.training_workers import (
    TOLERANCE,
    exit_codes,
    fsdp_over_two_exports,
    largest_difference,
    made,
    run_example,
)

WORLD = 4


def test_torchrun_failure_reports_are_read_rank_by_rank() -> None:
    report = (
        "[1]:\n  time      : 2026-12-05_16:22:31\n  host      : localhost\n"
        "  rank      : 0 (local_rank: 0)\n  exitcode  : -6 (pid: 15394)  (SIGABRT)\n  error_file: <N/A>\n"
        "[2]:\n  rank      : 3 (local_rank: 3)\n  exitcode  : -15 (pid: 15398)  (SIGTERM)\n"
    )
    assert exit_codes(report) == {0: "-6 (pid: 15394)  (SIGABRT)", 3: "-15 (pid: 15398)  (SIGTERM)"}


@pytest.mark.mp
def test_fsdp2_and_tensor_parallel_on_a_grid_mesh(tmp_path: Path) -> None:
    """fully_shard over mesh["data"], Colwise/Rowwise over mesh["model"], one 2-D export; and the same on
    init_device_mesh, bit for bit."""
    require("torch.distributed.fsdp")
    records = run_example("fsdp2_tp.py", WORLD, ["--compare-init-device-mesh"], tmp_path)
    assert largest_difference(records) <= TOLERANCE
    for rec in records:
        assert rec["mesh"] == "DeviceMesh((data=2, model=2), 'cpu', stride=(2, 1))", rec
        assert rec["bitwise_equal_losses"] and rec["bitwise_equal_weights"], rec
    assert len({tuple(rec["losses"]) for rec in records}) == 1  # every rank saw the same mean losses
    # a rank is in one data group and one model group: two communicators, one local new_group each;
    # init_device_mesh makes the same two (one per mesh dimension) with more calls
    for own in made(records, {"communicators": 2, "new_group": 2}, "init_device_mesh"):
        assert own["communicators"] == 2, own


def test_two_separately_exported_1d_meshes_cannot_be_combined(run_workers: RunWorkers) -> None:
    """The 2-D mesh rule of docs/training.md: fully_shard refuses parameters split over one export
    with a mesh from another; slices of one 2-D export combine."""
    require("torch.distributed.fsdp")
    # torch 2.13 spells it "meshs", torch 2.14 "meshes".
    refused = re.compile(
        r"RuntimeError: Cannot concatenate DeviceMeshes derived from different device mesh(e)?s"
    )
    for res in run_workers(fsdp_over_two_exports, WORLD, timeout=120):
        assert set(res) == {"two 1-D exports", "slices of one 2-D export"}
        assert refused.fullmatch(res["two 1-D exports"]) and res["slices of one 2-D export"] == "ok"


#: Stage 0 runs in the test command; the sharded stages with the slow tests (.ci/run).
_STAGES = [0, *(pytest.param(stage, marks=pytest.mark.slow) for stage in (1, 2, 3))]


@pytest.mark.mp
@pytest.mark.parametrize("stage", _STAGES)
def test_deepspeed_zero_with_the_grid_as_mpu(stage: int, tmp_path: Path) -> None:
    require("deepspeed")
    records = run_example(
        "deepspeed_zero.py", WORLD, ["--stage", str(stage), "--compare-deepspeed-grid"], tmp_path
    )
    assert largest_difference(records) <= TOLERANCE
    # pipe=1 x data=2 x model=2: the grid's pipe (this rank alone), data and model groups; DeepSpeed's
    # grid calls new_group for each of the 4 + 2 + 2 groups of the three axes and the 2 model-parallel
    # groups (pipe x model), the rank's a second communicator with its model group's ranks.
    # deepspeed.initialize adds none at any stage.
    for own in made(records, {"communicators": 3, "new_group": 3}, "DeepSpeed"):
        assert own == {"communicators": 4, "new_group": 10, "split_group": 0}, own
    for rank, rec in enumerate(records):
        assert rec["bitwise_equal_losses"] is True, rec
        # pipe=1 x data=2 x model=2: the data-parallel group of a rank holds the ranks of its model coordinate
        assert rec["data_parallel_group"] == [rank % 2, rank % 2 + 2], rec
        assert rec["engine_uses_grid_group"] is True, rec
        assert rec["zero_uses_grid_group"] is (None if stage == 0 else True), rec


@pytest.mark.mp
def test_megatron_tensor_parallel_linears(tmp_path: Path) -> None:
    require("megatron.core.tensor_parallel")
    records = run_example("megatron_tp.py", WORLD, ["--compare-megatron-core"], tmp_path)
    assert largest_difference(records) <= TOLERANCE
    # tp=2, dp=2, pp=1, gloo groups asked for (megatron-core's default): the tensor-parallel, the
    # data-parallel and the pipeline (this rank alone) groups, every other kind and the gloo twins
    # sharing them; megatron-core makes a communicator per kind (how many depends on its release)
    for own in made(records, {"communicators": 3, "new_group": 3}, "megatron-core"):
        assert own["communicators"] > 3, own
    for rank, rec in enumerate(records):
        assert rec["bitwise_equal_losses"] is True and rec["same_groups"] is True, rec
        assert rec["tensor_parallel_group"] == [rank - rank % 2, rank - rank % 2 + 1], rec
        assert rec["data_parallel_group"] == [rank % 2, rank % 2 + 2], rec
