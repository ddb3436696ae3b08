#!/usr/bin/env bash
# The torch-dependent suite (pytest -m torch) against torch 2.14.1, the newest torch
# proctopo is tested with; the main suite runs on torch 2.13.0. It runs in a venv of its
# own: Python 3.11 with torch 2.14.1, proctopo built from this tree, the test tools of
# requirements/test.txt and the comparison peers at their pins (DeepSpeed and megatron-core
# from requirements/peers.txt, torchtitan from requirements/torchtitan.txt), each installed
# so that torch stays 2.14.1 (checked).
#   tools/torch-2.14.sh [pytest arguments...]
# Python 3.11 is $(pyenv root)/versions/3.11.*/bin/python or python3.11 on PATH, with its
# venv module and C headers (proctopo's extension is compiled). When one is missing, the
# script says which and how to get it, and exits with 77 (tools/lib.sh); .ci/run counts
# that as a failure in CI (CI=true).
#
# The venv is build/torch-2.14/venv (kept between runs; set TORCH214_VENV to use another
# one). torch comes from TORCH_INDEX_URL when set, else from the configured index.
# The tests run with PROCTOPO_REQUIRE_PEERS=1 (a missing peer fails instead of skipping);
# the tests that run processes ending as scripts end (tests/test_teardown.py) check that
# every process exits with 0.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
PY=3.11
TORCH=torch==2.14.1
DEEPSPEED=$(pin deepspeed requirements/peers.txt)
MEGATRON=$(pin megatron-core requirements/peers.txt)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Python $PY with its venv module and headers, the venv, and torch in it (tools/lib.sh).
py=$(need_python "$PY" "torch ${TORCH#*==}'s wheel on this machine's disk is for Python $PY") || exit
echo "python $PY: $py"
venv=${TORCH214_VENV:-build/torch-2.14/venv}
vpy=$(venv_python "$venv" "$py" "$PY" exact) || exit
venv_torch "$vpy" "$TORCH"
# proctopo from this tree (its own build directory) and the test tools; then the peers:
# DeepSpeed with its dependencies (it accepts any torch >= 2.0, so torch stays), without
# building its C++/CUDA ops; megatron-core and torchtitan without dependencies, as the main
# suite installs them (their own lists would pull another torch).
"$vpy" -m pip install -q . --config-settings=build-dir=build/torch-2.14/build -r requirements/test.txt
DS_BUILD_OPS=0 "$vpy" -m pip install -q "$DEEPSPEED" "$TORCH"
"$vpy" -m pip install -q --no-deps "$MEGATRON" -r requirements/torchtitan.txt
"$vpy" -m pip install -q einops packaging
venv_has "$vpy" torch "${TORCH#*==}" || { echo "torch-2.14: torch is no longer ${TORCH#*==}" >&2; exit 1; }
"$vpy" - "$venv" <<'PY'
import importlib.metadata as m, os, sys
import proctopo, proctopo._core
venv = os.path.realpath(sys.argv[1])
for mod in (proctopo, proctopo._core):  # the installed package, not the source tree
    assert os.path.realpath(mod.__file__).startswith(venv + os.sep), f"{mod.__name__} from {mod.__file__}"
peers = ", ".join(f"{d} {m.version(d)}" for d in ("deepspeed", "megatron-core", "torchtitan"))
print(f"python {sys.version.split()[0]}, torch {m.version('torch')}, {peers}, "
      f"proctopo {proctopo.__version__} from {os.path.dirname(proctopo.__file__)}")
PY

# Every torch-dependent test (the marker set by tests/conftest.py), with every peer required.
PROCTOPO_REQUIRE_PEERS=1 "$vpy" -m pytest -p no:cacheprovider -q -m torch "$@"
