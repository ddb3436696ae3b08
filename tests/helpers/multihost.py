"""Several "hosts" on one machine: each a UTS namespace with its own hostname, all on loopback.

A process started by :func:`in_host` runs in a new UTS namespace whose hostname is the
host's name (``unshare --uts sh -c 'hostname node1; exec ...'``), so
``socket.gethostname()`` tells the hosts apart, while the network, the file system and
the processes stay shared: every rank reaches the others on 127.0.0.1 (gloo is bound to
the loopback interface, ``GLOO_SOCKET_IFNAME=lo``). A job spread over such hosts starts
either

- as torchrun agents, one per host (:func:`torchrun`: ``--nnodes N --node-rank i``,
  the rendezvous on 127.0.0.1 at a free port), which number the ranks host by host in
  node-rank order, any number of ranks on each; or
- as one process per rank with explicit ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (:func:`explicit_ranks`),
  which gives any rank-to-host pattern: block, cyclic, uneven.

Every process has a deadline: :func:`run` kills what is still running then (its whole
process group: a torchrun agent's workers too), and, once one process has failed, gives
the others a short grace and kills them, so a broken job fails fast instead of waiting
on a rendezvous. Each process's exit status and the end of its output are collected;
:func:`check_exits` fails unless every one exited with 0.

Namespaces need privileges (root, or user namespaces): :func:`require_namespaces` skips a
test where ``unshare --uts`` is refused, except in CI (``CI=true``), where that is a
failure.

Run as a script, this file is the worker that proves the harness
(``python multihost.py gather --expect HOSTS --out FILE``): every rank all-gathers its
``socket.gethostname()``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``, checks them against the
expected host of each rank, and rank 0 writes what it measured to ``FILE``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: This file: the worker script of :func:`gather`.
WORKER = Path(__file__).resolve()

#: Seconds the other processes get to finish once one has failed.
GRACE = 10.0

#: Variables of an outer launcher that must not leak into the processes started here.
_LAUNCHER_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
)


@dataclass(frozen=True)
class Exit:
    """How one process of :func:`run` ended.

    Attributes:
        name: What it was (``"torchrun on node1 (node rank 0)"``, ``"rank 3 on node1"``).
        host: The hostname of its namespace.
        returncode: Its exit status (negative: killed by that signal); None when it was
            still running at the deadline and was killed.
        output: The end of its standard output and error, interleaved.
    """

    name: str
    host: str
    returncode: int | None
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Spec:
    """One process to start: its name, its host, its command and its extra environment."""

    name: str
    host: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


# --------------------------------------------------------------------------- namespaces
@functools.cache
def namespaces_refusal() -> str | None:
    """Why a UTS namespace with its own hostname cannot be made here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"UTS namespaces are Linux's; this is {sys.platform}"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "the unshare command (util-linux) is not installed"
    probe = [unshare, "--uts", "--", "sh", "-c", "hostname proctopo-probe && hostname"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --uts failed: {exc}"
    if done.returncode != 0 or done.stdout.strip() != "proctopo-probe":
        why = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        return f"unshare --uts is refused here (needs root or user namespaces): {why}"
    return None


def require_namespaces() -> None:
    """Skip the calling test where namespaces are refused; in CI (``CI=true``) fail instead."""
    import pytest

    reason = namespaces_refusal()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the multi-host tests must run in CI, but {reason}")
    pytest.skip(reason)


def in_host(host: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run in a new UTS namespace whose hostname is ``host``."""
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh", host, *argv]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --------------------------------------------------------------------------- running
def run(specs: Sequence[Spec], workdir: Path, timeout: float = 90.0) -> list[Exit]:
    """Start every process of ``specs`` in its host, wait for all, and say how each ended.

    Each starts in a session of its own, so it and everything it starts can be killed
    together. A process still running ``timeout`` seconds after the start, or
    :data:`GRACE` seconds after another failed, is killed (``returncode`` None). Nothing
    started here outlives the call.
    """
    env_base = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARIABLES}
    env_base.update(GLOO_SOCKET_IFNAME="lo", PYTHONUNBUFFERED="1")
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[Spec, subprocess.Popen[bytes], Path]] = []
    codes: dict[int, int | None] = {}
    try:
        for i, spec in enumerate(specs):
            log = workdir / f"process-{i}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    in_host(spec.host, spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**env_base, **spec.env},
                    cwd=workdir,
                    start_new_session=True,
                )
            started.append((spec, proc, log))
        deadline = time.monotonic() + timeout
        while len(codes) < len(started) and time.monotonic() < deadline:
            for i, (_, proc, _) in enumerate(started):
                if i not in codes and proc.poll() is not None:
                    codes[i] = proc.returncode
                    if proc.returncode != 0:
                        deadline = min(deadline, time.monotonic() + GRACE)
            time.sleep(0.05)
    finally:
        for i, (_, proc, _) in enumerate(started):
            if i not in codes and proc.poll() is not None:
                codes[i] = proc.returncode
            _kill_group(proc)  # what is left of it: a killed agent's workers, or the whole tree
            if i not in codes:
                codes[i] = None
    return [Exit(spec.name, spec.host, codes[i], _tail(log)) for i, (spec, _, log) in enumerate(started)]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group that ``proc`` leads (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, limit: int = 6000) -> str:
    text = path.read_bytes().decode("utf-8", "replace")
    return text if len(text) <= limit else "..." + text[-limit:]


def check_exits(exits: Sequence[Exit]) -> None:
    """Fail, with each failed process's status and output, unless every process exited with 0."""
    failed = [e for e in exits if not e.ok]
    if not failed:
        return
    lines = []
    for e in failed:
        status = "was killed at the deadline" if e.returncode is None else f"exited with {e.returncode}"
        lines.append(f"{e.name} {status}:\n{e.output.rstrip()}")
    raise AssertionError(f"{len(failed)} of {len(exits)} processes failed\n" + "\n\n".join(lines))


# --------------------------------------------------------------------------- job layouts
def torchrun(
    script: Sequence[str],
    hosts: Sequence[tuple[str, int]],
    workdir: Path,
    *,
    node_ranks: Sequence[int] | None = None,
    timeout: float = 90.0,
) -> list[Exit]:
    """One torchrun agent per host: ``hosts`` is ``(hostname, ranks on it)``, the agent of
    ``hosts[i]`` has node rank ``node_ranks[i]`` (default ``i``); ``script`` is the Python
    script and its arguments. torchrun numbers the ranks host by host in node-rank order."""
    port = free_port()
    order = list(range(len(hosts))) if node_ranks is None else list(node_ranks)
    specs = []
    for (host, nproc), node_rank in zip(hosts, order):
        argv = (
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            str(len(hosts)),
            "--node-rank",
            str(node_rank),
            "--nproc-per-node",
            str(nproc),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(port),
            "--max-restarts",
            "0",
            *script,
        )
        specs.append(Spec(f"torchrun on {host} (node rank {node_rank})", host, argv, {}))
    return run(specs, workdir, timeout)


def local_ranks(hosts_of_rank: Sequence[str]) -> list[tuple[int, int]]:
    """``(LOCAL_RANK, LOCAL_WORLD_SIZE)`` of each rank: its place among its host's ranks, and their number.

    >>> local_ranks(["a", "b", "a", "a"])
    [(0, 3), (0, 1), (1, 3), (2, 3)]
    """
    seen: dict[str, int] = {}
    places = []
    for host in hosts_of_rank:
        places.append(seen.get(host, 0))
        seen[host] = places[-1] + 1
    return [(place, seen[host]) for place, host in zip(places, hosts_of_rank)]


def explicit_ranks(
    script: Sequence[str], hosts_of_rank: Sequence[str], workdir: Path, *, timeout: float = 90.0
) -> list[Exit]:
    """One process per rank, rank ``r`` on host ``hosts_of_rank[r]``, with the variables of
    ``torch.distributed``'s ``env://`` rendezvous (rank 0 serves it on 127.0.0.1 at a free port)."""
    port = free_port()
    specs = []
    for rank, (host, (local, local_size)) in enumerate(zip(hosts_of_rank, local_ranks(hosts_of_rank))):
        env = {
            "RANK": str(rank),
            "WORLD_SIZE": str(len(hosts_of_rank)),
            "LOCAL_RANK": str(local),
            "LOCAL_WORLD_SIZE": str(local_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        specs.append(Spec(f"rank {rank} on {host}", host, (sys.executable, *script), env))
    return run(specs, workdir, timeout)


def gather(expect: Sequence[str], out: Path) -> list[str]:
    """The worker's command line: gather the hosts, check them against ``expect``; rank 0 writes ``out``."""
    return [str(WORKER), "gather", "--expect", json.dumps(list(expect)), "--out", str(out)]


# --------------------------------------------------------------------------- the worker
def _worker(expect: list[str], out: str) -> int:
    import datetime

    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = (socket.gethostname(), int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"]))
        everyone: list[tuple[str, int, int] | None] = [None] * world
        dist.all_gather_object(everyone, mine)
        hosts = [e[0] for e in everyone if e is not None]
        measured = {"hosts": hosts, "local": [[e[1], e[2]] for e in everyone if e is not None]}
        problems = []
        if hosts != expect:
            problems.append(f"the ranks run on {hosts}, expected {expect}")
        wanted = [list(pair) for pair in local_ranks(hosts)]
        if measured["local"] != wanted:
            problems.append(
                f"(LOCAL_RANK, LOCAL_WORLD_SIZE) of the ranks are {measured['local']}, expected {wanted}"
            )
        if rank == 0:
            Path(out).write_text(json.dumps(measured))
        dist.barrier()  # rank 0 has written before anyone leaves
    finally:
        dist.destroy_process_group()
    for p in problems:
        print(f"rank {rank}: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the multi-host harness's worker")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gather", help="all-gather the hostnames and check them")
    p.add_argument("--expect", required=True, help="the host of each rank, as a JSON list")
    p.add_argument("--out", required=True, help="where rank 0 writes what it measured (JSON)")
    args = parser.parse_args(argv)
    return _worker(json.loads(args.expect), args.out)


if __name__ == "__main__":
    sys.exit(main())
