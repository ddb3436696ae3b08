"""Jobs over several hosts on one machine (UTS namespaces on loopback, tests/helpers/multihost.py).

Each case starts a job whose ranks sit on 2 or 3 "hosts" in a known pattern, started by
torchrun agents or as explicit-rank processes; every rank all-gathers its hostname and
checks the pattern, and every process must exit with 0. Then ``proctopo check`` is given
the same layout as a launcher would describe it (a hostfile, or Slurm's variables) and
must agree with what the job measured: the ranks of each host, and for every axis the
most hosts one of its groups spans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import multihost, require
from proctopo import ProcessTopology

pytestmark = [pytest.mark.torch, pytest.mark.mp]


@pytest.fixture
def hosts_ok() -> None:
    """torch, and namespaces (a skip where they are refused, a failure in CI)."""
    require("torch")
    multihost.require_namespaces()


def test_only_ci_fails_where_namespaces_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multihost, "namespaces_refusal", lambda: "unshare --uts is refused here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI, but unshare --uts is refused here"):
        multihost.require_namespaces()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="refused here"):
        multihost.require_namespaces()


def _measure(exits: Sequence[multihost.Exit], out: Path) -> dict[str, Any]:
    multihost.check_exits(exits)
    measured: dict[str, Any] = json.loads(out.read_text())
    return measured


def _topology(world: int) -> ProcessTopology:
    return (
        ProcessTopology(["data", "model"], [world // 2, 2])
        if world % 2 == 0
        else ProcessTopology(["data"], [world])
    )


def _check(args: Sequence[str], topo: ProcessTopology, env: dict[str, str] | None = None) -> dict[str, Any]:
    words = [f"{a}={d}" for a, d in zip(topo.axes, topo.dims)]
    done = subprocess.run(
        [sys.executable, "-m", "proctopo", "check", "--json", "--allow-partial-node", *words, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _agrees(report: dict[str, Any], hosts: list[str], topo: ProcessTopology) -> None:
    """``check``'s hosts and spans are those of the ranks' measured hostnames."""
    by_host: dict[str, list[int]] = {}
    for rank, host in enumerate(hosts):
        by_host.setdefault(host, []).append(rank)
    assert dict(zip(report["hosts"]["names"], report["hosts"]["ranks"])) == by_host
    for axis in report["axes"]:
        measured = max(len({hosts[r] for r in group}) for group in topo.groups(axis["name"]).tolist())
        assert axis["nodes"] == measured, axis


def _hostfile(path: Path, hosts: Sequence[tuple[str, int]]) -> str:
    path.write_text("".join(f"{h} slots={n}\n" for h, n in hosts))
    return str(path)


# (hosts with their ranks, node rank of each agent, the host of each rank torchrun gives)
TORCHRUN = {
    "block": ([("node0", 2), ("node1", 2)], None, ["node0", "node0", "node1", "node1"]),
    "uneven": ([("node0", 2), ("node1", 1)], None, ["node0", "node0", "node1"]),
    # node ranks need not follow the hostnames: node rank 0 runs on node1
    "node ranks not in hostname order": (
        [("node0", 1), ("node1", 2)],
        [1, 0],
        ["node1", "node1", "node0"],
    ),
}


@pytest.mark.parametrize("case", list(TORCHRUN))
def test_torchrun_agents_on_hosts(case: str, tmp_path: Path, hosts_ok: None) -> None:
    hosts, node_ranks, expect = TORCHRUN[case]
    out = tmp_path / "measured.json"
    exits = multihost.torchrun(multihost.gather(expect, out), hosts, tmp_path / "job", node_ranks=node_ranks)
    assert len(exits) == len(hosts)
    measured = _measure(exits, out)
    assert measured["hosts"] == expect
    # A hostfile lists the hosts in node-rank order; check places the ranks as torchrun did.
    order = sorted(range(len(hosts)), key=lambda i: (node_ranks or range(len(hosts)))[i])
    hostfile = _hostfile(tmp_path / "hostfile", [hosts[i] for i in order])
    topo = _topology(len(expect))
    _agrees(_check(["--hostfile", hostfile], topo), measured["hosts"], topo)


# (the host of each rank, how a launcher describes the same layout)
EXPLICIT: dict[str, tuple[list[str], dict[str, str] | list[tuple[str, int]]]] = {
    "block": (["node0", "node0", "node1", "node1"], [("node0", 2), ("node1", 2)]),
    "cyclic": (
        ["node0", "node1", "node2", "node0", "node1", "node2"],
        {"SLURM_JOB_NODELIST": "node[0-2]", "SLURM_TASKS_PER_NODE": "2(x3)", "SLURM_DISTRIBUTION": "cyclic"},
    ),
    "uneven cyclic": (
        ["node0", "node1", "node0", "node0"],
        {"SLURM_JOB_NODELIST": "node[0-1]", "SLURM_TASKS_PER_NODE": "3,1", "SLURM_DISTRIBUTION": "cyclic"},
    ),
    "uneven": (["node0", "node0", "node0", "node1"], [("node0", 3), ("node1", 1)]),
}


@pytest.mark.parametrize("case", list(EXPLICIT))
def test_explicit_ranks_on_hosts(case: str, tmp_path: Path, hosts_ok: None) -> None:
    expect, described = EXPLICIT[case]
    if isinstance(described, dict):
        require("hostlist")
    out = tmp_path / "measured.json"
    exits = multihost.explicit_ranks(multihost.gather(expect, out), expect, tmp_path / "job")
    assert [e.host for e in exits] == expect
    measured = _measure(exits, out)
    assert measured["hosts"] == expect
    assert measured["local"] == [list(p) for p in multihost.local_ranks(expect)]
    topo = _topology(len(expect))
    if isinstance(described, dict):
        report = _check(["--slurm"], topo, described)
    else:
        report = _check(["--hostfile", _hostfile(tmp_path / "hostfile", described)], topo)
    _agrees(report, measured["hosts"], topo)


def test_a_wrong_pattern_fails_every_rank_and_is_reported(tmp_path: Path, hosts_ok: None) -> None:
    """The worker's check can fail: told the block pattern, ranks laid out cyclically exit with 1."""
    out = tmp_path / "measured.json"
    hosts = ["node0", "node1", "node0", "node1"]
    wrong = ["node0", "node0", "node1", "node1"]
    exits = multihost.explicit_ranks(multihost.gather(wrong, out), hosts, tmp_path / "job")
    assert [e.returncode for e in exits] == [1, 1, 1, 1]
    assert f"the ranks run on {hosts}, expected {wrong}" in exits[0].output
    with pytest.raises(AssertionError, match="4 of 4 processes failed"):
        multihost.check_exits(exits)


