#!/usr/bin/env bash
# Read latency on a large log: the request list (unfiltered, by SID, by free text), the task
# API and task page for one task. Starts the release server on DB (read-mostly) and reports
# the median and max of REPEAT timed requests each (curl's total time, warm after one call).
# Usage: bench/reads.sh DB [repeat]      (build the log with `taskrouter-tracer generate`)
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:?usage: bench/reads.sh DB [repeat]}
repeat=${2:-20}
cargo build --release --quiet
bin=target/release/taskrouter-tracer
port=18789
RUST_LOG=error "$bin" serve --listen 127.0.0.1:$port --database "$db" --signature-check off &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
rows=$(sqlite3 "file:$db?mode=ro" "SELECT COUNT(*) FROM events" 2>/dev/null || echo "?")
# A task from the middle of the log, and one of its reservations.
task=$(curl -s "$base/api/requests?limit=1&before=$(( ${rows/\?/1000000} / 2 ))&event_type=reservation.created" |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["requests"][0]; print(r["task_sid"])')
time_it() { # name url
  local name=$1 url=$2 times=()
  curl -s -o /dev/null "$url"
  for _ in $(seq "$repeat"); do times+=("$(curl -s -o /dev/null -w '%{time_total}' "$url")"); done
  printf '%s\n' "${times[@]}" | sort -n |
    awk -v n="$name" '{a[NR]=$1} END {printf "%-40s median %7.1f ms   max %7.1f ms\n", n, a[int((NR+1)/2)]*1000, a[NR]*1000}'
}
echo "log: $db ($rows rows); task $task"
time_it "request list, unfiltered" "$base/requests"
time_it "request list, by task SID" "$base/requests?sid=$task"
time_it "request list, free text (common)" "$base/requests?q=selected_language"
time_it "request list, free text (rare)" "$base/requests?q=${task:2:12}"
time_it "task API (one task)" "$base/api/tasks/$task"
time_it "task page (one task)" "$base/tasks/$task"
time_it "requests API by SID" "$base/api/requests?sid=$task"
