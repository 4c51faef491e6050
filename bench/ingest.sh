#!/usr/bin/env bash
# Ingest throughput and latency of POST /webhooks/events under concurrent load (wrk), with one
# fsync per request (--commit-batch 1) and with group commit (default), synchronous=FULL, next
# to the same server answering 204 without storage (the baseline).
# Usage: bench/ingest.sh [seconds] [connections]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
cargo build --release --quiet
bin=target/release/taskrouter-tracer
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
for mode in "baseline-no-storage:--bench-baseline" "one-fsync-per-request:--commit-batch 1" "group-commit:--commit-batch 512"; do
  name=${mode%%:*}; flags=${mode#*:}
  db="$out/$name.db"
  # shellcheck disable=SC2086
  RUST_LOG=warn "$bin" serve --listen 127.0.0.1:18787 --database "$db" --signature-check off $flags &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18787/healthz >/dev/null && break; sleep 0.1; done
  echo "== $name ($flags), $connections connections, ${seconds}s"
  path=/webhooks/events
  [[ $name == baseline-no-storage ]] && path=/webhooks/bench-baseline
  WRK_PATH=$path wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/events.lua http://127.0.0.1:18787 | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors|requests in"
  rows=$(curl -s http://127.0.0.1:18787/metrics | awk '/^tracer_commit_batch_size_count/ {c=$2} /^tracer_commit_batch_size_sum/ {s=$2} END {if (c>0) printf "%d commits, %.1f rows per commit", c, s/c}')
  echo "   $rows"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
