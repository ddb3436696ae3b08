"""The proctopo command answers for a world of 2**63 ranks within 2 GiB of address space.

Each command runs in a child process whose address space is capped with RLIMIT_AS, so a
command that builds anything of the world's (or one axis's) size fails here with
MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import pytest
from helpers import run_capped

pytestmark = pytest.mark.address_space_cap

LIMIT = 2 * 1024**3  # bytes of address space
AXES = ["a=3037000499", "b=3037000499"]  # 9,223,372,030,926,249,001 ranks, one axis of 3e9
WORLD = str(3037000499**2)


@pytest.mark.parametrize(
    "args",
    [
        ["show"],
        ["show", "--json"],
        ["show", "--rank", str(3037000499**2 - 2)],
        ["show", "--rank", "5", "--ranks-per-node", "8"],
        ["check"],
        ["check", "--json"],
        ["check", "--ranks-per-node", "8", "--allow-partial-node"],
        ["draw"],
        ["draw", "--json"],
        ["draw", "--group", "a"],
        ["draw", "--group", "b", "--ranks-per-node", "8"],
    ],
    ids=" ".join,
)
def test_huge_world_within_2_gib(args: list[str]) -> None:
    out = run_capped(["-m", "proctopo", *args, *AXES], LIMIT, timeout=120)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stdout.strip(), "nothing printed"


def test_the_cap_is_real() -> None:
    """Under the same cap, allocating 3 GiB fails: the test above can fail."""
    code = "bytearray(3 * 1024**3)"
    out = run_capped(["-c", code], LIMIT, timeout=60)
    assert out.returncode != 0 and "MemoryError" in out.stderr, out.stderr[-2000:]
