"""The private torch names proctopo uses, listed once in proctopo.comm.TORCH_PRIVATE.

Each must exist in the installed torch (2.13.x and 2.14.x are tested); when one
disappears, its test here fails and names it, and a grid warns, naming the tested
releases.
"""

from __future__ import annotations

import re

import pytest
from helpers import RunWorkers
from helpers import grid_workers as workers
from proctopo import comm as comm_module
from proctopo.comm import TESTED_TORCH, TORCH_PRIVATE, missing_torch_private, naming_counter, torch_private
from proctopo.errors import InvalidArgumentError


@pytest.mark.torch
@pytest.mark.parametrize(("owner", "name"), [(o, n) for o, n, _ in TORCH_PRIVATE])
def test_each_private_name_exists_in_the_installed_torch(owner: str, name: str, torch_dist: object) -> None:
    import torch

    try:
        found = torch_private(owner, name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"torch {torch.__version__} has no {owner}.{name}, which proctopo uses: {exc}")
    assert found is not None


@pytest.mark.torch
def test_torch_names_local_groups_from_a_count_proctopo_knows(torch_dist: object) -> None:
    assert naming_counter() in ("pg_names", "group_count")
    assert missing_torch_private() == []


def test_a_name_missing_from_the_table_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape("not listed in proctopo.comm.TORCH_PRIVATE")):
        torch_private("torch.distributed.distributed_c10d", "_some_other_private_name")


def test_a_missing_name_is_warned_about_naming_the_tested_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = ("proctopo_no_such_module", "thing", "a name a future torch dropped")
    monkeypatch.setattr(comm_module, "TORCH_PRIVATE", (*TORCH_PRIVATE, gone))
    monkeypatch.setattr(comm_module, "_WARNED", set())
    assert "proctopo_no_such_module.thing" in missing_torch_private()
    with pytest.warns(RuntimeWarning, match=re.escape(f"tested with {TESTED_TORCH}")) as caught:
        comm_module._warn_missing_private("9.9.9")
    assert "proctopo_no_such_module.thing" in str(caught[0].message)
    comm_module._warn_missing_private("9.9.9")  # once per version


def test_an_unknown_naming_refuses_local_creation_naming_the_tested_releases() -> None:
    comm = object.__new__(comm_module.TorchComm)  # the capability checks alone, without torch
    comm.backend = "gloo"
    comm.naming = None
    comm._bound_device = lambda: None  # type: ignore[method-assign]
    comm._torch = type("FakeTorch", (), {"__version__": "9.9.9"})
    reason = comm.local_support()
    assert reason is not None and TESTED_TORCH in reason and "torch 9.9.9" in reason
    assert comm.group_count() is None
    comm.naming = "group_count"
    assert comm.local_support() is None


@pytest.mark.mp
def test_the_count_read_is_the_one_torch_names_groups_from(run_workers: RunWorkers) -> None:
    for made in run_workers(workers.predicted_names, 2, timeout=60):
        for name, predicted in made:
            assert name == predicted, made
