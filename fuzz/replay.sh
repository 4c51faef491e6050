#!/usr/bin/env bash
# Runs every fuzz target once over each committed seed in fuzz/corpus/<target>/ (and any
# reproducer a developer committed under fuzz/regressions/<target>/): a regression check, not
# fuzzing. It needs neither cargo-fuzz nor nightly: the targets are built by plain `cargo build`
# into the main crate's target directory with the main crate's dev profile, so the dependencies
# `cargo test` built are reused (about 2 minutes instead of the ~11 an instrumented build takes).
# A panic or broken invariant aborts the target; the script names it and exits 1.
#
#   fuzz/replay.sh [target ...]      (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-../target}"

CARGO_TARGET_DIR="$target_dir" cargo build --quiet
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  # Each target's binary is named after its file, as `cargo fuzz add` makes them.
  targets=()
  for source in fuzz_targets/*.rs; do targets+=("$(basename "$source" .rs)"); done
fi

failed=()
for target in "${targets[@]}"; do
  inputs=()
  for dir in "corpus/$target" "regressions/$target"; do
    if [ -d "$dir" ]; then
      mapfile -t -O "${#inputs[@]}" inputs < <(find "$dir" -type f | sort)
    fi
  done
  if [ "${#inputs[@]}" -eq 0 ]; then
    echo "$target: no committed inputs" >&2
    failed+=("$target")
    continue
  fi
  log=$(mktemp)
  if "$target_dir/debug/$target" "${inputs[@]}" >"$log" 2>&1; then
    echo "$target: ${#inputs[@]} inputs replayed, all pass"
  else
    echo "$target: FAILED on one of ${#inputs[@]} inputs:" >&2
    grep -E 'Running:|panicked|ERROR' "$log" | tail -4 >&2 || true
    failed+=("$target")
  fi
  rm -f "$log"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
