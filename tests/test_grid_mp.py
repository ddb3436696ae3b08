"""PipelineParallelGrid over real torch.distributed groups: gloo on CPU, 4 and 8 processes.

Every group is compared with the ranks DeepSpeed's own grid puts in it and
proven with an all_reduce. Each run has a timeout that turns a hang into a
failure (the ``run_workers`` fixture, :func:`proctopo.launch.run`).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import RunWorkers, require
from helpers import grid_workers as workers

pytestmark = pytest.mark.mp


@pytest.fixture(scope="module")
def expectations() -> Any:
    """Per-rank group lists from DeepSpeed's own grid (needs torch and deepspeed)."""
    require("torch.distributed")
    require("deepspeed.runtime.pipe.topology")
    from helpers import ds_oracle

    return ds_oracle.expectations


CASES = {
    4: [
        (["pipe", "data"], [2, 2]),
        (["pipe", "data", "model"], [1, 2, 2]),
        (["pipe", "data", "model"], [2, 1, 2]),
        (None, None),  # DeepSpeed's default split of the world size
    ],
    8: [
        (["pipe", "data", "model"], [2, 2, 2]),
        (["pipe", "data", "sequence", "model"], [2, 1, 2, 2]),
        (["data", "pipe"], [4, 2]),
        (["pipe", "data"], [1, 8]),
        (None, None),
    ],
}


@pytest.mark.parametrize("world_size", [4, 8])
def test_groups_equal_deepspeed_and_all_reduce(
    world_size: int, run_workers: RunWorkers, expectations: Any
) -> None:
    cases = []
    for axes, dims in CASES[world_size]:
        exp = expectations(world_size, axes, dims)
        for strategy in ("global", "local", "auto"):
            cases.append((axes, dims, strategy, exp))
    results = run_workers(workers.real_groups, world_size, (cases,), timeout=150)
    per_case = [4 + len(e[0]["axes"]) + len(e[0]["subsets"]) for *_, e in cases]
    for r, res in enumerate(results):
        assert res["checked"] == sum(per_case), (r, res["checked"])
        assert res["strategies"] == [s if s != "auto" else "local" for *_, s, _ in cases]
        assert "split" in res["split_error"] and "device" in res["split_error"]


def test_process_group_is_honoured(run_workers: RunWorkers, expectations: Any) -> None:
    members = [1, 2, 5, 6]
    exp = expectations(4, ["pipe", "data"], [2, 2])
    results = run_workers(workers.over_process_group, 8, (members, exp), timeout=60)
    for rank, res in enumerate(results):
        # the ranks outside process_group made fewer groups: a grid over the whole world
        # evens the count out on them, so that a world-wide new_group works afterwards
        padded = [m for m in res["rejoined"] if "single-rank group(s) to even it out" in m]
        assert len(padded) == (rank not in members), (rank, res["rejoined"])
        if rank not in members:
            continue
        assert res["local"] == "local" and res["auto"] == "local"
        assert "group_creation='global'" in res["global_error"]


def test_fingerprint_mismatch_fails_fast_with_the_difference(run_workers: RunWorkers) -> None:
    messages = run_workers(workers.mismatch, 4, timeout=60)
    for msg in messages:
        assert "dims: grid rank 0 has [4, 1], grid rank 1 has [2, 2]" in msg, msg
        assert "3 of 4 ranks differ" in msg, msg


def test_the_exchange_down_a_tree_gives_the_same_placement_and_verdicts(run_workers: RunWorkers) -> None:
    for msg in run_workers(workers.tree_exchange, 6, timeout=60):
        assert "dims: grid rank 0 has [6, 1], grid rank 1 has [3, 2]" in msg, msg
        assert "5 of 6 ranks differ" in msg, msg


def test_the_domain_is_read_from_proctopo_domain(run_workers: RunWorkers) -> None:
    for rank, res in enumerate(run_workers(workers.domains_from_the_environment, 4, timeout=60)):
        assert res["domains"] == 2, (rank, res)
        assert "axis 'data' must each lie inside one domain" in res["refused"], res["refused"]


def test_rank_skipping_the_check_ends_in_timeouts_not_a_hang(run_workers: RunWorkers) -> None:
    results = run_workers(workers.skipped_check, 4, (3.0,), timeout=60)
    for rank, (kind, msg) in enumerate(results[:-1]):
        assert kind == "GridTimeoutError", (rank, kind, msg)
        assert "fingerprint" in msg
    kind, msg = results[-1]
    assert kind == "GroupCreationError", (kind, msg)


def test_uneven_prior_groups_are_evened_out_for_local(run_workers: RunWorkers) -> None:
    results = run_workers(workers.naming_trap, 4, timeout=60)
    for rank, res in enumerate(results):
        assert res["groups"]["dp_proc_group"] == [rank - rank % 2, rank - rank % 2 + 1]
        assert res["groups"]["pp_proc_group"] == [rank % 2, rank % 2 + 2]
        assert res["warned"] == (rank >= 2), (rank, res)


def test_get_group_reads_and_create_group_is_a_checked_collective(run_workers: RunWorkers) -> None:
    results = run_workers(workers.explicit_creation, 4, timeout=90)
    for rank, res in enumerate(results):
        assert "grid.create_group([])" in res["missing"], res["missing"]
        assert res["grew"] == 1  # this rank's own group of ranks alone
        assert res["proven"] == {"alone": [rank], "data": [rank - rank % 2, rank - rank % 2 + 1],
                                 "pipe": [rank % 2, rank % 2 + 2]}  # fmt: skip
        assert "3 of 4 ranks differ from grid rank 0" in res["mismatch"], res["mismatch"]
        assert "create_group: grid rank 0 has {'axes': ['pipe']" in res["mismatch"], res["mismatch"]
        assert res["after"] == 0  # the mismatch created nothing


def test_a_rank_skipping_create_group_ends_in_timeouts_not_a_hang(run_workers: RunWorkers) -> None:
    results = run_workers(workers.skipped_creation, 4, (3.0,), timeout=60)
    for rank, (kind, msg) in enumerate(results[:-1]):
        assert kind == "GridTimeoutError", (rank, kind, msg)
    assert results[-1] == ("none", "")
