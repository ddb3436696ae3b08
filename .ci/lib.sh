# shellcheck shell=bash
# Sourced by .ci/test and .ci/run (not run by itself): the steps and their timing, the
# system packages, the virtual environment.
#
# A step is a stretch of the script with a name; `check NAME CMD...` runs CMD as one step
# and goes on after a failure, so that every check runs. At exit a table gives each step's
# time and state: ok, FAILED, or "not run" for a check that exited with 77, the status of
# a tool whose prerequisite is missing (tools/lib.sh): it says what is missing and how to
# get it. In CI (CI=true) every prerequisite must be there, and 77 is a failure.
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

step_names=() step_secs=() step_state=()
current="" current_start=0 failed=() not_run=()
finish_step() {
  if [[ -n "$current" ]]; then
    step_names+=("$current") step_secs+=($((SECONDS - current_start))) step_state+=("$1")
    current=""
  fi
}
step() {
  finish_step ok
  current="$1" current_start=$SECONDS
  printf '\n=== %s (at %ss)\n' "$1" "$SECONDS"
}
summary() {
  local rc=$?
  finish_step "$([[ $rc -eq 0 ]] && echo ok || echo FAILED)"
  printf '\n=== time per step (%s)\n' "$(basename "$0")"
  local i
  for i in "${!step_names[@]}"; do
    printf '%6ss  %-7s %s\n' "${step_secs[$i]}" "${step_state[$i]}" "${step_names[$i]}"
  done
  printf '%6ss  total\n' "$SECONDS"
}
trap summary EXIT
die() {
  printf '\n%s: %s\n' "$(basename "$0")" "$*" >&2
  exit 1
}
# check NAME CMD...: run CMD as the step NAME; remember a failure and go on.
check() {
  step "$1"
  shift
  local rc=0
  "$@" || rc=$?
  if ((rc == 77)) && [[ "${CI:-}" != true ]]; then
    not_run+=("$current")
    finish_step "not run"
  elif ((rc != 0)); then
    ((rc != 77)) || echo "(CI=true: a missing prerequisite fails the run)" >&2
    failed+=("$current")
    finish_step FAILED
  fi
}
joined() {
  local out="" x
  for x in "$@"; do out+="${out:+; }$x"; done
  printf '%s' "$out"
}
# The closing lines: what failed, what could not run here; the exit status.
conclude() {
  finish_step ok
  if ((${#not_run[@]})); then
    printf '\n%s: not run here, a prerequisite is missing (see its message above): %s\n' \
      "$(basename "$0")" "$(joined "${not_run[@]}")"
  fi
  if ((${#failed[@]})); then
    printf '\n%s: failed: %s\n' "$(basename "$0")" "$(joined "${failed[@]}")" >&2
    exit 1
  fi
  if ((${#not_run[@]})); then
    printf '\n%s: all checks that ran passed\n' "$(basename "$0")"
  else
    printf '\n%s: all checks passed\n' "$(basename "$0")"
  fi
}

# apt_install DEB...: install the Debian packages that are not installed yet.
apt_install() {
  local deb missing=() sudo=()
  if ! command -v dpkg-query >/dev/null; then
    echo "no dpkg here: install by hand what these Debian packages hold: $*"
    return 0
  fi
  for deb in "$@"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
  done
  if ((${#missing[@]} == 0)); then
    echo "already installed: $*"
    return 0
  fi
  echo "installing ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && ! "${sudo[@]}" apt-get update -qq; then
    echo "apt-get update failed; trying the install with the package lists at hand"
  fi
  if ! command -v apt-get >/dev/null \
    || ! "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; then
    die "the Debian packages ${missing[*]} are missing and could not be installed (apt-get needs root and a" \
      "package mirror); install them, then run this again: apt-get install -y ${missing[*]}"
  fi
}

# use_venv: the active virtual environment, or else build/ci-venv, made from $PYTHON (default:
# python3 on PATH), which must be Python 3.10 or newer. Debian's system Python gets its venv
# module and C headers from apt when they are missing.
use_venv() {
  local py xy
  if [[ -z "${VIRTUAL_ENV:-}" ]]; then
    if [[ ! -x build/ci-venv/bin/python ]]; then
      py=${PYTHON:-$(command -v python3 || command -v python || true)}
      [[ -n "$py" ]] || die "no python3 on PATH (set PYTHON=/path/to/python3.10-or-newer)"
      xy=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$py is Python $xy; the tests need Python 3.10 or newer: set PYTHON=/path/to/python3.x," \
          "or activate a virtual environment of one"
      "$py" -c 'import ensurepip, venv' 2>/dev/null || apt_install "python$xy-venv"
      "$py" -m venv build/ci-venv || die "could not make a venv with $py"
    fi
    # shellcheck disable=SC1091
    . build/ci-venv/bin/activate
  fi
  xy=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  python -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$(command -v python) is Python $xy; the tests need Python 3.10 or newer"
  # The extension is built against the Python's headers (Debian keeps them in python3.X-dev).
  python -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
    2>/dev/null || apt_install "python$xy-dev"
  python -c 'import sys; print(sys.version.split()[0], sys.prefix)'
}
