"""Run a function on N local CPU processes joined by torch.distributed (gloo).

    results = run_workers(fn, world_size=4, tmp_path=tmp_path, args=(...,), timeout=60)

Each worker initialises the default group with the gloo backend and a
``file://`` rendezvous under ``tmp_path``, calls ``fn(rank, world_size, *args)``
and hands back its return value (or its exception). Processes come from a
forkserver that imported torch once, so a call costs a fork, not a torch import.

A timeout turns a hang into a failure: when the deadline passes, the workers
still running are killed (by their own pids) and :class:`WorkerTimeout` names
them. When one worker fails the others get a short grace period and are then
killed, so a crash on one rank does not leave the rest waiting for the deadline.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_CTX: Any = None
_TESTS_DIR = str(Path(__file__).resolve().parent)


class WorkerError(AssertionError):
    """A worker raised; the message holds every failing rank's traceback."""


class WorkerTimeout(AssertionError):
    """Workers were still running at the deadline (a hang)."""


def _context() -> Any:
    global _CTX
    if _CTX is None:
        if _TESTS_DIR not in sys.path:
            sys.path.insert(0, _TESTS_DIR)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch.distributed", "numpy", "proctopo"])
        _CTX = ctx
    return _CTX


def _entry(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    rdzv: str,
    out: str,
    args: tuple[Any, ...],
    init_timeout: float,
) -> None:
    import datetime

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    result: tuple[str, Any]
    try:
        import torch.distributed as dist

        dist.init_process_group(
            "gloo",
            init_method=f"file://{rdzv}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=init_timeout),
        )
        result = ("ok", fn(rank, world_size, *args))
    except BaseException as exc:
        result = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        try:
            pickle.dump(result, f)
        except Exception as exc:  # unpicklable result
            f.seek(0)
            f.truncate()
            pickle.dump(("error", f"result of rank {rank} cannot be pickled: {exc}"), f)
    os.replace(tmp, out)
    if result[0] == "ok":
        # Stay until every rank is done: a process that exits while a peer is still
        # connecting to it (gloo builds each group's mesh lazily) breaks that peer.
        try:
            import torch.distributed as dist

            dist.monitored_barrier(timeout=datetime.timedelta(seconds=init_timeout))
        except Exception:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a group left mid-collective by a test of failure
    # paths must not turn into a hang at exit.
    os._exit(0)


def run_workers(
    fn: Callable[..., Any],
    world_size: int,
    tmp_path: Path,
    args: Sequence[Any] = (),
    *,
    timeout: float = 60.0,
    grace: float = 5.0,
    expect_errors: bool = False,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo processes.

    Args:
        fn: A module-level function (it is pickled by reference).
        world_size: Number of processes (keep it <= 8 on small machines).
        tmp_path: Directory for the rendezvous file and results.
        args: Extra picklable arguments.
        timeout: Seconds until the whole run counts as hung.
        grace: Seconds the other ranks get once one has failed.
        expect_errors: Return ``("error", text)`` entries instead of raising.

    Returns:
        The return value of each rank, in rank order (with ``expect_errors``, a
        ``(status, value)`` pair per rank).

    Raises:
        WorkerError: a worker raised (unless ``expect_errors``).
        WorkerTimeout: workers still ran at the deadline.
    """
    ctx = _context()
    run_dir = Path(tmp_path) / f"mp-{os.getpid()}-{time.monotonic_ns()}"
    run_dir.mkdir(parents=True)
    rdzv = str(run_dir / "rendezvous")
    outs = [str(run_dir / f"result-{r}.pkl") for r in range(world_size)]
    procs = [
        ctx.Process(target=_entry, args=(fn, r, world_size, rdzv, outs[r], tuple(args), timeout), daemon=True)
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    first_error_at: float | None = None
    results: dict[int, tuple[str, Any]] = {}
    try:
        while len(results) < world_size:
            for r in range(world_size):
                if r not in results and os.path.exists(outs[r]):
                    with open(outs[r], "rb") as f:
                        results[r] = pickle.load(f)
                    if results[r][0] == "error" and first_error_at is None:
                        first_error_at = time.monotonic()
                elif r not in results and procs[r].exitcode is not None and not os.path.exists(outs[r]):
                    results[r] = ("error", f"rank {r} died with exit code {procs[r].exitcode} and no result")
                    first_error_at = first_error_at or time.monotonic()
            now = time.monotonic()
            if len(results) == world_size:
                break
            if now > deadline or (
                first_error_at is not None and not expect_errors and now > first_error_at + grace
            ):
                break
            time.sleep(0.02)
    finally:
        if len(results) == world_size:  # let the final barrier finish (2 s at most)
            stop = time.monotonic() + 2.0
            for p in procs:
                p.join(max(0.0, stop - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(5)

    missing = [r for r in range(world_size) if r not in results]
    errors = {r: v for r, (s, v) in results.items() if s == "error"}
    if errors and not expect_errors:
        text = "\n".join(f"--- rank {r}:\n{v}" for r, v in sorted(errors.items()))
        extra = f"\n(ranks {missing} were killed after the failure)" if missing else ""
        raise WorkerError(f"{len(errors)} of {world_size} workers failed:\n{text}{extra}")
    if missing:
        raise WorkerTimeout(f"ranks {missing} of {world_size} were still running after {timeout:g} s (hang)")
    if expect_errors:
        return [results[r] for r in range(world_size)]
    return [results[r][1] for r in range(world_size)]
