#!/usr/bin/env bash
# Install what is missing, build, and run every test.
#
#   scripts/test.sh              release build in build/
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#
# Integration tests start their own nats-server on a free loopback port;
# nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPK_BUILD_TESTS=ON)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Debug -DPK_SANITIZE=ON -DPK_BUILD_TESTS=ON)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
  export UBSAN_OPTIONS=print_stacktrace=1
fi

scripts/deps.sh
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
cd "$dir"
# Everything but the suites that print figures; then those, with their figures
# shown (the fault and cluster suites: events sent, lost, duplicated, stalls; the
# bad-input corpus: inputs tried by category).
figures='^(faults|cluster|integration_bad_input)$'
ctest --output-on-failure --timeout 900 -E "$figures"
rc=0
ctest --output-on-failure --timeout 900 -V -R "$figures" >figures.log 2>&1 || rc=$?
grep -E '^[0-9]+: (fault |         |events:|digests:|log:|lmdb:|stream:|stall:|takeover:|bad input)' figures.log |
  sed 's/^[0-9]*: //' || true
if [ "$rc" -ne 0 ]; then
  tail -n 80 figures.log
  echo "a test failed (full output in $dir/figures.log)" >&2
  exit "$rc"
fi
echo "the fault suite and the bad-input corpus passed (full output in $dir/figures.log)"
cd ..
# The SDKs, each against a suite of its own (scripts/up.sh on free ports, data in a temporary
# folder), with the release build; the sanitizer run covers the C code only.
if [ "$dir" = build ]; then
  echo "== Python SDK (sdk/python)"
  /usr/bin/python3 -m pytest -q sdk/python
  echo "== TypeScript SDK and the OpenTelemetry exporter (sdk/js)"
  (cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi
