"""A topology's memory does not grow with its world size (allocation counted, not timed)."""

from __future__ import annotations

import tracemalloc

from proctopo import PipeModelDataParallelTopology


def _allocated(num_dp: int) -> int:
    PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=num_dp)  # warm the class cache
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        topo = PipeModelDataParallelTopology(num_pp=8, num_mp=8, num_dp=num_dp)
        topo.get_coord(topo.world_size() - 1)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_memory_independent_of_world_size() -> None:
    small = _allocated(16)  # 1,024 ranks
    huge = _allocated(1 << 24)  # 2**30 ranks
    # DeepSpeed keeps ~140 bytes per rank; the huge case would need ~150 GB.
    assert huge < 4096, huge
    assert abs(huge - small) < 512, (small, huge)
