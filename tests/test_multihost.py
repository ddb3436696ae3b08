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
