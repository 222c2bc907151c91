#!/usr/bin/env bash
# The one-time setup of docker-compose.yml's bus (run by its setup service):
# a CA and the server's certificate, the operator, account and user keys
# (pactum setup init), and for each container only what it needs, each in
# its own volume:
#
#   /keys          everything (the CA key, the operator and account keys): setup only
#   /nats-conf     nats.conf, server.pem, server.key: the nats container
#   /bus/<name>    bus.creds and ca.pem (and, for ingest, issuer.json)
#
# Kept if made before: running it again re-issues the credentials with the
# same keys. An argument puts the folders under it (a dry run outside a
# container); the paths written into nats.conf stay the containers'.
set -euo pipefail
r=${1:-}
pactum-tls "$r/keys/tls" nats nats2 nats3 >/dev/null
pactum setup init --dir "$r/keys/auth" --tls-dir /nats-conf --store /data >/dev/null
install -m 0600 "$r/keys/auth/nats.conf" "$r/keys/tls/server.key" "$r/nats-conf/"
install -m 0644 "$r/keys/tls/server.pem" "$r/nats-conf/"
for name in ingest evaluator scorer oracle gateway setup enroll monitor; do
  mkdir -p "$r/bus/$name"
  install -m 0600 "$r/keys/auth/creds/$name.creds" "$r/bus/$name/bus.creds"
  install -m 0644 "$r/keys/tls/ca.pem" "$r/bus/$name/ca.pem"
done
install -m 0600 "$r/keys/auth/issuer.json" "$r/bus/ingest/issuer.json"
echo "setup: keys in the setup volume; nats.conf and the server's certificate for nats;"
echo "       one bus identity per service (and setup, enroll, monitor) in its own volume"
