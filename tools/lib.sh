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
