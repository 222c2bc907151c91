#!/usr/bin/env bash
# Start a local 3-node nats-server cluster (JetStream, routes, TLS for clients,
# operator mode) with every stream on three replicas, and two instances of each
# service: ingest twice (they share the raw consumer), evaluators and scorers
# sharing the partitions by lease (kill one and the other takes its partitions
# over within seconds), two oracles with HTTP ports of their own. Keeps them
# running until Ctrl-C, like scripts/up.sh. Data in var/cluster/ (kept between
# runs).
#
# Routes between the nodes are plain TCP on 127.0.0.1; across machines give the
# cluster block a tls {} of its own (docs/operations.md).
set -euo pipefail
export PACTUM_VAR=${PACTUM_VAR:-$(cd "$(dirname "$0")/.." && pwd)/var/cluster}
source "$(dirname "$0")/suite.sh"

NODES=3
trap 'suite_stop' EXIT
trap 'echo; exit 0' INT TERM

cluster_start() {
  mkdir -p "$PACTUM_VAR/logs" "$PACTUM_VAR/nats"
  PACTUM_AUTH="$PACTUM_VAR/nats/auth"
  "$ROOT/scripts/tls.sh" "$PACTUM_VAR/nats/tls" >/dev/null
  export PACTUM_NATS_CA="$PACTUM_VAR/nats/tls/ca.pem"
  "$BUILD/cli/pactum" setup init --dir "$PACTUM_AUTH" --tls-dir "$PACTUM_VAR/nats/tls" \
    --store "$PACTUM_VAR/nats/jetstream" >/dev/null
  local ports=() routes=() urls=() i k port route list
  port=${PACTUM_NATS_PORT:-4222}
  route=$((port + 1000))
  for i in $(seq 0 $((NODES - 1))); do
    port=$(free_port "$port")
    ports+=("$port")
    route=$(free_port "$route")
    routes+=("$route")
    urls+=("nats://127.0.0.1:$port")
    port=$((port + 1))
    route=$((route + 1))
  done
  for i in $(seq 0 $((NODES - 1))); do
    list=""
    for k in $(seq 0 $((NODES - 1))); do
      [ "$k" = "$i" ] && continue
      list="$list${list:+, }nats-route://127.0.0.1:${routes[$k]}"
    done
    # the operator-mode configuration, with a store and a name of its own and the routes
    sed "s|store_dir: \"$PACTUM_VAR/nats/jetstream\"|store_dir: \"$PACTUM_VAR/nats/jetstream/n$i\"|" \
      "$PACTUM_AUTH/nats.conf" >"$PACTUM_VAR/nats/node-$i.conf"
    cat >>"$PACTUM_VAR/nats/node-$i.conf" <<EOF
server_name: n$i
cluster {
  name: pactum
  listen: 127.0.0.1:${routes[$i]}
  routes: [$list]
}
EOF
    "$(command -v nats-server || echo /usr/sbin/nats-server)" -c "$PACTUM_VAR/nats/node-$i.conf" \
      -a 127.0.0.1 -p "${ports[$i]}" >"$PACTUM_VAR/logs/nats-$i.log" 2>&1 &
    PIDS+=($!)
  done
  PACTUM_NATS_URL=$(
    IFS=,
    echo "${urls[*]}"
  )
  export PACTUM_NATS_URL PACTUM_STREAM_REPLICAS=$NODES PACTUM_DATA_DIR="$PACTUM_VAR"
  # the streams on three replicas, made by the setup user once the cluster has a leader
  for i in $(seq 1 100); do
    "$BUILD/cli/pactum" --creds "$PACTUM_AUTH/creds/setup.creds" --timeout 2s setup streams \
      >"$PACTUM_VAR/logs/setup.log" 2>&1 && break
    [ "$i" = 100 ] && { cat "$PACTUM_VAR/logs/setup.log" >&2; return 1; }
    sleep 0.2
  done
  echo "nats cluster  $PACTUM_NATS_URL ($NODES nodes, TLS, streams on $NODES replicas)"
  export PACTUM_NATS_CREDS="$PACTUM_AUTH/creds/enroll.creds"
  mkdir -p "$PACTUM_VAR/keys"
  if [ ! -e "$PACTUM_VAR/keys/admin.key" ]; then
    "$BUILD/cli/pactum" keygen -o "$PACTUM_VAR/keys/admin.key" >/dev/null
  fi
  export PACTUM_ADMIN_KEY="$PACTUM_VAR/keys/admin.key.pub"
  local http=${PACTUM_HTTP_PORT:-7480} inst svc
  for inst in a b; do
    for svc in "${SERVICES[@]}"; do
      http=$(free_port "$http")
      mkdir -p "$PACTUM_VAR/$inst"
      PACTUM_NATS_CREDS="$PACTUM_AUTH/creds/$svc.creds" PACTUM_DATA_DIR="$PACTUM_VAR/$inst" \
        PACTUM_INSTANCE="$svc-$inst" PACTUM_ORACLE_HTTP="127.0.0.1:$http" \
        PACTUM_INGEST_ISSUER=$([ "$svc" = ingest ] && echo "$PACTUM_AUTH/issuer.json") \
        "$BUILD/services/$svc/pactum-$svc" >"$PACTUM_VAR/logs/$svc-$inst.log" 2>&1 &
      PIDS+=($!)
      [ "$svc" = oracle ] && echo "oracle-$inst      http://127.0.0.1:$http/v1/"
      http=$((http + 1))
    done
  done
  for svc in "${SERVICES[@]}"; do
    wait_healthy "$svc"
    printf '%-13s healthy (logs %s/%s-{a,b}.log)\n' "$svc" "$PACTUM_VAR/logs" "$svc"
  done
}

suite_build
cluster_start
echo
echo "running. To use $BUILD/cli/pactum as a person:"
echo "  export PACTUM_NATS_URL=$PACTUM_NATS_URL PACTUM_NATS_CA=$PACTUM_NATS_CA"
echo "  export PACTUM_NATS_CREDS=$PACTUM_NATS_CREDS"
echo "health and replay: pactum --creds $PACTUM_AUTH/creds/monitor.creds ...; Ctrl-C stops"
while true; do
  sleep 1 &
  wait $! || true
done
