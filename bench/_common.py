"""What the benchmark scripts share: the machine they ran on, how figures are written, the
commit and version measured.

bench/ is not a package: each script runs as ``python bench/NAME.py``, which puts bench/ on
``sys.path``, and imports this module as ``_common``.
"""

# ruff: noqa: RUF001, RUF002  (figures are written with the multiplication sign)
from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# ----------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_bytes(field: str = "MemTotal") -> int | None:
    """A ``/proc/meminfo`` field (``MemTotal``, ``MemAvailable``) in bytes; None where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def load_average(sep: str = " ") -> str:
    """The load average over 1, 5 and 15 minutes, e.g. ``"0.93 1.10 1.20"``; ``"n/a"`` where unknown."""
    try:
        return sep.join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def machine_info() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and load average now (``load``: 1 / 5 / 15 min)."""
    total = memory_bytes()
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": fmt_bytes(total) if total is not None else "?",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": load_average(),
    }


# ----------------------------------------------------------------------------- figures
def fmt_time(s: float | None) -> str:
    """Seconds in the largest unit that keeps a figure of at least 1: ``1.46 µs``, ``23.8 s``."""
    if s is None or not math.isfinite(s):
        return "—"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= f or unit == "ns":
            v = s / f
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return f"{s} s"


def fmt_ratio(x: float) -> str:
    """A ratio with the multiplication sign: ``40,632×``, ``69×``, ``0.68×``."""
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.0f}×"
    return f"{x:.2g}×"


def fmt_bytes(n: int | None) -> str:
    """Bytes in binary units: ``392 B``, ``141 MiB``."""
    if n is None:
        return "—"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= f:
            return f"{sign}{n / f:.3g} {unit}"
    return f"{sign}{n} B"


# ----------------------------------------------------------------------------- what was measured
def git_commit() -> str:
    """The short commit of the tree, with a note when it has uncommitted changes; ``?`` without git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    commit = out.stdout.strip() or "?"
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def source_version() -> str:
    """proctopo's version from the project() line of CMakeLists.txt (its one source), for a source tree."""
    try:
        text = (REPO / "CMakeLists.txt").read_text()
    except OSError:
        return "unknown (source tree)"
    m = re.search(r"project\(\s*proctopo\b[^)]*?VERSION\s+([0-9][0-9.]*)", text, re.S)
    return f"{m.group(1)} (source tree)" if m else "unknown (source tree)"
