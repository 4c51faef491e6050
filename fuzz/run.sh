#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time, then prints executions per target.
#
#   fuzz/run.sh [seconds-per-target] [target ...]      (default: 20 s, every target)
#
# Uses `cargo +nightly fuzz` with AddressSanitizer when a nightly toolchain is installed;
# otherwise the stable toolchain with `--sanitizer none` (its flags are all stable; checked
# with a clean build on stable 1.95): coverage guidance still works, but libFuzzer's malloc limit needs a sanitizer's allocator hooks (checked:
# a 600 MB allocation passes it without one), so the RSS limit is lowered to stand in for it.
# Each run stops at the first crash, panic, input slower than FUZZ_TIMEOUT s, RSS over
# FUZZ_RSS_LIMIT_MB or single allocation over FUZZ_MALLOC_LIMIT_MB (unbounded allocation is a
# failure); the reproducer is left in fuzz/[tracer/]artifacts/<target>/ and the script exits 1.
#
# New corpus entries go to fuzz/work/<target>/ (not committed); the committed seeds in
# fuzz/corpus/<target>/ (fuzz/tracer/corpus/<target>/ for the tracer's targets) are only read. Environment: FUZZ_TARGET_DIR (build directory, default
# fuzz/target), FUZZ_NICE (niceness, default 0), FUZZ_MAX_LEN (bytes, default 8192), FUZZ_STABLE=1
# (use the stable fallback even where nightly is installed).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
shift || true
malloc_limit_mb="${FUZZ_MALLOC_LIMIT_MB:-256}"
timeout_s="${FUZZ_TIMEOUT:-10}"
max_len="${FUZZ_MAX_LEN:-8192}"
target_dir="${FUZZ_TARGET_DIR:-target}"
niceness="${FUZZ_NICE:-0}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
if [ "${FUZZ_STABLE:-0}" != 1 ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=address
  # AddressSanitizer's shadow memory and quarantine count towards RSS.
  rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
else
  # AddressSanitizer (-Zsanitizer) needs nightly; the coverage instrumentation does not.
  fuzz=(cargo fuzz)
  sanitizer=none
  rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-512}"
fi

# The protocol's targets (here) and the tracer's (tracer/): two cargo-fuzz directories.
packages=(. tracer)
declare -A package_of=()
for package in "${packages[@]}"; do
  while read -r name; do package_of["$name"]="$package"; done < <("${fuzz[@]}" list --fuzz-dir "$package")
done
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(printf '%s\n' "${!package_of[@]}" | sort)
fi

for package in "${packages[@]}"; do
  echo "== building $package's targets (sanitizer: $sanitizer, toolchain: ${fuzz[*]})"
  nice -n "$niceness" "${fuzz[@]}" build --fuzz-dir "$package" --sanitizer "$sanitizer" --target-dir "$target_dir"
done

failed=()
summary=()
for target in "${targets[@]}"; do
  package="${package_of[$target]:?no such target: $target}"
  mkdir -p "work/$target" "$package/corpus/$target" "$package/artifacts/$target"
  log="work/$target.log"
  echo "== fuzzing $target for ${seconds}s"
  status=0
  nice -n "$niceness" "${fuzz[@]}" run --fuzz-dir "$package" --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
    "work/$target" "$package/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" -malloc_limit_mb="$malloc_limit_mb" \
    -timeout="$timeout_s" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  coverage=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  line="$target: ${runs:-?} executions in ${seconds}s (${rate:-?} exec/s), ${coverage:-no coverage line}, peak RSS ${peak:-?} MB"
  if [ "$status" -ne 0 ]; then
    line="$line — FAILED (exit $status), see fuzz/$log and fuzz/$package/artifacts/$target/"
    failed+=("$target")
    grep -E 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|==ERROR|Test unit written' "$log" | head -5 >&2 || true
  fi
  summary+=("$line")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
