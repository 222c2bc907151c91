#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for a
# bounded time from the seeds and the regression cases.
#
#   scripts/fuzz.sh [SECONDS]     seconds per target (default 30)
#
# A crash stops the run with the input kept in build-fuzz/crashes/; add it to
# tests/fuzz/regressions/<target>/ once fixed, so the test suite replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
targets=(envelope pact proofs oracle witness gateway)

scripts/deps.sh clang libclang-rt-14-dev
mkdir -p build-fuzz
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPK_FUZZ=ON \
  -DPK_BUILD_TESTS=OFF -DPK_BUILD_BENCH=OFF -DPK_WERROR=OFF >/dev/null
if ! cmake --build build-fuzz -j "$(nproc)" --target fuzz_seeds "${targets[@]/#/fuzz_}" \
    >build-fuzz/build.log 2>&1; then
  tail -n 40 build-fuzz/build.log
  exit 1
fi
build-fuzz/tests/fuzz/fuzz_seeds build-fuzz/seeds >/dev/null
mkdir -p build-fuzz/seeds/pact build-fuzz/crashes
cp examples/pacts/*.json build-fuzz/seeds/pact/

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
printf '%-10s %12s %10s %8s\n' target executions "per s" corpus
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus" build-fuzz/seeds/"$t"
  log=build-fuzz/fuzz-$t.log
  if ! build-fuzz/tests/fuzz/fuzz_"$t" "$corpus" build-fuzz/seeds/"$t" tests/fuzz/regressions/"$t" \
      -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix=build-fuzz/crashes/"$t"- >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz_$t found a problem; the input is in build-fuzz/crashes/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  units=$(ls "$corpus" | wc -l)
  printf '%-10s %12s %10s %8s\n' "$t" "$runs" "$((runs / secs))" "$units"
done
