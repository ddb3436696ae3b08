#!/usr/bin/env bash
# Clean exits, counted: N runs (default 20) of each job below under
# `torchrun --standalone --nproc-per-node 4`, one after the other, then a table of the runs in
# which any process exited with other than 0 (torchrun's own exit status), and of the exit codes
# those processes had. Exits with 1 when any run failed.
#   tools/exit-runs.sh [N]
# The jobs end as training scripts end: dist.destroy_process_group() with the grid still
# referenced, no grid.destroy() (docs/grid.md, "Ending without destroy()").
#   - tools/clean-exit.py --group-creation local, then --group-creation global: a
#     ProcessGrid(ProcessTopology(["data", "model"], [2, 2])), one all_reduce over each group;
#   - examples/fsdp2_tp.py: FSDP2 + tensor parallelism on a 2-D DeviceMesh exported from a grid.
# Each run's output is kept in build/exit-runs/<job>/run<I>.log. Needs torch and proctopo in the
# active python (the fsdp2_tp job also torch.distributed.fsdp); a run takes about 10 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. tools/lib.sh
n=${1:-20}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "exit-runs: N must be a positive whole number, got '$n'" >&2; exit 2; }
python -c "import torch.distributed.fsdp, proctopo" 2>/dev/null \
  || missing "torch (with torch.distributed.fsdp) and proctopo in $(command -v python)" \
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install ."
export OMP_NUM_THREADS=1 PYTHONFAULTHANDLER=1

jobs=(
  "clean-exit local|tools/clean-exit.py --group-creation local"
  "clean-exit global|tools/clean-exit.py --group-creation global"
  "fsdp2_tp|examples/fsdp2_tp.py"
)
rows=()
any=0
for entry in "${jobs[@]}"; do
  name=${entry%%|*}
  read -r -a command <<<"${entry#*|}"
  dir=build/exit-runs/${name// /-}
  rm -rf "$dir"
  mkdir -p "$dir"
  failed=0
  codes=""
  for ((i = 1; i <= n; i++)); do
    log=$dir/run$i.log
    if python -m torch.distributed.run --standalone --nproc-per-node 4 "${command[@]}" >"$log" 2>&1; then
      status=0
    else
      status=$?
      failed=$((failed + 1))
      # torchrun's failure report has a line per failed process: "exitcode  : -6 (pid: 15394)  (SIGABRT)"
      codes+=$(sed -n 's/^ *exitcode *: *\(-\{0,1\}[0-9]*\) (pid: [0-9]*) *\(.*\)$/\1 \2/p' "$log" | sed 's/ *$//')
      codes+=$'\n'
    fi
    printf '%-18s run %2d of %d: exit %d\n' "$name" "$i" "$n" "$status"
  done
  # "-6 (SIGABRT) x3, 1 x1": each exit code of a failed process, and in how many processes it was seen
  seen=$(sed '/^$/d' <<<"$codes" | sort | uniq -c | awk '{c = $1; $1 = ""; printf "%s%s x%d", (NR > 1 ? ", " : ""), substr($0, 2), c}')
  rows+=("| \`${command[*]}\` | $failed of $n | ${seen:--} |")
  ((failed == 0)) || any=1
done

echo
echo "torchrun --standalone --nproc-per-node 4, $n runs each ($(python -c 'import torch; print("torch", torch.__version__)'), $(nproc) of $(nproc --all) cores available, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
echo "| job | runs with a process exiting non-zero | exit codes of the failed processes |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo "logs: build/exit-runs/"
exit "$any"
