"""A proctopo topology handed to DeepSpeed's own PipelineModule behaves like DeepSpeed's topology."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require


@pytest.mark.parametrize(("world_size", "num_pp", "num_mp"), [(4, 2, 1), (8, 2, 2)])
def test_pipeline_module_accepts_proctopo_topology(
    world_size: int, num_pp: int, num_mp: int, tmp_path: Path
) -> None:
    require("deepspeed.pipe")
    from _pipeline_module_workers import pipeline_module_views
    from mp_helper import run_workers

    results = run_workers(
        pipeline_module_views, world_size=world_size, tmp_path=tmp_path, args=(num_pp, num_mp), timeout=180
    )
    stages = set()
    for rank, views in enumerate(results):
        assert views["proctopo"] == views["deepspeed"], rank
        stages.add(views["proctopo"]["stage_id"])
    assert stages == set(range(num_pp))  # the module really was split into pipeline stages
