"""Coverage-guided fuzzing of fuzz/harness.py with atheris (libFuzzer inside its wheel).

    python fuzz/run.py -max_total_time=75 NEW_CORPUS_DIR fuzz/corpus fuzz/regressions

takes libFuzzer's flags and corpus directories (new inputs go into the first one; keep
it outside the tree). The Python code of proctopo, the harness and the oracle is
instrumented for coverage; the compiled core is exercised through them (tools/fuzz.sh
runs this against the extension built with ASan + UBSan). A failing input is written
as crash-<sha1> (see -artifact_prefix): add it to fuzz/regressions, where
tests/test_fuzz_regressions.py replays it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["proctopo", "harness", "oracle"]):
    import harness


def main() -> None:
    atheris.Setup(sys.argv, harness.run_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
