"""Run a function on local CPU processes joined by torch.distributed, and prove groups.

:func:`run` starts ``nproc`` processes with :func:`torch.multiprocessing.start_processes`
from a forkserver that imported torch once (a process then costs a fork, not a torch
import). Each process joins the default group through a ``file://`` rendezvous (or a
TCPStore on loopback, as ``torchrun`` uses), calls
``fn(rank, nproc, *args)`` and sends back its return value, or its traceback. Nothing
waits forever: the whole run has a deadline, after which the ranks still running are
killed and reported as hung; once one rank fails, the others get a short grace period
and are then stopped, so a crash on one rank does not leave the rest waiting for the
deadline.

Every process must also end with exit code 0: once all ranks have sent their values,
each process gets a bounded wait to exit, and its exit code is recorded in its
:class:`RankResult`. One that exits otherwise (an abort at exit shows as a signal), or
is still running after the wait and is killed, is named by :func:`summary`. With
``natural_exit=True`` the processes end as a script does (``destroy_process_group()``,
then the interpreter's own teardown) instead of skipping it, so a run can prove that a
job ends cleanly.

:func:`prove_group` shows that a process group really connects the ranks it names: an
``all_reduce`` of (global rank + 1) over it must give the sum over its members.

``python -m proctopo run`` and the multi-process tests both use this module. Importing
it does not import torch; :func:`run` and :func:`prove_group` load it when called.

>>> results = [RankResult(0, "ok", 10, exitcode=0), RankResult(1, "timeout", error="still running after 5 s")]
>>> [r.ok for r in results]
[True, False]
>>> print(summary(results))
rank 1 of 2 timed out: still running after 5 s
"""

from __future__ import annotations

import datetime
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .comm import check_timeout
from .errors import GridTimeoutError, GroupCreationError, InvalidArgumentError

__all__ = ["DEFAULT_PRELOAD", "RankResult", "Status", "prove_group", "run", "summary"]

#: Modules the forkserver imports once, before it forks the first rank.
DEFAULT_PRELOAD: tuple[str, ...] = ("torch", "torch.distributed", "proctopo.grid")

Status = Literal["ok", "error", "timeout", "stopped"]

_STATUS_TEXT = {
    "error": "failed",
    "timeout": "timed out",
    "stopped": "was stopped after another rank failed",
}


