"""A proctopo topology handed to DeepSpeed's own PipelineModule behaves like DeepSpeed's topology."""

from __future__ import annotations

import pytest
from helpers import RunWorkers, require
from helpers.pipeline_module_workers import pipeline_module_views

pytestmark = pytest.mark.mp


@pytest.mark.parametrize(
    ("world_size", "num_pp", "num_mp"),
    [(4, 2, 1), (4, 2, 2), pytest.param(8, 2, 2, marks=pytest.mark.slow)],
)
def test_pipeline_module_accepts_proctopo_topology(
    world_size: int, num_pp: int, num_mp: int, run_workers: RunWorkers
) -> None:
    require("deepspeed.pipe")
    results = run_workers(pipeline_module_views, world_size, (num_pp, num_mp), timeout=180)
    stages = set()
    for rank, views in enumerate(results):
        assert views["proctopo"] == views["deepspeed"], rank
        stages.add(views["proctopo"]["stage_id"])
    assert stages == set(range(num_pp))  # the module really was split into pipeline stages
