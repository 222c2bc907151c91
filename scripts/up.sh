#!/usr/bin/env bash
# Start a local nats-server and the four services and keep them running
# until Ctrl-C. Data in var/ (kept between runs). Use the CLI against it with
# the people's bus user (printed), and give each agent its own:
#   PACTUM_AGENTS="bot-1 bot-2" scripts/up.sh
# or, while it runs, scripts/nats-conf.sh var/nats/auth bot-3 and SIGHUP the
# server (the pid is in var/nats/nats-server.pid).
set -euo pipefail
source "$(dirname "$0")/suite.sh"

trap 'suite_stop' EXIT
trap 'echo; exit 0' INT TERM

suite_build
suite_start
echo
echo "running. To use $BUILD/cli/pactum as a person:"
echo "  export PACTUM_NATS_URL=$PACTUM_NATS_URL PACTUM_NATS_USER=pactum PACTUM_NATS_PASSWORD=\$(sed -n 's/^pactum=//p' $PACTUM_VAR/nats/auth/credentials)"
echo "an agent publishes with its own user (PACTUM_AGENTS=\"${PACTUM_AGENTS:-}\"); Ctrl-C stops"
while true; do
  sleep 1 &
  wait $! || true
done
