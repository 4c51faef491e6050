#!/usr/bin/env bash
# Runs every fuzz target (the protocol's here, the tracer's in tracer/) once over each committed
# seed in <package>/corpus/<target>/ (and any reproducer a developer committed under
# <package>/regressions/<target>/): a regression check, not fuzzing. It needs neither cargo-fuzz nor nightly: the targets are built by plain `cargo build`
# into the main crate's target directory with the main crate's dev profile, so the dependencies
# `cargo test` built are reused (about 2 minutes instead of the ~11 an instrumented build takes).
# A panic or broken invariant aborts the target; the script names it and exits 1.
#
#   fuzz/replay.sh [target ...]      (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-../target}")

# The protocol's targets (here) and the tracer's (tracer/): two packages, one build directory.
packages=(. tracer)
for package in "${packages[@]}"; do
  CARGO_TARGET_DIR="$target_dir" cargo build --quiet --manifest-path "$package/Cargo.toml"
done

# Each target's binary is named after its file, as `cargo fuzz add` makes them.
declare -A package_of=()
for package in "${packages[@]}"; do
  for source in "$package"/fuzz_targets/*.rs; do package_of["$(basename "$source" .rs)"]="$package"; done
done
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(printf '%s\n' "${!package_of[@]}" | sort)
fi

failed=()
for target in "${targets[@]}"; do
  package="${package_of[$target]:-}"
  if [ -z "$package" ]; then
    echo "$target: no such target" >&2
    failed+=("$target")
    continue
  fi
  inputs=()
  for dir in "$package/corpus/$target" "$package/regressions/$target"; do
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