def test_a_hung_process_is_killed_at_the_deadline(tmp_path: Path, hosts_ok: None) -> None:
    """A process that never ends is killed with its whole process group, and reported."""
    marker = tmp_path / "child.pid"
    script = (
        "import subprocess, time; p = subprocess.Popen(['sleep', '600']); "
        f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    specs = [
        multihost.Spec("sleeper", "node0", (sys.executable, "-c", script), {}),
        multihost.Spec("quick", "node1", ("sh", "-c", "hostname"), {}),
    ]
    exits = multihost.run(specs, tmp_path / "job", timeout=5.0)
    assert exits[0].returncode is None and exits[1].returncode == 0
    assert exits[1].output.strip() == "node1"
    child = int(marker.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    with pytest.raises(AssertionError, match="sleeper was killed at the deadline"):
        multihost.check_exits(exits)


# --------------------------------------------------------------------------- a grid's placement
PLACEMENT = multihost.WORKER.with_name("placement_workers.py")
BLOCK = ["node0", "node0", "node1", "node1"]
CYCLIC = ["node0", "node1", "node0", "node1"]


def _job(case: str, hosts: list[str], tmp_path: Path, *, torchrun: bool = False) -> list[dict[str, Any]]:
    """Run placement_workers.py ``case`` with rank r on ``hosts[r]``; every process must exit 0."""
    out = tmp_path / "out"
    out.mkdir()
    script = [str(PLACEMENT), case, "--out", str(out)]
    if torchrun:
        counts: dict[str, int] = {}
        for h in hosts:
            counts[h] = counts.get(h, 0) + 1
        exits = multihost.torchrun(script, list(counts.items()), tmp_path / "job", timeout=60)
    else:
        exits = multihost.explicit_ranks(script, hosts, tmp_path / "job", timeout=60)
    multihost.check_exits(exits)
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(len(hosts))]


def test_block_placement_is_measured_without_warning(tmp_path: Path, hosts_ok: None) -> None:
    ranks = _job("measure", BLOCK, tmp_path, torchrun=True)
    for r in ranks:
        assert r["measured"] == BLOCK and r["warnings"] == []
        p = r["placement"]
        assert p["is_block"] and p["hosts"] == ["node0", "node1"]
        assert p["ranks_of_host"] == {"node0": [0, 1], "node1": [2, 3]}
        assert p["spans"] == {"data": 2, "model": 1}


def test_cyclic_placement_warns_on_grid_rank_0(tmp_path: Path, hosts_ok: None) -> None:
    ranks = _job("measure", CYCLIC, tmp_path)
    for r in ranks:
        p = r["placement"]
        assert not p["is_block"] and p["pattern"] == "cyclic over 2 hosts"
        assert p["ranks_of_host"] == {"node0": [0, 2], "node1": [1, 3]}
        assert p["spans"] == {"data": 1, "model": 2}
    (warning,) = ranks[0]["warnings"]
    assert "not in block order over its 2 hosts (cyclic over 2 hosts)" in warning
    assert all(r["warnings"] == [] for r in ranks[1:])


def test_an_uneven_host_is_reported(tmp_path: Path, hosts_ok: None) -> None:
    hosts = ["node0", "node0", "node0", "node1"]
    ranks = _job("measure", hosts, tmp_path)
    for r in ranks:
        p = r["placement"]
        assert p["ranks_of_host"] == {"node0": [0, 1, 2], "node1": [3]}
        assert p["is_block"] and p["pattern"] == "block: 3 ranks per host, 1 on the last"
        assert p["spans"] == {"data": 2, "model": 2} and r["warnings"] == []


def test_a_broken_rule_raises_on_every_rank(tmp_path: Path, hosts_ok: None) -> None:
    ranks = _job("rule", CYCLIC, tmp_path)
    messages = {r["raised"] for r in ranks}
    assert len(messages) == 1, messages
    (message,) = messages
    assert "axis 'model'" in message and "group of global ranks [0, 1]" in message
    assert "rank 0 on 'node0', rank 1 on 'node1'" in message
    assert all(r["hosts"] == CYCLIC for r in ranks)


def test_reorder_fixes_a_cyclic_launch(tmp_path: Path, hosts_ok: None) -> None:
    ranks = _job("reorder", CYCLIC, tmp_path)
    (positions,) = {tuple(r["positions"]) for r in ranks}
    assert positions == (0, 2, 1, 3)
    for rank, r in enumerate(ranks):
        assert r["warnings"] == [] and r["placement"]["is_block"]
        assert r["placement"]["spans"] == {"data": 2, "model": 1}
        model, data = r["groups"]["model"], r["groups"]["data"]
        assert rank in model["ranks"] and model["hosts"] == [CYCLIC[rank]] * 2
        assert sorted(data["hosts"]) == ["node0", "node1"]
        assert r["grid_rank"] == positions.index(rank)


def test_device_mesh_of_a_reordered_grid(tmp_path: Path, hosts_ok: None) -> None:
    ranks = _job("mesh", CYCLIC, tmp_path)
    for rank, r in enumerate(ranks):
        assert r["mesh"] == [[0, 2], [1, 3]]
        assert r["model"] == [rank % 2, rank % 2 + 2] and r["sum"] == sum(x + 1 for x in r["model"])


def test_reordered_groups_keep_grid_order_where_global_ranks_fall(tmp_path: Path, hosts_ok: None) -> None:
    hosts = ["node0", "node1"] * 4  # grid order 0, 2, 4, 6, 1, 3, 5, 7
    ranks = _job("order", hosts, tmp_path)
    assert ranks[4]["data"] == [0, 4, 1, 5] and ranks[4]["model"] == [4, 6]
    for rank, r in enumerate(ranks):
        assert rank in r["data"] and {hosts[m] for m in r["model"]} == {hosts[rank]}


@pytest.mark.slow
@pytest.mark.parametrize("hosts", [BLOCK, CYCLIC], ids=["block", "cyclic"])
def test_megatron_checks_intra_node(hosts: list[str], tmp_path: Path, hosts_ok: None) -> None:
    require("megatron.core")
    ranks = _job("megatron", hosts, tmp_path)
    if hosts == BLOCK:
        assert [r["tp"] for r in ranks] == [[0, 1], [0, 1], [2, 3], [2, 3]]
    else:
        (message,) = {r["raised"] for r in ranks}
        assert "axis 'tp'" in message and "rank 0 on 'node0', rank 1 on 'node1'" in message


def test_megatron_on_a_reordered_grid(tmp_path: Path, hosts_ok: None) -> None:
    require("megatron.core")
    ranks = _job("megatron_reorder", CYCLIC, tmp_path)  # grid order 0, 2, 1, 3
    assert [r["tp"] for r in ranks] == [[0, 2], [1, 3], [0, 2], [1, 3]]
    assert [r["pp"] for r in ranks] == [[0, 1], [0, 1], [2, 3], [2, 3]]


# --------------------------------------------------------------------------- the rules elsewhere, played
def test_pipeline_grid_refuses_reorder() -> None:
    from proctopo.errors import InvalidArgumentError
    from proctopo.grid import PipelineParallelGrid
    from proctopo.testing import RecordingComm

    topo = ProcessTopology(["pipe", "data"], [2, 2])
    comm = RecordingComm(0, 4, hosts=CYCLIC)
    with pytest.raises(InvalidArgumentError, match=r"reorder=True\): DeepSpeed's grid maps grid rank r to"):
        PipelineParallelGrid(topo, comm=comm, reorder=True)
    assert comm.calls["collective"] == 0  # refused before the exchange
    PipelineParallelGrid(topo, comm=RecordingComm(0, 4, hosts=BLOCK), reorder=False)


def test_megatron_groups_and_mesh_take_the_rules() -> None:
    from proctopo import ProcessGrid, megatron
    from proctopo.device_mesh import device_mesh
    from proctopo.errors import PlacementError
    from proctopo.testing import RecordingComm

    kwargs: dict[str, Any] = {"tensor_model_parallel_size": 2, "create_gloo_process_groups": False}
    kwargs["release"] = "0.16"
    mg = megatron.create_groups(comm=RecordingComm(2, 4, hosts=BLOCK), intra_node=["tp"], **kwargs)
    assert mg.ranks["tp"] == [2, 3]
    with warnings.catch_warnings(), pytest.raises(PlacementError, match=r"axis 'tp'.*\[0, 1\]"):
        warnings.simplefilter("ignore")  # the cyclic launch's warning, given once per process
        megatron.create_groups(comm=RecordingComm(0, 4, hosts=CYCLIC), intra_node=["tp"], **kwargs)
    with pytest.raises(PlacementError, match="one domain"):
        megatron.create_groups(
            comm=RecordingComm(0, 4, hosts=BLOCK, domains=["n0", "n1", "n0", "n1"]),
            intra_domain=[("tp", "dp")],
            **kwargs,
        )
    grid = ProcessGrid(_topology(4), comm=RecordingComm(0, 4, hosts=BLOCK))
    with pytest.raises(PlacementError, match=r"axis 'data'.*rank 0 on 'node0', rank 2 on 'node1'"):
        device_mesh(grid, intra_node=["data"])
    with pytest.raises(PlacementError, match=r"axis 'data'.*rank 0 on 'node0', rank 2 on 'node1'"):
        grid.device_mesh(intra_node=["data"])  # the grid's method passes the rules on
