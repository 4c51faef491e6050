#!/usr/bin/env bash
# Crash trials: SIGKILL the server at a random moment under sustained signed load, restart it on
# the same database, and check after every trial that
#   - every request it answered 2xx (in this and all earlier trials) is in the log, once, as a fact;
#   - `taskrouter-tracer verify` passes (the hash chain is intact);
#   - `taskrouter-tracer rebuild --check` passes (a rebuild equals the incremental projections).
# Load: `taskrouter-tracer simulate` (signed callbacks, 5 % duplicated, 5 % reordered), plus
# bench/acked_posts.py posting signed task.created callbacks with unique Sids and recording
# which were answered 2xx.
# Usage: bench/crash-trials.sh [trials=20]   (release build; needs python3 and curl)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
cargo build --release --quiet -p taskrouter-tracer
bin=${CARGO_TARGET_DIR:-target}/release/taskrouter-tracer
work=$(mktemp -d)
db=$work/crash.db
token=crash-trials-auth-token-0123456789
account=AC00000000000000000000000000c4a511
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
server=
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_server() {
  TWILIO_AUTH_TOKEN=$token RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --database "$db" \
    --workers 2 >>"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do
    curl -sf "$base/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not come up within 30 s; its log:" >&2
  tail -20 "$work/server.log" >&2
  exit 1
}

failures=0
total_acked=0
start_server
echo "database $db, server on $base; each trial: load, SIGKILL a random 0.2-3.5 s after the first 2xx, restart, check"
for trial in $(seq "$trials"); do
  acked_file=$work/acked-$trial.txt
  : >"$acked_file"
  "$bin" simulate --target "$base" --auth-token "$token" --account-sid "$account" --seed "$trial" \
    --rate 3000 --duration 100000 --speed 0 --duplicate-rate 0.05 --reorder-rate 0.05 \
    >"$work/simulate-$trial.log" 2>&1 &
  simulator=$!
  python3 bench/acked_posts.py post --url "$base/webhooks/events" --token "$token" \
    --prefix "$(printf %04x "$trial")" --acked "$acked_file" &
  poster=$!
  # The random moment is counted from the first acknowledgement, so every kill lands under load.
  for _ in $(seq 200); do [[ -s $acked_file ]] && break; sleep 0.05; done
  delay_ms=$((200 + RANDOM % 3300))
  sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
  kill -KILL "$server"
  wait "$server" 2>/dev/null || true
  kill "$simulator" "$poster" 2>/dev/null || true
  wait "$simulator" "$poster" 2>/dev/null || true

  # Restart on the same database (SQLite recovers the WAL), then check.
  start_server
  acked=$(wc -l <"$acked_file")
  total_acked=$((total_acked + acked))
  read -r _ in_log _ <<<"$(python3 bench/acked_posts.py check --database "$db" "$acked_file" || true)"
  read -r all_listed all_present missing <<<"$(python3 bench/acked_posts.py check --database "$db" "$work"/acked-*.txt || true)"
  rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM events").fetchone()[0])' "$db")
  if "$bin" verify --database "$db" >"$work/verify.log" 2>&1; then verify=ok; else verify=FAILED; fi
  if "$bin" rebuild --check --database "$db" >"$work/rebuild.log" 2>&1; then rebuild=yes; else rebuild=NO; fi
  status=ok
  if [[ $in_log != "$acked" || $all_present != "$all_listed" || $verify != ok || $rebuild != yes ]]; then
    status=FAILED
    failures=$((failures + 1))
  fi
  printf 'trial %2d: killed after %4d ms  acknowledged %5d  in log %5d  (all trials: %d of %d)  rows %7d  verify %s  rebuild-equal %s  %s\n' \
    "$trial" "$delay_ms" "$acked" "$in_log" "$all_present" "$all_listed" "$rows" "$verify" "$rebuild" "$status"
  if [[ $status != ok ]]; then
    [[ -n ${missing:-} ]] && echo "  missing: $missing"
    [[ $verify != ok ]] && sed 's/^/  verify: /' "$work/verify.log"
    [[ $rebuild != yes ]] && sed 's/^/  rebuild: /' "$work/rebuild.log"
  fi
done
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
echo "summary: $trials trials, $failures failed; $total_acked requests acknowledged 2xx, all checked after every later trial; final log $rows rows"
[[ $failures == 0 ]]
