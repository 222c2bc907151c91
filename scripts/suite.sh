# Shared by scripts/demo.sh and scripts/up.sh: start and stop a local
# nats-server (JetStream, TLS, operator mode), the four services and the HTTP
# gateway, all data under $PACTUM_VAR. suite_start writes $PACTUM_VAR/suite.env
# (the URLs and files a client needs, as KEY=VALUE lines) once all is healthy.
# Source it; it defines suite_start and suite_stop.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACTUM_VAR=${PACTUM_VAR:-$ROOT/var}
BUILD=${PACTUM_BUILD:-$ROOT/build}
SERVICES=(ingest evaluator scorer oracle)
PIDS=()

# First free port from $1 upwards (up to 100 tries), found with bash's /dev/tcp.
free_port() {
  local p=$1
  for _ in $(seq 1 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
    p=$((p + 1))
  done
  echo "pactum: no free port from $1 to $p" >&2
  return 1
}

# PACTUM_NO_BUILD=1: use the binaries in $BUILD as they are (a test of a given build).
suite_build() {
  [ -n "${PACTUM_NO_BUILD:-}" ] && return 0
  "$ROOT/scripts/deps.sh"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target pactum pactum-ingest pactum-evaluator \
    pactum-scorer pactum-oracle pactum-witness pactum-gateway >/dev/null
}

# Wait (bounded) until a service answers its health check (as the monitor user).
wait_healthy() {
  local svc=$1
  for _ in $(seq 1 100); do
    if "$BUILD/cli/pactum" --creds "$PACTUM_AUTH/creds/monitor.creds" --timeout 500ms \
      health "$svc" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "pactum: $svc did not become healthy; see $PACTUM_VAR/logs/$svc.log" >&2
  return 1
}

suite_start() {
  mkdir -p "$PACTUM_VAR/logs" "$PACTUM_VAR/nats"
  rm -f "$PACTUM_VAR/suite.env"
  local port
  port=$(free_port "${PACTUM_NATS_PORT:-4222}")
  export PACTUM_NATS_URL="nats://127.0.0.1:$port"
  export PACTUM_DATA_DIR="$PACTUM_VAR"
  # The bus as deployed: TLS with a local CA, operator mode (a JWT per user, no
  # passwords, no reload to add one), a user per service and the setup, enroll
  # and monitor users. Kept between runs: the keys are made the first time.
  PACTUM_AUTH="$PACTUM_VAR/nats/auth"
  "$ROOT/scripts/tls.sh" "$PACTUM_VAR/nats/tls" >/dev/null
  export PACTUM_NATS_CA="$PACTUM_VAR/nats/tls/ca.pem"
  "$BUILD/cli/pactum" setup init --dir "$PACTUM_AUTH" --tls-dir "$PACTUM_VAR/nats/tls" \
    --store "$PACTUM_VAR/nats/jetstream" >/dev/null
  NATS_PID_FILE="$PACTUM_VAR/nats/nats-server.pid"
  "$(command -v nats-server || echo /usr/sbin/nats-server)" -c "$PACTUM_AUTH/nats.conf" \
    -a 127.0.0.1 -p "$port" -P "$NATS_PID_FILE" >"$PACTUM_VAR/logs/nats-server.log" 2>&1 &
  PIDS+=($!)
  # the streams, made by the setup user once the server answers (bounded)
  for i in $(seq 1 50); do
    "$BUILD/cli/pactum" --creds "$PACTUM_AUTH/creds/setup.creds" --timeout 1s setup streams \
      >"$PACTUM_VAR/logs/setup.log" 2>&1 && break
    [ "$i" = 50 ] && { cat "$PACTUM_VAR/logs/setup.log" >&2; return 1; }
    sleep 0.1
  done
  echo "nats-server   $PACTUM_NATS_URL (TLS, CA $PACTUM_NATS_CA; JetStream store $PACTUM_VAR/nats/jetstream;"
  echo "              keys, credentials and nats.conf in $PACTUM_AUTH)"
  # People use the enroll user until a registration gives them their own
  # identity (saved as KEY.jwt beside their key file, used from then on).
  export PACTUM_NATS_CREDS="$PACTUM_AUTH/creds/enroll.creds"
  # The admin key registers operators, arbiters and API clients; ingest needs its public half.
  mkdir -p "$PACTUM_VAR/keys"
  if [ ! -e "$PACTUM_VAR/keys/admin.key" ]; then
    "$BUILD/cli/pactum" keygen -o "$PACTUM_VAR/keys/admin.key" >/dev/null
  fi
  export PACTUM_ADMIN_KEY="$PACTUM_VAR/keys/admin.key.pub"
  echo "admin key     $PACTUM_VAR/keys/admin.key (registers operators, arbiters and API clients)"
  # A witness with a key of its own follows the log: the log's key is made here on the first
  # run (the oracle would make it on its first start), so the witness can be told which log
  # to follow, and the oracle which witness to ask.
  mkdir -p -m 0700 "$PACTUM_VAR/oracle"
  if [ ! -e "$PACTUM_VAR/oracle/oracle.key" ]; then
    "$BUILD/cli/pactum" keygen -o "$PACTUM_VAR/oracle/oracle.key" >/dev/null
  fi
  local log_vkey wport
  log_vkey=$("$BUILD/cli/pactum" log key --key "$PACTUM_VAR/oracle/oracle.key.pub" |
    awk '/^note verifier key/ {print $4}')
  wport=$(free_port "${PACTUM_WITNESS_PORT:-7490}")
  rm -f "$PACTUM_VAR/witness/witness.vkey"
  "$BUILD/services/witness/pactum-witness" --listen "127.0.0.1:$wport" \
    --dir "$PACTUM_VAR/witness" --logs "$log_vkey" >"$PACTUM_VAR/logs/witness.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do
    [ -s "$PACTUM_VAR/witness/witness.vkey" ] && break
    sleep 0.1
  done
  if [ ! -s "$PACTUM_VAR/witness/witness.vkey" ]; then
    echo "pactum: the witness did not start; see $PACTUM_VAR/logs/witness.log" >&2
    return 1
  fi
  PACTUM_WITNESS_VKEY=$(cat "$PACTUM_VAR/witness/witness.vkey")
  export PACTUM_WITNESS_VKEY
  export PACTUM_ORACLE_WITNESSES="http://127.0.0.1:$wport $PACTUM_WITNESS_VKEY"
  echo "witness       http://127.0.0.1:$wport/add-checkpoint (key $PACTUM_VAR/witness/witness.key;"
  echo "              verifier key $PACTUM_WITNESS_VKEY)"
  # HTTP listeners on the usual ports, or the next free ones
  local oport gport tport
  oport=$(free_port "${PACTUM_HTTP_PORT:-7480}")
  gport=$(free_port $((oport == 7480 ? 7481 : oport + 1)))
  tport=$(free_port "${PACTUM_OTLP_PORT:-4318}")
  export PACTUM_ORACLE_HTTP="127.0.0.1:$oport"
  # everything here is on loopback, webhook receivers too
  export PACTUM_ORACLE_WEBHOOK_HOSTS="${PACTUM_ORACLE_WEBHOOK_HOSTS:-any}"
  export PACTUM_ORACLE_URL="http://127.0.0.1:$oport"
  export PACTUM_GATEWAY_URL="http://127.0.0.1:$gport"
  export PACTUM_OTLP_URL="http://127.0.0.1:$tport"
  # each service on its own credentials; ingest signs new users' JWTs (issuer.json)
  for svc in "${SERVICES[@]}"; do
    PACTUM_NATS_CREDS="$PACTUM_AUTH/creds/$svc.creds" \
      PACTUM_INGEST_ISSUER=$([ "$svc" = ingest ] && echo "$PACTUM_AUTH/issuer.json") \
      "$BUILD/services/$svc/pactum-$svc" >"$PACTUM_VAR/logs/$svc.log" 2>&1 &
    PIDS+=($!)
  done
  for svc in "${SERVICES[@]}"; do
    wait_healthy "$svc"
    printf '%-13s healthy (log %s)\n' "$svc" "$PACTUM_VAR/logs/$svc.log"
  done
  # The gateway: HTTP in for agents and owners, and OpenTelemetry traces in, signed as the
  # telemetry reporter @otel (registered with the admin key; registering again is accepted).
  if [ ! -e "$PACTUM_VAR/keys/otel.key" ]; then
    "$BUILD/cli/pactum" keygen -o "$PACTUM_VAR/keys/otel.key" >/dev/null
  fi
  local tries
  for tries in 1 2 3 4 5; do # bounded: the registrar answers within seconds once healthy
    if "$BUILD/cli/pactum" --timeout 5s principal register --id @otel --role telemetry \
      --key "$PACTUM_VAR/keys/otel.key" --admin-key "$PACTUM_VAR/keys/admin.key" \
      >"$PACTUM_VAR/logs/otel-register.log" 2>&1; then
      break
    fi
    if [ "$tries" = 5 ]; then
      echo "pactum: the telemetry reporter @otel could not be registered:" >&2
      cat "$PACTUM_VAR/logs/otel-register.log" >&2
      return 1
    fi
    sleep 1
  done
  PACTUM_NATS_CREDS="$PACTUM_AUTH/creds/gateway.creds" \
    PACTUM_GATEWAY_HTTP="127.0.0.1:$gport" PACTUM_GATEWAY_OTLP="127.0.0.1:$tport" \
    PACTUM_GATEWAY_OTLP_KEY="$PACTUM_VAR/keys/otel.key" \
    "$BUILD/services/gateway/pactum-gateway" >"$PACTUM_VAR/logs/gateway.log" 2>&1 &
  PIDS+=($!)
  wait_healthy gateway
  printf '%-13s healthy (log %s)\n' gateway "$PACTUM_VAR/logs/gateway.log"
  echo "oracle HTTP   $PACTUM_ORACLE_URL/v1/  gateway $PACTUM_GATEWAY_URL/v1/  OTLP $PACTUM_OTLP_URL/v1/traces"
  cat >"$PACTUM_VAR/suite.env.tmp" <<ENV
PACTUM_NATS_URL=$PACTUM_NATS_URL
PACTUM_NATS_CA=$PACTUM_NATS_CA
PACTUM_NATS_CREDS=$PACTUM_NATS_CREDS
PACTUM_ORACLE_URL=$PACTUM_ORACLE_URL
PACTUM_GATEWAY_URL=$PACTUM_GATEWAY_URL
PACTUM_OTLP_URL=$PACTUM_OTLP_URL
PACTUM_LOG_KEY=$PACTUM_VAR/oracle/oracle.key.pub
PACTUM_ADMIN_KEY_FILE=$PACTUM_VAR/keys/admin.key
PACTUM_CLI=$BUILD/cli/pactum
ENV
  mv "$PACTUM_VAR/suite.env.tmp" "$PACTUM_VAR/suite.env"
}

# Stop everything started, services first, by PID; bounded waits.
suite_stop() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
