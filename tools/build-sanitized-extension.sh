#!/usr/bin/env bash
# Build proctopo._core with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch
# directory and lay out an importable copy of the package there, leaving the source tree
# and its own extension untouched:
#   tools/build-sanitized-extension.sh [DIR]    (default build/asan-py)
# DIR/site/proctopo is the package with the sanitized _core; DIR/env holds the variables a
# process needs to load it (PYTHONPATH, LD_PRELOAD of the matching libasan and libubsan,
# ASAN_OPTIONS, UBSAN_OPTIONS): `set -a; . DIR/env; set +a`. Uses the active `python` and
# its pybind11 (pip install -r requirements/hardening.txt). Incremental: a second run only
# relinks what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
dir=${1:-build/asan-py}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
py=$(command -v python) || { echo "no python on PATH" >&2; exit 1; }
need_module pybind11
pybind11_dir=$("$py" -m pybind11 --cmakedir)
if [[ -z "${CMAKE_GENERATOR:-}" ]] && command -v ninja >/dev/null; then
  export CMAKE_GENERATOR=Ninja
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
# Debug: no optimisation to hide a bug behind, and the quickest build of the binding.
cmake -S . -B "$dir/build" -DCMAKE_BUILD_TYPE=Debug -DPROCTOPO_SANITIZE=address,undefined \
  -DPROCTOPO_BUILD_PYTHON=ON -DPROCTOPO_BUILD_TESTS=OFF -DPROCTOPO_BUILD_BENCH=OFF -DPROCTOPO_WERROR=ON \
  -DPROCTOPO_INSTALL=OFF "-DPython_EXECUTABLE=$py" "-Dpybind11_DIR=$pybind11_dir" >"$dir/configure.log" \
  || { cat "$dir/configure.log"; exit 1; }
cmake --build "$dir/build" --target _core

so=$(find "$dir/build" -maxdepth 1 -name '_core*.so' | head -n 1)
[[ -n "$so" ]] || { echo "the build made no _core*.so" >&2; exit 1; }
rm -rf "$dir/site"
mkdir -p "$dir/site"
# The package as it is in the tree (subpackages included), with the sanitized extension in
# place of any extension built there.
cp -R python/proctopo "$dir/site/"
find "$dir/site/proctopo" \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp "$so" "$dir/site/proctopo/"

# The runtimes the extension was linked with, preloaded (the interpreter is not instrumented,
# so libasan must come first in the process).
runtimes=$(ldd "$so" | awk '/lib(asan|ubsan)\.so/ {print $3}' | tr '\n' ' ')
[[ "$runtimes" == *libasan* && "$runtimes" == *libubsan* ]] \
  || { echo "the extension is not linked with libasan and libubsan: ${runtimes:-none}" >&2; exit 1; }
# allocator_may_return_null: a request for more memory than there is (a NumPy array of a
# whole huge world, say) raises MemoryError as it does without ASan, instead of aborting;
# hard_rss_limit_mb: a process that fills memory anyway is stopped with a report before it
# takes the machine's memory (the address-space limit used elsewhere cannot work under ASan).
# PYTHONMALLOC=malloc: every Python object comes from ASan's allocator, so an overrun of one
# made by the binding is caught too.
cat >"$dir/env" <<ENV
PYTHONPATH='$dir/site'
LD_PRELOAD='${runtimes% }'
ASAN_OPTIONS='detect_leaks=0:allocator_may_return_null=1:hard_rss_limit_mb=6144:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1'
UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1'
PYTHONMALLOC=malloc
ENV
echo "sanitized extension: $dir/site/proctopo/$(basename "$so") (preloading ${runtimes% })"
