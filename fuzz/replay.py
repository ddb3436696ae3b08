"""Replay fuzz inputs through fuzz/harness.py without atheris.

    python fuzz/replay.py [--memory-mb N] DIR_OR_FILE...

runs every input and lists each one that fails (exit status 1 if any does). The regression
test (tests/test_fuzz_regressions.py) replays fuzz/corpus and fuzz/regressions the same way,
and tools/fuzz.sh replays a fuzzing session's whole corpus under ASan + UBSan.

The process may use N MiB of address space (default 4096), so that a call that tries to
build something of the world's size fails with MemoryError instead of taking the machine's
memory. Under ASan, whose shadow memory needs a huge address space, the limit is ASan's
own hard_rss_limit_mb instead (tools/build-sanitized-extension.sh sets it).
"""

from __future__ import annotations

import ctypes
import resource
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

import harness


def inputs(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the files of the directories named, sorted (hidden files skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        else:
            out.append(p)
    return out


def replay(path: Path) -> str | None:
    """None when the input passes, else the failure with its traceback."""
    try:
        harness.run_one(path.read_bytes())
    except Exception:
        return traceback.format_exc(limit=-3)
    return None


def limit_memory(megabytes: int) -> None:
    """Cap the address space, unless the ASan runtime is loaded (it reserves terabytes)."""
    if hasattr(ctypes.CDLL(None), "__asan_init"):
        return
    limit = megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> int:
    megabytes = 4096
    if argv[:1] == ["--memory-mb"]:
        megabytes, argv = int(argv[1]), argv[2:]
    limit_memory(megabytes)
    files = inputs(argv)
    failed = 0
    for f in files:
        failure = replay(f)
        if failure:
            failed += 1
            print(f"FAILED {f}\n{failure}", file=sys.stderr)
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
