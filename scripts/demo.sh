#!/usr/bin/env bash
# The trust loop on one machine: install what is missing, build, start a
# local nats-server and the four services, then run a scenario:
#
#   1. keys for an owner and an agent; the agent is registered, and the receipt gives
#      each its own bus identity (the agent may publish only its own events)
#   2. a pact with a latency objective and a forbidden event is linted and registered
#   3. the agent publishes signed events that keep the pact -> the oracle says trusted
#   4. the agent leaks personal data once -> the oracle says contained, with the verdict
#   5. governance: the admin key registers an operator and an arbiter; the operator
#      lets the agent reply under watch for an hour (an override: the decision stays
#      visible); the owner disputes the leak; the arbiter finds it was a test fixture
#      and overturns it -> the verdict leaves the score, the agent is trusted again
#   6. the scorer's state is rebuilt from the recorded history and matches the live one
#   7. the oracle attests the agent's standing; the attestation, with its proof from the
#      transparency log, is checked offline with nothing but the log's public key
#   8. the log's key, to pin, and its latest checkpoint as a C2SP signed note (HTTP),
#      cosigned by a witness that checked it extends what it cosigned before; checked
#      offline with the log's key and the witness's
#
# Everything started is stopped at the end (or on Ctrl-C); the data stays in
# var/ for inspection (the next run starts afresh). With --keep, the suite keeps
# running after the scenario and the agent's page is printed to open in a
# browser; Ctrl-C stops it.
set -euo pipefail
keep=false
case "${1:-}" in
  --keep) keep=true ;;
  "") ;;
  *)
    echo "usage: scripts/demo.sh [--keep]" >&2
    exit 2
    ;;
esac
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

step "start nats-server, the four services and the HTTP gateway"
suite_start

step "keys: one for the agent's owner, one for the agent"
run keygen -o "$PACTUM_VAR/keys/owner.key"
run keygen -o "$PACTUM_VAR/keys/agent.key"

step "register the agent with its key, signed by its owner"
run agent register --id "$AGENT" --key "$PACTUM_VAR/keys/agent.key" \
  --owner-key "$PACTUM_VAR/keys/owner.key" --name "Support bot"
echo "(the agent and the owner now connect as themselves: agent.key.jwt, owner.key.jwt)"

step "lint and register the pact (signed by the owner)"
run pact lint "$PACT"
run pact register --key "$PACTUM_VAR/keys/owner.key" "$PACT"

step "the agent keeps its promises: 70 signed replies, 850 ms each, no personal data"
run event publish --agent "$AGENT" --key "$PACTUM_VAR/keys/agent.key" \
  --kind reply --metric latency_ms=850 --label pii=none --count 70
run trust "$AGENT" --wait-tier trusted --wait 30s

step "may it reply now? (the oracle decides, records the decision and who asked, and signs)"
run client register --id @support-desk --admin-key "$PACTUM_VAR/keys/admin.key" \
  --out "$PACTUM_VAR/keys/support-desk.token"
PACTUM_TOKEN=$(cat "$PACTUM_VAR/keys/support-desk.token")
export PACTUM_TOKEN
run authorize --agent "$AGENT" --action reply

step "the agent leaks personal data once: a critical violation"
run event publish --agent "$AGENT" --key "$PACTUM_VAR/keys/agent.key" \
  --kind reply --metric latency_ms=900 --label pii=leaked --id leak-1
run trust "$AGENT" --wait-tier contained --wait 30s
run authorize --agent "$AGENT" --action reply || echo "(denied: exit $?)"

step "governance: the admin key registers an operator and an arbiter"
run keygen -o "$PACTUM_VAR/keys/ops.key"
run keygen -o "$PACTUM_VAR/keys/arb.key"
run principal register --id @ops --role operator --key "$PACTUM_VAR/keys/ops.key" \
  --admin-key "$PACTUM_VAR/keys/admin.key"
run principal register --id @arb --role arbiter --key "$PACTUM_VAR/keys/arb.key" \
  --admin-key "$PACTUM_VAR/keys/admin.key"

step "the operator lets it keep replying, under watch, for an hour (the decision stays)"
run override --operator @ops --key "$PACTUM_VAR/keys/ops.key" --agent "$AGENT" --tier watch \
  --expires 1h --reason "customers are waiting; a person reviews every reply meanwhile" --id ov-1

step "the owner disputes the leak; the arbiter overturns it"
run dispute open --agent "$AGENT" --key "$PACTUM_VAR/keys/owner.key" --verdict last \
  --reason "the leaked value is the test fixture 555-0100" --evidence "fixture file in the repo" \
  --id d-1
run dispute rule --arbiter @arb --key "$PACTUM_VAR/keys/arb.key" --agent "$AGENT" --dispute d-1 \
  --overturned --reason "fixture data, not a customer's"
run trust "$AGENT" --wait-tier trusted --wait 30s

step "the operator rebuilds the scorer's state from the recorded history and compares"
run --as "$PACTUM_VAR/keys/ops.key" replay --compare

step "an attestation of its standing, checked offline against the transparency log"
run --save "$PACTUM_VAR/attestation.bin" attest "$AGENT"
run verify --key "$PACTUM_VAR/oracle/oracle.key.pub" "$PACTUM_VAR/attestation.bin"

step "the log's key, to pin, and its latest checkpoint (a C2SP signed note, for standard tools), cosigned by a witness"
echo "\$ curl $PACTUM_ORACLE_URL/v1/log/key"
curl -fsS "$PACTUM_ORACLE_URL/v1/log/key"
echo
echo "\$ curl $PACTUM_ORACLE_URL/checkpoint"
for _ in $(seq 1 50); do
  curl -fsS "$PACTUM_ORACLE_URL/checkpoint" >"$PACTUM_VAR/checkpoint.txt"
  grep -q "^— pactum.witness/" "$PACTUM_VAR/checkpoint.txt" && break
  sleep 0.2
done
cat "$PACTUM_VAR/checkpoint.txt"
run verify --key "$PACTUM_VAR/oracle/oracle.key.pub" --witness "$PACTUM_WITNESS_VKEY" \
  "$PACTUM_VAR/checkpoint.txt"

"$PACTUM" --json trust "$AGENT" >"$PACTUM_VAR/final-report.json"
step "done: contained by a leak, then trusted again once the leak was overturned"
echo "final answer as JSON: $PACTUM_VAR/final-report.json"
echo "logs: $PACTUM_VAR/logs/   LMDB files: $PACTUM_VAR/{ingest,evaluator,scorer,oracle}/"
echo "the agent's page: $PACTUM_ORACLE_URL/agents/$AGENT"
if $keep; then
  trap 'echo; exit 0' INT TERM
  echo
  echo "the suite keeps running (--keep): open $PACTUM_ORACLE_URL/agents/$AGENT in a browser;"
  echo "all agents at $PACTUM_ORACLE_URL/ and the log at $PACTUM_ORACLE_URL/log. Ctrl-C stops it."
  while true; do
    sleep 1 &
    wait $! || true
  done
fi
