"""Hosts before the launch: hostfiles, Slurm's environment, and check/draw placing ranks on them.

Every expected placement here is worked out by hand from the launcher's rule (DeepSpeed's
host by host in file order; Slurm's block, cyclic and plane distributions); the arithmetic
of the distributions is tested with proctopo.machine (tests/test_machine.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from proctopo import InvalidArgumentError, ProcessTopology, ProctopoError, cli, machine
from proctopo import hosts as H
from proctopo.machine import BlockPlacement, ListedPlacement


def hostlist_module() -> Any:
    """python-hostlist, which --slurm needs. It publishes no wheel, so the torch-free runs on every
    Python (binaries only) cannot have it: there it is skipped; elsewhere, when peers are
    required (CI), its absence fails."""
    try:
        import hostlist  # type: ignore[import-untyped]
    except ImportError as exc:
        if os.environ.get("PROCTOPO_REQUIRE_PEERS") == "1" and os.environ.get("PROCTOPO_TORCH_FREE") != "1":
            pytest.fail(f"python-hostlist is required in this run (requirements/test.txt): {exc}")
        pytest.skip(f"python-hostlist is not installed: {exc}")
    return hostlist


# --------------------------------------------------------------------------- Hosts
def test_the_distributions_are_the_machines() -> None:
    # The arithmetic of the distributions is proctopo.machine's (tests/test_machine.py); the
    # hosts module still answers to its names.
    assert H.place is machine.place and H.DISTRIBUTIONS is machine.DISTRIBUTIONS
    assert H.place([2, 1], "cyclic") == [0, 1, 0]


def test_hosts_pick_the_closed_form_for_the_block_pattern() -> None:
    even = H.Hosts.from_counts([("a", 4), ("b", 4)], source="s")
    assert isinstance(even.placement, BlockPlacement) and even.placement.ranks_per_node == 4
    short_last = H.Hosts.from_counts([("a", 4), ("b", 4), ("c", 1)], source="s")
    assert isinstance(short_last.placement, BlockPlacement)
    assert [short_last.host_of(r) for r in range(9)] == ["a"] * 4 + ["b"] * 4 + ["c"]
    short_middle = H.Hosts.from_counts([("a", 4), ("b", 2), ("c", 4)], source="s")
    assert isinstance(short_middle.placement, ListedPlacement)
    assert short_middle.placement.ranks_of_node(2) == [6, 7, 8, 9]
    assert short_middle.short_node() == "b" and even.short_node() is None
    # cyclic over one host, or planes as large as every host, is the block pattern
    assert isinstance(
        H.Hosts.from_counts([("a", 3)], source="s", distribution="cyclic").placement, BlockPlacement
    )
    wide = H.Hosts.from_counts([("a", 2), ("b", 2)], source="s", distribution="plane", plane=2)
    assert isinstance(wide.placement, BlockPlacement) and wide.distribution == "plane=2"
    cyclic = H.Hosts.from_counts([("a", 2), ("b", 2)], source="s", distribution="cyclic")
    assert not cyclic.placement.is_block and cyclic.hosts_of([0, 1, 2]) == ["a", "b"]


def test_hosts_widest_group_names_the_first_group_spanning_the_most_hosts() -> None:
    hosts = H.Hosts.from_counts([("a", 3), ("b", 3), ("c", 2)], source="s", distribution="cyclic")
    topo = ProcessTopology(["data", "model"], [4, 2])  # a: 0 3 6, b: 1 4 7, c: 2 5
    assert hosts.widest_group(topo, "model") == [0, 1]
    assert hosts.widest_group(topo, "data") == [0, 2, 4, 6]  # hosts a, c, b: the first group of three
    inside = H.Hosts.from_counts([("a", 2), ("b", 2), ("c", 2), ("d", 2)], source="s")
    assert inside.widest_group(topo, "model") is None
    domains = inside.in_domains(2)
    assert domains.placement.domains == 2 and domains.widest_group(topo, "data", "domain") == [0, 2, 4, 6]
    assert domains.widest_group(topo, "model", "domain") is None


def test_hosts_refuse_bad_names_and_counts_given_twice() -> None:
    with pytest.raises(InvalidArgumentError, match="host 'a' is named twice"):
        H.Hosts(("a", "a"), BlockPlacement(4, 2), "s")
    with pytest.raises(InvalidArgumentError, match="1 host names for a placement on 2 nodes"):
        H.Hosts(("a",), BlockPlacement(4, 2), "s")
    hosts = H.Hosts.from_counts([("a", 2)], source="hostfile h")
    hosts.refuse_overrides({"world_size": None})
    with pytest.raises(InvalidArgumentError) as info:
        hosts.refuse_overrides({"--world-size": 2, "--ranks-per-node": 2})
    assert str(info.value) == (
        "hostfile h gives the ranks and the host of each, so --world-size and --ranks-per-node cannot be "
        "given with it; leave them out"
    )


# --------------------------------------------------------------------------- hostfiles
def test_hostfile_format() -> None:
    text = """# DeepSpeed's hostfile
