"""grid.destroy() on real gloo groups: ten create / prove / destroy cycles per strategy.

torch names a locally synchronised group from its ranks and the number of groups
registered on the rank, so destroying groups and making the same ones again
would hand out the destroyed groups' names, and gloo would pick up their stale
rendezvous keys and hang. The cycles below would hang (and fail at the run's
deadline) without the name ledger of proctopo.comm.
"""

from __future__ import annotations

import pytest
from helpers import RunWorkers
from helpers import teardown_workers as workers

pytestmark = pytest.mark.mp

CYCLES = 10


@pytest.mark.slow
def test_plain_torch_gives_a_rebuilt_group_the_destroyed_groups_name(run_workers: RunWorkers) -> None:
    """The trap itself: with plain torch the rebuilt group gets the old name (and store keys).

    gloo then connects to the destroyed group's addresses until its connect timeout.
    """
    results = run_workers(workers.plain_torch_rebuild, 2, (2.0,), timeout=90)
    for made in results:
        assert len(made) >= 1 and not made[0].startswith("error"), results
        if len(made) == 2 and not made[1].startswith("error"):
            assert made[1] == made[0], results


@pytest.mark.parametrize("strategy", ["local", "global"])
def test_ten_cycles_free_every_group_and_never_reuse_a_name(strategy: str, run_workers: RunWorkers) -> None:
    world = 4
    results = run_workers(workers.cycles, world, (strategy, CYCLES), timeout=240)
    names_by_cycle: list[set[str]] = [set() for _ in range(CYCLES)]
    for rank, res in enumerate(results):
        start = res["start"]
        assert len(res["cycles"]) == CYCLES
        for k, cyc in enumerate(res["cycles"]):
            where = (strategy, rank, k)
            # the registry returns to where it started, and the grid made what it says
            assert cyc["before"] == start and cyc["after"] == start, (where, cyc)
            assert cyc["refused"], where
            pipe = [rank % 2, rank % 2 + 2]
            data = [rank - rank % 2, rank - rank % 2 + 1]
            family = [0, 1, 2] if rank < 3 else [3]
            assert cyc["proven"] == {"pipe": pipe, "data": data, "single": [rank], "family": family}, where
            # pipe, data, single, and [0, 1, 2] on its members ([3] is rank 3's single group)
            assert cyc["communicators"] == 3 + (rank < 3), (where, cyc)
            if strategy == "local":
                # one call per family: pipe, data, single, and the family's group or a pad
                assert cyc["calls"] == 4 and cyc["made"] == 4, (where, cyc)
            else:
                # every group of every family: 2 pipe, 2 data, 4 single, then [0, 1, 2] only
                assert cyc["calls"] == 9, (where, cyc)
                assert cyc["made"] == cyc["communicators"], (where, cyc)
            for key in ("pipe", "data", "family"):
                if len(cyc["proven"][key]) > 1:
                    names_by_cycle[k].add(cyc["names"][key])
            if strategy == "global":
                names_by_cycle[k].add(cyc["names"]["single"])
    # no name of a multi-rank group (of any group with "global") comes back in a later cycle
    seen: set[str] = set()
    for k, names in enumerate(names_by_cycle):
        assert not names & seen, (strategy, k, sorted(names & seen))
        seen |= names
