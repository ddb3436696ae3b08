#!/usr/bin/env bash
# The torch-free Python tests (tools/torch-free-tests.txt, fuzz regression inputs included)
# against proctopo._core built with AddressSanitizer + UndefinedBehaviorSanitizer
# (tools/build-sanitized-extension.sh, into build/asan-py; the source tree's own extension
# is not touched). A memory error or undefined behaviour in the core or the binding aborts
# the run with a report; CPython's own leaks at exit are not reported (detect_leaks=0).
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
mapfile -t tests < <(grep -v -e '^#' -e '^[[:space:]]*$' -e '\[no-asan\]' tools/torch-free-tests.txt)
python -m pytest -q -p no:cacheprovider -m "not mp" "$@" "${tests[@]}"
