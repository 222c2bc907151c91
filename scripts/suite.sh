# Shared by scripts/demo.sh and scripts/up.sh: start and stop a local
# nats-server (JetStream) and the four services, all data under $PACTUM_VAR.
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

suite_build() {
  "$ROOT/scripts/deps.sh"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target pactum pactum-ingest pactum-evaluator \
    pactum-scorer pactum-oracle >/dev/null
}

# Wait (bounded) until a service answers its health check.
wait_healthy() {
  local svc=$1
  for _ in $(seq 1 100); do
    if "$BUILD/cli/pactum" --timeout 500ms health "$svc" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "pactum: $svc did not become healthy; see $PACTUM_VAR/logs/$svc.log" >&2
  return 1
}

# The password of a bus user, from the credentials nats-conf.sh wrote.
nats_password() {
  sed -n "s/^$1=//p" "$PACTUM_VAR/nats/auth/credentials"
}

suite_start() {
  mkdir -p "$PACTUM_VAR/logs" "$PACTUM_VAR/nats"
  local port
  port=$(free_port "${PACTUM_NATS_PORT:-4222}")
  export PACTUM_NATS_URL="nats://127.0.0.1:$port"
  export PACTUM_DATA_DIR="$PACTUM_VAR"
  # Every service, the people's CLI and each agent in PACTUM_AGENTS get their
  # own bus user, allowed only what they need (scripts/nats-conf.sh).
  # shellcheck disable=SC2086
  "$ROOT/scripts/nats-conf.sh" "$PACTUM_VAR/nats/auth" ${PACTUM_AGENTS:-} >/dev/null
  NATS_PID_FILE="$PACTUM_VAR/nats/nats-server.pid"
  "$(command -v nats-server || echo /usr/sbin/nats-server)" -c "$PACTUM_VAR/nats/auth/nats.conf" \
    -a 127.0.0.1 -p "$port" -js -sd "$PACTUM_VAR/nats" -P "$NATS_PID_FILE" \
    >"$PACTUM_VAR/logs/nats-server.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  echo "nats-server   $PACTUM_NATS_URL (JetStream store $PACTUM_VAR/nats; users and permissions in"
  echo "              $PACTUM_VAR/nats/auth/nats.conf, passwords in $PACTUM_VAR/nats/auth/credentials)"
  # the CLI acts for people
  export PACTUM_NATS_USER=pactum
  PACTUM_NATS_PASSWORD=$(nats_password pactum)
  export PACTUM_NATS_PASSWORD
  # The admin key registers operators and arbiters; ingest needs its public half.
  mkdir -p "$PACTUM_VAR/keys"
  if [ ! -e "$PACTUM_VAR/keys/admin.key" ]; then
    "$BUILD/cli/pactum" keygen -o "$PACTUM_VAR/keys/admin.key" >/dev/null
  fi
  export PACTUM_ADMIN_KEY="$PACTUM_VAR/keys/admin.key.pub"
  echo "admin key     $PACTUM_VAR/keys/admin.key (registers operators and arbiters)"
  for svc in "${SERVICES[@]}"; do
    PACTUM_NATS_USER=$svc PACTUM_NATS_PASSWORD=$(nats_password "$svc") \
      "$BUILD/services/$svc/pactum-$svc" >"$PACTUM_VAR/logs/$svc.log" 2>&1 &
    PIDS+=($!)
  done
  for svc in "${SERVICES[@]}"; do
    wait_healthy "$svc"
    printf '%-13s healthy (log %s)\n' "$svc" "$PACTUM_VAR/logs/$svc.log"
  done
}

# Run the CLI as agent $1 (its own bus user): as_agent ID pactum ARGS...
as_agent() {
  local agent=$1
  shift
  PACTUM_NATS_USER=$agent PACTUM_NATS_PASSWORD=$(nats_password "$agent") "$@"
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
