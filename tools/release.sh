#!/usr/bin/env bash
# The release build, one command (docs/release.md):
#   pip install -r requirements/hardening.txt && tools/release.sh
# 1. tools/ci-pythons.sh: a wheel for every supported Python, compiled by zig against glibc
#    2.17 and repaired to manylinux_2_17 (manylinux2014),
#    installed without a compiler into a fresh venv and tested there; any failure stops here.
# 2. The source distribution (python -m build --sdist), checked to hold the C++ core and the
#    build files.
# 3. dist/: the wheels, the sdist and SHA256SUMS. Nothing is uploaded.
# The tree must be committed (a release is a commit); RELEASE_ALLOW_DIRTY=1 builds anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
if [[ -n "$(git status --porcelain 2>/dev/null)" && "${RELEASE_ALLOW_DIRTY:-0}" != 1 ]]; then
  echo "release: the work tree has uncommitted changes; commit them (or RELEASE_ALLOW_DIRTY=1)" >&2
  exit 1
fi
need_module build
tools/ci-pythons.sh
rm -rf dist
mkdir -p dist
cp build/ci-pythons/wheelhouse/*.whl dist/
python -m build --sdist --outdir dist . >build/release-sdist.log 2>&1 || { cat build/release-sdist.log >&2; exit 1; }
sdist=$(ls dist/proctopo-*.tar.gz)
for member in pyproject.toml CMakeLists.txt cpp/src/topology.cpp python/bindings/module.cpp python/proctopo/__init__.py; do
  tar -tzf "$sdist" | grep -q "^proctopo-[^/]*/$member\$" || { echo "release: $sdist lacks $member" >&2; exit 1; }
done
(cd dist && sha256sum -- *.whl *.tar.gz >SHA256SUMS)
echo
echo "=== dist/ ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
cat dist/SHA256SUMS
