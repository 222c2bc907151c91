#!/usr/bin/env bash
# The trust loop on one machine: install what is missing, build, start a
# local nats-server and the four services, then run a scenario:
#
#   1. keys for an owner and an agent; the agent is registered
#   2. a pact with a latency objective and a forbidden event is linted and registered
#   3. the agent publishes signed events that keep the pact -> the oracle says trusted
#   4. the agent leaks personal data once -> the oracle says contained, with the verdict
#
# Everything started is stopped at the end (or on Ctrl-C); the data stays in
# var/ for inspection (the next run starts afresh).
set -euo pipefail
source "$(dirname "$0")/suite.sh"

PACTUM="$BUILD/cli/pactum"
AGENT=support-bot-1
PACT="$ROOT/examples/pacts/support-bot.json"

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ pactum'; printf ' %q' "$@"; printf '\n'; "$PACTUM" "$@"; }

trap 'suite_stop' EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM

step "build (and install missing Debian packages)"
suite_build
echo "built in $BUILD"

if [ -e "$PACTUM_VAR" ]; then
  echo "removing the previous run's data in $PACTUM_VAR"
  rm -rf "$PACTUM_VAR"
fi
mkdir -p "$PACTUM_VAR/keys"

step "start nats-server and the four services"
suite_start

step "keys: one for the agent's owner, one for the agent"
run keygen -o "$PACTUM_VAR/keys/owner.key"
run keygen -o "$PACTUM_VAR/keys/agent.key"

step "register the agent with its key, signed by its owner"
run agent register --id "$AGENT" --key "$PACTUM_VAR/keys/agent.key" \
  --owner-key "$PACTUM_VAR/keys/owner.key" --name "Support bot"

step "lint and register the pact (signed by the owner)"
run pact lint "$PACT"
run pact register --key "$PACTUM_VAR/keys/owner.key" "$PACT"

step "the agent keeps its promises: 70 signed replies, 850 ms each, no personal data"
run event publish --agent "$AGENT" --key "$PACTUM_VAR/keys/agent.key" --kind reply \
  --metric latency_ms=850 --label pii=none --count 70
run trust "$AGENT" --wait-tier trusted --wait 30s

step "the agent leaks personal data once: a critical violation"
run event publish --agent "$AGENT" --key "$PACTUM_VAR/keys/agent.key" --kind reply \
  --metric latency_ms=900 --label pii=leaked --id leak-1
run trust "$AGENT" --wait-tier contained --wait 30s

"$PACTUM" --json trust "$AGENT" >"$PACTUM_VAR/final-report.json"
step "done: the oracle reports $AGENT contained, with the verdict that caused it"
echo "final answer as JSON: $PACTUM_VAR/final-report.json"
echo "logs: $PACTUM_VAR/logs/   LMDB files: $PACTUM_VAR/{ingest,evaluator,scorer,oracle}/"
