"""A result too large for memory is refused with an exception, never with undefined behaviour.

Each call runs in a child process: under tools/sanitized-python-suite.sh (UBSan with
halt_on_error) undefined behaviour aborts the child and fails the test, where a plain
build might go on with wrapped arithmetic and still raise something.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CALLS = [
    'ProcessTopology(["a", "b"], [2**62, 1]).groups("a")',
    'ProcessTopology(["a", "b"], [2**62, 1]).get_axis_comm_lists("a")',
    'ProcessTopology(["a", "b"], [2**31, 2**31]).groups(["a", "b"])',
    'ProcessTopology(["a", "b"], [2**62, 1]).groups("b")',
    'ProcessTopology(["a", "b"], [2**62, 1]).group_of(0, "a")',
    'ProcessTopology(["a", "b"], [2**62, 1]).group_list(0, "a")',
    'ProcessTopology(["a", "b"], [2**62, 1]).filter_match(b=0)',
    'ProcessTopology(["a", "b"], [1, 2**62]).get_axis_list("a", 0)',
]


@pytest.mark.parametrize("call", CALLS)
def test_too_large_a_result_raises_cleanly(call: str) -> None:
    code = f"""if True:
        from proctopo import ProcessTopology
        try:
            {call}
        except (MemoryError, ValueError) as exc:
            print("refused:", type(exc).__name__)
        else:
            print("returned")
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("refused:"), out.stdout
