# shellcheck shell=bash
# Sourced by the scripts in tools/ (not run by itself).

# Exit status of a script whose prerequisite is missing (the Automake convention for a test
# that could not run). .ci/run reports such a step as not run, with the message, and counts
# it as a failure in CI (CI=true), where every prerequisite must be there.
MISSING=77

# missing WHAT HOW...: say what is missing and how to get it, then exit with $MISSING.
missing() {
  local what=$1
  shift
  printf '%s: missing prerequisite: %s\n' "$(basename "$0")" "$what" >&2
  printf '  get it: %s\n' "$@" >&2
  exit "$MISSING"
}

# need_module MODULE: the active python can import MODULE, or the hardening tools are missing.
need_module() {
  python -c "import $1" 2>/dev/null \
    || missing "the Python module $1 (for $(command -v python))" "pip install -r requirements/hardening.txt"
}

# find_python X.Y: print the path of a Python X.Y: the newest $(pyenv root)/versions/X.Y.*,
# else pythonX.Y on PATH. Prints nothing and fails when there is none.
find_python() {
  local v=$1 found="" root
  if root=$(pyenv root 2>/dev/null); then
    found=$(find "$root/versions" -maxdepth 3 -path "*/versions/$v.*/bin/python" 2>/dev/null | sort -V | tail -n 1)
  fi
  [[ -n "$found" ]] || found=$(command -v "python$v" || true)
  [[ -n "$found" ]] && "$found" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.')))" \
    2>/dev/null && echo "$found"
}

# python_gaps PYTHON X.Y: what PYTHON (a Python X.Y) lacks to make a venv and build proctopo's
# extension, one "what|how to get it" line each; nothing when it has it all.
python_gaps() {
  local py=$1 v=$2
  "$py" -c 'import ensurepip, venv' 2>/dev/null || echo "the venv module of $py|apt-get install -y python$v-venv"
  "$py" -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
    2>/dev/null || echo "the C headers (Python.h) of $py, to build proctopo's extension|apt-get install -y python$v-dev"
}
