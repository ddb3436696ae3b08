#!/usr/bin/env bash
# A bounded fuzzing session of the topology API against its pure-Python oracle, then a
# replay of everything it kept under ASan + UBSan:
#   pip install -r requirements/hardening.txt
#   tools/fuzz.sh [SECONDS]     (default 75)
# 1. atheris (fuzz/run.py) drives fuzz/harness.py for SECONDS against the proctopo that
#    `python` imports, starting from fuzz/corpus and fuzz/regressions; new inputs go to
#    build/fuzz/corpus, a failing one to build/fuzz/crash-<sha1> (the step fails: add the
#    file to fuzz/regressions once the cause is known).
# 2. Every input of the session, the seeds and the regressions are replayed against the
#    extension built with ASan + UBSan (tools/build-sanitized-extension.sh). The fuzzing
#    itself runs on the plain build: GCC's ASan runtime would take over the coverage hooks
#    atheris needs to steer by Python coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
seconds=${1:-75}
need_module atheris
mkdir -p build/fuzz/corpus
rm -f build/fuzz/crash-* build/fuzz/timeout-* build/fuzz/oom-*
python -c 'import proctopo._core as c; print("fuzzing", c.__file__)'
python fuzz/run.py -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -max_len=1024 \
  -print_final_stats=1 -artifact_prefix=build/fuzz/ build/fuzz/corpus fuzz/corpus fuzz/regressions \
  2>build/fuzz/session.log || {
  tail -n 60 build/fuzz/session.log >&2
  echo "fuzz: an input failed; it is in build/fuzz/ (crash-*, timeout-* or oom-*)" >&2
  exit 1
}
grep -E '^Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb' build/fuzz/session.log || true
echo "corpus: $(find build/fuzz/corpus -type f | wc -l) inputs kept by this and earlier sessions"

tools/build-sanitized-extension.sh build/asan-py >/dev/null
(
  set -a
  # shellcheck disable=SC1091
  . build/asan-py/env
  set +a
  echo "replaying under ASan + UBSan:"
  python fuzz/replay.py build/fuzz/corpus fuzz/corpus fuzz/regressions
)
