#!/usr/bin/env bash
# Install what is missing, build, and run the benchmark suite. Every figure
# is printed with a baseline measured in the same run; the figures also go to
# bench-results.json. Each benchmark starts its own nats-server on a free
# loopback port. Pass --quick for a short smoke run, --only NAME for one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target pactum-bench >/dev/null
exec build/bench/pactum-bench --out bench-results.json "$@"
