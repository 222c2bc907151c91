#!/usr/bin/env bash
# Start a local nats-server and the four services and keep them running
# until Ctrl-C. Data in var/ (kept between runs). Use the CLI against it:
#   PACTUM_NATS_URL=<printed url> build/cli/pactum health
set -euo pipefail
source "$(dirname "$0")/suite.sh"

trap 'suite_stop' EXIT
trap 'echo; exit 0' INT TERM

suite_build
suite_start
echo
echo "running; export PACTUM_NATS_URL=$PACTUM_NATS_URL to use $BUILD/cli/pactum; Ctrl-C stops"
while true; do
  sleep 1 &
  wait $! || true
done
