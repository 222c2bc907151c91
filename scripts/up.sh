#!/usr/bin/env bash
# Start a local nats-server (TLS, operator mode) and the four services and
# keep them running until Ctrl-C. Data in var/ (kept between runs). Use the
# CLI against it with the environment printed: people start as the enroll
# user; registering an agent or a principal gives it a bus identity of its
# own (KEY.jwt beside the key file), with no server reload.
set -euo pipefail
source "$(dirname "$0")/suite.sh"

trap 'suite_stop' EXIT
trap 'echo; exit 0' INT TERM

suite_build
suite_start
echo
echo "running. To use $BUILD/cli/pactum as a person:"
echo "  export PACTUM_NATS_URL=$PACTUM_NATS_URL PACTUM_NATS_CA=$PACTUM_NATS_CA"
echo "  export PACTUM_NATS_CREDS=$PACTUM_NATS_CREDS"
echo "health and replay: pactum --creds $PACTUM_AUTH/creds/monitor.creds ...; Ctrl-C stops"
while true; do
  sleep 1 &
  wait $! || true
done