@dataclass(frozen=True)
class RankResult:
    """What one rank of :func:`run` gave back.

    Attributes:
        rank: The rank (0 .. nproc - 1).
        status: ``"ok"`` (``value`` holds the return value), ``"error"`` (the rank raised
            or died; ``error`` holds the traceback or exit code), ``"timeout"`` (still
            running at the deadline, killed) or ``"stopped"`` (killed at the end of the
            grace period after another rank failed).
        value: The return value of ``fn`` when ``status`` is ``"ok"``.
        error: What went wrong otherwise.
        exitcode: The process's exit code as :func:`run` saw it: ``0`` for a clean
            exit, ``-N`` when signal ``N`` ended it (``-6``: an abort), ``None`` when
            not known.
        killed: Whether :func:`run` had to kill the process (a hang, a stop after
            another rank failed, or a process still running after ``exit_timeout``).
    """

    rank: int
    status: Status
    value: Any = None
    error: str = ""
    exitcode: int | None = None
    killed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the rank returned a value."""
        return self.status == "ok"


def summary(results: Sequence[RankResult]) -> str:
    """One line per rank that did not return a value (with its traceback), or whose process
    did not exit with 0; ``""`` if every rank returned and exited cleanly.

    A process that returned its value but was killed because another rank failed is not
    named again: the failure is.

    >>> print(summary([RankResult(0, "error", error="ValueError: bad"), RankResult(1, "stopped")]))
    rank 0 of 2 failed: ValueError: bad
    rank 1 of 2 was stopped after another rank failed
    >>> print(summary([RankResult(0, "ok", exitcode=3), RankResult(1, "ok", exitcode=-6)]))
    rank 0 of 2 returned a value but its process exited with code 3
    rank 1 of 2 returned a value but its process was ended by signal SIGABRT (exit code -6)
    """
    failed = any(not r.ok for r in results)
    lines = []
    for r in results:
        head = f"rank {r.rank} of {len(results)}"
        if not r.ok:
            detail = f": {r.error.rstrip()}" if r.error else ""
            lines.append(f"{head} {_STATUS_TEXT.get(r.status, r.status)}{detail}")
        elif r.killed and not failed:
            lines.append(f"{head} returned a value but its process did not exit in time and was killed")
        elif not r.killed and r.exitcode not in (0, None):
            lines.append(f"{head} returned a value but its process {_exit_text(r.exitcode)}")
    return "\n".join(lines)


def _exit_text(code: int | None) -> str:
    """How a process ended, from its exit code.

    >>> _exit_text(3), _exit_text(-9), _exit_text(None)
    ('exited with code 3', 'was ended by signal SIGKILL (exit code -9)', 'exit code unknown')
    """
    if code is None:
        return "exit code unknown"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"was ended by signal {name} (exit code {code})"


def prove_group(group: Any, *, timeout: float = 60.0) -> list[int]:
    """Prove that ``group`` connects the ranks it names, with one ``all_reduce``.

    Every member contributes (its global rank + 1); the sum must be that of the
    members' (rank + 1). Call it on every member of the group, as any collective.

    Args:
        group: A ``torch.distributed`` process group the calling rank belongs to.
        timeout: Seconds the ``all_reduce`` may take.

    Returns:
        The global ranks of the group, in group-rank order.

    Raises:
        GroupCreationError: the calling rank is not a member, or the sum is wrong.
        GridTimeoutError: the ``all_reduce`` did not finish within ``timeout``.

    >>> prove_group(dp_group, timeout=30)  # doctest: +SKIP
    [1, 3]
    """
    import torch
    import torch.distributed as dist

    rank = dist.get_rank()
    try:
        ranks = [int(r) for r in dist.get_process_group_ranks(group)]
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GroupCreationError(f"rank {rank} cannot prove a group it is not a member of: {exc}") from None
    if rank not in ranks:
        raise GroupCreationError(f"rank {rank} cannot prove group {ranks}: it is not a member")
    t = torch.tensor([float(rank + 1)])
    work = dist.all_reduce(t, group=group, async_op=True)
    try:
        work.wait(timeout=datetime.timedelta(seconds=timeout))
    except RuntimeError as exc:
        raise GridTimeoutError(
            f"all_reduce over group {ranks} did not finish within {timeout:g} s on rank {rank}: {exc}"
        ) from exc
    expected = float(sum(r + 1 for r in ranks))
    if t.item() != expected:
        raise GroupCreationError(
            f"all_reduce of rank+1 over group {ranks} gave {t.item():g} on rank {rank}, expected "
            f"{expected:g}: the group does not connect the ranks it names"
        )
    return ranks


def _entry(
    rank: int,
    nproc: int,
    payload: bytes,
    rendezvous: str,
    ends: Sequence[Any],
    backend: str,
    timeout: float,
    sys_path: Sequence[str],
    natural_exit: bool,
) -> None:
    """Body of one process: join the group, run the function, send back the result, exit.

    A rank whose function raised exits with 1 at once. The others wait until the parent
    has every rank's value and lets them go (a process that exits while a peer still
    connects to it, as gloo builds each group's connections lazily, breaks that peer);
    then each exits with 0 through ``os._exit``, or, with ``natural_exit``, destroys the
    default group and returns, so that the interpreter tears down as at the end of a
    script (and decides the exit code). The wait is on the parent, not on a collective:
    it holds when ``fn`` left the default group mid-collective.
    """
    conn = ends[rank]
    for other in ends:  # keep only this rank's end, so the parent sees each rank's EOF
        if other is not conn:
            other.close()
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    sys.path[:0] = [p for p in sys_path if p not in sys.path]  # find modules as the parent does now
    result: tuple[str, Any]
    try:
        import torch.distributed as dist

        fn, args = pickle.loads(payload)
        dist.init_process_group(
            backend,
            init_method=rendezvous,
            rank=rank,
            world_size=nproc,
            timeout=datetime.timedelta(seconds=timeout),
        )
        result = ("ok", fn(rank, nproc, *args))
    except KeyboardInterrupt:  # the parent (or the forkserver) went away
        os._exit(130)
    except BaseException as exc:
        result = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    try:
        data = pickle.dumps(result)
    except Exception as exc:
        result = ("error", f"its return value cannot be pickled: {type(exc).__name__}: {exc}")
        data = pickle.dumps(result)
    try:
        conn.send_bytes(data)
        if result[0] == "ok":
            conn.recv_bytes()  # the parent's word that every rank is done
    except (EOFError, OSError):  # the parent went away: nobody to report to, nobody to wait for
        os._exit(1)
    conn.close()
    if result[0] != "ok":
        _flush()
        os._exit(1)  # its peers may be stuck in a collective: the parent stops them
    if not natural_exit:
        _flush()
        # Skip interpreter teardown: a group left mid-collective must not hang the exit.
        os._exit(0)
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            traceback.print_exc()
            _flush()
            sys.exit(1)  # through the teardown all the same; the parent reads the code


def _flush() -> None:
    sys.stdout.flush()
    sys.stderr.flush()


def run(
    fn: Callable[..., Any],
    nproc: int,
    args: Sequence[Any] = (),
    *,
    timeout: float = 60.0,
    grace: float = 5.0,
    workdir: str | os.PathLike[str] | None = None,
    backend: str = "gloo",
    preload: Sequence[str] = DEFAULT_PRELOAD,
    start_method: str | None = None,
    store: str = "file",
    natural_exit: bool = False,
    exit_timeout: float = 30.0,
) -> list[RankResult]:
    """Run ``fn(rank, nproc, *args)`` on ``nproc`` local processes joined by torch.distributed.

    Args:
        fn: A module-level function. It is pickled by reference, so its module must be
            importable under its name (a function of ``__main__`` is not).
        nproc: Number of processes, at least 1.
        args: Extra picklable arguments.
        timeout: Seconds until the run counts as hung: ranks still running then are
            killed (status ``"timeout"``). Also the timeout of the default group's
            collectives. Checked by :func:`proctopo.comm.check_timeout`.
        grace: Seconds the other ranks get once one has failed; those still running
            then are killed (status ``"stopped"``).
        workdir: Directory for the rendezvous file (default: a temporary directory,
            removed afterwards).
        backend: ``torch.distributed`` backend of the default group.
        preload: Modules the forkserver imports before its first fork. The forkserver
            serves the whole Python process, so only the first run's list counts.
        start_method: ``"forkserver"`` (the default), ``"spawn"`` (the default with
            ``natural_exit``) or ``"fork"``.
        store: How the ranks meet: ``"file"`` (default), torch's FileStore on a file
            in ``workdir``, or ``"tcp"``, a TCPStore served by rank 0 on a free
            port of 127.0.0.1, as ``torchrun`` serves one (a FileStore's ``wait``
            looks at the file again every 10 ms; a TCPStore's is woken by the key).
        natural_exit: End each process as a script ends instead of with ``os._exit(0)``:
            ``destroy_process_group()`` (unless ``fn`` did it), then the interpreter's
            teardown (``atexit`` hooks, threads joined, objects and extension modules
            finalized), whose outcome is the exit code. Needs ``start_method="spawn"``:
            a forked process ends with ``os._exit`` whatever it does, skipping that
            teardown.
        exit_timeout: Seconds the processes get to exit once every rank has sent its
            value (each waits for that, so that none leaves while a peer still needs
            it); ``timeout`` bounds the run until then. One still running then is
            killed, and named by :func:`summary`. Checked by
            :func:`proctopo.comm.check_timeout`.

    Returns:
        One :class:`RankResult` per rank, in rank order, with its process's exit code;
        :func:`summary` describes the ranks that did not return a value or whose
        process did not exit with 0.

    Raises:
        InvalidArgumentError: ``nproc``, ``timeout``, ``exit_timeout`` or ``grace`` out
            of range, ``natural_exit`` with a start method other than ``"spawn"``, or
            ``fn`` and ``args`` cannot be pickled.

    >>> results = run(mymodule.work, 4, ("hello",), timeout=30)  # doctest: +SKIP
    >>> [r.value for r in results]  # doctest: +SKIP
    ['hello from 0', 'hello from 1', 'hello from 2', 'hello from 3']
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise InvalidArgumentError(f"nproc must be an integer of at least 1, got {nproc!r}")
    check_timeout(timeout)
    check_timeout(exit_timeout, "exit_timeout")
    if not grace >= 0:
        raise InvalidArgumentError(f"grace must be a number of seconds of at least 0, got {grace!r}")
    try:
        payload = pickle.dumps((fn, tuple(args)))
    except Exception as exc:
        raise InvalidArgumentError(
            f"fn and args must be picklable (fn a module-level function): {type(exc).__name__}: {exc}"
        ) from None
    if store not in ("file", "tcp"):
        raise InvalidArgumentError(f"store must be 'file' or 'tcp', got {store!r}")
    if start_method is None:
        start_method = "spawn" if natural_exit else "forkserver"
    elif natural_exit and start_method != "spawn":
        raise InvalidArgumentError(
            f"natural_exit needs start_method 'spawn', got {start_method!r}: a forked process ends "
            "with os._exit, which skips the interpreter's teardown"
        )
    with tempfile.TemporaryDirectory(prefix="proctopo-run-", dir=workdir) as run_dir:
        rendezvous = "file://" + os.path.join(run_dir, "rendezvous") if store == "file" else _tcp_address()
        return _supervise(
            nproc,
            payload,
            rendezvous,
            timeout,
            grace,
            exit_timeout,
            backend,
            preload,
            start_method,
            natural_exit,
        )


def _tcp_address() -> str:
    """``tcp://127.0.0.1:PORT`` with a port that was free a moment ago."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def _supervise(
    nproc: int,
    payload: bytes,
    rendezvous: str,
    timeout: float,
    grace: float,
    exit_timeout: float,
    backend: str,
    preload: Sequence[str],
    start_method: str,
    natural_exit: bool,
) -> list[RankResult]:
    import multiprocessing
    import multiprocessing.connection as mpc

    from torch.multiprocessing.spawn import start_processes

    start: Callable[..., Any] = start_processes  # untyped in torch
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(list(preload))  # no effect once the forkserver runs
    pipes = [ctx.Pipe() for _ in range(nproc)]  # a rank's result up, the word to exit down
    readers = [r for r, _ in pipes]
    ends = [w for _, w in pipes]
    results: dict[int, RankResult] = {}
    procs: list[Any] = []
    try:
        started = start(
            _entry,
            (nproc, payload, rendezvous, ends, backend, timeout, list(sys.path), natural_exit),
            nprocs=nproc,
            join=False,
            daemon=True,
            start_method=start_method,
        )
        procs = list(started.processes)
        for end in ends:
            end.close()
        deadline = time.monotonic() + timeout
        stop_at = deadline
        waiting: dict[Any, int] = dict(zip(readers, range(nproc)))
        while waiting:
            now = time.monotonic()
            if now >= stop_at:
                break
            for reader in mpc.wait(list(waiting), timeout=min(0.5, stop_at - now)):
                r = waiting.pop(reader)
                results[r] = _receive(r, reader, procs[r])
            for reader, r in list(waiting.items()):
                if procs[r].exitcode is not None and not reader.poll():
                    del waiting[reader]  # exited, yet a sibling held its pipe open
                    results[r] = _died(r, procs[r])
            if stop_at == deadline and any(not res.ok for res in results.values()):
                stop_at = min(deadline, time.monotonic() + grace)
        for r in range(nproc):
            if r not in results:
                pid = procs[r].pid
                if stop_at < deadline:
                    text = f"killed (pid {pid}) {grace:g} s after the first failure"
                    results[r] = RankResult(r, "stopped", error=text)
                else:
                    text = f"still running after {timeout:g} s (a hang); killed (pid {pid})"
                    results[r] = RankResult(r, "timeout", error=text)
    finally:
        # Once every rank has returned, the processes are told to exit and get exit_timeout
        # to do it; after a failure, what still runs is stopped at once.
        finished = len(results) == nproc and all(res.ok for res in results.values())
        if finished:
            for reader in readers:
                try:
                    reader.send_bytes(b"exit")
                except OSError:  # that rank is gone already; its exit code tells how
                    pass
        killed = _end(procs, exit_timeout if finished else 0.0)
        for conn in (*readers, *ends):
            conn.close()
    return [replace(results[r], exitcode=procs[r].exitcode, killed=r in killed) for r in range(nproc)]


def _end(procs: Sequence[Any], wait: float) -> set[int]:
    """Join the processes within ``wait`` seconds in all, kill those still running, reap
    them all; returns the indices of the killed ones."""
    end = time.monotonic() + wait
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    killed = {i for i, p in enumerate(procs) if p.is_alive()}
    for i in sorted(killed):
        procs[i].kill()
    for p in procs:
        p.join(5.0)
    return killed


def _receive(rank: int, reader: Any, proc: Any) -> RankResult:
    try:
        data = reader.recv_bytes()
    except (EOFError, OSError):
        return _died(rank, proc)
    try:
        status, value = pickle.loads(data)
    except Exception as exc:
        return RankResult(rank, "error", error=f"its result cannot be unpickled: {type(exc).__name__}: {exc}")
    if status == "ok":
        return RankResult(rank, "ok", value)
    return RankResult(rank, "error", error=value)


def _died(rank: int, proc: Any) -> RankResult:
    proc.join(5.0)
    return RankResult(rank, "error", error=f"exited with code {proc.exitcode} without a result")
