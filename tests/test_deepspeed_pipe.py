"""proctopo.deepspeed: DeepSpeed's PipelineModule and PipelineEngine on a proctopo grid.

The training run is examples/deepspeed_pipeline.py under torchrun (every process
must exit with 0); the entry point's checks run on gloo processes of the
``run_workers`` fixture, and its version check without DeepSpeed at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import proctopo
import proctopo.deepspeed as pds
import pytest
from helpers import RunWorkers, require
from helpers import training_workers as workers
from proctopo.errors import UnsupportedPeerError

#: The end of every refusal of DeepSpeed (the tested release, how to get it, and why).
TESTED_TAIL = (
    "proctopo.deepspeed was tested with DeepSpeed 0.19.8; install it (pip install 'deepspeed==0.19.8'), "
    "or build the PipelineModule on DeepSpeed's own grid (PipelineModule(..., topology=...)). "
    "proctopo.deepspeed hands PipelineModule a grid through the global "
    "deepspeed.runtime.pipe.module.PipelineParallelGrid, which PipelineModule.__init__ calls "
    "(process_group=..., topology=...); any release may change that, and it refuses to guess."
)


def test_an_untested_release_is_refused_naming_the_tested_one() -> None:
    for version in ("0.19.7", "0.20.0", "1.0.0", "0.19.8.1", "0.19"):
        with pytest.raises(UnsupportedPeerError) as info:
            pds.check_version(version)
        assert isinstance(info.value, ImportError)  # except ImportError keeps catching it
        assert str(info.value) == f"DeepSpeed {version} is not supported: {TESTED_TAIL}"
    assert pds.check_version("0.19.8") == "0.19.8"
    assert pds.check_version("0.19.8+cpu") == "0.19.8+cpu"


def test_importing_it_imports_neither_torch_nor_deepspeed() -> None:
    import subprocess
    import sys

    code = "import sys, proctopo.deepspeed; print(sorted({'torch', 'deepspeed'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.torch
def test_changed_internals_are_refused_before_anything_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    require("deepspeed.runtime.pipe.module")
    import deepspeed.runtime.pipe.module as ds_module

    class NoGrid:
        pass

    # the module no longer holds DeepSpeed's class under the name
    monkeypatch.setattr(ds_module, "PipelineParallelGrid", NoGrid)
    with pytest.raises(UnsupportedPeerError) as info:
        pds._deepspeed_internals("0.19.8")
    head, _, tail = str(info.value).partition("; proctopo.deepspeed was tested with")
    assert head.startswith(
        "DeepSpeed 0.19.8 is not supported: deepspeed.runtime.pipe.module.PipelineParallelGrid is"
    )
    assert "NoGrid" in head and head.endswith(
        "not DeepSpeed's class <class 'deepspeed.runtime.pipe.topology.PipelineParallelGrid'>: "
        "something else replaced it"
    )
    assert f"proctopo.deepspeed was tested with{tail}" == TESTED_TAIL
    monkeypatch.undo()

    # the constructor no longer calls it
    def init(self: Any, layers: Any, topology: Any = None) -> None:
        self._grid = object()

    monkeypatch.setattr(ds_module.PipelineModule, "__init__", init)
    with pytest.raises(UnsupportedPeerError) as info:
        pds._deepspeed_internals("0.19.8")
    assert str(info.value) == (
        "DeepSpeed 0.19.8 is not supported: deepspeed.runtime.pipe.module.PipelineModule.__init__ does not "
        f"call PipelineParallelGrid; {TESTED_TAIL}"
    )


@pytest.mark.torch
def test_a_non_grid_is_refused() -> None:
    require("deepspeed")
    topology = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
    with pytest.raises(
        TypeError, match=r"grid must be a proctopo\.PipelineParallelGrid, got ProcessTopology"
    ):
        with pds.use_grid(topology):  # type: ignore[arg-type]
            pass


@pytest.mark.mp
def test_the_pipeline_engine_trains_on_the_grid(tmp_path: Path) -> None:
    require("deepspeed.pipe")
    records = workers.run_example("deepspeed_pipeline.py", 4, ["--compare-deepspeed-grid"], tmp_path)
    assert workers.largest_difference(records) <= workers.TOLERANCE
    for rank, rec in enumerate(records):
        assert rec["stage"] == rank // 2, rec  # pipe=2 x data=2
        assert rec["layers"] == ([0, 4] if rank < 2 else [4, 7]), rec
        assert rec["engine_uses_grid"] is True and rec["engine_uses_grid_group"] is True, rec
        assert rec["bitwise_equal_losses"] is True, rec  # the same run on DeepSpeed's own grid
    # pipe=2 x data=2: the all-ranks group PipelineModule makes first (either way), then the grid's pipe
    # and data groups and this rank alone (no model axis); DeepSpeed 0.19.8's grid calls new_group for
    # every group of every axis, one single-rank group per rank, and the model-parallel groups (pipe x
    # model), the rank's a second communicator with its pipe group's ranks
    for own in workers.made(records, {"communicators": 4, "new_group": 4}, "DeepSpeed"):
        assert own == {"communicators": 5, "new_group": 11, "split_group": 0}, own


def test_a_pipeline_module_subclass_built_in_the_block_takes_the_grid(run_workers: RunWorkers) -> None:
    require("deepspeed.pipe")
    results = run_workers(workers.pipeline_module_on_grid, 4, timeout=120)
    for rank, res in enumerate(results):
        assert res["given"] and res["grid"], res
        assert res["other thread"] == "deepspeed.runtime.pipe.topology.PipelineParallelGrid", res
        assert res["stage"] == rank // 2 and res["layers"] == ([0, 2] if rank < 2 else [2, 4]), res
        assert res["grid_calls"] == 0, res  # building the module created no group through the grid
        assert "deepspeed.runtime.pipe.topology.PipelineParallelGrid" in res["restored"], res


def test_what_the_entry_point_refuses(run_workers: RunWorkers) -> None:
    require("deepspeed.pipe")
    results = run_workers(workers.pipeline_module_refusals, 4, timeout=120)
    for rank, res in enumerate(results):
        assert res["topology argument"] == (
            "InvalidArgumentError: pipeline_module takes the topology from the grid; do not pass topology"
        ), res
        assert res["other topology"] == (
            "InvalidArgumentError: the PipelineModule was given the topology pipe=4 x data=1, but the grid "
            "of use_grid is pipe=2 x data=2: pass topology=grid.topology()"
        ), res
        assert res["nested"].startswith("GridStateError: use_grid blocks do not nest"), res
        assert "deepspeed.runtime.pipe.topology.PipelineParallelGrid" in res["restored"], res
        if rank < 2:
            assert res["part of the world"].startswith(
                "InvalidArgumentError: DeepSpeed's PipelineModule lays its topology over the whole world"
            ), res
            assert "the global ranks [0, 1] of a world of 4" in res["part of the world"], res
        assert res["destroyed"].startswith("GridDestroyedError"), res