worker-0 slots=4
   # an indented comment

worker-1   slots=4   # the second
worker-2 slots=2 max_slots=8
"""
    assert H.parse_hostfile(text) == [("worker-0", 4), ("worker-1", 4), ("worker-2", 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a slots=2\nb\n", "h line 2: host 'b' has no slots=N; each line is 'host slots=N'"),
        ("a slots=0\n", "h line 1: host 'a' has slots=0; every host needs at least 1 slot"),
        ("a slots=two\n", "h line 1: 'slots=two': slots must be a whole number, e.g. slots=8"),
        ("a slots=-1\n", "h line 1: 'slots=-1': slots must be a whole number, e.g. slots=8"),
        (
            "a slots=2 gpus=2\n",
            "h line 1: 'gpus=2' is not a field of a hostfile line; each line is 'host slots=N' "
            "(max_slots=M may follow)",
        ),
        (
            "a 2\n",
            "h line 1: '2' is not a field of a hostfile line; each line is 'host slots=N' "
            "(max_slots=M may follow)",
        ),
        ("a slots=2 slots=3\n", "h line 1: host 'a' is given slots twice"),
        ("\n\nslots=2\n", "h line 3: 'slots=2' does not start with a host name; each line is 'host slots=N'"),
        (
            "a slots=2\nb slots=1\n\na slots=2\n",
            "h line 4: host 'a' is listed again (first on line 1); each host takes one line",
        ),
        ("# nothing\n\n", "h lists no host; each line is 'host slots=N'"),
    ],
)
def test_hostfile_errors_name_the_line_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        H.parse_hostfile(text, "h")
    assert str(info.value) == message


def test_read_hostfile(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("n1 slots=2\nn2 slots=2\nn3 slots=1\n")
    hosts = H.read_hostfile(path)
    assert hosts.source == f"hostfile {path}" and hosts.names == ("n1", "n2", "n3")
    assert [hosts.host_of(r) for r in range(5)] == ["n1", "n1", "n2", "n2", "n3"]
    with pytest.raises(InvalidArgumentError, match=r"cannot read hostfile .*missing: No such file"):
        H.read_hostfile(tmp_path / "missing")
    path.write_bytes(b"n\xe9 slots=2\n")
    with pytest.raises(InvalidArgumentError, match=r"is not UTF-8 text \(byte 1\)"):
        H.read_hostfile(path)


# --------------------------------------------------------------------------- Slurm
@pytest.mark.parametrize(
    ("value", "plane_size", "expected"),
    [
        (None, None, ("block", None)),
        ("", None, ("block", None)),
        ("*", None, ("block", None)),
        ("block", None, ("block", None)),
        ("block:cyclic", None, ("block", None)),
        ("cyclic", None, ("cyclic", None)),
        ("cyclic:block,Pack", None, ("cyclic", None)),
        ("plane=4", None, ("plane", 4)),
        ("plane", "3", ("plane", 3)),
    ],
)
def test_slurm_distribution(
    value: str | None, plane_size: str | None, expected: tuple[str, int | None]
) -> None:
    assert H.parse_slurm_distribution(value, plane_size) == expected


@pytest.mark.parametrize(
    ("value", "plane_size", "message"),
    [
        (
            "arbitrary",
            None,
            "SLURM_DISTRIBUTION 'arbitrary' is not one proctopo places: it reads block, cyclic and plane=N "
            "(arbitrary takes its hosts from SLURM_HOSTFILE, one line per task)",
        ),
        (
            "plane",
            None,
            "SLURM_DISTRIBUTION 'plane': plane with SLURM_DIST_PLANESIZE None is not a plane size",
        ),
        ("plane=0", None, "SLURM_DISTRIBUTION 'plane=0': plane='0' is not a plane size"),
    ],
)
def test_slurm_distribution_refused(value: str, plane_size: str | None, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        H.parse_slurm_distribution(value, plane_size)
    assert str(info.value).startswith(message)


SLURM = {"SLURM_JOB_NODELIST": "node[1-4]", "SLURM_TASKS_PER_NODE": "2(x3),1"}


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        (None, ["node1", "node1", "node2", "node2", "node3", "node3", "node4"]),
        ("block", ["node1", "node1", "node2", "node2", "node3", "node3", "node4"]),
        # node4 holds one task: the second round skips it
        ("cyclic", ["node1", "node2", "node3", "node4", "node1", "node2", "node3"]),
        ("plane=2", ["node1", "node1", "node2", "node2", "node3", "node3", "node4"]),
    ],
)
def test_from_slurm_by_hand(distribution: str | None, expected: list[str]) -> None:
    hostlist_module()
    env = dict(SLURM, **({} if distribution is None else {"SLURM_DISTRIBUTION": distribution}))
    hosts = H.from_slurm(env)
    assert hosts.names == ("node1", "node2", "node3", "node4")
    assert [hosts.host_of(r) for r in range(7)] == expected
    assert hosts.source == "Slurm" and hosts.distribution == (distribution or "block")


def test_from_slurm_reads_host_lists_with_python_hostlist() -> None:
    hostlist_module()
    env = {
        "SLURM_NODELIST": "gpu[08-09],cpu-a1",
        "SLURM_TASKS_PER_NODE": "3,2,1",
        "SLURM_DISTRIBUTION": "cyclic",
    }
    hosts = H.from_slurm(env, nodes_per_domain=2)
    assert hosts.names == ("gpu08", "gpu09", "cpu-a1")
    assert [hosts.host_of(r) for r in range(6)] == ["gpu08", "gpu09", "cpu-a1", "gpu08", "gpu09", "gpu08"]
    assert hosts.placement.domains == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {},
            "--slurm reads the job's placement from Slurm's environment, but SLURM_JOB_NODELIST and "
            "SLURM_TASKS_PER_NODE are not set",
        ),
        ({"SLURM_JOB_NODELIST": "n1"}, "--slurm reads the job's placement from Slurm's environment, but "),
        (
            {"SLURM_JOB_NODELIST": "n[1-2]", "SLURM_TASKS_PER_NODE": "2(x3)"},
            "SLURM_JOB_NODELIST 'n[1-2]' names 2 nodes, but SLURM_TASKS_PER_NODE '2(x3)' gives task "
            "counts for 3",
        ),
        (
            {"SLURM_JOB_NODELIST": "n[1-", "SLURM_TASKS_PER_NODE": "2"},
            "SLURM_JOB_NODELIST 'n[1-' is not a Slurm host list: ",
        ),
        (
            {"SLURM_JOB_NODELIST": "n1", "SLURM_TASKS_PER_NODE": "two"},
            "SLURM_TASKS_PER_NODE 'two' is not a list of task counts such as 2(x3),1: ",
        ),
        (
            {"SLURM_JOB_NODELIST": "n[1-2]", "SLURM_TASKS_PER_NODE": "2,0"},
            "SLURM_TASKS_PER_NODE '2,0' gives node 'n2' 0 tasks; every node of the job runs at least 1",
        ),
    ],
)
def test_from_slurm_refuses(env: dict[str, str], message: str) -> None:
    hostlist_module()
    with pytest.raises(InvalidArgumentError) as info:
        H.from_slurm(env)
    assert str(info.value).startswith(message)


def test_from_slurm_without_python_hostlist_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hostlist", None)  # import hostlist raises ImportError
    with pytest.raises(ProctopoError) as info:
        H.from_slurm(SLURM)
    assert str(info.value) == (
        "--slurm expands Slurm's host lists with python-hostlist, which is not installed: "
        "pip install 'proctopo[slurm]'"
    )


# --------------------------------------------------------------------------- check
def _hostfile(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hostfile"
    path.write_text(text)
    return str(path)


def test_check_hostfile_places_ranks_host_by_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "node1 slots=2\nnode2 slots=2\n")
    assert cli.main(["check", "data=2", "model=2", "--hostfile", hostfile, "--intra-node", "model"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "ok: data=2 x model=2 (4 ranks)",
        f"2 host(s) (hostfile {hostfile}, block): node1 [0, 1], node2 [2, 3]",
        "  data: groups of 2, stride 2: across up to 2 hosts, e.g. [0, 2] on node1, node2",
        "  model: groups of 2, stride 1: inside one host",
    ]
    assert err == ""
    assert cli.main(["check", "data=2", "model=2", "--hostfile", hostfile, "--intra-node", "data"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("FAILED: data=2 x model=2 (4 ranks): 1 rule(s) broken\n")
    assert err == (
        "SPANS NODES: data groups of 2 ranks (stride 2) span up to 2 hosts: data group [0, 2] spans hosts "
        "node1, node2; --intra-node data needs each inside one host\n"
    )


def test_check_hostfile_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "b slots=3\na slots=3\n")
    assert cli.main(["check", "data=2", "model=3", "--hostfile", hostfile, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hosts"] == {
        "source": f"hostfile {hostfile}",
        "distribution": "block",
        "is_block": True,
        "names": ["b", "a"],  # file order, not sorted
        "counts": [3, 3],
        "ranks": [[0, 1, 2], [3, 4, 5]],
    }
    assert report["world_size"] == 6 and report["ranks_per_node"] == 3 and report["nodes"] == 2
    assert report["axes"][0]["widest_group"] == {"ranks": [0, 3], "hosts": ["b", "a"]}
    assert report["axes"][1]["nodes"] == 1 and report["axes"][1]["widest_group"] is None


def test_hosts_of_any_size_are_reported_in_bounded_space(tmp_path: Path) -> None:
    hostfile = _hostfile(tmp_path, "a slots=1000000000000\nb slots=1000000000000\n")
    report = cli.check(ProcessTopology(["data", "model"], [1000, 2 * 10**9]), hosts=H.read_hostfile(hostfile))
    assert report["ok"] and report["hosts"]["counts"] == [10**12, 10**12]
    assert [len(r) for r in report["hosts"]["ranks"]] == [4096, 4096] and report["hosts"]["ranks"][1][
        0
    ] == 10**12
    assert [a["nodes"] for a in report["axes"]] == [2, 1]
    assert report["axes"][0]["widest_group"] is None  # past the listing limit: the span only


def test_check_an_uneven_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "n1 slots=4\nn2 slots=2\nn3 slots=4\n")
    words = ["check", "data=5", "model=2", "--hostfile", hostfile, "--intra-node", "model"]
    assert cli.main(words) == 1
    out, err = capsys.readouterr()
    assert "n1 [0, 1, 2, 3], n2 [4, 5], n3 [6, 7, 8, 9]" in out
    assert err == (
        "PARTIAL NODE: 10 ranks on nodes of 4 ranks leave 2 on node 1, host n2 "
        "(--allow-partial-node accepts hosts of fewer ranks)\n"
    )
    assert cli.main([*words, "--allow-partial-node", "--json"]) == 0  # model pairs stay on their host
    report = json.loads(capsys.readouterr().out)
    assert report["ranks_per_node"] is None and report["hosts"]["is_block"] is False
    assert report["last_node_ranks"] == 4
    assert cli.main(["check", "data=2", "model=5", "--hostfile", hostfile, "--allow-partial-node"]) == 0
    out = capsys.readouterr().out
    assert "  model: groups of 5, stride 1: across up to 2 hosts, e.g. [0, 1, 2, 3, 4] on n1, n2" in out


def test_check_slurm_cyclic(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hostlist_module()
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[1-2]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "4(x2)")
    monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")
    # cyclic: gpu1 holds 0 2 4 6, gpu2 holds 1 3 5 7; the block model would say the opposite
    words = ["check", "data=4", "model=2", "--slurm", "--intra-node", "data"]
    assert cli.main(words) == 0
    out = capsys.readouterr().out
    assert "2 host(s) (Slurm, cyclic, not the block placement): gpu1 [0, 2, 4, 6], gpu2 [1, 3, 5, 7]" in out
    assert "  data: groups of 4, stride 2: inside one host" in out
    assert cli.main([*words[:-1], "model", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [v["message"] for v in report["violations"]] == [
        "model groups of 2 ranks (stride 1) span up to 2 hosts: model group [0, 1] spans hosts gpu1, gpu2; "
        "--intra-node model needs each inside one host"
    ]
    # the block model over the same counts: the opposite verdicts
    assert cli.main(["check", "data=4", "model=2", "--ranks-per-node", "4", "--intra-node", "model"]) == 0
    assert cli.main(["check", "data=4", "model=2", "--ranks-per-node", "4", "--intra-node", "data"]) == 1
    capsys.readouterr()


def test_check_slurm_domains(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hostlist_module()
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-4]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x4)")
    monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")  # n1: 0 4, n2: 1 5, n3: 2 6, n4: 3 7
    words = ["check", "pipe=2", "data=4", "--slurm", "--nodes-per-domain", "2", "--intra-domain"]
    assert cli.main([*words, "pipe"]) == 0  # {r, r + 4} share a host
    assert cli.main([*words, "data"]) == 1  # {0, 1, 2, 3} on all four hosts, two domains
    err = capsys.readouterr().err
    assert err.endswith(
        "SPANS DOMAINS: data groups of 4 ranks (stride 1) span up to 2 domains of 2 hosts: data group "
        "[0, 1, 2, 3] spans hosts n1, n2, n3, n4; --intra-domain data needs each inside one domain\n"
    )


def test_check_hosts_give_the_world_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "n1 slots=2\nn2 slots=2\n")
    assert cli.main(["check", "data=3", "model=2", "--hostfile", hostfile, "--intra-node", "model"]) == 1
    out, err = capsys.readouterr()
    assert err == f"MISMATCH: data * model = 3 * 2 = 6, but the world size of hostfile {hostfile} is 4\n"
    assert out.splitlines()[1:] == [f"2 host(s) (hostfile {hostfile}, block): n1 [0, 1], n2 [2, 3]"]
    for option in (["--world-size", "4"], ["--ranks-per-node", "2"]):
        assert cli.main(["check", "data=2", "model=2", "--hostfile", hostfile, *option]) == 2
        assert capsys.readouterr().err == (
            f"proctopo check: error: hostfile {hostfile} gives the ranks and the host of each, so "
            f"{option[0]} cannot be given with it; leave it out\n"
        )


def test_check_hosts_ignore_the_launcher_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    hostfile = _hostfile(tmp_path, "n1 slots=2\nn2 slots=2\n")
    assert cli.main(["check", "data=2", "model=2", "--hostfile", hostfile, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["world_size"] == 4


def test_check_bad_hosts_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "n1 slots=2\nn1 slots=2\n")
    assert cli.main(["check", "data=2", "--hostfile", hostfile]) == 2
    assert capsys.readouterr().err == (
        f"proctopo check: error: hostfile {hostfile} line 2: host 'n1' is listed again (first on line 1); "
        "each host takes one line\n"
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "data=2", "--hostfile", hostfile, "--slurm"])
    assert info.value.code == 2
    assert "argument --slurm: not allowed with argument --hostfile" in capsys.readouterr().err


def test_check_library_function_takes_hosts() -> None:
    hosts = H.Hosts.from_counts([("a", 2), ("b", 2)], source="Slurm", distribution="cyclic")
    topo = ProcessTopology(["data", "model"], [2, 2])
    report = cli.check(topo, intra_node=["data"], hosts=hosts)
    assert report["ok"] and report["axes"][0]["nodes"] == 1 and report["axes"][1]["nodes"] == 2
    with pytest.raises(InvalidArgumentError, match="so world_size cannot be given with it"):
        cli.check(topo, 4, hosts=hosts)


# --------------------------------------------------------------------------- draw
def test_draw_rows_are_hosts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "alpha slots=3\nbeta slots=3\ngamma slots=2\n")
    assert cli.main(["draw", "data=4", "model=2", "--group", "model", "--hostfile", hostfile]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == f"data=4 x model=2 (8 ranks) on 3 hosts (hostfile {hostfile}, block); coloured by model group"
    )
    assert [line.split() for line in lines[1:4]] == [
        ["alpha", "0", "a", "1", "a", "2", "b"],
        ["beta", "3", "b", "4", "c", "5", "c"],
        ["gamma", "6", "d", "7", "d"],
    ]
    assert cli.main(["draw", "data=4", "model=2", "--hostfile", hostfile, "--node", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[1:]] == [["beta", "3", "4", "5"]]


def test_draw_cyclic_hosts_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hostlist_module()
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-3]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "3(x2),2")
    monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")  # n1: 0 3 6, n2: 1 4 7, n3: 2 5
    assert cli.main(["draw", "data=4", "model=2", "--group", "model", "--slurm", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["label"], [c["rank"] for c in r["cells"]]) for r in doc["rows"]] == [
        ("n1", [0, 3, 6]),
        ("n2", [1, 4, 7]),
        ("n3", [2, 5]),
    ]
    assert [c["column"] for c in doc["rows"][2]["cells"]] == [0, 1]  # the rank's LOCAL_RANK on its host
    assert [c["label"] for c in doc["rows"][0]["cells"]] == ["a", "b", "d"]
    assert doc["hosts"]["ranks"] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert cli.main(["draw", "data=4", "model=2", "--slurm", "--slice", "model=1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["label"], [c["rank"] for c in r["cells"]]) for r in doc["rows"]] == [
        ("n1", [3]),
        ("n2", [1, 7]),
        ("n3", [5]),
    ]
    assert doc["ranks_selected"] == 4


def test_draw_hosts_summarise_past_the_limit() -> None:
    hosts = H.Hosts.from_counts([(f"h{i}", 2) for i in range(8)], source="s", distribution="cyclic")
    pic = H.picture(ProcessTopology(["data"], [16]), hosts, limit=6)
    assert [row.label for row in pic.rows] == ["h0", "h1", "h7"]
    assert pic.rows[-1].skipped == 5 and pic.ranks_drawn == 6
    assert pic.notes == (
        "showing 6 of 16 ranks: left out 5 hosts; draw one host or one slice to see the rest",
    )
    with pytest.raises(InvalidArgumentError, match="node 8 is not in the layout"):
        H.picture(ProcessTopology(["data"], [16]), hosts, node=8)


@pytest.mark.parametrize(
    ("where", "group", "limit", "text"),
    [
        ([("rack", 0)], (), 256, "rack"),
        ([("model", 5)], (), 256, "model"),
        ([("data", 0), ("data", 1)], (), 256, "data"),
        ((), ["rack"], 256, "rack"),
        ((), (), 0, "the limits of a picture must be at least 1"),
        ((), (), 5000, "a picture draws at most 4096 ranks, got a limit of 5000"),
    ],
)
def test_draw_hosts_of_any_pattern_refuse_as_a_layout_does(
    where: list[tuple[str, int]], group: list[str], limit: int, text: str
) -> None:
    topo = ProcessTopology(["pipe", "data", "model"], [2, 2, 2])
    cyclic = H.Hosts.from_counts([("a", 4), ("b", 4)], source="s", distribution="cyclic")
    with pytest.raises(ProctopoError) as listed:
        H.picture(topo, cyclic, group, where, limit=limit)
    with pytest.raises(ProctopoError) as block:
        H.picture(topo, H.Hosts.from_counts([("a", 4), ("b", 4)], source="s"), group, where, limit=limit)
    assert type(listed.value) is type(block.value) and str(listed.value) == str(block.value)
    assert text in str(listed.value)


def test_draw_hosts_of_any_pattern_slice_the_same_ranks() -> None:
    topo = ProcessTopology(["pipe", "data", "model"], [2, 3, 2])
    cyclic = H.Hosts.from_counts([("a", 5), ("b", 4), ("c", 3)], source="s", distribution="cyclic")
    for where in ([("data", 1)], [("pipe", 1), ("model", 0)], [("pipe", 0), ("data", 2), ("model", 1)]):
        pic = H.picture(topo, cyclic, (), where)
        drawn = sorted(c.rank for row in pic.rows for c in row.cells)
        assert drawn == topo.filter_match(**dict(where)) and pic.ranks_selected == len(drawn)


def test_draw_hosts_in_domains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostfile = _hostfile(tmp_path, "a slots=2\nb slots=2\nc slots=2\n")
    assert cli.main(["draw", "data=6", "--hostfile", hostfile, "--nodes-per-domain", "2"]) == 0
    out = capsys.readouterr().out
    assert "domain 0 (hosts a-b)" in out and "domain 1 (host c)" in out
    assert ", 2 domains of 2 hosts" in out.splitlines()[0]
    assert cli.main(["draw", "data=4", "--hostfile", hostfile, "--ranks-per-node", "2"]) == 2
    assert "so --ranks-per-node cannot be given with it" in capsys.readouterr().err


def _documented(marker: str) -> list[str]:
    """The lines docs/cli.md shows after the command line ending in ``marker``, up to the next one."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    lines = doc.split(marker + "\n", 1)[1].splitlines()
    shown = []
    for line in lines:
        line = line.strip()
        if line.startswith(("$", "```", "...")):
            break
        shown.append(line)
    return shown


def _stripped(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_the_documented_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hostlist_module()
    monkeypatch.chdir(tmp_path)
    Path("hostfile").write_text("node1 slots=4\nnode2 slots=4\n")
    assert cli.main(["check", "data=2", "model=4", "--hostfile", "hostfile", "--intra-node", "model"]) == 0
    out, err = capsys.readouterr()
    assert _stripped(out) == _documented("--hostfile hostfile --intra-node model") and err == ""
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-2]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "4(x2)")
    monkeypatch.setenv("SLURM_DISTRIBUTION", "cyclic")
    assert cli.main(["check", "data=2", "model=4", "--slurm", "--intra-node", "model"]) == 1
    out, err = capsys.readouterr()
    assert _stripped(out + err) == _documented("--slurm --intra-node model")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-3]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "3(x2),2")
    assert cli.main(["draw", "data=4", "model=2", "--slurm", "--group", "model", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert _stripped(out)[:4] == _documented("--slurm --group model")
