#!/usr/bin/env bash
# The torch-free Python tests (every test not marked `torch`, fuzz regression inputs included)
# against proctopo._core built with AddressSanitizer + UndefinedBehaviorSanitizer
# (tools/build-sanitized-extension.sh, into build/asan-py; the source tree's own extension
# is not touched). A memory error or undefined behaviour in the core or the binding aborts
# the run with a report; CPython's own leaks at exit are not reported (detect_leaks=0).
# PROCTOPO_TORCH_FREE=1 keeps torch and the peers out of the test process (tests/conftest.py),
# and the tests that cap their address space (marked address_space_cap) are left out: ASan's
# shadow memory cannot live under such a cap.
#   pip install -r requirements/hardening.txt -r requirements/test.txt
#   tools/sanitized-python-suite.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build-sanitized-extension.sh build/asan-py
set -a
# shellcheck disable=SC1091
. build/asan-py/env
set +a
export PROCTOPO_REQUIRE_PEERS=1
# The process runs the sanitized extension, with the ASan runtime live.
python - <<'PY'
import ctypes, os, sys
import proctopo._core as core
site = os.environ["PYTHONPATH"]
assert core.__file__.startswith(site + os.sep), f"proctopo._core comes from {core.__file__}, not {site}"
ctypes.CDLL(None).__asan_init  # AttributeError unless the ASan runtime is loaded
print(f"python {sys.version.split()[0]}: {core.__file__} under ASan + UBSan")
PY
export PROCTOPO_TORCH_FREE=1
python -m pytest -q -p no:cacheprovider -m "not torch and not address_space_cap" "$@" tests
