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

# need_python X.Y WHY: print the path of a Python X.Y (find_python) that has its venv module and
# C headers (python_gaps); else exit with $MISSING naming every missing piece and how to get it.
# WHY says what needs Python X.Y, for the message.
need_python() {
  local v=$1 why=$2 py gap fix
  local -a absent=() how=()
  py=$(find_python "$v") \
    || missing "Python $v ($why; looked in \$(pyenv root)/versions/$v.* and for python$v on PATH)" \
      "pyenv install $v (pyenv: https://github.com/pyenv/pyenv#installation), or apt-get install -y python$v python$v-venv python$v-dev"
  while IFS='|' read -r gap fix; do
    absent+=("$gap")
    how+=("$fix")
  done < <(python_gaps "$py" "$v")
  ((${#absent[@]} == 0)) || missing "$(printf '%s, ' "${absent[@]}" | sed 's/, $//')" "${how[@]}"
  echo "$py"
}

# venv_python DIR PYTHON X.Y exact|min: make the venv DIR with PYTHON unless DIR has one, and print
# its python; exit 2 when that python is not Python X.Y (exact) or not X.Y or newer (min).
venv_python() {
  local dir=$1 py=$2 v=$3 bound=$4 vpy=$1/bin/python op="==" newer=""
  [[ $bound == min ]] && op=">=" newer=" or newer"
  [[ -x "$vpy" ]] || "$py" -m venv "$dir" >&2
  "$vpy" -c "import sys; assert sys.version_info[:2] $op (${v/./, }), sys.version" \
    || { echo "$(basename "$0" .sh): $vpy is not Python $v$newer" >&2; exit 2; }
  echo "$vpy"
}

# pin DIST FILE: DIST's pin in a requirements file ("DIST==X.Y.Z", an environment marker left out).
pin() { sed -n "s/^\($1==[^;]*\).*/\1/p" "$2"; }

# venv_has VPY DIST VERSION: the venv of VPY has DIST at VERSION (a local label such as +cpu aside).
venv_has() {
  "$1" -c "import importlib.metadata as m, sys; sys.exit(m.version('$2').split('+')[0] != '$3')" 2>/dev/null
}

# venv_torch VPY torch==X.Y.Z: install that torch into the venv of VPY, from TORCH_INDEX_URL when
# set, unless the venv has it.
venv_torch() {
  local vpy=$1 torch=$2
  if venv_has "$vpy" torch "${torch#*==}"; then
    echo "already installed: $torch"
  else
    echo "pip install $torch${TORCH_INDEX_URL:+ --index-url $TORCH_INDEX_URL}"
    "$vpy" -m pip install -q "$torch" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  fi
}
