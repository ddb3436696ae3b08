#!/usr/bin/env bash
# The megatron tests against megatron-core 0.19, the newest release proctopo.megatron is
# tested with. megatron-core 0.17 and newer require Python >= 3.12, so they run in a venv
# of their own: Python 3.12 with torch 2.13.0, proctopo built from this tree, and
# megatron-core 0.19.2 (requirements/megatron-0.19.txt). The main suite tests 0.16.1.
#   tools/megatron-0.19.sh
# Python 3.12 is $(pyenv root)/versions/3.12.*/bin/python or python3.12 on PATH, with its
# venv module and C headers (proctopo's extension is compiled). When one is missing, the
# script says which and how to get it, and exits with 77 (tools/lib.sh); .ci/run counts
# that as a failure in CI (CI=true).
#
# The venv is build/megatron-0.19/venv (kept between runs; set MEGATRON_VENV to use another
# one). torch comes from TORCH_INDEX_URL when set, else from PyPI, whose build for Python
# 3.12 bundles CUDA (about 530 MB and the NVIDIA wheels) and runs on CPU;
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes the CPU build instead.
# The tests run with PROCTOPO_REQUIRE_PEERS=1 (a missing peer fails); each multi-process
# test checks that every process exited with 0.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
PY=3.12
TORCH=torch==2.13.0
MEGATRON=$(pin megatron-core requirements/megatron-0.19.txt)
TESTS=(tests/test_megatron_state.py tests/test_topology_megatron.py tests/test_training.py
  tests/test_teardown.py tests/test_multihost.py)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Python $PY with its venv module and headers, the venv, and torch in it (tools/lib.sh).
py=$(need_python "$PY" "megatron-core ${MEGATRON#*==} requires Python >= $PY") || exit
echo "python $PY: $py"
venv=${MEGATRON_VENV:-build/megatron-0.19/venv}
vpy=$(venv_python "$venv" "$py" "$PY" min) || exit
venv_torch "$vpy" "$TORCH"
# proctopo from this tree (its own build directory), the test tools with requirements/test.txt's
# pins, then megatron-core without dependencies: torch stays the one installed above.
mapfile -t test_tools < <(grep -E '^(pytest|pytest-timeout)==' requirements/test.txt)
"$vpy" -m pip install -q . --config-settings=build-dir=build/megatron-0.19/build "${test_tools[@]}"
"$vpy" -m pip install -q --no-deps -r requirements/megatron-0.19.txt
venv_has "$vpy" torch "${TORCH#*==}" || { echo "megatron-0.19: torch is no longer ${TORCH#*==}" >&2; exit 1; }
venv_has "$vpy" megatron-core "${MEGATRON#*==}" || { echo "megatron-0.19: megatron-core is not ${MEGATRON#*==}" >&2; exit 1; }
"$vpy" - "$venv" <<'PY'
import importlib.metadata as m, os, sys
import proctopo, proctopo._core
venv = os.path.realpath(sys.argv[1])
for mod in (proctopo, proctopo._core):  # the installed package, not the source tree
    assert os.path.realpath(mod.__file__).startswith(venv + os.sep), f"{mod.__name__} from {mod.__file__}"
print(f"python {sys.version.split()[0]}, torch {m.version('torch')}, megatron-core {m.version('megatron-core')}, "
      f"proctopo {proctopo.__version__} from {os.path.dirname(proctopo.__file__)}")
PY

# Every megatron test of these files: the state, the topology, the training example, a
# Megatron job's ending, and the placement rules and reorder over several hosts.
PROCTOPO_REQUIRE_PEERS=1 "$vpy" -m pytest -p no:cacheprovider -q "${TESTS[@]}" -k "megatron or model_parallel"
